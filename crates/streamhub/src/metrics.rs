//! Prometheus metrics (`GET /metrics`) and the per-stream taps the dashboard reads.
//!
//! Frame-path counters are atomics (prometheus' counters and histogram are lock-free on
//! update), touched by the socket layer as frames go in and out; nothing there locks or
//! awaits. Lifecycle counters (chat, reactions, streams started and ended, evictions) come
//! from the bus. Gauges (connections, media channels, streams, viewers) are read from the hub
//! at scrape time.
//! No label has an unbounded value set: reasons, codes, statuses and levels only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use streamhub_protocol::server::{EndReason, MediaMode, StreamStatus};
use streamhub_protocol::{ErrorCode, Millis};
use strum::VariantArray;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::Hub;
use crate::events::{HubEvent, StreamTotals};
use crate::relay::LEVELS;

/// Upper bounds (seconds) of the queue delay histogram. The delay is measured from the frame's
/// server timestamp (whole milliseconds) to its emit, so the first bucket is 1 ms.
const DELAY_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Why a frame did not reach a viewer (or the relay at all): the `reason` label of
/// `streamhub_frames_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum DropReason {
    SlowViewer,
    RateLimited,
    TooLarge,
    BadMedia,
}

/// Why a database write was lost: the `reason` label of `streamhub_db_writes_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum DbDrop {
    /// The write queue (`--db-queue`) was full.
    QueueFull,
    /// The persistence subscriber fell behind the bus and lost events.
    BusLagged,
    /// The database refused the batch.
    WriteFailed,
}

/// Every metric StreamHub exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub frames_in: IntCounter,
    pub bytes_in: IntCounter,
    pub frames_out: IntCounter,
    pub bytes_out: IntCounter,
    dropped: [IntCounter; DropReason::VARIANTS.len()],
    pub queue_delay: Histogram,
    /// Indexed like `ErrorCode::ALL`.
    pub errors: [IntCounter; ErrorCode::ALL.len()],
    pub connections_refused: IntCounter,
    pub chat_messages: IntCounter,
    pub reactions: IntCounter,
    pub streams_started: IntCounter,
    streams_ended: [IntCounter; EndReason::ALL.len()],
    pub viewers_evicted: IntCounter,
    bus_lagged: IntCounterVec,
    pub db_writes: IntCounter,
    db_dropped: [IntCounter; DbDrop::VARIANTS.len()],
    pub db_batches: IntCounter,
    pub db_queue_depth: IntGauge,
    pub dashboard_clients: IntGauge,
    connections: IntGauge,
    media_channels: IntGauge,
    streams: IntGaugeVec,
    viewers: IntGauge,
    viewers_by_level: IntGaugeVec,
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
    pub fn new() -> Self {
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
            "Frames not delivered, by reason: slow_viewer counts per viewer, the others per frame refused from a streamer.",
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
        let db_dropped = counter_vec(
            &r,
            "streamhub_db_writes_dropped_total",
            "Database writes lost: queue_full (--db-queue), bus_lagged (events lost before queueing), write_failed.",
            "reason",
        );
        let queue_delay = Histogram::with_opts(
            HistogramOpts::new(
                "streamhub_viewer_queue_delay_seconds",
                "Per viewer and frame: time from the frame's server timestamp to its emit into the viewer's queue (1 ms resolution).",
            )
            .buckets(DELAY_BUCKETS.to_vec()),
        )
        .unwrap_or_else(|e| unreachable!("histogram: {e}"));
        Self {
            frames_in: counter(
                &r,
                "streamhub_frames_in_total",
                "Frames accepted from streamers.",
            ),
            bytes_in: counter(
                &r,
                "streamhub_bytes_in_total",
                "Payload bytes of the frames accepted from streamers.",
            ),
            frames_out: counter(
                &r,
                "streamhub_frames_out_total",
                "Frames queued to viewers (one per viewer).",
            ),
            bytes_out: counter(
                &r,
                "streamhub_bytes_out_total",
                "Payload bytes of the frames queued to viewers.",
            ),
            dropped: children(&dropped, DropReason::VARIANTS),
            queue_delay: reg(&r, queue_delay),
            errors: children(&errors, ErrorCode::ALL),
            connections_refused: counter(
                &r,
                "streamhub_connections_refused_total",
                "Socket.IO connections refused at connect time (limit reached or draining).",
            ),
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
        }
    }

    pub fn dropped(&self, reason: DropReason) -> &IntCounter {
        &self.dropped[reason as usize]
    }

    pub fn db_dropped(&self, why: DbDrop, n: u64) {
        self.db_dropped[why as usize].inc_by(n);
    }

    pub fn db_dropped_count(&self, why: DbDrop) -> u64 {
        self.db_dropped[why as usize].get()
    }

    pub fn bus_lagged(&self, subscriber: &'static str, n: u64) {
        self.bus_lagged.with_label_values(&[subscriber]).inc_by(n);
    }

    /// Frames dropped for every reason, server-wide.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(IntCounter::get).sum()
    }

    /// A frame accepted from a streamer.
    pub fn frame_in(&self, tap: &StreamTap, bytes: usize) {
        self.frames_in.inc();
        self.bytes_in.inc_by(bytes as u64);
        tap.frames_in.fetch_add(1, Ordering::Relaxed);
        tap.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A frame refused before it reached the relay's viewers.
    pub fn frame_refused(&self, tap: &StreamTap, reason: DropReason) {
        self.dropped(reason).inc();
        tap.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame queued for one viewer, `timestamp` being the frame's server time.
    pub fn frame_out(&self, tap: &StreamTap, bytes: usize, timestamp: Millis) {
        self.frames_out.inc();
        self.bytes_out.inc_by(bytes as u64);
        let delay_us = now_us().saturating_sub(timestamp.saturating_mul(1000));
        self.queue_delay.observe(delay_us as f64 / 1e6);
        tap.frames_out.fetch_add(1, Ordering::Relaxed);
        tap.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        tap.delay_us.fetch_add(delay_us, Ordering::Relaxed);
        tap.delays.fetch_add(1, Ordering::Relaxed);
    }

    /// One frame queued for `viewers` viewers by one shared send: each is a frame out and a
    /// queue delay sample, as if sent one by one.
    pub fn frames_out_shared(
        &self,
        tap: &StreamTap,
        viewers: usize,
        bytes: usize,
        timestamp: Millis,
    ) {
        if viewers == 0 {
            return;
        }
        let n = viewers as u64;
        self.frames_out.inc_by(n);
        self.bytes_out.inc_by(n * bytes as u64);
        let delay_us = now_us().saturating_sub(timestamp.saturating_mul(1000));
        for _ in 0..viewers {
            self.queue_delay.observe(delay_us as f64 / 1e6);
        }
        tap.frames_out.fetch_add(n, Ordering::Relaxed);
        tap.bytes_out.fetch_add(n * bytes as u64, Ordering::Relaxed);
        tap.delay_us.fetch_add(n * delay_us, Ordering::Relaxed);
        tap.delays.fetch_add(n, Ordering::Relaxed);
    }

    /// Frames that `viewers` full queues could not take in one shared send.
    pub fn frames_dropped_slow(&self, tap: &StreamTap, viewers: usize) {
        if viewers == 0 {
            return;
        }
        self.dropped(DropReason::SlowViewer).inc_by(viewers as u64);
        tap.dropped.fetch_add(viewers as u64, Ordering::Relaxed);
    }

    /// A frame one viewer's full queue could not take.
    pub fn frame_dropped_slow(&self, tap: &StreamTap) {
        self.dropped(DropReason::SlowViewer).inc();
        tap.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the gauges read from `hub` now.
    pub fn render(&self, hub: &Hub) -> String {
        self.connections
            .set(hub.connections.load(Ordering::Relaxed) as i64);
        self.media_channels.set(hub.media.open_count() as i64);
        let listed = hub.relay.list();
        let count = |s: StreamStatus| listed.iter().filter(|i| i.status == s).count() as i64;
        let total = hub.relay.stream_count() as i64;
        let (live, reconnecting) = (count(StreamStatus::Live), count(StreamStatus::Reconnecting));
        for (status, n) in [
            ("live", live),
            ("reconnecting", reconnecting),
            ("created", (total - live - reconnecting).max(0)),
        ] {
            self.streams.with_label_values(&[status]).set(n);
        }
        self.viewers
            .set(listed.iter().map(|i| i.viewer_count as i64).sum());
        let now = std::time::Instant::now();
        let mut levels = [0i64; LEVELS];
        for info in &listed {
            if let Some(stats) = hub.relay.get_stream_stats(&info.stream_key, now) {
                for (acc, n) in levels.iter_mut().zip(stats.levels) {
                    *acc += n as i64;
                }
            }
        }
        for (level, n) in levels.iter().enumerate() {
            self.viewers_by_level
                .with_label_values(&[&level.to_string()])
                .set(*n);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One stream's counters, shared by its streamer's connection and its viewers' sinks, so the
/// dashboard can show rates out and delays per stream and the session record gets its totals.
#[derive(Debug, Default)]
pub struct StreamTap {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped: AtomicU64,
    /// Sum and count of queue delays, microseconds.
    pub delay_us: AtomicU64,
    pub delays: AtomicU64,
    mode: AtomicU8,
}

impl StreamTap {
    pub fn set_mode(&self, mode: MediaMode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    pub fn mode(&self) -> MediaMode {
        match self.mode.load(Ordering::Relaxed) {
            1 => MediaMode::Webm,
            2 => MediaMode::Webcodecs,
            _ => MediaMode::Images,
        }
    }

    pub fn totals(&self) -> StreamTotals {
        StreamTotals {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            mode: self.mode(),
        }
    }
}

/// The taps of the streams that exist. A tap is created with its stream and removed when the
/// stream ends, so the map is bounded by `--max-streams`; it is locked only then and when a
/// connection first touches a stream, never per frame.
#[derive(Debug, Default)]
pub struct Taps {
    map: Mutex<HashMap<String, Arc<StreamTap>>>,
}

impl Taps {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<StreamTap>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create(&self, key: &str) -> Arc<StreamTap> {
        Arc::clone(self.lock().entry(key.to_owned()).or_default())
    }

    /// The stream's tap; a detached one if the stream is gone (its counts then go nowhere).
    pub fn get(&self, key: &str) -> Arc<StreamTap> {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    pub fn remove(&self, key: &str) -> Option<Arc<StreamTap>> {
        self.lock().remove(key)
    }

    pub fn snapshot(&self) -> Vec<(String, Arc<StreamTap>)> {
        self.lock()
            .iter()
            .map(|(k, t)| (k.clone(), Arc::clone(t)))
            .collect()
    }
}

/// Counts lifecycle events from the bus.
pub async fn count_events(
    metrics: Arc<Metrics>,
    rx: broadcast::Receiver<HubEvent>,
    shutdown: CancellationToken,
) {
    crate::events::consume(
        rx,
        shutdown,
        |event| match event {
            HubEvent::Chat { .. } => metrics.chat_messages.inc(),
            HubEvent::Reaction { .. } => metrics.reactions.inc(),
            HubEvent::StreamStarted { .. } => metrics.streams_started.inc(),
            HubEvent::StreamEnded { reason, .. } => metrics.streams_ended[reason as usize].inc(),
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

    #[test]
    fn end_reasons_index_their_counters() {
        let m = Metrics::new();
        m.streams_ended[EndReason::StreamerGone as usize].inc();
        let text = TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .expect("encode");
        assert!(
            text.contains("streamhub_streams_ended_total{reason=\"streamer_gone\"} 1"),
            "{text}"
        );
        assert!(text.contains("streamhub_streams_ended_total{reason=\"ended\"} 0"));
    }

    #[test]
    fn frame_counters_move_globally_and_per_stream() {
        let m = Metrics::new();
        let tap = StreamTap::default();
        m.frame_in(&tap, 100);
        m.frame_out(&tap, 100, crate::now_ms());
        m.frame_dropped_slow(&tap);
        m.frame_refused(&tap, DropReason::TooLarge);
        let t = tap.totals();
        assert_eq!(
            (t.frames_in, t.bytes_in, t.frames_out, t.dropped),
            (1, 100, 1, 2)
        );
        assert_eq!(m.bytes_out.get(), 100);
        assert_eq!(m.dropped_total(), 2);
        assert_eq!(m.queue_delay.get_sample_count(), 1);
        assert!(m.queue_delay.get_sample_sum() < 1.0);
    }

    #[test]
    fn taps_live_as_long_as_their_stream() {
        let taps = Taps::default();
        let a = taps.create("k");
        a.frames_in.fetch_add(3, Ordering::Relaxed);
        assert_eq!(taps.get("k").totals().frames_in, 3);
        assert_eq!(taps.remove("k").map(|t| t.totals().frames_in), Some(3));
        assert_eq!(
            taps.get("k").totals().frames_in,
            0,
            "a gone stream's tap is detached"
        );
        assert!(taps.snapshot().is_empty());
    }
}
