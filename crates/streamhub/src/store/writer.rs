//! Every database write goes through one writer task, in batches.
//!
//! ```text
//! bus (broadcast) ─► collector task ─┐                                   writer task ─► Store
//!                    events → Writes  ├► bounded queue (--db-queue) ─► batch: what queued while
//!                    session tracking │   full: refused, counted       the previous one
//! chat handler ── Write + completion ─┘                                committed (≤ MAX_BATCH),
//!                 (waits for the commit)                               one transaction each
//! ```
//! The collector never awaits the database, so a slow disk fills the queue instead of
//! delaying anything else; what does not fit is dropped and counted. A chat message is
//! different: the handler queues it with a completion ([`WriteQueue::commit`]) and answers the
//! client only once the batch holding it committed, so an acknowledged message survives a
//! crash. Batching is what keeps that cheap: everything that queued while one transaction
//! committed goes in the next, so many connections' messages share a commit.
//!
//! Live sessions' totals reach the collector as [`HubEvent::Checkpoint`] every
//! [`CHECKPOINT_INTERVAL`]; a crash loses at most that much of a session's numbers.
//!
//! On shutdown [`Persistence::finish`] drains what the bus still holds, closes the queue, and
//! waits for the writer to commit the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use streamhub_protocol::Millis;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{SessionProgress, Store, Write};
use crate::bus::HubEvent;
use crate::metrics::{DbDrop, Metrics};

/// Most writes committed in one transaction.
pub(crate) const MAX_BATCH: usize = 512;
/// How often live sessions' totals are written (what a crash can lose of them).
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// How long shutdown waits for the writer to commit what is queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams tracked at once for viewer statistics; more than the relay allows, so only a lost
/// `StreamEnded` can make it grow, and then the oldest entries go.
const MAX_TRACKED: usize = 100_000;

/// One queued write, and who waits for its commit.
#[derive(Debug)]
pub(crate) struct Queued {
    write: Write,
    /// Told once the batch holding the write committed; dropped unsent if it failed.
    done: Option<oneshot::Sender<()>>,
}

/// Why a write that had to be durable before its answer (a chat message) is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommitError {
    #[error("the database write queue is full")]
    QueueFull,
    #[error("the database is closing")]
    Closed,
    #[error("the database did not commit within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the database refused the write")]
    Failed,
}

/// The sending side of the writer's bounded queue (`--db-queue`), cheap to clone: the
/// collector and the chat handlers share it, and with it the bound.
#[derive(Debug, Clone)]
pub(crate) struct WriteQueue {
    tx: mpsc::Sender<Queued>,
    metrics: Arc<Metrics>,
}

/// The writer's end of the queue, for [`Persistence::start`].
#[derive(Debug)]
pub(crate) struct QueueReceiver(mpsc::Receiver<Queued>);

impl WriteQueue {
    /// A queue of `capacity` writes.
    pub(crate) fn new(capacity: usize, metrics: Arc<Metrics>) -> (Self, QueueReceiver) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, metrics }, QueueReceiver(rx))
    }

    fn try_queue(&self, queued: Queued) -> Result<(), CommitError> {
        let result = self.tx.try_send(queued).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.metrics.db_dropped(DbDrop::QueueFull, 1);
                CommitError::QueueFull
            }
            mpsc::error::TrySendError::Closed(_) => CommitError::Closed,
        });
        self.metrics
            .db_queue_depth
            .set((self.tx.max_capacity() - self.tx.capacity()) as i64);
        result
    }

    /// Queues `write` without waiting; when the queue is full it is dropped (and counted).
    fn queue(&self, write: Write) {
        let _ = self.try_queue(Queued { write, done: None });
    }

    /// Queues `write` and waits until the batch holding it committed, `timeout` at most.
    /// Never waits for room: a full queue is an error at once. A write whose wait timed out
    /// and that the writer has not started on yet is not written at all, so the caller's
    /// "not stored" holds (one already in a transaction may still land).
    pub(crate) async fn commit(&self, write: Write, timeout: Duration) -> Result<(), CommitError> {
        let (done, committed) = oneshot::channel();
        self.try_queue(Queued {
            write,
            done: Some(done),
        })?;
        match tokio::time::timeout(timeout, committed).await {
            Ok(Ok(())) => Ok(()),
            // The writer dropped the completion: the batch failed (counted there).
            Ok(Err(_)) => Err(CommitError::Failed),
            Err(_) => Err(CommitError::Timeout(timeout)),
        }
    }
}

/// The running persistence tasks.
#[derive(Debug)]
pub(crate) struct Persistence {
    collector: JoinHandle<()>,
    writer: JoinHandle<()>,
    /// Stops the collector (which first queues what the bus still holds).
    stop: CancellationToken,
    /// Closes the queue once the collector is done: the writer commits what is left, then ends.
    close: CancellationToken,
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
            HubEvent::Checkpoint { at, streams } => {
                // Only sessions this collector saw start (an ended one is no longer tracked,
                // so a checkpoint taken just before its end changes nothing).
                let sessions: Vec<_> = streams
                    .into_iter()
                    .filter_map(|(key, totals)| {
                        let t = self.tracked.get_mut(&key)?;
                        t.started_at?;
                        t.advance(at);
                        Some(SessionProgress {
                            peak_viewers: t.peak,
                            avg_viewers: t.average(at),
                            key,
                            totals,
                        })
                    })
                    .collect();
                (!sessions.is_empty()).then_some(Write::Checkpoint { at, sessions })
            }
            // The chat handler stores its message itself, before the ack (`WriteQueue::commit`).
            HubEvent::Chat { .. } => None,
            HubEvent::Reaction { key, kind } => Some(Write::Reaction { key, kind }),
            HubEvent::TitleChanged { key, title } => Some(Write::Title { key, title }),
            HubEvent::StreamReconnecting { .. } | HubEvent::StreamResumed { .. } => None,
        }
    }
}

impl Persistence {
    /// Starts the collector on `rx` (subscribe before any event is published) and the writer
    /// on `queue`'s receiving end.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        rx: broadcast::Receiver<HubEvent>,
        queue: WriteQueue,
        receiver: QueueReceiver,
        metrics: Arc<Metrics>,
    ) -> Self {
        let stop = CancellationToken::new();
        let close = CancellationToken::new();
        let collector = tokio::spawn(collect(rx, queue, Arc::clone(&metrics), stop.clone()));
        let writer = tokio::spawn(write(store, receiver.0, metrics, close.clone()));
        Self {
            collector,
            writer,
            stop,
            close,
        }
    }

    /// Queues what the bus still holds, then waits (bounded) for the writer to commit it all.
    pub(crate) async fn finish(self) {
        self.stop.cancel();
        if let Err(e) = self.collector.await {
            tracing::error!(error = %e, "persistence collector failed");
        }
        self.close.cancel();
        match tokio::time::timeout(FLUSH_TIMEOUT, self.writer).await {
            Ok(Ok(())) => tracing::info!("database writes flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "database writer failed"),
            Err(_) => tracing::error!("database writer still busy after the flush timeout"),
        }
    }
}

async fn collect(
    mut rx: broadcast::Receiver<HubEvent>,
    queue: WriteQueue,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    use broadcast::error::{RecvError, TryRecvError};
    let mut collector = Collector::default();
    let handle = |collector: &mut Collector, event: HubEvent| {
        if let Some(w) = collector.on_event(event, crate::clock::now_ms()) {
            queue.queue(w);
        }
    };
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            e = rx.recv() => e,
        };
        match event {
            Ok(event) => handle(&mut collector, event),
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
            Ok(event) => handle(&mut collector, event),
            Err(TryRecvError::Lagged(n)) => metrics.db_dropped(DbDrop::BusLagged, n),
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
}

async fn write(
    store: Arc<dyn Store>,
    mut queue: mpsc::Receiver<Queued>,
    metrics: Arc<Metrics>,
    close: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = false;
    loop {
        // Whatever piled up while the previous batch was being written goes in the next one.
        tokio::select! {
            n = queue.recv_many(&mut batch, MAX_BATCH) => if n == 0 { break },
            () = close.cancelled(), if !closing => {
                // Later sends fail at once; what is queued is still received, then `None`.
                closing = true;
                queue.close();
                continue;
            }
        }
        metrics.db_queue_depth.set(queue.len() as i64);
        commit_batch(&*store, &mut batch, &metrics).await;
    }
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "closing the database");
    }
}

/// Writes `batch` (emptied) in one transaction and tells the waiters how it went.
async fn commit_batch(store: &dyn Store, batch: &mut Vec<Queued>, metrics: &Metrics) {
    // A chat whose handler stopped waiting was refused to its sender: storing it now would
    // put a message nobody saw in the history.
    let before = batch.len();
    batch.retain(|q| q.done.as_ref().is_none_or(|d| !d.is_closed()));
    metrics.db_dropped(DbDrop::Abandoned, (before - batch.len()) as u64);
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    let mut waiters = Vec::new();
    let writes = batch
        .drain(..)
        .map(|q| {
            waiters.extend(q.done);
            q.write
        })
        .collect();
    match store.write(writes).await {
        Ok(()) => {
            metrics.db_writes.inc_by(n);
            metrics.db_batches.inc();
            for done in waiters {
                // A waiter that timed out meanwhile already told its client; nothing to do.
                let _ = done.send(());
            }
        }
        Err(e) => {
            // Dropping the completions tells each waiting handler its write failed.
            tracing::error!(error = %e, writes = n, "database batch failed; writes lost");
            metrics.db_dropped(DbDrop::WriteFailed, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::StreamTotals;
    use crate::store::ChatRecord;
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
        let (queue, receiver) = WriteQueue::new(16, Arc::clone(&metrics));
        let p = Persistence::start(
            Arc::new(Stuck),
            bus.subscribe(),
            queue,
            receiver,
            Arc::clone(&metrics),
        );
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

    #[test]
    fn a_checkpoint_carries_the_totals_and_viewer_statistics_of_sessions_it_tracks() {
        let mut c = Collector::default();
        for key in ["live", "gone"] {
            c.on_event(
                HubEvent::StreamStarted {
                    key: key.into(),
                    title: "t".into(),
                    streamer: "ana".into(),
                    at: 1000,
                },
                1000,
            );
        }
        c.on_event(
            HubEvent::ViewerJoined {
                key: "live".into(),
                viewers: 2,
            },
            1000,
        );
        c.on_event(
            HubEvent::StreamEnded {
                key: "gone".into(),
                reason: EndReason::Ended,
                totals: StreamTotals::default(),
                at: 1500,
            },
            1500,
        );
        let totals = StreamTotals {
            frames_in: 40,
            ..StreamTotals::default()
        };
        let checkpoint = c.on_event(
            HubEvent::Checkpoint {
                at: 3000,
                // An ended session and one never seen starting are left alone.
                streams: vec![
                    ("live".into(), totals),
                    ("gone".into(), totals),
                    ("elsewhere".into(), totals),
                ],
            },
            3000,
        );
        let Some(Write::Checkpoint { at, sessions }) = checkpoint else {
            panic!("expected a checkpoint, got {checkpoint:?}");
        };
        assert_eq!(at, 3000);
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_eq!(sessions[0].key, "live");
        assert_eq!(sessions[0].totals.frames_in, 40);
        assert_eq!(sessions[0].peak_viewers, 2);
        assert!((sessions[0].avg_viewers - 2.0).abs() < 1e-9);
        let nothing = c.on_event(
            HubEvent::Checkpoint {
                at: 4000,
                streams: vec![("gone".into(), totals)],
            },
            4000,
        );
        assert!(nothing.is_none(), "no write for no tracked session");
    }

    fn chat(i: usize) -> Write {
        Write::Chat(ChatRecord {
            id: format!("m{i}"),
            channel: "ana".into(),
            stream_key: "k".into(),
            user_id: "u".into(),
            username: "bob".into(),
            message: format!("hello {i}"),
            at: i as u64,
        })
    }

    /// A store whose writes wait until the test opens the gate, and then record each batch
    /// (or fail it).
    #[derive(Debug)]
    struct Gated {
        gate: tokio::sync::Semaphore,
        batches: parking_lot::Mutex<Vec<Vec<Write>>>,
        fail: bool,
    }

    impl Gated {
        fn new(fail: bool) -> Arc<Self> {
            Arc::new(Self {
                gate: tokio::sync::Semaphore::new(0),
                batches: parking_lot::Mutex::default(),
                fail,
            })
        }

        fn open(&self) {
            self.gate.add_permits(1_000_000);
        }

        fn sizes(&self) -> Vec<usize> {
            self.batches.lock().iter().map(Vec::len).collect()
        }
    }

    impl Store for Gated {
        fn write(&self, batch: Vec<Write>) -> super::super::StoreFuture<'_, ()> {
            Box::pin(async move {
                let _permit = self.gate.acquire().await;
                self.batches.lock().push(batch);
                if self.fail {
                    Err(super::super::StoreError::Db(sqlx::Error::PoolClosed))
                } else {
                    Ok(())
                }
            })
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
        fn close(&self) -> super::super::StoreFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
    }

    fn start_with(store: Arc<dyn Store>, capacity: usize) -> (WriteQueue, Persistence) {
        let metrics = Arc::new(Metrics::new());
        let bus = crate::bus::Bus::new();
        let (queue, receiver) = WriteQueue::new(capacity, Arc::clone(&metrics));
        let p = Persistence::start(store, bus.subscribe(), queue.clone(), receiver, metrics);
        (queue, p)
    }

    const LONG: Duration = Duration::from_secs(30);

    /// The completion fires only once the batch holding the write committed, and what queued
    /// meanwhile goes in one batch: the next.
    #[tokio::test]
    async fn a_commit_waits_for_its_batch_and_waiting_writes_share_the_next_one() {
        let store = Gated::new(false);
        let (queue, p) = start_with(store.clone(), 64);
        let first = tokio::spawn({
            let queue = queue.clone();
            async move { queue.commit(chat(0), LONG).await }
        });
        // The writer takes the first write and is stuck in its transaction (one thread: the
        // sleep lets every other task run).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rest: Vec<_> = (1..=10)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.commit(chat(i), LONG).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!first.is_finished(), "acknowledged before the commit");
        assert!(rest.iter().all(|t| !t.is_finished()));
        assert!(store.sizes().is_empty(), "nothing committed yet");
        store.open();
        assert_eq!(first.await.expect("join"), Ok(()));
        for t in rest {
            assert_eq!(t.await.expect("join"), Ok(()));
        }
        assert_eq!(store.sizes(), [1, 10]);
        p.finish().await;
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_commit_in_it() {
        let store = Gated::new(true);
        store.open();
        let (queue, p) = start_with(store.clone(), 64);
        assert_eq!(queue.commit(chat(0), LONG).await, Err(CommitError::Failed));
        p.finish().await;
    }

    /// A full queue refuses at once; a write whose wait timed out before the writer reached it
    /// is never stored (its sender was told it failed).
    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_an_abandoned_write_is_not_stored() {
        let store = Gated::new(false);
        let (queue, p) = start_with(store.clone(), 16);
        let stuck = tokio::spawn({
            let queue = queue.clone();
            async move { queue.commit(chat(0), LONG).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The writer holds write 0; these fill the queue.
        let waiting: Vec<_> = (1..=16)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.commit(chat(i), Duration::from_millis(50)).await })
            })
            .collect();
        while queue.tx.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        assert_eq!(
            queue.commit(chat(99), LONG).await,
            Err(CommitError::QueueFull)
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
        for t in waiting {
            assert_eq!(
                t.await.expect("join"),
                Err(CommitError::Timeout(Duration::from_millis(50)))
            );
        }
        store.open();
        assert_eq!(stuck.await.expect("join"), Ok(()));
        assert_eq!(queue.commit(chat(100), LONG).await, Ok(()));
        // Only the writes whose senders were still waiting reached the database.
        assert_eq!(store.sizes(), [1, 1]);
        assert_eq!(queue.metrics.db_dropped_count(DbDrop::Abandoned), 16);
        assert_eq!(queue.metrics.db_dropped_count(DbDrop::QueueFull), 1);
        p.finish().await;
    }

    /// Throughput with the real SQLite store: 2000 messages from 200 senders at once, each
    /// waiting for its commit, take about ten transactions (one per round), not 2000.
    #[tokio::test]
    async fn many_waiting_senders_share_transactions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = super::super::sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        let store: Arc<dyn Store> = Arc::new(store);
        let (queue, p) = start_with(Arc::clone(&store), 10_000);
        let started = std::time::Instant::now();
        let senders: Vec<_> = (0..200)
            .map(|s| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        queue.commit(chat(s * 10 + i), LONG).await?;
                    }
                    Ok::<(), CommitError>(())
                })
            })
            .collect();
        for s in senders {
            s.await.expect("join").expect("committed");
        }
        let elapsed = started.elapsed();
        let batches = queue.metrics.db_batches.get();
        assert_eq!(queue.metrics.db_writes.get(), 2000);
        assert!(batches <= 100, "{batches} transactions for 2000 messages");
        assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
        let stored = store.recent_chat("ana", 5000).await.expect("read");
        assert_eq!(stored.len(), 2000);
        p.finish().await;
    }
}
