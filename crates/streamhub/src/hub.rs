//! The server's shared state: one [`Hub`] per running server, handed to every connection.
//!
//! It holds the parts (relay, bus, store, metrics, chat log, dashboard feed, media channels)
//! and the few operations that touch several of them at once. It knows nothing of how
//! requests arrive: the Socket.IO glue, the HTTP routes and the media channel sit above it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use prometheus::IntCounter;
use streamhub_protocol::ErrorCode;
use streamhub_protocol::server::StreamStatus;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, HubEvent};
use crate::chatlog::ChatLog;
use crate::config::Config;
use crate::dashboard::Feed;
use crate::metrics::{Gauges, Metrics, Taps};
use crate::relay::{Distributor, LEVELS};
use crate::sink::{IoSlot, MediaChannels, RoomGroup, SocketSink};
use crate::store::Store;

/// The relay as the server runs it: viewers are Socket.IO connections (or their media
/// channels), picture viewers at level 0 share one room broadcast.
pub(crate) type Relay = Distributor<SocketSink, RoomGroup>;

/// Shared server state.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) config: Config,
    pub(crate) relay: Relay,
    pub(crate) bus: Bus,
    pub(crate) connections: AtomicUsize,
    pub(crate) shutting_down: AtomicBool,
    /// Cancelled once the server has closed every connection: the connections' tasks end.
    pub(crate) stopped: CancellationToken,
    pub(crate) counters: Counters,
    pub(crate) chat: ChatLog,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) taps: Taps,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) dashboard: Feed,
    /// Viewers' media channels (`GET /media`), by Socket.IO connection id.
    pub(crate) media: MediaChannels,
    /// The Socket.IO server, while it runs (the media channel looks connections up there).
    pub(crate) io: Arc<IoSlot>,
}

/// Server-wide counters of what was refused outside any one stream (per-stream drops live in
/// the relay's stats). They are the Prometheus counters themselves.
#[derive(Debug)]
pub(crate) struct Counters {
    /// Refused requests by error code, indexed by `ErrorCode::index`.
    refused: [IntCounter; ErrorCode::ALL.len()],
    /// Connections refused at connect time (limit reached or draining).
    pub(crate) connections_refused: IntCounter,
}

impl Counters {
    fn new(metrics: &Metrics) -> Self {
        Self {
            refused: metrics.errors.clone(),
            connections_refused: metrics.connections_refused.clone(),
        }
    }

    pub(crate) fn refused(&self, code: ErrorCode) {
        self.refused[code.index()].inc();
    }

    /// Non-zero refusal counts by code.
    pub(crate) fn refused_snapshot(&self) -> BTreeMap<&'static str, u64> {
        ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), self.refused[c.index()].get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Hub {
    pub(crate) fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let metrics = Arc::new(Metrics::new());
        let io = Arc::new(IoSlot::default());
        Self {
            relay: Distributor::new(config.relay.clone(), RoomGroup::new(Arc::clone(&io))),
            dashboard: Feed::new(config.dashboard_clients),
            config,
            bus: Bus::new(),
            connections: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            stopped: CancellationToken::new(),
            counters: Counters::new(&metrics),
            chat: ChatLog::default(),
            metrics,
            taps: Taps::default(),
            store,
            media: MediaChannels::default(),
            io,
        }
    }

    pub(crate) fn draining(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Ends connection `conn`'s viewing of every stream where `which` picks its sink, and
    /// says so on the bus.
    pub(crate) fn leave_everywhere(&self, conn: &str, which: impl Fn(&SocketSink) -> bool) {
        for (key, viewers) in self.relay.remove_viewer_everywhere(conn, which) {
            self.bus.publish(HubEvent::ViewerLeft { key, viewers });
        }
    }

    /// The gauges `/metrics` reports, read now.
    pub(crate) fn gauges(&self) -> Gauges {
        let streams = self.relay.snapshot(Instant::now());
        let count = |s: StreamStatus| streams.iter().filter(|(i, _)| i.status == s).count();
        let (live, reconnecting) = (count(StreamStatus::Live), count(StreamStatus::Reconnecting));
        let mut levels = [0; LEVELS];
        for (_, stats) in &streams {
            for (acc, n) in levels.iter_mut().zip(stats.levels) {
                *acc += n;
            }
        }
        Gauges {
            connections: self.connections.load(Ordering::Relaxed),
            media_channels: self.media.open_count(),
            live,
            reconnecting,
            created: self
                .relay
                .stream_count()
                .saturating_sub(live + reconnecting),
            viewers: streams.iter().map(|(i, _)| i.viewer_count).sum(),
            levels,
        }
    }
}
