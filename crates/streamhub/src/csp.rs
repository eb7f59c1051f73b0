//! What browsers are told to enforce on our pages: a Content-Security-Policy that fits what
//! the pages load, and who may frame them.
//!
//! The policy allows our own origin and nothing else: scripts and styles from `'self'`,
//! pictures as `data:` (the design note's viewer sets `img.src` to a JPEG data URL) and
//! `blob:` (our viewer decodes pictures from blobs), media as `blob:` (Media Source
//! Extensions), workers as `blob:`, and connections to the page's own host over HTTP and
//! websockets. Inline code is not allowed in general; the design note's pages
//! (`/seed/*.html`) have inline `<script>` blocks, `onclick` handlers and `style` attributes
//! and must keep working as written, so each page's own inline code is allowed by its
//! SHA-256 hash, computed here from the page the server is about to send (`'unsafe-hashes'`
//! for the attributes). A script an attacker manages to inject has another hash and does not
//! run. Vite's pages have no inline code, so theirs is `'self'` alone.
//!
//! Framing: a viewer page (`/viewer.html`, the seed viewers) may be framed by
//! `--frame-ancestors` (default `'self'`; embedding a viewer is a feature); every other page
//! (the streamer page, which holds a camera, and the dashboard, which takes the admin token)
//! by nobody.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Pages other sites may frame (`--frame-ancestors`): the ones that only show a stream.
const EMBEDDABLE: &[&str] = &["viewer.html", "seed/viewer.html", "seed/mse-viewer.html"];

/// `--frame-ancestors`: `'self'`, `'none'` alone, or hosts and schemes (`https:`,
/// `https://*.example.com`), separated by spaces. Anything that could end the directive or
/// the header (`;`, `,`, quotes, control characters) is refused.
pub(crate) fn parse_frame_ancestors(raw: &str) -> Result<String, String> {
    let sources: Vec<&str> = raw.split_whitespace().collect();
    if sources.is_empty() {
        return Err(String::from(
            "needs at least one source ('self', 'none' or an origin)",
        ));
    }
    for s in &sources {
        let keyword = matches!(*s, "'self'" | "'none'");
        let source = s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '.' | '_' | '~' | ':' | '/' | '*' | '+' | '%' | '[' | ']'
                )
        });
        if !keyword && !source {
            return Err(format!(
                "`{s}` is not a frame-ancestors source: use 'self', 'none', a scheme (https:) or an origin (https://example.com)"
            ));
        }
    }
    if sources.len() > 1 && sources.contains(&"'none'") {
        return Err(String::from("'none' must be the only source"));
    }
    Ok(sources.join(" "))
}

/// A page's inline code, as CSP source expressions (`'sha256-...'`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct InlineHashes {
    /// `<script>` blocks without `src`.
    scripts: Vec<String>,
    /// Event handler attributes (`onclick="..."`): need `'unsafe-hashes'`.
    handlers: Vec<String>,
    /// `<style>` blocks.
    styles: Vec<String>,
    /// `style="..."` attributes: need `'unsafe-hashes'`.
    style_attrs: Vec<String>,
}

fn hash_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The text of an attribute value as the browser sees it: the character references an
/// inline handler is likely to hold decoded (`&amp;`, `&quot;`, `&#39;`, ...). Other named
/// references stay as written, so such a handler gets a hash that does not match and is
/// blocked, as it would be with no hash at all.
fn decode_references(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Position of `needle` (ASCII, lower case) in `hay` from `from`, ignoring ASCII case.
fn find_ci(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    (from..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Attributes of a start tag (`inner`: what lies between the tag name and `>`), names in
/// lower case, values decoded.
fn attributes(inner: &str) -> Vec<(String, String)> {
    let b = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'/') {
            i += 1;
        }
        if start == i {
            break;
        }
        let name = inner[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let (vstart, vend) = match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = inner[i + 1..]
                        .find(char::from(q))
                        .map_or(b.len(), |e| i + 1 + e);
                    (i + 1, end)
                }
                _ => {
                    let end = inner[i..]
                        .find(|c: char| c.is_ascii_whitespace())
                        .map_or(b.len(), |e| i + e);
                    (i, end)
                }
            };
            value = decode_references(&inner[vstart..vend]);
            i = (vend + 1).min(b.len());
        }
        out.push((name, value));
    }
    out
}

/// Finds a page's inline code. A small scanner, not an HTML parser: it is only ever given
/// our own static pages (`web/dist`), whose markup is plain. Newlines are normalised first,
/// as the browser's parser does before it hashes anything. Browsers hash the UTF-8 of the
/// text as they decoded it, so these hashes hold only for a page served as UTF-8 (`web`
/// says `charset=utf-8`).
pub(crate) fn inline_hashes(html: &str) -> InlineHashes {
    let html = html.replace("\r\n", "\n").replace('\r', "\n");
    let mut found = InlineHashes::default();
    let mut pos = 0;
    while let Some(lt) = html[pos..].find('<').map(|i| pos + i) {
        if html[lt..].starts_with("<!--") {
            pos = html[lt..].find("-->").map_or(html.len(), |e| lt + e + 3);
            continue;
        }
        let name_len = html[lt + 1..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(html.len() - lt - 1);
        if name_len == 0 {
            pos = lt + 1;
            continue;
        }
        let name = html[lt + 1..lt + 1 + name_len].to_ascii_lowercase();
        // Quoted values may hold `>`: find the tag's end outside quotes.
        let mut quote = None;
        let end = html[lt..]
            .char_indices()
            .find_map(|(i, c)| match (quote, c) {
                (None, '"' | '\'') => {
                    quote = Some(c);
                    None
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    None
                }
                (None, '>') => Some(lt + i),
                _ => None,
            });
        let Some(end) = end else { break };
        let attrs = attributes(&html[lt + 1 + name_len..end]);
        for (attr, value) in &attrs {
            if attr.starts_with("on") && attr.len() > 2 {
                push_unique(&mut found.handlers, hash_source(value));
            } else if attr == "style" {
                push_unique(&mut found.style_attrs, hash_source(value));
            }
        }
        pos = end + 1;
        if name == "script" || name == "style" {
            let close = find_ci(&html, &format!("</{name}"), pos).unwrap_or(html.len());
            let body = &html[pos..close];
            if name == "style" {
                push_unique(&mut found.styles, hash_source(body));
            } else if !attrs.iter().any(|(a, _)| a == "src") {
                push_unique(&mut found.scripts, hash_source(body));
            }
            pos = close;
        }
    }
    found
}

/// Inline hashes by the page file's SHA-256: each page is scanned once per content.
fn cached_hashes(file_hash: [u8; 32], html: &[u8]) -> Arc<InlineHashes> {
    static CACHE: OnceLock<parking_lot::Mutex<HashMap<[u8; 32], Arc<InlineHashes>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().get(&file_hash) {
        return Arc::clone(found);
    }
    let found = Arc::new(inline_hashes(&String::from_utf8_lossy(html)));
    cache.lock().insert(file_hash, Arc::clone(&found));
    found
}

/// A `Host` header fit to go into the policy: a host name or address and a port, nothing
/// else (the header is the client's to choose).
fn clean_host(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then_some(host)
}

/// The policy for one page.
///
/// `host`: the request's `Host`. `'self'` covers websockets to the page's own host in the
/// CSP 3 browsers, but Safari long did not match `ws:`/`wss:` with it, so they are named
/// too.
pub(crate) fn policy(inline: &InlineHashes, host: Option<&str>, frame_ancestors: &str) -> String {
    let list = |base: &str, hashes: &[String], attr_hashes: &[String]| {
        let mut out = String::from(base);
        if !attr_hashes.is_empty() {
            out.push_str(" 'unsafe-hashes'");
        }
        for h in hashes.iter().chain(attr_hashes) {
            out.push(' ');
            out.push_str(h);
        }
        out
    };
    let script = list("'self'", &inline.scripts, &inline.handlers);
    let style = list("'self'", &inline.styles, &inline.style_attrs);
    let connect = match host.and_then(clean_host) {
        Some(h) => format!("'self' ws://{h} wss://{h}"),
        None => String::from("'self'"),
    };
    format!(
        "default-src 'self'; script-src {script}; style-src {style}; \
         img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors {frame_ancestors}"
    )
}

/// Adds the page headers to an HTML page's response: the policy, and `X-Frame-Options` for
/// browsers without `frame-ancestors` where it says the same thing (it cannot name other
/// origins, so an embeddable page with a list gets none).
pub(crate) fn page_headers(
    headers: &mut HeaderMap,
    path: &str,
    html: &[u8],
    file_hash: [u8; 32],
    host: Option<&str>,
    frame_ancestors: &str,
) {
    let ancestors = if EMBEDDABLE.contains(&path) {
        frame_ancestors
    } else {
        "'none'"
    };
    let inline = cached_hashes(file_hash, html);
    // Every part was checked (hosts, `--frame-ancestors`) or is ours; should a value still
    // not fit a header, the page goes out under the strictest policy rather than none.
    let csp = HeaderValue::from_str(&policy(&inline, host, ancestors))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    let xfo = match ancestors {
        "'none'" => Some("DENY"),
        "'self'" => Some("SAMEORIGIN"),
        _ => None,
    };
    if let Some(v) = xfo {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The design note's pages, as the server ships them (`web/public` is copied to
    /// `web/dist` as is).
    const SEED_STREAMER: &str = include_str!("../../../web/public/seed/streamer.html");
    const SEED_VIEWER: &str = include_str!("../../../web/public/seed/viewer.html");
    const SEED_MSE_VIEWER: &str = include_str!("../../../web/public/seed/mse-viewer.html");

    #[test]
    fn hashes_are_those_browsers_compute() {
        // Known values: echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            hash_source("alert(1)"),
            "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
        );
        let found = inline_hashes(
            "<!-- <script>no</script> --><p style=\"color:red\" onclick='go(&quot;x&quot;)'>\
             <SCRIPT>alert(1)</script><script src=\"/a.js\"></script><style>p{}</style>",
        );
        assert_eq!(found.scripts, [hash_source("alert(1)")]);
        assert_eq!(found.handlers, [hash_source("go(\"x\")")]);
        assert_eq!(found.style_attrs, [hash_source("color:red")]);
        assert_eq!(found.styles, [hash_source("p{}")]);
    }

    #[test]
    fn newlines_are_normalised_before_hashing() {
        let found = inline_hashes("<script>\r\na();\r\n</script>");
        assert_eq!(found.scripts, [hash_source("\na();\n")]);
    }

    #[test]
    fn a_tag_with_a_quoted_angle_bracket_is_read_whole() {
        let found = inline_hashes("<button onclick=\"a > b && go()\">x</button>");
        assert_eq!(found.handlers, [hash_source("a > b && go()")]);
    }

    /// The seed pages' inline code is allowed, exactly: each script block, handler and style
    /// attribute they hold has its hash in the policy, and nothing else inline is allowed.
    #[test]
    fn the_seed_pages_inline_code_is_allowed_by_hash() {
        let streamer = inline_hashes(SEED_STREAMER);
        assert_eq!(streamer.scripts.len(), 1, "one inline script block");
        // login(), createAndStartStream(), stopStream()
        assert_eq!(streamer.handlers.len(), 3, "{streamer:?}");
        assert_eq!(streamer.style_attrs.len(), 1, "display:none (twice)");
        let block = SEED_STREAMER
            .split("<script>")
            .nth(1)
            .and_then(|s| s.split("</script>").next())
            .expect("inline script");
        let p = policy(&streamer, Some("example.org:3000"), "'none'");
        assert!(p.contains(&hash_source(block)), "{p}");
        assert!(p.contains(&hash_source("login()")), "{p}");
        assert!(
            p.contains("script-src 'self' 'unsafe-hashes' 'sha256-"),
            "{p}"
        );
        assert!(
            !p.contains("unsafe-inline") && !p.contains("unsafe-eval"),
            "{p}"
        );
        assert!(p.contains("connect-src 'self' ws://example.org:3000 wss://example.org:3000"));
        for page in [SEED_VIEWER, SEED_MSE_VIEWER] {
            let found = inline_hashes(page);
            assert_eq!(found.scripts.len(), 1);
            assert!(found.handlers.is_empty());
            assert_eq!(found.style_attrs.len(), 1);
        }
    }

    #[test]
    fn a_page_without_inline_code_allows_none() {
        let p = policy(
            &inline_hashes("<script type=\"module\" src=\"/assets/x.js\"></script>"),
            None,
            "'self'",
        );
        assert!(p.contains("script-src 'self'; style-src 'self';"), "{p}");
        assert!(p.contains("connect-src 'self';"), "{p}");
        assert!(p.ends_with("frame-ancestors 'self'"), "{p}");
    }

    #[test]
    fn a_hostile_host_header_stays_out_of_the_policy() {
        let p = policy(&InlineHashes::default(), Some("x; script-src *"), "'none'");
        assert!(p.contains("connect-src 'self';") && !p.contains('*'), "{p}");
    }

    #[test]
    fn frame_ancestors_are_checked() {
        assert_eq!(parse_frame_ancestors("'self'").as_deref(), Ok("'self'"));
        assert_eq!(
            parse_frame_ancestors("  'self'   https://*.example.com https: ").as_deref(),
            Ok("'self' https://*.example.com https:")
        );
        assert_eq!(parse_frame_ancestors("'none'").as_deref(), Ok("'none'"));
        for bad in [
            "",
            "   ",
            "'self'; script-src *",
            "https://a.example,https://b.example",
            "'unsafe-inline'",
            "self'",
            "'none' 'self'",
            "https://exa\u{e9}mple.com",
            "a\u{7f}b",
        ] {
            assert!(parse_frame_ancestors(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_viewer_pages_may_be_framed() {
        let headers = |path: &str, ancestors: &str| {
            let mut h = HeaderMap::new();
            page_headers(&mut h, path, b"<p>", [0; 32], Some("h:1"), ancestors);
            let csp = h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ascii")
                .to_owned();
            let xfo = h
                .get(header::X_FRAME_OPTIONS)
                .map(|v| v.as_bytes().to_vec());
            (csp, xfo)
        };
        let (csp, xfo) = headers("viewer.html", "'self'");
        assert!(csp.ends_with("frame-ancestors 'self'"), "{csp}");
        assert_eq!(xfo.as_deref(), Some(&b"SAMEORIGIN"[..]));
        let (csp, xfo) = headers("seed/viewer.html", "https://blog.example");
        assert!(
            csp.ends_with("frame-ancestors https://blog.example"),
            "{csp}"
        );
        assert_eq!(xfo, None, "X-Frame-Options cannot name another origin");
        for page in [
            "streamer.html",
            "dashboard.html",
            "index.html",
            "seed/streamer.html",
        ] {
            let (csp, xfo) = headers(page, "https://blog.example");
            assert!(csp.ends_with("frame-ancestors 'none'"), "{page}: {csp}");
            assert_eq!(xfo.as_deref(), Some(&b"DENY"[..]), "{page}");
        }
    }
}
