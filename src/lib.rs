//! knote: an async runtime whose reactor is a faithful kqueue abstraction.
pub use knote_reactor as reactor;
