//! The media channel (`GET /media?sid=SID`, `docs/protocol.md` "Media channel") against the
//! real server: frames move there and only there, refusals, and closing it ends the joins.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, TestResult, http_get, start};
use serde_json::{Value, json};
use streamhub_bench::{Client, MediaChannel, ProtocolError};
use streamhub_protocol::server::MediaMode;

/// A started stream and its streamer.
async fn live_stream(server: &Server) -> Result<(Client, String), ProtocolError> {
    let (mut streamer, key) = Client::streamer(&server.target, "Ana").await?;
    streamer
        .request("stream:start", &json!({"streamKey": key}))
        .await?;
    Ok((streamer, key))
}

/// How many `stream:data` reached `client` over Socket.IO so far: a round trip (the
/// `stream:list` ack) comes after anything the server queued for it before.
async fn socketio_frames(client: &mut Client) -> Result<usize, ProtocolError> {
    client.request("stream:list", &Value::Null).await?;
    Ok(client
        .queued()
        .iter()
        .filter(|r| r.event == "stream:data")
        .count())
}

/// The refusal of a media-channel upgrade: its HTTP status and JSON body.
fn refusal(opened: Result<MediaChannel, ProtocolError>) -> (u16, Value) {
    match opened {
        Err(ProtocolError::Rejected { status, body }) => {
            (status, serde_json::from_str(&body).unwrap())
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a media channel"),
    }
}

#[tokio::test]
async fn frames_go_over_the_media_channel_and_not_over_socket_io() -> TestResult {
    let server = start(|_| {}).await;
    let (mut streamer, key) = live_stream(&server).await?;
    let mut vi = Client::viewer(&server.target, "Vi").await?;
    let mut media = vi.open_media().await?;
    let joined = vi.join(&key).await?;
    assert_eq!(joined["media"], true);
    // The same steps without a media channel, to show they would see Socket.IO frames.
    let mut plain = Client::viewer(&server.target, "Plain").await?;
    assert_eq!(plain.join(&key).await?["media"], false);

    let text = "aGVsbG8gbWVkaWE="; // "hello media", as the seed's pages send frames
    let sent = streamer.send_frame(&key, text).await?;
    assert_eq!((&sent["seq"], &sent["viewers"]), (&json!(1), &json!(2)));
    let bytes = vec![0u8, 1, 2, 0x1a, 0xfe, 0xff];
    let sent = streamer.send_binary_frame(&key, bytes.clone()).await?;
    assert_eq!((&sent["seq"], &sent["viewers"]), (&json!(2), &json!(2)));

    let (header, payload) = media.next_frame().await?;
    assert_eq!(header.stream_key, key);
    assert_eq!(header.seq, 1);
    assert_eq!(header.media, MediaMode::Images);
    assert!(header.data.text, "base64 text stays text");
    assert_eq!(&payload[..], text.as_bytes());
    assert!(!header.key && !header.init && !header.resync);
    let (header2, payload2) = media.next_frame().await?;
    assert_eq!(
        (header2.stream_key.as_str(), header2.seq, header2.media),
        (key.as_str(), 2, MediaMode::Images)
    );
    assert!(!header2.data.text, "binary stays binary");
    assert_eq!(&payload2[..], &bytes[..]);

    assert_eq!(socketio_frames(&mut vi).await?, 0);
    assert_eq!(socketio_frames(&mut plain).await?, 2);
    // The header is the `stream:data` payload without its data.
    let over_socketio: Vec<_> = plain
        .queued()
        .iter()
        .filter(|r| r.event == "stream:data")
        .collect();
    let first = &over_socketio[0].args[0];
    assert_eq!(first["data"], text);
    assert_eq!(first["timestamp"], header.timestamp);
    assert_eq!(first["seq"], header.seq);
    assert_eq!(first["media"], "images");
    assert_eq!(over_socketio[1].binaries, vec![bytes]);
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_connection_id_opens_nothing_and_tokens_work_once() -> TestResult {
    let server = start(|_| {}).await;
    let mut vi = Client::viewer(&server.target, "Vi").await?;
    // The attack (issue 14, hole 1): the victim's connection id shows in polling URLs and proxy
    // logs. With it alone, the previous server handed the attacker the victim's channel.
    for query in [
        format!("sid={}", vi.sid),
        String::from("sid=nope"),
        String::new(),
    ] {
        let (status, body) = refusal(MediaChannel::open(&server.target, &query).await);
        assert_eq!(status, 401, "{query}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{query}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("media:token")
        );
    }
    let (status, _) = refusal(MediaChannel::open(&server.target, "token=mt_madeup").await);
    assert_eq!(status, 401, "a made-up token");
    // A token opens its own connection's channel, once.
    let token = vi.media_token().await?;
    let query = format!("token={token}");
    // A plain GET is no websocket: refused before the token is spent.
    let (status, body) = http_get(server.addr, &format!("/media?{query}")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_PAYLOAD");
    let first = MediaChannel::open(&server.target, &query).await?;
    let (status, _) = refusal(MediaChannel::open(&server.target, &query).await);
    assert_eq!(status, 401, "a token works once");
    first.close().await?;
    // A newer token replaces the connection's older one.
    let older = vi.media_token().await?;
    let _newer = vi.media_token().await?;
    let (status, _) = refusal(MediaChannel::open(&server.target, &format!("token={older}")).await);
    assert_eq!(status, 401, "a replaced token");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn second_channels_are_refused_and_a_closed_one_makes_room() -> TestResult {
    let server = start(|_| {}).await;
    let mut vi = Client::viewer(&server.target, "Vi").await?;
    let first = vi.open_media().await?;
    let (status, body) = refusal(vi.open_media().await);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "ALREADY_REGISTERED");
    // Closed, the channel makes room for another.
    first.close().await?;
    let mut reopened = None;
    // Nothing acks a closed channel, so the server may not have seen it yet: a few tries.
    for _ in 0..250 {
        match vi.open_media().await {
            Ok(m) => {
                reopened = Some(m);
                break;
            }
            Err(ProtocolError::Rejected { status: 409, .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
    assert!(reopened.is_some(), "the closed channel was never let go");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn closing_the_media_channel_ends_the_join() -> TestResult {
    let server = start(|_| {}).await;
    let (mut streamer, key) = live_stream(&server).await?;
    let mut vi = Client::viewer(&server.target, "Vi").await?;
    let media = vi.open_media().await?;
    assert_eq!(vi.join(&key).await?["media"], true);
    let stats = |body: Value| body["stats"]["viewerCount"].clone();
    let path = format!("/api/streams/{key}");
    assert_eq!(stats(http_get(server.addr, &path).await.1), 1);
    // The owner hears of each count change (`stream:viewers`, coalesced over 250 ms, so
    // the join is heard before the channel closes and the drop is a change of its own).
    let count = streamer.wait_for("stream:viewers").await?;
    assert_eq!(count.args[0]["viewerCount"], 1);

    media.close().await?;
    // Nothing acks a closed channel: the owner's next count is what says it was seen.
    let count = streamer.wait_for("stream:viewers").await?;
    assert_eq!(count.args[0]["viewerCount"], 0);
    assert_eq!(stats(http_get(server.addr, &path).await.1), 0);
    // The join is gone, not moved back to Socket.IO.
    let sent = streamer.send_frame(&key, "QUJD").await?;
    assert_eq!(sent["viewers"], 0);
    assert_eq!(socketio_frames(&mut vi).await?, 0);
    server.stop().await;
    Ok(())
}
