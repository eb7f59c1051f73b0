//! StreamHub's wire protocol, shared by the server and the load generator.
//!
//! Everything a client can see on the wire lives here: the Socket.IO event names
//! ([`events`]), the payloads in both directions ([`client`] for what clients send,
//! [`server`] for what the server emits), the stable error codes ([`ErrorCode`]) and the
//! validation rules ([`validate`]), and the media channel's frame format ([`media_channel`]). `docs/protocol.md` documents the same contract for
//! humans; a change to an event is a change here and there first.
//!
//! The crate depends on `serde`, `bytes` and `thiserror` only, so it knows nothing of sockets.

pub mod client;
mod error;
mod frame;
pub mod media_channel;
pub mod server;
pub mod validate;

pub use error::ErrorCode;
pub use frame::{DataRef, FrameData, OutgoingData};

/// Socket.IO event names. The first block is the design note's contract and must not change.
pub mod events {
    // Client → server.
    pub const USER_REGISTER: &str = "user:register";
    pub const STREAM_CREATE: &str = "stream:create";
    pub const STREAM_START: &str = "stream:start";
    pub const STREAM_DATA_SEND: &str = "stream:data:send";
    pub const STREAM_JOIN: &str = "stream:join";
    pub const STREAM_LEAVE: &str = "stream:leave";
    pub const STREAM_END: &str = "stream:end";
    pub const STREAM_RESUME: &str = "stream:resume";
    pub const STREAM_LIST: &str = "stream:list";
    pub const CHAT_SEND: &str = "chat:send";
    pub const REACTION_SEND: &str = "reaction:send";

    // Server → client.
    pub const USER_REGISTERED: &str = "user:registered";
    pub const STREAM_CREATED: &str = "stream:created";
    pub const STREAM_STARTED: &str = "stream:started";
    pub const STREAM_DATA: &str = "stream:data";
    pub const STREAM_BUFFER: &str = "stream:buffer";
    pub const STREAM_JOINED: &str = "stream:joined";
    pub const STREAM_LEFT: &str = "stream:left";
    pub const STREAM_ENDED: &str = "stream:ended";
    pub const STREAM_VIEWERS: &str = "stream:viewers";
    pub const STREAM_STATUS: &str = "stream:status";
    pub const STREAM_RESUMED: &str = "stream:resumed";
    pub const STREAM_EVICTED: &str = "stream:evicted";
    pub const STREAM_KEYFRAME_REQUEST: &str = "stream:keyframe:request";
    pub const STREAM_LEVEL: &str = "stream:level";
    pub const CHAT_MESSAGE: &str = "chat:message";
    pub const CHAT_HISTORY: &str = "chat:history";
    pub const REACTION: &str = "reaction";
    pub const ERROR: &str = "error";
}

/// Reactions a viewer may send: a fixed set so a client cannot push arbitrary text through
/// the reaction channel (chat is the place for that).
pub const REACTIONS: &[&str] = &["👍", "❤️", "😂", "😮", "😢", "🔥", "👏", "🎉"];

/// Most binary attachments one Socket.IO message may carry: socket.io-parser ≥ 4.2.5 (the
/// official JavaScript client) drops the connection on more than 10 by default, so the server
/// splits `stream:buffer` into messages of at most this many frames.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;

/// Milliseconds since the Unix epoch, the unit of every timestamp on the wire.
pub type Millis = u64;

/// Gives a wire enum its one string form and the list of its values: `as_str()` is the name
/// serde writes (the enum's `#[strum(serialize_all)]` matches its `#[serde(rename_all)]`, and
/// a test checks every value), `ALL` every value in declaration order. Metrics labels, the
/// database and the dashboard use these instead of tables of their own.
macro_rules! wire_names {
    ($($ty:ty),+ $(,)?) => {$(
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = <Self as strum::VariantArray>::VARIANTS;

            /// The value as it travels on the wire.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// Position in [`Self::ALL`], for per-value counters kept in an array.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    )+};
}

wire_names!(
    ErrorCode,
    client::Role,
    client::ChunkKind,
    server::StreamStatus,
    server::MediaMode,
    server::EndReason,
);

#[cfg(test)]
mod wire_name_tests {
    use super::*;

    fn check<T: serde::Serialize + Copy>(
        all: &[T],
        name: impl Fn(T) -> &'static str,
        index: impl Fn(T) -> usize,
    ) {
        for (i, v) in all.iter().enumerate() {
            let json = serde_json::to_string(v).expect("serializes");
            assert_eq!(json, format!("\"{}\"", name(*v)));
            assert_eq!(index(*v), i);
        }
    }

    #[test]
    fn as_str_is_the_serde_name_for_every_value() {
        check(ErrorCode::ALL, ErrorCode::as_str, ErrorCode::index);
        check(client::Role::ALL, client::Role::as_str, client::Role::index);
        check(
            client::ChunkKind::ALL,
            client::ChunkKind::as_str,
            client::ChunkKind::index,
        );
        check(
            server::StreamStatus::ALL,
            server::StreamStatus::as_str,
            server::StreamStatus::index,
        );
        check(
            server::MediaMode::ALL,
            server::MediaMode::as_str,
            server::MediaMode::index,
        );
        check(
            server::EndReason::ALL,
            server::EndReason::as_str,
            server::EndReason::index,
        );
        assert_eq!(server::MediaMode::ALL.len(), 3);
        assert_eq!(ErrorCode::ALL.len(), 21);
    }
}
