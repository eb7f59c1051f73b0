use serde::Serialize;

/// Stable error codes carried by the `error` event and by failed acks.
///
/// The string form (`SCREAMING_SNAKE_CASE`) is the contract; the message is for humans and
/// may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
    /// The event name is not part of the protocol.
    UnknownEvent,
    /// HTTP: no such route.
    NotFound,
}

impl ErrorCode {
    /// The code as it travels on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPayload => "INVALID_PAYLOAD",
            Self::NotRegistered => "NOT_REGISTERED",
            Self::AlreadyRegistered => "ALREADY_REGISTERED",
            Self::InvalidUsername => "INVALID_USERNAME",
            Self::Forbidden => "FORBIDDEN",
            Self::NotStreamer => "NOT_STREAMER",
            Self::InvalidTitle => "INVALID_TITLE",
            Self::TooManyStreams => "TOO_MANY_STREAMS",
            Self::StreamNotFound => "STREAM_NOT_FOUND",
            Self::NotOwner => "NOT_OWNER",
            Self::FrameTooLarge => "FRAME_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::InvalidMessage => "INVALID_MESSAGE",
            Self::InvalidReaction => "INVALID_REACTION",
            Self::NotInStream => "NOT_IN_STREAM",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::TooManyJoins => "TOO_MANY_JOINS",
            Self::ServerFull => "SERVER_FULL",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::UnknownEvent => "UNKNOWN_EVENT",
            Self::NotFound => "NOT_FOUND",
        }
    }

    /// Position in [`ErrorCode::ALL`], for per-code counters kept in an array.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// Every code, for documentation tests and exhaustive metrics.
    pub const ALL: &'static [ErrorCode] = &[
        Self::InvalidPayload,
        Self::NotRegistered,
        Self::AlreadyRegistered,
        Self::InvalidUsername,
        Self::Forbidden,
        Self::NotStreamer,
        Self::InvalidTitle,
        Self::TooManyStreams,
        Self::StreamNotFound,
        Self::NotOwner,
        Self::FrameTooLarge,
        Self::RateLimited,
        Self::InvalidMessage,
        Self::InvalidReaction,
        Self::NotInStream,
        Self::InvalidToken,
        Self::TooManyJoins,
        Self::ServerFull,
        Self::ShuttingDown,
        Self::UnknownEvent,
        Self::NotFound,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_as_str_for_every_code() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::ALL[code.index()], *code);
        }
    }
}
