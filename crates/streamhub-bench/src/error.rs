//! What can go wrong talking to the server. One enum for the whole client side: every failure
//! ends one connection, and the report counts them by [`ProtocolError::kind`].

use std::time::Duration;

/// A failed exchange with the server on one connection.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// TCP connect or the websocket upgrade failed.
    #[error("connecting: {0}")]
    Connect(String),
    /// The websocket layer failed after the upgrade (reset, protocol violation).
    #[error("websocket: {0}")]
    Ws(#[from] tokio_websockets::Error),
    /// The server answered the websocket upgrade with another HTTP status (the media
    /// channel's refusals: 404, 409, 503, each with a JSON error body).
    #[error("upgrade refused with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    /// The server closed the connection (Engine.IO close, Socket.IO disconnect, or EOF)
    /// while we waited for what the field names.
    #[error("server closed the connection while waiting for {0}")]
    Closed(String),
    /// The server refused the Socket.IO connect (`44{...}`).
    #[error("connect refused by the server: {0}")]
    ConnectRefused(String),
    /// A packet that does not follow Engine.IO v4 / Socket.IO v5 framing.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A packet that is well formed but not what this step of the protocol expects.
    #[error("expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
    /// The server answered with an `error` event or a failure ack.
    #[error("server error on {event}: {code}: {message}")]
    Server {
        event: String,
        code: String,
        message: String,
    },
    /// A media-channel message that is not a frame.
    #[error("media channel: {0}")]
    Media(#[from] streamhub_protocol::media_channel::DecodeError),
    /// A reply did not come in time.
    #[error("no {0} within {1:?}")]
    Timeout(String, Duration),
}

impl ProtocolError {
    /// A short stable label, used to count failures in the report.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Rejected { .. } => "rejected",
            Self::Ws(_) => "websocket",
            Self::Closed(_) => "closed",
            Self::ConnectRefused(_) => "refused",
            Self::Malformed(_) => "malformed",
            Self::Media(_) => "media",
            Self::Unexpected { .. } => "unexpected",
            Self::Server { .. } => "server_error",
            Self::Timeout(..) => "timeout",
        }
    }
}

/// A `--url` the load generator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{0} is served over TLS: give the certificate to trust with --tls-ca")]
    NoTrust(String),
    #[error("--tls-ca {0}: {1}")]
    Ca(String, String),
    #[error("resolving {0}: {1}")]
    Resolve(String, #[source] std::io::Error),
    #[error("{0} resolves to nothing")]
    NoAddress(String),
}
