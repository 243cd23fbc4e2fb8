//! What the three families' handlers read off a request alike: the caller, the base URL for
//! `links`, the `envelope` and `pretty` flags, the `username` filter.

use poem::Request;

use crate::backend::Caller;
use crate::params::Flag;
use invites_domain::Error;

/// `http://host` as the client addressed us, for `links`.
pub(crate) fn base_url(req: &Request) -> String {
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() < 256 && !h.contains(['/', ' ', '"']))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The caller of a request: its principal and the address it came from.
pub(crate) fn caller_from(principal: invites_domain::Principal, req: &Request) -> Caller {
    Caller {
        principal,
        remote_addr: req
            .extensions()
            .get::<crate::guard::ClientAddr>()
            .and_then(|c| c.0)
            .or_else(|| req.remote_addr().as_socket_addr().map(|a| a.ip()))
            .map(|ip| ip.to_string()),
    }
}

/// Checks the `envelope` and `pretty` flags (the edge applies them).
pub(crate) fn flags(envelope: &Option<Flag>, pretty: &Option<Flag>) -> Result<(), Error> {
    Flag::value(envelope, "envelope")?;
    Flag::value(pretty, "pretty")?;
    Ok(())
}

/// Checks the optional `username` filter: the contract types it as an email address.
pub(crate) fn username_filter(username: &Option<String>) -> Result<Option<&str>, Error> {
    match username.as_deref() {
        Some(u) if !invites_domain::invitation::is_valid_username(u) => Err(Error::new(
            invites_domain::ErrorCode::InvalidAttribute,
            "Query parameter username must be an email address.",
        )
        .with_parameter("username", u)
        .with_field("username", "must be an email address")),
        other => Ok(other),
    }
}
