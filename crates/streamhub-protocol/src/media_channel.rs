//! The media channel: a plain WebSocket per viewer that carries that viewer's `stream:data`
//! instead of its Socket.IO connection (`docs/protocol.md`, "Media channel").
//!
//! Socket.IO stays the control channel (register, join, chat, levels, errors); only frames
//! move. The server writes each frame to every media channel as the same shared bytes, with no
//! base64 or JSON around the payload (`docs/architecture.md`, "The Socket.IO path", for how
//! the Socket.IO path shares bytes the same way).
//!
//! Wire format, server → client only, one binary message per frame:
//! `[header length: u32, big-endian][header: JSON][payload]`. The header is the `stream:data`
//! payload with `data` replaced by `{"text": bool}`: `true` when the payload is the base64
//! text `stream:data` would carry as a string, `false` for binary data.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::Millis;
use crate::server::{MediaMode, StreamData};

/// `GET /media?token=TOKEN`: the websocket upgrade. `TOKEN` comes from the `media:token` ack
/// on the viewer's Socket.IO connection; the channel belongs to that connection.
pub const PATH: &str = "/media";

/// The query parameter carrying the `media:token` credential.
pub const TOKEN_PARAM: &str = "token";

/// Largest header the decoder accepts (a WebCodecs decoder config is the biggest part).
pub const MAX_HEADER: usize = 64 * 1024;

/// One frame as a media-channel message: `frame` without its `data` as the header, then
/// `data` as it came (a text frame's base64 characters, or the binary bytes).
pub fn encode(frame: &StreamData<'_>, data: &crate::FrameData) -> Bytes {
    encode_with(frame, data, false)
}

/// The same message as a whole websocket binary frame (unmasked, as a server sends it): what
/// the server writes to every viewer's connection as it is, one plain write per viewer with no
/// copy. Built in the one allocation [`encode`] makes.
pub fn ws_frame(frame: &StreamData<'_>, data: &crate::FrameData) -> Bytes {
    encode_with(frame, data, true)
}

fn encode_with(frame: &StreamData<'_>, data: &crate::FrameData, ws: bool) -> Bytes {
    let (payload, text) = match data {
        crate::FrameData::Text(t) => (t.as_bytes(), true),
        crate::FrameData::Binary(b) => (&b[..], false),
    };
    let marker = if text {
        r#"{"text":true}"#
    } else {
        r#"{"text":false}"#
    };
    // A constant that is valid JSON; the fallback can only be reached by a broken constant.
    let raw: Box<RawValue> = RawValue::from_string(marker.to_owned()).unwrap_or_default();
    let header = StreamData {
        data: crate::DataRef::Json(&raw),
        ..frame.clone()
    };
    let json = serde_json::to_vec(&header).unwrap_or_default();
    let len = 4 + json.len() + payload.len();
    let (ws_header, used) = engineioxide_core::ws_header(engineioxide_core::WS_BINARY, len);
    let used = if ws { used } else { 0 };
    let mut out = BytesMut::with_capacity(used + len);
    out.put_slice(&ws_header[..used]);
    out.put_u32(u32::try_from(json.len()).unwrap_or(u32::MAX));
    out.put_slice(&json);
    out.put_slice(payload);
    out.freeze()
}

/// The header of a media-channel message, as a client reads it.
/// Each field is the [`StreamData`] field of the same name; `data` only says what follows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[cfg_attr(test, ts(rename = "MediaHeader"))]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// The stream the frame belongs to.
    pub stream_key: String,
    /// Server time when the frame arrived, ms since the epoch.
    pub timestamp: Millis,
    /// Per-stream frame number.
    pub seq: u64,
    /// How to decode it.
    pub media: MediaMode,
    /// `audio`: an Opus chunk (what `stream:audio` carries); absent: video or a picture.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<crate::server::Track>", optional))]
    pub track: crate::server::Track,
    /// Decoding can start here.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub key: bool,
    /// WebM: the payload begins with the init segment.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub init: bool,
    /// Data was dropped for this viewer before this frame.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub resync: bool,
    /// What the payload after the header is.
    pub data: Payload,
    /// WebCodecs: the chunk's type and encoder timestamp.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub chunk: Option<crate::client::ChunkInfo>,
    /// WebCodecs: the decoder configuration, on key chunks.
    #[serde(default)]
    #[cfg_attr(test, ts(optional, type = "unknown"))]
    pub config: Option<serde_json::Value>,
    /// The streamer's capture time of the frame (ms since the epoch, server clock).
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub capture_time: Option<f64>,
}

/// What kind of payload follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[cfg_attr(test, ts(rename = "MediaPayload"))]
pub struct Payload {
    /// `true`: the payload is the base64 text `stream:data` would carry as a string;
    /// `false`: binary data.
    pub text: bool,
}

/// Why a message is not a media-channel frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message ends before its header does.
    #[error("message of {0} bytes is shorter than its header")]
    Short(usize),
    /// The header length is over [`MAX_HEADER`]: refused before reading it.
    #[error("header of {0} bytes is over the {MAX_HEADER}-byte limit")]
    HeaderTooLarge(usize),
    /// The header is not the documented JSON.
    #[error("header is not the documented JSON: {0}")]
    Header(String),
}

/// The payload of a media-channel message without parsing its header (for readers that know
/// what they expect, such as the load generator).
pub fn payload(msg: &[u8]) -> Option<&[u8]> {
    let (len, rest) = msg.split_first_chunk::<4>()?;
    rest.get(u32::from_be_bytes(*len) as usize..)
}

/// Splits a media-channel message into its header and payload.
pub fn decode(msg: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    let (len, rest) = msg
        .split_first_chunk::<4>()
        .ok_or(DecodeError::Short(msg.len()))?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > MAX_HEADER {
        return Err(DecodeError::HeaderTooLarge(len));
    }
    if rest.len() < len {
        return Err(DecodeError::Short(msg.len()));
    }
    let (head, payload) = rest.split_at(len);
    let header = serde_json::from_slice(head).map_err(|e| DecodeError::Header(e.to_string()))?;
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameData;
    use crate::client::{ChunkInfo, ChunkKind};

    fn frame<'a>(data: &'a FrameData, chunk: Option<&'a ChunkInfo>) -> StreamData<'a> {
        StreamData {
            stream_key: "sk_1",
            data: crate::DataRef::Frame(data),
            timestamp: 1_700_000_000_123,
            seq: 42,
            media: MediaMode::Webcodecs,
            track: crate::server::Track::Video,
            key: true,
            init: false,
            resync: true,
            chunk,
            config: None,
            capture_time: None,
        }
    }

    #[test]
    fn round_trip_binary_and_text() {
        let chunk = ChunkInfo {
            kind: ChunkKind::Key,
            timestamp: 33_000.0,
            duration: None,
        };
        let data = FrameData::Binary(Bytes::from_static(b"\x00\x01\xffpayload"));
        let msg = encode(&frame(&data, Some(&chunk)), &data);
        let (h, payload) = decode(&msg).expect("decodes");
        assert_eq!(payload, b"\x00\x01\xffpayload");
        assert_eq!(super::payload(&msg), Some(payload));
        assert_eq!(
            (h.stream_key.as_str(), h.seq, h.timestamp, h.media),
            ("sk_1", 42, 1_700_000_000_123, MediaMode::Webcodecs)
        );
        assert!(h.key && h.resync && !h.init && !h.data.text);
        assert_eq!(h.chunk, Some(chunk));

        let text = FrameData::Text("aGVsbG8=".into());
        let msg = encode(&frame(&text, None), &text);
        let (h, payload) = decode(&msg).expect("decodes");
        assert_eq!((payload, h.data.text), (&b"aGVsbG8="[..], true));
    }

    #[test]
    fn the_header_is_the_stream_data_payload_without_data() {
        let data = FrameData::Binary(Bytes::from_static(b"x"));
        let msg = encode(&frame(&data, None), &data);
        let len = u32::from_be_bytes(msg[..4].try_into().expect("4 bytes")) as usize;
        let head: serde_json::Value = serde_json::from_slice(&msg[4..4 + len]).expect("json");
        assert_eq!(
            head,
            serde_json::json!({"streamKey": "sk_1", "data": {"text": false}, "timestamp": 1_700_000_000_123u64,
                "seq": 42, "media": "webcodecs", "key": true, "resync": true})
        );
    }

    #[test]
    fn the_websocket_frame_is_a_binary_frame_around_the_message() {
        for size in [10, 200, 70_000] {
            let data = FrameData::Binary(Bytes::from(vec![9u8; size]));
            let msg = encode(&frame(&data, None), &data);
            let framed = ws_frame(&frame(&data, None), &data);
            let (header, used) =
                engineioxide_core::ws_header(engineioxide_core::WS_BINARY, msg.len());
            assert_eq!(framed[0], 0x82, "final, binary, {size}");
            assert_eq!(&framed[..used], &header[..used]);
            assert_eq!(&framed[used..], &msg[..], "{size}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_frame() {
        assert_eq!(payload(b"\x00\x00"), None);
        assert_eq!(payload(b"\x00\x00\x00\x09{}"), None);
        assert_eq!(decode(b"\x00\x00"), Err(DecodeError::Short(2)));
        assert_eq!(decode(b"\x00\x00\x00\x09{}"), Err(DecodeError::Short(6)));
        assert_eq!(
            decode(b"\xff\xff\xff\xff"),
            Err(DecodeError::HeaderTooLarge(u32::MAX as usize))
        );
        assert!(matches!(
            decode(b"\x00\x00\x00\x02{}x"),
            Err(DecodeError::Header(_))
        ));
    }
}
