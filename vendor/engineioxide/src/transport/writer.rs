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
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use engineioxide_core::{Packet, ProtocolVersion, WS_BINARY, WS_CLOSE, WS_TEXT, ws_header};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

/// Most bytes of control frames waiting for the writer. A ping carries at most 125 bytes; a
/// peer that makes the outbox overflow (pings faster than it reads) is disconnected.
const MAX_OUTBOX: usize = 64 * 1024;

/// What tungstenite wrote, waiting for the writer task; and whether the connection is over.
/// Public (with [`WsIo`]) for other websocket endpoints that write their own frames and let
/// tungstenite only read (StreamHub's media channel).
#[derive(Debug, Default)]
pub struct Outbox {
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

    /// Wakes the writer task without bytes: the rest of a direct write waits for it.
    fn nudge(&self) {
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// The connection is over: the writer stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether [`Outbox::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once something waits in the outbox or the connection is over.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        self.until(|| self.pending.load(Ordering::Acquire) || self.is_closed())
    }

    /// Resolves once the connection is over.
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
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

    /// Takes what waits in the outbox (empty if nothing), for a writer that keeps track of
    /// what it has written.
    pub fn take(&self) -> Bytes {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Bytes::new();
        }
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        bytes.split().freeze()
    }

    /// Writes what waits in the outbox, if anything.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, wr: &mut W) -> io::Result<()> {
        let bytes = self.take();
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
pub struct WsIo<R> {
    rd: R,
    outbox: std::sync::Arc<Outbox>,
}

impl<R> WsIo<R> {
    /// tungstenite reads `rd` and writes to `outbox`.
    pub fn new(rd: R, outbox: std::sync::Arc<Outbox>) -> Self {
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

/// Who writes to a plain TCP connection right now ([`Direct`]'s state).
const IDLE: u8 = 0;
/// A sender is writing a packet straight to the connection (a few microseconds, no await).
const SENDER: u8 = 1;
/// The writer task owns the connection: it writes, or the rest of a direct write waits for it.
const TASK: u8 = 2;
/// The writer task has ended: nobody writes any more.
const CLOSED: u8 = 3;

/// The write half of a plain TCP connection, shared by the writer task and [`Direct`]: both
/// write through `&TcpStream` (`try_write`), so neither needs a lock or the other's help.
#[derive(Debug, Clone)]
pub(crate) struct SharedTcp(pub(crate) Arc<OwnedWriteHalf>);

impl SharedTcp {
    /// Waits until the connection is writable, then writes with `write` (a non-blocking
    /// `try_write*`), again on a spurious readiness.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let tcp: &TcpStream = (*self.0).as_ref();
        loop {
            std::task::ready!(tcp.poll_write_ready(cx))?;
            match write(tcp) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                res => return Poll::Ready(res),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |tcp| tcp.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |tcp| tcp.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let tcp: &TcpStream = (*self.0).as_ref();
        Poll::Ready(socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Write))
    }
}

/// Direct writes (StreamHub patch). A packet offered to a socket whose queue is empty and
/// whose writer task is idle is written by the sender itself, with one non-blocking write,
/// instead of going through the queue: no queue push and pop, no wake-up, no task poll per
/// socket. Those cost ~17% of the server's CPU at 2000 viewers of one stream, where nearly
/// every viewer's queue is empty when the next frame comes. When the socket takes only part of
/// the packet, the rest is handed to the writer task, which writes it before anything else;
/// when it takes nothing, the packet goes into the queue as before. Only plain TCP
/// connections have this (their write half can be shared without a lock, [`SharedTcp`]).
#[derive(Debug)]
pub(crate) struct Direct {
    tcp: Arc<OwnedWriteHalf>,
    /// [`IDLE`], [`SENDER`], [`TASK`] or [`CLOSED`].
    state: AtomicU8,
    /// The unwritten rest of a direct write, for the writer task.
    tail: Mutex<smallvec::SmallVec<[Bytes; 3]>>,
    /// The writer task, when it waits for a direct write to end.
    waiter: AtomicWaker,
    waiting: AtomicBool,
    /// The writer task may be taking a packet off the queue before it has the connection
    /// ([`Direct::taking`]): a packet in its hand leaves the queue looking empty, and a direct
    /// write then would overtake it.
    taking: AtomicBool,
    outbox: Arc<Outbox>,
    protocol: ProtocolVersion,
}

impl Direct {
    /// The writer task owns the connection to begin with.
    pub(crate) fn new(tcp: Arc<OwnedWriteHalf>, outbox: Arc<Outbox>, protocol: ProtocolVersion) -> Self {
        Self {
            tcp,
            state: AtomicU8::new(TASK),
            tail: Mutex::default(),
            waiter: AtomicWaker::new(),
            waiting: AtomicBool::new(false),
            taking: AtomicBool::new(false),
            outbox,
            protocol,
        }
    }

    /// Takes the connection for one direct write if nobody else is writing, `queue_empty()`
    /// and the writer task holds no packet taken off the queue (both checked once the
    /// connection is ours, in that order: nothing queued may be overtaken). The write must
    /// follow, [`Direct::write_reserved`], or [`Direct::unreserve`]: until then the writer task
    /// waits and other packets go into the queue, behind this one.
    pub(crate) fn reserve(&self, queue_empty: impl FnOnce() -> bool) -> bool {
        if self
            .state
            .compare_exchange(IDLE, SENDER, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if !queue_empty() || self.taking.load(Ordering::SeqCst) {
            self.unreserve();
            return false;
        }
        true
    }

    /// The writer task says it may take a packet off the queue (`true`, before it looks) or
    /// found none (`false`). It takes one while senders may write directly, then waits for the
    /// connection ([`Direct::acquire`]); without this flag a sender that reserved in between
    /// saw an empty queue and wrote a later frame first (the load generator counted ~1 frame
    /// per viewer out of order at 5000 viewers, where writer tasks lag).
    pub(crate) fn taking(&self, on: bool) {
        self.taking.store(on, Ordering::SeqCst);
    }

    /// Gives back a reservation unused.
    pub(crate) fn unreserve(&self) {
        self.set(IDLE);
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        if self.waiting.swap(false, Ordering::AcqRel) {
            self.waiter.wake();
        }
    }

    /// Writes a shared websocket `frame` and the binary `attachment` that follows it, on a
    /// reservation ([`Direct::reserve`]), with one non-blocking write. What the socket does not
    /// take (all of it when it is full) is handed to the writer task, before anything queued
    /// after it, and counted in `queued` until written.
    pub(crate) fn write_reserved(&self, frame: &Bytes, attachment: Option<&Bytes>, queued: &AtomicU64) {
        let tcp: &TcpStream = (*self.tcp).as_ref();
        let prefix: &'static [u8] = if self.protocol == ProtocolVersion::V3 { &[0x04] } else { b"" };
        let header = ws_header(WS_BINARY, prefix.len() + attachment.map_or(0, Bytes::len));
        let res = match attachment {
            None => tcp.try_write(frame),
            Some(bin) => tcp.try_write_vectored(&[
                IoSlice::new(frame),
                IoSlice::new(&header.0[..header.1]),
                IoSlice::new(prefix),
                IoSlice::new(bin),
            ]),
        };
        let total = frame.len() + attachment.map_or(0, |b| header.1 + prefix.len() + b.len());
        let written = match res {
            Ok(n) if n == total => return self.set(IDLE),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            // A broken connection: the writer task meets the error too and ends it.
            Err(_) => return self.set(IDLE),
        };
        let mut rest = smallvec::SmallVec::<[Bytes; 3]>::new();
        let mut skip = written;
        let mut parts: smallvec::SmallVec<[Bytes; 4]> = smallvec::smallvec![frame.clone()];
        if let Some(bin) = attachment {
            parts.push(Bytes::copy_from_slice(&header.0[..header.1]));
            parts.push(Bytes::from_static(prefix));
            parts.push(bin.clone());
        }
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
            } else {
                rest.push(part.slice(skip..));
                skip = 0;
            }
        }
        queued.fetch_add((total - written) as u64, Ordering::Relaxed);
        *self.tail.lock().unwrap_or_else(|e| e.into_inner()) = rest;
        self.set(TASK);
        self.outbox.nudge();
    }

    /// The writer task takes the connection, waiting out a direct write reserved or in
    /// progress.
    pub(crate) async fn acquire(&self) {
        std::future::poll_fn(|cx| {
            for _ in 0..2 {
                match self
                    .state
                    .compare_exchange(IDLE, TASK, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) | Err(TASK) | Err(CLOSED) => return Poll::Ready(()),
                    Err(_) => {
                        // Register, then look again: a release in between is not missed.
                        self.waiter.register(cx.waker());
                        self.waiting.store(true, Ordering::Release);
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Writes the rest of a direct write, if any, uncounting it from `queued`.
    pub(crate) async fn write_tail<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        queued: &AtomicU64,
    ) -> io::Result<()> {
        let rest = std::mem::take(&mut *self.tail.lock().unwrap_or_else(|e| e.into_inner()));
        for part in rest {
            wr.write_all(&part).await?;
            let _ = queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(part.len() as u64))
            });
        }
        Ok(())
    }

    /// The writer task lets senders write directly again.
    pub(crate) fn release(&self) {
        let _ = self
            .state
            .compare_exchange(TASK, IDLE, Ordering::Release, Ordering::Relaxed);
    }

    /// The writer task is ending: no direct write from now on.
    pub(crate) async fn close(&self) {
        self.acquire().await;
        self.state.store(CLOSED, Ordering::Release);
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
