//! StreamHub patch: an Engine.IO text message framed once for many sockets.

use bytes::{BufMut, Bytes, BytesMut};

use crate::Str;

/// Websocket opcodes (RFC 6455, 5.2).
pub const WS_TEXT: u8 = 0x1;
/// Websocket opcode of a binary frame.
pub const WS_BINARY: u8 = 0x2;
/// Websocket opcode of a close frame.
pub const WS_CLOSE: u8 = 0x8;

/// The header of an unmasked, final websocket frame (what a server sends) with `len` payload
/// bytes: its bytes and how many of them are used (2, 4 or 10).
pub fn ws_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    let used = if len < 126 {
        h[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, used)
}

/// An Engine.IO text packet (`4...`, its type character included) together with the complete
/// websocket frame that carries it, built once: every socket it is queued for shares the same
/// bytes, and the websocket writer sends the frame with one plain write. Polling transports
/// send the text, a slice of the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FramedText {
    frame: Bytes,
    text: Str,
}

impl FramedText {
    /// Frames `text`, an Engine.IO text packet with its type character.
    pub fn new(text: &str) -> Self {
        let (header, used) = ws_header(WS_TEXT, text.len());
        let mut buf = BytesMut::with_capacity(used + text.len());
        buf.put_slice(&header[..used]);
        buf.put_slice(text.as_bytes());
        let frame = buf.freeze();
        // SAFETY: the bytes after the header are `text`'s, valid UTF-8.
        let text = unsafe { Str::from_bytes_unchecked(frame.slice(used..)) };
        Self { frame, text }
    }

    /// The complete websocket frame.
    pub fn ws_frame(&self) -> &Bytes {
        &self.frame
    }

    /// The Engine.IO text packet.
    pub fn text(&self) -> &Str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length() {
        assert_eq!(ws_header(WS_TEXT, 5).0[..2], [0x81, 5]);
        let (h, n) = ws_header(WS_BINARY, 300);
        assert_eq!(&h[..n], &[0x82, 126, 1, 44]);
        let (h, n) = ws_header(WS_BINARY, 70_000);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn the_text_is_a_slice_of_the_frame() {
        let f = FramedText::new("42[\"e\"]");
        assert_eq!(f.text().as_str(), "42[\"e\"]");
        assert_eq!(&f.ws_frame()[..2], &[0x81, 7]);
        assert_eq!(&f.ws_frame()[2..], f.text().as_bytes());
        let long = "4".repeat(200);
        let f = FramedText::new(&long);
        assert_eq!(&f.ws_frame()[..4], &[0x81, 126, 0, 200]);
        assert_eq!(f.text().as_str(), long);
    }
}
