//! Free loopback ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// A loopback address whose port was free a moment ago: bound, read, released.
///
/// Another process may take the port before the caller binds it; prefer handing a service a
/// listener bound to port 0 when the service runs in-process. Use this for child processes, which
/// must be told their address, and for an address where nothing listens.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// The port of [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_address_is_on_loopback_and_can_be_bound_again() {
        let addr = free_addr();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        TcpListener::bind(addr).expect("the port is free once released");
    }

    #[test]
    fn nothing_listens_on_a_free_address() {
        let addr = free_addr();
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
