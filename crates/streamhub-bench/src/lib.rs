//! `streamhub-bench`: the load generator behind `bench/run.sh`.
//!
//! One streamer and N viewers over raw Engine.IO v4 websockets, speaking the protocol in
//! `docs/protocol.md` with the event names of `streamhub-protocol`. Every frame carries its
//! send time and a counter inside its content ([`stamp`]), so each viewer measures end-to-end
//! latency on receipt; the run reports delivery, latency percentiles, stalled-viewer
//! evictions and the server's CPU and memory read from `/proc`.
//!
//! # Modules
//! - [`args`]: the command line.
//! - [`eio`]: Engine.IO / Socket.IO packet framing, parsed without JSON decoding on the hot path.
//! - [`stamp`]: the 16-byte send-time stamp, and frame templates (base64 text or binary).
//! - [`client`]: one Socket.IO connection (handshake, emit, acks, events) and the media
//!   channel; the server's integration tests use it too.
//! - [`ws`]: the websocket under both (`tokio-websockets` after a hyper upgrade), and why.
//! - [`run`]: the run itself: streamer thread, viewer tasks, measurement window, drain.
//! - [`stats`]: latency histogram and delivered fraction.
//! - [`procfs`]: CPU, RSS and TCP states from `/proc`.
//! - [`report`]: the result, as JSON or a table.
//! - [`error`]: what can fail on a connection.

pub mod args;
pub mod client;
pub mod eio;
pub mod error;
pub mod procfs;
pub mod report;
pub mod run;
pub mod stamp;
pub mod stats;
pub mod ws;

pub use args::Args;
pub use client::{Client, MediaChannel, Target};
pub use error::ProtocolError;
pub use report::Report;
pub use run::run;
