//! Per-client limits (issue 14, hole 5), each written as the attack, over raw sockets: the
//! previous server (`axum::serve`) kept every one of these connections open.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestResult, http_raw, start};
use streamhub_bench::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes `tcp` (or `within` passes: `None`); what it sent.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(addr: SocketAddr) -> String {
    http_raw(addr, "/metrics").await
}

#[tokio::test]
async fn slow_headers_silent_sockets_and_idle_keep_alive_are_closed() -> TestResult {
    let server = start(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let addr = server.addr;
    // Twenty sockets that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Slowloris: a request head that never ends, one header line every 300 ms.
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let dripping = async {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow
                .write_all(format!("X-Drip-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    };
    let cut = tokio::time::timeout(Duration::from_secs(5), dripping)
        .await
        .unwrap_or(false);
    assert!(cut, "the slow header sender was not cut off");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off after {:?}",
        started.elapsed()
    );
    for tcp in &mut silent {
        assert!(
            closed_within(tcp, Duration::from_secs(3)).await.is_some(),
            "a silent socket stayed open"
        );
    }
    // A keep-alive connection that made one request, then idles, goes too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut idle, Duration::from_secs(4))
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    // Honest clients are served as before, and the closings are counted.
    let m = metrics(addr).await;
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    let timeouts = metric(&m, "streamhub_tcp_closed_total{reason=\"header_timeout\"}");
    assert!(timeouts >= 21.0, "header_timeout counted {timeouts}");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() -> TestResult {
    let server = start(|c| {
        c.max_connections_per_ip = Some(3);
        c.limit_loopback = true;
    })
    .await;
    let addr = server.addr;
    // A Socket.IO connection holds its slot for as long as its websocket is open.
    let viewer = Client::viewer(&server.target, "vera").await?;
    let mut held = vec![
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let answer = closed_within(&mut refused, Duration::from_secs(2))
        .await
        .expect("the connection over the limit was kept open");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert!(answer.contains("too many connections"), "{answer:?}");
    // The viewer goes: its slot comes back.
    drop(viewer);
    let deadline = Instant::now() + Duration::from_secs(3);
    let page = loop {
        let page = http_raw(addr, "/healthz").await;
        if page.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        page.starts_with("HTTP/1.1 200"),
        "slot not given back: {page}"
    );
    held.clear();
    let m = metrics(addr).await;
    assert!(
        metric(&m, "streamhub_tcp_closed_total{reason=\"per_ip_limit\"}") >= 1.0,
        "{m}"
    );
    server.stop().await;
    Ok(())
}
