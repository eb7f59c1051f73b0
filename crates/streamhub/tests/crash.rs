//! `kill -9`: what the server acknowledged is on disk when it dies, and a session it was
//! running keeps its numbers up to the last checkpoint. These start the real binary (a crash
//! cannot be staged inside the test's own process) and speak to it with the raw client.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestResult, http_get};
use serde_json::{Value, json};
use sqlx::{Connection, Row, SqliteConnection};
use streamhub_bench::{Client, Target};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `target/debug/streamhub serve --bind 127.0.0.1:0 --db DB`, killed with SIGKILL on drop.
struct Binary {
    child: Child,
    addr: SocketAddr,
    target: Target,
}

impl Binary {
    async fn start(db: &Path) -> Binary {
        let log = std::fs::File::create(db.with_extension("log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_streamhub"))
            .args(["serve", "--bind", "127.0.0.1:0", "--db"])
            .arg(db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("streamhub listening on http://") {
                    return url.trim().parse::<SocketAddr>().unwrap();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the listening line within 20 s");
        // Keep reading stdout so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Binary {
            child,
            addr,
            target: Target::from(addr),
        }
    }

    /// SIGKILL: no drain, no flush, nothing the server can do about it.
    async fn kill_9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

fn session<'a>(sessions: &'a Value, key: &str) -> &'a Value {
    sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["streamKey"] == key)
        .unwrap_or_else(|| panic!("no session {key} in {sessions}"))
}

async fn open(db: &Path) -> SqliteConnection {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(5));
    SqliteConnection::connect_with(&options).await.unwrap()
}

/// The attack: the database is slow to commit (another process holds SQLite's write lock for
/// half a second), a viewer sends a chat message, and the server is killed the moment the ack
/// arrives. The old server acknowledged at once, before the write, so the message died with
/// it. Now the ack waits for the commit, and the message is there after the restart.
#[tokio::test]
async fn a_chat_message_acknowledged_just_before_kill_9_is_kept() -> TestResult {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let mut server = Binary::start(&db).await;
    let (mut ana, key) = Client::streamer(&server.target, "Ana").await?;
    ana.request("stream:start", &json!({"streamKey": key}))
        .await?;
    let mut vi = Client::viewer(&server.target, "Vi").await?;
    vi.join(&key).await?;
    vi.request("chat:send", &json!({"streamKey": key, "message": "first"}))
        .await?;

    let mut lock = open(&db).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let payload = json!({"streamKey": key, "message": "acked, then kill -9"});
    let sent = Instant::now();
    let send = vi.request("chat:send", &payload);
    tokio::pin!(send);
    let release = tokio::time::sleep(Duration::from_millis(500));
    tokio::pin!(release);
    let mut released = None;
    let ack = loop {
        tokio::select! {
            ack = &mut send => break ack,
            () = &mut release, if released.is_none() => {
                sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
                released = Some(sent.elapsed());
            }
        }
    };
    let acked = sent.elapsed();
    server.kill_9().await;
    if released.is_none() {
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    }
    lock.close().await.unwrap();
    ack?;

    // What the file holds after the crash.
    let mut conn = open(&db).await;
    let stored: Vec<String> = sqlx::query("SELECT message FROM chat_messages ORDER BY at, rowid")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("message"))
        .collect();
    conn.close().await.unwrap();
    assert_eq!(
        stored,
        ["first", "acked, then kill -9"],
        "acknowledged after {acked:?}, lock released after {released:?}"
    );
    assert!(
        released.is_some_and(|r| acked >= r),
        "acknowledged after {acked:?}, before the database could store it ({released:?})"
    );

    // And what a client sees after the restart: the history, and the session's chat count.
    let server = Binary::start(&db).await;
    let (status, sessions) = http_get(server.addr, "/api/sessions").await;
    assert_eq!(status, 200);
    let s = session(&sessions, &key);
    assert_eq!(s["endReason"], "interrupted");
    assert_eq!(s["chatMessages"], 2);
    let (mut ana, key2) = Client::streamer(&server.target, "Ana").await?;
    ana.request("stream:start", &json!({"streamKey": key2}))
        .await?;
    let mut late = Client::viewer(&server.target, "Late").await?;
    late.join(&key2).await?;
    let history = late.wait_for("chat:history").await?;
    let lines: Vec<&str> = history.args[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["first", "acked, then kill -9"]);
    Ok(())
}

/// A stream that ran for longer than the checkpoint interval, then `kill -9`: after the
/// restart its session is `interrupted` at its last checkpoint, with the frames and viewers
/// counted by then. The old server recorded it as ending when it started, with zeros.
#[tokio::test]
async fn a_session_killed_mid_stream_keeps_its_checkpointed_totals() -> TestResult {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let mut server = Binary::start(&db).await;
    let (mut ana, key) = Client::streamer(&server.target, "Ana").await?;
    ana.request("stream:start", &json!({"streamKey": key}))
        .await?;
    let mut vi = Client::viewer(&server.target, "Vi").await?;
    vi.join(&key).await?;
    // 3 s of frames: any 3 s hold a checkpoint (every 2 s) at least 1 s after the start.
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        ana.send_frame(&key, &format!("frame{sent}")).await?;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill_9().await;

    let server = Binary::start(&db).await;
    let (status, sessions) = http_get(server.addr, "/api/sessions").await;
    assert_eq!(status, 200);
    let s = session(&sessions, &key);
    assert_eq!(s["endReason"], "interrupted");
    let (start, end) = (
        s["startedAt"].as_u64().unwrap(),
        s["endedAt"].as_u64().unwrap(),
    );
    assert!(
        end >= start + 1000,
        "ended {} ms after its start",
        end - start
    );
    let frames = s["framesIn"].as_u64().unwrap();
    assert!(
        frames >= 10 && frames <= sent,
        "{frames} frames of {sent} in {s}"
    );
    assert!(s["bytesIn"].as_u64().unwrap() > 0, "{s}");
    assert!(s["framesOut"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["peakViewers"], 1, "{s}");
    Ok(())
}
