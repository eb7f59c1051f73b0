//! HTTPS in the binary (issue 15): the server speaks TLS on `--bind` with a certificate from
//! PEM files or one it makes itself, swaps the certificate on SIGHUP without touching open
//! connections, and can redirect plain HTTP to HTTPS. The clients here are rustls with a
//! test CA (made with rcgen), and raw sockets.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::start;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::Digest;
use streamhub::config::TlsSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BIN: &str = env!("CARGO_BIN_EXE_streamhub");

/// A test CA and the server certificates it signs (for `localhost` and 127.0.0.1).
struct Pki {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "StreamHub test CA");
        let ca = params.self_signed(&key).unwrap().der().clone();
        Pki {
            ca,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate and its key, written to `cert` and `key` (replacing them in one
    /// rename each, as a deploy tool would); its DER.
    fn issue(&self, cert: &Path, key: &Path) -> CertificateDer<'static> {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            String::from("localhost"),
            String::from("127.0.0.1"),
        ])
        .unwrap();
        let leaf = params.signed_by(&leaf_key, &self.issuer).unwrap();
        replace(key, leaf_key.serialize_pem().as_bytes());
        replace(cert, leaf.pem().as_bytes());
        leaf.der().clone()
    }

    fn connector(&self) -> TlsConnector {
        connector_trusting(self.ca.clone())
    }
}

fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A rustls client that trusts `root` alone.
fn connector_trusting(root: CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(streamhub::tls::crypto_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// The certificate the server presented on `tls`.
fn peer(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// Reads until `tcp` is closed (or 5 s pass: panics); what it received.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closed the connection within 5 s");
    got
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls new connections until one presents `want` (a reload is not instantaneous).
async fn new_connections_get(
    addr: SocketAddr,
    connector: &TlsConnector,
    want: &CertificateDer<'_>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conn = tls_connect(addr, connector).await.unwrap();
        if peer(&conn).as_ref() == want.as_ref() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn https_serves_and_plain_http_or_a_silent_socket_on_its_port_is_closed() {
    let pki = Pki::new();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let served = pki.issue(&cert, &key);
    let server = start(|c| {
        c.tls = Some(TlsSource::Files { cert, key });
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let connector = pki.connector();

    let mut tls = tls_connect(server.addr, &connector).await.unwrap();
    assert_eq!(peer(&tls).as_ref(), served.as_ref());
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        None,
        "no ALPN asked, none chosen"
    );
    let (status, body) = common::get_on(&mut tls, "localhost", "/healthz").await;
    assert_eq!(status, 200, "{body}");
    drop(tls);

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut plain).await;
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // A socket that never starts the handshake is closed after the header-read timeout.
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    read_to_close(&mut silent).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The server carries on, and counted both.
    let mut tls = tls_connect(server.addr, &connector).await.unwrap();
    let (status, metrics) = common::get_on(&mut tls, "localhost", "/metrics").await;
    assert_eq!(status, 200);
    let closed = metric(
        &metrics,
        "streamhub_tcp_closed_total{reason=\"tls_handshake\"}",
    );
    assert!(closed >= 2.0, "tls_handshake counted {closed}");
    drop(tls);
    server.stop().await;
}

#[tokio::test]
async fn a_reload_gives_new_connections_the_new_certificate_and_leaves_open_ones_alone() {
    let pki = Pki::new();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let a = pki.issue(&cert, &key);
    let server = start(|c| {
        c.tls = Some(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        });
    })
    .await;
    let connector = pki.connector();
    let mut open = tls_connect(server.addr, &connector).await.unwrap();
    assert_eq!(peer(&open).as_ref(), a.as_ref());
    assert_eq!(
        common::get_on(&mut open, "localhost", "/healthz").await.0,
        200
    );

    let b = pki.issue(&cert, &key);
    assert_ne!(a.as_ref(), b.as_ref());
    server.reload.notify_one();
    new_connections_get(server.addr, &connector, &b).await;

    // The connection opened before the reload still works, on its own certificate.
    assert_eq!(
        common::get_on(&mut open, "localhost", "/healthz").await.0,
        200
    );
    assert_eq!(peer(&open).as_ref(), a.as_ref());

    // A broken file is not taken: the server keeps B.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    server.reload.notify_one();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let conn = tls_connect(server.addr, &connector).await.unwrap();
    assert_eq!(peer(&conn).as_ref(), b.as_ref());
    drop((open, conn));
    server.stop().await;
}

/// A server process, killed when dropped: a failing assertion does not leave it running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `streamhub serve ARGS` with stdout's lines on a channel (stderr to `log`).
fn spawn(args: &[&str], env: &[(&str, &str)], log: &Path) -> (Server, mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .env_remove("STREAMHUB_CONFIG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Server(child), rx)
}

/// The address from `streamhub listening on https://ADDR`, the first line.
fn https_addr(lines: &mpsc::Receiver<String>, log: &Path) -> SocketAddr {
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "no listening line; stderr: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    first
        .strip_prefix("streamhub listening on https://")
        .unwrap_or_else(|| panic!("{first:?}"))
        .parse()
        .unwrap()
}

fn stop(server: Server) {
    drop(server);
}

/// The real binary and a real SIGHUP (`kill -HUP`).
#[tokio::test]
async fn the_binary_swaps_its_certificate_on_sighup() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let a = pki.issue(&cert, &key);
    let db = dir.path().join("x.db");
    let log = dir.path().join("stderr.log");
    let (mut child, lines) = spawn(
        &[
            "--bind",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
        ],
        // The key from the environment, as a service file may give it.
        &[("STREAMHUB_TLS_KEY", key.to_str().unwrap())],
        &log,
    );
    let addr = https_addr(&lines, &log);
    let connector = pki.connector();
    let mut open = tls_connect(addr, &connector).await.unwrap();
    assert_eq!(peer(&open).as_ref(), a.as_ref());
    assert_eq!(
        common::get_on(&mut open, "localhost", "/healthz").await.0,
        200
    );

    let b = pki.issue(&cert, &key);
    let hup = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    new_connections_get(addr, &connector, &b).await;
    assert_eq!(
        common::get_on(&mut open, "localhost", "/healthz").await.0,
        200,
        "the open connection survived"
    );
    assert_eq!(peer(&open).as_ref(), a.as_ref());
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "SIGHUP ended the process"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("TLS certificate reloaded"), "{logged}");
    drop(open);
    stop(child);
}

/// SHA-256 of `der`, as `AB:CD:...` (computed here, not by the server's code).
fn sha256(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint from the server's stdout (within 10 s of the listening line).
fn printed_fingerprint(lines: &mpsc::Receiver<String>) -> String {
    let prefix = "streamhub TLS certificate SHA-256 fingerprint: ";
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the fingerprint line");
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.split_whitespace().next().unwrap().to_owned();
        }
    }
}

#[tokio::test]
async fn a_self_signed_certificate_is_made_once_kept_and_its_fingerprint_printed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let log = dir.path().join("stderr.log");
    let (cert_path, key_path) = streamhub::tls::self_signed_paths(&db);
    let args = ["--bind", "127.0.0.1:0", "--db", db.to_str().unwrap()];
    // From the environment, as the other settings can be.
    let env = [("STREAMHUB_TLS_SELF_SIGNED", "true")];

    assert!(!cert_path.exists() && !key_path.exists());
    let (child, lines) = spawn(&args, &env, &log);
    let addr = https_addr(&lines, &log);
    let first = printed_fingerprint(&lines);
    let der = CertificateDer::from_pem_file(&cert_path).unwrap();
    assert_eq!(first, sha256(&der), "the printed fingerprint is the file's");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's alone: {mode:o}");
    }
    // A client that trusts this certificate reaches the server by `localhost` and gets it.
    let connector = connector_trusting(der.clone());
    let mut tls = tls_connect(addr, &connector).await.unwrap();
    assert_eq!(peer(&tls).as_ref(), der.as_ref());
    assert_eq!(
        common::get_on(&mut tls, "localhost", "/healthz").await.0,
        200
    );
    drop(tls);
    stop(child);

    let (child, lines) = spawn(&args, &env, &log);
    let addr = https_addr(&lines, &log);
    assert_eq!(
        printed_fingerprint(&lines),
        first,
        "the second start kept the certificate"
    );
    let tls = tls_connect(addr, &connector).await.unwrap();
    assert_eq!(peer(&tls).as_ref(), der.as_ref());
    drop(tls);
    stop(child);
}

#[tokio::test]
async fn the_redirect_port_sends_every_request_to_https() {
    let pki = Pki::new();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    pki.issue(&cert, &key);
    // A free port for the redirect listener (bound by the server itself).
    let redirect: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let server = start(|c| {
        c.tls = Some(TlsSource::Files { cert, key });
        c.http_redirect = Some(redirect);
    })
    .await;
    let mut tcp = connect_retrying(redirect).await;
    tcp.write_all(
        format!(
            "GET /viewer.html?k=abc HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            redirect.port()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = String::from_utf8(read_to_close(&mut tcp).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    let location = format!(
        "location: https://localhost:{}/viewer.html?k=abc\r\n",
        server.addr.port()
    );
    assert!(answer.to_ascii_lowercase().contains(&location), "{answer}");
    // The HTTPS port it points to answers.
    let mut tls = tls_connect(server.addr, &pki.connector()).await.unwrap();
    assert_eq!(
        common::get_on(&mut tls, "localhost", "/healthz").await.0,
        200
    );
    drop(tls);
    server.stop().await;
}

/// The in-process server binds its redirect listener as it starts: wait for it.
async fn connect_retrying(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return tcp,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("redirect port {addr}: {e}"),
        }
    }
}

/// Exit code and stderr of `streamhub serve ARGS` (which must exit by itself).
fn refused(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("x.db"))
        .args(args)
        .env_remove("STREAMHUB_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_tls_settings_stop_the_binary_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let pki = Pki::new();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    pki.issue(&cert, &key);
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();

    let (code, stderr) = refused(&["--tls-cert", &p(&missing), "--tls-key", &p(&key)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read the TLS certificate {}", p(&missing))),
        "{stderr}"
    );
    let (code, stderr) = refused(&["--tls-cert", &p(&garbage), "--tls-key", &p(&key)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("holds no certificate"), "{stderr}");
    let (code, stderr) = refused(&["--tls-cert", &p(&cert), "--tls-key", &p(&cert)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("holds no private key"), "{stderr}");
    let (code, stderr) = refused(&["--tls-cert", &p(&cert)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tls-key is missing"), "{stderr}");
    let (code, stderr) = refused(&[
        "--tls-self-signed",
        "--tls-cert",
        &p(&cert),
        "--tls-key",
        &p(&key),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");
    let (code, stderr) = refused(&["--http-redirect", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--http-redirect"), "{stderr}");
    let (_, stderr) = refused(&["--tls-cert", &p(&garbage), "--tls-key", &p(&key)]);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
