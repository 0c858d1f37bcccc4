//! `knote-bench`: knote's benchmark tool. `knote-bench soak --minutes N` runs the endurance
//! check (see the `soak` module).

use std::process::ExitCode;

mod soak;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("soak") => soak::main(args),
        _ => {
            eprintln!("usage: knote-bench soak [OPTIONS]   (knote-bench soak --help)");
            ExitCode::from(2)
        }
    }
}
