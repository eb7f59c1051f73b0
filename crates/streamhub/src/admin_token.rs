//! The admin token: what `/api/sessions` and the dashboard's data (`http::admin`) need.
//!
//! Which token a server enforces, decided once at start:
//! 1. `--admin-token`, when given;
//! 2. else the token stored in the database, when there is one;
//! 3. else, when the server listens on an address other machines can reach (anything but
//!    loopback, `0.0.0.0` included, the default), a new random one: stored in the database,
//!    printed once on stdout;
//! 4. else (loopback only, nothing stored) none: the routes are open, as on a developer's
//!    machine.
//!
//! Without `--admin-token` a running server re-reads the stored token every [`REFRESH`], so
//! `streamhub admin-token --rotate` takes effect without a restart and the old token stops
//! working. `--clear` takes effect at the next start (a running public server never opens up).
//!
//! The token is stored as is, not hashed, because `streamhub admin-token` shows it again
//! (the issue asks for that). Whoever can read the database file can read it, and they can
//! already read everything it protects but the live figures: sessions and chat are in that
//! file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// How often a running server re-reads the stored token.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);

/// Whether a server listening on `addr` can be reached from other machines: anything but a
/// loopback address (an IPv4-mapped `::ffff:127.0.0.1` is loopback too).
pub(crate) fn reachable_from_network(addr: SocketAddr) -> bool {
    !addr.ip().to_canonical().is_loopback()
}

/// The token a server enforces, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// `--admin-token`.
    Flag(String),
    /// The database's, from an earlier start or `streamhub admin-token --rotate`.
    Stored(String),
    /// Made and stored just now: listening beyond loopback with no token anywhere.
    Generated(String),
    /// None: loopback only, nothing stored. The admin routes are open.
    Open,
}

impl Resolved {
    pub(crate) fn token(&self) -> Option<&str> {
        match self {
            Self::Flag(t) | Self::Stored(t) | Self::Generated(t) => Some(t),
            Self::Open => None,
        }
    }
}

/// The token the admin routes compare against; replaced when the stored one is rotated.
#[derive(Debug, Default)]
pub(crate) struct AdminToken(parking_lot::RwLock<Option<Arc<str>>>);

impl AdminToken {
    pub(crate) fn new(token: Option<&str>) -> Self {
        Self(parking_lot::RwLock::new(token.map(Arc::from)))
    }

    /// The current token, `None` when the routes are open.
    pub(crate) fn get(&self) -> Option<Arc<str>> {
        self.0.read().clone()
    }

    /// Sets the token; whether it changed.
    pub(crate) fn set(&self, token: &str) -> bool {
        let mut current = self.0.write();
        if current.as_deref() == Some(token) {
            return false;
        }
        *current = Some(Arc::from(token));
        true
    }
}

/// The token a starting server enforces (see the module's list).
pub(crate) async fn resolve(
    flag: Option<&str>,
    store: &SqliteStore,
    bound: SocketAddr,
) -> Result<Resolved, StoreError> {
    if let Some(token) = flag {
        return Ok(Resolved::Flag(token.to_owned()));
    }
    if let Some(token) = store.admin_token().await? {
        return Ok(Resolved::Stored(token));
    }
    if !reachable_from_network(bound) {
        return Ok(Resolved::Open);
    }
    let new = crate::ids::admin_token();
    // Another process may have stored one meanwhile (a second server on the same file, the
    // subcommand): the stored one wins.
    let stored = store.store_admin_token(&new, false).await?;
    Ok(if stored == new {
        Resolved::Generated(stored)
    } else {
        Resolved::Stored(stored)
    })
}

/// Follows the stored token until `shutdown`: a rotation applies within [`REFRESH`].
pub(crate) async fn follow(
    token: Arc<AdminToken>,
    store: SqliteStore,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(REFRESH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        match store.admin_token().await {
            Ok(Some(stored)) => {
                failing = false;
                if token.set(&stored) {
                    tracing::info!("the stored admin token was replaced: the new one applies now");
                }
            }
            // Cleared: that applies at the next start.
            Ok(None) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the stored admin token; keeping the current one");
                }
                failing = true;
            }
        }
    }
}

/// What `streamhub admin-token` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Print the stored token.
    Show,
    /// Store a new random token and print it.
    Rotate,
    /// Delete the stored token.
    Clear,
}

/// Why `streamhub admin-token` failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error(
        "no database at {0}: start the server once, give --db (or --config), or use --rotate to create one"
    )]
    NoDatabase(PathBuf),
    #[error(
        "no admin token is stored in {0}: the server makes one on its first start on a non-loopback address; --rotate makes one now"
    )]
    NoneStored(PathBuf),
    #[error("database {path}: {message}")]
    Database { path: PathBuf, message: String },
}

/// What `streamhub admin-token` has to say: the token for stdout, a note for stderr.
#[derive(Debug)]
pub struct Outcome {
    pub token: Option<String>,
    pub note: String,
}

/// `streamhub admin-token [--rotate | --clear]` on the database `db`.
///
/// It opens the file next to a running server (SQLite's WAL allows that) without the
/// server's start-up steps: sessions a running server has open stay open.
pub async fn command(db: &Path, action: Action) -> Result<Outcome, AdminTokenError> {
    if action != Action::Rotate && !db.exists() {
        return Err(AdminTokenError::NoDatabase(db.to_owned()));
    }
    let failed = |e: StoreError| AdminTokenError::Database {
        path: db.to_owned(),
        message: e.to_string(),
    };
    let store = SqliteStore::connect(db).await.map_err(failed)?;
    let outcome = match action {
        Action::Show => match store.admin_token().await.map_err(failed)? {
            Some(token) => Ok(Outcome {
                token: Some(token),
                note: String::new(),
            }),
            None => Err(AdminTokenError::NoneStored(db.to_owned())),
        },
        Action::Rotate => {
            let token = store
                .store_admin_token(&crate::ids::admin_token(), true)
                .await
                .map_err(failed)?;
            Ok(Outcome {
                token: Some(token),
                note: format!(
                    "new admin token stored in {}; a running server started without --admin-token uses it within {} s, and the old one stops working",
                    db.display(),
                    REFRESH.as_secs()
                ),
            })
        }
        Action::Clear => {
            let removed = store.clear_admin_token().await.map_err(failed)?;
            Ok(Outcome {
                token: None,
                note: if removed {
                    String::from(
                        "admin token deleted; a running server keeps it until it restarts, then a server on a non-loopback address makes a new one",
                    )
                } else {
                    String::from("no admin token was stored")
                },
            })
        }
    };
    // Flushes the WAL; a failure here loses nothing already committed.
    if let Err(e) = store.close().await {
        tracing::debug!(error = %e, "closing the database");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_private() {
        for private in [
            "127.0.0.1:3000",
            "127.3.2.1:1",
            "[::1]:3000",
            "[::ffff:127.0.0.1]:80",
        ] {
            let addr: SocketAddr = private.parse().expect("addr");
            assert!(!reachable_from_network(addr), "{private}");
        }
        for public in [
            "0.0.0.0:3000",
            "[::]:3000",
            "192.168.1.5:3000",
            "10.0.0.1:80",
            "[2001:db8::1]:443",
        ] {
            let addr: SocketAddr = public.parse().expect("addr");
            assert!(reachable_from_network(addr), "{public}");
        }
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("store");
        (dir, store)
    }

    #[tokio::test]
    async fn the_flag_wins_then_the_stored_token_then_a_new_one_when_public() {
        let public: SocketAddr = "0.0.0.0:3000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:3000".parse().expect("addr");
        let (_dir, store) = store().await;
        assert_eq!(
            resolve(None, &store, local).await.expect("ok"),
            Resolved::Open
        );
        assert_eq!(
            store.admin_token().await.expect("ok"),
            None,
            "nothing stored on loopback"
        );
        let Resolved::Generated(made) = resolve(None, &store, public).await.expect("ok") else {
            panic!("no token generated on 0.0.0.0");
        };
        assert!(made.starts_with("at_") && made.len() == 35, "{made}");
        // Kept: the same one on the next start, on any address.
        for addr in [public, local] {
            assert_eq!(
                resolve(None, &store, addr).await.expect("ok"),
                Resolved::Stored(made.clone())
            );
        }
        assert_eq!(
            resolve(Some("mine"), &store, public).await.expect("ok"),
            Resolved::Flag(String::from("mine"))
        );
    }

    #[test]
    fn the_holder_swaps_tokens() {
        let t = AdminToken::new(None);
        assert!(t.get().is_none());
        assert!(t.set("a"));
        assert!(!t.set("a"));
        assert!(t.set("b"));
        assert_eq!(t.get().as_deref(), Some("b"));
    }
}
