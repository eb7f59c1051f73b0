//! The server's shared state: one [`Hub`] per running server, handed to every connection.
//!
//! It holds the parts (relay, bus, store, metrics, chat log, dashboard feed, media channels)
//! and the few operations that touch several of them at once. It knows nothing of how
//! requests arrive: the Socket.IO glue, the HTTP routes and the media channel sit above it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use prometheus::IntCounter;
use streamhub_protocol::ErrorCode;
use streamhub_protocol::server::StreamStatus;
use tokio_util::sync::CancellationToken;

use crate::admin_token::AdminToken;
use crate::bus::{Bus, HubEvent, StreamTotals};
use crate::chatlog::ChatLog;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::dashboard::Feed;
use crate::metrics::{Gauges, Metrics, Taps};
use crate::relay::{Distributor, LEVELS};
use crate::sink::{IoSlot, MediaChannels, MediaTokens, SocketSink};
use crate::store::Store;
use crate::store::writer::WriteQueue;
use crate::thumbnails::{Thumbnail, Thumbnails};

/// The relay as the server runs it: viewers are Socket.IO connections (or their media
/// channels), picture viewers at level 0 share one room broadcast.
pub(crate) type Relay = Distributor<SocketSink>;

/// Why a channel's state could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChannelError {
    /// The database (or Redis, in a cluster) did not answer.
    #[error("channel storage unavailable: {0}")]
    Storage(String),
}

/// Shared server state.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) config: Config,
    /// What the admin routes need: `--admin-token`, or the stored token (`admin_token`),
    /// which a running server follows; `None`: open.
    pub(crate) admin_token: Arc<AdminToken>,
    pub(crate) relay: Relay,
    pub(crate) bus: Bus,
    pub(crate) connections: AtomicUsize,
    pub(crate) shutting_down: AtomicBool,
    /// Cancelled once the server has closed every connection: the connections' tasks end.
    pub(crate) stopped: CancellationToken,
    pub(crate) counters: Counters,
    /// Wrong publish secrets per client address.
    pub(crate) secret_attempts: crate::attempts::SecretAttempts,
    pub(crate) chat: ChatLog,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) taps: Taps,
    pub(crate) store: Arc<dyn Store>,
    /// The database writer's queue: chat messages go in and wait for their commit.
    pub(crate) writes: WriteQueue,
    pub(crate) dashboard: Feed,
    /// Viewers' media channels (`GET /media`), by Socket.IO connection id.
    pub(crate) media: MediaChannels,
    /// Outstanding `media:token` credentials.
    pub(crate) media_tokens: MediaTokens,
    /// Every stream's latest thumbnail on this node (`stream:thumbnail`).
    pub(crate) thumbnails: Thumbnails,
    /// The Socket.IO server, while it runs (the media channel looks connections up there).
    pub(crate) io: Arc<IoSlot>,
    /// Cluster mode (`--redis-url`): the bus and this node's view of the other nodes.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Cluster mode: the tasks reading followed streams' frames, by stream key.
    pub(crate) readers: parking_lot::Mutex<HashMap<String, CancellationToken>>,
    /// Cluster mode: followed streams with no viewer here, since when.
    pub(crate) unwatched: parking_lot::Mutex<HashMap<String, Instant>>,
    /// Cluster mode: one follow (or takeover) of a stream at a time.
    follows: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
    pub(crate) fn new(
        config: Config,
        store: Arc<dyn Store>,
        writes: WriteQueue,
        metrics: Arc<Metrics>,
        cluster: Option<Cluster>,
    ) -> Self {
        let io = Arc::new(IoSlot::default());
        Self {
            cluster: cluster.map(Arc::new),
            readers: parking_lot::Mutex::default(),
            unwatched: parking_lot::Mutex::default(),
            follows: parking_lot::Mutex::default(),
            relay: Distributor::new(config.relay.clone()),
            thumbnails: Thumbnails::new(
                config.max_thumbnail_bytes,
                config.relay.max_streams,
                metrics.thumbnail_bytes.clone(),
            ),
            dashboard: Feed::new(config.dashboard_clients),
            admin_token: Arc::new(AdminToken::new(config.admin_token.as_deref())),
            config,
            bus: Bus::new(),
            connections: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            stopped: CancellationToken::new(),
            counters: Counters::new(&metrics),
            secret_attempts: Default::default(),
            chat: ChatLog::default(),
            metrics,
            taps: Taps::default(),
            store,
            writes,
            media: MediaChannels::default(),
            media_tokens: MediaTokens::default(),
            io,
        }
    }

    /// Serializes following (or taking over) one stream: the second joiner waits until the
    /// first has primed the replica.
    pub(crate) async fn follow_lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut follows = self.follows.lock();
            // Forget the locks nobody holds or waits for (bounded by the streams followed).
            follows.retain(|_, l| Arc::strong_count(l) > 1);
            Arc::clone(follows.entry(key.to_owned()).or_default())
        };
        lock.lock_owned().await
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

    /// Streams that are live or waiting for their streamer, newest first: the cluster's in
    /// cluster mode (with cluster-wide viewer counts), else this node's.
    pub(crate) fn streams(&self) -> Vec<streamhub_protocol::server::StreamInfo> {
        match &self.cluster {
            Some(c) if c.is_up() => c.list(),
            _ => self.relay.list(),
        }
    }

    /// `info` with its viewer count across the cluster (every live node's viewers; the relay
    /// counts this node's only).
    pub(crate) fn counted(
        &self,
        mut info: streamhub_protocol::server::StreamInfo,
    ) -> streamhub_protocol::server::StreamInfo {
        if let Some(cluster) = &self.cluster {
            info.viewer_count = cluster.total(&info.stream_key).max(info.viewer_count);
        }
        info
    }

    /// A channel's live (or reconnecting) stream: the newest started one of that streamer, on
    /// any node.
    pub(crate) fn channel_live(
        &self,
        name: &str,
    ) -> Option<streamhub_protocol::server::StreamInfo> {
        self.streams()
            .into_iter()
            .filter(|s| s.streamer.username.to_lowercase() == name && s.started_at.is_some())
            .max_by_key(|s| s.started_at)
    }

    /// What a channel (a lower-case name) is doing: its live stream (the newest started one
    /// of that streamer, on any node), else its last one (Redis in a cluster, else SQLite),
    /// and whether the name is claimed.
    pub(crate) async fn channel_state(
        &self,
        name: &str,
    ) -> Result<streamhub_protocol::server::ChannelState, ChannelError> {
        let live = self.channel_live(name);
        let storage = |e: &dyn std::fmt::Display| ChannelError::Storage(e.to_string());
        let (last, claim) = match &self.cluster {
            // Redis away: this node's own records, so the channel page still finds a live
            // stream (the list is this node's then too).
            Some(c) => match (c.last_stream(name).await, c.channel_claim(name).await) {
                (Ok(last), Ok(claim)) => (last, claim),
                (last, claim) => {
                    tracing::debug!(
                        channel = name,
                        "channel state from this node only: bus down"
                    );
                    let local = self
                        .store
                        .last_session(name)
                        .await
                        .map_err(|e| storage(&e))?;
                    (last.ok().flatten().or(local), claim.ok().flatten())
                }
            },
            None => (
                self.store
                    .last_session(name)
                    .await
                    .map_err(|e| storage(&e))?,
                self.store
                    .channel_claim(name)
                    .await
                    .map_err(|e| storage(&e))?,
            ),
        };
        // A live stream is its own newest session: `last` is the one before only in a
        // cluster (Redis keeps ended ones); from SQLite it would be the live one itself.
        let last = last.filter(|l| {
            live.as_ref()
                .is_none_or(|s| Some(l.started_at) != s.started_at)
        });
        Ok(streamhub_protocol::server::ChannelState {
            name: name.to_owned(),
            live,
            last,
            claimed: claim.is_some(),
        })
    }

    /// One stream's info and stats for the API: this node's own stream (with the cluster's
    /// viewer count), or in cluster mode another node's, as its origin last reported it.
    pub(crate) fn describe(
        &self,
        key: &str,
        now: Instant,
    ) -> Option<(streamhub_protocol::server::StreamInfo, serde_json::Value)> {
        let local = self
            .relay
            .describe(key, now)
            .filter(|_| self.relay.epoch(key).is_some_and(|(_, replica)| !replica));
        let Some(cluster) = &self.cluster else {
            let (info, stats) = local?;
            return Some((info, serde_json::to_value(stats).unwrap_or_default()));
        };
        if let Some((info, mut stats)) = local {
            let info = self.counted(info);
            stats.viewer_count = info.viewer_count;
            return Some((info, serde_json::to_value(stats).unwrap_or_default()));
        }
        let total = cluster.total(key);
        let record = cluster.record(key)?;
        let mut info = record.info;
        info.viewer_count = total;
        let mut stats = record.stats.unwrap_or_else(|| serde_json::json!({}));
        stats["viewerCount"] = total.into();
        Some((info, stats))
    }

    /// A stream's latest thumbnail: this node's own stream's from memory; in cluster mode
    /// another node's from Redis (whichever node answers, the same bytes and ETag).
    pub(crate) async fn thumbnail(&self, key: &str) -> Option<Arc<Thumbnail>> {
        let origin_here = self.relay.epoch(key).is_some_and(|(_, replica)| !replica);
        let Some(cluster) = &self.cluster else {
            return self.thumbnails.get(key);
        };
        if origin_here && let Some(thumb) = self.thumbnails.get(key) {
            return Some(thumb);
        }
        match cluster.thumbnail(key).await {
            Ok(jpeg) => jpeg.map(|jpeg| Arc::new(Thumbnail::new(jpeg))),
            Err(e) => {
                tracing::debug!(stream = key, error = %e, "thumbnail not read from the cluster");
                self.thumbnails.get(key)
            }
        }
    }

    /// Publishes the running totals of this node's live streams (not the replicas of other
    /// nodes' streams), for the session records: a crash then loses at most the time since.
    pub(crate) fn checkpoint_sessions(&self) {
        let streams: Vec<_> = self
            .relay
            .snapshot_origins(Instant::now())
            .into_iter()
            .filter(|(info, _)| info.started_at.is_some())
            .map(|(info, stats)| (info.stream_key, StreamTotals::from(&stats)))
            .collect();
        if !streams.is_empty() {
            self.bus.publish(HubEvent::Checkpoint {
                at: crate::clock::now_ms(),
                streams,
            });
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
            queued_bytes: self.relay.viewer_queues().iter().sum(),
            levels,
            cluster: self
                .cluster
                .as_ref()
                .map(|c| (c.nodes().len().max(1), c.is_up())),
        }
    }
}
