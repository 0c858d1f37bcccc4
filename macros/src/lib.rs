//! The `#[knote::main]` and `#[knote::test]` attributes, re-exported by the
//! `knote` crate; use them from there.
//!
//! Both turn an `async fn` into the same function without `async`, whose body
//! builds a knote runtime and blocks on the original body:
//!
//! ```text
//! #[knote::main(worker_threads = 4)]
//! async fn main() -> R { BODY }
//! ```
//!
//! becomes
//!
//! ```text
//! fn main() -> R {
//!     let __knote_body = async move {
//!         if false { return ::core::option::Option::<R>::None.unwrap(); }
//!         BODY
//!     };
//!     #[allow(clippy::expect_used, /* ... */)]
//!     {
//!         return ::knote::runtime::Builder::new_multi_thread()
//!             .worker_threads(4)
//!             .build()
//!             .expect("failed to build the knote runtime")
//!             .block_on(__knote_body);
//!     }
//! }
//! ```
//!
//! The body is moved verbatim (spans included) into an `async move` block, so
//! `?` and `return` in it leave the block with its value, and diagnostics
//! about the body point at the user's code. The `if false { return ... }`
//! line, never run, fixes the block's output type to `R` before the body is
//! type-checked: a wrong tail expression or `return` value is then reported
//! where it is written rather than on the attribute (it is left out when `R`
//! is `!` or contains `impl Trait`). `#[knote::test]` also adds `#[test]` to
//! the function, unless it already has one.
//!
//! The transformation itself lives in a private module that works on
//! `proc_macro2` token streams only, so that it is unit-tested without a
//! compiler in the loop. It never panics: a misuse expands to the best
//! possible function plus a `compile_error!` spanned on the offending tokens.
#![deny(missing_docs)]

use proc_macro::TokenStream;

mod expand;

use expand::{expand, Kind};

/// Runs an `async fn main` to completion on a knote runtime built for the
/// occasion.
///
/// It may also be applied to another `async fn` (which may then take
/// arguments): calling the function builds a runtime and blocks on its body.
///
/// The annotated function keeps its attributes, visibility and return type;
/// it may return anything `main` may, e.g. `Result<(), E>`, and `?` works in
/// its body. The runtime is a multi-thread one unless told otherwise.
///
/// # Arguments
///
/// - `flavor = "multi_thread"` (default) or `flavor = "current_thread"`: which
///   runtime to build (`Builder::new_multi_thread()` or
///   `Builder::new_current_thread()`).
/// - `worker_threads = N`: the number of worker threads (an integer literal,
///   at least 1); multi-thread flavor only. Left to the runtime's default when
///   absent.
/// - `crate = "path"`: where to find the knote crate when it is not `::knote`
///   (e.g. after renaming it in `Cargo.toml`).
///
/// # Examples
///
/// ```ignore
/// #[knote::main]
/// async fn main() -> std::io::Result<()> {
///     let n: u32 = "42".parse().map_err(std::io::Error::other)?;
///     println!("{n}");
///     Ok(())
/// }
/// ```
///
/// On a single-threaded runtime, or with a fixed number of workers:
///
/// ```ignore
/// #[knote::main(flavor = "current_thread")]
/// async fn main() {}
/// ```
///
/// ```ignore
/// #[knote::main(flavor = "multi_thread", worker_threads = 4, crate = "my_knote")]
/// async fn main() {}
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on a knote runtime built for that test.
///
/// The function becomes a `#[test]` (the attribute is added unless it is
/// already there; put `#[knote::test]` first in that case). Other attributes
/// such as `#[should_panic]` or `#[ignore]` are kept, and the test may return
/// anything a `#[test]` may, e.g. `Result<(), E>`. The runtime is a
/// current-thread one unless told otherwise.
///
/// # Arguments
///
/// The same as for [`macro@main`], except that the default flavor is
/// `"current_thread"`:
///
/// - `flavor = "current_thread"` (default) or `flavor = "multi_thread"`;
/// - `worker_threads = N`, which needs `flavor = "multi_thread"`;
/// - `start_paused = true`: the test starts with the runtime's clock paused
///   (`knote::time::pause`), so that timers fire as soon as the runtime is idle
///   and a 30 s timeout takes no time; needs the current-thread flavor;
/// - `crate = "path"`.
///
/// # Examples
///
/// ```ignore
/// #[knote::test(start_paused = true)]
/// async fn times_out() {
///     let r = knote::time::timeout(std::time::Duration::from_secs(30), std::future::pending::<()>());
///     assert!(r.await.is_err()); // at once: the clock jumps to the deadline
/// }
///
/// #[knote::test]
/// async fn parses() -> Result<(), std::num::ParseIntError> {
///     assert_eq!("7".parse::<u8>()?, 7);
///     Ok(())
/// }
///
/// #[knote::test(flavor = "multi_thread", worker_threads = 2)]
/// #[should_panic(expected = "boom")]
/// async fn panics() {
///     panic!("boom");
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args.into(), item.into()).into()
}
