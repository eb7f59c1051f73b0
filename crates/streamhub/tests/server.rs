//! The real server on port 0, driven over raw Engine.IO websockets.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestResult, http_get, http_raw, start};
use serde_json::json;
use streamhub_bench::Client;
use streamhub_protocol::client::Role;

#[tokio::test]
async fn register_create_publish_join_and_buffer() -> TestResult {
    let server = start(|_| {}).await;
    let mut streamer = Client::connect(&server.target).await?;
    streamer.register("Ana", Role::Streamer).await?;
    let created = streamer.wait_for("stream:created").await?;
    let key = created.args[0]["stream"]["streamKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created.args[0]["publishToken"].as_str().unwrap().len() > 20);

    let started = streamer
        .request("stream:start", &json!({"streamKey": key}))
        .await?;
    assert_eq!(started["stream"]["status"], "live");
    streamer.wait_for("stream:started").await?;
    for i in 0..34 {
        streamer
            .emit(
                "stream:data:send",
                &json!({"streamKey": key, "data": format!("frame{i}")}),
            )
            .await?;
    }
    // Frames are handled in order on the streamer's connection: the last one's ack means
    // all 35 are in.
    let last = streamer.send_frame(&key, "frame34").await?;
    assert_eq!((&last["seq"], &last["viewers"]), (&json!(35), &json!(0)));

    // A late joiner gets the last 30 frames, oldest first, then live frames.
    let mut viewer = Client::viewer(&server.target, "Vi").await?;
    let ack = viewer.join(&key).await?;
    assert_eq!(
        (&ack["viewerCount"], &ack["media"]),
        (&json!(1), &json!(false))
    );
    let joined = viewer.wait_for("stream:joined").await?;
    assert_eq!(joined.args[0]["viewerCount"], 1);
    let buffer = viewer.next_event().await?;
    assert_eq!(buffer.event, "stream:buffer");
    let frames = buffer.args[0]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 30);
    assert_eq!(frames[0]["data"], "frame5");
    assert_eq!(frames[0]["seq"], 6);
    assert_eq!(frames[29]["data"], "frame34");

    let live = streamer.send_frame(&key, "live").await?;
    assert_eq!((&live["seq"], &live["viewers"]), (&json!(36), &json!(1)));
    let live = viewer.wait_for("stream:data").await?;
    assert_eq!(live.args[0]["data"], "live");
    assert_eq!(live.args[0]["seq"], 36);

    // Binary in, binary out, same bytes.
    let bytes = b"plain ascii bytes".to_vec();
    let sent = streamer.send_binary_frame(&key, bytes.clone()).await?;
    assert_eq!(sent["seq"], 37);
    let bin = viewer.wait_for("stream:data").await?;
    assert_eq!(bin.binaries, vec![bytes.clone()]);
    assert_eq!(bin.binary(&bin.args[0]["data"]).unwrap(), &bytes);
    assert_eq!(bin.args[0]["seq"], 37);

    let (status, health) = http_get(server.addr, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["connections"], 2);
    let (_, list) = http_get(server.addr, "/api/streams").await;
    assert_eq!(list["streams"][0]["streamKey"], key.as_str());
    // Every response, pages, API and errors alike, keeps stream keys out of referrers.
    for path in ["/healthz", "/viewer.html", "/no/such/page"] {
        let head = http_raw(server.addr, path).await.to_ascii_lowercase();
        let head = head.split("\r\n\r\n").next().unwrap_or_default();
        assert!(
            head.contains("\r\nreferrer-policy: no-referrer"),
            "{path}: {head}"
        );
        assert!(
            head.contains("\r\nx-content-type-options: nosniff"),
            "{path}: {head}"
        );
    }

    server.shutdown.cancel();
    let ended = viewer.wait_for("stream:ended").await?;
    assert_eq!(ended.args[0]["reason"], "server_shutdown");
    server.handle.await.unwrap().unwrap();
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_connection_survives() -> TestResult {
    let server = start(|_| {}).await;
    let mut c = Client::connect(&server.target).await?;
    c.emit("stream:join", &json!({"streamKey": "sk_x"})).await?;
    let e = c.wait_for("error").await?;
    assert_eq!(e.args[0]["code"], "NOT_REGISTERED");

    c.emit("user:register", &json!(42)).await?;
    assert_eq!(
        c.wait_for("error").await?.args[0]["code"],
        "INVALID_PAYLOAD"
    );
    c.emit(
        "user:register",
        &json!({"username": "x".repeat(100_000), "role": "VIEWER"}),
    )
    .await?;
    assert_eq!(
        c.wait_for("error").await?.args[0]["code"],
        "INVALID_USERNAME"
    );

    c.register("ok", Role::Viewer).await?;
    // A refusal is an `error` event and, when asked for, a failure ack.
    let refused = c
        .emit_ack("stream:join", &json!({"streamKey": "sk_unknown"}))
        .await?;
    assert_eq!(refused.args[0]["ok"], false);
    assert_eq!(refused.args[0]["error"]["code"], "STREAM_NOT_FOUND");
    let e = c.wait_for("error").await?;
    assert_eq!(e.args[0]["code"], "STREAM_NOT_FOUND");
    assert_eq!(e.args[0]["event"], "stream:join");
    c.emit("stream:create", &json!({})).await?;
    assert_eq!(c.wait_for("error").await?.args[0]["code"], "NOT_STREAMER");

    // Still connected and served.
    let list = c.request("stream:list", &json!(null)).await?;
    assert_eq!(list["streams"], json!([]));
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn binary_catch_up_comes_in_messages_of_at_most_ten_frames() -> TestResult {
    let server = start(|_| {}).await;
    let (mut streamer, key) = Client::streamer(&server.target, "Ana").await?;
    for i in 0..24u8 {
        streamer
            .emit_binary(
                "stream:data:send",
                json!({"streamKey": key}),
                "data",
                vec![i; 3],
            )
            .await?;
    }
    // The last frame's ack: all 25 are in (handled in order).
    let last = streamer.send_binary_frame(&key, vec![24u8; 3]).await?;
    assert_eq!(last["seq"], 25);
    let mut viewer = Client::viewer(&server.target, "Vi").await?;
    viewer.join(&key).await?;
    viewer.wait_for("stream:joined").await?;
    let mut seen = Vec::new();
    for expected in [10, 10, 5] {
        let b = viewer.next_event().await?;
        assert_eq!(b.event, "stream:buffer");
        assert_eq!(b.binaries.len(), expected);
        // Each frame's placeholder names its own attachment.
        for frame in b.args[0]["frames"].as_array().unwrap() {
            seen.push(b.binary(&frame["data"]).unwrap().clone());
        }
    }
    // Oldest first, every frame once, bytes intact.
    let firsts: Vec<u8> = seen.iter().map(|b| b[0]).collect();
    assert_eq!(firsts, (0..25).collect::<Vec<u8>>());
    assert!(
        seen.iter()
            .all(|b| b.len() == 3 && b[1] == b[0] && b[2] == b[0])
    );
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_late_viewer_gets_the_channel_chat_history() -> TestResult {
    let server = start(|_| {}).await;
    let (_streamer, key) = Client::streamer(&server.target, "Ana").await?;
    let mut early = Client::viewer(&server.target, "Early").await?;
    early.join(&key).await?;
    let mut ids = Vec::new();
    for text in ["first", "second"] {
        // Acked once the message is in the channel's history.
        let sent = early
            .request("chat:send", &json!({"streamKey": key, "message": text}))
            .await?;
        ids.push(sent["id"].clone());
    }
    let mut late = Client::viewer(&server.target, "Late").await?;
    late.join(&key).await?;
    let history = late.wait_for("chat:history").await?;
    let messages = history.args[0]["messages"].as_array().unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(messages[0]["user"]["username"], "Early");
    let history_ids: Vec<_> = messages.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(history_ids, ids);
    server.stop().await;
    Ok(())
}
