//! Prometheus metrics (`GET /metrics`) and the per-stream taps the dashboard reads.
//!
//! Frame-path counters are atomics (prometheus' counters and histogram are lock-free on
//! update), recorded once per published frame from what the relay says it delivered; nothing
//! there locks or awaits. Lifecycle counters (chat, reactions, streams started and ended,
//! evictions) come from the bus. Gauges (connections, media channels, streams, viewers) are
//! read at scrape time and handed to [`Metrics::render`].
//! No label has an unbounded value set: reasons, codes, statuses and levels only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use streamhub_protocol::ErrorCode;
use streamhub_protocol::server::{EndReason, StreamStatus, Track};
use strum::VariantArray;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::bus::HubEvent;
use crate::relay::LEVELS;

/// Upper bounds (seconds) of the queue delay histogram. The delay is measured from the frame's
/// server timestamp (whole milliseconds) to the end of its fan-out, so the first bucket is
/// 1 ms.
const DELAY_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Upper bounds (bytes) of the per-viewer queued bytes histogram: 1 KiB to 16 MiB, by 4.
const QUEUED_BUCKETS: [f64; 8] = [
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Why a frame did not reach a viewer (or the relay at all): the `reason` label of
/// `streamhub_frames_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum DropReason {
    SlowViewer,
    RateLimited,
    TooLarge,
    BadMedia,
    /// Catch-up frames a joiner's byte budget could not hold.
    CatchUpBudget,
}

/// Why a database write was lost: the `reason` label of `streamhub_db_writes_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum DbDrop {
    /// The write queue (`--db-queue`) was full.
    QueueFull,
    /// The persistence subscriber fell behind the bus and lost events.
    BusLagged,
    /// The database refused the batch.
    WriteFailed,
    /// A chat message whose sender stopped waiting for its commit (and was told it failed)
    /// before the writer reached it.
    Abandoned,
}

/// Why the accept loop closed a TCP connection itself: the `reason` label of
/// `streamhub_tcp_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum TcpClosed {
    /// Its address had `--max-connections-per-ip` open already (answered 429).
    PerIpLimit,
    /// Its request headers did not arrive within `--header-read-timeout-secs`.
    HeaderTimeout,
    /// With TLS: its handshake failed (plain HTTP to the HTTPS port, a client that refused
    /// the certificate) or did not finish within `--header-read-timeout-secs`.
    TlsHandshake,
}

/// What happened to the ACME certificate (`--acme-domain`): the `event` label of
/// `streamhub_acme_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum AcmeEvent {
    /// A certificate from the cache directory is served (at start).
    DeployedCached,
    /// A certificate was ordered and is served.
    DeployedNew,
    /// An order or renewal failed (retried with backoff).
    OrderFailed,
    /// A cached or newly issued certificate could not be parsed.
    BadCertificate,
    /// The cache directory could not be read or written.
    CacheFailed,
    /// The CA's TLS-ALPN-01 check completed its handshake.
    ChallengeAnswered,
}

/// Why a `stream:thumbnail` was refused or not shared: the `reason` label of
/// `streamhub_thumbnails_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum ThumbRefused {
    /// Not a JPEG, or sent as text.
    NotJpeg,
    /// Over `--max-thumbnail-bytes`.
    TooLarge,
    /// Within a second of the stream's previous one.
    RateLimited,
    /// Not the stream's owner (or no such stream, or not registered).
    NotOwner,
    /// The store holds `--max-streams` thumbnails already.
    Full,
    /// Accepted here but not written to Redis (cluster mode: the bus was down or failed), so
    /// the other nodes keep serving the previous one.
    Cluster,
}

/// Every metric StreamHub exports, registered once.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// By track, indexed like `Track::ALL` (video, audio).
    frames_in: [IntCounter; Track::ALL.len()],
    pub(crate) bytes_in: IntCounter,
    /// By track, indexed like `Track::ALL`.
    frames_out: [IntCounter; Track::ALL.len()],
    pub(crate) bytes_out: IntCounter,
    dropped: [IntCounter; DropReason::VARIANTS.len()],
    pub(crate) queue_delay: Histogram,
    queued_bytes: IntGauge,
    queued_sampled: Histogram,
    /// Indexed like `ErrorCode::ALL`.
    pub(crate) errors: [IntCounter; ErrorCode::ALL.len()],
    pub(crate) connections_refused: IntCounter,
    /// TCP connections open (HTTP, polling, websockets), counted by the accept loop.
    pub(crate) tcp_connections: IntGauge,
    tcp_closed: [IntCounter; TcpClosed::VARIANTS.len()],
    acme: [IntCounter; AcmeEvent::VARIANTS.len()],
    pub(crate) chat_messages: IntCounter,
    pub(crate) reactions: IntCounter,
    pub(crate) streams_started: IntCounter,
    streams_ended: [IntCounter; EndReason::ALL.len()],
    /// Acks and events a connection's queue could not take (see `socket::emit`).
    pub(crate) control_dropped: IntCounter,
    pub(crate) viewers_evicted: IntCounter,
    bus_lagged: IntCounterVec,
    pub(crate) db_writes: IntCounter,
    db_dropped: [IntCounter; DbDrop::VARIANTS.len()],
    pub(crate) db_batches: IntCounter,
    pub(crate) db_queue_depth: IntGauge,
    pub(crate) dashboard_clients: IntGauge,
    pub(crate) thumbnails_accepted: IntCounter,
    thumbnails_refused: [IntCounter; ThumbRefused::VARIANTS.len()],
    /// Bytes of thumbnails held on this node.
    pub(crate) thumbnail_bytes: IntGauge,
    connections: IntGauge,
    media_channels: IntGauge,
    streams: IntGaugeVec,
    viewers: IntGauge,
    viewers_by_level: IntGaugeVec,
    /// Cluster mode only (registered by [`Metrics::cluster`]).
    cluster: parking_lot::Mutex<Option<ClusterGauges>>,
}

/// The cluster's gauges, set at scrape time.
#[derive(Debug, Clone)]
struct ClusterGauges {
    nodes: IntGauge,
    bus_up: IntGauge,
}

/// Registration can only fail on a duplicate or malformed name, which the tests would catch.
fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    if let Err(e) = r.register(Box::new(m.clone())) {
        unreachable!("metric registration: {e}");
    }
    m
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    reg(r, c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    reg(r, g)
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|e| unreachable!("{name}: {e}"));
    reg(r, h)
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label])
        .unwrap_or_else(|e| unreachable!("{name}: {e}"));
    reg(r, c)
}

fn gauge_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label])
        .unwrap_or_else(|e| unreachable!("{name}: {e}"));
    reg(r, g)
}

/// One child per label value, created up front so every series exists from the start.
fn children<T: Copy + Into<&'static str>, const N: usize>(
    v: &IntCounterVec,
    values: &[T],
) -> [IntCounter; N] {
    std::array::from_fn(|i| v.with_label_values(&[values[i].into()]))
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("streamhub_build_info", "Build information; the value is 1."),
            &["version", "profile"],
        )
        .unwrap_or_else(|e| unreachable!("build info: {e}"));
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), profile])
            .set(1);
        reg(&r, build);

        let dropped = counter_vec(
            &r,
            "streamhub_frames_dropped_total",
            "Frames not delivered, by reason: slow_viewer (a viewer's queue was full, in packets or bytes) and catch_up_budget (catch-up frames a joiner's byte budget could not hold) count per viewer, the others per frame refused from a streamer.",
            "reason",
        );
        let errors = counter_vec(
            &r,
            "streamhub_errors_total",
            "Requests refused with an error event or ack, by error code.",
            "code",
        );
        let ended = counter_vec(
            &r,
            "streamhub_streams_ended_total",
            "Streams ended, by reason.",
            "reason",
        );
        let tcp_closed = counter_vec(
            &r,
            "streamhub_tcp_closed_total",
            "TCP connections the server closed itself: per_ip_limit (--max-connections-per-ip, answered 429), header_timeout (request headers not sent within --header-read-timeout-secs, including sockets that never sent a byte), tls_handshake (with TLS: a handshake that failed or did not finish within --header-read-timeout-secs).",
            "reason",
        );
        let acme = counter_vec(
            &r,
            "streamhub_acme_events_total",
            "ACME certificate events (--acme-domain): deployed_cached (served from the cache at start), deployed_new (ordered and served), order_failed (an order or renewal failed; retried with backoff while the current certificate is served), bad_certificate, cache_failed, challenge_answered (the CA's TLS-ALPN-01 check).",
            "event",
        );
        let db_dropped = counter_vec(
            &r,
            "streamhub_db_writes_dropped_total",
            "Database writes lost or refused: queue_full (--db-queue), bus_lagged (events lost before queueing), write_failed, abandoned (a chat message that timed out waiting).",
            "reason",
        );
        let thumbs_refused = counter_vec(
            &r,
            "streamhub_thumbnails_refused_total",
            "stream:thumbnail refused or not shared, by reason: not_jpeg, too_large (--max-thumbnail-bytes), rate_limited (one a second per stream), not_owner, full (--max-streams thumbnails held), cluster (accepted here, not written to Redis).",
            "reason",
        );
        Self {
            thumbnails_accepted: counter(
                &r,
                "streamhub_thumbnails_accepted_total",
                "stream:thumbnail JPEGs accepted (each replaces its stream's previous one).",
            ),
            thumbnails_refused: children(&thumbs_refused, ThumbRefused::VARIANTS),
            thumbnail_bytes: gauge(
                &r,
                "streamhub_thumbnail_bytes",
                "Bytes of the streams' latest thumbnails held on this node.",
            ),
            queued_bytes: gauge(
                &r,
                "streamhub_viewer_queued_bytes",
                "Bytes waiting in viewers' queues, summed over viewers (frames shared by many viewers count once per viewer).",
            ),
            queued_sampled: histogram(
                &r,
                "streamhub_viewer_queued_bytes_sampled",
                "Per viewer, sampled each second: bytes waiting in its queue (--viewer-queue-bytes is the budget).",
                &QUEUED_BUCKETS,
            ),
            frames_in: children(
                &counter_vec(
                    &r,
                    "streamhub_frames_in_total",
                    "Frames accepted from streamers, by track: video (pictures and encoded video) or audio (Opus chunks).",
                    "track",
                ),
                Track::ALL,
            ),
            bytes_in: counter(
                &r,
                "streamhub_bytes_in_total",
                "Payload bytes of the frames accepted from streamers.",
            ),
            frames_out: children(
                &counter_vec(
                    &r,
                    "streamhub_frames_out_total",
                    "Frames queued to viewers (one per viewer), by track: video or audio.",
                    "track",
                ),
                Track::ALL,
            ),
            bytes_out: counter(
                &r,
                "streamhub_bytes_out_total",
                "Payload bytes of the frames queued to viewers.",
            ),
            dropped: children(&dropped, DropReason::VARIANTS),
            queue_delay: histogram(
                &r,
                "streamhub_viewer_queue_delay_seconds",
                "Per viewer and frame: time from the frame's server timestamp to the end of the fan-out that queued it for the viewer (an upper bound for each viewer; 1 ms resolution).",
                &DELAY_BUCKETS,
            ),
            errors: children(&errors, ErrorCode::ALL),
            connections_refused: counter(
                &r,
                "streamhub_connections_refused_total",
                "Socket.IO connections refused at connect time (limit reached or draining).",
            ),
            tcp_connections: gauge(
                &r,
                "streamhub_tcp_connections",
                "TCP connections open (pages, polling, websockets, media channels).",
            ),
            tcp_closed: children(&tcp_closed, TcpClosed::VARIANTS),
            acme: children(&acme, AcmeEvent::VARIANTS),
            chat_messages: counter(
                &r,
                "streamhub_chat_messages_total",
                "Chat messages accepted.",
            ),
            reactions: counter(&r, "streamhub_reactions_total", "Reactions accepted."),
            streams_started: counter(
                &r,
                "streamhub_streams_started_total",
                "Streams that went live.",
            ),
            streams_ended: children(&ended, EndReason::ALL),
            control_dropped: counter(
                &r,
                "streamhub_control_dropped_total",
                "Acks and events not queued for a connection: its control queue (--control-queue, beyond the frames' share) was full, or it was gone.",
            ),
            viewers_evicted: counter(
                &r,
                "streamhub_viewers_evicted_total",
                "Viewers removed because their queue stayed full past the stall timeout.",
            ),
            bus_lagged: {
                let v = counter_vec(
                    &r,
                    "streamhub_bus_lagged_events_total",
                    "Internal bus events a subscriber lost because it fell behind.",
                    "subscriber",
                );
                for s in ["persistence", "metrics"] {
                    v.with_label_values(&[s]);
                }
                v
            },
            db_writes: counter(
                &r,
                "streamhub_db_writes_total",
                "Writes committed to the database.",
            ),
            db_dropped: children(&db_dropped, DbDrop::VARIANTS),
            db_batches: counter(
                &r,
                "streamhub_db_batches_total",
                "Database transactions committed by the writer.",
            ),
            db_queue_depth: gauge(
                &r,
                "streamhub_db_queue_depth",
                "Writes waiting in the database queue.",
            ),
            dashboard_clients: gauge(
                &r,
                "streamhub_dashboard_clients",
                "Dashboard live feeds open.",
            ),
            connections: gauge(&r, "streamhub_connections", "Socket.IO connections open."),
            media_channels: gauge(
                &r,
                "streamhub_media_channels",
                "Media channels (GET /media) open: viewers taking their frames there.",
            ),
            streams: gauge_vec(
                &r,
                "streamhub_streams",
                "Streams on the server, by status.",
                "status",
            ),
            viewers: gauge(
                &r,
                "streamhub_viewers",
                "Viewers over all streams (a connection watching two streams counts twice).",
            ),
            viewers_by_level: gauge_vec(
                &r,
                "streamhub_viewers_by_level",
                "Viewers by delivery level (0 every frame, 1 and 2 thinned).",
                "level",
            ),
            registry: r,
            cluster: parking_lot::Mutex::new(None),
        }
    }

    /// Registers the cluster's metrics (cluster mode, node `node`) and hands back its counters.
    pub(crate) fn cluster(&self, node: &str) -> crate::cluster::ClusterCounters {
        let r = &self.registry;
        let info = IntGaugeVec::new(
            Opts::new(
                "streamhub_cluster_node_info",
                "This node's id in the cluster; the value is 1.",
            ),
            &["node"],
        )
        .unwrap_or_else(|e| unreachable!("node info: {e}"));
        info.with_label_values(&[node]).set(1);
        reg(r, info);
        *self.cluster.lock() = Some(ClusterGauges {
            nodes: gauge(
                r,
                "streamhub_cluster_nodes",
                "Nodes of the cluster alive (heartbeating), this one included.",
            ),
            bus_up: gauge(
                r,
                "streamhub_cluster_bus_up",
                "1 while this node reaches Redis, 0 while it does not (local streams only).",
            ),
        });
        crate::cluster::ClusterCounters {
            frames_in: counter(
                r,
                "streamhub_cluster_frames_in_total",
                "Frames of other nodes' streams read from the bus (followed streams only).",
            ),
            bytes_in: counter(
                r,
                "streamhub_cluster_bytes_in_total",
                "Payload bytes of other nodes' streams read from the bus.",
            ),
            bytes_out: counter(
                r,
                "streamhub_cluster_bytes_out_total",
                "Payload bytes of this node's streams written to the bus.",
            ),
            gaps: counter(
                r,
                "streamhub_cluster_gaps_total",
                "Frames missing between an origin and this node (each a resync at the next keyframe).",
            ),
            dropped: counter(
                r,
                "streamhub_cluster_frames_dropped_total",
                "Frames not written to the bus: its queue (--cluster-queue-bytes) was full, or Redis failed.",
            ),
            lost_events: counter(
                r,
                "streamhub_cluster_events_lost_total",
                "Control messages (chat, counts, status) this node's subscriber fell behind on and lost.",
            ),
        }
    }

    pub(crate) fn thumbnail_refused(&self, reason: ThumbRefused) -> &IntCounter {
        &self.thumbnails_refused[reason as usize]
    }

    pub(crate) fn dropped(&self, reason: DropReason) -> &IntCounter {
        &self.dropped[reason as usize]
    }

    /// One second's sample of every viewer's queued bytes.
    pub(crate) fn sample_queues(&self, queues: &[u64]) {
        for q in queues {
            self.queued_sampled.observe(*q as f64);
        }
    }

    pub(crate) fn tcp_closed(&self, why: TcpClosed) {
        self.tcp_closed[why as usize].inc();
    }

    pub(crate) fn acme(&self, event: AcmeEvent) {
        self.acme[event as usize].inc();
    }

    pub(crate) fn db_dropped(&self, why: DbDrop, n: u64) {
        self.db_dropped[why as usize].inc_by(n);
    }

    #[cfg(test)]
    pub(crate) fn db_dropped_count(&self, why: DbDrop) -> u64 {
        self.db_dropped[why as usize].get()
    }

    pub(crate) fn bus_lagged(&self, subscriber: &'static str, n: u64) {
        self.bus_lagged.with_label_values(&[subscriber]).inc_by(n);
    }

    /// Frames dropped for every reason, server-wide.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(IntCounter::get).sum()
    }

    /// Frames of one track accepted from streamers.
    pub(crate) fn frames_in(&self, track: Track) -> u64 {
        self.frames_in[track.index()].get()
    }

    /// Frames of one track queued to viewers.
    pub(crate) fn frames_out(&self, track: Track) -> u64 {
        self.frames_out[track.index()].get()
    }

    /// A frame of `track` accepted from a streamer.
    pub(crate) fn frame_in(&self, track: Track, bytes: usize) {
        self.frames_in[track.index()].inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    /// A frame refused before it reached the relay's viewers.
    pub(crate) fn frame_refused(&self, reason: DropReason) {
        self.dropped(reason).inc();
    }

    /// One publish's fan-out, as the relay counted it: `frames` frames queued to viewers (one
    /// per viewer), `bytes` of payload, `dropped` for viewers whose queue was full; each sent
    /// frame waited `delay_us` from its server timestamp to the end of the fan-out.
    pub(crate) fn delivered(
        &self,
        tap: &StreamTap,
        track: Track,
        frames: u64,
        bytes: u64,
        dropped: u64,
        delay_us: u64,
    ) {
        self.dropped(DropReason::SlowViewer).inc_by(dropped);
        if frames == 0 {
            return;
        }
        self.frames_out[track.index()].inc_by(frames);
        self.bytes_out.inc_by(bytes);
        // The crate has no weighted observe: one sample per viewer, as the help text says.
        for _ in 0..frames {
            self.queue_delay.observe(delay_us as f64 / 1e6);
        }
        tap.delay_us.fetch_add(frames * delay_us, Ordering::Relaxed);
        tap.delays.fetch_add(frames, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the gauges read just before.
    pub(crate) fn render(&self, g: &Gauges) -> String {
        self.connections.set(g.connections as i64);
        self.media_channels.set(g.media_channels as i64);
        for (status, n) in [
            (StreamStatus::Live, g.live),
            (StreamStatus::Reconnecting, g.reconnecting),
            (StreamStatus::Created, g.created),
        ] {
            self.streams
                .with_label_values(&[status.as_str()])
                .set(n as i64);
        }
        self.viewers.set(g.viewers as i64);
        self.queued_bytes
            .set(i64::try_from(g.queued_bytes).unwrap_or(i64::MAX));
        if let (Some(c), Some((nodes, up))) = (&*self.cluster.lock(), g.cluster) {
            c.nodes.set(nodes as i64);
            c.bus_up.set(i64::from(up));
        }
        for (level, n) in g.levels.iter().enumerate() {
            self.viewers_by_level
                .with_label_values(&[&level.to_string()])
                .set(*n as i64);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What `/metrics` reads from the server at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    pub(crate) connections: usize,
    pub(crate) media_channels: usize,
    pub(crate) live: usize,
    pub(crate) reconnecting: usize,
    pub(crate) created: usize,
    pub(crate) viewers: usize,
    /// Bytes waiting in viewers' queues.
    pub(crate) queued_bytes: u64,
    pub(crate) levels: [usize; LEVELS],
    /// Cluster mode: live nodes, and whether Redis answers.
    pub(crate) cluster: Option<(usize, bool)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One stream's queue delays (sum and count, microseconds), for the dashboard's latency per
/// stream; every other per-stream number is the relay's. Shared by the streamer's connection
/// (which records) and the dashboard sampler (which reads).
#[derive(Debug, Default)]
pub(crate) struct StreamTap {
    pub(crate) delay_us: AtomicU64,
    pub(crate) delays: AtomicU64,
}

/// The taps of the streams that exist. A tap is created with its stream and removed when the
/// stream ends, so the map is bounded by `--max-streams`; it is locked only then and when a
/// connection first touches a stream, never per frame.
#[derive(Debug, Default)]
pub(crate) struct Taps {
    map: Mutex<HashMap<String, Arc<StreamTap>>>,
}

impl Taps {
    pub(crate) fn create(&self, key: &str) -> Arc<StreamTap> {
        Arc::clone(self.map.lock().entry(key.to_owned()).or_default())
    }

    /// The stream's tap; a detached one if the stream is gone (its counts then go nowhere).
    pub(crate) fn get(&self, key: &str) -> Arc<StreamTap> {
        self.map.lock().get(key).cloned().unwrap_or_default()
    }

    pub(crate) fn remove(&self, key: &str) -> Option<Arc<StreamTap>> {
        self.map.lock().remove(key)
    }

    pub(crate) fn snapshot(&self) -> Vec<(String, Arc<StreamTap>)> {
        self.map
            .lock()
            .iter()
            .map(|(k, t)| (k.clone(), Arc::clone(t)))
            .collect()
    }
}

/// Counts lifecycle events from the bus.
pub(crate) async fn count_events(
    metrics: Arc<Metrics>,
    rx: broadcast::Receiver<HubEvent>,
    shutdown: CancellationToken,
) {
    crate::bus::consume(
        rx,
        shutdown,
        |event| match event {
            HubEvent::Chat { .. } => metrics.chat_messages.inc(),
            HubEvent::Reaction { .. } => metrics.reactions.inc(),
            HubEvent::StreamStarted { .. } => metrics.streams_started.inc(),
            HubEvent::StreamEnded { reason, .. } => metrics.streams_ended[reason.index()].inc(),
            HubEvent::ViewerEvicted { .. } => metrics.viewers_evicted.inc(),
            _ => {}
        },
        |lost| metrics.bus_lagged("metrics", lost),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        m.render(&Gauges::default())
    }

    #[test]
    fn end_reasons_index_their_counters() {
        let m = Metrics::new();
        m.streams_ended[EndReason::StreamerGone.index()].inc();
        let text = text(&m);
        assert!(
            text.contains("streamhub_streams_ended_total{reason=\"streamer_gone\"} 1"),
            "{text}"
        );
        assert!(text.contains("streamhub_streams_ended_total{reason=\"ended\"} 0"));
    }

    #[test]
    fn frame_counters_move_from_one_delivery() {
        let m = Metrics::new();
        let tap = StreamTap::default();
        m.frame_in(Track::Video, 100);
        m.delivered(&tap, Track::Video, 3, 300, 2, 1500);
        m.frame_refused(DropReason::TooLarge);
        assert_eq!((m.frames_in(Track::Video), m.bytes_in.get()), (1, 100));
        assert_eq!((m.frames_out(Track::Video), m.bytes_out.get()), (3, 300));
        m.frame_in(Track::Audio, 10);
        m.delivered(&tap, Track::Audio, 2, 20, 0, 0);
        assert_eq!(
            (m.frames_in(Track::Audio), m.frames_in(Track::Video)),
            (1, 1)
        );
        assert_eq!(
            (m.frames_out(Track::Audio), m.frames_out(Track::Video)),
            (2, 3)
        );
        let text = m.render(&Gauges::default());
        for line in [
            "streamhub_frames_in_total{track=\"video\"} 1",
            "streamhub_frames_in_total{track=\"audio\"} 1",
            "streamhub_frames_out_total{track=\"audio\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        assert_eq!(m.dropped(DropReason::SlowViewer).get(), 2);
        assert_eq!(m.dropped_total(), 3);
        assert_eq!(m.queue_delay.get_sample_count(), 5, "both tracks' sends");
        assert!((m.queue_delay.get_sample_sum() - 0.0045).abs() < 1e-9);
        assert_eq!(tap.delay_us.load(Ordering::Relaxed), 4500);
        assert_eq!(tap.delays.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn gauges_are_rendered_by_label() {
        let m = Metrics::new();
        let text = m.render(&Gauges {
            live: 2,
            reconnecting: 1,
            viewers: 7,
            levels: [5, 2, 0],
            ..Gauges::default()
        });
        for line in [
            "streamhub_streams{status=\"live\"} 2",
            "streamhub_streams{status=\"reconnecting\"} 1",
            "streamhub_streams{status=\"created\"} 0",
            "streamhub_viewers 7",
            "streamhub_viewers_by_level{level=\"1\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn taps_live_as_long_as_their_stream() {
        let taps = Taps::default();
        let a = taps.create("k");
        a.delays.fetch_add(3, Ordering::Relaxed);
        assert_eq!(taps.get("k").delays.load(Ordering::Relaxed), 3);
        assert_eq!(
            taps.remove("k").map(|t| t.delays.load(Ordering::Relaxed)),
            Some(3)
        );
        assert_eq!(
            taps.get("k").delays.load(Ordering::Relaxed),
            0,
            "a gone stream's tap is detached"
        );
        assert!(taps.snapshot().is_empty());
    }
}
