//! The SQLite backend: one file, WAL, migrations embedded in the binary.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{ChatRecord, SessionRecord, Store, StoreError, StoreFuture, Write};
use streamhub_protocol::Millis;
use streamhub_protocol::server::PastStream;

/// Connections in the pool: the writer's plus a few readers (WAL lets them run alongside).
const POOL_SIZE: u32 = 4;

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
}

/// SQLite integers are signed; counters never get near `i64::MAX`.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (creating it if needed) and migrates the database file. A session a crash left
    /// open is closed as `interrupted` at its last checkpoint, with the totals checkpointed
    /// then (at its start, with zeros, if it had none).
    pub(crate) async fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Self::connect(path).await?;
        sqlx::query(
            "UPDATE sessions SET ended_at = MAX(started_at, COALESCE(checkpoint_at, started_at)), \
             end_reason = 'interrupted' WHERE ended_at IS NULL",
        )
        .execute(&store.pool)
        .await?;
        Ok(store)
    }

    /// Opens (creating it if needed) and migrates the database file, and nothing else: for
    /// `streamhub admin-token`, which may run beside a live server whose sessions are open.
    pub(crate) async fn connect(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL survives a process crash; only a power loss can lose the
            // latest commits, and it never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await?;
        sqlx::migrate!().run(&pool).await?;
        Ok(Self { pool })
    }

    /// The stored admin token (`admin_token`), if any.
    pub(crate) async fn admin_token(&self) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT token FROM admin_token WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores `token` as the admin token, replacing the stored one only when `replace`;
    /// returns the token stored afterwards.
    pub(crate) async fn store_admin_token(
        &self,
        token: &str,
        replace: bool,
    ) -> Result<String, StoreError> {
        let sql = if replace {
            "INSERT INTO admin_token (id, token, created_at) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET token = excluded.token, created_at = excluded.created_at"
        } else {
            "INSERT OR IGNORE INTO admin_token (id, token, created_at) VALUES (1, ?, ?)"
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql)
            .bind(token)
            .bind(int(crate::clock::now_ms()))
            .execute(&mut *tx)
            .await?;
        let stored = sqlx::query_scalar("SELECT token FROM admin_token WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Deletes the stored admin token; whether there was one.
    pub(crate) async fn clear_admin_token(&self) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM admin_token")
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn write_batch(&self, batch: Vec<Write>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Reactions come in bursts: one upsert per (stream, kind) per batch.
        let mut reactions: HashMap<(String, &'static str), i64> = HashMap::new();
        for write in batch {
            match write {
                Write::SessionStarted {
                    key,
                    title,
                    streamer,
                    at,
                } => {
                    sqlx::query(
                        "INSERT INTO sessions (stream_key, title, channel, streamer, started_at) \
                         VALUES (?, ?, ?, ?, ?) \
                         ON CONFLICT (stream_key) DO UPDATE SET title = excluded.title",
                    )
                    .bind(key)
                    .bind(title)
                    .bind(streamer.to_lowercase())
                    .bind(streamer)
                    .bind(int(at))
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Title { key, title } => {
                    sqlx::query("UPDATE sessions SET title = ? WHERE stream_key = ?")
                        .bind(title)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                Write::SessionEnded {
                    key,
                    at,
                    reason,
                    peak_viewers,
                    avg_viewers,
                    totals,
                } => {
                    sqlx::query(
                        "UPDATE sessions SET ended_at = ?, end_reason = ?, mode = ?, \
                         peak_viewers = ?, avg_viewers = ?, frames_in = ?, bytes_in = ?, \
                         frames_out = ?, bytes_out = ?, dropped = ? WHERE stream_key = ?",
                    )
                    .bind(int(at))
                    .bind(reason)
                    .bind(totals.mode.as_str())
                    .bind(int(peak_viewers as u64))
                    .bind(avg_viewers)
                    .bind(int(totals.frames_in))
                    .bind(int(totals.bytes_in))
                    .bind(int(totals.frames_out))
                    .bind(int(totals.bytes_out))
                    .bind(int(totals.dropped))
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Checkpoint { at, sessions } => {
                    for p in sessions {
                        // An ended session keeps its final numbers.
                        sqlx::query(
                            "UPDATE sessions SET checkpoint_at = ?, mode = ?, peak_viewers = ?, \
                             avg_viewers = ?, frames_in = ?, bytes_in = ?, frames_out = ?, \
                             bytes_out = ?, dropped = ? WHERE stream_key = ? AND ended_at IS NULL",
                        )
                        .bind(int(at))
                        .bind(p.totals.mode.as_str())
                        .bind(int(p.peak_viewers as u64))
                        .bind(p.avg_viewers)
                        .bind(int(p.totals.frames_in))
                        .bind(int(p.totals.bytes_in))
                        .bind(int(p.totals.frames_out))
                        .bind(int(p.totals.bytes_out))
                        .bind(int(p.totals.dropped))
                        .bind(p.key)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Write::Chat(c) => {
                    sqlx::query(
                        "INSERT OR IGNORE INTO chat_messages \
                         (id, channel, stream_key, user_id, username, message, at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(c.id)
                    .bind(c.channel)
                    .bind(c.stream_key)
                    .bind(c.user_id)
                    .bind(c.username)
                    .bind(c.message)
                    .bind(int(c.at))
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Reaction { key, kind } => *reactions.entry((key, kind)).or_default() += 1,
            }
        }
        for ((key, kind), n) in reactions {
            sqlx::query(
                "INSERT INTO reactions (stream_key, kind, count) VALUES (?, ?, ?) \
                 ON CONFLICT (stream_key, kind) DO UPDATE SET count = count + excluded.count",
            )
            .bind(key)
            .bind(kind)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn chat(&self, channel: &str, limit: usize) -> Result<Vec<ChatRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, channel, stream_key, user_id, username, message, at FROM chat_messages \
             WHERE channel = ? ORDER BY at DESC, rowid DESC LIMIT ?",
        )
        .bind(channel)
        .bind(int(limit as u64))
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(ChatRecord {
                    id: r.try_get("id")?,
                    channel: r.try_get("channel")?,
                    stream_key: r.try_get("stream_key")?,
                    user_id: r.try_get("user_id")?,
                    username: r.try_get("username")?,
                    message: r.try_get("message")?,
                    at: r.try_get::<i64, _>("at")?.max(0) as u64,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        out.reverse();
        Ok(out)
    }

    async fn list_sessions(&self, limit: usize) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.*, (SELECT COUNT(*) FROM chat_messages c WHERE c.stream_key = s.stream_key) \
             AS chat_messages FROM sessions s ORDER BY started_at DESC LIMIT ?",
        )
        .bind(int(limit as u64))
        .fetch_all(&self.pool)
        .await?;
        let u = |r: &sqlx::sqlite::SqliteRow, c: &str| -> Result<u64, sqlx::Error> {
            Ok(r.try_get::<i64, _>(c)?.max(0) as u64)
        };
        let mut sessions = rows
            .iter()
            .map(|r| {
                Ok(SessionRecord {
                    stream_key: r.try_get("stream_key")?,
                    title: r.try_get("title")?,
                    streamer: r.try_get("streamer")?,
                    started_at: u(r, "started_at")?,
                    ended_at: r
                        .try_get::<Option<i64>, _>("ended_at")?
                        .map(|v| v.max(0) as u64),
                    end_reason: r.try_get("end_reason")?,
                    mode: r.try_get("mode")?,
                    peak_viewers: u(r, "peak_viewers")?,
                    avg_viewers: r.try_get("avg_viewers")?,
                    frames_in: u(r, "frames_in")?,
                    bytes_in: u(r, "bytes_in")?,
                    frames_out: u(r, "frames_out")?,
                    bytes_out: u(r, "bytes_out")?,
                    dropped: u(r, "dropped")?,
                    chat_messages: u(r, "chat_messages")?,
                    reactions: BTreeMap::new(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let by_key: HashMap<String, usize> = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (s.stream_key.clone(), i))
            .collect();
        if !by_key.is_empty() {
            let rows = sqlx::query(
                "SELECT r.stream_key, r.kind, r.count FROM reactions r \
                 JOIN (SELECT stream_key FROM sessions ORDER BY started_at DESC LIMIT ?) s \
                 ON s.stream_key = r.stream_key",
            )
            .bind(int(limit as u64))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                let key: String = r.try_get("stream_key")?;
                if let Some(&i) = by_key.get(&key) {
                    sessions[i]
                        .reactions
                        .insert(r.try_get("kind")?, u(&r, "count")?);
                }
            }
        }
        Ok(sessions)
    }
}

impl Store for SqliteStore {
    fn write(&self, batch: Vec<Write>) -> StoreFuture<'_, ()> {
        Box::pin(self.write_batch(batch))
    }

    fn recent_chat<'a>(
        &'a self,
        channel: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ChatRecord>> {
        Box::pin(self.chat(channel, limit))
    }

    fn sessions(&self, limit: usize) -> StoreFuture<'_, Vec<SessionRecord>> {
        Box::pin(self.list_sessions(limit))
    }

    fn last_session<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<PastStream>> {
        Box::pin(async move {
            // Names are kept as typed; channels compare in lower case (the `channel` column,
            // indexed with the start time: one lookup per channel page or API read).
            let row = sqlx::query(
                "SELECT title, started_at, ended_at FROM sessions WHERE channel = ? \
                 ORDER BY started_at DESC LIMIT 1",
            )
            .bind(name.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(PastStream {
                title: r.try_get("title")?,
                started_at: r.try_get::<i64, _>("started_at")?.max(0) as u64,
                ended_at: r
                    .try_get::<Option<i64>, _>("ended_at")?
                    .map(|t| t.max(0) as u64),
            }))
        })
    }

    fn channel_claim<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let hash = sqlx::query_scalar("SELECT token_hash FROM channel_claims WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
            Ok(hash)
        })
    }

    fn claim_channel<'a>(
        &'a self,
        name: &'a str,
        token_hash: &'a str,
        at: Millis,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "INSERT OR IGNORE INTO channel_claims (name, token_hash, claimed_at) \
                 VALUES (?, ?, ?)",
            )
            .bind(name)
            .bind(token_hash)
            .bind(int(at))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::StreamTotals;
    use crate::store::SessionProgress;
    use streamhub_protocol::server::MediaMode;

    fn chat(i: u64, channel: &str) -> Write {
        Write::Chat(ChatRecord {
            id: format!("m{i}"),
            channel: channel.into(),
            stream_key: "sk_1".into(),
            user_id: "u1".into(),
            username: "bob".into(),
            message: format!("hello {i}"),
            at: 1000 + i,
        })
    }

    #[tokio::test]
    async fn a_claim_is_taken_once_and_survives_reopening_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path).await.expect("open");
        assert_eq!(store.channel_claim("carol").await.expect("read"), None);
        assert!(store.claim_channel("carol", "h1", 1).await.expect("claim"));
        assert!(!store.claim_channel("carol", "h2", 2).await.expect("second"));
        store.close().await.expect("close");
        let store = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(
            store.channel_claim("carol").await.expect("read").as_deref(),
            Some("h1"),
            "the first claim stands"
        );
    }

    #[tokio::test]
    async fn a_channel_s_last_session_has_its_latest_title_and_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("l.db"))
            .await
            .expect("open");
        assert_eq!(store.last_session("ana").await.expect("read"), None);
        let started = |key: &str, streamer: &str, at| Write::SessionStarted {
            key: key.into(),
            title: format!("{key} title"),
            streamer: streamer.into(),
            at,
        };
        store
            .write(vec![
                started("sk_old", "Ana", 1000),
                started("sk_new", "Ana", 2000),
                started("sk_bob", "bob", 3000),
                started("sk_uber", "Über", 4000),
                Write::Title {
                    key: "sk_new".into(),
                    title: "Renamed live".into(),
                },
            ])
            .await
            .expect("write");
        let running = store.last_session("ana").await.expect("read");
        assert_eq!(
            running,
            Some(PastStream {
                title: "Renamed live".into(),
                started_at: 2000,
                ended_at: None,
            }),
            "the newest of the channel (names compared in lower case), still running"
        );
        store
            .write(vec![Write::SessionEnded {
                key: "sk_new".into(),
                at: 2500,
                reason: "ended",
                peak_viewers: 0,
                avg_viewers: 0.0,
                totals: StreamTotals {
                    frames_in: 0,
                    bytes_in: 0,
                    frames_out: 0,
                    bytes_out: 0,
                    dropped: 0,
                    mode: MediaMode::Images,
                },
            }])
            .await
            .expect("end");
        let ended = store.last_session("ANA").await.expect("read");
        assert_eq!(ended.and_then(|p| p.ended_at), Some(2500));
        let uber = store.last_session("über").await.expect("read");
        assert_eq!(
            uber.map(|p| p.started_at),
            Some(4000),
            "non-ASCII names fold to lower case too"
        );
    }

    #[tokio::test]
    async fn sessions_chat_and_reactions_survive_reopening_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.expect("open");
        let mut batch = vec![Write::SessionStarted {
            key: "sk_1".into(),
            title: "Hi".into(),
            streamer: "ana".into(),
            at: 1000,
        }];
        batch.extend((0..60).map(|i| chat(i, "ana")));
        batch.push(chat(100, "other"));
        for kind in ["🔥", "🔥", "👍"] {
            batch.push(Write::Reaction {
                key: "sk_1".into(),
                kind,
            });
        }
        batch.push(Write::SessionEnded {
            key: "sk_1".into(),
            at: 5000,
            reason: "ended",
            peak_viewers: 3,
            avg_viewers: 1.5,
            totals: StreamTotals {
                frames_in: 10,
                bytes_in: 1000,
                frames_out: 30,
                bytes_out: 3000,
                dropped: 2,
                mode: MediaMode::Webm,
            },
        });
        store.write(batch).await.expect("write");
        store.close().await.expect("close");
        assert!(path.exists());

        let store = SqliteStore::open(&path).await.expect("reopen");
        let recent = store.recent_chat("ana", 50).await.expect("chat");
        assert_eq!(recent.len(), 50);
        assert_eq!(recent[0].id, "m10", "oldest of the newest 50 first");
        assert_eq!(recent[49].id, "m59");
        let sessions = store.sessions(10).await.expect("sessions");
        assert_eq!(sessions.len(), 1);
        let s = &sessions[0];
        assert_eq!(
            (s.ended_at, s.end_reason.as_deref()),
            (Some(5000), Some("ended"))
        );
        assert_eq!(
            (s.mode.as_str(), s.peak_viewers, s.frames_in, s.bytes_out),
            ("webm", 3, 10, 3000)
        );
        assert_eq!(s.chat_messages, 61);
        assert_eq!(s.reactions.get("🔥"), Some(&2));
        assert_eq!(s.reactions.get("👍"), Some(&1));
    }

    #[tokio::test]
    async fn a_session_left_open_by_a_crash_is_closed_on_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.expect("open");
        store
            .write(vec![Write::SessionStarted {
                key: "sk_2".into(),
                title: "t".into(),
                streamer: "ana".into(),
                at: 7,
            }])
            .await
            .expect("write");
        drop(store);
        let store = SqliteStore::open(&path).await.expect("reopen");
        let s = store.sessions(1).await.expect("sessions");
        assert_eq!(s[0].end_reason.as_deref(), Some("interrupted"));
        assert_eq!(s[0].ended_at, Some(7));
    }

    fn progress(key: &str, frames: u64) -> SessionProgress {
        SessionProgress {
            key: key.into(),
            peak_viewers: 4,
            avg_viewers: 2.5,
            totals: StreamTotals {
                frames_in: frames,
                bytes_in: frames * 100,
                frames_out: frames * 4,
                bytes_out: frames * 400,
                dropped: 1,
                mode: MediaMode::Webm,
            },
        }
    }

    /// A crash after a checkpoint: the session ends at the checkpoint with its totals, not at
    /// its start with zeros. A checkpoint never reopens or changes an ended session.
    #[tokio::test]
    async fn a_crashed_session_ends_at_its_last_checkpoint_with_its_totals() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.expect("open");
        let started = |key: &str| Write::SessionStarted {
            key: key.into(),
            title: "t".into(),
            streamer: "ana".into(),
            at: 1_000,
        };
        store
            .write(vec![
                started("live"),
                started("done"),
                Write::SessionEnded {
                    key: "done".into(),
                    at: 2_000,
                    reason: "ended",
                    peak_viewers: 1,
                    avg_viewers: 1.0,
                    totals: progress("done", 7).totals,
                },
            ])
            .await
            .expect("write");
        for (at, frames) in [(3_000, 10), (6_000, 20)] {
            store
                .write(vec![Write::Checkpoint {
                    at,
                    sessions: vec![progress("live", frames), progress("done", 99)],
                }])
                .await
                .expect("checkpoint");
        }
        let live = store.sessions(10).await.expect("sessions");
        let live = live.iter().find(|s| s.stream_key == "live").expect("live");
        assert_eq!((live.ended_at, live.frames_in), (None, 20), "still running");
        drop(store);

        let store = SqliteStore::open(&path).await.expect("reopen");
        let sessions = store.sessions(10).await.expect("sessions");
        let get = |k: &str| sessions.iter().find(|s| s.stream_key == k).expect(k);
        let live = get("live");
        assert_eq!(live.end_reason.as_deref(), Some("interrupted"));
        assert_eq!(live.ended_at, Some(6_000));
        assert_eq!(
            (
                live.frames_in,
                live.bytes_in,
                live.frames_out,
                live.bytes_out
            ),
            (20, 2_000, 80, 8_000)
        );
        assert_eq!(
            (live.peak_viewers, live.dropped, live.mode.as_str()),
            (4, 1, "webm")
        );
        assert!((live.avg_viewers - 2.5).abs() < 1e-9);
        let done = get("done");
        assert_eq!(done.ended_at, Some(2_000));
        assert_eq!(
            (done.end_reason.as_deref(), done.frames_in),
            (Some("ended"), 7)
        );
    }
}
