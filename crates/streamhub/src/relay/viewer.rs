//! One viewer of a stream and the policy applied to it frame by frame: what it wants at its
//! state and delivery level, and what a sent, refused or closed offer does to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhub_protocol::server::{MediaMode, Track};

use super::frame::{Frame, FrameKind};
use super::{ConnId, Offer, ViewerSink};

/// Delivery levels: 0 every frame; 1 every 2nd picture, or key frames only (encoded video);
/// 2 every 4th picture.
pub(crate) const LEVELS: usize = streamhub_protocol::api::DELIVERY_LEVELS;
/// Drops within the drop window that move a viewer one level down.
const DROPS_TO_STEP_DOWN: u32 = 3;
/// Pictures: a viewer moves down only when it refused at least half of the pictures offered
/// within the window, and at least this many were offered. Each picture stands alone, so a
/// viewer that takes 90% of them is better off at its level (90% of the pictures, its queue
/// bounding the delay) than one down (50%); and when the server itself is behind (every
/// queue refusing a few pictures at once), moving everyone down halved what 5000 viewers got
/// (bench `v5000`: 64-76% delivered where the floor dropped 7-12%).
const MIN_PICTURE_OFFERS: u32 = 8;
/// Images: refusals are frames, many a second when a viewer is slow.
const DROP_WINDOW: Duration = Duration::from_secs(2);
/// Encoded video: after a refusal a viewer is offered only the next keyframe (one a second or
/// two), so refusals are counted over a longer window: three resyncs in 10 s step down.
const ENCODED_DROP_WINDOW: Duration = Duration::from_secs(10);
/// Time without drops before a viewer moves one level back up.
const CLEAR_TO_STEP_UP: Duration = Duration::from_secs(5);
/// Where a new viewer's delivery starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// Its catch-up went out: every frame from the next one.
    Synced,
    /// Nothing to catch up from yet: at the stream's first init and keyframe.
    AtFirstKey,
    /// Its catch-up did not go out (whole) or it missed data: at the next keyframe, as a
    /// fresh start (with the init segment again, for WebM).
    Resync,
}

#[derive(Debug)]
pub(super) struct Viewer<S> {
    pub(super) conn: ConnId,
    pub(super) sink: S,
    /// Since when every offer has found the queue full.
    full_since: Option<Instant>,
    /// Encoded modes: data was dropped; deliver nothing until the next keyframe.
    waiting_key: bool,
    /// The next frame sent is the first after a drop.
    resync_pending: bool,
    /// Audio: the next chunk sent is the first, or the first after a drop; it goes with
    /// `resync` and the decoder config.
    audio_resync: bool,
    pub(super) level: usize,
    /// The level the viewer was last told about (told after a successful send, when its
    /// queue has room).
    announced_level: usize,
    drops_in_window: u32,
    /// Pictures offered (sent or refused) within the window.
    offers_in_window: u32,
    window_start: Option<Instant>,
    last_change: Option<Instant>,
    last_drop: Option<Instant>,
    /// Bytes of the welcome (join reply and catch-up) still queued, at most: the picture cap
    /// allows them on top, since a joiner replaying the seed's buffer is behind by design and
    /// its first live frames must follow the buffer without a gap. The queue is first in,
    /// first out, so what is queued now bounds what is left of them.
    join_backlog: u64,
}

impl<S: ViewerSink> Viewer<S> {
    pub(super) fn new(conn: &str, sink: S, start: Start) -> Self {
        let join_backlog = sink.bytes_queued();
        Self {
            conn: conn.to_owned(),
            sink,
            full_since: None,
            waiting_key: start != Start::Synced,
            resync_pending: start == Start::Resync,
            audio_resync: true,
            level: 0,
            announced_level: 0,
            drops_in_window: 0,
            offers_in_window: 0,
            window_start: None,
            last_change: None,
            last_drop: None,
            join_backlog,
        }
    }

    /// Data went missing before it reached this node (a replica's gap): an encoded-video
    /// viewer waits for the next keyframe and restarts there.
    pub(super) fn lose_sync(&mut self) {
        self.waiting_key = true;
        self.resync_pending = true;
    }

    /// Whether this viewer gets `frame` at its current state and level.
    pub(super) fn wants(&self, frame: &Frame) -> bool {
        match frame.media {
            MediaMode::Images => frame.seq.is_multiple_of(1 << self.level),
            // Waiting for a keyframe. A viewer that dropped data gets the init prepended to
            // that keyframe, so it skips init segments; a joiner still needs them.
            _ if self.waiting_key => {
                frame.kind == FrameKind::Key || (frame.init && !self.resync_pending)
            }
            _ if frame.init => true,
            // Encoded video below level 0: key frames only (a WebM Cluster cannot be thinned,
            // so a WebM viewer gets each keyframe piece as a fresh start, see `resyncs_at`).
            _ => self.level == 0 || frame.kind == FrameKind::Key,
        }
    }

    /// Whether `frame` (which this viewer wants) restarts its decoder: the first keyframe
    /// after a drop, or any keyframe while it gets key frames only.
    pub(super) fn resyncs_at(&self, frame: &Frame) -> bool {
        frame.kind == FrameKind::Key
            && (self.resync_pending || (self.level > 0 && frame.media != MediaMode::Images))
    }

    /// Starts a new drop window if the current one (of `media`) is over.
    fn roll_window(&mut self, now: Instant, media: MediaMode) {
        let window = match media {
            MediaMode::Images => DROP_WINDOW,
            _ => ENCODED_DROP_WINDOW,
        };
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) > window {
            self.window_start = Some(now);
            self.drops_in_window = 0;
            self.offers_in_window = 0;
        }
    }

    fn note_drop(&mut self, now: Instant, media: MediaMode) {
        self.roll_window(now, media);
        self.drops_in_window += 1;
        self.offers_in_window += 1;
        self.last_change = Some(now);
        self.last_drop = Some(now);
        let (step_down, max_level) = match media {
            MediaMode::Images => (
                self.drops_in_window >= DROPS_TO_STEP_DOWN
                    && self.offers_in_window >= MIN_PICTURE_OFFERS
                    && self.drops_in_window * 2 >= self.offers_in_window,
                LEVELS - 1,
            ),
            _ => (self.drops_in_window >= DROPS_TO_STEP_DOWN, 1),
        };
        if step_down && self.level < max_level {
            self.level += 1;
            self.drops_in_window = 0;
            self.offers_in_window = 0;
            self.window_start = Some(now);
        }
    }

    fn note_sent(&mut self, now: Instant, media: MediaMode) {
        self.roll_window(now, media);
        self.offers_in_window += 1;
        if self.level > 0
            && self
                .last_change
                .is_none_or(|t| now.saturating_duration_since(t) >= CLEAR_TO_STEP_UP)
        {
            self.level -= 1;
            self.last_change = Some(now);
        }
    }
}

/// What happened when a frame was offered to one viewer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outcome {
    /// Not for this viewer at its state and level.
    Skipped,
    /// Queued; `announce`: tell the viewer its new level.
    Sent {
        announce: Option<usize>,
        /// Payload bytes queued (a WebM resync also carries the init segment).
        bytes: usize,
    },
    /// Its queue was full; `resync`: this drop started a wait for a keyframe; `evict`: full
    /// for longer than the stall timeout.
    Refused {
        resync: bool,
        evict: bool,
    },
    Closed,
}

/// One frame's offer, the same for every viewer.
pub(super) struct OfferCtx<'a> {
    pub(super) key: &'a str,
    pub(super) frame: &'a Arc<Frame>,
    pub(super) resync_bundle: Option<&'a Arc<Frame>>,
    pub(super) stall_timeout: Duration,
    /// Picture streams: bytes of the stream a viewer at level 0 may have queued
    /// (`RelayLimits::picture_queue`); halved per level, since it gets half as many.
    pub(super) picture_cap: Option<u64>,
    pub(super) now: Instant,
}

impl OfferCtx<'_> {
    pub(super) fn to<S: ViewerSink>(&self, v: &mut Viewer<S>) -> Outcome {
        if self.frame.track == Track::Audio {
            return self.audio_to(v);
        }
        let (frame, now) = (self.frame, self.now);
        if !v.wants(frame) {
            return Outcome::Skipped;
        }
        let resync = v.resyncs_at(frame);
        let to_send = match self.resync_bundle {
            Some(bundle) if resync => bundle,
            _ => frame,
        };
        // Two pictures fit whatever the cap (a burst reads as a slower rate than it is).
        let over_cap = self.picture_cap.is_some_and(|cap| {
            let len = to_send.data.len();
            let queued = v.sink.bytes_queued();
            v.join_backlog = v.join_backlog.min(queued);
            !super::fits(
                queued,
                len,
                (cap >> v.level).max(2 * len as u64) + v.join_backlog,
            )
        });
        let offered = if over_cap {
            Offer::Full
        } else {
            v.sink.offer(self.key, to_send, resync)
        };
        match offered {
            Offer::Sent => {
                v.full_since = None;
                if frame.kind != FrameKind::Delta {
                    v.waiting_key = false;
                    v.resync_pending = false;
                }
                v.note_sent(now, frame.media);
                let announce = (v.level != v.announced_level).then(|| {
                    v.announced_level = v.level;
                    v.level
                });
                Outcome::Sent {
                    announce,
                    bytes: to_send.data.len(),
                }
            }
            Offer::Full => {
                v.note_drop(now, frame.media);
                // Never deliver the rest of a GOP with a hole in it.
                let resync = frame.media != MediaMode::Images && !v.waiting_key;
                if resync {
                    v.waiting_key = true;
                    v.resync_pending = true;
                }
                let since = *v.full_since.get_or_insert(now);
                let evict = now.saturating_duration_since(since) >= self.stall_timeout;
                Outcome::Refused { resync, evict }
            }
            Offer::Closed => Outcome::Closed,
        }
    }

    /// Audio bypasses the levels and the keyframe wait: about 1/50 of the bytes, and what a
    /// viewer misses most. The sink keeps part of each viewer's queue for it (see `sink.rs`),
    /// so it still goes out when video no longer fits. A refusal moves no level (the video's
    /// drops do that) but counts towards the stall timeout like any other.
    fn audio_to<S: ViewerSink>(&self, v: &mut Viewer<S>) -> Outcome {
        let frame = self.frame;
        match v.sink.offer(self.key, frame, v.audio_resync) {
            Offer::Sent => {
                v.full_since = None;
                v.audio_resync = false;
                Outcome::Sent {
                    announce: None,
                    bytes: frame.data.len(),
                }
            }
            Offer::Full => {
                v.audio_resync = true;
                let since = *v.full_since.get_or_insert(self.now);
                let evict = self.now.saturating_duration_since(since) >= self.stall_timeout;
                Outcome::Refused {
                    resync: false,
                    evict,
                }
            }
            Offer::Closed => Outcome::Closed,
        }
    }
}
