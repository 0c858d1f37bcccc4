//! A child process a second: `echo` with a token, its output captured and checked, the child
//! reaped, through `knote::process::Command`.

use std::sync::Arc;
use std::time::Duration;

use knote::process::Command;
use knote::time::{sleep, Instant};

use super::shared::{limited, Shared, STOP_POLL};

/// Time between two children.
const PERIOD: Duration = Duration::from_secs(1);

/// Spawns `echo knote-soak-N` every [`PERIOD`] until the run stops; each must exit 0 having
/// written exactly its token and a newline, within [`WAIT_LIMIT`](super::shared::WAIT_LIMIT).
pub(crate) async fn children(shared: Arc<Shared>) {
    let c = &shared.counters;
    let started = Instant::now();
    for n in 0u32.. {
        let due = started + PERIOD * n;
        while Instant::now() < due {
            if shared.stopping() {
                return;
            }
            sleep(STOP_POLL.min(due - Instant::now())).await;
        }
        if shared.stopping() {
            return;
        }
        let token = format!("knote-soak-{n}");
        Shared::add(&c.children_spawned, 1);
        let mut echo = Command::new("echo");
        echo.arg(&token).kill_on_drop(true);
        match limited("echo", echo.output()).await {
            Ok(out)
                if out.status.success()
                    && out.stdout == format!("{token}\n").as_bytes()
                    && out.stderr.is_empty() =>
            {
                Shared::add(&c.children_checked, 1);
            }
            Ok(out) => {
                Shared::add(&c.children_bad, 1);
                shared.incident(format!(
                    "child {n}: {}, wrote {:?} (and {:?} on stderr) for {token:?}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Err(e) => shared.error("child", &e),
        }
    }
}
