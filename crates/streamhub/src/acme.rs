//! ACME certificates (`--acme-domain`, issue 15): the server gets its certificate from Let's
//! Encrypt (or any ACME CA) itself and renews it, with no certbot and no reverse proxy.
//!
//! `rustls-acme` does the protocol: it loads the certificate and account key from the cache
//! directory, orders a certificate when there is none (or a third of its life is left), and
//! answers the CA's TLS-ALPN-01 check. That check is a TLS handshake on the HTTPS port
//! offering only the `acme-tls/1` protocol, so the accept loop reads each ClientHello first
//! ([`AcmeTls`]): a check gets the challenge certificate, completes its handshake and is
//! closed, never served as HTTP; everything else gets the current certificate. Until the
//! first certificate arrives, handshakes fail (there is nothing to serve); an order or
//! renewal that fails is logged, counted, and retried with backoff while the certificate
//! already there keeps being served.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::ResolvesServerCert;
use rustls_acme::caches::DirCache;
use rustls_acme::{AcmeConfig, AcmeState, EventError, EventOk};
use tokio_util::sync::CancellationToken;

use crate::config::AcmeSettings;
use crate::metrics::{AcmeEvent, Metrics};

/// Setting ACME up at start; every case stops the start with its reason.
#[derive(Debug, thiserror::Error)]
pub enum AcmeSetupError {
    #[error("cannot make the ACME cache directory {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read --acme-directory-ca {path}: {source}")]
    DirectoryCa {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "--acme-directory-ca {path} holds no usable CA certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
    )]
    NoDirectoryCa { path: PathBuf },
    #[error("TLS configuration for ACME: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The two server configurations a connection may get, picked from its ClientHello.
#[derive(Clone)]
pub(crate) struct AcmeTls {
    /// Everyone: the current certificate, HTTP/1.1.
    pub(crate) serve: Arc<rustls::ServerConfig>,
    /// The CA's TLS-ALPN-01 check: the challenge certificate, `acme-tls/1` only.
    pub(crate) challenge: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for AcmeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeTls").finish_non_exhaustive()
    }
}

/// Whether a ClientHello is the CA's TLS-ALPN-01 check (it offers `acme-tls/1` alone).
pub(crate) fn is_challenge(hello: &rustls::server::ClientHello<'_>) -> bool {
    rustls_acme::is_tls_alpn_challenge(hello)
}

/// What `setup` made: the configurations to accept with and the state to drive.
pub(crate) struct Acme {
    pub(crate) tls: AcmeTls,
    state: AcmeState<std::io::Error>,
    settings: AcmeSettings,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Checks the settings that can only be checked here (the cache directory can be made, the
/// directory's CA file loads) and builds the state; nothing is fetched yet.
pub(crate) fn setup(
    settings: &AcmeSettings,
    provider: Arc<CryptoProvider>,
) -> Result<Acme, AcmeSetupError> {
    make_private_dir(&settings.cache)?;
    let client = match &settings.directory_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|source| AcmeSetupError::DirectoryCa {
                    path: path.clone(),
                    source,
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(AcmeSetupError::NoDirectoryCa { path: path.clone() });
            }
            Some(Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ))
        }
        None => None,
    };
    let config = match client {
        Some(client) => AcmeConfig::new_with_client_config(&settings.domains, client),
        None => AcmeConfig::new_with_provider(&settings.domains, Arc::clone(&provider)),
    };
    let state = config
        .directory(&settings.directory)
        .contact(settings.email.iter().map(|e| format!("mailto:{e}")))
        .cache(DirCache::new(settings.cache.clone()))
        .state();
    let resolver = state.resolver() as Arc<dyn ResolvesServerCert>;
    let mut serve = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&resolver));
    serve.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut challenge = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    challenge.alpn_protocols = vec![rustls_acme::acme::ACME_TLS_ALPN_NAME.to_vec()];
    Ok(Acme {
        tls: AcmeTls {
            serve: Arc::new(serve),
            challenge: Arc::new(challenge),
        },
        state,
        settings: settings.clone(),
    })
}

/// The cache holds the account key and certificate keys: readable by the owner only.
/// (`rustls-acme` writes its files with the default mode; the directory guards them.)
fn make_private_dir(path: &Path) -> Result<(), AcmeSetupError> {
    let err = |source| AcmeSetupError::Cache {
        path: path.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(err)?;
    // Made by an earlier start or by hand: it must at least be a writable directory.
    let probe = path.join(".streamhub-write-test");
    std::fs::write(&probe, b"").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)
}

impl Acme {
    /// Loads, orders and renews until `shutdown`, logging and counting every event. The
    /// state retries a failed order by itself (1 s, 2 s, 4 s ... up to about 18 hours).
    pub(crate) async fn run(self, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        let Acme {
            mut state,
            settings,
            ..
        } = self;
        let domains = settings.domains.join(",");
        let directory = settings.directory.as_str();
        tracing::info!(%domains, %directory, cache = %settings.cache.display(), "ACME: looking for a cached certificate, else ordering one");
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                event = state.next() => event,
            };
            let Some(event) = event else { break };
            log_event(&event, &domains, directory, &metrics);
        }
    }
}

fn log_event<E: Debug + std::fmt::Display>(
    event: &Result<EventOk, EventError<E, E>>,
    domains: &str,
    directory: &str,
    metrics: &Metrics,
) {
    match event {
        Ok(EventOk::DeployedCachedCert) => {
            metrics.acme(AcmeEvent::DeployedCached);
            tracing::info!(%domains, "ACME: serving the cached certificate (no order)");
        }
        Ok(EventOk::DeployedNewCert) => {
            metrics.acme(AcmeEvent::DeployedNew);
            tracing::info!(%domains, %directory, "ACME: new certificate obtained; new connections get it");
        }
        Ok(EventOk::CertCacheStore) => {
            tracing::info!(%domains, "ACME: certificate stored in the cache");
        }
        Ok(EventOk::AccountCacheStore) => {
            tracing::info!(%directory, "ACME: new account key stored in the cache");
        }
        Err(EventError::Order(e)) => {
            metrics.acme(AcmeEvent::OrderFailed);
            tracing::warn!(%domains, %directory, error = %e, "ACME: certificate order failed; retrying with backoff, the current certificate (if any) is still served");
        }
        Err(e @ (EventError::CachedCertParse(_) | EventError::NewCertParse(_))) => {
            metrics.acme(AcmeEvent::BadCertificate);
            tracing::warn!(%domains, error = %e, "ACME: certificate unusable; ordering a new one");
        }
        Err(e) => {
            metrics.acme(AcmeEvent::CacheFailed);
            tracing::warn!(%domains, error = %e, "ACME: cache directory error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> AcmeSettings {
        AcmeSettings {
            domains: vec![String::from("live.example.com")],
            email: None,
            cache: dir.join("cache"),
            directory: String::from("https://127.0.0.1:1/dir"),
            directory_ca: None,
        }
    }

    #[test]
    fn setup_makes_a_private_cache_and_checks_the_ca_file() {
        let dir = tempfile::tempdir().expect("dir");
        let provider = Arc::new(crate::tls::crypto_provider());
        let s = settings(dir.path());
        setup(&s, Arc::clone(&provider)).expect("setup");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&s.cache)
                .expect("made")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }

        let garbage = dir.path().join("ca.pem");
        std::fs::write(&garbage, "not a certificate\n").expect("write");
        let e = setup(
            &AcmeSettings {
                directory_ca: Some(garbage),
                ..s.clone()
            },
            Arc::clone(&provider),
        )
        .expect_err("no CA in it");
        assert!(matches!(e, AcmeSetupError::NoDirectoryCa { .. }), "{e}");
        let e = setup(
            &AcmeSettings {
                directory_ca: Some(dir.path().join("missing.pem")),
                ..s.clone()
            },
            Arc::clone(&provider),
        )
        .expect_err("missing");
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let file = dir.path().join("a-file");
        std::fs::write(&file, "").expect("write");
        let e = setup(&AcmeSettings { cache: file, ..s }, provider).expect_err("cache is a file");
        assert!(matches!(e, AcmeSetupError::Cache { .. }), "{e}");
    }
}
