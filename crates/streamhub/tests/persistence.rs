//! What the database keeps across a restart: chat history per channel and finished sessions
//! with their numbers, written through the bus and flushed on a clean shutdown; and chat the
//! database cannot take. `tests/crash.rs` does the same across a `kill -9`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestResult, http_get, start, start_in};
use serde_json::{Value, json};
use streamhub_bench::{Client, ProtocolError};

/// Sends a chat line; the ack comes once it is stored and in the channel's history.
async fn chat(client: &mut Client, key: &str, text: &str) -> Result<(), ProtocolError> {
    client
        .request("chat:send", &json!({"streamKey": key, "message": text}))
        .await?;
    Ok(())
}

fn session<'a>(sessions: &'a Value, key: &str) -> &'a Value {
    sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["streamKey"] == key)
        .unwrap_or_else(|| panic!("no session {key} in {sessions}"))
}

#[tokio::test]
async fn chat_and_sessions_survive_a_restart() -> TestResult {
    let server = start(|_| {}).await;
    let (mut ana, key) = Client::streamer(&server.target, "Ana").await?;
    ana.request("stream:start", &json!({"streamKey": key}))
        .await?;
    let mut vi = Client::viewer(&server.target, "Vi").await?;
    vi.join(&key).await?;
    for i in 0..4 {
        ana.emit(
            "stream:data:send",
            &json!({"streamKey": key, "data": format!("frame{i}")}),
        )
        .await?;
    }
    // Handled in order: the last frame's ack means all five reached the viewer.
    let last = ana.send_frame(&key, "frame4").await?;
    assert_eq!((&last["seq"], &last["viewers"]), (&json!(5), &json!(1)));
    chat(&mut vi, &key, "hello from before").await?;
    vi.request("reaction:send", &json!({"streamKey": key, "type": "🔥"}))
        .await?;
    ana.request("stream:end", &json!({"streamKey": key}))
        .await?;
    vi.wait_for("stream:ended").await?;

    // A second stream is still live when the server stops: its session ends with the server,
    // and its last chat line (acknowledged just before) must be written too.
    let (mut bo, key2) = Client::streamer(&server.target, "Bo").await?;
    bo.request("stream:start", &json!({"streamKey": key2}))
        .await?;
    chat(&mut bo, &key2, "last words").await?;
    let dir = server.stop_keeping_db().await;

    let server = start_in(dir, |_| {}).await;
    let (status, sessions) = http_get(server.addr, "/api/sessions").await;
    assert_eq!(status, 200);
    let first = session(&sessions, &key);
    assert_eq!(first["streamer"], "Ana");
    assert_eq!(first["endReason"], "ended");
    assert_eq!(first["framesIn"], 5);
    assert_eq!(first["framesOut"], 5);
    assert_eq!(first["peakViewers"], 1);
    assert_eq!(first["chatMessages"], 1);
    assert_eq!(first["reactions"]["🔥"], 1);
    assert!(first["endedAt"].as_u64().unwrap() >= first["startedAt"].as_u64().unwrap());
    let second = session(&sessions, &key2);
    assert_eq!(second["endReason"], "server_shutdown");
    assert_eq!(second["chatMessages"], 1);

    // Ana's channel keeps its chat: a viewer of her next stream gets it at once.
    let (mut ana, key3) = Client::streamer(&server.target, "Ana").await?;
    ana.request("stream:start", &json!({"streamKey": key3}))
        .await?;
    let mut late = Client::viewer(&server.target, "Late").await?;
    late.join(&key3).await?;
    let history = late.wait_for("chat:history").await?;
    let messages = history.args[0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["message"], "hello from before");
    assert_eq!(messages[0]["user"]["username"], "Vi");
    // New messages join the stored ones.
    chat(&mut late, &key3, "after the restart").await?;
    let mut later = Client::viewer(&server.target, "Later").await?;
    later.join(&key3).await?;
    let history = later.wait_for("chat:history").await?;
    let texts: Vec<&str> = history.args[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello from before", "after the restart"]);
    server.stop().await;
    Ok(())
}

/// A database that cannot keep up (another process holds SQLite's write lock for a second)
/// behind a small queue (`--db-queue 16`): the chat messages past what the queue holds are
/// refused at once with `STORAGE_UNAVAILABLE` and sent to nobody; the others are acknowledged
/// once stored, and only those reach the room. The old server acknowledged and broadcast all
/// of them, and the ones that did not fit the queue were silently not stored.
#[tokio::test]
async fn chat_the_database_cannot_take_is_refused_and_sent_to_nobody() -> TestResult {
    use sqlx::Connection;
    const SENDERS: usize = 40;
    let server = start(|c| c.db_queue = 16).await;
    let (mut ana, key) = Client::streamer(&server.target, "Ana").await?;
    ana.request("stream:start", &json!({"streamKey": key}))
        .await?;
    let mut viewers = Vec::new();
    for i in 0..SENDERS {
        let mut v = Client::viewer(&server.target, &format!("v{i}")).await?;
        v.join(&key).await?;
        viewers.push(v);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(server.dir.path().join("streamhub.db"))
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut lock = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let sends: Vec<_> = viewers
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            let key = key.clone();
            tokio::spawn(async move {
                let text = format!("m{i}");
                let ack = v
                    .emit_ack("chat:send", &json!({"streamKey": key, "message": text}))
                    .await;
                (text, ack, v)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    let (mut stored, mut refused) = (Vec::new(), Vec::new());
    let mut keep = Vec::new();
    for send in sends {
        let (text, ack, v) = send.await.unwrap();
        keep.push(v);
        match ack?.into_ok() {
            Ok(_) => stored.push(text),
            Err(ProtocolError::Server { code, .. }) => {
                assert_eq!(code, "STORAGE_UNAVAILABLE", "{text}");
                refused.push(text);
            }
            Err(e) => return Err(e),
        }
    }
    assert!(!refused.is_empty(), "all {SENDERS} acknowledged");
    assert!(stored.len() >= 10, "only {} stored", stored.len());
    // Ana's own message comes back to her before its ack: everything broadcast before is
    // queued in front of it.
    ana.request("chat:send", &json!({"streamKey": key, "message": "marker"}))
        .await?;
    let mut broadcast: Vec<String> = ana
        .queued()
        .iter()
        .filter(|r| r.event == "chat:message")
        .map(|r| r.args[0]["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(broadcast.pop().as_deref(), Some("marker"));
    broadcast.sort();
    stored.sort();
    assert_eq!(
        broadcast, stored,
        "the room got exactly the stored messages"
    );
    let (status, sessions) = http_get(server.addr, "/api/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(
        session(&sessions, &key)["chatMessages"],
        json!(stored.len() + 1)
    );
    drop(keep);
    server.stop().await;
    Ok(())
}
