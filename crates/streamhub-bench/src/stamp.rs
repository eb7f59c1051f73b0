//! The send-time stamp carried inside every frame, and the frames that carry it.
//!
//! A stamp is 16 bytes at the start of the frame's *content*: the send time in microseconds
//! on the process clock ([`now_us`]) and the frame counter, both big-endian. Big-endian puts a
//! zero byte first (µs since 1970 stay below 2^56 for two thousand years), so a frame never
//! starts with the WebM EBML magic `1A 45 DF A3` and the server keeps it in `images` mode.
//!
//! - Binary frames: the attachment's first 16 bytes.
//! - Base64 text frames: the stamp is in the *decoded* content. Two filler bytes follow it so
//!   the first 18 content bytes encode to exactly the first 24 base64 characters: the rest of
//!   the frame is encoded once, and each frame only rewrites those 24 characters.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use streamhub_protocol::events;

use crate::eio;

/// Stamp size in bytes.
pub const STAMP_LEN: usize = 16;
/// Content bytes covered by the first [`STAMP_B64_CHARS`] base64 characters.
pub const STAMP_B64_RAW: usize = 18;
/// Base64 characters that hold the stamp (18 bytes = 6 groups of 3 = 24 characters).
pub const STAMP_B64_CHARS: usize = 24;
/// The smallest frame that can carry a stamp in both modes.
pub const MIN_FRAME: usize = STAMP_B64_RAW;

/// When a frame was sent and which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time, µs on the process clock.
    pub sent_us: u64,
    /// Frame counter, starting at 1.
    pub seq: u64,
}

impl Stamp {
    pub fn to_bytes(self) -> [u8; STAMP_LEN] {
        let mut b = [0u8; STAMP_LEN];
        b[..8].copy_from_slice(&self.sent_us.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// Reads a stamp from the first 16 bytes of `b`.
    pub fn from_bytes(b: &[u8]) -> Option<Stamp> {
        let sent: [u8; 8] = b.get(..8)?.try_into().ok()?;
        let seq: [u8; 8] = b.get(8..STAMP_LEN)?.try_into().ok()?;
        Some(Stamp {
            sent_us: u64::from_be_bytes(sent),
            seq: u64::from_be_bytes(seq),
        })
    }

    /// Reads a stamp from the start of a base64 string (at least 24 characters).
    pub fn from_base64_prefix(s: &str) -> Option<Stamp> {
        let head = s.as_bytes().get(..STAMP_B64_CHARS)?;
        let mut raw = [0u8; STAMP_B64_RAW];
        let n = B64.decode_slice(head, &mut raw).ok()?;
        if n != STAMP_B64_RAW {
            return None;
        }
        Stamp::from_bytes(&raw)
    }

    /// The 24 base64 characters that start a text frame carrying this stamp.
    pub fn to_base64_prefix(self) -> [u8; STAMP_B64_CHARS] {
        let mut raw = [0u8; STAMP_B64_RAW];
        raw[..STAMP_LEN].copy_from_slice(&self.to_bytes());
        let mut out = [0u8; STAMP_B64_CHARS];
        // 18 bytes always encode to exactly 24 characters, so this cannot fail.
        let _ = B64.encode_slice(raw, &mut out);
        out
    }

    /// Microseconds between sending and `now_us` (0 if the clock went backwards).
    pub fn latency_us(self, now_us: u64) -> u64 {
        now_us.saturating_sub(self.sent_us)
    }
}

/// Microseconds since the Unix epoch, but read from a monotonic clock: the wall clock is
/// read once per process and [`Instant`] elapsed time added to it, so every task and thread
/// of the process agrees and an NTP step during a run cannot produce negative latencies.
pub fn now_us() -> u64 {
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let (at, epoch_us) = BASE.get_or_init(|| {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        (Instant::now(), epoch)
    });
    epoch_us + at.elapsed().as_micros() as u64
}

/// Deterministic filler that looks like compressed data (no long runs).
fn filler(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A `stream:data:send` packet, built once per run and re-stamped per frame.
#[derive(Debug, Clone)]
pub enum FrameTemplate {
    /// `42["stream:data:send",{"streamKey":K,"data":"<base64>"}]`; `stamp_at` is the byte
    /// offset of the first base64 character.
    Text { packet: String, stamp_at: usize },
    /// `451-["stream:data:send",{"streamKey":K,"data":<placeholder 0>}]` and the attachment.
    Binary { header: String, body: Vec<u8> },
}

/// What goes on the wire for one frame.
#[derive(Debug, Clone)]
pub enum OutFrame {
    Text(String),
    Binary { header: String, body: Bytes },
}

impl FrameTemplate {
    /// A template for `frame_size` content bytes (before base64) for `stream_key`.
    pub fn new(stream_key: &str, frame_size: usize, binary: bool) -> FrameTemplate {
        let frame_size = frame_size.max(MIN_FRAME);
        let mut content = filler(frame_size);
        content[..STAMP_B64_RAW].fill(0);
        if binary {
            let payload = serde_json::json!({"streamKey": stream_key, "data": eio::placeholder(0)});
            FrameTemplate::Binary {
                header: eio::encode_binary_event(events::STREAM_DATA_SEND, &payload, 1),
                body: content,
            }
        } else {
            let data = B64.encode(&content);
            let payload = serde_json::json!({"streamKey": stream_key, "data": data});
            let packet = eio::encode_event(events::STREAM_DATA_SEND, &payload);
            // The base64 text is unique in the packet (and long), so find it once.
            let stamp_at = eio::data_string(&packet[2..])
                .map(|d| d.as_ptr() as usize - packet.as_ptr() as usize)
                .unwrap_or(0);
            FrameTemplate::Text { packet, stamp_at }
        }
    }

    /// Bytes of the frame's `data` as it travels (base64 text length or binary length).
    pub fn wire_data_len(&self) -> usize {
        match self {
            FrameTemplate::Text { packet, stamp_at } => packet[*stamp_at..]
                .find('"')
                .unwrap_or(packet.len() - stamp_at),
            FrameTemplate::Binary { body, .. } => body.len(),
        }
    }

    /// The frame for `stamp`.
    pub fn stamped(&self, stamp: Stamp) -> OutFrame {
        match self {
            FrameTemplate::Text { packet, stamp_at } => {
                let mut bytes = packet.clone().into_bytes();
                bytes[*stamp_at..*stamp_at + STAMP_B64_CHARS]
                    .copy_from_slice(&stamp.to_base64_prefix());
                // Base64 characters replaced base64 characters: still valid UTF-8.
                OutFrame::Text(String::from_utf8(bytes).unwrap_or_default())
            }
            FrameTemplate::Binary { header, body } => {
                let mut b = body.clone();
                b[..STAMP_LEN].copy_from_slice(&stamp.to_bytes());
                OutFrame::Binary {
                    header: header.clone(),
                    body: Bytes::from(b),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eio::{Packet, data_placeholder, data_string, event_name, parse};

    #[test]
    fn bytes_round_trip() {
        let s = Stamp {
            sent_us: 1_764_000_000_123_456,
            seq: 42,
        };
        let b = s.to_bytes();
        assert_eq!(b[0], 0, "big-endian epoch µs start with a zero byte");
        assert_eq!(Stamp::from_bytes(&b), Some(s));
        assert_eq!(Stamp::from_bytes(&b[..15]), None);
    }

    #[test]
    fn base64_round_trip() {
        let s = Stamp {
            sent_us: now_us(),
            seq: u64::MAX - 1,
        };
        let prefix = s.to_base64_prefix();
        let text = std::str::from_utf8(&prefix).expect("ascii");
        assert_eq!(Stamp::from_base64_prefix(text), Some(s));
        // More text after the prefix does not matter; less is refused.
        assert_eq!(Stamp::from_base64_prefix(&format!("{text}QUJD")), Some(s));
        assert_eq!(Stamp::from_base64_prefix(&text[..23]), None);
        assert_eq!(Stamp::from_base64_prefix("!!!!!!!!!!!!!!!!!!!!!!!!"), None);
    }

    #[test]
    fn text_frame_survives_base64() {
        let t = FrameTemplate::new("abc123", 10_000, false);
        assert_eq!(
            t.wire_data_len(),
            13_336,
            "10,000 bytes are 13,336 base64 chars"
        );
        let s = Stamp {
            sent_us: 1_700_000_000_000_001,
            seq: 7,
        };
        let OutFrame::Text(packet) = t.stamped(s) else {
            panic!("text template gave binary")
        };
        // What the relay does: take `data` out, put it in `stream:data`.
        let Packet::Event { body, .. } = parse(&packet).expect("parses") else {
            panic!("not an event")
        };
        let (name, _) = event_name(body).expect("named");
        assert_eq!(name, events::STREAM_DATA_SEND);
        let data = data_string(body).expect("data");
        assert_eq!(data.len(), 13_336);
        let relayed = format!(
            r#"42["stream:data",{{"streamKey":"abc123","data":"{data}","timestamp":1,"seq":1,"media":"images"}}]"#
        );
        let Packet::Event { body, .. } = parse(&relayed).expect("parses") else {
            panic!("not an event")
        };
        let got = Stamp::from_base64_prefix(data_string(body).expect("data")).expect("stamp");
        assert_eq!(got, s);
        // The whole content still decodes, and starts with the stamp.
        let decoded = B64.decode(data).expect("valid base64");
        assert_eq!(decoded.len(), 10_000);
        assert_eq!(Stamp::from_bytes(&decoded), Some(s));
        assert_ne!(&decoded[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
    }

    #[test]
    fn binary_frame_carries_stamp_in_attachment() {
        let t = FrameTemplate::new("k", 10_240, true);
        assert_eq!(t.wire_data_len(), 10_240);
        let s = Stamp {
            sent_us: 99,
            seq: 3,
        };
        let OutFrame::Binary { header, body } = t.stamped(s) else {
            panic!("binary template gave text")
        };
        let Packet::BinaryEvent {
            attachments,
            body: json,
            ..
        } = parse(&header).expect("parses")
        else {
            panic!("not a binary event")
        };
        assert_eq!(attachments, 1);
        assert_eq!(data_placeholder(json), Some(0));
        assert_eq!(body.len(), 10_240);
        assert_eq!(Stamp::from_bytes(&body), Some(s));
    }

    #[test]
    fn tiny_frames_are_raised_to_the_minimum() {
        let t = FrameTemplate::new("k", 1, false);
        assert_eq!(t.wire_data_len(), STAMP_B64_CHARS);
        let OutFrame::Text(p) = t.stamped(Stamp { sent_us: 5, seq: 1 }) else {
            panic!()
        };
        let Packet::Event { body, .. } = parse(&p).expect("parses") else {
            panic!()
        };
        assert_eq!(
            Stamp::from_base64_prefix(data_string(body).expect("data")),
            Some(Stamp { sent_us: 5, seq: 1 })
        );
    }

    #[test]
    fn clock_is_monotonic_and_epoch_based() {
        let a = now_us();
        let b = now_us();
        assert!(b >= a);
        assert!(a > 1_600_000_000_000_000, "µs since 1970");
    }
}
