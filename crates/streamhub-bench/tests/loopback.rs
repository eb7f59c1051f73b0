//! The load generator against the real server, in process: 20 viewers for about 2 s.

#![allow(clippy::unwrap_used)]

use clap::Parser;
use streamhub::config::Config;
use streamhub_bench::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A server on a free port with its own database file (tests run in parallel); the
/// directory lives as long as the returned guard.
async fn start_server() -> (std::net::SocketAddr, CancellationToken, tempfile::TempDir) {
    start_server_with(|_| {}).await
}

async fn start_server_with(
    setup: impl FnOnce(&mut Config),
) -> (std::net::SocketAddr, CancellationToken, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.db = dir.path().join("bench.db");
    setup(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(streamhub::run(config, listener, shutdown.clone()));
    (addr, shutdown, dir)
}

fn args(addr: std::net::SocketAddr, extra: &[&str]) -> Args {
    args_at(&format!("http://{addr}"), extra)
}

fn args_at(url: &str, extra: &[&str]) -> Args {
    let pid = std::process::id().to_string();
    let mut v = vec![
        "streamhub-bench",
        "--url",
        url,
        "--viewers",
        "20",
        "--fps",
        "30",
        "--frame-size",
        "10000",
        "--warmup",
        "0.5",
        "--duration",
        "1.5",
        "--drain",
        "2",
        "--ramp",
        "0",
        "--server-pid",
        &pid,
        "--quiet",
    ];
    v.extend_from_slice(extra);
    Args::parse_from(v)
}

fn check(report: &streamhub_bench::Report) {
    let c = &report.connect;
    assert_eq!(
        (c.connected, c.registered, c.joined, c.failed),
        (20, 20, 20, 0),
        "{report}"
    );
    let frames = report.frames.as_ref().unwrap();
    assert!(
        frames.measured >= 30,
        "about 45 frames in 1.5 s at 30 fps: {report}"
    );
    assert!(frames.streamer_problem.is_none(), "{report}");
    assert_eq!(frames.streamer_errors, 0, "{report}");
    let d = report.delivery.as_ref().unwrap();
    assert_eq!(d.healthy_viewers, 20);
    assert_eq!(d.received, d.expected, "100% delivery: {report}");
    assert_eq!(d.fraction, Some(1.0));
    assert_eq!(d.viewers_complete, 20);
    assert_eq!(d.out_of_order, 0);
    let l = report.latency.unwrap();
    assert_eq!(l.count, d.received);
    assert!(l.p50_ms > 0.0 && l.p50_ms <= l.p90_ms && l.p90_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
    // Debug builds on a busy 2-core CI box: generous, but far below anything broken.
    assert!(l.p99_ms < 1000.0, "{report}");
    let s = report.server.as_ref().unwrap();
    assert!(s.cpu_cores.unwrap() >= 0.0);
    assert!(s.rss_peak_kb.unwrap() > 0);
    // The JSON form carries the same numbers.
    let v = serde_json::to_value(report).unwrap();
    assert_eq!(v["delivery"]["fraction"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_base64_get_every_frame() {
    let (addr, shutdown, _db) = start_server().await;
    let report = streamhub_bench::run(args(addr, &[])).await.unwrap();
    check(&report);
    assert_eq!(report.encoding, "base64");
    assert_eq!(report.transport, "socket.io");
    assert_eq!(report.wire_data_bytes, 13_336);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_binary_get_every_frame() {
    let (addr, shutdown, _db) = start_server().await;
    let report = streamhub_bench::run(args(addr, &["--binary"]))
        .await
        .unwrap();
    check(&report);
    assert_eq!(report.encoding, "binary");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_on_the_media_channel_get_every_frame() {
    for extra in [&["--media"][..], &["--media", "--binary"][..]] {
        let (addr, shutdown, _db) = start_server().await;
        let report = streamhub_bench::run(args(addr, extra)).await.unwrap();
        check(&report);
        assert_eq!(report.transport, "media", "{extra:?}");
        shutdown.cancel();
    }
}

/// Over TLS (`--tls-self-signed`), trusting only the certificate the server made: both paths
/// deliver every frame, and without `--tls-ca` the load generator refuses the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_over_tls_get_every_frame_on_both_paths() {
    let (addr, shutdown, dir) =
        start_server_with(|c| c.tls = Some(streamhub::config::TlsSource::SelfSigned)).await;
    let ca = dir.path().join("bench.db.tls-cert.pem");
    for _ in 0..50 {
        if ca.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let url = format!("https://{addr}");
    let ca = ca.to_str().unwrap();
    for extra in [&["--tls-ca", ca][..], &["--tls-ca", ca, "--media"][..]] {
        let report = streamhub_bench::run(args_at(&url, extra)).await.unwrap();
        check(&report);
    }
    let refused = streamhub_bench::run(args_at(&url, &[])).await.unwrap_err();
    assert!(refused.to_string().contains("--tls-ca"), "{refused}");
    shutdown.cancel();
}
