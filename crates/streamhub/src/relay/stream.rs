use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use streamhub_protocol::server::{StreamInfo, StreamStatus};
use streamhub_protocol::{FrameData, Millis};

use super::{ConnId, Delivery, NewStream, Offer, RelayError, RelayLimits, TokenBucket, ViewerSink};

/// One accepted frame, shared by the ring and every viewer's send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub data: FrameData,
    pub timestamp: Millis,
    pub seq: u64,
}

/// What `GET /api/streams/{key}` and the note's `getStreamStats` report.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StreamStats {
    pub viewer_count: usize,
    pub buffer_size: usize,
    pub fps: f64,
    pub bitrate_kbps: f64,
    pub started_at: Option<Millis>,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub dropped_slow_viewer: u64,
    pub dropped_rate_limited: u64,
    pub dropped_too_large: u64,
    pub evicted: u64,
}

#[derive(Debug)]
struct Viewer<S> {
    conn: ConnId,
    sink: S,
    /// Since when every offer has found the queue full.
    full_since: Option<Instant>,
}

/// The rate window behind `fps` and `bitrateKbps`.
const RATE_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct Stream<S> {
    pub(super) meta: NewStream,
    status: StreamStatus,
    started_at: Option<Millis>,
    /// While the owner is away: since when.
    orphaned_at: Option<Instant>,
    owner: Option<ConnId>,
    viewers: Vec<Viewer<S>>,
    ring: VecDeque<Arc<Frame>>,
    ring_cap: usize,
    next_seq: u64,
    rate: TokenBucket,
    window: VecDeque<(Instant, usize)>,
    first_frame_at: Option<Instant>,
    counted_viewers: usize,
    stats: StreamStats,
}

impl<S: ViewerSink> Stream<S> {
    pub(super) fn new(meta: NewStream, limits: &RelayLimits, now: Instant) -> Self {
        let owner = Some(meta.owner.clone());
        Self {
            meta,
            status: StreamStatus::Created,
            started_at: None,
            orphaned_at: None,
            owner,
            viewers: Vec::new(),
            ring: VecDeque::with_capacity(limits.buffer_frames),
            ring_cap: limits.buffer_frames,
            next_seq: 1,
            rate: TokenBucket::new(limits.max_fps, f64::from(limits.max_fps), now),
            window: VecDeque::new(),
            first_frame_at: None,
            counted_viewers: 0,
            stats: StreamStats {
                viewer_count: 0,
                buffer_size: 0,
                fps: 0.0,
                bitrate_kbps: 0.0,
                started_at: None,
                frames_in: 0,
                bytes_in: 0,
                frames_out: 0,
                dropped_slow_viewer: 0,
                dropped_rate_limited: 0,
                dropped_too_large: 0,
                evicted: 0,
            },
        }
    }

    pub(super) fn info(&self) -> StreamInfo {
        StreamInfo {
            stream_key: self.meta.key.clone(),
            title: self.meta.title.clone(),
            streamer: self.meta.streamer.clone(),
            status: self.status,
            created_at: self.meta.created_at,
            started_at: self.started_at,
            viewer_count: self.viewers.len(),
        }
    }

    pub(super) fn is_owner(&self, conn: &str) -> bool {
        self.owner.as_deref() == Some(conn)
    }

    pub(super) fn check_owner(&self, conn: &str) -> Result<(), RelayError> {
        if self.is_owner(conn) {
            Ok(())
        } else {
            Err(RelayError::NotOwner(self.meta.key.clone()))
        }
    }

    pub(super) fn has_viewer(&self, conn: &str) -> bool {
        self.viewers.iter().any(|v| v.conn == conn)
    }

    pub(super) fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    /// Returns true if the stream was not live before.
    pub(super) fn start(&mut self, wall: Millis) -> bool {
        if self.status == StreamStatus::Created {
            self.status = StreamStatus::Live;
            self.started_at = Some(wall);
            true
        } else {
            false
        }
    }

    pub(super) fn end(&mut self) {
        self.status = StreamStatus::Ended;
        self.owner = None;
        // Drop the sinks now: they hold the viewers' sockets.
        self.viewers.clear();
    }

    pub(super) fn orphan(&mut self, now: Instant) {
        self.owner = None;
        self.orphaned_at = Some(now);
        if self.status == StreamStatus::Live {
            self.status = StreamStatus::Reconnecting;
        }
    }

    pub(super) fn orphan_expired(&self, now: Instant, grace: Duration) -> bool {
        self.orphaned_at
            .is_some_and(|t| now.saturating_duration_since(t) >= grace)
    }

    pub(super) fn token_matches(&self, token: &str) -> bool {
        // Compare every byte so the time taken does not leak how much of the token matched.
        let a = self.meta.publish_token.as_bytes();
        let b = token.as_bytes();
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub(super) fn adopt(&mut self, conn: &str) {
        self.owner = Some(conn.to_owned());
        self.orphaned_at = None;
        if self.status == StreamStatus::Reconnecting {
            self.status = StreamStatus::Live;
        }
    }

    pub(super) fn add_viewer(&mut self, conn: &str, sink: S) -> bool {
        if self.has_viewer(conn) {
            return false;
        }
        self.viewers.push(Viewer {
            conn: conn.to_owned(),
            sink,
            full_since: None,
        });
        true
    }

    pub(super) fn remove_viewer(&mut self, conn: &str) -> bool {
        let before = self.viewers.len();
        self.viewers.retain(|v| v.conn != conn);
        before != self.viewers.len()
    }

    pub(super) fn buffer(&self) -> Vec<Arc<Frame>> {
        self.ring.iter().cloned().collect()
    }

    pub(super) fn take_count_change(&mut self) -> Option<usize> {
        let n = self.viewers.len();
        (n != self.counted_viewers).then(|| {
            self.counted_viewers = n;
            n
        })
    }

    pub(super) fn publish(
        &mut self,
        conn: &str,
        data: FrameData,
        limits: &RelayLimits,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, RelayError> {
        self.check_owner(conn)?;
        let size = data.len();
        if size > limits.max_frame_bytes {
            self.stats.dropped_too_large += 1;
            return Err(RelayError::FrameTooLarge {
                size,
                max: limits.max_frame_bytes,
            });
        }
        if !self.rate.try_take(now) {
            self.stats.dropped_rate_limited += 1;
            return Err(RelayError::RateLimited(
                self.meta.key.clone(),
                limits.max_fps,
            ));
        }
        let started = self.start(wall).then(|| self.info());

        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = Arc::new(Frame {
            data,
            timestamp: wall,
            seq,
        });
        if self.ring_cap > 0 {
            if self.ring.len() == self.ring_cap {
                self.ring.pop_front();
            }
            self.ring.push_back(Arc::clone(&frame));
        }
        self.stats.frames_in += 1;
        self.stats.bytes_in += size as u64;
        self.first_frame_at.get_or_insert(now);
        self.window.push_back((now, size));
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.window.pop_front();
        }

        let mut reached = 0;
        let mut evicted = Vec::new();
        let key = &self.meta.key;
        let stats = &mut self.stats;
        self.viewers
            .retain_mut(|v| match v.sink.offer(key, &frame) {
                Offer::Sent => {
                    v.full_since = None;
                    reached += 1;
                    true
                }
                Offer::Full => {
                    stats.dropped_slow_viewer += 1;
                    let since = *v.full_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= limits.stall_timeout {
                        stats.evicted += 1;
                        evicted.push(v.conn.clone());
                        false
                    } else {
                        true
                    }
                }
                Offer::Closed => false,
            });
        stats.frames_out += reached as u64;
        Ok(Delivery {
            seq,
            reached,
            evicted,
            started,
        })
    }

    pub(super) fn stats(&self, now: Instant) -> StreamStats {
        // Frames of the last window, over the window, or over the stream's age while it is
        // younger than that (so a new stream does not read as slow).
        let recent = self
            .window
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) < RATE_WINDOW);
        let (frames, bytes) = recent.fold((0usize, 0usize), |(n, b), (_, size)| (n + 1, b + size));
        let span = self
            .first_frame_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default()
            .clamp(Duration::from_millis(500), RATE_WINDOW)
            .as_secs_f64();
        StreamStats {
            viewer_count: self.viewers.len(),
            buffer_size: self.ring.len(),
            fps: frames as f64 / span,
            bitrate_kbps: bytes as f64 * 8.0 / 1000.0 / span,
            started_at: self.started_at,
            ..self.stats.clone()
        }
    }
}
