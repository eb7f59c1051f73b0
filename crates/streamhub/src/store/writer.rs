//! From the bus to the database without ever making a client wait.
//!
//! ```text
//! bus (broadcast) ─► collector task ─► bounded queue (--db-queue) ─► writer task ─► Store
//!                    events → Writes    full: dropped + counted      batches of ≤ MAX_BATCH,
//!                    session tracking                                one transaction each
//! ```
//! The collector never awaits the database, so a slow disk fills the queue instead of
//! delaying anything else. On shutdown [`Persistence::finish`] drains what the bus still holds
//! (everything acknowledged to a client was published before its ack), closes the queue, and
//! waits for the writer to commit the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use streamhub_protocol::Millis;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::{ChatRecord, Store, Write};
use crate::bus::HubEvent;
use crate::metrics::{DbDrop, Metrics};

/// Most writes committed in one transaction.
pub(crate) const MAX_BATCH: usize = 512;
/// How long shutdown waits for the writer to commit what is queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams tracked at once for viewer statistics; more than the relay allows, so only a lost
/// `StreamEnded` can make it grow, and then the oldest entries go.
const MAX_TRACKED: usize = 100_000;

/// The running persistence tasks.
#[derive(Debug)]
pub(crate) struct Persistence {
    collector: JoinHandle<()>,
    writer: JoinHandle<()>,
    stop: tokio_util::sync::CancellationToken,
}

/// Viewer statistics of one stream, from its join and leave events.
#[derive(Debug, Default)]
struct Tracked {
    started_at: Option<Millis>,
    viewers: usize,
    peak: usize,
    /// Viewer-milliseconds since the start, up to `last`.
    area: f64,
    last: Millis,
}

impl Tracked {
    fn set_viewers(&mut self, n: usize, now: Millis) {
        self.advance(now);
        self.viewers = n;
        self.peak = self.peak.max(n);
    }

    fn advance(&mut self, now: Millis) {
        if self.started_at.is_some() {
            self.area += self.viewers as f64 * now.saturating_sub(self.last) as f64;
        }
        self.last = self.last.max(now);
    }

    fn average(&self, end: Millis) -> f64 {
        match self.started_at {
            Some(start) if end > start => self.area / (end - start) as f64,
            _ => self.viewers as f64,
        }
    }
}

/// Turns bus events into writes, keeping what it needs to sum a session up.
#[derive(Debug, Default)]
struct Collector {
    tracked: HashMap<String, Tracked>,
}

impl Collector {
    fn entry(&mut self, key: &str) -> &mut Tracked {
        if !self.tracked.contains_key(key) && self.tracked.len() >= MAX_TRACKED {
            let oldest = self
                .tracked
                .iter()
                .min_by_key(|(_, t)| t.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.tracked.remove(&k);
            }
        }
        self.tracked.entry(key.to_owned()).or_default()
    }

    fn on_event(&mut self, event: HubEvent, now: Millis) -> Option<Write> {
        match event {
            HubEvent::StreamCreated { key, .. } => {
                self.entry(&key).last = now;
                None
            }
            HubEvent::StreamStarted {
                key,
                title,
                streamer,
                at,
            } => {
                let t = self.entry(&key);
                t.started_at = Some(at);
                t.last = at;
                t.peak = t.viewers;
                Some(Write::SessionStarted {
                    key,
                    title,
                    streamer,
                    at,
                })
            }
            HubEvent::ViewerJoined { key, viewers } | HubEvent::ViewerLeft { key, viewers } => {
                self.entry(&key).set_viewers(viewers, now);
                None
            }
            HubEvent::ViewerEvicted { key, .. } => {
                let t = self.entry(&key);
                let n = t.viewers.saturating_sub(1);
                t.set_viewers(n, now);
                None
            }
            HubEvent::StreamEnded {
                key,
                reason,
                totals,
                at,
            } => {
                let mut t = self.tracked.remove(&key)?;
                // A stream that never went live is no session.
                t.started_at?;
                t.advance(at);
                Some(Write::SessionEnded {
                    avg_viewers: t.average(at),
                    peak_viewers: t.peak,
                    key,
                    at,
                    reason: reason.as_str(),
                    totals,
                })
            }
            HubEvent::Chat {
                key,
                channel,
                id,
                user_id,
                user,
                message,
                at,
            } => Some(Write::Chat(ChatRecord {
                id,
                channel,
                stream_key: key,
                user_id,
                username: user,
                message,
                at,
            })),
            HubEvent::Reaction { key, kind } => Some(Write::Reaction { key, kind }),
            HubEvent::StreamReconnecting { .. } | HubEvent::StreamResumed { .. } => None,
        }
    }
}

impl Persistence {
    /// Starts the collector on `rx` (subscribe before any event is published) and the writer
    /// with a queue of `capacity` writes.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        rx: broadcast::Receiver<HubEvent>,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, queue) = mpsc::channel(capacity);
        let stop = tokio_util::sync::CancellationToken::new();
        let collector = tokio::spawn(collect(rx, tx, Arc::clone(&metrics), stop.clone()));
        let writer = tokio::spawn(write(store, queue, metrics));
        Self {
            collector,
            writer,
            stop,
        }
    }

    /// Queues what the bus still holds, then waits (bounded) for the writer to commit it all.
    pub(crate) async fn finish(self) {
        self.stop.cancel();
        if let Err(e) = self.collector.await {
            tracing::error!(error = %e, "persistence collector failed");
        }
        match tokio::time::timeout(FLUSH_TIMEOUT, self.writer).await {
            Ok(Ok(())) => tracing::info!("database writes flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "database writer failed"),
            Err(_) => tracing::error!("database writer still busy after the flush timeout"),
        }
    }
}

async fn collect(
    mut rx: broadcast::Receiver<HubEvent>,
    tx: mpsc::Sender<Write>,
    metrics: Arc<Metrics>,
    stop: tokio_util::sync::CancellationToken,
) {
    use broadcast::error::{RecvError, TryRecvError};
    let mut collector = Collector::default();
    let capacity = tx.max_capacity();
    let queue = |collector: &mut Collector, event: HubEvent| {
        if let Some(w) = collector.on_event(event, crate::clock::now_ms()) {
            if tx.try_send(w).is_err() {
                metrics.db_dropped(DbDrop::QueueFull, 1);
            }
            metrics
                .db_queue_depth
                .set((capacity - tx.capacity()) as i64);
        }
    };
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            e = rx.recv() => e,
        };
        match event {
            Ok(event) => queue(&mut collector, event),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "persistence fell behind the bus; events lost");
                metrics.db_dropped(DbDrop::BusLagged, n);
                metrics.bus_lagged("persistence", n);
            }
            Err(RecvError::Closed) => return,
        }
    }
    // Shutdown: whatever was published before now is still in the bus.
    loop {
        match rx.try_recv() {
            Ok(event) => queue(&mut collector, event),
            Err(TryRecvError::Lagged(n)) => metrics.db_dropped(DbDrop::BusLagged, n),
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
}

async fn write(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Write>, metrics: Arc<Metrics>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Whatever piled up while the previous batch was being written goes in the next one.
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len() as u64;
        metrics.db_queue_depth.set(queue.len() as i64);
        match store.write(std::mem::take(&mut batch)).await {
            Ok(()) => {
                metrics.db_writes.inc_by(n);
                metrics.db_batches.inc();
            }
            Err(e) => {
                tracing::error!(error = %e, writes = n, "database batch failed; writes lost");
                metrics.db_dropped(DbDrop::WriteFailed, n);
            }
        }
    }
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "closing the database");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::StreamTotals;
    use streamhub_protocol::server::EndReason;

    #[test]
    fn a_session_gets_peak_and_time_weighted_average_viewers() {
        let mut c = Collector::default();
        let key = String::from("k");
        assert!(
            c.on_event(
                HubEvent::StreamCreated {
                    key: key.clone(),
                    streamer: "ana".into()
                },
                0
            )
            .is_none()
        );
        let started = c.on_event(
            HubEvent::StreamStarted {
                key: key.clone(),
                title: "t".into(),
                streamer: "ana".into(),
                at: 1000,
            },
            1000,
        );
        assert!(matches!(
            started,
            Some(Write::SessionStarted { at: 1000, .. })
        ));
        // 2 viewers for 1 s, then 4 for 1 s: average 3, peak 4.
        c.on_event(
            HubEvent::ViewerJoined {
                key: key.clone(),
                viewers: 2,
            },
            1000,
        );
        c.on_event(
            HubEvent::ViewerJoined {
                key: key.clone(),
                viewers: 4,
            },
            2000,
        );
        let ended = c.on_event(
            HubEvent::StreamEnded {
                key,
                reason: EndReason::Ended,
                totals: StreamTotals::default(),
                at: 3000,
            },
            3000,
        );
        match ended {
            Some(Write::SessionEnded {
                peak_viewers,
                avg_viewers,
                reason,
                ..
            }) => {
                assert_eq!(peak_viewers, 4);
                assert!((avg_viewers - 3.0).abs() < 1e-9, "{avg_viewers}");
                assert_eq!(reason, "ended");
            }
            other => panic!("expected SessionEnded, got {other:?}"),
        }
        assert!(c.tracked.is_empty());
    }

    #[test]
    fn a_stream_that_never_went_live_writes_nothing() {
        let mut c = Collector::default();
        c.on_event(
            HubEvent::StreamCreated {
                key: "k".into(),
                streamer: "ana".into(),
            },
            0,
        );
        let ended = c.on_event(
            HubEvent::StreamEnded {
                key: "k".into(),
                reason: EndReason::StreamerGone,
                totals: StreamTotals::default(),
                at: 10,
            },
            10,
        );
        assert!(ended.is_none());
    }

    #[derive(Debug)]
    struct Stuck;

    impl Store for Stuck {
        fn write(&self, _: Vec<Write>) -> super::super::StoreFuture<'_, ()> {
            Box::pin(std::future::pending())
        }
        fn recent_chat<'a>(
            &'a self,
            _: &'a str,
            _: usize,
        ) -> super::super::StoreFuture<'a, Vec<ChatRecord>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn sessions(
            &self,
            _: usize,
        ) -> super::super::StoreFuture<'_, Vec<super::super::SessionRecord>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn channel_claim<'a>(
            &'a self,
            _: &'a str,
        ) -> super::super::StoreFuture<'a, Option<String>> {
            Box::pin(std::future::pending())
        }
        fn claim_channel<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: u64,
        ) -> super::super::StoreFuture<'a, bool> {
            Box::pin(std::future::pending())
        }
        fn close(&self) -> super::super::StoreFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn a_stuck_disk_fills_the_queue_and_drops_are_counted() {
        let metrics = Arc::new(Metrics::new());
        let bus = crate::bus::Bus::new();
        let p = Persistence::start(Arc::new(Stuck), bus.subscribe(), 16, Arc::clone(&metrics));
        for i in 0..100 {
            bus.publish(HubEvent::Reaction {
                key: format!("k{i}"),
                kind: "🔥",
            });
        }
        // The writer holds at most one queue's worth; the queue another: the rest is dropped
        // and counted, and publishing never waited.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while metrics.db_dropped_count(DbDrop::QueueFull) < 100 - 2 * 16 {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} drops counted",
                metrics.db_dropped_count(DbDrop::QueueFull)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.db_writes.get(), 0);
        p.collector.abort();
        p.writer.abort();
    }
}
