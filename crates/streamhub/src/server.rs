//! Running a server: bind, assemble the routes and the Socket.IO layer, start the background
//! tasks, serve until told to stop, then drain.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use socketioxide::{ParserConfig, SocketIo};
use streamhub_protocol::server::EndReason;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accept;
use crate::admin_token;
use crate::bus::{self, HubEvent};
use crate::config::Config;
use crate::http;
use crate::hub::Hub;
use crate::media_channel;
use crate::metrics;
use crate::redirect as http_redirect;
use crate::socket;
use crate::store::sqlite::SqliteStore;
use crate::store::writer::{CHECKPOINT_INTERVAL, Persistence, WriteQueue};
use crate::tls;
use crate::web;

/// Connections the kernel queues before they are accepted. tokio's `TcpListener::bind` asks
/// for 1024; 1000 viewers connecting at once overflowed it (`TcpExtListenDrops` rose by ~400)
/// and those clients waited a full second for their SYN to be retransmitted. The kernel caps
/// this at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// How long shutdown waits for connections to close before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between announcing the shutdown and closing sockets, so long-polling clients, which
/// collect queued packets on their next request, get `stream:ended` too.
const DRAIN_FLUSH: Duration = Duration::from_millis(500);

/// Headers every response carries: no referrer leaves our pages (their URLs hold stream
/// keys), and browsers do not sniff content types.
async fn security_headers(mut res: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = res.headers_mut();
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

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

/// Serves on `listener` until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_reload(config, listener, shutdown, Arc::new(Notify::new())).await
}

/// [`run`], reading the TLS certificate again each time `reload` is notified (the binary's
/// SIGHUP handler does; tests may too). A certificate that does not load is logged and the
/// previous one kept.
pub async fn run_with_reload(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
) -> anyhow::Result<()> {
    run_with(config, listener, shutdown, reload, |_| {}).await
}

/// [`run_with_reload`], handing the hub to `watch` first (tests check that it is freed on
/// return).
async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
    watch: impl FnOnce(&Arc<Hub>),
) -> anyhow::Result<()> {
    // Decided on the address actually bound (the listener may differ from `config.bind`).
    let bound = listener.local_addr().context("reading the bound address")?;
    // First: a certificate that does not load stops the start before anything else runs.
    let mut tls = match &config.tls {
        Some(source) => Some(tls::setup(source, &config.db, bound).context("setting up TLS")?),
        None => None,
    };
    let redirect = match config.http_redirect {
        Some(addr) => {
            Some(listen(addr).with_context(|| format!("cannot listen on --http-redirect {addr}"))?)
        }
        None => None,
    };
    let store = SqliteStore::open(&config.db)
        .await
        .with_context(|| format!("opening the database {}", config.db.display()))?;
    let admin = admin_token::resolve(config.admin_token.as_deref(), &store, bound)
        .await
        .with_context(|| format!("reading the admin token from {}", config.db.display()))?;
    let token_store = store.clone();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let cluster = match &config.cluster {
        Some(c) => {
            let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
            let node_id = c
                .node_id
                .clone()
                .unwrap_or_else(|| format!("{}:{port}", crate::config::host_name()));
            Some(connect_cluster(c, node_id, &config, &metrics).await?)
        }
        None => None,
    };
    let (writes, receiver) = WriteQueue::new(config.db_queue, Arc::clone(&metrics));
    let hub = Arc::new(Hub::new(
        config,
        Arc::new(store),
        writes.clone(),
        metrics,
        cluster,
    ));
    if let Some(token) = admin.token() {
        hub.admin_token.set(token);
    }
    watch(&hub);
    // Subscribed before anything can publish, so no event is missed.
    let persistence = Persistence::start(
        Arc::clone(&hub.store),
        hub.bus.subscribe(),
        writes,
        receiver,
        Arc::clone(&hub.metrics),
    );
    let cfg = &hub.config;
    let max_msg = cfg.max_message_bytes();
    let (layer, io) = SocketIo::builder()
        // Frames may take `viewer_queue` packets of it (see `sink::SocketSink`); the rest is
        // for acks and events, so frames never crowd them out.
        .max_buffer_size(cfg.viewer_queue + cfg.control_queue)
        // Allocated per connection up front; viewers only send small events. 4 KiB (the
        // default) → 1 KiB: 38.6 → 36.1 KB of RSS per idle viewer (4000 viewers). A streamer's
        // large frames just take more reads.
        .ws_read_buffer_size(1024)
        .max_payload(max_msg as u64)
        .ws_max_message_size(max_msg)
        .ws_max_frame_size(max_msg)
        .with_parser(
            // Thumbnails are binary attachments too, and may be the larger (a tiny frame limit).
            ParserConfig::common().max_incoming_binary_buf_size(
                cfg.relay.max_frame_bytes.max(cfg.max_thumbnail_bytes) + 1024,
            ),
        )
        .with_state(Arc::clone(&hub))
        .build_layer();
    hub.io.set(io.clone());
    socket::attach(&io);

    let mut tasks = vec![
        tokio::spawn(socket::cluster::run(
            Arc::clone(&hub),
            io.clone(),
            shutdown.child_token(),
        )),
        tokio::spawn(metrics::count_events(
            Arc::clone(&hub.metrics),
            hub.bus.subscribe(),
            shutdown.child_token(),
        )),
        tokio::spawn(http::admin::sample(
            Arc::clone(&hub),
            shutdown.child_token(),
        )),
        tokio::spawn(socket::ticker(
            Arc::clone(&hub),
            io.clone(),
            shutdown.child_token(),
        )),
        tokio::spawn(log_events(hub.bus.subscribe(), shutdown.child_token())),
        tokio::spawn(tls::follow_reloads(
            tls.as_ref().and_then(|t| t.certs.clone()),
            reload,
            shutdown.child_token(),
        )),
        tokio::spawn(checkpoint_sessions(
            Arc::clone(&hub),
            shutdown.child_token(),
        )),
    ];
    if let Some(acme) = tls.as_mut().and_then(|t| t.acme.take()) {
        tasks.push(tokio::spawn(
            acme.run(Arc::clone(&hub.metrics), shutdown.child_token()),
        ));
    }
    if !matches!(admin, admin_token::Resolved::Flag(_)) {
        // `streamhub admin-token --rotate` applies without a restart.
        tasks.push(tokio::spawn(admin_token::follow(
            Arc::clone(&hub.admin_token),
            token_store,
            shutdown.child_token(),
        )));
    }

    // The seed's pages load `/socket.io/socket.io.js`; that path sits under socketioxide's
    // prefix, so it is answered before the Socket.IO layer sees the request.
    let extra = axum::Router::new().route(
        streamhub_protocol::media_channel::PATH,
        axum::routing::get(media_channel::upgrade),
    );
    let app = axum::Router::new()
        .route(
            &format!("/{}", web::CLIENT_BUNDLE),
            axum::routing::get(web::client_bundle),
        )
        .fallback_service(http::router(Arc::clone(&hub), extra).layer(layer))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&hub),
            http::origin::check,
        ))
        .layer(axum::middleware::map_response(security_headers));
    let addr = bound;
    // A stable line scripts wait for (tests, benchmarks), the first the server prints.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("streamhub listening on {scheme}://{addr}");
    tracing::info!(%addr, db = %hub.config.db.display(), "streamhub listening");
    if let Some(s) = tls.as_ref().and_then(|t| t.self_signed.as_ref()) {
        announce_self_signed(s);
    }
    if let Some(crate::config::TlsSource::Acme(acme)) = &hub.config.tls {
        announce_acme(acme, addr);
    }
    if let Some(from) = redirect.as_ref().and_then(|r| r.local_addr().ok()) {
        println!(
            "streamhub redirecting http://{from} to https, port {}",
            addr.port()
        );
    }
    announce_admin_token(&hub.config, &admin);

    let limits = accept::ConnLimits {
        header_read_timeout: cfg.header_read_timeout,
        max_per_ip: cfg.max_connections_per_ip,
        limit_loopback: cfg.limit_loopback,
        tcp_user_timeout: cfg.tcp_user_timeout,
        tcp_send_buffer: cfg.tcp_send_buffer,
    };
    let drain_hub = Arc::clone(&hub);
    let drained = CancellationToken::new();
    let drained_signal = drained.clone();
    let stop_accepting = CancellationToken::new();
    let stop = stop_accepting.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        drain(&drain_hub, io).await;
        stop.cancel();
        drained_signal.cancel();
    });
    let redirect = redirect.map(|listener| {
        accept::serve(
            listener,
            http_redirect::app(addr),
            limits.clone(),
            Arc::clone(&hub.metrics),
            stop_accepting.clone(),
            None,
        )
    });
    let server = accept::serve(
        listener,
        app,
        limits,
        Arc::clone(&hub.metrics),
        stop_accepting,
        tls.map(|t| t.acceptor),
    );
    let server = tokio::spawn(async move {
        match redirect {
            Some(redirect) => {
                tokio::join!(server, redirect);
            }
            None => server.await,
        }
    });
    let finished = async {
        drained.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        res = server => res.context("server task")?,
        () = finished => tracing::warn!("connections still open after the drain timeout; exiting anyway"),
    }
    for task in tasks {
        task.abort();
        // Wait for it to go, so it drops its hold on the hub before `run` returns.
        let _ = task.await;
    }
    // The Socket.IO server's state holds the hub: let go of it, or neither is ever freed.
    hub.io.clear();
    for stop in hub.readers.lock().drain().map(|(_, s)| s) {
        stop.cancel();
    }
    if let Some(cluster) = &hub.cluster {
        cluster.quit().await;
    }
    // Chat was committed before its ack; sessions' ends and reactions are still on the bus.
    persistence.finish().await;
    tracing::info!("streamhub stopped");
    Ok(())
}

/// The self-signed certificate's fingerprint, on stdout at every start: a person compares it
/// with what the phone's browser shows before accepting the certificate.
fn announce_self_signed(s: &tls::SelfSigned) {
    let how = if s.created { "made now" } else { "kept" };
    println!(
        "streamhub TLS certificate SHA-256 fingerprint: {} (self-signed, {how} in {}; check that the browser shows the same before accepting it)",
        s.fingerprint,
        s.cert.display()
    );
}

/// Where the ACME certificate comes from and where it is kept; and a warning when the CA's
/// check (always on port 443) cannot reach this port directly.
fn announce_acme(acme: &crate::config::AcmeSettings, addr: std::net::SocketAddr) {
    println!(
        "streamhub ACME certificate for {} from {} (cache {})",
        acme.domains.join(", "),
        acme.directory,
        acme.cache.display()
    );
    if addr.port() != 443 {
        tracing::warn!(
            port = addr.port(),
            "ACME: the CA checks each name on port 443 (TLS-ALPN-01); forward port 443 to this one, or the order fails"
        );
    }
}

/// Says which admin token applies. A generated one is printed on stdout, this once only
/// (never to the log): later starts find it stored and say where.
fn announce_admin_token(config: &Config, admin: &admin_token::Resolved) {
    use admin_token::Resolved;
    let db = config.db.display();
    match admin {
        Resolved::Generated(token) => {
            println!(
                "streamhub admin token (new; stored in {db}, `streamhub admin-token --db {db}` shows it again): {token}"
            );
            tracing::warn!(
                %db,
                "listening beyond loopback without --admin-token: generated an admin token \
                 (printed on stdout); the dashboard and /api/sessions need it"
            );
        }
        Resolved::Stored(_) => tracing::info!(
            %db,
            "the dashboard and /api/sessions need the admin token stored in the database \
             (`streamhub admin-token --db {db}` shows it)"
        ),
        Resolved::Flag(_) => {
            tracing::info!("the dashboard and /api/sessions need --admin-token")
        }
        Resolved::Open => tracing::info!(
            "the dashboard and /api/sessions are open: loopback only, no admin token"
        ),
    }
    if config.cluster.is_some() && matches!(admin, Resolved::Generated(_) | Resolved::Stored(_)) {
        tracing::warn!(
            "cluster mode with this node's own stored admin token: give every node the same \
             --admin-token, or the dashboard fails on whichever node the load balancer picks"
        );
    }
}

/// Connects to the cluster's Redis. A Redis that does not answer yet is not an error: the
/// node starts degraded and joins the cluster when it comes.
async fn connect_cluster(
    settings: &crate::config::ClusterSettings,
    node_id: String,
    config: &Config,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<crate::cluster::Cluster> {
    let cluster = crate::cluster::Cluster::connect(
        crate::cluster::ClusterConfig {
            redis_url: settings.redis_url.clone(),
            node_id: node_id.clone(),
            queue_bytes: settings.queue_bytes,
            buffer_frames: config.relay.buffer_frames,
        },
        metrics.cluster(&node_id),
    )
    .context("setting up the cluster's Redis client")?;
    if cluster.wait_connected(Duration::from_secs(2)).await {
        tracing::info!(
            node = node_id,
            redis = settings.redis_url,
            "joined the cluster"
        );
    } else {
        tracing::warn!(
            node = node_id,
            redis = settings.redis_url,
            "Redis does not answer yet: serving local streams until it does"
        );
    }
    Ok(cluster)
}

/// Shutdown: refuse new work, end every stream (viewers get `stream:ended`), close sockets.
async fn drain(hub: &Arc<Hub>, io: SocketIo) {
    tracing::info!("shutting down: ending streams and closing connections");
    hub.shutting_down.store(true, Ordering::Relaxed);
    hub.dashboard.close();
    for ended in hub.relay.drain(Instant::now()) {
        if ended.replica {
            // Another node's stream: only this node's part of it ends.
            socket::announce_local_end(hub, &io, &ended.info.stream_key, EndReason::ServerShutdown)
                .await;
        } else {
            socket::announce_end(hub, &io, &ended, EndReason::ServerShutdown).await;
        }
    }
    tokio::time::sleep(DRAIN_FLUSH).await;
    // Each socket leaves its namespace properly first: `close` alone closes the transports
    // but leaves connected sockets in their namespace (which they point back to), and those,
    // through the server handle every socket keeps, would keep the hub alive for good.
    for s in io.sockets() {
        if let Err(e) = s.disconnect() {
            tracing::debug!(error = %e, "disconnect at shutdown failed; closing the transport");
        }
    }
    io.close().await;
    hub.stopped.cancel();
}

/// Every [`CHECKPOINT_INTERVAL`], live sessions' totals go to the database (through the bus
/// and the persistence collector, which adds the viewer statistics).
async fn checkpoint_sessions(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; nothing has run yet.
    interval.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => hub.checkpoint_sessions(),
        }
    }
}

/// The bus's first subscriber: a log line per lifecycle event.
async fn log_events(rx: tokio::sync::broadcast::Receiver<HubEvent>, shutdown: CancellationToken) {
    bus::consume(
        rx,
        shutdown,
        |event| match event {
            HubEvent::Chat { .. } | HubEvent::Reaction { .. } | HubEvent::Checkpoint { .. } => {}
            event => tracing::info!(?event, "lifecycle"),
        },
        |lost| tracing::warn!(lost, "event log fell behind"),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that `run` returned from is freed: nothing (the Socket.IO server's state, a
    /// background task) keeps its hub alive. Twice in one process, as a test suite or an
    /// embedding program would.
    #[tokio::test]
    async fn a_stopped_server_frees_its_hub() {
        for _ in 0..2 {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut config = Config::defaults();
            config.db = dir.path().join("t.db");
            let listener = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
            let addr = listener.local_addr().expect("addr");
            let shutdown = CancellationToken::new();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let reload = Arc::new(Notify::new());
            let server = tokio::spawn(run_with(
                config,
                listener,
                shutdown.clone(),
                reload,
                move |hub| {
                    let _ = tx.send(Arc::downgrade(hub));
                },
            ));
            let hub = rx.await.expect("hub");
            // A streamer, its actor and its socket hold the hub too while it is connected.
            let target =
                streamhub_bench::client::Target::parse(&format!("http://{addr}")).expect("target");
            let (mut streamer, _key) = streamhub_bench::client::Client::streamer(&target, "ana")
                .await
                .expect("streamer");
            assert!(hub.upgrade().is_some(), "alive while serving");
            shutdown.cancel();
            // The client reads until the server closes the connection, as a browser does.
            while streamer.next_event().await.is_ok() {}
            server.await.expect("join").expect("run");
            for _ in 0..100 {
                if hub.upgrade().is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                hub.upgrade().is_none(),
                "the hub outlived its server ({} holders)",
                hub.strong_count()
            );
        }
    }
}
