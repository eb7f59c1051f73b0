#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

pub use engineioxide_core::{ProtocolVersion, Str, TransportType};
/// StreamHub patch.
pub use engineioxide_core::FramedText;
pub use socket::{DisconnectReason, Socket};

#[doc(hidden)]
#[cfg(feature = "__test_harness")]
pub use engineioxide_core::{OpenPacket, Packet, PacketParseError};

pub mod config;
pub mod handler;
pub mod layer;
pub mod service;
pub mod socket;

/// Socket id type and generator
pub mod sid {
    #[deprecated(since = "0.16.2", note = "Use engineioxide::socket::Sid instead")]
    pub use engineioxide_core::Sid;
}

/// StreamHub patch: the ws transport's reading half, for other websocket endpoints that write
/// their own frames (`transport/writer.rs` says why).
pub mod ws_io {
    pub use crate::transport::writer::{Outbox, WsIo};

    /// The reading half [`tcp_halves`] gives: the bytes the HTTP server read past the upgrade
    /// request, then the connection.
    pub type TcpReadHalf =
        tokio::io::Chain<std::io::Cursor<bytes::Bytes>, tokio::net::tcp::OwnedReadHalf>;

    /// An upgraded connection that is plain TCP (hyper served the `TcpStream` itself), split
    /// into halves that share no lock (`tokio::io::split` locks on every read and write: 4% of
    /// the server's CPU at 2000 viewers); any other connection (TLS, say) comes back as it is.
    pub fn tcp_halves(
        conn: hyper::upgrade::Upgraded,
    ) -> Result<(TcpReadHalf, tokio::net::tcp::OwnedWriteHalf), hyper::upgrade::Upgraded> {
        let tcp = conn.downcast::<hyper_util::rt::TokioIo<tokio::net::TcpStream>>()?;
        let (rd, wr) = tcp.io.into_inner().into_split();
        let rd = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(tcp.read_buf), rd);
        Ok((rd, wr))
    }
}

mod body;
mod engine;
mod errors;
mod transport;
