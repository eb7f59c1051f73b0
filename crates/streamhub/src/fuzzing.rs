//! Entry points for fuzzing: the targets of `fuzz/` (cargo-fuzz, on toolchains that have it)
//! and of the bounded random-input test that runs the same targets on stable in the test
//! command (`tests/fuzz_targets.rs`). Each takes arbitrary bytes, feeds them to what parses
//! client input, and must not panic; the assertions inside are invariants, so a failure is a
//! bug. Not part of the server's API.

use std::time::{Duration, Instant};

use streamhub_protocol::client::{
    ChannelJoin, ChatSend, Create, DataSend, ReactionSend, Register, Resume, StreamRef, TitleSet,
};
use streamhub_protocol::server::UserRef;
use streamhub_protocol::{media_channel, validate};

use crate::relay::{Distributor, Frame, NewStream, Offer, Publish, RelayLimits, ViewerSink};
use crate::webm::{DEFAULT_MAX_BUFFER, Piece, WebmParser};

/// The WebM push parser (a streamer's MediaRecorder bytes): the first byte picks the parser's
/// buffer limit, the second the size of the pieces the rest arrives in. Whatever it returns
/// is a prefix of what went in, in order; without an error, all of it.
pub fn webm(data: &[u8]) {
    let (limit, chunk, body) = match data {
        [a, b, rest @ ..] => (*a, usize::from(*b).max(1), rest),
        _ => return,
    };
    let max_buffer = [64, 1000, 16 * 1024, DEFAULT_MAX_BUFFER][usize::from(limit % 4)];
    let mut parser = WebmParser::with_max_buffer(max_buffer);
    let mut out = Vec::new();
    let mut failed = false;
    for piece in body.chunks(chunk) {
        for p in parser.push(piece) {
            failed |= matches!(p, Piece::Error(_));
            out.extend_from_slice(p.bytes());
        }
    }
    for p in parser.finish() {
        failed |= matches!(p, Piece::Error(_));
        out.extend_from_slice(p.bytes());
    }
    assert!(body.starts_with(&out), "the parser made up bytes");
    assert!(failed || out == body, "no error, yet bytes went missing");
}

/// A viewer for the relay targets: takes every frame, or refuses them all (a full queue).
struct Viewer {
    full: bool,
}

impl ViewerSink for Viewer {
    fn offer(&self, _: &str, _: &Frame, _: bool) -> Offer {
        if self.full { Offer::Full } else { Offer::Sent }
    }
}

/// WebCodecs (and every other mode's) frames as a streamer's `stream:data:send` payloads: the
/// bytes are split into lines, each parsed as the event's JSON and published to one stream of
/// a relay with small limits, 10 ms apart, while viewers join (some with full queues), leave,
/// and the stream ends at the last line.
pub fn webcodecs(data: &[u8]) {
    let relay: Distributor<Viewer> = Distributor::new(RelayLimits {
        buffer_frames: 30,
        buffer_bytes: 64 * 1024,
        max_frame_bytes: 64 * 1024,
        max_fps: 1000,
        stall_timeout: Duration::from_millis(100),
        grace: Duration::from_secs(1),
        max_streams: 4,
        max_gop_bytes: 64 * 1024,
        picture_queue: Some(Duration::from_millis(300)),
    });
    let t0 = Instant::now();
    let new = NewStream {
        key: String::from("sk_fuzz"),
        title: String::from("fuzz"),
        streamer: UserRef {
            id: String::from("u_owner"),
            username: String::from("owner"),
        },
        owner: String::from("owner"),
        publish_token: String::from("pt_fuzz"),
        created_at: 0,
        epoch: 1,
    };
    if relay.register_stream(new, t0).is_err() {
        return;
    }
    let _ = relay.start_stream("sk_fuzz", "owner", 0);
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let now = t0 + Duration::from_millis(10 * i as u64);
        if let Ok(r) = serde_json::from_slice::<DataSend>(line) {
            let frame = Publish {
                data: r.data,
                chunk: r.chunk,
                config: r.config,
                capture_time: r.capture_time,
            };
            let _ = relay.publish("sk_fuzz", "owner", frame, now, i as u64);
        }
        let viewer = format!("v{}", i % 5);
        match i % 4 {
            0 | 1 => {
                let sink = Viewer { full: i % 3 == 0 };
                let _ = relay.add_viewer("sk_fuzz", &viewer, sink, now, i as u64, |_| true);
            }
            2 => {
                let _ = relay.remove_viewer("sk_fuzz", &viewer);
            }
            _ => {}
        }
    }
    let _ = relay.end_stream("sk_fuzz", "owner", t0 + Duration::from_secs(60), 0);
}

/// What a client can send besides frames: every event's payload as JSON, the validation of
/// its strings, and a media-channel message (what a third-party viewer decodes).
pub fn protocol(data: &[u8]) {
    let _ = serde_json::from_slice::<Register>(data);
    let _ = serde_json::from_slice::<Create>(data);
    let _ = serde_json::from_slice::<StreamRef>(data);
    let _ = serde_json::from_slice::<Resume>(data);
    let _ = serde_json::from_slice::<ChatSend>(data);
    let _ = serde_json::from_slice::<ReactionSend>(data);
    let _ = serde_json::from_slice::<DataSend>(data);
    let _ = serde_json::from_slice::<ChannelJoin>(data);
    let _ = serde_json::from_slice::<TitleSet>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        for max in [1, 32, 500] {
            if let Ok(v) = validate::username(text, max) {
                assert!(v.chars().count() <= max, "a username over its limit passed");
            }
            if let Ok(v) = validate::chat_message(text, max) {
                assert!(
                    v.chars().count() <= max,
                    "a chat message over its limit passed"
                );
            }
            let _ = validate::title(text, max);
            // Lower-casing may lengthen a name ('İ' is two characters in lower case): a
            // channel name is only a lookup key, so only its presence is checked.
            if let Ok(v) = validate::channel(text, max) {
                assert!(!v.is_empty(), "an empty channel name passed");
            }
        }
        let _ = validate::reaction(text);
        let _ = validate::stream_key(text);
    }
    if let Ok((_, payload)) = media_channel::decode(data) {
        assert!(
            payload.len() < data.len(),
            "a payload longer than its message"
        );
    }
}
