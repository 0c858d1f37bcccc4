//! Socket addresses: [`ToSocketAddrs`], which says whether an address is ready to use or
//! needs a name lookup, and [`lookup_host`], which does the lookup on the blocking pool.
//!
//! std's `ToSocketAddrs` resolves host names with `getaddrinfo`, a blocking call that can take
//! seconds: on a runtime thread it would stall every task there. Here literal addresses
//! (`"127.0.0.1:80"`, a `SocketAddr`, `(IpAddr, u16)`) are used at once, and only names go to
//! the blocking pool.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use knote_executor::runtime::Handle;

/// What an address becomes: ready, or a name to look up.
mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// The resolution an address asks for.
    pub enum Resolve {
        /// Addresses known without a lookup.
        Ready(io::Result<Vec<SocketAddr>>),
        /// `"host:port"`, for std's resolver.
        HostPort(String),
        /// A host and a port, for std's resolver.
        Host(String, u16),
    }

    /// The method behind [`ToSocketAddrs`](super::ToSocketAddrs), out of reach of other
    /// crates, so the trait can change without breaking them.
    pub trait Sealed {
        /// How to turn `self` into addresses.
        fn resolve(&self) -> Resolve;
    }
}

use sealed::{Resolve, Sealed};

/// Addresses knote's sockets can bind or connect to: what std's `ToSocketAddrs` accepts
/// (`SocketAddr`, `"host:port"` strings, `(host, port)` pairs, slices of addresses), with host
/// names resolved on the blocking pool instead of the calling thread.
///
/// Sealed: implemented for the types listed, and references to them.
pub trait ToSocketAddrs: Sealed {}

impl<T: Sealed + ?Sized> Sealed for &T {
    fn resolve(&self) -> Resolve {
        (**self).resolve()
    }
}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}

macro_rules! ready_addrs {
    ($($ty:ty => |$s:ident| $e:expr),* $(,)?) => {$(
        impl Sealed for $ty {
            fn resolve(&self) -> Resolve {
                let $s = self;
                Resolve::Ready(Ok($e))
            }
        }
        impl ToSocketAddrs for $ty {}
    )*};
}

ready_addrs! {
    SocketAddr => |a| vec![*a],
    SocketAddrV4 => |a| vec![SocketAddr::V4(*a)],
    SocketAddrV6 => |a| vec![SocketAddr::V6(*a)],
    (IpAddr, u16) => |a| vec![SocketAddr::new(a.0, a.1)],
    (Ipv4Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V4(a.0), a.1)],
    (Ipv6Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V6(a.0), a.1)],
    [SocketAddr] => |a| a.to_vec(),
    Vec<SocketAddr> => |a| a.clone(),
}

impl<const N: usize> Sealed for [SocketAddr; N] {
    fn resolve(&self) -> Resolve {
        Resolve::Ready(Ok(self.to_vec()))
    }
}
impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}

impl Sealed for str {
    fn resolve(&self) -> Resolve {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Resolve::Ready(Ok(vec![addr])),
            Err(_) => Resolve::HostPort(self.to_owned()),
        }
    }
}
impl ToSocketAddrs for str {}

impl Sealed for String {
    fn resolve(&self) -> Resolve {
        self.as_str().resolve()
    }
}
impl ToSocketAddrs for String {}

impl Sealed for (&str, u16) {
    fn resolve(&self) -> Resolve {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolve::Ready(Ok(vec![SocketAddr::new(ip, self.1)])),
            Err(_) => Resolve::Host(self.0.to_owned(), self.1),
        }
    }
}
impl ToSocketAddrs for (&str, u16) {}

impl Sealed for (String, u16) {
    fn resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).resolve()
    }
}
impl ToSocketAddrs for (String, u16) {}

/// Resolves `addr` to its socket addresses: at once for literal addresses, on the current
/// runtime's blocking pool for host names (`getaddrinfo` may block for seconds).
///
/// Fails with the resolver's error, with `InvalidInput` if a name resolved to no address, or
/// (for a name) if called outside a knote runtime.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// for addr in knote_net::lookup_host("localhost:80").await? {
///     println!("{addr}");
/// }
/// # Ok(()) }
/// ```
pub async fn lookup_host<A: ToSocketAddrs>(addr: A) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    resolve(&addr).await.map(Vec::into_iter)
}

/// The addresses of `addr`, none of them looked up on the calling thread.
pub(crate) async fn resolve<A: ToSocketAddrs + ?Sized>(addr: &A) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.resolve() {
        Resolve::Ready(addrs) => addrs?,
        Resolve::HostPort(query) => blocking_lookup(move || std_lookup(query.as_str())).await?,
        Resolve::Host(host, port) => {
            blocking_lookup(move || std_lookup((host.as_str(), port))).await?
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "knote-net: the address resolved to no socket address",
        ));
    }
    Ok(addrs)
}

fn std_lookup<A: std::net::ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    addr.to_socket_addrs().map(Iterator::collect)
}

async fn blocking_lookup(
    lookup: impl FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    let handle = Handle::try_current().map_err(|e| {
        io::Error::other(format!(
            "knote-net: resolving a host name needs a knote runtime's blocking pool: {e}"
        ))
    })?;
    handle
        .spawn_blocking(lookup)
        .await
        .map_err(|e| io::Error::other(format!("knote-net: the host name lookup failed: {e}")))?
}

/// Tries `op` on each address of `addrs` in turn: the first success, or the last error.
pub(crate) async fn each_addr<T, F, Fut>(addrs: Vec<SocketAddr>, mut op: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in addrs {
        match op(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    // `resolve` never returns an empty list.
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "knote-net: no address to try")
    }))
}
