//! StreamHub: a self-hosted live-streaming hub. A streamer sends each frame once over
//! Socket.IO; the server multicasts it to every viewer of the stream.
//!
//! # Modules
//! - [`config`]: command line, environment and TOML file, validated once at start.
//! - [`relay`]: the fan-out core (the design note's `StreamDistributor`): streams, viewers,
//!   catch-up ring, slow-viewer policy. Plain Rust, no sockets, no clock of its own.
//! - [`socket`]: Socket.IO glue: one ordered actor per connection turning events into relay
//!   calls and replies into emits; the viewers' media channels (`GET /media`).
//! - [`http`]: `/healthz`, the `/api/streams` JSON API, `/metrics`, `/api/sessions`.
//! - [`events`]: the internal bus (the note's Pub/Sub) for lifecycle events; persistence,
//!   metrics and the dashboard listen there, never on the frame path.
//! - [`store`]: the [`store::Store`] interface and its SQLite backend (sessions, chat,
//!   reaction totals); [`store::writer`] feeds it from the bus through a bounded queue in
//!   batches, and flushes it on shutdown.
//! - [`metrics`]: Prometheus counters (atomics on the frame path), gauges read at scrape
//!   time, and per-stream taps.
//! - [`dashboard`]: a snapshot of the server every second for `/dashboard.html`, over
//!   server-sent events, behind `--admin-token`.
//! - [`media`]: sans-IO WebM push parser cutting live streams at Clusters for late joiners.
//! - [`chatlog`]: recent chat per channel for viewers who join late (merged with the stored
//!   history on first use after a restart).
//! - [`ids`]: stream keys, publish tokens, user ids.
//! - [`web`]: the pages built from `web/`, embedded in release builds.
//! - Wire types, error codes and validation live in the `streamhub-protocol` crate.
//!
//! # A frame's path
//! 1. The streamer emits `stream:data:send {streamKey, data}`. socketioxide decodes it on the
//!    connection's read task, where [`socket`]'s extractor parses it into a typed request and
//!    queues it on the connection's bounded channel (arrival order is kept).
//! 2. The streamer's connection actor calls [`relay::Distributor::distribute_stream_data`]:
//!    ownership, size and rate checks, a `seq` and server `timestamp`, the 30-frame ring.
//! 3. Viewers that opened a media channel (`GET /media`, our viewer page) get it through their
//!    [`relay::ViewerSink`]: the frame's one media message (encoded once, cached on the frame)
//!    into that channel's bounded queue. On Socket.IO, picture viewers at level 0 get it by
//!    one shared send ([`relay::GroupSink`], a room broadcast: encoded once, the same bytes
//!    queued for each); everyone else, and everyone on every 32nd frame, through the socket
//!    sink, which emits `stream:data` into that viewer's bounded socketioxide queue. A full
//!    queue drops the frame for that viewer only (counted; full for too long: evicted).
//!    Counters and the queue delay histogram are updated with atomics on the way.
//! 4. Each connection's websocket writer drains its queue. Nothing on this path awaits a
//!    database, a metric, or another stream's lock.

pub mod chatlog;
pub mod config;
pub mod dashboard;
pub mod events;
pub mod http;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod relay;
pub mod socket;
pub mod store;
pub mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::serve::ListenerExt;
use socketioxide::{ParserConfig, SocketIo};
use streamhub_protocol::server::EndReason;
use streamhub_protocol::{ErrorCode, Millis};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::{Bus, HubEvent};
use crate::metrics::{Metrics, Taps};
use crate::relay::Distributor;
use crate::socket::{RoomGroup, SocketSink};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::store::writer::Persistence;
use prometheus::IntCounter;

/// Shared server state.
#[derive(Debug)]
pub struct Hub {
    pub config: Config,
    pub relay: Distributor<SocketSink, RoomGroup>,
    pub bus: Bus,
    pub connections: AtomicUsize,
    pub shutting_down: AtomicBool,
    pub counters: Counters,
    pub chat: chatlog::ChatLog,
    pub metrics: Arc<Metrics>,
    pub taps: Taps,
    pub store: Arc<dyn Store>,
    pub dashboard: dashboard::Feed,
    /// Viewers' media channels (`GET /media`), by Socket.IO connection id.
    pub media: socket::MediaChannels,
}

/// Server-wide counters of what was refused or dropped outside any one stream (per-stream
/// drops live in the relay's stats). They are the Prometheus counters themselves.
#[derive(Debug)]
pub struct Counters {
    /// Refused requests by error code, indexed by `ErrorCode::index`.
    refused: [IntCounter; ErrorCode::ALL.len()],
    /// Connections refused at connect time (limit reached or draining).
    pub connections_refused: IntCounter,
}

impl Counters {
    fn new(metrics: &Metrics) -> Self {
        Self {
            refused: metrics.errors.clone(),
            connections_refused: metrics.connections_refused.clone(),
        }
    }

    pub fn refused(&self, code: ErrorCode) {
        self.refused[code.index()].inc();
    }

    /// Non-zero refusal counts by code.
    pub fn refused_snapshot(&self) -> std::collections::BTreeMap<&'static str, u64> {
        ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), self.refused[c.index()].get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Hub {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let metrics = Arc::new(Metrics::new());
        Self {
            relay: Distributor::with_group(config.relay.clone(), RoomGroup::default()),
            dashboard: dashboard::Feed::new(config.dashboard_clients),
            config,
            bus: Bus::new(),
            connections: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            counters: Counters::new(&metrics),
            chat: chatlog::ChatLog::default(),
            metrics,
            taps: Taps::default(),
            store,
            media: socket::MediaChannels::default(),
        }
    }
}

/// Connections the kernel queues before they are accepted. tokio's `TcpListener::bind` asks
/// for 1024; 1000 viewers connecting at once overflowed it (`TcpExtListenDrops` rose by ~400)
/// and those clients waited a full second for their SYN to be retransmitted. The kernel caps
/// this at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds and listens on `addr` with [`LISTEN_BACKLOG`] (must run inside the tokio runtime).
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's `bind` does: a restarted server can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// How long shutdown waits for connections to close before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between announcing the shutdown and closing sockets, so long-polling clients, which
/// collect queued packets on their next request, get `stream:ended` too.
const DRAIN_FLUSH: Duration = Duration::from_millis(500);

/// Serves on `listener` until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = SqliteStore::open(&config.db)
        .await
        .with_context(|| format!("opening the database {}", config.db.display()))?;
    let hub = Arc::new(Hub::new(config, Arc::new(store)));
    // Subscribed before anything can publish, so no event is missed.
    let persistence = Persistence::start(
        Arc::clone(&hub.store),
        hub.bus.subscribe(),
        hub.config.db_queue,
        Arc::clone(&hub.metrics),
    );
    let counter = tokio::spawn(metrics::count_events(
        Arc::clone(&hub.metrics),
        hub.bus.subscribe(),
        shutdown.child_token(),
    ));
    let sampler = tokio::spawn(dashboard::sample(Arc::clone(&hub), shutdown.child_token()));
    let cfg = &hub.config;
    let max_msg = cfg.max_message_bytes();
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(cfg.viewer_queue)
        // Allocated per connection up front; viewers only send small events. 4 KiB (the
        // default) → 1 KiB: 38.6 → 36.1 KB of RSS per idle viewer (4000 viewers). A streamer's
        // large frames just take more reads.
        .ws_read_buffer_size(1024)
        .max_payload(max_msg as u64)
        .ws_max_message_size(max_msg)
        .ws_max_frame_size(max_msg)
        .with_parser(
            ParserConfig::common().max_incoming_binary_buf_size(cfg.relay.max_frame_bytes + 1024),
        )
        .with_state(Arc::clone(&hub))
        .build_layer();
    hub.relay.group().attach(io.clone());
    socket::attach(&io);

    let ticker = tokio::spawn(socket::ticker(
        Arc::clone(&hub),
        io.clone(),
        shutdown.child_token(),
    ));
    let logger = tokio::spawn(log_events(hub.bus.subscribe(), shutdown.child_token()));

    // The seed's pages load `/socket.io/socket.io.js`; that path sits under socketioxide's
    // prefix, so it is answered before the Socket.IO layer sees the request.
    let app = axum::Router::new()
        .route(
            &format!("/{}", web::CLIENT_BUNDLE),
            axum::routing::get(web::client_bundle),
        )
        .fallback_service(http::router(Arc::clone(&hub)).layer(layer));
    let addr = listener.local_addr().context("reading the bound address")?;
    let (user_timeout, send_buffer) = (cfg.tcp_user_timeout, cfg.tcp_send_buffer);
    let listener = listener.tap_io(move |tcp| {
        if let Err(e) = tune(tcp, user_timeout, send_buffer) {
            tracing::debug!(error = %e, "could not tune an accepted socket");
        }
    });
    // A stable line scripts wait for (tests, benchmarks).
    println!("streamhub listening on http://{addr}");
    tracing::info!(%addr, db = %hub.config.db.display(), "streamhub listening");

    let drain_hub = Arc::clone(&hub);
    let drain_io = io.clone();
    let drained = CancellationToken::new();
    let drained_signal = drained.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.cancelled().await;
        drain(&drain_hub, &drain_io).await;
        drained_signal.cancel();
    });
    let server = tokio::spawn(async move { server.await });
    let finished = async {
        drained.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        res = server => res.context("server task")?.context("serving HTTP")?,
        () = finished => tracing::warn!("connections still open after the drain timeout; exiting anyway"),
    }
    ticker.abort();
    logger.abort();
    counter.abort();
    sampler.abort();
    // Everything acknowledged was published on the bus before its ack: write it all.
    persistence.finish().await;
    tracing::info!("streamhub stopped");
    Ok(())
}

/// Shutdown: refuse new work, end every stream (viewers get `stream:ended`), close sockets.
async fn drain(hub: &Arc<Hub>, io: &SocketIo) {
    tracing::info!("shutting down: ending streams and closing connections");
    hub.shutting_down.store(true, Ordering::Relaxed);
    hub.dashboard.close();
    for key in hub.relay.drain() {
        socket::announce_end(hub, io, &key, EndReason::ServerShutdown).await;
    }
    tokio::time::sleep(DRAIN_FLUSH).await;
    io.close().await;
}

fn tune(
    tcp: &tokio::net::TcpStream,
    user_timeout: Option<Duration>,
    send_buffer: Option<usize>,
) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    if let Some(bytes) = send_buffer {
        socket2::SockRef::from(tcp).set_send_buffer_size(bytes)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(t) = user_timeout {
        socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(t))?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = user_timeout;
    Ok(())
}

/// The bus's first subscriber: a log line per lifecycle event.
async fn log_events(rx: tokio::sync::broadcast::Receiver<HubEvent>, shutdown: CancellationToken) {
    events::consume(
        rx,
        shutdown,
        |event| match event {
            HubEvent::Chat { .. } | HubEvent::Reaction { .. } => {}
            event => tracing::info!(?event, "lifecycle"),
        },
        |lost| tracing::warn!(lost, "event log fell behind"),
    )
    .await;
}
