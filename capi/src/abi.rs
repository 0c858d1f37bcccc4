//! FreeBSD's `struct kevent` as C programs lay it out, and its conversion to and from the
//! reactor's [`Kevent`].
//!
//! On Linux the reactor's `Kevent` is the shim's own record (FreeBSD's fields without `ext`), so
//! the two cannot share memory: every record is converted field by field on the way in and out.
//! Field types follow FreeBSD 12+ (`sys/event.h`): the numbers of filters, flags and notes are
//! FreeBSD's on both sides, so the conversion never renumbers anything.

use std::ffi::c_void;

use knote_reactor::{Filter, Flags, Kevent};

/// FreeBSD 12+'s `struct kevent`, the record C programs pass to [`kevent`](crate::kevent).
///
/// Laid out exactly as `capi/include/sys/event.h` declares it (64 bytes on LP64); the header's
/// layout is checked against this type by the C tests.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CKevent {
    /// `uintptr_t ident`: an fd, a signal number, a pid, or a caller-chosen number.
    pub ident: usize,
    /// `short filter`: an `EVFILT_*` value.
    pub filter: i16,
    /// `unsigned short flags`: `EV_*` bits.
    pub flags: u16,
    /// `unsigned int fflags`: `NOTE_*` bits.
    pub fflags: u32,
    /// `int64_t data`: the filter's data.
    pub data: i64,
    /// `void *udata`: handed back untouched.
    pub udata: *mut c_void,
    /// `uint64_t ext[4]`: FreeBSD's extension words. No filter of the shim uses `ext[0]` or
    /// `ext[1]`; see [`to_c`] for what comes back in them.
    pub ext: [u64; 4],
}

/// The reactor's record for a change from C. `ext` is not carried (see [`to_c`]).
pub fn from_c(c: &CKevent) -> Kevent {
    Kevent::new(
        c.ident,
        Filter::from_raw(i32::from(c.filter)),
        Flags::from_bits_retain(c.flags),
        c.fflags,
        c.data,
        // The pointer's address is exposed here and the address turned back into a pointer by
        // `to_c`: the reactor keeps udata as an integer, and never dereferences it.
        c.udata as usize,
    )
}

/// The C record for an event from the reactor, with `ext` set to `ext`.
///
/// kevent(2) copies a change's `ext` into its `EV_ERROR` entry (the entry is the change written
/// back), so the caller passes the originating change's `ext` there; the shim's knotes do not
/// store `ext`, so ordinary events carry zeros (a documented difference from FreeBSD, which
/// hands `ext[2]` and `ext[3]` back with every event).
pub fn to_c(ev: &Kevent, ext: [u64; 4]) -> CKevent {
    CKevent {
        ident: ev.ident(),
        // The reactor's filters are FreeBSD's `short` values; a raw filter came in as an `i16`.
        filter: ev.filter().raw() as i16,
        flags: ev.flags().bits(),
        fflags: ev.fflags(),
        data: ev.data(),
        udata: ev.udata() as *mut c_void,
        ext,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knote_reactor::note;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_is_freebsd_12() {
        assert_eq!(size_of::<CKevent>(), 64);
        assert_eq!(offset_of!(CKevent, ident), 0);
        assert_eq!(offset_of!(CKevent, filter), 8);
        assert_eq!(offset_of!(CKevent, flags), 10);
        assert_eq!(offset_of!(CKevent, fflags), 12);
        assert_eq!(offset_of!(CKevent, data), 16);
        assert_eq!(offset_of!(CKevent, udata), 24);
        assert_eq!(offset_of!(CKevent, ext), 32);
    }

    fn sample() -> CKevent {
        CKevent {
            ident: usize::MAX - 3,
            filter: Filter::USER.raw() as i16,
            flags: (Flags::ADD | Flags::CLEAR | Flags::RECEIPT).bits(),
            fflags: note::TRIGGER | note::FFCOPY | 0x00ab_cdef,
            data: i64::MIN + 1,
            udata: 0xdead_beef_usize as *mut c_void,
            ext: [1, 2, 3, 4],
        }
    }

    #[test]
    fn every_field_survives_the_round_trip() {
        let c = sample();
        let k = from_c(&c);
        assert_eq!(k.ident(), c.ident);
        assert_eq!(k.filter(), Filter::USER);
        assert_eq!(k.flags(), Flags::ADD | Flags::CLEAR | Flags::RECEIPT);
        assert_eq!(k.fflags(), c.fflags);
        assert_eq!(k.data(), c.data);
        assert_eq!(k.udata(), 0xdead_beef);
        assert_eq!(to_c(&k, c.ext), c);
    }

    #[test]
    fn events_carry_the_given_ext() {
        let k = from_c(&sample());
        assert_eq!(to_c(&k, [0; 4]).ext, [0; 4]);
        assert_eq!(to_c(&k, [9, 8, 7, 6]).ext, [9, 8, 7, 6]);
    }

    #[test]
    fn raw_filters_and_unknown_flags_pass_through() {
        // A filter the shim does not model (EVFILT_AIO = -3) and flag bits it does not name
        // (EV_FLAG1 = 0x2000) reach the reactor unchanged, which answers EINVAL for the filter.
        let c = CKevent {
            filter: -3,
            flags: 0x2000 | Flags::ADD.bits(),
            ..sample()
        };
        let k = from_c(&c);
        assert_eq!(k.filter().raw(), -3);
        assert_eq!(k.flags().bits(), 0x2001);
        assert_eq!(to_c(&k, c.ext), c);
    }

    #[test]
    fn every_filter_number_is_freebsds() {
        let pairs = [
            (Filter::READ, -1),
            (Filter::WRITE, -2),
            (Filter::VNODE, -4),
            (Filter::PROC, -5),
            (Filter::SIGNAL, -6),
            (Filter::TIMER, -7),
            (Filter::USER, -11),
        ];
        for (filter, freebsd) in pairs {
            let c = CKevent {
                filter: freebsd,
                ..sample()
            };
            assert_eq!(from_c(&c).filter(), filter);
            assert_eq!(to_c(&from_c(&c), [0; 4]).filter, freebsd);
        }
    }
}
