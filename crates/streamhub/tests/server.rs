//! The real server on port 0, driven over raw Engine.IO websockets.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, http_get, start};
use serde_json::json;

#[tokio::test]
async fn register_create_publish_join_and_buffer() {
    let server = start(|_| {}).await;
    let mut streamer = Client::connect(server.addr).await;
    streamer.register("Ana", "STREAMER").await;
    let created = streamer.wait_for("stream:created").await;
    let key = created.args[0]["stream"]["streamKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created.args[0]["publishToken"].as_str().unwrap().len() > 20);

    streamer
        .emit("stream:start", json!({"streamKey": key}))
        .await;
    streamer.wait_for("stream:started").await;
    for i in 0..35 {
        streamer
            .emit(
                "stream:data:send",
                json!({"streamKey": key, "data": format!("frame{i}")}),
            )
            .await;
    }

    // A late joiner gets the last 30 frames, oldest first, then live frames.
    let mut viewer = Client::connect(server.addr).await;
    viewer.register("Vi", "VIEWER").await;
    // Frames are handled in order on the streamer's connection; wait until all 35 are in.
    server.wait_frames_in(&key, 35).await;
    viewer.emit("stream:join", json!({"streamKey": key})).await;
    let joined = viewer.wait_for("stream:joined").await;
    assert_eq!(joined.args[0]["viewerCount"], 1);
    let buffer = viewer.next_event().await;
    assert_eq!(buffer.event, "stream:buffer");
    let frames = buffer.args[0]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 30);
    assert_eq!(frames[0]["data"], "frame5");
    assert_eq!(frames[0]["seq"], 6);
    assert_eq!(frames[29]["data"], "frame34");

    streamer
        .emit(
            "stream:data:send",
            json!({"streamKey": key, "data": "live"}),
        )
        .await;
    let live = viewer.wait_for("stream:data").await;
    assert_eq!(live.args[0]["data"], "live");
    assert_eq!(live.args[0]["seq"], 36);

    // Binary in, binary out, same bytes.
    let bytes = b"plain ascii bytes".to_vec();
    streamer
        .emit_binary(
            "stream:data:send",
            json!({"streamKey": key}),
            "data",
            bytes.clone(),
        )
        .await;
    let bin = viewer.wait_for("stream:data").await;
    assert_eq!(bin.binaries, vec![bytes]);
    assert_eq!(bin.args[0]["data"]["_placeholder"], true);

    let (status, health) = http_get(server.addr, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["connections"], 2);
    let (_, list) = http_get(server.addr, "/api/streams").await;
    assert_eq!(list["streams"][0]["streamKey"], key.as_str());

    server.shutdown.cancel();
    let ended = viewer.wait_for("stream:ended").await;
    assert_eq!(ended.args[0]["reason"], "server_shutdown");
    server.handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_connection_survives() {
    let server = start(|_| {}).await;
    let mut c = Client::connect(server.addr).await;
    c.emit("stream:join", json!({"streamKey": "sk_x"})).await;
    let e = c.wait_for("error").await;
    assert_eq!(e.args[0]["code"], "NOT_REGISTERED");

    c.emit("user:register", json!(42)).await;
    assert_eq!(c.wait_for("error").await.args[0]["code"], "INVALID_PAYLOAD");
    c.emit(
        "user:register",
        json!({"username": "x".repeat(100_000), "role": "VIEWER"}),
    )
    .await;
    assert_eq!(
        c.wait_for("error").await.args[0]["code"],
        "INVALID_USERNAME"
    );

    c.register("ok", "VIEWER").await;
    c.emit("stream:join", json!({"streamKey": "sk_unknown"}))
        .await;
    let e = c.wait_for("error").await;
    assert_eq!(e.args[0]["code"], "STREAM_NOT_FOUND");
    assert_eq!(e.args[0]["event"], "stream:join");
    c.emit("stream:create", json!({})).await;
    assert_eq!(c.wait_for("error").await.args[0]["code"], "NOT_STREAMER");

    // Still connected and served.
    c.emit("stream:list", json!(null)).await;
    let list = c.wait_for("stream:list").await;
    assert_eq!(list.args[0]["streams"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn binary_catch_up_comes_in_messages_of_at_most_ten_frames() {
    let server = start(|_| {}).await;
    let (mut streamer, key) = Client::streamer(server.addr, "Ana").await;
    for i in 0..25u8 {
        streamer
            .emit_binary(
                "stream:data:send",
                json!({"streamKey": key}),
                "data",
                vec![i; 3],
            )
            .await;
    }
    server.wait_frames_in(&key, 25).await;
    let mut viewer = Client::connect(server.addr).await;
    viewer.register("Vi", "VIEWER").await;
    viewer.emit("stream:join", json!({"streamKey": key})).await;
    viewer.wait_for("stream:joined").await;
    let mut seen = Vec::new();
    for expected in [10, 10, 5] {
        let b = viewer.next_event().await;
        assert_eq!(b.event, "stream:buffer");
        assert_eq!(b.binaries.len(), expected);
        seen.extend(b.binaries);
    }
    // Oldest first, every frame once, bytes intact.
    let firsts: Vec<u8> = seen.iter().map(|b| b[0]).collect();
    assert_eq!(firsts, (0..25).collect::<Vec<u8>>());
    server.stop().await;
}

#[tokio::test]
async fn a_late_viewer_gets_the_channel_chat_history() {
    let server = start(|_| {}).await;
    let (_streamer, key) = Client::streamer(server.addr, "Ana").await;
    let mut early = Client::connect(server.addr).await;
    early.register("Early", "VIEWER").await;
    early.emit("stream:join", json!({"streamKey": key})).await;
    early.wait_for("stream:joined").await;
    for text in ["first", "second"] {
        early
            .emit("chat:send", json!({"streamKey": key, "message": text}))
            .await;
        early.wait_for("chat:message").await;
    }
    let mut late = Client::connect(server.addr).await;
    late.register("Late", "VIEWER").await;
    late.emit("stream:join", json!({"streamKey": key})).await;
    let history = late.wait_for("chat:history").await;
    let messages = history.args[0]["messages"].as_array().unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(messages[0]["user"]["username"], "Early");
    server.stop().await;
}
