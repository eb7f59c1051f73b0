//! `--allowed-origins`: which web origins may open a Socket.IO connection or a media channel.
//!
//! Off by default, so the design note's pages work from wherever they are served. When set, a
//! browser request to `/socket.io/` or `/media` whose `Origin` is neither the server's own (its
//! `Host`) nor in the list is refused with `403 FORBIDDEN`. Requests without an `Origin`
//! (non-browser clients, which can send any header anyway) pass: the check is what stops
//! another web site from using a visitor's browser against this server.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use streamhub_protocol::ErrorCode;

use crate::api_error::error;
use crate::hub::Hub;

/// The paths the check guards: the Socket.IO endpoint and the media channel.
fn guarded(path: &str) -> bool {
    path.starts_with("/socket.io/") || path == streamhub_protocol::media_channel::PATH
}

/// Whether a request with `origin` (its `Origin` header) to a server reached as `host` (its
/// `Host` header) may go on, given the configured origins (`None`: no check).
pub(crate) fn allowed(origin: Option<&str>, host: Option<&str>, list: Option<&[String]>) -> bool {
    let (Some(list), Some(origin)) = (list, origin) else {
        return true;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let same_site = origin
        .split_once("://")
        .is_some_and(|(_, authority)| host.is_some_and(|h| h.eq_ignore_ascii_case(authority)));
    same_site || list.contains(&origin)
}

/// The middleware (outermost, before Socket.IO sees the request).
pub(crate) async fn check(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let list = hub.config.allowed_origins.as_deref();
    if list.is_some() && guarded(req.uri().path()) {
        let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let origin = text(header::ORIGIN);
        if !allowed(origin, text(header::HOST), list) {
            hub.counters.refused(ErrorCode::Forbidden);
            let origin = origin.unwrap_or_default().to_owned();
            tracing::debug!(origin, "refused: origin not in --allowed-origins");
            return error(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                &format!("pages from {origin} may not connect to this server (--allowed-origins)"),
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_or_same_origins_pass_once_a_list_is_set() {
        let list = vec![String::from("https://embed.example")];
        let list = Some(list.as_slice());
        let host = Some("live.example:3000");
        assert!(
            allowed(Some("https://evil.example"), host, None),
            "no list: open"
        );
        assert!(allowed(None, host, list), "no Origin: not a browser");
        assert!(allowed(Some("https://embed.example"), host, list));
        assert!(
            allowed(Some("HTTPS://Embed.example/"), host, list),
            "case and slash"
        );
        assert!(
            allowed(Some("http://live.example:3000"), host, list),
            "same origin"
        );
        assert!(!allowed(Some("https://evil.example"), host, list));
        assert!(
            !allowed(Some("null"), host, list),
            "sandboxed or file pages"
        );
        assert!(!allowed(Some("https://embed.example.evil"), host, list));
        assert!(guarded("/socket.io/") && guarded("/media") && !guarded("/viewer.html"));
    }
}
