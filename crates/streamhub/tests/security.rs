//! Safe defaults for a public server (issue 14, hole 6), each written as the attack the old
//! server let through. Needs the built pages (`cd web && npm run build`; `scripts/test.sh`
//! builds them first).

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::{http_raw, start};
use sha2::{Digest, Sha256};

/// The response's head (lower-cased names) and body.
async fn fetch(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let text = http_raw(addr, path).await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The attack: another site frames the streamer page or the dashboard and tricks a click
/// (clickjacking), or gets a script into a page. The old server sent no policy, so any site
/// could frame any page and any inline script ran. Now every page carries a policy: only
/// viewer pages may be framed, and only by `--frame-ancestors`; no page allows inline code
/// except, on the design note's pages, the exact code they ship (by hash).
#[tokio::test]
async fn pages_refuse_framing_and_inline_code_they_do_not_ship() {
    let server = start(|c| c.frame_ancestors = String::from("'self' https://blog.example")).await;
    for (path, ancestors, xfo) in [
        ("/", "'none'", Some("DENY")),
        ("/streamer.html", "'none'", Some("DENY")),
        ("/dashboard.html", "'none'", Some("DENY")),
        ("/seed/streamer.html", "'none'", Some("DENY")),
        ("/viewer.html", "'self' https://blog.example", None),
        ("/seed/viewer.html", "'self' https://blog.example", None),
        ("/seed/mse-viewer.html", "'self' https://blog.example", None),
    ] {
        let (status, headers, _) = fetch(server.addr, path).await;
        assert_eq!(
            status, 200,
            "{path}: build the pages first (cd web && npm run build)"
        );
        let csp = header(&headers, "content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
        assert!(
            csp.ends_with(&format!("frame-ancestors {ancestors}")),
            "{path}: {csp}"
        );
        assert_eq!(header(&headers, "x-frame-options"), xfo, "{path}");
        // The hashes are of the UTF-8 text: a page decoded as anything else (the seed pages
        // have no <meta charset>) would have other hashes and its scripts would be blocked.
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        for needed in [
            "default-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(needed), "{path}: {needed} missing from {csp}");
        }
        // Websockets back to the page's own host (Socket.IO, the media channel).
        let host = server.addr.to_string();
        assert!(
            csp.contains(&format!("connect-src 'self' ws://{host} wss://{host}")),
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains('*'),
            "{path}: {csp}"
        );
    }

    // Vite's pages load everything from files: no inline code at all.
    let (_, headers, _) = fetch(server.addr, "/viewer.html").await;
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'; style-src 'self';"),
        "{csp}"
    );

    // The design note's streamer page keeps working as written: its inline script and its
    // three onclick handlers are allowed by hash; a script it does not ship is not.
    let (_, headers, body) = fetch(server.addr, "/seed/streamer.html").await;
    let csp = header(&headers, "content-security-policy").unwrap();
    let script = body
        .split("<script>")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .unwrap();
    for code in [script, "login()", "createAndStartStream()", "stopStream()"] {
        assert!(
            csp.contains(&sha256_source(code)),
            "{code:?} not allowed: {csp}"
        );
    }
    assert!(
        csp.contains("script-src 'self' 'unsafe-hashes' 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains(&sha256_source("alert(document.cookie)")));
    assert!(
        !script.is_ascii(),
        "the fixture's script has non-ASCII text (what the charset is for)"
    );

    // The default: a viewer page only on our own pages.
    server.stop().await;
    let server = start(|_| {}).await;
    let (_, headers, _) = fetch(server.addr, "/viewer.html").await;
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.ends_with("frame-ancestors 'self'"), "{csp}");
    assert_eq!(header(&headers, "x-frame-options"), Some("SAMEORIGIN"));
    server.stop().await;
}
