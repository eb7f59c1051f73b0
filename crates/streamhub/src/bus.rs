//! The internal bus: the design note's Pub/Sub, done so the frame path never waits.
//!
//! Lifecycle events (streams, viewers, chat, drops) are published on a bounded
//! `tokio::sync::broadcast` channel. Publishing never blocks; a subscriber that falls behind
//! loses the oldest events and is told how many (`RecvError::Lagged`), which it counts.
//! Persistence, metrics and the dashboard subscribe here; none of them sits on the frame path.

use streamhub_protocol::Millis;
use streamhub_protocol::server::{EndReason, MediaMode};
use tokio::sync::broadcast;

use crate::relay::StreamStats;

/// Events buffered per subscriber before the slowest one starts losing the oldest.
pub(crate) const BUS_CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HubEvent {
    StreamCreated {
        key: String,
        streamer: String,
    },
    StreamStarted {
        key: String,
        title: String,
        streamer: String,
        at: Millis,
    },
    /// The owner renamed the stream (`stream:title`).
    TitleChanged {
        key: String,
        title: String,
    },
    StreamReconnecting {
        key: String,
    },
    StreamResumed {
        key: String,
    },
    StreamEnded {
        key: String,
        reason: EndReason,
        /// What the stream relayed over its life.
        totals: StreamTotals,
        at: Millis,
    },
    ViewerJoined {
        key: String,
        viewers: usize,
    },
    ViewerLeft {
        key: String,
        viewers: usize,
    },
    ViewerEvicted {
        key: String,
        /// The viewer's connection label (`ids::conn_label`), never its Socket.IO id.
        viewer: String,
    },
    Chat {
        key: String,
        /// The streamer's username: chat history belongs to the channel, not one stream.
        channel: String,
        id: String,
        user_id: String,
        user: String,
        message: String,
        at: Millis,
    },
    Reaction {
        key: String,
        kind: &'static str,
    },
    /// This node's live streams and their totals so far (every
    /// `store::writer::CHECKPOINT_INTERVAL`), for the session records.
    Checkpoint {
        at: Millis,
        streams: Vec<(String, StreamTotals)>,
    },
}

/// A stream's counters, carried by [`HubEvent::StreamEnded`] (the relay has forgotten the
/// stream by the time the event is read) and, while it runs, by [`HubEvent::Checkpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StreamTotals {
    pub(crate) frames_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    /// Frames refused or dropped for any reason (slow viewers, rate, size, bad media).
    pub(crate) dropped: u64,
    pub(crate) mode: MediaMode,
}

impl From<&StreamStats> for StreamTotals {
    fn from(s: &StreamStats) -> Self {
        Self {
            frames_in: s.frames_in,
            bytes_in: s.bytes_in,
            frames_out: s.frames_out,
            bytes_out: s.bytes_out,
            dropped: s.dropped_slow_viewer
                + s.dropped_rate_limited
                + s.dropped_too_large
                + s.dropped_bad_media,
            mode: s.media,
        }
    }
}

/// The sending half, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Bus {
    tx: broadcast::Sender<HubEvent>,
}

impl Bus {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }

    /// Publishes without waiting; having no subscriber is fine.
    pub(crate) fn publish(&self, event: HubEvent) {
        let _ = self.tx.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }
}

/// Feeds every event of `rx` to `on_event` until `shutdown` or the bus closes; `on_lag` is
/// told how many events this subscriber lost by falling behind.
pub(crate) async fn consume(
    mut rx: broadcast::Receiver<HubEvent>,
    shutdown: tokio_util::sync::CancellationToken,
    mut on_event: impl FnMut(HubEvent),
    mut on_lag: impl FnMut(u64),
) {
    use broadcast::error::RecvError;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = rx.recv() => e,
        };
        match event {
            Ok(event) => on_event(event),
            Err(RecvError::Lagged(n)) => on_lag(n),
            Err(RecvError::Closed) => break,
        }
    }
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_events_in_order_and_publishing_never_blocks() {
        let bus = Bus::new();
        bus.publish(HubEvent::StreamResumed { key: "lost".into() });
        let mut rx = bus.subscribe();
        for i in 0..3 {
            bus.publish(HubEvent::ViewerJoined {
                key: "k".into(),
                viewers: i,
            });
        }
        for i in 0..3 {
            assert_eq!(
                rx.recv().await.expect("event"),
                HubEvent::ViewerJoined {
                    key: "k".into(),
                    viewers: i
                }
            );
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_what_it_lost() {
        let bus = Bus::new();
        let mut rx = bus.subscribe();
        for i in 0..BUS_CAPACITY + 10 {
            bus.publish(HubEvent::ViewerLeft {
                key: "k".into(),
                viewers: i,
            });
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected Lagged, got {other:?}"),
        }
    }
}
