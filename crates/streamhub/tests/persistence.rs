//! What the database keeps across a restart: chat history per channel and finished sessions
//! with their numbers, written through the bus and flushed on a clean shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestResult, http_get, start, start_in};
use serde_json::{Value, json};
use streamhub_bench::{Client, ProtocolError};

/// Sends a chat line; the ack comes once it is in the channel's history and on its way to
/// the database.
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
