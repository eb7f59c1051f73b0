//! ACME certificates (issue 15) against a real ACME CA: Debian's `pebble`, Let's Encrypt's
//! test server, started here on free ports (`ensure_pebble` in scripts/lib/setup.sh installs
//! it). Its validator really checks TLS-ALPN-01 on the binary's HTTPS port (`tlsPort` is that
//! port; no `PEBBLE_VA_ALWAYS_VALID`).
//!
//! Name resolution: pebble's validator asks the DNS server given by `-dnsserver`, here
//! `pebble-challtestsrv` from the same package, which answers every A query with 127.0.0.1
//! (and AAAA with nothing, so the check goes to the IPv4 port the binary listens on). So the
//! test name `streamhub.test` (a reserved TLD, never a real host) reaches the binary without
//! touching /etc/hosts or the machine's resolver, and the binary itself resolves nothing but
//! pebble's directory at 127.0.0.1.
//!
//! Pebble's own HTTPS (the directory, the management port) uses a certificate from a CA made
//! here, which the binary trusts through `--acme-directory-ca`. Pebble makes a new root at
//! every start, fetched from its management port, which the test client trusts.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BIN: &str = env!("CARGO_BIN_EXE_streamhub");

/// The name the certificate is for.
const NAME: &str = "streamhub.test";

/// A process killed when dropped: a failing assertion leaves nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free right now (the OS picks it; another process could take it before it is used,
/// which on a test machine it does not).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An installed program: `$VAR` if set, else `/usr/bin/NAME` (Debian's `pebble` package).
fn program(var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("/usr/bin").join(name));
    assert!(
        path.exists(),
        "{} not found: scripts/test.sh installs it (`ensure_pebble`: apt-get install pebble), or set {var}",
        path.display()
    );
    path
}

/// A CA made here and a certificate it signs for pebble's HTTPS (127.0.0.1, localhost).
struct PebbleTls {
    ca_pem: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca: CertificateDer<'static>,
}

fn pebble_tls(dir: &Path) -> PebbleTls {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pebble HTTPS test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec![String::from("localhost"), String::from("127.0.0.1")])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
    let out = PebbleTls {
        ca_pem: dir.join("pebble-ca.pem"),
        cert: dir.join("pebble-cert.pem"),
        key: dir.join("pebble-key.pem"),
        ca: ca.der().clone(),
    };
    std::fs::write(&out.ca_pem, ca.pem()).unwrap();
    std::fs::write(&out.cert, leaf.pem()).unwrap();
    std::fs::write(&out.key, key.serialize_pem()).unwrap();
    out
}

/// Pebble and its DNS responder, running.
struct Pebble {
    directory: String,
    management: SocketAddr,
    log: PathBuf,
    _dns: Proc,
    _pebble: Proc,
}

impl Pebble {
    /// Starts pebble's directory on `listen`, its validator checking TLS-ALPN-01 on
    /// `tls_port`; its certificates valid `validity` (pebble's default: 5 years).
    fn start(
        dir: &Path,
        tls: &PebbleTls,
        listen: u16,
        tls_port: u16,
        validity: Option<Duration>,
    ) -> Pebble {
        let dns_port = free_port();
        let dns = Command::new(program("PEBBLE_CHALLTESTSRV", "pebble-challtestsrv"))
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            // Its HTTP-01/TLS-ALPN-01 responders are not wanted: the binary answers.
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(std::fs::File::create(dir.join("challtestsrv.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let dns = Proc(dns);
        let management = free_port();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": tls.cert,
                "privateKey": tls.key,
                "httpPort": free_port(),
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(v) = validity {
            config["pebble"]["certificateValidityPeriod"] = v.as_secs().into();
        }
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = dir.join("pebble.log");
        let pebble = Command::new(program("PEBBLE", "pebble"))
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No artificial sleeps before validating; and no random badNonce rejections
            // (pebble rejects 5% by default to exercise clients' retries; Let's Encrypt does
            // not, and a rejected nonce here only costs a retry with backoff).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("pebble.stderr")).unwrap())
            .spawn()
            .unwrap();
        let pebble = Proc(pebble);
        let listen_addr: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{management}").parse().unwrap();
        wait_listening(listen_addr, &log);
        wait_listening(management, &log);
        Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
            log,
            _dns: dns,
            _pebble: pebble,
        }
    }

    /// Certificate orders pebble has taken (its log has a line per request to `new-order`).
    fn orders(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("/order-plz"))
            .count()
    }

    /// Pebble's root of the moment (made at its start), from its management port.
    async fn root(&self, tls: &PebbleTls) -> CertificateDer<'static> {
        let tcp = TcpStream::connect(self.management).await.unwrap();
        let mut conn = connector_trusting(tls.ca.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (status, body) = common::get_on(&mut conn, "localhost", "/roots/0").await;
        assert_eq!(status, 200, "{body}");
        CertificateDer::from_pem_slice(body.as_bytes())
            .unwrap()
            .into_owned()
    }
}

fn wait_listening(addr: SocketAddr, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "pebble not listening on {addr}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// `streamhub serve ARGS`, stdout's lines on a channel, stderr into `log`.
fn spawn(args: &[String], log: &Path) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env_remove("STREAMHUB_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
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
    (Proc(child), rx)
}

/// Waits for stdout's `streamhub listening on https://...` line.
fn wait_started(lines: &mpsc::Receiver<String>, log: &Path) {
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no listening line; stderr: {}", read(log)));
    assert!(
        first.starts_with("streamhub listening on https://"),
        "{first:?}"
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `log` has a line containing `what`.
fn wait_logged(log: &Path, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !read(log).contains(what) {
        assert!(
            Instant::now() < deadline,
            "{what:?} not logged within {within:?}: {}",
            read(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connects with SNI `NAME` trusting `root` until a handshake succeeds (the first certificate
/// takes an order): the connection.
async fn connect_when_issued(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    within: Duration,
    log: &Path,
) -> TlsStream<TcpStream> {
    let connector = connector_trusting(root.clone());
    let deadline = Instant::now() + within;
    loop {
        let tcp = TcpStream::connect(addr).await.unwrap();
        match connector
            .connect(ServerName::try_from(NAME).unwrap(), tcp)
            .await
        {
            Ok(tls) => return tls,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no trusted certificate for {NAME} within {within:?} ({e}); stderr: {}",
                read(log)
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leaf(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The whole path: the binary starts before its CA is reachable (the order fails, is logged
/// and retried), pebble comes up, checks the name with TLS-ALPN-01 on the binary's HTTPS port,
/// issues; a client trusting pebble's root gets HTTP and Socket.IO answers; a restart serves
/// the cached certificate, byte for byte, and pebble sees no new order.
#[tokio::test]
async fn a_certificate_is_obtained_with_tls_alpn_01_served_and_reused_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tls = pebble_tls(dir.path());
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pebble_port = free_port();
    let directory = format!("https://127.0.0.1:{pebble_port}/dir");
    let db = dir.path().join("streamhub.db");
    let args = |directory: &str| -> Vec<String> {
        [
            "--bind",
            &addr.to_string(),
            "--db",
            db.to_str().unwrap(),
            "--acme-domain",
            NAME,
            "--acme-email",
            "ops@streamhub.test",
            "--acme-directory",
            directory,
            "--acme-directory-ca",
            tls.ca_pem.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };

    // The CA is not there yet: the order fails, the server runs on and says why.
    let log1 = dir.path().join("streamhub-1.log");
    let (server, lines) = spawn(&args(&directory), &log1);
    wait_started(&lines, &log1);
    let announced = lines.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        announced.contains(&format!("ACME certificate for {NAME} from {directory}")),
        "{announced}"
    );
    wait_logged(
        &log1,
        "ACME: certificate order failed",
        Duration::from_secs(20),
    );
    assert!(!read(&log1).contains("panicked"), "{}", read(&log1));

    // Pebble on the port the binary was told; its validator connects to `port`.
    let pebble = Pebble::start(dir.path(), &tls, pebble_port, port, None);
    assert_eq!(pebble.directory, directory);
    let root = pebble.root(&tls).await;
    // The retries back off 1, 2, 4, 8 s ...: the next one finds pebble. Usually issued within
    // 3 s; on a loaded machine one run in a few took 22 s (rustls-acme's 1 s poll of the
    // processing order fired late), hence the margin.
    let mut conn = connect_when_issued(addr, &root, Duration::from_secs(120), &log1).await;
    let first = leaf(&conn);
    assert_eq!(pebble.orders(), 1, "{}", read(&pebble.log));
    let (status, body) = common::get_on(&mut conn, NAME, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        common::get_on(&mut conn, NAME, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("0{\"sid\":"),
        "an Engine.IO open packet: {body}"
    );
    let (_, metrics) = common::get_on(&mut conn, NAME, "/metrics").await;
    assert!(
        metric(
            &metrics,
            "streamhub_acme_events_total{event=\"challenge_answered\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "streamhub_acme_events_total{event=\"order_failed\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "streamhub_acme_events_total{event=\"deployed_new\"}"
        ),
        1.0
    );
    let stderr = read(&log1);
    assert!(
        stderr.contains("ACME: TLS-ALPN-01 check answered"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ACME: new certificate obtained"),
        "{stderr}"
    );
    // The check's handshake was not served as HTTP: no request was ever read on it (it would
    // have been a 400 or a header timeout, counted as closed connections).
    assert_eq!(
        metric(
            &metrics,
            "streamhub_tcp_closed_total{reason=\"header_timeout\"}"
        ),
        0.0
    );
    wait_logged(
        &log1,
        "ACME: certificate stored in the cache",
        Duration::from_secs(10),
    );
    drop(conn);
    drop(server);

    // Restarted on the same cache: the same certificate at once, no new order.
    let log2 = dir.path().join("streamhub-2.log");
    let (_server, lines) = spawn(&args(&directory), &log2);
    wait_started(&lines, &log2);
    let mut conn = connect_when_issued(addr, &root, Duration::from_secs(10), &log2).await;
    assert_eq!(
        leaf(&conn).as_ref(),
        first.as_ref(),
        "the cached certificate"
    );
    let (status, _) = common::get_on(&mut conn, NAME, "/healthz").await;
    assert_eq!(status, 200);
    let stderr = read(&log2);
    assert!(
        stderr.contains("ACME: serving the cached certificate"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ACME: new certificate obtained"),
        "{stderr}"
    );
    assert_eq!(pebble.orders(), 1, "no new order: {}", read(&pebble.log));
}

/// A renewal that fails leaves the certificate in place: pebble issues certificates valid
/// 45 s, so rustls-acme renews after 30 s (a third of the life left); pebble is gone by then.
#[tokio::test]
async fn a_failed_renewal_keeps_the_current_certificate_served() {
    let dir = tempfile::tempdir().unwrap();
    let tls = pebble_tls(dir.path());
    let (port, pebble_port) = (free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pebble = Pebble::start(
        dir.path(),
        &tls,
        pebble_port,
        port,
        Some(Duration::from_secs(45)),
    );
    let root = pebble.root(&tls).await;
    let log = dir.path().join("streamhub.log");
    let db = dir.path().join("streamhub.db");
    let args = [
        "--bind",
        &addr.to_string(),
        "--db",
        db.to_str().unwrap(),
        "--acme-domain",
        NAME,
        "--acme-directory",
        &pebble.directory,
        "--acme-directory-ca",
        tls.ca_pem.to_str().unwrap(),
    ]
    .map(String::from);
    let (_server, lines) = spawn(&args, &log);
    wait_started(&lines, &log);
    let conn = connect_when_issued(addr, &root, Duration::from_secs(120), &log).await;
    let issued = leaf(&conn);
    drop(conn);
    assert_eq!(pebble.orders(), 1, "{}", read(&pebble.log));
    assert!(!read(&log).contains("order failed"), "{}", read(&log));
    drop(pebble);

    wait_logged(
        &log,
        "ACME: certificate order failed",
        Duration::from_secs(40),
    );
    let mut conn = connect_when_issued(addr, &root, Duration::from_secs(5), &log).await;
    assert_eq!(
        leaf(&conn).as_ref(),
        issued.as_ref(),
        "the same certificate"
    );
    let (status, _) = common::get_on(&mut conn, NAME, "/healthz").await;
    assert_eq!(status, 200);
    let (_, metrics) = common::get_on(&mut conn, NAME, "/metrics").await;
    assert!(
        metric(
            &metrics,
            "streamhub_acme_events_total{event=\"order_failed\"}"
        ) >= 1.0
    );
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
fn bad_acme_settings_stop_the_binary_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_owned();

    let (code, stderr) = refused(&["--acme-domain", NAME, "--tls-self-signed"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("give it or --tls-self-signed, not both"),
        "{stderr}"
    );
    let (code, stderr) = refused(&[
        "--acme-domain",
        NAME,
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--tls-cert/--tls-key, not both"),
        "{stderr}"
    );
    let (code, stderr) = refused(&["--acme-email", "ops@example.com"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--acme-email is for ACME certificates: it needs --acme-domain"),
        "{stderr}"
    );
    for (bad, why) in [
        ("203.0.113.9", "IP address"),
        ("*.example.com", "wildcard"),
        ("localhost", "DNS name"),
        ("a..example", "DNS name"),
    ] {
        let (code, stderr) = refused(&["--acme-domain", bad]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(
            stderr.contains("--acme-domain") && stderr.contains(why),
            "{bad}: {stderr}"
        );
    }
    let (code, stderr) = refused(&[
        "--acme-domain",
        NAME,
        "--acme-directory",
        "http://127.0.0.1:14000/dir",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("must be an https:// URL"), "{stderr}");
    let (code, stderr) = refused(&["--acme-domain", NAME, "--acme-email", "not-an-address"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("email address"), "{stderr}");

    // Checked at start, before the server listens: files that cannot work.
    let missing = dir.path().join("missing-ca.pem");
    let (code, stderr) = refused(&["--acme-domain", NAME, "--acme-directory-ca", &p(&missing)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read --acme-directory-ca {}", p(&missing))),
        "{stderr}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let (code, stderr) = refused(&["--acme-domain", NAME, "--acme-directory-ca", &p(&garbage)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("holds no usable CA certificate"),
        "{stderr}"
    );
    let (code, stderr) = refused(&["--acme-domain", NAME, "--acme-cache", &p(&garbage)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot make the ACME cache directory {}",
            p(&garbage)
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
