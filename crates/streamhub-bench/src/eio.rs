//! Engine.IO v4 / Socket.IO v5 parsing over a websocket, just enough for a load generator.
//!
//! On a websocket every Engine.IO packet is one websocket message: a text message starts with
//! the Engine.IO type digit (`0` open, `1` close, `2` ping, `3` pong, `4` message, `6` noop);
//! a binary message is a raw binary attachment. A Socket.IO packet rides in an Engine.IO
//! message (`4`) as `<type>[<attachments>-][<nsp>,][<ack id>][json]`, so an event on the
//! default namespace is `42["name",{...}]` and an event carrying binary is
//! `451-["name",{..."data":{"_placeholder":true,"num":0}...}]` followed by one binary
//! message per attachment.
//!
//! Encoding is the protocol crate's (`streamhub_protocol::engine_io`), shared with the server.
//! Parsing borrows from the message text and never decodes JSON: the hot path (`stream:data`,
//! 13 KB of base64 per message) only needs the event name and where the data field starts.

use crate::error::ProtocolError;

/// One Engine.IO / Socket.IO packet received as a websocket text message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0{"sid":...,"pingInterval":...}`: the handshake.
    Open(&'a str),
    /// `1`: the server closes the session.
    Close,
    /// `2`: heartbeat; answer with [`PONG`].
    Ping,
    /// `3`.
    Pong,
    /// `6`.
    Noop,
    /// `40{...}`: Socket.IO connect acknowledgement (default namespace).
    Connect(&'a str),
    /// `41`: Socket.IO disconnect.
    Disconnect,
    /// `42[...]`: an event; `body` is the JSON array `["name", args...]`.
    Event { ack: Option<u64>, body: &'a str },
    /// `43[...]`: an acknowledgement of one of our events.
    Ack { ack: u64, body: &'a str },
    /// `44{...}`: the server refused the Socket.IO connect.
    ConnectError(&'a str),
    /// `45N-[...]`: an event with `attachments` binary messages to follow.
    BinaryEvent {
        attachments: usize,
        ack: Option<u64>,
        body: &'a str,
    },
    /// `46N-<id>[...]`: an acknowledgement with `attachments` binary messages to follow.
    BinaryAck {
        attachments: usize,
        ack: u64,
        body: &'a str,
    },
}

/// Our answer to [`Packet::Ping`].
pub const PONG: &str = "3";
/// Socket.IO connect to the default namespace.
pub const CONNECT: &str = "40";

/// Parses one websocket text message.
pub fn parse(text: &str) -> Result<Packet<'_>, ProtocolError> {
    let bad = || ProtocolError::Malformed(truncate(text, 60));
    let mut chars = text.as_bytes().iter();
    match chars.next() {
        Some(b'0') => Ok(Packet::Open(&text[1..])),
        Some(b'1') => Ok(Packet::Close),
        Some(b'2') => Ok(Packet::Ping),
        Some(b'3') => Ok(Packet::Pong),
        Some(b'6') => Ok(Packet::Noop),
        Some(b'4') => parse_socketio(&text[1..]).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn parse_socketio(s: &str) -> Option<Packet<'_>> {
    let kind = *s.as_bytes().first()?;
    let rest = &s[1..];
    match kind {
        b'0' => Some(Packet::Connect(skip_namespace(rest))),
        b'1' => Some(Packet::Disconnect),
        b'2' => {
            let (ack, body) = split_ack(skip_namespace(rest));
            Some(Packet::Event { ack, body })
        }
        b'3' => {
            let (ack, body) = split_ack(skip_namespace(rest));
            Some(Packet::Ack { ack: ack?, body })
        }
        b'4' => Some(Packet::ConnectError(skip_namespace(rest))),
        b'5' | b'6' => {
            let (count, after) = rest.split_once('-')?;
            let attachments: usize = count.parse().ok()?;
            let (ack, body) = split_ack(skip_namespace(after));
            if kind == b'5' {
                Some(Packet::BinaryEvent {
                    attachments,
                    ack,
                    body,
                })
            } else {
                Some(Packet::BinaryAck {
                    attachments,
                    ack: ack?,
                    body,
                })
            }
        }
        _ => None,
    }
}

/// A namespace other than `/` is written `/chat,` before the ack id and the data.
fn skip_namespace(s: &str) -> &str {
    if s.starts_with('/') {
        match s.find(',') {
            Some(i) => &s[i + 1..],
            None => "",
        }
    } else {
        s
    }
}

/// Digits before the JSON are an ack id.
fn split_ack(s: &str) -> (Option<u64>, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        (None, s)
    } else {
        (s[..digits].parse().ok(), &s[digits..])
    }
}

/// The event name of an event body `["name", ...]`, and the text after the name's closing
/// quote. Event names never contain escapes, so no JSON decoding is needed.
pub fn event_name(body: &str) -> Option<(&str, &str)> {
    let rest = body.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// The string value of the first `"data":"..."` field in `body`, without its quotes.
///
/// Only meant for payloads whose `data` is base64 (no escapes) and whose earlier fields
/// cannot contain the text `"data":"` (a stream key is alphanumeric). Everything after the
/// value is ignored.
pub fn data_string(body: &str) -> Option<&str> {
    const NEEDLE: &[u8] = b"\"data\":\"";
    let start = memchr::memmem::find(body.as_bytes(), NEEDLE)? + NEEDLE.len();
    let len = memchr::memchr(b'"', &body.as_bytes()[start..])?;
    Some(&body[start..start + len])
}

/// The attachment index of the placeholder standing for the `data` field:
/// `"data":{"_placeholder":true,"num":N}` (key order as both socketioxide and the Node
/// `socket.io-parser` write it; `num` is looked up inside the object, so order is not
/// assumed).
pub fn data_placeholder(body: &str) -> Option<usize> {
    const NEEDLE: &[u8] = b"\"data\":{";
    let start = memchr::memmem::find(body.as_bytes(), NEEDLE)? + NEEDLE.len();
    let obj_len = memchr::memchr(b'}', &body.as_bytes()[start..])?;
    let obj = &body[start..start + obj_len];
    if !obj.contains("\"_placeholder\":true") {
        return None;
    }
    let num_at = obj.find("\"num\":")? + "\"num\":".len();
    let digits: &str = &obj[num_at..];
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    digits[..n].parse().ok()
}

pub use streamhub_protocol::engine_io::{encode_binary_event, encode_event, encode_packet};

/// The placeholder that stands for binary attachment `num` in a payload.
pub fn placeholder(num: usize) -> serde_json::Value {
    serde_json::json!(streamhub_protocol::engine_io::Placeholder(num))
}

/// The attachment index a placeholder value stands for, if `v` is one.
pub fn placeholder_num(v: &serde_json::Value) -> Option<usize> {
    if v.get("_placeholder")?.as_bool()? {
        usize::try_from(v.get("num")?.as_u64()?).ok()
    } else {
        None
    }
}

/// Decodes an event body fully (control events only: rare, small).
pub fn decode_event(body: &str) -> Result<(String, Vec<serde_json::Value>), ProtocolError> {
    let mut arr = decode_args(body)?;
    if arr.is_empty() {
        return Err(ProtocolError::Malformed("empty event array".into()));
    }
    match arr.remove(0) {
        serde_json::Value::String(name) => Ok((name, arr)),
        other => Err(ProtocolError::Malformed(format!("event name {other}"))),
    }
}

/// Decodes an ack body: the JSON array of the ack's arguments.
pub fn decode_args(body: &str) -> Result<Vec<serde_json::Value>, ProtocolError> {
    serde_json::from_str(body).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhub_protocol::events;

    #[test]
    fn engine_io_packets() {
        assert_eq!(
            parse(r#"0{"sid":"abc","pingInterval":25000}"#).expect("open"),
            Packet::Open(r#"{"sid":"abc","pingInterval":25000}"#)
        );
        assert_eq!(parse("1").expect("close"), Packet::Close);
        assert_eq!(parse("2").expect("ping"), Packet::Ping);
        assert_eq!(parse("3").expect("pong"), Packet::Pong);
        assert_eq!(parse("6").expect("noop"), Packet::Noop);
        assert!(parse("").is_err());
        assert!(parse("9x").is_err());
        assert!(parse("4").is_err());
    }

    #[test]
    fn socket_io_packets() {
        assert_eq!(
            parse(r#"40{"sid":"x"}"#).expect("connect"),
            Packet::Connect(r#"{"sid":"x"}"#)
        );
        assert_eq!(parse("41").expect("disconnect"), Packet::Disconnect);
        assert_eq!(
            parse(r#"42["user:registered",{"user":{}}]"#).expect("event"),
            Packet::Event {
                ack: None,
                body: r#"["user:registered",{"user":{}}]"#
            }
        );
        assert_eq!(
            parse(r#"4217["x",1]"#).expect("event with ack id"),
            Packet::Event {
                ack: Some(17),
                body: r#"["x",1]"#
            }
        );
        assert_eq!(
            parse(r#"433[{"ok":true}]"#).expect("ack"),
            Packet::Ack {
                ack: 3,
                body: r#"[{"ok":true}]"#
            }
        );
        assert_eq!(
            parse(r#"44{"message":"full"}"#).expect("connect error"),
            Packet::ConnectError(r#"{"message":"full"}"#)
        );
        assert_eq!(
            parse(r#"42/admin,["x"]"#).expect("namespaced"),
            Packet::Event {
                ack: None,
                body: r#"["x"]"#
            }
        );
    }

    #[test]
    fn binary_event_header() {
        let p = parse(r#"451-["stream:data",{"data":{"_placeholder":true,"num":0}}]"#)
            .expect("binary event");
        assert_eq!(
            p,
            Packet::BinaryEvent {
                attachments: 1,
                ack: None,
                body: r#"["stream:data",{"data":{"_placeholder":true,"num":0}}]"#
            }
        );
        let p = parse(r#"4512-9["e",1]"#).expect("many attachments, ack id");
        assert_eq!(
            p,
            Packet::BinaryEvent {
                attachments: 12,
                ack: Some(9),
                body: r#"["e",1]"#
            }
        );
        assert_eq!(
            parse(r#"462-5[{"ok":true}]"#).expect("binary ack"),
            Packet::BinaryAck {
                attachments: 2,
                ack: 5,
                body: r#"[{"ok":true}]"#
            }
        );
        assert!(
            parse(r#"461-[{"ok":true}]"#).is_err(),
            "a binary ack needs its id"
        );
        assert!(parse(r#"45x-["e"]"#).is_err());
        assert!(parse(r#"451["e"]"#).is_err());
    }

    #[test]
    fn event_names() {
        let body = r#"["stream:data",{"streamKey":"k"}]"#;
        let (name, rest) = event_name(body).expect("name");
        assert_eq!(name, events::STREAM_DATA);
        assert_eq!(rest, r#",{"streamKey":"k"}]"#);
        assert!(event_name("[1]").is_none());
        assert!(event_name("{}").is_none());
    }

    #[test]
    fn data_field_of_a_streamhub_frame() {
        // As socketioxide writes `stream:data` (StreamData field order).
        let body = r#"["stream:data",{"streamKey":"k9","data":"QUJDRA==","timestamp":1,"seq":2,"media":"images"}]"#;
        assert_eq!(data_string(body), Some("QUJDRA=="));
        // As the Node seed writes it.
        let body = r#"["stream:data",{"streamKey":"k9","data":"AAAA","timestamp":1}]"#;
        assert_eq!(data_string(body), Some("AAAA"));
        assert_eq!(data_string(r#"["stream:data",{"streamKey":"k"}]"#), None);
        // A binary placeholder is not a string.
        assert_eq!(
            data_string(r#"["stream:data",{"data":{"_placeholder":true,"num":0}}]"#),
            None
        );
    }

    #[test]
    fn placeholders() {
        let body = r#"["stream:data",{"streamKey":"k","data":{"_placeholder":true,"num":0},"timestamp":5,"seq":1,"media":"images"}]"#;
        assert_eq!(data_placeholder(body), Some(0));
        let body = r#"["stream:data",{"data":{"num":3,"_placeholder":true}}]"#;
        assert_eq!(data_placeholder(body), Some(3));
        assert_eq!(data_placeholder(r#"["e",{"data":{"num":3}}]"#), None);
        assert_eq!(data_placeholder(r#"["e",{"data":"x"}]"#), None);
    }

    #[test]
    fn encoding_round_trips_through_the_parser() {
        let text = encode_event(
            events::USER_REGISTER,
            &serde_json::json!({"role": "VIEWER"}),
        );
        assert_eq!(text, r#"42["user:register",{"role":"VIEWER"}]"#);
        let Packet::Event { body, .. } = parse(&text).expect("parses") else {
            panic!("not an event")
        };
        let (name, args) = decode_event(body).expect("decodes");
        assert_eq!(name, events::USER_REGISTER);
        assert_eq!(args[0]["role"], "VIEWER");

        let payload = serde_json::json!({"streamKey": "k", "data": placeholder(0)});
        let text = encode_binary_event(events::STREAM_DATA_SEND, &payload, 1);
        assert!(text.starts_with(r#"451-["stream:data:send",{"#), "{text}");
        assert!(
            text.contains(r#""data":{"_placeholder":true,"num":0}"#),
            "{text}"
        );
        let Packet::BinaryEvent {
            attachments, body, ..
        } = parse(&text).expect("parses")
        else {
            panic!("not a binary event")
        };
        assert_eq!(attachments, 1);
        assert_eq!(data_placeholder(body), Some(0));
    }

    #[test]
    fn placeholder_values() {
        assert_eq!(placeholder_num(&placeholder(4)), Some(4));
        assert_eq!(placeholder_num(&serde_json::json!({"num": 4})), None);
        assert_eq!(
            placeholder_num(&serde_json::json!({"_placeholder": false, "num": 4})),
            None
        );
        assert_eq!(placeholder_num(&serde_json::json!("x")), None);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode_event("[]").is_err());
        assert!(decode_event("[1]").is_err());
        assert!(decode_event("nope").is_err());
    }
}
