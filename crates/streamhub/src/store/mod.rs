//! Storage: past sessions, chat and reaction totals, behind the small [`Store`] interface.
//!
//! SQLite ([`sqlite::SqliteStore`]) is the only backend today; a PostgreSQL one for several
//! nodes implements the same four methods. One writer task commits every write, in batches:
//! [`writer`] turns bus events into [`Write`]s and queues them (bounded); a chat message is
//! queued by its handler, which waits for the commit before anyone sees the message.

pub(crate) mod sqlite;
pub(crate) mod writer;

use std::future::Future;
use std::pin::Pin;

use streamhub_protocol::Millis;
use streamhub_protocol::server::{ChatMessage, PastStream, UserRef};

use crate::bus::StreamTotals;

/// Why the database could not do something.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("this store keeps no {0}")]
    Unsupported(&'static str),
}

/// One change to persist.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write {
    SessionStarted {
        key: String,
        title: String,
        streamer: String,
        at: Millis,
    },
    SessionEnded {
        key: String,
        at: Millis,
        reason: &'static str,
        peak_viewers: usize,
        avg_viewers: f64,
        totals: StreamTotals,
    },
    /// The running totals of live sessions, so a crash loses at most one checkpoint interval.
    Checkpoint {
        at: Millis,
        sessions: Vec<SessionProgress>,
    },
    Chat(ChatRecord),
    Reaction {
        key: String,
        kind: &'static str,
    },
    /// A live session's new title (`stream:title`).
    Title {
        key: String,
        title: String,
    },
}

/// One live session's numbers so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionProgress {
    pub key: String,
    pub peak_viewers: usize,
    pub avg_viewers: f64,
    pub totals: StreamTotals,
}

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub id: String,
    pub channel: String,
    pub stream_key: String,
    pub user_id: String,
    pub username: String,
    pub message: String,
    pub at: Millis,
}

impl From<ChatRecord> for ChatMessage {
    fn from(r: ChatRecord) -> Self {
        ChatMessage {
            id: r.id,
            stream_key: r.stream_key,
            user: UserRef {
                id: r.user_id,
                username: r.username,
            },
            message: r.message,
            timestamp: r.at,
        }
    }
}

/// A past (or running) stream, as `GET /api/sessions` reports it (a wire type).
pub(crate) use streamhub_protocol::api::SessionRecord;

/// What a backend's methods return.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The storage interface. Methods are object-safe so the server holds an `Arc<dyn Store>`.
pub(crate) trait Store: Send + Sync + std::fmt::Debug {
    /// Applies `batch` in order, all or nothing.
    fn write(&self, batch: Vec<Write>) -> StoreFuture<'_, ()>;
    /// The channel's newest `limit` messages, oldest first.
    fn recent_chat<'a>(
        &'a self,
        channel: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ChatRecord>>;
    /// The newest `limit` sessions, newest first.
    fn sessions(&self, limit: usize) -> StoreFuture<'_, Vec<SessionRecord>>;
    /// The newest session of the channel `name` (a streamer's name, lower case).
    fn last_session<'a>(&'a self, _name: &'a str) -> StoreFuture<'a, Option<PastStream>> {
        Box::pin(async { Err(StoreError::Unsupported("channel sessions")) })
    }
    /// The token hash of a claimed channel name (`None`: unclaimed). Read at once, not
    /// through the write queue: a registration waits for it. A store without claims refuses
    /// (so a claimed name is never let through unchecked).
    fn channel_claim<'a>(&'a self, _name: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async { Err(StoreError::Unsupported("channel claims")) })
    }
    /// Claims `name` with `token_hash` unless it is claimed already; whether this call did.
    fn claim_channel<'a>(
        &'a self,
        _name: &'a str,
        _token_hash: &'a str,
        _at: Millis,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::Unsupported("channel claims")) })
    }
    /// Flushes and closes; later calls fail.
    fn close(&self) -> StoreFuture<'_, ()>;
}
