use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A frame's payload exactly as the streamer sent it.
///
/// The seed sends base64 text; our own pages send binary. Viewers get back the same type and
/// the same bytes, never re-encoded. Deserialized by hand rather than with
/// `#[serde(untagged)]`, which turns binary that happens to be valid UTF-8 into a string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    test,
    derive(ts_rs::TS),
    ts(type = "string | ArrayBuffer | ArrayBufferView | Blob")
)]
pub enum FrameData {
    /// A JavaScript string (the seed's base64).
    Text(String),
    /// A binary attachment (ArrayBuffer, Blob, Buffer).
    Binary(Bytes),
}

impl FrameData {
    /// Payload size in bytes as it travels (string length in UTF-8 bytes).
    pub fn len(&self) -> usize {
        match self {
            Self::Text(s) => s.len(),
            Self::Binary(b) => b.len(),
        }
    }

    /// Whether the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it came as a binary attachment rather than a string.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }
}

impl Serialize for FrameData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(s) => serializer.serialize_str(s),
            // Socket.IO serializers turn `serialize_bytes` into a binary attachment.
            Self::Binary(b) => serializer.serialize_bytes(b),
        }
    }
}

struct FrameDataVisitor;

impl<'de> Visitor<'de> for FrameDataVisitor {
    type Value = FrameData;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string or binary data")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FrameData, E> {
        Ok(FrameData::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<FrameData, E> {
        Ok(FrameData::Text(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<FrameData, E> {
        Ok(FrameData::Binary(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<FrameData, E> {
        Ok(FrameData::Binary(Bytes::from(v)))
    }
}

impl<'de> Deserialize<'de> for FrameData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any` lets the format say what it holds: JSON strings call `visit_str`,
        // Socket.IO binary placeholders call `visit_bytes`. Anything else is refused.
        deserializer.deserialize_any(FrameDataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_is_text() {
        let d: FrameData = serde_json::from_str("\"aGVsbG8=\"").expect("parses");
        assert_eq!(d, FrameData::Text("aGVsbG8=".into()));
        assert!(!d.is_binary());
        assert_eq!(d.len(), 8);
    }

    #[test]
    fn numbers_objects_and_null_are_refused() {
        for bad in ["42", "{}", "null", "[1,2]", "true"] {
            assert!(
                serde_json::from_str::<FrameData>(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn ascii_bytes_stay_binary() {
        // The untagged-enum pitfall: bytes that are valid UTF-8 must not become text.
        let v = FrameDataVisitor;
        let d: FrameData = Visitor::visit_bytes::<de::value::Error>(v, b"hello").expect("ok");
        assert_eq!(d, FrameData::Binary(Bytes::from_static(b"hello")));
    }

    #[test]
    fn text_serializes_as_json_string() {
        let s = serde_json::to_string(&FrameData::Text("abc".into())).expect("serializes");
        assert_eq!(s, "\"abc\"");
    }
}

/// A frame's payload as it goes out in `stream:data`, encoded at most once per frame and
/// shared by every viewer: the `data` JSON, and the whole message as each path sends it.
///
/// Text frames (the seed's base64) are escaped once: escaping the string on each emit was 42%
/// of the server's CPU at 2000 viewers (perf, 13 KB base64 frames,
/// `serde_json::ser::format_escaped_str`). The framed Socket.IO packet and the media-channel
/// message are kept in two forms each, plain and with `resync` set, the one flag that differs
/// between viewers of the same frame.
#[derive(Default)]
pub struct OutgoingData {
    json: std::sync::OnceLock<Box<serde_json::value::RawValue>>,
    /// `stream:data` framed for Socket.IO ([`crate::engine_io::Framed`]), by `resync`.
    socket_io: [std::sync::OnceLock<crate::engine_io::Framed>; 2],
    /// The frame as a media-channel websocket frame ([`crate::media_channel::ws_frame`]), by
    /// `resync`.
    media: [std::sync::OnceLock<Bytes>; 2],
}

impl OutgoingData {
    /// What to serialize as `data` for `frame`: binary as an attachment, text as its JSON
    /// string, escaped on the first call.
    pub fn get<'a>(&'a self, frame: &'a FrameData) -> DataRef<'a> {
        let FrameData::Text(text) = frame else {
            return DataRef::Frame(frame);
        };
        if let Some(raw) = self.json.get() {
            return DataRef::Json(raw);
        }
        match serde_json::value::to_raw_value(text) {
            Ok(raw) => DataRef::Json(self.json.get_or_init(|| raw)),
            // A Rust string always serializes; should it not, escape on each emit.
            Err(_) => DataRef::Frame(frame),
        }
    }

    /// The frame's Socket.IO packet with `resync` as given: `frame` runs on the first call for
    /// each value only.
    pub fn socket_io(
        &self,
        resync: bool,
        frame: impl FnOnce() -> crate::engine_io::Framed,
    ) -> crate::engine_io::Framed {
        self.socket_io[usize::from(resync)]
            .get_or_init(frame)
            .clone()
    }

    /// The frame's media-channel websocket frame with `resync` as given: `encode` runs on the
    /// first call for each value only.
    pub fn media(&self, resync: bool, encode: impl FnOnce() -> Bytes) -> Bytes {
        self.media[usize::from(resync)].get_or_init(encode).clone()
    }
}

impl std::fmt::Debug for OutgoingData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingData")
            .field("escaped", &self.json.get().is_some())
            .field(
                "socket_io",
                &self.socket_io.iter().filter(|c| c.get().is_some()).count(),
            )
            .field(
                "media",
                &self.media.iter().filter(|c| c.get().is_some()).count(),
            )
            .finish()
    }
}

impl Clone for OutgoingData {
    fn clone(&self) -> Self {
        // A clone may carry other data (e.g. a catch-up bundle built from a template).
        Self::default()
    }
}

impl PartialEq for OutgoingData {
    /// A cache, not part of the frame's value.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `data` in an outgoing `stream:data` (see [`OutgoingData`]).
#[derive(Debug, Clone, Copy)]
pub enum DataRef<'a> {
    /// Serialized as the frame is (binary stays an attachment).
    Frame(&'a FrameData),
    /// A text frame's JSON string, escaped once and copied from then on.
    Json(&'a serde_json::value::RawValue),
    /// Binary data sent as an attachment of a message framed by the caller.
    Attachment(crate::engine_io::Placeholder),
}

impl Serialize for DataRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Frame(f) => f.serialize(serializer),
            Self::Json(raw) => raw.serialize(serializer),
            Self::Attachment(p) => p.serialize(serializer),
        }
    }
}
