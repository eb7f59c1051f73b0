//! Media container parsing for the relay. Sans-IO: bytes in, typed pieces out, no sockets and
//! no clock.
//!
//! - [`webm`]: an incremental push parser that cuts a live WebM byte stream (Chrome's
//!   `MediaRecorder` output) into the init segment and Clusters, and tells which Clusters start
//!   with a video keyframe, so a late joiner can be given bytes it can decode.

pub mod webm;

pub use webm::{Piece, Track, TrackKind, WebmError, WebmParser};
