use serde::Serialize;

/// Stable error codes carried by the `error` event and by failed acks.
///
/// The string form (`SCREAMING_SNAKE_CASE`) is the contract; the message is for humans and
/// may change.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(test, derive(ts_rs::TS))]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The payload is not the documented shape (wrong type, missing field, bad JSON).
    InvalidPayload,
    /// The event needs `user:register` first.
    NotRegistered,
    /// This connection is already registered.
    AlreadyRegistered,
    /// Username empty after trimming, too long, or with control characters.
    InvalidUsername,
    /// Registering as STREAMER needs the server's publish secret.
    Forbidden,
    /// Only a user registered as STREAMER may do this.
    NotStreamer,
    /// Title too long or with control characters.
    InvalidTitle,
    /// This connection already owns the maximum number of streams.
    TooManyStreams,
    /// No stream with this key (never existed, or ended).
    StreamNotFound,
    /// The stream belongs to another connection (a viewer trying to publish, say).
    NotOwner,
    /// The frame is larger than the server's limit.
    FrameTooLarge,
    /// Too many frames, chat messages or reactions: the excess is dropped.
    RateLimited,
    /// Chat message empty after trimming or too long.
    InvalidMessage,
    /// Reaction not in the documented set.
    InvalidReaction,
    /// The event needs the client to have joined (or own) the stream.
    NotInStream,
    /// Wrong `publishToken` for `stream:resume`.
    InvalidToken,
    /// The connection joined the maximum number of streams.
    TooManyJoins,
    /// The server is full (too many connections or streams).
    ServerFull,
    /// The server is shutting down.
    ShuttingDown,
    /// The server could not store the chat message (its database is busy or failing): the
    /// message was not sent to anyone; the client may send it again.
    StorageUnavailable,
    /// The event name is not part of the protocol.
    UnknownEvent,
    /// HTTP: no such route.
    NotFound,
    /// The name is a claimed channel: registering it as STREAMER needs its `channelToken`.
    NameTaken,
    /// `stream:thumbnail`: not a JPEG (its first bytes are not `FF D8 FF`), or sent as text.
    InvalidThumbnail,
    /// `stream:thumbnail`: larger than the server's thumbnail limit.
    ThumbnailTooLarge,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
