//! knote-reactor: kqueue(2)'s change-list / event-list model.
//! (Design picture and the shim's difference table: see below; filled in with the backends.)

mod changelist;
mod event;
mod kqueue;
pub mod note;
mod sys;

pub use changelist::ChangeList;
pub use event::{Filter, Flags, Kevent, RawIdent, TimerUnit};
pub use kqueue::{Kqueue, KqueueBuilder};
