//! Socket.IO glue: turns client events into calls on the relay and replies into emits.
//!
//! **One ordered actor per connection.** socketioxide spawns every message handler as its own
//! task, so two events from one client (`stream:join` then `chat:send`, or two frames) can run
//! out of order. We register a single fallback handler whose *extractor* ([`Enqueue`]) runs
//! inline on the connection's read path: it parses the event into a typed [`Request`] and
//! queues it on the connection's bounded channel. The connection's actor task handles requests
//! one at a time, in arrival order. Handlers are registered in a connect *middleware*, which
//! socketioxide awaits before acknowledging the connection, so a client's first event can
//! never arrive before they exist.

mod channel;
mod chat;
pub(crate) mod cluster;
mod stream;
mod thumbnail;
mod user;

pub(crate) use stream::{announce_end, announce_local_end};

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
use tracing::Instrument;

use crate::hub::Hub;
use crate::ids;
use crate::metrics::StreamTap;
use crate::relay::{Coded, TokenBucket};

/// Requests queued per connection before new ones are refused (`RATE_LIMITED`).
const CONNECTION_QUEUE: usize = 256;

/// The room holding a stream's owner and viewers: control events (chat, counts, status).
/// Frames do not use it; they go through the relay's per-viewer sinks.
pub(crate) fn room(key: &str) -> String {
    format!("stream:{key}")
}

/// A refused request: the code and a message for humans.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl<E: Coded> From<E> for Refusal {
    fn from(e: E) -> Self {
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
    Audio(client::AudioSend),
    Join(client::StreamRef),
    Leave(client::StreamRef),
    End(client::StreamRef),
    Resume(client::Resume),
    List,
    Chat(client::ChatSend),
    Reaction(client::ReactionSend),
    MediaToken,
    TimeSync,
    Thumbnail(client::ThumbnailSend),
    ChannelJoin(client::ChannelJoin),
    Title(client::TitleSet),
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
    pub(crate) conn: String,
    /// The client's address, when the server knows it (wrong publish secrets count per address).
    pub(crate) addr: Option<std::net::IpAddr>,
    /// Wrong publish secrets this connection sent.
    pub(crate) secret_failures: u32,
    pub(crate) user: Option<server::User>,
    pub(crate) chat: TokenBucket,
    pub(crate) reactions: TokenBucket,
    /// When the last `RATE_LIMITED` error for frames went out (one a second at most).
    pub(crate) last_frame_refusal: Option<Instant>,
    /// Taps of the streams this connection published to, so a frame finds its counters
    /// without a lock (bounded: entries go when the stream ends or is lost).
    pub(crate) taps: std::collections::HashMap<String, Arc<StreamTap>>,
    /// The channel this connection follows (`channel:join`), lower case.
    pub(crate) channel: Option<String>,
}

impl Session {
    pub(crate) fn user(&self) -> Handled<&server::User> {
        self.user.as_ref().ok_or_else(|| {
            Refusal::new(
                ErrorCode::NotRegistered,
                "send user:register before anything else",
            )
        })
    }

    pub(crate) fn streamer(&self) -> Handled<&server::User> {
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

/// The extractor that parses and queues every event, inline and in order (see module docs).
struct Enqueue;

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
        events::STREAM_AUDIO_SEND => Request::Audio(parse(s, v, ack, event)?),
        events::STREAM_JOIN => Request::Join(parse(s, v, ack, event)?),
        events::STREAM_LEAVE => Request::Leave(parse(s, v, ack, event)?),
        events::STREAM_END => Request::End(parse(s, v, ack, event)?),
        events::STREAM_RESUME => Request::Resume(parse(s, v, ack, event)?),
        events::STREAM_LIST => Request::List,
        events::CHAT_SEND => Request::Chat(parse(s, v, ack, event)?),
        events::REACTION_SEND => Request::Reaction(parse(s, v, ack, event)?),
        events::MEDIA_TOKEN => Request::MediaToken,
        events::TIME_SYNC => Request::TimeSync,
        events::STREAM_THUMBNAIL => Request::Thumbnail(parse(s, v, ack, event)?),
        events::CHANNEL_JOIN => Request::ChannelJoin(parse(s, v, ack, event)?),
        events::STREAM_TITLE => Request::Title(parse(s, v, ack, event)?),
        _ => {
            return Err(Refusal::new(
                ErrorCode::UnknownEvent,
                "unknown event; see docs/protocol.md for the events StreamHub speaks",
            ));
        }
    })
}

impl FromMessageParts<LocalAdapter> for Enqueue {
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
            return Ok(Enqueue);
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
                return Ok(Enqueue);
            };
            let _span = conn_span(&hub, &socket).entered();
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
        Ok(Enqueue)
    }
}

/// Sends the `error` event and, when the client asked for one, a failed ack.
pub(crate) fn refuse(hub: &Hub, s: &SocketRef, ack: AckSender, event: &str, r: Refusal) {
    error_event(hub, s, event, &r);
    send_ack(hub, ack, &Ack::<Empty>::err(r.code, r.message));
}

/// Sends an ack; one the connection's queue cannot take is counted, never silently lost.
pub(crate) fn send_ack<T: Serialize>(hub: &Hub, ack: AckSender, reply: &T) {
    if let Err(e) = ack.send(reply) {
        hub.metrics.control_dropped.inc();
        tracing::debug!(error = %e, "ack not queued");
    }
}

/// Sends the `error` event alone (for refusals of work the client did not ask for directly).
pub(crate) fn error_event(hub: &Hub, s: &SocketRef, event: &str, r: &Refusal) {
    hub.counters.refused(r.code);
    tracing::debug!(event, code = %r.code, message = %r.message, "refused");
    emit(
        hub,
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
            send_ack(hub, ack, &Ack::ok(payload));
        }
        Err(r) => refuse(hub, s, ack, event, r),
    }
}

/// Emits to one socket. Control events have the connection's queue beyond the frames' share
/// (`--control-queue`); one that still does not fit (a client that stopped reading) is
/// counted, and only this message is lost.
pub(crate) fn emit<T: Serialize + ?Sized>(hub: &Hub, s: &SocketRef, event: &str, payload: &T) {
    if let Err(e) = s.emit(event, payload) {
        hub.metrics.control_dropped.inc();
        tracing::debug!(event, error = %e, "emit failed");
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
    pub(crate) hub: &'a Arc<Hub>,
    pub(crate) io: &'a SocketIo,
    pub(crate) s: &'a SocketRef,
    pub(crate) session: &'a mut Session,
}

async fn dispatch(ctx: &mut Ctx<'_>, event: &str, ack: AckSender, request: Request) {
    if ctx.hub.draining() {
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
        Request::Audio(r) => stream::audio(ctx, r, ack).await,
        Request::Join(r) => answer(ctx.hub, &s, ack, event, stream::join(ctx, r).await),
        Request::Leave(r) => answer(ctx.hub, &s, ack, event, stream::leave(ctx, r).await),
        Request::End(r) => answer(ctx.hub, &s, ack, event, stream::end(ctx, r).await),
        Request::Resume(r) => answer(ctx.hub, &s, ack, event, stream::resume(ctx, r).await),
        Request::List => answer(ctx.hub, &s, ack, event, stream::list(ctx)),
        Request::Chat(r) => answer(ctx.hub, &s, ack, event, chat::chat(ctx, r).await),
        Request::Reaction(r) => answer(ctx.hub, &s, ack, event, chat::reaction(ctx, r).await),
        Request::MediaToken => answer(ctx.hub, &s, ack, event, Ok(media_token(ctx))),
        Request::TimeSync => answer(ctx.hub, &s, ack, event, Ok(time_sync())),
        Request::Thumbnail(r) => {
            answer(ctx.hub, &s, ack, event, thumbnail::thumbnail(ctx, r).await);
        }
        Request::ChannelJoin(r) => answer(ctx.hub, &s, ack, event, channel::join(ctx, r).await),
        Request::Title(r) => answer(ctx.hub, &s, ack, event, channel::title(ctx, r).await),
    }
}

/// `media:token`: a credential for this connection's media channel. Only the connection's
/// own client learns it (in the ack), so knowing the connection's id, which shows in URLs and
/// proxy logs, opens nothing.
fn media_token(ctx: &Ctx<'_>) -> server::MediaToken {
    server::MediaToken {
        token: ctx
            .hub
            .media_tokens
            .issue(&ctx.session.conn, Instant::now()),
        expires_in_ms: crate::sink::MEDIA_TOKEN_TTL.as_millis() as u64,
    }
}

/// `time:sync`: the server's clock, read as late as possible (just before the ack goes out).
fn time_sync() -> server::TimeSync {
    server::TimeSync {
        server_time: crate::clock::now_us() as f64 / 1000.0,
    }
}

async fn actor(hub: Arc<Hub>, io: SocketIo, s: SocketRef, mut rx: mpsc::Receiver<Command>) {
    let now = Instant::now();
    let mut session = Session {
        conn: s.id.to_string(),
        addr: s
            .req_parts()
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
        secret_failures: 0,
        user: None,
        chat: TokenBucket::new(hub.config.chat_burst, hub.config.chat_per_sec, now),
        reactions: TokenBucket::new(hub.config.reaction_burst, hub.config.reaction_per_sec, now),
        last_frame_refusal: None,
        taps: std::collections::HashMap::new(),
        channel: None,
    };
    loop {
        // The server stopped: socketioxide closed the transports but, its namespaces gone,
        // may never call this connection's disconnect handler; without this the actor (and
        // through its socket, the whole server) would wait forever.
        let cmd = tokio::select! {
            cmd = rx.recv() => cmd,
            () = hub.stopped.cancelled() => None,
        };
        let Some(cmd) = cmd else { break };
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
    hub.media_tokens.forget(&session.conn);
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
struct Parked(Arc<parking_lot::Mutex<Option<mpsc::Receiver<Command>>>>);

/// Runs before socketioxide acknowledges the connection: the handler that queues events exists
/// before the client can send its first one.
async fn on_connect(s: SocketRef, State(hub): State<Arc<Hub>>) -> Result<(), ConnectRefused> {
    if hub.draining() {
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
        .insert(Parked(Arc::new(parking_lot::Mutex::new(Some(rx)))));
    s.on_fallback(async |_: Enqueue| {});
    s.on_disconnect(async move |_: DisconnectReason| {
        // Waits for room: the actor must see this to clean up.
        let _ = tx.send(Command::Disconnected).await;
    });
    Ok(())
}

/// Runs once socketioxide has marked the socket connected (emits fail before that), so the
/// actor starts here rather than in the middleware; events that arrived meanwhile are queued.
async fn on_connected(s: SocketRef, io: SocketIo, State(hub): State<Arc<Hub>>) {
    let rx = s.extensions.get::<Parked>().and_then(|p| p.0.lock().take());
    if let Some(rx) = rx {
        let span = conn_span(&hub, &s);
        actor(hub, io, s, rx).instrument(span).await;
    }
}

/// The span every log line of one connection is in. It names the connection by a short label
/// ([`ids::conn_label`]), never by its Socket.IO id: that id opens the connection's media
/// channel.
/// In cluster mode the span names the node too.
pub(crate) fn conn_span(hub: &Hub, s: &SocketRef) -> tracing::Span {
    let span = tracing::info_span!(
        "conn",
        node = tracing::field::Empty,
        id = %ids::conn_label(s.id.as_str())
    );
    if let Some(cluster) = &hub.cluster {
        span.record("node", cluster.node.as_str());
    }
    span
}

/// Attaches StreamHub's handlers to the default namespace.
pub(crate) fn attach(io: &SocketIo) {
    io.ns("/", on_connected.with(on_connect));
}

/// Finds a connected socket by connection id.
pub(crate) fn socket_by_conn(io: &SocketIo, conn: &str) -> Option<SocketRef> {
    Sid::from_str(conn).ok().and_then(|sid| io.get_socket(sid))
}

/// The periodic work: coalesced viewer counts and streams whose streamer never came back.
pub(crate) async fn ticker(hub: Arc<Hub>, io: SocketIo, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(hub.config.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        let changes = hub.relay.take_viewer_count_changes();
        if hub.cluster.is_some() {
            // Every node then shows the cluster-wide total (`cluster::deliver`).
            cluster::counts_changed(&hub, &io, &changes).await;
            cluster::unfollow_unwatched(&hub).await;
        } else {
            for (key, viewer_count) in changes {
                let payload = server::Viewers {
                    stream_key: key.clone(),
                    viewer_count,
                };
                emit_room(&io, &key, events::STREAM_VIEWERS, &payload).await;
            }
        }
        hub.media_tokens.sweep(Instant::now());
        for ended in hub.relay.expire_orphans(Instant::now()) {
            stream::announce_end(&hub, &io, &ended, server::EndReason::StreamerGone).await;
        }
    }
}
