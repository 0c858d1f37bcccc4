//! The shim's record and numbering: FreeBSD's, since FreeBSD is the reference.

use crate::TimerUnit;

pub(crate) const EVFILT_READ: i32 = -1;
pub(crate) const EVFILT_WRITE: i32 = -2;
pub(crate) const EVFILT_VNODE: i32 = -4;
pub(crate) const EVFILT_PROC: i32 = -5;
pub(crate) const EVFILT_SIGNAL: i32 = -6;
pub(crate) const EVFILT_TIMER: i32 = -7;
pub(crate) const EVFILT_USER: i32 = -11;

pub(crate) const EV_ADD: u16 = 0x0001;
pub(crate) const EV_DELETE: u16 = 0x0002;
pub(crate) const EV_ENABLE: u16 = 0x0004;
pub(crate) const EV_DISABLE: u16 = 0x0008;
pub(crate) const EV_ONESHOT: u16 = 0x0010;
pub(crate) const EV_CLEAR: u16 = 0x0020;
pub(crate) const EV_RECEIPT: u16 = 0x0040;
pub(crate) const EV_DISPATCH: u16 = 0x0080;
pub(crate) const EV_ERROR: u16 = 0x4000;
pub(crate) const EV_EOF: u16 = 0x8000;

pub(crate) const NOTE_TRIGGER: u32 = 0x0100_0000;
pub(crate) const NOTE_FFNOP: u32 = 0;
pub(crate) const NOTE_FFAND: u32 = 0x4000_0000;
pub(crate) const NOTE_FFOR: u32 = 0x8000_0000;
pub(crate) const NOTE_FFCOPY: u32 = 0xc000_0000;
pub(crate) const NOTE_FFCTRLMASK: u32 = 0xc000_0000;
pub(crate) const NOTE_FFLAGSMASK: u32 = 0x00ff_ffff;
pub(crate) const NOTE_LOWAT: u32 = 0x0001;
pub(crate) const NOTE_EXIT: u32 = 0x8000_0000;
/// macOS only; the shim, like FreeBSD, always reports the exit status with `NOTE_EXIT`.
pub(crate) const NOTE_EXITSTATUS: u32 = 0;
pub(crate) const NOTE_FORK: u32 = 0x4000_0000;
pub(crate) const NOTE_EXEC: u32 = 0x2000_0000;
pub(crate) const NOTE_SECONDS: u32 = 0x0001;
pub(crate) const NOTE_MSECONDS: u32 = 0x0002;
pub(crate) const NOTE_USECONDS: u32 = 0x0004;
pub(crate) const NOTE_NSECONDS: u32 = 0x0008;
pub(crate) const NOTE_ABSTIME: u32 = 0x0010;
pub(crate) const NOTE_DELETE: u32 = 0x0001;
pub(crate) const NOTE_WRITE: u32 = 0x0002;
pub(crate) const NOTE_EXTEND: u32 = 0x0004;
pub(crate) const NOTE_ATTRIB: u32 = 0x0008;
pub(crate) const NOTE_LINK: u32 = 0x0010;
pub(crate) const NOTE_RENAME: u32 = 0x0020;
pub(crate) const NOTE_REVOKE: u32 = 0x0040;
pub(crate) const NOTE_OPEN: u32 = 0x0080;
pub(crate) const NOTE_CLOSE: u32 = 0x0100;
pub(crate) const NOTE_CLOSE_WRITE: u32 = 0x0200;
pub(crate) const NOTE_READ: u32 = 0x0400;

/// Timer units as FreeBSD writes them: one bit per unit.
pub(crate) fn timer_fflags(unit: TimerUnit, amount: i64, absolute: bool) -> (u32, i64) {
    let unit_bit = match unit {
        TimerUnit::Seconds => NOTE_SECONDS,
        TimerUnit::Millis => NOTE_MSECONDS,
        TimerUnit::Micros => NOTE_USECONDS,
        TimerUnit::Nanos => NOTE_NSECONDS,
    };
    let abs = if absolute { NOTE_ABSTIME } else { 0 };
    (unit_bit | abs, amount)
}

/// The shim's kevent record: the fields of FreeBSD's `struct kevent` without `ext`.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct RawKevent {
    ident: usize,
    filter: i16,
    flags: u16,
    fflags: u32,
    data: i64,
    udata: usize,
}

impl RawKevent {
    pub(crate) fn new(
        ident: usize,
        filter: i32,
        flags: u16,
        fflags: u32,
        data: i64,
        udata: usize,
    ) -> RawKevent {
        RawKevent {
            ident,
            filter: filter as i16,
            flags,
            fflags,
            data,
            udata,
        }
    }
    pub(crate) fn ident(&self) -> usize {
        self.ident
    }
    pub(crate) fn filter(&self) -> i32 {
        i32::from(self.filter)
    }
    pub(crate) fn flags(&self) -> u16 {
        self.flags
    }
    pub(crate) fn fflags(&self) -> u32 {
        self.fflags
    }
    pub(crate) fn data(&self) -> i64 {
        self.data
    }
    pub(crate) fn udata(&self) -> usize {
        self.udata
    }
    pub(crate) fn set_flags(&mut self, flags: u16) {
        self.flags = flags;
    }
    pub(crate) fn set_fflags(&mut self, fflags: u32) {
        self.fflags = fflags;
    }
    pub(crate) fn set_data(&mut self, data: i64) {
        self.data = data;
    }
    pub(crate) fn set_udata(&mut self, udata: usize) {
        self.udata = udata;
    }
}
