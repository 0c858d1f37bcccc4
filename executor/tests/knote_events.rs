//! `KnoteRegistration`: user events and signals as async event sources.

use std::time::Duration;

use knote_executor::io::KnoteRegistration;
use knote_executor::runtime::Builder;
use knote_reactor::{note, Flags, Kevent};

#[test]
#[cfg_attr(miri, ignore)]
fn user_event_fires_and_reports_its_fflags() {
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        // A user knote fires on NOTE_TRIGGER (not on the EV_ADD that creates it: FreeBSD clears
        // the fflags before the attach); its fflags (low 24 bits) come back with the event. The
        // trigger is a change to the knote and, like every change, replaces its udata, so the
        // registration that sends it is the one that receives the event.
        let _created = KnoteRegistration::new(Kevent::user(
            78,
            Flags::ADD | Flags::ONESHOT,
            note::FFCOPY | 5,
            0,
        ))
        .unwrap();
        let fired =
            KnoteRegistration::new(Kevent::user(78, Flags::empty(), note::TRIGGER, 0)).unwrap();
        let got = knote_executor::time::timeout(Duration::from_secs(5), fired.event())
            .await
            .expect("a triggered user knote fires");
        assert_eq!(got.fflags & 0x00ff_ffff, 5);
        // Nothing more fires for it.
        let again = knote_executor::time::timeout(Duration::from_millis(20), fired.event()).await;
        assert!(again.is_err());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn signal_deliveries_are_counted() {
    // SIGUSR2's default action would end the process: ignore it, as a program that wants the
    // events would (the reactor's signal filter still counts deliveries).
    // SAFETY: plain libc call with valid arguments.
    unsafe {
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
    }
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let reg =
            KnoteRegistration::new(Kevent::signal(libc::SIGUSR2, Flags::ADD | Flags::CLEAR, 0))
                .unwrap();
        for _ in 0..3 {
            // SAFETY: raising a signal whose disposition was set above.
            unsafe {
                libc::raise(libc::SIGUSR2);
            }
        }
        let mut total = 0;
        while total < 3 {
            let got = knote_executor::time::timeout(Duration::from_secs(5), reg.event())
                .await
                .expect("signals are reported");
            assert!(got.data >= 1);
            total += got.data;
        }
        assert_eq!(total, 3);
    });
}
