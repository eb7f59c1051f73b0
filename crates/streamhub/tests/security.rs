//! Safe defaults for a public server (issue 14, hole 6), each written as the attack the old
//! server let through. Needs the built pages (`cd web && npm run build`; `scripts/test.sh`
//! builds them first).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{http_raw, http_status, start, start_on};
use sha2::{Digest, Sha256};
use streamhub::admin_token::{Action, command};

const BIN: &str = env!("CARGO_BIN_EXE_streamhub");

/// The admin routes. The feed (`/api/dashboard/events`) streams when authorized, so it is
/// only ever checked for a refusal.
const ADMIN: [&str; 3] = ["/api/sessions", "/api/dashboard", "/api/dashboard/events"];

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

/// The attack: from anywhere on the network, `GET /api/sessions` (every past stream: keys,
/// streamers, audiences) and the dashboard's data. The old server, with its defaults (bound
/// to 0.0.0.0, no `--admin-token`), answered 200 to anyone. Now a server listening beyond
/// loopback with no token makes one, stores it, and refuses requests without it; rotating it
/// (`streamhub admin-token --rotate`) shuts out the old one while the server runs.
#[tokio::test]
async fn a_public_server_without_admin_token_refuses_the_admin_routes() {
    let server = start_on("0.0.0.0:0", |_| {}).await;
    for path in ADMIN {
        assert_eq!(
            http_status(server.addr, path, None).await,
            401,
            "{path} without a token"
        );
        assert_eq!(
            http_status(server.addr, path, Some("at_guess")).await,
            401,
            "{path} with a wrong token"
        );
    }
    let db = server.dir.path().join("streamhub.db");
    let token = command(&db, Action::Show).await.unwrap().token.unwrap();
    for path in ["/api/sessions", "/api/dashboard"] {
        assert_eq!(
            http_status(server.addr, path, Some(&token)).await,
            200,
            "{path}"
        );
    }
    // The rest stays open: pages, the stream list, health, metrics.
    for path in ["/api/streams", "/healthz", "/metrics"] {
        assert_eq!(http_status(server.addr, path, None).await, 200, "{path}");
    }

    // Rotated while it runs: the new token works and the old one stops working, no restart.
    let rotated = command(&db, Action::Rotate).await.unwrap().token.unwrap();
    assert_ne!(rotated, token);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(server.addr, "/api/sessions", Some(&rotated)).await != 200 {
        assert!(Instant::now() < deadline, "the rotated token never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        http_status(server.addr, "/api/sessions", Some(&token)).await,
        401
    );

    // Restarted on loopback, the stored token still applies: once made, it never silently
    // opens up again.
    let dir = server.stop_keeping_db().await;
    let server = common::start_in(dir, |_| {}).await;
    assert_eq!(http_status(server.addr, "/api/sessions", None).await, 401);
    assert_eq!(
        http_status(server.addr, "/api/sessions", Some(&rotated)).await,
        200
    );
    server.stop().await;

    // --admin-token wins over everything, and a loopback-only server with no token anywhere
    // stays open (a developer's machine, unchanged).
    let server = start_on("0.0.0.0:0", |c| c.admin_token = Some(String::from("mine"))).await;
    assert_eq!(
        http_status(server.addr, "/api/sessions", Some("mine")).await,
        200
    );
    assert_eq!(http_status(server.addr, "/api/sessions", None).await, 401);
    server.stop().await;
    let server = start(|_| {}).await;
    assert_eq!(http_status(server.addr, "/api/sessions", None).await, 200);
    server.stop().await;
}

/// Lines the process prints on stdout, as they come.
fn stdout_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn streamhub(args: &[&str], db: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--db")
        .arg(db)
        .env_remove("STREAMHUB_ADMIN_TOKEN")
        .env_remove("STREAMHUB_CONFIG")
        .env_remove("STREAMHUB_DB")
        .env_remove("STREAMHUB_BIND");
    cmd
}

/// Starts `streamhub serve --bind 0.0.0.0:0`; its loopback address, and stdout's lines.
fn serve_public(
    db: &std::path::Path,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    mpsc::Receiver<String>,
) {
    let mut child = streamhub(&["serve", "--bind", "0.0.0.0:0"], db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let first = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    let port = first
        .strip_prefix("streamhub listening on http://0.0.0.0:")
        .unwrap_or_else(|| panic!("{first:?}"));
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    (child, addr, lines)
}

/// The real binary: the token is printed once, on the first start, and `streamhub
/// admin-token` shows and rotates it.
#[tokio::test]
async fn the_binary_prints_a_new_token_once_and_the_subcommand_shows_and_rotates_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let (mut child, addr, lines) = serve_public(&db);
    let printed = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(printed.starts_with("streamhub admin token"), "{printed:?}");
    let token = printed.rsplit(' ').next().unwrap().to_owned();
    assert!(token.starts_with("at_"), "{printed:?}");
    assert_eq!(http_status(addr, "/api/sessions", None).await, 401);
    assert_eq!(http_status(addr, "/api/sessions", Some(&token)).await, 200);
    child.kill().unwrap();
    child.wait().unwrap();

    // Shown again by the subcommand, and not printed by the next start.
    let shown = streamhub(&["admin-token"], &db).output().unwrap();
    assert!(shown.status.success());
    assert_eq!(String::from_utf8_lossy(&shown.stdout), format!("{token}\n"));
    let (mut child, addr, lines) = serve_public(&db);
    assert_eq!(http_status(addr, "/api/sessions", Some(&token)).await, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().all(|l| !l.contains(&token)),
        "printed again: {rest:?}"
    );

    // Rotated: a new one, shown from then on.
    let rotated = streamhub(&["admin-token", "--rotate"], &db)
        .output()
        .unwrap();
    assert!(rotated.status.success());
    let new = String::from_utf8_lossy(&rotated.stdout).trim().to_owned();
    assert!(new.starts_with("at_") && new != token, "{new:?}");
    let shown = streamhub(&["admin-token"], &db).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), new);

    // Cleared, then nothing to show; no database, an error that says so.
    let cleared = streamhub(&["admin-token", "--clear"], &db)
        .output()
        .unwrap();
    assert!(cleared.status.success());
    let none = streamhub(&["admin-token"], &db).output().unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no admin token is stored"));
    let missing = streamhub(&["admin-token"], &dir.path().join("nope.db"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database at"));
    assert!(
        !dir.path().join("nope.db").exists(),
        "showing creates no file"
    );
}
