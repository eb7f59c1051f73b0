//! The web pages: `web/dist` (built by Vite from `web/`) inside the binary.
//!
//! Release builds embed every file, so one binary serves everything. Debug builds read the
//! same folder from disk at run time (rust-embed's default), so a `vite build` shows up without
//! recompiling Rust. A build made without `web/dist` still runs and says how to get the pages.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "$CARGO_MANIFEST_DIR/../../web/dist"]
#[allow_missing = true]
struct Assets;

/// Where the seed's `<script src="/socket.io/socket.io.js">` is answered from.
pub(crate) const CLIENT_BUNDLE: &str = "socket.io/socket.io.js";

/// What a page's headers depend on besides the page: the request's `Host` (for the
/// policy's websocket sources) and `--frame-ancestors`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageContext<'a> {
    pub(crate) host: Option<&'a str>,
    pub(crate) frame_ancestors: &'a str,
}

/// Serves `path` (no leading slash) from the embedded build, `None` when absent. HTML pages
/// get their Content-Security-Policy and framing headers (`csp`) from `page`, and `head`
/// (markup without code: the viewer's link-preview tags) inserted before `</head>`.
fn asset(path: &str, page: Option<PageContext<'_>>, head: Option<&str>) -> Option<Response> {
    let path = if path.is_empty() { "index.html" } else { path };
    let file = Assets::get(path)?;
    let mime = file.metadata.mimetype();
    let html = mime.starts_with("text/html");
    // Vite puts content hashes in assets/ names: those never change. Pages must revalidate.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = axum::http::HeaderMap::new();
    if let (true, Some(ctx)) = (html, page) {
        crate::csp::page_headers(
            &mut headers,
            path,
            &file.data,
            file.metadata.sha256_hash(),
            ctx.host,
            ctx.frame_ancestors,
        );
    }
    // The policy's hashes were computed from the page as built: the inserted tags hold no
    // code (every value escaped, `crate::preview`), so they leave the inline code unchanged.
    let body = match head.filter(|_| html) {
        Some(head) => insert_head(&file.data, head),
        None => file.data.into_owned(),
    };
    let mut res = Response::new(Body::from(body));
    *res.headers_mut() = headers;
    let headers = res.headers_mut();
    // Every text file of the build is UTF-8, and the design note's pages do not say so
    // (no `<meta charset>`): without the charset a browser decodes them as windows-1252, and
    // their inline scripts (Spanish comments) would not match the hashes in their policy.
    let textual = mime.starts_with("text/") || mime == "application/javascript";
    let mime = if textual && !mime.contains("charset") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    if let Ok(v) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(res)
}

/// `html` with `head` inserted before its `</head>` (or left as it is without one).
fn insert_head(html: &[u8], head: &str) -> Vec<u8> {
    let Some(at) = html
        .windows(7)
        .position(|w| w.eq_ignore_ascii_case(b"</head>"))
    else {
        return html.to_vec();
    };
    let mut out = Vec::with_capacity(html.len() + head.len());
    out.extend_from_slice(&html[..at]);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&html[at..]);
    out
}

/// Whether the pages were built into (or next to) this binary.
pub(crate) fn available() -> bool {
    Assets::get("index.html").is_some()
}

/// The socket.io client bundle for seed pages, taken from the npm package at build time.
pub(crate) async fn client_bundle() -> Response {
    asset(CLIENT_BUNDLE, None, None).unwrap_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "socket.io client bundle missing: build the web pages (./scripts/run.sh does)",
        )
            .into_response()
    })
}

/// Page or asset for any other GET path; `head` goes into an HTML page's `<head>`.
pub(crate) fn page(uri: &Uri, ctx: PageContext<'_>, head: Option<&str>) -> Option<Response> {
    let path = uri.path().trim_start_matches('/');
    if path.contains("..") {
        return None;
    }
    asset(path, Some(ctx), head).or_else(|| {
        (path.is_empty() && !available()).then(|| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "StreamHub is running, but this binary was built without its web pages. \
                 Run ./scripts/run.sh, which builds web/ first.",
            )
                .into_response()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_markup_goes_before_the_end_of_head() {
        let html = b"<html><head><title>t</title></HEAD><body></body></html>";
        let out = insert_head(html, "<meta name=x>");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "<html><head><title>t</title><meta name=x></HEAD><body></body></html>"
        );
        assert_eq!(insert_head(b"<p>no head</p>", "<meta>"), b"<p>no head</p>");
    }
}
