//! What the database keeps across a restart: chat history per channel and finished sessions
//! with their numbers, written through the bus and flushed on a clean shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, http_get, start, start_in};
use serde_json::{Value, json};

async fn chat(client: &mut Client, key: &str, text: &str) {
    client
        .emit("chat:send", json!({"streamKey": key, "message": text}))
        .await;
    client.wait_for("chat:message").await;
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
async fn chat_and_sessions_survive_a_restart() {
    let server = start(|_| {}).await;
    let (mut ana, key) = Client::streamer(server.addr, "Ana").await;
    ana.emit("stream:start", json!({"streamKey": key})).await;
    ana.wait_for("stream:started").await;
    let mut vi = Client::connect(server.addr).await;
    vi.register("Vi", "VIEWER").await;
    vi.emit("stream:join", json!({"streamKey": key})).await;
    vi.wait_for("stream:joined").await;
    for i in 0..5 {
        ana.emit(
            "stream:data:send",
            json!({"streamKey": key, "data": format!("frame{i}")}),
        )
        .await;
    }
    server.wait_frames_in(&key, 5).await;
    chat(&mut vi, &key, "hello from before").await;
    vi.emit("reaction:send", json!({"streamKey": key, "type": "🔥"}))
        .await;
    vi.wait_for("reaction").await;
    ana.emit("stream:end", json!({"streamKey": key})).await;
    vi.wait_for("stream:ended").await;

    // A second stream is still live when the server stops: its session ends with the server,
    // and its last chat line (acknowledged just before) must be written too.
    let (mut bo, key2) = Client::streamer(server.addr, "Bo").await;
    bo.emit("stream:start", json!({"streamKey": key2})).await;
    bo.wait_for("stream:started").await;
    chat(&mut bo, &key2, "last words").await;
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
    let (mut ana, key3) = Client::streamer(server.addr, "Ana").await;
    ana.emit("stream:start", json!({"streamKey": key3})).await;
    ana.wait_for("stream:started").await;
    let mut late = Client::connect(server.addr).await;
    late.register("Late", "VIEWER").await;
    late.emit("stream:join", json!({"streamKey": key3})).await;
    let history = late.wait_for("chat:history").await;
    let messages = history.args[0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["message"], "hello from before");
    assert_eq!(messages[0]["user"]["username"], "Vi");
    // New messages join the stored ones.
    chat(&mut late, &key3, "after the restart").await;
    let mut later = Client::connect(server.addr).await;
    later.register("Later", "VIEWER").await;
    later.emit("stream:join", json!({"streamKey": key3})).await;
    let history = later.wait_for("chat:history").await;
    let texts: Vec<&str> = history.args[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello from before", "after the restart"]);
    server.stop().await;
}
