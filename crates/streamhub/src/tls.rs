//! HTTPS in the binary (issue 15): browsers give the camera only to secure pages, so a
//! self-hoster's phone on the LAN needs TLS, and one binary that does it itself needs no
//! reverse proxy.
//!
//! The certificate comes from PEM files (`--tls-cert`, `--tls-key`), is made on the first
//! start (`--tls-self-signed`) and kept beside the database, or comes from an ACME CA
//! (`--acme-domain`, [`crate::acme`], which renews it itself). For the first two [`CertStore`] holds it
//! and hands it to every handshake; a reload (SIGHUP) reads the files again and swaps it, so
//! new connections get the new certificate and open ones are left alone. rustls with the
//! `ring` provider: no OpenSSL, and nothing but a C compiler to build.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsSource;

/// Days a self-signed certificate is valid. Apple's platforms refuse server certificates valid
/// for more than 825 days, even ones a person chose to trust.
const SELF_SIGNED_DAYS: i64 = 800;

/// Reading a certificate and its key (at start and on every reload).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the TLS certificate {path}: {source}")]
    Cert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)")]
    NoCert { path: PathBuf },
    #[error("cannot read the TLS private key {path}: {source}")]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "{path} holds no private key (expected PEM: -----BEGIN PRIVATE KEY-----, or an RSA or EC key)"
    )]
    NoKey { path: PathBuf },
    /// An unsupported key type, or a key that is not the certificate's.
    #[error("the TLS key {key} does not go with the certificate {cert}: {source}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// Setting TLS up at start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(transparent)]
    Acme(#[from] crate::acme::AcmeSetupError),
}

/// The certificate every handshake gets, and where to read it again from.
#[derive(Debug)]
pub(crate) struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    fn open(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<Self, LoadError> {
        let first = load(&cert, &key, &provider)?;
        Ok(CertStore {
            cert,
            key,
            provider,
            current: ArcSwap::from_pointee(first),
        })
    }

    /// Reads the files again; on success new handshakes get the new certificate (open
    /// connections keep theirs). On failure the previous one stays: a half-copied file must
    /// not take HTTPS down. Returns the new certificate's SHA-256 fingerprint.
    pub(crate) fn reload(&self) -> Result<String, LoadError> {
        let next = load(&self.cert, &self.key, &self.provider)?;
        let fp = next
            .end_entity_cert()
            .map(|c| fingerprint(c.as_ref()))
            .unwrap_or_default();
        self.current.store(Arc::new(next));
        Ok(fp)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Reads a PEM certificate chain (leaf first) and its private key, and checks they belong
/// together.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, LoadError> {
    let cert_err = |source| LoadError::Cert {
        path: cert.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(LoadError::NoCert {
            path: cert.to_owned(),
        });
    }
    let private = match PrivateKeyDer::from_pem_file(key) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(LoadError::NoKey {
                path: key.to_owned(),
            });
        }
        Err(source) => {
            return Err(LoadError::Key {
                path: key.to_owned(),
                source,
            });
        }
    };
    CertifiedKey::from_der(chain, private, provider).map_err(|source| LoadError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// What the server serves TLS with.
pub(crate) struct ServerTls {
    pub(crate) acceptor: Acceptor,
    /// The files SIGHUP reads again (not with ACME, which renews by itself).
    pub(crate) certs: Option<Arc<CertStore>>,
    /// Set with `--tls-self-signed`: what to print so a person can check the certificate.
    pub(crate) self_signed: Option<SelfSigned>,
    /// Set with `--acme-domain`: the ordering and renewing to run beside the server.
    pub(crate) acme: Option<crate::acme::Acme>,
}

/// How the accept loop does a connection's handshake.
#[derive(Clone)]
pub(crate) enum Acceptor {
    /// One configuration for every connection.
    Fixed(TlsAcceptor),
    /// The ClientHello is read first: the CA's TLS-ALPN-01 check gets its own configuration.
    Acme(crate::acme::AcmeTls),
}

/// A self-signed certificate kept beside the database.
#[derive(Debug)]
pub(crate) struct SelfSigned {
    pub(crate) cert: PathBuf,
    /// Made on this start (else found from an earlier one).
    pub(crate) created: bool,
    /// SHA-256 of the certificate (DER), as browsers show it: `AB:CD:...`.
    pub(crate) fingerprint: String,
}

/// rustls' `ring` provider: it builds with a C compiler alone, where `aws-lc-rs` (rustls'
/// default) compiles a large C library whose build may want cmake, which a fresh machine here
/// lacks. rustls 0.23.48 deprecates it for lacking post-quantum key exchange (X25519MLKEM768):
/// connections get classical X25519/P-256 key exchange, TLS 1.2 and 1.3.
#[allow(deprecated)]
pub fn crypto_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Loads (or, with `--tls-self-signed`, makes on the first start) the certificate and builds
/// the acceptor. `db` places the self-signed files; `bound` is the address served, named in
/// a new self-signed certificate.
pub(crate) fn setup(
    source: &TlsSource,
    db: &Path,
    bound: SocketAddr,
) -> Result<ServerTls, SetupError> {
    let provider = Arc::new(crypto_provider());
    let (cert, key, self_signed) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone(), false),
        TlsSource::SelfSigned => {
            let (cert, key) = self_signed_paths(db);
            (cert, key, true)
        }
        TlsSource::Acme(settings) => {
            let acme = crate::acme::setup(settings, provider)?;
            return Ok(ServerTls {
                acceptor: Acceptor::Acme(acme.tls.clone()),
                certs: None,
                self_signed: None,
                acme: Some(acme),
            });
        }
    };
    let created = self_signed && make_self_signed(&cert, &key, bound)?;
    let certs = Arc::new(CertStore::open(cert.clone(), key, Arc::clone(&provider))?);
    // Named explicitly, not the process default: with another crate enabling aws-lc-rs too,
    // rustls could not pick one.
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
    // The accept loop speaks HTTP/1.1 only (websockets ride it anyway).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let self_signed = self_signed.then(|| SelfSigned {
        fingerprint: certs
            .current
            .load()
            .end_entity_cert()
            .map(|c| fingerprint(c.as_ref()))
            .unwrap_or_default(),
        cert,
        created,
    });
    Ok(ServerTls {
        acceptor: Acceptor::Fixed(TlsAcceptor::from(Arc::new(config))),
        certs: Some(certs),
        self_signed,
        acme: None,
    })
}

/// Where `--tls-self-signed` keeps its certificate and key: beside the database
/// (`streamhub.db.tls-cert.pem`, `streamhub.db.tls-key.pem`).
pub fn self_signed_paths(db: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    (with(".tls-cert.pem"), with(".tls-key.pem"))
}

/// Makes the self-signed certificate unless both files are there; whether it made one. One
/// file without the other is useless (a certificate's key is not recoverable), so both are
/// made again then.
fn make_self_signed(cert: &Path, key: &Path, bound: SocketAddr) -> Result<bool, SetupError> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let names = self_signed_names(bound);
    let key_pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "StreamHub (self-signed)");
    // Apple's platforms also want the server-auth usage named.
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    // A day back: a phone whose clock is a little behind still accepts it.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let certificate = params.self_signed(&key_pair)?;
    // The key first: a certificate file is what says "made", so it goes last.
    write_atomically(key, key_pair.serialize_pem().as_bytes(), true)?;
    write_atomically(cert, certificate.pem().as_bytes(), false)?;
    Ok(true)
}

/// The names a phone on the LAN may reach this machine by: `localhost`, the host name (and
/// its mDNS `.local` form), every interface address, and the bound address.
fn self_signed_names(bound: SocketAddr) -> Vec<String> {
    let mut names = vec![String::from("localhost")];
    if let Some(host) = crate::config::machine_name() {
        if !host.contains('.') {
            names.push(format!("{host}.local"));
        }
        names.push(host);
    }
    let mut ips: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.iter().map(if_addrs::Interface::ip).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this machine's addresses; the self-signed certificate names loopback and the bind address only");
            Vec::new()
        }
    };
    ips.extend([
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]);
    if !bound.ip().is_unspecified() {
        ips.push(bound.ip());
    }
    for ip in ips {
        let ip = ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

/// Writes `path` through a temporary file and a rename, so a crash never leaves half a PEM
/// file. `private`: readable by the owner only (it is the key).
fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> Result<(), SetupError> {
    let err = |source| SetupError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

/// SHA-256 of a certificate's DER bytes, upper-case hex pairs joined by `:`, as browsers and
/// `openssl x509 -fingerprint -sha256` show it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = sha2::Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// Reloads the certificate each time `reload` is notified (the binary's SIGHUP handler), until
/// `shutdown`. Without TLS there is nothing to reload; that is logged.
pub(crate) async fn follow_reloads(
    certs: Option<Arc<CertStore>>,
    reload: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = reload.notified() => {}
        }
        let Some(certs) = &certs else {
            tracing::info!(
                "reload asked (SIGHUP): no TLS certificate files to reload (ACME certificates renew by themselves)"
            );
            continue;
        };
        // Two small files: read in place.
        match certs.reload() {
            Ok(fingerprint) => {
                tracing::info!(cert = %certs.cert.display(), %fingerprint, "TLS certificate reloaded; new connections get it")
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded; the previous one stays")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        crypto_provider()
    }

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![String::from("localhost")])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        (c, k)
    }

    #[test]
    fn missing_garbled_and_mismatched_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert_a, key_a) = pair(dir.path(), "a");
        let (_cert_b, key_b) = pair(dir.path(), "b");
        assert!(load(&cert_a, &key_a, &provider()).is_ok());

        let missing = dir.path().join("nope.pem");
        let e = load(&missing, &key_a, &provider()).expect_err("missing");
        assert!(matches!(e, LoadError::Cert { .. }), "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").expect("write");
        let e = load(&garbage, &key_a, &provider()).expect_err("garbage cert");
        assert!(matches!(e, LoadError::NoCert { .. }), "{e}");
        let e = load(&cert_a, &garbage, &provider()).expect_err("garbage key");
        assert!(matches!(e, LoadError::NoKey { .. }), "{e}");
        // A certificate given as the key, and the key given as the certificate.
        let e = load(&cert_a, &cert_a, &provider()).expect_err("cert as key");
        assert!(matches!(e, LoadError::NoKey { .. }), "{e}");
        let e = load(&key_a, &key_a, &provider()).expect_err("key as cert");
        assert!(matches!(e, LoadError::NoCert { .. }), "{e}");

        let e = load(&cert_a, &key_b, &provider()).expect_err("someone else's key");
        assert!(matches!(e, LoadError::Mismatch { .. }), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert_a, key_a) = pair(dir.path(), "a");
        let store = CertStore::open(cert_a.clone(), key_a, Arc::new(provider())).expect("open");
        let before = store.current.load_full();
        std::fs::write(&cert_a, "-----BEGIN CERTIFICATE-----\ntruncat").expect("write");
        assert!(store.reload().is_err());
        assert!(Arc::ptr_eq(&before, &store.current.load_full()));
    }

    #[test]
    fn self_signed_names_cover_loopback_and_the_bound_address() {
        let names = self_signed_names("192.0.2.10:3443".parse().expect("addr"));
        for want in ["localhost", "127.0.0.1", "::1", "192.0.2.10"] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn fingerprints_look_like_the_browsers() {
        let fp = fingerprint(b"abc");
        assert_eq!(
            fp,
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }
}
