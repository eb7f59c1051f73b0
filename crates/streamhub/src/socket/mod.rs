//! Socket.IO glue: turns client events into calls on the relay and replies into emits.
//!
//! **One ordered actor per connection.** socketioxide spawns every message handler as its own
//! task, so two events from one client (`stream:join` then `chat:send`, or two frames) can run
//! out of order. We register a single fallback handler whose *extractor* ([`Incoming`]) runs
//! inline on the connection's read path: it parses the event into a typed [`Request`] and
//! queues it on the connection's bounded channel. The connection's actor task handles requests
//! one at a time, in arrival order. Handlers are registered in a connect *middleware*, which
//! socketioxide awaits before acknowledging the connection, so a client's first event can
//! never arrive before they exist.

mod chat;
mod media;
mod stream;
mod user;

pub use media::{MediaChannels, upgrade as media_upgrade};

pub(crate) use stream::announce_end;

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, Value};
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use streamhub_protocol::client::{self, Role};
use streamhub_protocol::server::{self, Ack, Empty, ErrorEvent};
use streamhub_protocol::{ErrorCode, events};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Hub;
use crate::metrics::{Metrics, StreamTap};
use crate::relay::{
    Frame, FrameKind, GroupOffer, GroupSink, Offer, RelayError, TokenBucket, ViewerSink,
};

/// Requests queued per connection before new ones are refused (`RATE_LIMITED`).
const CONNECTION_QUEUE: usize = 256;

/// The room holding a stream's owner and viewers: control events (chat, counts, status).
/// Frames do not use it; they go through the relay's per-viewer sinks.
pub(crate) fn room(key: &str) -> String {
    format!("stream:{key}")
}

/// The room of a stream's viewers that get picture frames by one shared send.
fn media_room(key: &str) -> String {
    format!("media:{key}")
}

/// A refused request: the code and a message for humans.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<RelayError> for Refusal {
    fn from(e: RelayError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

type Handled<T> = Result<T, Refusal>;

/// A client event, parsed.
#[derive(Debug)]
pub(crate) enum Request {
    Register(client::Register),
    Create(client::Create),
    Start(client::StreamRef),
    Data(client::DataSend),
    Join(client::StreamRef),
    Leave(client::StreamRef),
    End(client::StreamRef),
    Resume(client::Resume),
    List,
    Chat(client::ChatSend),
    Reaction(client::ReactionSend),
}

/// What the actor receives.
enum Command {
    Request {
        event: String,
        ack: AckSender,
        request: Result<Request, Refusal>,
    },
    Disconnected,
}

/// Per-connection state, owned by the connection's actor.
#[derive(Debug)]
pub(crate) struct Session {
    pub conn: String,
    pub user: Option<server::User>,
    pub chat: TokenBucket,
    pub reactions: TokenBucket,
    /// When the last `RATE_LIMITED` error for frames went out (one a second at most).
    pub last_frame_refusal: Option<Instant>,
    /// Taps of the streams this connection published to, so a frame finds its counters
    /// without a lock (bounded: entries go when the stream ends or is lost).
    pub taps: std::collections::HashMap<String, Arc<StreamTap>>,
}

impl Session {
    pub fn user(&self) -> Handled<&server::User> {
        self.user.as_ref().ok_or_else(|| {
            Refusal::new(
                ErrorCode::NotRegistered,
                "send user:register before anything else",
            )
        })
    }

    pub fn streamer(&self) -> Handled<&server::User> {
        let user = self.user()?;
        if user.role == Role::Streamer {
            Ok(user)
        } else {
            Err(Refusal::new(
                ErrorCode::NotStreamer,
                "only users registered with role STREAMER can do this",
            ))
        }
    }
}

/// Sends frames to one viewer's socket. Never blocks: socketioxide's per-socket queue is
/// bounded (`--viewer-queue`) and answers `InternalChannelFull` at once. Counts what it sends
/// and drops in the global metrics and the stream's tap (atomics only).
#[derive(Debug, Clone)]
pub struct SocketSink {
    socket: SocketRef,
    /// The connection's media channel, when it opened one before joining: frames go there.
    media: Option<mpsc::Sender<bytes::Bytes>>,
    tap: Arc<StreamTap>,
    metrics: Arc<Metrics>,
}

fn stream_data<'a>(stream_key: &'a str, frame: &'a Frame, resync: bool) -> server::StreamData<'a> {
    server::StreamData {
        stream_key,
        data: frame.out.get(&frame.data),
        timestamp: frame.timestamp,
        seq: frame.seq,
        media: frame.media,
        key: frame.kind == FrameKind::Key,
        init: frame.init,
        resync,
        chunk: frame.chunk.as_ref(),
        config: frame.config.as_deref(),
    }
}

impl SocketSink {
    pub(crate) fn new(hub: &Hub, socket: SocketRef, stream_key: &str) -> Self {
        Self {
            media: hub.media.get(socket.id.as_str()),
            socket,
            tap: hub.taps.get(stream_key),
            metrics: Arc::clone(&hub.metrics),
        }
    }

    /// Emits one frame, uncounted (the catch-up a joiner gets is old by design: its delay
    /// would say nothing about the queue).
    pub(crate) fn emit_frame(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer {
        let payload = stream_data(stream_key, frame, resync);
        if let Some(media) = &self.media {
            let encode = || streamhub_protocol::media_channel::encode(&payload, &frame.data);
            // Shared by every viewer; a resync message is this viewer's own.
            let msg = if resync {
                encode()
            } else {
                frame.out.media(encode)
            };
            return match media.try_send(msg) {
                Ok(()) => Offer::Sent,
                Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
            };
        }
        match self.socket.emit(events::STREAM_DATA, &payload) {
            Ok(()) => Offer::Sent,
            Err(socketioxide::SendError::Socket(
                socketioxide::SocketError::InternalChannelFull,
            )) => Offer::Full,
            Err(_) => Offer::Closed,
        }
    }
}

impl SocketSink {
    /// Its frames go to a media channel.
    pub(crate) fn uses_media(&self) -> bool {
        self.media.is_some()
    }

    /// Its frames went to a media channel that has closed.
    pub(crate) fn media_closed(&self) -> bool {
        self.media.as_ref().is_some_and(mpsc::Sender::is_closed)
    }
}

impl ViewerSink for SocketSink {
    fn groupable(&self) -> bool {
        // The shared send is a Socket.IO room broadcast; media-channel viewers get the shared
        // bytes through their own queue instead.
        self.media.is_none()
    }

    fn offer(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer {
        let offer = self.emit_frame(stream_key, frame, resync);
        match offer {
            Offer::Sent => self
                .metrics
                .frame_out(&self.tap, frame.data.len(), frame.timestamp),
            Offer::Full => self.metrics.frame_dropped_slow(&self.tap),
            Offer::Closed => {}
        }
        offer
    }
}

/// The relay's shared send: a room per stream (`media:KEY`) and one room broadcast per frame.
/// socketioxide encodes a broadcast packet once and queues the same bytes for every member,
/// where `emit` to each socket encodes and copies the packet per viewer (see
/// `docs/architecture.md`, "Fan-out").
#[derive(Default)]
pub struct RoomGroup {
    io: std::sync::OnceLock<SocketIo>,
}

impl RoomGroup {
    /// Shared sends start once the Socket.IO server exists.
    pub fn attach(&self, io: SocketIo) {
        // Set once at start; a second call changes nothing.
        let _ = self.io.set(io);
    }

    /// The Socket.IO server, once attached.
    pub fn io(&self) -> Option<&SocketIo> {
        self.io.get()
    }
}

impl std::fmt::Debug for RoomGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomGroup")
            .field("attached", &self.io.get().is_some())
            .finish()
    }
}

impl GroupSink<SocketSink> for RoomGroup {
    fn enabled(&self) -> bool {
        self.io.get().is_some()
    }

    fn join(&self, stream_key: &str, viewer: &SocketSink) {
        viewer.socket.join(media_room(stream_key));
    }

    fn leave(&self, stream_key: &str, viewer: &SocketSink) {
        viewer.socket.leave(media_room(stream_key));
    }

    fn broadcast(&self, stream_key: &str, frame: &Frame) -> GroupOffer {
        use futures_util::FutureExt;
        use socketioxide::{BroadcastError, SocketError};
        let Some(io) = self.io.get() else {
            return GroupOffer::default();
        };
        let payload = stream_data(stream_key, frame, false);
        // The local adapter sends before its future is first polled; it is ready at once.
        match io
            .to(media_room(stream_key))
            .emit(events::STREAM_DATA, &payload)
            .now_or_never()
        {
            Some(Ok(())) => GroupOffer::default(),
            Some(Err(BroadcastError::Socket(errors))) => {
                let full = errors
                    .iter()
                    .filter(|e| matches!(e, SocketError::InternalChannelFull))
                    .count();
                GroupOffer {
                    full,
                    closed: errors.len() - full,
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, stream = stream_key, "shared send failed");
                GroupOffer::default()
            }
            None => {
                tracing::warn!(stream = stream_key, "shared send did not complete at once");
                GroupOffer::default()
            }
        }
    }
}

/// The extractor that parses and queues every event, inline and in order (see module docs).
struct Incoming;

fn parse<T: DeserializeOwned>(
    s: &Arc<Socket<LocalAdapter>>,
    v: &mut Value,
    ack: &Option<i64>,
    event: &str,
) -> Result<T, Refusal> {
    let Ok(TryData(parsed)) = TryData::<T>::from_message_parts(s, v, ack);
    parsed.map_err(|e| {
        Refusal::new(
            ErrorCode::InvalidPayload,
            format!("{event}: payload is not the documented shape ({e}); see docs/protocol.md"),
        )
    })
}

/// Whether the client sent the event with no payload at all (`emit('stream:list')`).
fn no_payload(v: &Value) -> bool {
    v.as_str().is_some_and(|raw| {
        serde_json::from_str::<Vec<serde::de::IgnoredAny>>(raw).is_ok_and(|args| args.len() <= 1)
    })
}

/// Parses a payload the client may leave out.
fn parse_optional<T: DeserializeOwned + Default>(
    s: &Arc<Socket<LocalAdapter>>,
    v: &mut Value,
    ack: &Option<i64>,
    event: &str,
) -> Result<T, Refusal> {
    if no_payload(v) {
        return Ok(T::default());
    }
    parse(s, v, ack, event)
}

fn parse_request(
    s: &Arc<Socket<LocalAdapter>>,
    v: &mut Value,
    ack: &Option<i64>,
    event: &str,
) -> Result<Request, Refusal> {
    Ok(match event {
        events::USER_REGISTER => Request::Register(parse(s, v, ack, event)?),
        events::STREAM_CREATE => Request::Create(
            parse_optional::<Option<client::Create>>(s, v, ack, event)?.unwrap_or_default(),
        ),
        events::STREAM_START => Request::Start(parse(s, v, ack, event)?),
        events::STREAM_DATA_SEND => Request::Data(parse(s, v, ack, event)?),
        events::STREAM_JOIN => Request::Join(parse(s, v, ack, event)?),
        events::STREAM_LEAVE => Request::Leave(parse(s, v, ack, event)?),
        events::STREAM_END => Request::End(parse(s, v, ack, event)?),
        events::STREAM_RESUME => Request::Resume(parse(s, v, ack, event)?),
        events::STREAM_LIST => Request::List,
        events::CHAT_SEND => Request::Chat(parse(s, v, ack, event)?),
        events::REACTION_SEND => Request::Reaction(parse(s, v, ack, event)?),
        _ => {
            return Err(Refusal::new(
                ErrorCode::UnknownEvent,
                "unknown event; see docs/protocol.md for the events StreamHub speaks",
            ));
        }
    })
}

impl FromMessageParts<LocalAdapter> for Incoming {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<LocalAdapter>>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let Ok(ack) = AckSender::from_message_parts(s, v, ack_id);
        let event = match Event::from_message_parts(s, v, ack_id) {
            Ok(Event(e)) => e,
            Err(_) => String::from("?"),
        };
        let request = parse_request(s, v, ack_id, &event);
        let Some(tx) = s.extensions.get::<mpsc::Sender<Command>>() else {
            return Ok(Incoming);
        };
        if let Err(mpsc::error::TrySendError::Full(Command::Request { event, ack, .. })) = tx
            .try_send(Command::Request {
                event,
                ack,
                request,
            })
        {
            let Ok(socket) = SocketRef::from_message_parts(s, v, ack_id);
            let Ok(State(hub)) = State::<Arc<Hub>>::from_message_parts(s, v, ack_id) else {
                return Ok(Incoming);
            };
            refuse(
                &hub,
                &socket,
                ack,
                &event,
                Refusal::new(
                    ErrorCode::RateLimited,
                    "too many requests in flight on this connection; slow down",
                ),
            );
        }
        Ok(Incoming)
    }
}

/// Sends the `error` event and, when the client asked for one, a failed ack.
pub(crate) fn refuse(hub: &Hub, s: &SocketRef, ack: AckSender, event: &str, r: Refusal) {
    error_event(hub, s, event, &r);
    let _ = ack.send(&Ack::<Empty>::err(r.code, r.message));
}

/// Sends the `error` event alone (for refusals of work the client did not ask for directly).
pub(crate) fn error_event(hub: &Hub, s: &SocketRef, event: &str, r: &Refusal) {
    hub.counters.refused(r.code);
    tracing::debug!(sid = %s.id, event, code = %r.code, message = %r.message, "refused");
    emit(
        s,
        events::ERROR,
        &ErrorEvent {
            code: r.code,
            message: r.message.clone(),
            event: event.to_owned(),
        },
    );
}

/// Acks a handled request: `{ok: true, ...}` or the refusal.
fn answer<T: Serialize>(hub: &Hub, s: &SocketRef, ack: AckSender, event: &str, result: Handled<T>) {
    match result {
        Ok(payload) => {
            let _ = ack.send(&Ack::ok(payload));
        }
        Err(r) => refuse(hub, s, ack, event, r),
    }
}

/// Emits to one socket; a full or closed socket loses only this message.
pub(crate) fn emit<T: Serialize + ?Sized>(s: &SocketRef, event: &str, payload: &T) {
    if let Err(e) = s.emit(event, payload) {
        tracing::debug!(sid = %s.id, event, error = %e, "emit failed");
    }
}

/// Emits to everyone in a stream's room (owner and viewers).
pub(crate) async fn emit_room<T: Serialize + ?Sized>(
    io: &SocketIo,
    key: &str,
    event: &str,
    payload: &T,
) {
    if let Err(e) = io.to(room(key)).emit(event, payload).await {
        tracing::debug!(stream = key, event, error = %e, "room emit partly failed");
    }
}

/// Everything a handler needs.
pub(crate) struct Ctx<'a> {
    pub hub: &'a Arc<Hub>,
    pub io: &'a SocketIo,
    pub s: &'a SocketRef,
    pub session: &'a mut Session,
}

async fn dispatch(ctx: &mut Ctx<'_>, event: &str, ack: AckSender, request: Request) {
    if ctx.hub.shutting_down.load(Ordering::Relaxed) {
        return refuse(
            ctx.hub,
            ctx.s,
            ack,
            event,
            Refusal::new(ErrorCode::ShuttingDown, "the server is shutting down"),
        );
    }
    let s = ctx.s.clone();
    match request {
        Request::Register(r) => answer(ctx.hub, &s, ack, event, user::register(ctx, r).await),
        Request::Create(r) => answer(ctx.hub, &s, ack, event, stream::create(ctx, r).await),
        Request::Start(r) => answer(ctx.hub, &s, ack, event, stream::start(ctx, r).await),
        Request::Data(r) => stream::data(ctx, r, ack).await,
        Request::Join(r) => answer(ctx.hub, &s, ack, event, stream::join(ctx, r).await),
        Request::Leave(r) => answer(ctx.hub, &s, ack, event, stream::leave(ctx, r).await),
        Request::End(r) => answer(ctx.hub, &s, ack, event, stream::end(ctx, r).await),
        Request::Resume(r) => answer(ctx.hub, &s, ack, event, stream::resume(ctx, r).await),
        Request::List => answer(ctx.hub, &s, ack, event, stream::list(ctx)),
        Request::Chat(r) => answer(ctx.hub, &s, ack, event, chat::chat(ctx, r).await),
        Request::Reaction(r) => answer(ctx.hub, &s, ack, event, chat::reaction(ctx, r).await),
    }
}

async fn actor(hub: Arc<Hub>, io: SocketIo, s: SocketRef, mut rx: mpsc::Receiver<Command>) {
    let now = Instant::now();
    let mut session = Session {
        conn: s.id.to_string(),
        user: None,
        chat: TokenBucket::new(hub.config.chat_burst, hub.config.chat_per_sec, now),
        reactions: TokenBucket::new(hub.config.reaction_burst, hub.config.reaction_per_sec, now),
        last_frame_refusal: None,
        taps: std::collections::HashMap::new(),
    };
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Request {
                event,
                ack,
                request,
            } => {
                let mut ctx = Ctx {
                    hub: &hub,
                    io: &io,
                    s: &s,
                    session: &mut session,
                };
                match request {
                    Ok(request) => dispatch(&mut ctx, &event, ack, request).await,
                    Err(r) => refuse(&hub, &s, ack, &event, r),
                }
            }
            Command::Disconnected => break,
        }
    }
    stream::disconnected(&hub, &io, &session).await;
    hub.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Why a connection was refused at connect time.
#[derive(Debug, thiserror::Error)]
enum ConnectRefused {
    #[error("SERVER_FULL: the server has reached its connection limit")]
    Full,
    #[error("SHUTTING_DOWN: the server is shutting down")]
    ShuttingDown,
}

/// The connection's queue receiver, parked by the middleware until the socket is connected.
#[derive(Clone)]
struct Parked(Arc<std::sync::Mutex<Option<mpsc::Receiver<Command>>>>);

/// Runs before socketioxide acknowledges the connection: the handler that queues events exists
/// before the client can send its first one.
async fn on_connect(s: SocketRef, State(hub): State<Arc<Hub>>) -> Result<(), ConnectRefused> {
    if hub.shutting_down.load(Ordering::Relaxed) {
        hub.counters.connections_refused.inc();
        return Err(ConnectRefused::ShuttingDown);
    }
    if hub.connections.fetch_add(1, Ordering::Relaxed) >= hub.config.max_connections {
        hub.connections.fetch_sub(1, Ordering::Relaxed);
        hub.counters.connections_refused.inc();
        return Err(ConnectRefused::Full);
    }
    let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
    s.extensions.insert(tx.clone());
    s.extensions
        .insert(Parked(Arc::new(std::sync::Mutex::new(Some(rx)))));
    s.on_fallback(async |_: Incoming| {});
    s.on_disconnect(async move |_: DisconnectReason| {
        // Waits for room: the actor must see this to clean up.
        let _ = tx.send(Command::Disconnected).await;
    });
    Ok(())
}

/// Runs once socketioxide has marked the socket connected (emits fail before that), so the
/// actor starts here rather than in the middleware; events that arrived meanwhile are queued.
async fn on_connected(s: SocketRef, io: SocketIo, State(hub): State<Arc<Hub>>) {
    let rx = s
        .extensions
        .get::<Parked>()
        .and_then(|p| p.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    if let Some(rx) = rx {
        actor(hub, io, s, rx).await;
    }
}

/// Attaches StreamHub's handlers to the default namespace.
pub fn attach(io: &SocketIo) {
    io.ns("/", on_connected.with(on_connect));
}

/// Finds a connected socket by connection id.
pub(crate) fn socket_by_conn(io: &SocketIo, conn: &str) -> Option<SocketRef> {
    Sid::from_str(conn).ok().and_then(|sid| io.get_socket(sid))
}

/// The periodic work: coalesced viewer counts and streams whose streamer never came back.
pub async fn ticker(hub: Arc<Hub>, io: SocketIo, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(hub.config.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        for (key, viewer_count) in hub.relay.take_viewer_count_changes() {
            let payload = server::Viewers {
                stream_key: key.clone(),
                viewer_count,
            };
            emit_room(&io, &key, events::STREAM_VIEWERS, &payload).await;
        }
        for key in hub.relay.expire_orphans(Instant::now()) {
            stream::announce_end(&hub, &io, &key, server::EndReason::StreamerGone).await;
        }
    }
}
