//! The filter table: what each filter does, behind one interface, and the one place a filter
//! is wired into the shim.
//!
//! FreeBSD's `kern_event.c` gives every filter a `struct filterops { f_attach, f_detach,
//! f_event, f_touch }` and keeps the generic parts of a change (`kqueue_register`) and of a
//! collection (`kqueue_scan`) free of any filter's details. The shim does the same: the phases in
//! `changes.rs` (applying a change) and `collect.rs` (turning epoll reports into activated knotes,
//! delivering from the ready queue) call the filter through `FilterOps`, and each filter lives in
//! a file of its own (`read_write.rs`, `timer.rs`, `user.rs`, `signal.rs`, `proc.rs`).
//!
//! # The interface, and why a trait with static dispatch
//!
//! `FilterOps` is a trait of associated functions (no `self`: a filter is a set of operations,
//! like `filterops`), implemented by one unit type per filter. The `filter_table!` invocation in `mod.rs`
//! turns the list of filters into
//!
//! - `Ext`, the per-knote state: one variant per filter holding that filter's own type
//!   (FreeBSD's `kn_ptr`/`kn_hook` and the meaning it gives `kn_data`, but typed: a timer's
//!   expiration count, a process's wait status and a socket's last `data` are different fields
//!   of different types, not one `data` with three meanings);
//! - `Shared`, the per-kqueue state of each filter (the fd table, the timer heap and its
//!   timerfd, the list of SIGNAL knotes, …), one field per filter;
//! - `FilterId`, which names a table entry: found from an `EVFILT_*` number (`FilterId::of`)
//!   or from a knote (`Ext::id`), and the *kind* of every epoll token a filter registers
//!   (`token`), so epoll reports go back to the filter that asked for them;
//! - one dispatch function per operation (`lookup`, `attach`, …): a `match` on the `FilterId`
//!   calling the filter's function directly.
//!
//! Static dispatch was chosen over a table of function pointers or `dyn` objects because the hot
//! path (an fd knote with `EV_CLEAR`: one report, one delivery) goes through `report` and
//! `deliver` for every event: a `match` on a small enum compiles to a jump the optimiser can see
//! through and inline, where an indirect call cannot be, and the per-knote state is stored inline
//! in the knote (no box, no downcast). The cost is a macro, defined in this file and invoked once.
//!
//! # Adding a filter
//!
//! 1. Write `NAME.rs` with a unit type implementing `FilterOps`: `FILTERS` (the `EVFILT_*`
//!    numbers it serves), its `Knote` and `Shared` types, and the operations it needs (most have
//!    defaults: knotes indexed by `(filter, ident)` in the ident table, no epoll tokens, nothing
//!    to do before a scan). Epoll registrations it makes use `token(FilterId::Variant, payload)`
//!    with a payload of up to `TOKEN_PAYLOAD_BITS` bits; its `report` gets the payload back.
//!    Its knote state is reached with `<Type as Member>::ext`/`ext_mut` (the table generates them), its
//!    per-kqueue state as `state.filters.field`.
//! 2. Add one line to the table (the `filter_table!` invocation in `mod.rs`):
//!    `field: Variant => NAME::Type,`. The table declares the module, adds `Variant` to `Ext`
//!    and `FilterId` (hence a token kind), `field` to `Shared`, and the filter's numbers to
//!    the lookup by `EVFILT_*`.
//!
//! Nothing else changes: the phases, the token decoding and the knote layout follow the table.

use std::io;
use std::os::fd::RawFd;

use super::abi::RawKevent;
use super::knote::Knote;
use super::{Ext, FilterId, Selector, State};

/// A change's outcome: `Err(errno)` becomes an `EV_ERROR` entry.
pub(super) type Outcome = Result<(), i32>;

/// What `attach` hands back for the generic code to store in the new knote.
pub(super) struct Attached<K> {
    /// The filter's own state for the knote.
    pub(super) ext: K,
    /// The flags to keep (the change's, plus any the filter implies, e.g. `EV_CLEAR`).
    pub(super) flags: u16,
    /// The stored filter input (`kn_sfflags`): the change's `fflags`, or what the filter keeps
    /// of them.
    pub(super) sfflags: u32,
}

/// What `deliver` reports for the generic code to turn into an event.
pub(super) struct Delivery {
    /// Flags to return on top of the knote's kept flags (`EV_EOF`, …).
    pub(super) flags: u16,
    pub(super) fflags: u32,
    pub(super) data: i64,
    /// Level-triggered: put the knote back on the queue after delivery (unless `EV_ONESHOT` or
    /// `EV_DISPATCH` end or disable it).
    pub(super) requeue: bool,
}

/// The operations of one filter (FreeBSD's `struct filterops`, plus the event-source side the
/// shim has to provide itself, since no kernel calls `KNOTE()` for it).
///
/// `attach`, `detach`, `touch` and `deliver` (FreeBSD's `f_event` at scan time) are
/// `filterops`; `lookup`/`link` generalise the ident and fd hashes of `kqueue_register`;
/// `report`, `prepare_scan` and `sync` are the sources: epoll reports, work before a scan
/// (expiring timers, re-checking level knotes) and kernel state to bring up to date before the
/// lock is released (the timerfd).
pub(super) trait FilterOps {
    /// The `EVFILT_*` numbers this filter serves.
    const FILTERS: &'static [i32];
    /// Per-knote state.
    type Knote;
    /// Per-kqueue state, created with the kqueue: `Default`, then `init`.
    type Shared: Default;

    /// Sets up the per-kqueue state's system resources when the kqueue is created (`epfd` is
    /// its epoll instance). Default: none.
    fn init(_shared: &mut Self::Shared, _epfd: RawFd) -> io::Result<()> {
        Ok(())
    }

    /// Finds the knote a change names (`Ok(None)`: there is none). The default looks in the
    /// ident table; a filter may validate the ident first and fail the change.
    fn lookup(st: &mut State, _sel: &Selector, change: &RawKevent) -> Result<Option<usize>, i32> {
        Ok(st.idents.get(&(change.filter(), change.ident())).copied())
    }

    /// `f_attach`, first half: validates an `EV_ADD` change creating a knote and builds the
    /// knote's state. The knote is not stored yet, so nothing may point at it.
    fn attach(
        st: &mut State,
        sel: &Selector,
        change: &RawKevent,
    ) -> Result<Attached<Self::Knote>, i32>;

    /// `f_attach`, second half, once the knote is stored at `idx`: makes it findable (default: the
    /// ident table) and reachable by its sources, and activates it if its condition holds. On
    /// `Err` the knote is removed again (`detach` must cope with a half-linked knote).
    fn link(st: &mut State, _sel: &Selector, idx: usize) -> Outcome {
        st.link_ident(idx);
        Ok(())
    }

    /// `f_detach`: the knote `kn`, just taken out of slot `idx`, is gone; forget every reference
    /// to it (default: the ident table). Its resources drop with `kn`.
    fn detach(st: &mut State, _idx: usize, kn: &Knote) {
        st.unlink_ident(kn);
    }

    /// `EV_DELETE` of knote `idx` (default: remove it).
    fn delete(st: &mut State, _sel: &Selector, idx: usize) -> Outcome {
        st.remove_knote(idx);
        Ok(())
    }

    /// `f_touch(EVENT_REGISTER)`: a change to an existing knote, after the generic part
    /// (`EV_ENABLE`/`EV_DISABLE`, the new `udata`) was taken. Activates the knote if the change
    /// makes its condition hold.
    fn touch(st: &mut State, sel: &Selector, idx: usize, change: &RawKevent) -> Outcome;

    /// `f_event` at scan time and `f_touch(EVENT_PROCESS)`: what the queued, enabled knote `idx`
    /// reports now, resetting what `EV_CLEAR` resets; `None` drops the queue entry (the condition
    /// no longer holds).
    fn deliver(st: &mut State, exact: bool, idx: usize) -> Option<Delivery>;

    /// An epoll report for one of this filter's tokens: `payload` is what the filter put in the
    /// token, `bits` the epoll event mask.
    fn report(_st: &mut State, _sel: &Selector, _payload: u64, _bits: u32) {}

    /// Work before the ready queue is scanned (expiries, re-checks).
    fn prepare_scan(_st: &mut State) {}

    /// Brings this filter's kernel state up to date before the lock is released.
    fn sync(_st: &mut State) {}
}

/// The projections of `Ext` onto one filter's knote state (generated by the table).
pub(super) trait Member: FilterOps {
    /// This filter's state in `ext`, if `ext` is this filter's.
    fn ext(ext: &Ext) -> Option<&Self::Knote>;
    /// This filter's state in `ext`, mutably.
    fn ext_mut(ext: &mut Ext) -> Option<&mut Self::Knote>;
}

/// The bits of an epoll token below its kind.
pub(super) const TOKEN_PAYLOAD_BITS: u32 = 60;
pub(super) const TOKEN_PAYLOAD_MASK: u64 = (1 << TOKEN_PAYLOAD_BITS) - 1;
/// The token kind of the kqueue's own registrations (the wake eventfd).
pub(super) const TOKEN_CORE: u64 = 0;

/// The epoll token of a registration made by filter `id`.
#[inline]
pub(super) fn token(id: FilterId, payload: u64) -> u64 {
    debug_assert!(payload <= TOKEN_PAYLOAD_MASK);
    ((id as u64 + 1) << TOKEN_PAYLOAD_BITS) | (payload & TOKEN_PAYLOAD_MASK)
}

/// Generates the table (invoked once, in `mod.rs`)'s types and dispatch functions; see the module docs.
macro_rules! filter_table {
    ($( $field:ident : $Variant:ident => $module:ident :: $Ops:ident ),+ $(,)?) => {
        $( mod $module; )+

        /// A table entry: one filter's operations.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum FilterId { $( $Variant, )+ }

        impl FilterId {
            /// The entry serving `EVFILT_*` number `filter`, if the shim has one.
            #[inline]
            fn of(filter: i32) -> Option<FilterId> {
                $( if <$module::$Ops as FilterOps>::FILTERS.contains(&filter) {
                    return Some(FilterId::$Variant);
                } )+
                None
            }

            /// The entry whose tokens have kind `kind` (`token`'s top bits).
            #[inline]
            fn of_token_kind(kind: u64) -> Option<FilterId> {
                [$( FilterId::$Variant, )+].get(usize::try_from(kind.checked_sub(1)?).ok()?).copied()
            }
        }

        /// Per-knote filter state: one variant per filter. A plain tag (no niche packing), so
        /// that `id`, asked at every delivery, is a byte load.
        #[repr(u8)]
        enum Ext { $( $Variant(<$module::$Ops as FilterOps>::Knote), )+ }

        impl Ext {
            /// The filter this state belongs to.
            #[inline]
            fn id(&self) -> FilterId {
                match self { $( Ext::$Variant(_) => FilterId::$Variant, )+ }
            }
        }

        $( impl Member for $module::$Ops {
            #[inline]
            fn ext(ext: &Ext) -> Option<&Self::Knote> {
                #[allow(unreachable_patterns)]
                match ext { Ext::$Variant(k) => Some(k), _ => None }
            }
            #[inline]
            fn ext_mut(ext: &mut Ext) -> Option<&mut Self::Knote> {
                #[allow(unreachable_patterns)]
                match ext { Ext::$Variant(k) => Some(k), _ => None }
            }
        } )+

        /// Per-kqueue filter state: one field per filter (`()` for a filter that keeps none).
        #[derive(Default)]
        #[allow(dead_code)]
        struct Shared { $( $field: <$module::$Ops as FilterOps>::Shared, )+ }

        /// The dispatch functions: one per operation, a `match` on the table entry.
        mod dispatch {
            use super::*;

        /// Every filter's `init`, in table order.
        #[inline]
        pub(super) fn init(shared: &mut Shared, epfd: RawFd) -> io::Result<()> {
            $( <$module::$Ops as FilterOps>::init(&mut shared.$field, epfd)?; )+
            Ok(())
        }

        #[inline]

        pub(super) fn lookup(id: FilterId, st: &mut State, sel: &Selector, change: &RawKevent)
            -> Result<Option<usize>, i32> {
            match id { $( FilterId::$Variant => <$module::$Ops as FilterOps>::lookup(st, sel, change), )+ }
        }

        #[inline]

        pub(super) fn attach(id: FilterId, st: &mut State, sel: &Selector, change: &RawKevent)
            -> Result<Attached<Ext>, i32> {
            match id { $( FilterId::$Variant => {
                let a = <$module::$Ops as FilterOps>::attach(st, sel, change)?;
                Ok(Attached { ext: Ext::$Variant(a.ext), flags: a.flags, sfflags: a.sfflags })
            } )+ }
        }

        #[inline]

        pub(super) fn link(id: FilterId, st: &mut State, sel: &Selector, idx: usize) -> Outcome {
            match id { $( FilterId::$Variant => <$module::$Ops as FilterOps>::link(st, sel, idx), )+ }
        }

        #[inline]

        pub(super) fn detach(st: &mut State, idx: usize, kn: &Knote) {
            match kn.ext.id() { $( FilterId::$Variant => <$module::$Ops as FilterOps>::detach(st, idx, kn), )+ }
        }

        #[inline]

        pub(super) fn delete(id: FilterId, st: &mut State, sel: &Selector, idx: usize) -> Outcome {
            match id { $( FilterId::$Variant => <$module::$Ops as FilterOps>::delete(st, sel, idx), )+ }
        }

        #[inline]

        pub(super) fn touch(id: FilterId, st: &mut State, sel: &Selector, idx: usize, change: &RawKevent)
            -> Outcome {
            match id { $( FilterId::$Variant => <$module::$Ops as FilterOps>::touch(st, sel, idx, change), )+ }
        }

        #[inline]

        pub(super) fn deliver(id: FilterId, st: &mut State, exact: bool, idx: usize) -> Option<Delivery> {
            match id { $( FilterId::$Variant => <$module::$Ops as FilterOps>::deliver(st, exact, idx), )+ }
        }

        /// Routes one epoll report to the filter whose token it carries; `false` if the token
        /// is not a filter's (the kqueue's own).
        #[inline]
        pub(super) fn report(st: &mut State, sel: &Selector, token: u64, bits: u32) -> bool {
            match FilterId::of_token_kind(token >> TOKEN_PAYLOAD_BITS) {
                $( Some(FilterId::$Variant) => {
                    <$module::$Ops as FilterOps>::report(st, sel, token & TOKEN_PAYLOAD_MASK, bits);
                    true
                } )+
                None => false,
            }
        }

        /// Every filter's work before a scan, in table order.
        #[inline]
        pub(super) fn prepare_scan(st: &mut State) {
            $( <$module::$Ops as FilterOps>::prepare_scan(st); )+
        }

        /// Every filter's kernel state brought up to date, in table order.
        #[inline]
        pub(super) fn sync(st: &mut State) {
            $( <$module::$Ops as FilterOps>::sync(st); )+
        }
        }
    };
}
