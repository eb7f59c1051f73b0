#![warn(missing_docs)]
#![doc = include_str!("../README.md")]

// StreamHub patch.
mod framed;
mod packet;
mod protocol;
mod sid;
mod str;

pub use framed::{FramedText, WS_BINARY, WS_CLOSE, WS_TEXT, ws_header};
pub use packet::{OpenPacket, Packet, PacketBuf, PacketParseError};
pub use protocol::{ProtocolVersion, TransportType, UnknownTransportError};
pub use sid::Sid;
pub use str::Str;
pub mod payload;
