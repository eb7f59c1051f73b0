//! `--http-redirect`: a plain-HTTP listener whose every answer is a redirect to the same path
//! over HTTPS, so `http://host/` typed on a phone lands on the server. It is served by the
//! accept loop like the main port (its own per-address count, the header-read timeout).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header, uri::Authority};
use axum::response::{IntoResponse, Response};

/// Where the redirects point: the HTTPS port, and a host for requests without `Host`.
#[derive(Debug)]
struct Target {
    https_port: u16,
    /// `None` when the server listens on every address (no one address to name).
    fallback_host: Option<String>,
}

/// The redirecting app, for `https` bound at `https` (its port is where browsers are sent).
pub(crate) fn app(https: SocketAddr) -> axum::Router {
    let fallback_host = (!https.ip().is_unspecified()).then(|| match https {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    });
    axum::Router::new()
        .fallback(to_https)
        .with_state(Arc::new(Target {
            https_port: https.port(),
            fallback_host,
        }))
}

/// 308 Permanent Redirect to `https://HOST[:PORT]/path?query`, HOST from the request's `Host`
/// (its port dropped: the HTTPS port replaces it). 308, unlike 301, keeps the method and body.
async fn to_https(State(target): State<Arc<Target>>, headers: HeaderMap, uri: Uri) -> Response {
    let from_header = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
        .map(|a| a.host().to_owned());
    let Some(host) = from_header.or_else(|| target.fallback_host.clone()) else {
        return (
            StatusCode::BAD_REQUEST,
            "this port redirects to HTTPS and needs the Host header to say where\n",
        )
            .into_response();
    };
    let port = match target.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, value)],
            format!("moved to {location}\n"),
        )
            .into_response(),
        // The parts were parsed from valid header and URI text; kept total all the same.
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn location(https: &str, host: Option<&str>, path: &str) -> (u16, Option<String>) {
        let mut req = axum::http::Request::get(path);
        if let Some(h) = host {
            req = req.header(header::HOST, h);
        }
        let res = app(https.parse().expect("addr"))
            .oneshot(req.body(axum::body::Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let loc = res
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (res.status().as_u16(), loc)
    }

    #[tokio::test]
    async fn every_request_goes_to_the_https_port_keeping_its_path() {
        assert_eq!(
            location("0.0.0.0:3443", Some("cam.local:8080"), "/viewer.html?k=1").await,
            (
                308,
                Some(String::from("https://cam.local:3443/viewer.html?k=1"))
            )
        );
        assert_eq!(
            location("0.0.0.0:443", Some("live.example"), "/").await,
            (308, Some(String::from("https://live.example/")))
        );
        assert_eq!(
            location("0.0.0.0:3443", Some("[fe80::1]:80"), "/a").await,
            (308, Some(String::from("https://[fe80::1]:3443/a")))
        );
        assert_eq!(
            location("192.0.2.7:3443", None, "/a").await,
            (308, Some(String::from("https://192.0.2.7:3443/a")))
        );
        assert_eq!(location("0.0.0.0:3443", None, "/a").await, (400, None));
        assert_eq!(
            location("0.0.0.0:3443", Some("a b"), "/a").await,
            (400, None),
            "a Host that is no host name"
        );
    }
}
