//! Network-level failure classification shared by every engine.

use std::io;

use crate::{CheckFailure, FailureKind};

pub(crate) fn socket_failure(e: &io::Error, host: &str, port: u16) -> CheckFailure {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => FailureKind::Refused,
        io::ErrorKind::TimedOut => FailureKind::Timeout,
        _ => FailureKind::Unreachable,
    };
    let what = match kind {
        FailureKind::Refused => "connection refused (nothing listens on that port)",
        FailureKind::Timeout => "connection timed out",
        _ => "host unreachable",
    };
    CheckFailure { kind, message: format!("{host}:{port}: {what} ({e})") }
}

/// Whether a TLS error (a `rustls::Error`) is anywhere in the source chain.
pub(crate) fn has_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    find_tls_error(e).is_some()
}

/// The first `rustls::Error` in the source chain (why a handshake failed: an unknown issuer, a name that
/// does not match). `io::Error` hides its payload from `source()`, so its inner error is inspected too.
pub(crate) fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<io::Error>()
            && let Some(t) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// The first `io::Error` in the chain, if any.
pub(crate) fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}
