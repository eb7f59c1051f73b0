//! Socket.IO events framed as Engine.IO sends them on a websocket: the server frames each
//! `stream:data` once and queues the same bytes for every viewer; the load generator frames
//! what it sends with the same functions.
//!
//! On a websocket every Engine.IO packet is one websocket message. A Socket.IO event on the
//! default namespace is the text message `42["name",payload]`; an event carrying binary data is
//! `45<n>-["name",payload]` whose payload holds `n` placeholders
//! `{"_placeholder":true,"num":i}`, followed by `n` binary messages, one per attachment. An ack
//! id, when the sender wants an answer, goes right before the JSON.

use bytes::Bytes;
use serde::{Serialize, Serializer};

/// An Engine.IO text packet and the websocket frame carrying it, built once and shared
/// (`engineioxide_core::FramedText`, added by StreamHub's patch, `vendor/README.md`).
pub use engineioxide_core::FramedText;

/// Any event: `42[<ack id>]["name",payload]`, or `45<n>-[<ack id>]["name",payload]` when
/// `payload` holds `n` placeholders. With an ack id the receiver answers `43<id>[...]`.
pub fn encode_packet<T: Serialize + ?Sized>(
    name: &str,
    payload: &T,
    attachments: usize,
    ack: Option<u64>,
) -> String {
    use std::fmt::Write as _;
    // Serializing a (&str, &T) tuple cannot fail for our payload types (no maps with
    // non-string keys); fall back to an empty array rather than panic.
    let json = serde_json::to_string(&(name, payload)).unwrap_or_else(|_| "[]".into());
    let mut s = String::with_capacity(json.len() + 24);
    if attachments == 0 {
        s.push_str("42");
    } else {
        let _ = write!(s, "45{attachments}-");
    }
    if let Some(id) = ack {
        let _ = write!(s, "{id}");
    }
    s.push_str(&json);
    s
}

/// `42["name",payload]`.
pub fn encode_event<T: Serialize + ?Sized>(name: &str, payload: &T) -> String {
    encode_packet(name, payload, 0, None)
}

/// `45<n>-["name",payload]` where `payload` already holds `n` placeholders.
pub fn encode_binary_event<T: Serialize + ?Sized>(
    name: &str,
    payload: &T,
    attachments: usize,
) -> String {
    encode_packet(name, payload, attachments, None)
}

/// What stands in a payload for binary attachment `.0`: `{"_placeholder":true,"num":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder(pub usize);

impl Serialize for Placeholder {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Placeholder", 2)?;
        s.serialize_field("_placeholder", &true)?;
        s.serialize_field("num", &self.0)?;
        s.end()
    }
}

/// One event framed once, to be queued as it is for any number of receivers: the text message
/// (also as a complete websocket frame) and, for an event with binary data, its one attachment.
/// Clones share the bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Framed {
    /// `42[...]`, or `451-[...]` when [`Framed::attachment`] follows.
    pub text: FramedText,
    /// The binary message that follows the text.
    pub attachment: Option<Bytes>,
}

impl Framed {
    /// `name` with `payload`; `attachment`, when given, is what the payload's
    /// [`Placeholder`]`(0)` stands for.
    pub fn event<T: Serialize + ?Sized>(
        name: &str,
        payload: &T,
        attachment: Option<Bytes>,
    ) -> Self {
        let attachments = usize::from(attachment.is_some());
        Self {
            text: FramedText::new(&encode_packet(name, payload, attachments, None)),
            attachment,
        }
    }

    /// Bytes it takes in a queue: the text and the attachment.
    pub fn len(&self) -> usize {
        self.text.text().len() + self.attachment.as_ref().map_or(0, Bytes::len)
    }

    /// Never: a framed event has at least its type digits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events;

    #[test]
    fn events_with_and_without_ack_ids_and_attachments() {
        let p = serde_json::json!({"streamKey": "k"});
        assert_eq!(
            encode_event(events::STREAM_JOIN, &p),
            r#"42["stream:join",{"streamKey":"k"}]"#
        );
        assert_eq!(
            encode_packet(events::STREAM_START, &p, 0, Some(7)),
            r#"427["stream:start",{"streamKey":"k"}]"#
        );
        assert_eq!(
            encode_packet(events::STREAM_DATA_SEND, &p, 1, Some(12)),
            r#"451-12["stream:data:send",{"streamKey":"k"}]"#
        );
        assert_eq!(
            encode_binary_event(events::STREAM_DATA_SEND, &p, 2),
            r#"452-["stream:data:send",{"streamKey":"k"}]"#
        );
    }

    #[test]
    fn placeholders_are_what_socket_io_parsers_look_for() {
        let v = serde_json::to_value(Placeholder(3)).expect("serializes");
        assert_eq!(v, serde_json::json!({"_placeholder": true, "num": 3}));
    }

    #[test]
    fn a_framed_binary_event_carries_its_attachment() {
        let data = Bytes::from_static(b"\x00\x01binary");
        let f = Framed::event(
            events::STREAM_DATA,
            &serde_json::json!({"data": Placeholder(0)}),
            Some(data.clone()),
        );
        assert_eq!(
            f.text.text().as_str(),
            r#"451-["stream:data",{"data":{"_placeholder":true,"num":0}}]"#
        );
        assert_eq!(f.attachment, Some(data));
        assert_eq!(f.len(), f.text.text().len() + 8);
        let shared = f.clone();
        assert_eq!(
            shared.text.ws_frame().as_ptr(),
            f.text.ws_frame().as_ptr(),
            "clones share the frame"
        );
        let text = Framed::event(events::STREAM_DATA, &"x", None);
        assert_eq!(text.text.text().as_str(), r#"42["stream:data","x"]"#);
        assert_eq!(&text.text.ws_frame()[2..], text.text.text().as_bytes());
        assert!(!text.is_empty());
    }
}
