//! StreamHub patch: the websocket writer of the ws transport.
//!
//! tungstenite copies every outgoing message into a write buffer of its own before writing it,
//! one copy per socket: for a packet many sockets share (a live video frame sent to thousands
//! of viewers) that copy was 11% of the server's CPU, and a slow peer's unsent frames piled up
//! there as private copies. Here a packet framed once for many sockets (`Packet::Framed`) is
//! written as it is, with one plain write of the shared bytes; any other packet as one
//! websocket frame by a vectored write of its header (2 to 10 bytes) and its bytes. Nothing is
//! copied or buffered per socket but that header. tungstenite still reads the connection and writes its own
//! control frames (the handshake packets, pongs to websocket pings, the reply to a close):
//! those go to an [`Outbox`] that the writer task writes between packets.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use engineioxide_core::{Packet, ProtocolVersion, WS_BINARY, WS_CLOSE, WS_TEXT, ws_header};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Most bytes of control frames waiting for the writer. A ping carries at most 125 bytes; a
/// peer that makes the outbox overflow (pings faster than it reads) is disconnected.
const MAX_OUTBOX: usize = 64 * 1024;

/// What tungstenite wrote, waiting for the writer task; and whether the connection is over.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    bytes: Mutex<BytesMut>,
    pending: AtomicBool,
    /// Set when the reader ends or the session is cancelled: the writer stops. A flag the
    /// writer reads for free, where polling the session's cancellation token takes a lock each
    /// time (3% of the server's CPU at 2000 viewers).
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl Outbox {
    fn push(&self, data: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if bytes.len() + data.len() > MAX_OUTBOX {
            return Err(io::Error::other("too many websocket control frames waiting"));
        }
        bytes.extend_from_slice(data);
        drop(bytes);
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
        Ok(())
    }

    /// The connection is over: the writer stops.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once something waits in the outbox or the connection is over.
    pub(crate) fn ready(&self) -> impl Future<Output = ()> + '_ {
        self.until(|| self.pending.load(Ordering::Acquire) || self.is_closed())
    }

    /// Resolves once the connection is over.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + '_ {
        self.until(|| self.is_closed())
    }

    fn until(&self, done: impl Fn() -> bool) -> impl Future<Output = ()> {
        std::future::poll_fn(move |cx| {
            if done() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if done() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Writes what waits in the outbox, if anything.
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(&self, wr: &mut W) -> io::Result<()> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let bytes = {
            let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
            bytes.split().freeze()
        };
        if !bytes.is_empty() {
            wr.write_all(&bytes).await?;
            wr.flush().await?;
        }
        Ok(())
    }
}

/// The connection as tungstenite sees it: it reads the read half; what it writes goes to the
/// outbox.
#[derive(Debug)]
pub(crate) struct WsIo<R> {
    rd: R,
    outbox: std::sync::Arc<Outbox>,
}

impl<R> WsIo<R> {
    pub(crate) fn new(rd: R, outbox: std::sync::Arc<Outbox>) -> Self {
        Self { rd, outbox }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WsIo<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for WsIo<R> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.outbox.push(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One packet as websocket frame bytes: a frame built once and shared, or a header of ours,
/// a type prefix and the packet's bytes.
enum Piece {
    Frame(Bytes),
    Parts {
        header: ([u8; 10], usize),
        prefix: &'static [u8],
        body: Bytes,
    },
}

impl Piece {
    fn new(opcode: u8, prefix: &'static [u8], body: Bytes) -> Self {
        Self::Parts {
            header: ws_header(opcode, prefix.len() + body.len()),
            prefix,
            body,
        }
    }
}

/// Writes a batch of packets (an Engine.IO message and its binary attachments), one websocket
/// frame each, with as few system calls as possible: a single shared frame goes out with one
/// plain write (no `writev`, whose file-level path cost ~5% of the server's CPU at 2000
/// viewers), anything else with vectored writes. Nothing is copied.
pub(crate) async fn write_packets<W: AsyncWrite + Unpin>(
    wr: &mut W,
    protocol: ProtocolVersion,
    packets: impl IntoIterator<Item = Packet>,
) -> io::Result<()> {
    let mut pieces: smallvec::SmallVec<[Piece; 2]> = smallvec::SmallVec::new();
    for packet in packets {
        pieces.push(match packet {
            Packet::Framed(framed) => Piece::Frame(framed.ws_frame().clone()),
            Packet::Message(msg) => Piece::new(WS_TEXT, b"4", msg.into()),
            // v3 puts the packet type before the data.
            Packet::Binary(bin) | Packet::BinaryV3(bin) if protocol == ProtocolVersion::V3 => {
                Piece::new(WS_BINARY, &[0x04], bin)
            }
            Packet::Binary(bin) | Packet::BinaryV3(bin) => Piece::new(WS_BINARY, b"", bin),
            // A Noop packet is sent to end a polling request during an upgrade; one that was
            // not polled in time stays in the queue and is dropped here.
            Packet::Noop => continue,
            other => Piece::new(WS_TEXT, b"", Bytes::from(String::from(other))),
        });
    }
    if let [Piece::Frame(frame)] = &pieces[..] {
        return wr.write_all(frame).await;
    }
    let mut slices: smallvec::SmallVec<[IoSlice<'_>; 6]> = smallvec::SmallVec::new();
    for piece in &pieces {
        match piece {
            Piece::Frame(frame) => slices.push(IoSlice::new(frame)),
            Piece::Parts {
                header,
                prefix,
                body,
            } => {
                slices.push(IoSlice::new(&header.0[..header.1]));
                for part in [&prefix[..], &body[..]] {
                    if !part.is_empty() {
                        slices.push(IoSlice::new(part));
                    }
                }
            }
        }
    }
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = wr.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Writes a close frame without a status.
pub(crate) async fn write_close<W: AsyncWrite + Unpin>(wr: &mut W) -> io::Result<()> {
    let (header, used) = ws_header(WS_CLOSE, 0);
    wr.write_all(&header[..used]).await?;
    wr.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use engineioxide_core::{FramedText, Str};
    use futures_util::StreamExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[tokio::test]
    async fn a_client_reads_every_kind_of_packet() {
        let (server, client) = tokio::io::duplex(1 << 20);
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let (_rd, mut wr) = tokio::io::split(server);
        let big = Bytes::from(vec![7u8; 70_000]);
        let v4 = ProtocolVersion::V4;
        write_packets(&mut wr, v4, [Packet::Message(Str::from("2[\"e\"]"))]).await.unwrap();
        write_packets(&mut wr, v4, [Packet::Framed(FramedText::new("42[\"shared\"]"))])
            .await
            .unwrap();
        write_packets(
            &mut wr,
            v4,
            [
                Packet::Framed(FramedText::new("451-[\"b\"]")),
                Packet::Binary(big.clone()),
            ],
        )
        .await
        .unwrap();
        write_packets(&mut wr, v4, [Packet::Noop, Packet::Ping]).await.unwrap();
        write_close(&mut wr).await.unwrap();
        let mut got = Vec::new();
        while let Some(Ok(m)) = client.next().await {
            got.push(m);
        }
        assert_eq!(got[0], Message::text("42[\"e\"]"));
        assert_eq!(got[1], Message::text("42[\"shared\"]"));
        assert_eq!(got[2], Message::text("451-[\"b\"]"));
        assert_eq!(got[3], Message::binary(big));
        assert_eq!(got[4], Message::text("2"));
        assert!(matches!(got[5], Message::Close(_)));
    }
}
