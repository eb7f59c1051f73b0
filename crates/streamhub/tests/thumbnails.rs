//! Thumbnails (`stream:thumbnail`, issue 15 part 4) on the real server: what is refused and
//! why, the rate limit, `GET /api/streams/{key}/thumbnail` with its ETag, 304 and 404, the
//! metrics, and the viewer page's link-preview tags. The link-preview test needs the built
//! pages (`cd web && npm run build`; `scripts/test.sh` builds them first). Cluster mode is
//! covered by compat `thumbnails.test.js` (a real redis-server and two nodes).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestResult, start};
use serde_json::{Value, json};
use streamhub_bench::{Client, ProtocolError};
use streamhub_protocol::events;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small JPEG as browsers' `canvas.toBlob('image/jpeg')` starts one; `fill` varies it.
fn jpeg(len: usize, fill: u8) -> Vec<u8> {
    let mut v = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ];
    v.resize(len - 2, fill);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// `GET path` with extra request header lines, the body as bytes.
async fn get(addr: SocketAddr, path: &str, extra: &str) -> Http {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.unwrap();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Http {
        status: head[9..12].parse().unwrap(),
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

/// Sends a thumbnail; the ack's payload, or the refusal's code.
async fn send(c: &mut Client, key: &str, data: Vec<u8>) -> Result<Value, String> {
    let ack = c
        .emit_binary_ack(
            events::STREAM_THUMBNAIL,
            json!({"streamKey": key}),
            "data",
            data,
        )
        .await
        .unwrap();
    match ack.into_ok() {
        Ok(v) => Ok(v),
        Err(ProtocolError::Server { code, .. }) => Err(code),
        Err(e) => panic!("{e}"),
    }
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing"))
}

#[tokio::test]
async fn thumbnails_are_checked_kept_served_and_forgotten() -> TestResult {
    let server = start(|c| c.max_thumbnail_bytes = 4096).await;
    let addr = server.addr;
    let path = |key: &str| format!("/api/streams/{key}/thumbnail");

    // Nothing before a registration, and nothing for a stream that does not exist.
    let mut stranger = Client::connect(&server.target).await?;
    assert_eq!(
        send(&mut stranger, "sk_whatever", jpeg(100, 0)).await,
        Err("NOT_REGISTERED".into())
    );
    let (mut streamer, key) = Client::streamer(&server.target, "Ana").await?;
    streamer
        .request(events::STREAM_START, &json!({"streamKey": key}))
        .await?;
    let none = get(addr, &path(&key), "").await;
    assert_eq!(none.status, 404);
    assert_eq!(none.json()["error"]["code"], "NOT_FOUND");
    assert_eq!(
        send(&mut streamer, "sk_nope", jpeg(100, 0)).await,
        Err("STREAM_NOT_FOUND".into())
    );

    // Only JPEGs, only binary, only within --max-thumbnail-bytes; a refusal is also an
    // `error` event.
    assert_eq!(
        send(&mut streamer, &key, b"\x89PNG\r\n\x1a\n0000".to_vec()).await,
        Err("INVALID_THUMBNAIL".into())
    );
    for code in ["STREAM_NOT_FOUND", "INVALID_THUMBNAIL"] {
        let err = streamer.wait_for(events::ERROR).await?;
        assert_eq!(err.args[0]["event"], "stream:thumbnail");
        assert_eq!(err.args[0]["code"], code);
    }
    let text = streamer
        .emit_ack(
            events::STREAM_THUMBNAIL,
            &json!({"streamKey": key, "data": "/9j/4AAQSkZJRgABAQ"}),
        )
        .await?
        .into_ok();
    assert!(
        matches!(&text, Err(ProtocolError::Server { code, .. }) if code == "INVALID_THUMBNAIL"),
        "{text:?}"
    );
    assert_eq!(
        send(&mut streamer, &key, jpeg(4097, 1)).await,
        Err("THUMBNAIL_TOO_LARGE".into())
    );
    let malformed = streamer
        .emit_ack(events::STREAM_THUMBNAIL, &json!({"streamKey": 5}))
        .await?
        .into_ok();
    assert!(
        matches!(&malformed, Err(ProtocolError::Server { code, .. }) if code == "INVALID_PAYLOAD"),
        "{malformed:?}"
    );
    assert_eq!(get(addr, &path(&key), "").await.status, 404, "nothing kept");

    // Accepted: the ack's ETag is the endpoint's.
    let first = jpeg(4096, 1);
    let ack = send(&mut streamer, &key, first.clone()).await.unwrap();
    let etag = ack["etag"].as_str().unwrap().to_owned();
    let got = get(addr, &path(&key), "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("image/jpeg"));
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    assert_eq!(got.header("cache-control"), Some("public, max-age=5"));
    assert_eq!(got.body, first);
    let again = get(addr, &path(&key), &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // One a second per stream: the next, at once, is refused and the first stays.
    assert_eq!(
        send(&mut streamer, &key, jpeg(200, 2)).await,
        Err("RATE_LIMITED".into())
    );
    assert_eq!(get(addr, &path(&key), "").await.body, first);

    // Nobody else's stream: a viewer, and a second streamer.
    let mut viewer = Client::viewer(&server.target, "Vi").await?;
    viewer.join(&key).await?;
    assert_eq!(
        send(&mut viewer, &key, jpeg(200, 3)).await,
        Err("NOT_OWNER".into())
    );
    let (mut other, _) = Client::streamer(&server.target, "Bo").await?;
    assert_eq!(
        send(&mut other, &key, jpeg(200, 3)).await,
        Err("NOT_OWNER".into())
    );

    // A second later, a new one replaces it: the old ETag is no longer current.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = jpeg(300, 4);
    let ack = send(&mut streamer, &key, second.clone()).await.unwrap();
    assert_ne!(ack["etag"], etag.as_str());
    let changed = get(addr, &path(&key), &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body, second);

    let metrics = String::from_utf8(get(addr, "/metrics", "").await.body).unwrap();
    assert_eq!(metric(&metrics, "streamhub_thumbnails_accepted_total"), 2);
    for (reason, n) in [
        ("not_jpeg", 2),
        ("too_large", 1),
        ("rate_limited", 1),
        ("not_owner", 4),
        ("full", 0),
    ] {
        let series = format!("streamhub_thumbnails_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &series), n, "{series}");
    }
    assert_eq!(metric(&metrics, "streamhub_thumbnail_bytes"), 300);
    assert_eq!(
        metric(
            &metrics,
            "streamhub_errors_total{code=\"THUMBNAIL_TOO_LARGE\"}"
        ),
        1
    );

    // The stream ends: its thumbnail goes with it.
    streamer
        .request(events::STREAM_END, &json!({"streamKey": key}))
        .await?;
    let gone = get(addr, &path(&key), "").await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["error"]["code"], "NOT_FOUND");
    let metrics = String::from_utf8(get(addr, "/metrics", "").await.body).unwrap();
    assert_eq!(metric(&metrics, "streamhub_thumbnail_bytes"), 0);
    let bad_key = get(addr, "/api/streams/no%20such/thumbnail", "").await;
    assert_eq!(bad_key.status, 404);
    assert_eq!(bad_key.json()["error"]["code"], "STREAM_NOT_FOUND");
    server.stop().await;
    Ok(())
}

/// Crawlers run no scripts: `/viewer.html?stream=KEY` itself carries the stream's title,
/// description and thumbnail (absolute URL), escaped, and its policy still fits the page.
#[tokio::test]
async fn the_viewer_page_carries_its_streams_link_preview() -> TestResult {
    let server = start(|_| {}).await;
    let addr = server.addr;
    let mut streamer = Client::connect(&server.target).await?;
    streamer
        .register("Ana", streamhub_protocol::client::Role::Streamer)
        .await?;
    streamer.wait_for(events::STREAM_CREATED).await?;
    let title = r#"Tea & "talk" </title><script>alert(1)</script>"#;
    let created = streamer
        .request(events::STREAM_CREATE, &json!({"title": title}))
        .await?;
    let key = created["stream"]["streamKey"].as_str().unwrap().to_owned();
    streamer
        .request(events::STREAM_START, &json!({"streamKey": key}))
        .await?;

    // Live, no thumbnail yet: title and description, no image.
    let page = get(addr, &format!("/viewer.html?stream={key}"), "").await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body.clone()).unwrap();
    let escaped = "Tea &amp; &quot;talk&quot; &lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;";
    assert!(
        html.contains(&format!(
            "<meta property=\"og:title\" content=\"{escaped} · StreamHub\" />"
        )),
        "{html}"
    );
    assert!(html.contains(
        "<meta property=\"og:description\" content=\"Ana is live now on StreamHub · 0 watching\" />"
    ));
    assert!(html.contains(&format!(
        "<meta property=\"og:url\" content=\"http://{addr}/viewer.html?stream={key}\" />"
    )));
    assert!(!html.contains("og:image"));
    assert!(!html.contains("<script>alert(1)"));
    let head_end = html.find("</head>").unwrap();
    assert!(html.find("og:title").unwrap() < head_end, "in the head");

    // With a thumbnail: og:image, an absolute URL that serves the JPEG.
    let ack = send(&mut streamer, &key, jpeg(500, 9)).await.unwrap();
    let version = ack["etag"].as_str().unwrap().trim_matches('"').to_owned();
    let page = get(addr, &format!("/viewer.html?stream={key}"), "").await;
    let html = String::from_utf8(page.body.clone()).unwrap();
    let image = format!("http://{addr}/api/streams/{key}/thumbnail?v={version}");
    assert!(
        html.contains(&format!(
            "<meta property=\"og:image\" content=\"{image}\" />"
        )),
        "{html}"
    );
    assert!(html.contains("<meta name=\"twitter:card\" content=\"summary_large_image\" />"));
    let served = get(
        addr,
        image.strip_prefix(&format!("http://{addr}")).unwrap(),
        "",
    )
    .await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, jpeg(500, 9));

    // The policy is the page's as built (no inline code added, none allowed), and the page
    // is otherwise the same as without a stream.
    let plain = get(addr, "/viewer.html", "").await;
    assert_eq!(
        page.header("content-security-policy"),
        plain.header("content-security-policy")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let plain_html = String::from_utf8(plain.body).unwrap();
    assert!(!plain_html.contains("og:"));
    let lines = |html: &str| -> Vec<String> {
        html.lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let added: Vec<String> = lines(&html)
        .into_iter()
        .filter(|l| !lines(&plain_html).contains(l))
        .collect();
    assert!(
        added
            .iter()
            .all(|l| l.starts_with("<meta ") && l.ends_with(" />")),
        "only meta tags added: {added:?}"
    );
    assert_eq!(lines(&html).len(), lines(&plain_html).len() + added.len());

    // An unknown stream, or a Host that is not a plain host: no preview, or no URLs.
    let unknown = get(addr, "/viewer.html?stream=sk_gone", "").await;
    assert!(!String::from_utf8(unknown.body).unwrap().contains("og:"));
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /viewer.html?stream={key} HTTP/1.1\r\nHost: evil\"><script>\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.unwrap();
    let odd = String::from_utf8_lossy(&buf);
    if odd.starts_with("HTTP/1.1 200") {
        assert!(
            odd.contains("og:title") && !odd.contains("og:image"),
            "{odd}"
        );
        assert!(!odd.contains("evil"), "{odd}");
    }
    server.stop().await;
    Ok(())
}
