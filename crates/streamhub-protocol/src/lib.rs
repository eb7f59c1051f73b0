//! StreamHub's wire protocol, shared by the server, the load generator and (generated into
//! TypeScript) the web pages.
//!
//! Everything a client can see on the wire lives here: the Socket.IO event names
//! ([`events`]), the payloads in both directions ([`client`] for what clients send,
//! [`server`] for what the server emits), the stable error codes ([`ErrorCode`]) and the
//! validation rules ([`validate`]), the media channel's frame format ([`media_channel`]), and
//! the HTTP API bodies the pages read ([`api`]).
//! `docs/protocol.md` documents the same contract for humans; a change to an event is a change
//! here and there first.
//!
//! The web pages' copy, `web/src/generated/protocol.ts`, is written from these types by a test
//! (`src/typescript.rs`, with `ts-rs` as a dev-dependency): after a change here, run
//! `UPDATE_GENERATED=1 cargo test -p streamhub-protocol typescript` and commit the file.
//!
//! The crate depends on `serde`, `serde_json`, `bytes`, `strum`, `thiserror` and
//! `engineioxide-core` (for the shared framing type, [`engine_io::FramedText`]) only, so it knows
//! nothing of sockets.

#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod engine_io;
mod error;
mod frame;
pub mod media_channel;
pub mod server;
pub mod validate;

#[cfg(test)]
mod typescript;

pub use error::ErrorCode;
pub use frame::{DataRef, FrameData, OutgoingData};

/// Declares each event name once, as a constant the server matches and emits, and in a list
/// per direction that the TypeScript generator (`src/typescript.rs`) writes out for the web
/// pages: the Rust and the browser side cannot name an event differently.
macro_rules! event_names {
    ($(
        $(#[doc = $list_doc:literal])+
        $list:ident {
            $( $(#[doc = $doc:literal])+ $name:ident = $value:literal, )+
        }
    )+) => {
        $($(
            $(#[doc = $doc])+
            pub const $name: &str = $value;
        )+)+
        $(
            $(#[doc = $list_doc])+
            pub const $list: &[EventName] = &[$(EventName {
                name: stringify!($name),
                value: $value,
                doc: concat!($($doc, "\n",)+),
            }),+];
        )+
    };
}

/// Socket.IO event names. The design note's events (`user:register`, `stream:start`,
/// `stream:data:send`, `stream:join`, `stream:data`, `stream:buffer`, ...) are its contract and
/// must not change; the rest are additions it implies (`docs/protocol.md`).
pub mod events {
    /// One event as the generator sees it: the constant's name, the name on the wire, and the
    /// constant's doc comment (one line per `///` line).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct EventName {
        /// The Rust constant's name, e.g. `STREAM_JOIN`.
        pub name: &'static str,
        /// The Socket.IO event name, e.g. `stream:join`.
        pub value: &'static str,
        /// The constant's doc comment.
        pub doc: &'static str,
    }

    event_names! {
        /// Events clients send (`docs/protocol.md`, "Client → server").
        CLIENT_TO_SERVER {
            /// `{username, role, secret?}`: once per connection; a STREAMER also gets a stream.
            USER_REGISTER = "user:register",
            /// `{title?}`: a new stream for this STREAMER (or its unstarted one, retitled).
            STREAM_CREATE = "stream:create",
            /// `{streamKey}`: the owner makes the stream live.
            STREAM_START = "stream:start",
            /// `{streamKey, data, chunk?, config?}`: one frame, relayed to every viewer.
            STREAM_DATA_SEND = "stream:data:send",
            /// `{streamKey}`: watch a stream; answered with `stream:joined` and the catch-up.
            STREAM_JOIN = "stream:join",
            /// `{streamKey}`: stop watching.
            STREAM_LEAVE = "stream:leave",
            /// `{streamKey}`: the owner ends the stream for everyone.
            STREAM_END = "stream:end",
            /// `{streamKey, publishToken}`: a new connection takes its stream back.
            STREAM_RESUME = "stream:resume",
            /// No payload: the live streams (the server answers with the same event name).
            STREAM_LIST = "stream:list",
            /// `{streamKey, message}`: chat in a stream you own or watch.
            CHAT_SEND = "chat:send",
            /// `{streamKey, type}`: one reaction from [`crate::REACTIONS`].
            REACTION_SEND = "reaction:send",
            /// No payload: a single-use credential for this connection's media channel
            /// (`GET /media?token=TOKEN`), valid for a few seconds.
            MEDIA_TOKEN = "media:token",
            /// `{streamKey, data}`: the owner's latest JPEG thumbnail (binary) for the lobby
            /// and link previews; at most one a second per stream.
            STREAM_THUMBNAIL = "stream:thumbnail",
            /// `{streamKey, data, chunk, config?}`: one Opus audio chunk (binary), the stream's
            /// second track; `config` (the `AudioDecoderConfig`) with the first chunk.
            STREAM_AUDIO_SEND = "stream:audio:send",
            /// `{channel}`: follow a channel (a streamer's name): the ack gives its state, and
            /// `channel:live` comes whenever a stream of it goes live.
            CHANNEL_JOIN = "channel:join",
            /// `{streamKey, title}`: the owner renames a stream, live or not.
            STREAM_TITLE = "stream:title",
            /// No payload: the ack carries the server's clock (`{serverTime}`), for clock-offset
            /// estimation (capture times are on the server's clock).
            TIME_SYNC = "time:sync",
        }

        /// Events the server emits (`docs/protocol.md`, "Server → client").
        SERVER_TO_CLIENT {
            /// `{user}`: registration accepted.
            USER_REGISTERED = "user:registered",
            /// `{stream, publishToken}`: a stream was made for this STREAMER.
            STREAM_CREATED = "stream:created",
            /// `{stream}`: to the owner and the viewers when the stream goes live.
            STREAM_STARTED = "stream:started",
            /// One frame, to every viewer (over the media channel instead when the join used it).
            STREAM_DATA = "stream:data",
            /// `{streamKey, frames}`: images mode's catch-up for a viewer who just joined.
            STREAM_BUFFER = "stream:buffer",
            /// `{stream, viewerCount}`: after `stream:join`.
            STREAM_JOINED = "stream:joined",
            /// `{streamKey}`: after `stream:leave`.
            STREAM_LEFT = "stream:left",
            /// `{streamKey, reason}`: the stream is over; nothing more comes for it.
            STREAM_ENDED = "stream:ended",
            /// `{streamKey, viewerCount}`: the count changed (coalesced).
            STREAM_VIEWERS = "stream:viewers",
            /// `{streamKey, status, graceMs?}`: the streamer dropped (`reconnecting`) or came back.
            STREAM_STATUS = "stream:status",
            /// `{stream}`: to the connection that resumed the stream.
            STREAM_RESUMED = "stream:resumed",
            /// `{streamKey, reason}`: this viewer was removed for not reading its frames.
            STREAM_EVICTED = "stream:evicted",
            /// `{streamKey, reason}`: to a WebCodecs streamer, asking for a keyframe soon.
            STREAM_KEYFRAME_REQUEST = "stream:keyframe:request",
            /// One audio chunk, to every viewer (over the media channel instead when the join
            /// used it, as a message whose header says `track: "audio"`).
            STREAM_AUDIO = "stream:audio",
            /// `{streamKey, level}`: this viewer's delivery level changed.
            STREAM_LEVEL = "stream:level",
            /// A chat message in a stream you own or watch.
            CHAT_MESSAGE = "chat:message",
            /// `{streamKey, messages}`: the channel's recent chat, right after joining.
            CHAT_HISTORY = "chat:history",
            /// A reaction in a stream you own or watch.
            REACTION = "reaction",
            /// `{channel, stream}`: to a channel's followers when a stream of it goes live.
            CHANNEL_LIVE = "channel:live",
            /// `{stream}`: to the owner and the viewers when the stream's title changed.
            STREAM_UPDATED = "stream:updated",
            /// `{code, message, event}`: a request was refused; the connection stays up.
            ERROR = "error",
        }
    }
}

/// Reactions a viewer may send: a fixed set so a client cannot push arbitrary text through
/// the reaction channel (chat is the place for that).
pub const REACTIONS: &[&str] = &["👍", "❤️", "😂", "😮", "😢", "🔥", "👏", "🎉"];

/// Most binary attachments one Socket.IO message may carry: socket.io-parser ≥ 4.2.5 (the
/// official JavaScript client) drops the connection on more than 10 by default, so the server
/// splits `stream:buffer` into messages of at most this many frames.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;

/// Thumbnails (`stream:thumbnail`): the largest the server accepts by default
/// (`--max-thumbnail-bytes`).
pub const THUMBNAIL_MAX_BYTES: usize = 64 * 1024;

/// Thumbnails: the shortest time between two accepted thumbnails of one stream; one sent
/// sooner is refused with `RATE_LIMITED`.
pub const THUMBNAIL_MIN_INTERVAL_MS: u64 = 1000;

/// Audio (`stream:audio:send`): the largest chunk accepted, in bytes. An Opus packet is at
/// most 1275 bytes per frame; this leaves room for packets of several frames.
pub const AUDIO_MAX_BYTES: usize = 8 * 1024;

/// Audio: most chunks a stream may send per second (one second's burst). Our pages send 10 ms
/// frames, 100 a second: twice that leaves room for a sender catching up after a stall.
pub const AUDIO_MAX_CHUNKS_PER_SEC: u32 = 200;

/// Audio: the chunks kept for a late joiner (the latest ones; 100 ms of 10 ms frames), so it
/// hears sound at once. Bounded in bytes by this many times [`AUDIO_MAX_BYTES`].
pub const AUDIO_CATCHUP_CHUNKS: usize = 10;

/// Audio: the largest `config` (`AudioDecoderConfig` as JSON) accepted, in bytes.
pub const AUDIO_CONFIG_MAX_BYTES: usize = 1024;

/// Audio: the one sample rate accepted (Opus's native rate).
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;

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
    server::Track,
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
        check(
            server::Track::ALL,
            server::Track::as_str,
            server::Track::index,
        );
        assert_eq!(server::MediaMode::ALL.len(), 3);
        assert_eq!(ErrorCode::ALL.len(), 25);
    }
}
