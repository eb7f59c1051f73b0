//! The dashboard's data: a snapshot of the server and every stream, taken once a second and
//! pushed to `/dashboard.html` as server-sent events (the routes are in `http::admin`).
//!
//! A [`Sampler`] turns the relay's stats, the per-stream delay taps and the global counters
//! into a [`Snapshot`] with rates; the [`Feed`] holds only the latest one (a `watch` channel
//! holds one value, so a slow dashboard skips snapshots rather than queueing them). Feeds are
//! limited by `--dashboard-clients`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhub_protocol::Millis;
pub(crate) use streamhub_protocol::api::{
    ClusterPoint, NodeViewers, Rates, ServerPoint, Snapshot, StreamPoint,
};
use streamhub_protocol::server::StreamInfo;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::bus::StreamTotals;
use crate::clock::now_ms;
use crate::relay::StreamStats;

/// How often a snapshot is taken.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// Where snapshots are published.
#[derive(Debug)]
pub(crate) struct Feed {
    latest: watch::Sender<Arc<str>>,
    clients: Arc<Semaphore>,
    /// Cancelled at shutdown: open feeds end so connections can close.
    closed: CancellationToken,
}

impl Feed {
    pub(crate) fn new(max_clients: usize) -> Self {
        let empty = serde_json::to_string(&Snapshot {
            at: now_ms(),
            server: ServerPoint::default(),
            streams: Vec::new(),
            cluster: None,
        })
        .unwrap_or_default();
        Self {
            latest: watch::Sender::new(empty.into()),
            clients: Arc::new(Semaphore::new(max_clients)),
            closed: CancellationToken::new(),
        }
    }

    pub(crate) fn latest(&self) -> Arc<str> {
        self.latest.borrow().clone()
    }

    /// Replaces the latest snapshot; open feeds are woken.
    pub(crate) fn publish(&self, snapshot: &Snapshot) {
        match serde_json::to_string(snapshot) {
            Ok(json) => {
                self.latest.send_replace(json.into());
            }
            Err(e) => tracing::warn!(error = %e, "dashboard snapshot not serializable"),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<str>> {
        self.latest.subscribe()
    }

    /// The feed slots (`--dashboard-clients`).
    pub(crate) fn clients(&self) -> &Arc<Semaphore> {
        &self.clients
    }

    /// Cancelled when the server stops: open feeds end.
    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    pub(crate) fn close(&self) {
        self.closed.cancel();
    }
}

/// Counters at the previous sample, to turn totals into rates.
#[derive(Debug, Clone, Copy, Default)]
struct Prev {
    bytes_out: u64,
    dropped: u64,
    delay_us: u64,
    delays: u64,
}

impl Prev {
    /// Rates from `before` to these counters over `secs`, with the totals given.
    fn rates(
        &self,
        before: &Prev,
        secs: f64,
        kbps_in: f64,
        frames_in: u64,
        frames_out: u64,
    ) -> Rates {
        Rates {
            kbps_in,
            kbps_out: per_sec(self.bytes_out, before.bytes_out, secs) * 8.0 / 1000.0,
            drops_per_sec: per_sec(self.dropped, before.dropped, secs),
            latency_ms: mean_ms(self.delay_us, before.delay_us, self.delays, before.delays),
            frames_in,
            frames_out,
        }
    }
}

fn per_sec(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

fn mean_ms(sum_us: u64, prev_sum_us: u64, n: u64, prev_n: u64) -> f64 {
    let n = n.saturating_sub(prev_n);
    if n == 0 {
        0.0
    } else {
        sum_us.saturating_sub(prev_sum_us) as f64 / n as f64 / 1000.0
    }
}

/// Server-wide counters at one sample.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerTotals {
    pub(crate) connections: usize,
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) dropped: u64,
    /// Sum (microseconds) and count of queue delays.
    pub(crate) delay_us: u64,
    pub(crate) delays: u64,
}

/// One stream at one sample: the relay's view and its queue delays (sum, count).
#[derive(Debug, Clone)]
pub(crate) struct StreamSample {
    pub(crate) info: StreamInfo,
    pub(crate) stats: StreamStats,
    pub(crate) delay_us: u64,
    pub(crate) delays: u64,
    /// Cluster mode: viewers by node, and the origin.
    pub(crate) by_node: Vec<NodeViewers>,
    pub(crate) origin: Option<String>,
}

/// Turns successive samples into snapshots with rates over the time between them.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    prev_streams: HashMap<String, Prev>,
    prev_server: Prev,
    prev_at: Option<Instant>,
}

impl Sampler {
    /// The snapshot of the samples taken at `now` (`wall` on the wall clock).
    pub(crate) fn take(
        &mut self,
        now: Instant,
        wall: Millis,
        samples: Vec<StreamSample>,
        totals: ServerTotals,
    ) -> Snapshot {
        let secs = self
            .prev_at
            .map_or(INTERVAL, |t| now.saturating_duration_since(t))
            .as_secs_f64()
            .max(0.001);
        self.prev_at = Some(now);
        let mut streams = Vec::with_capacity(samples.len());
        let mut next = HashMap::with_capacity(samples.len());
        for StreamSample {
            info,
            stats,
            delay_us,
            delays,
            by_node,
            origin,
        } in samples
        {
            let cur = Prev {
                bytes_out: stats.bytes_out,
                dropped: StreamTotals::from(&stats).dropped,
                delay_us,
                delays,
            };
            let before = self
                .prev_streams
                .get(&info.stream_key)
                .copied()
                .unwrap_or(cur);
            streams.push(StreamPoint {
                stream_key: info.stream_key.clone(),
                title: info.title,
                streamer: info.streamer,
                status: info.status,
                media: stats.media,
                started_at: info.started_at,
                viewers: stats.viewer_count,
                levels: stats.levels,
                fps: stats.fps,
                rates: cur.rates(
                    &before,
                    secs,
                    stats.bitrate_kbps,
                    stats.frames_in,
                    stats.frames_out,
                ),
                by_node: (!by_node.is_empty()).then_some(by_node),
                origin,
            });
            next.insert(info.stream_key, cur);
        }
        self.prev_streams = next;
        let cur = Prev {
            bytes_out: totals.bytes_out,
            dropped: totals.dropped,
            delay_us: totals.delay_us,
            delays: totals.delays,
        };
        let server = ServerPoint {
            connections: totals.connections,
            streams: streams.len(),
            viewers: streams.iter().map(|s| s.viewers).sum(),
            fps_in: streams.iter().map(|s| s.fps).sum(),
            rates: cur.rates(
                &self.prev_server,
                secs,
                streams.iter().map(|s| s.rates.kbps_in).sum(),
                totals.frames_in,
                totals.frames_out,
            ),
            dropped: cur.dropped,
        };
        self.prev_server = cur;
        Snapshot {
            at: wall,
            server,
            streams,
            cluster: None,
        }
    }
}
