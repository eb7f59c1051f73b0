use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use streamhub_protocol::Millis;
use streamhub_protocol::client::ChunkInfo;
use streamhub_protocol::server::{MediaMode, StreamInfo, StreamStatus};

use super::media::{Cut, Frame, FrameKind, Incoming, MediaState};
use super::{
    ConnId, Delivery, GroupOffer, GroupSink, NewStream, Offer, RelayError, RelayLimits,
    TokenBucket, ViewerSink,
};

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
    pub dropped_bad_media: u64,
    pub evicted: u64,
    pub media: MediaMode,
    /// Times a viewer of an encoded stream fell behind and restarted at a keyframe.
    pub resyncs: u64,
    /// Viewers at each delivery level: `[full, reduced, minimal]` (see `docs/architecture.md`).
    pub levels: [usize; LEVELS],
    /// Frames in the GOP cache (encoded modes).
    pub gop_frames: usize,
}

/// Least time between two keyframe requests to one streamer.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// Delivery levels: 0 every frame; 1 every 2nd picture, or key frames only (encoded video);
/// 2 every 4th picture.
pub const LEVELS: usize = 3;
/// Drops within the drop window that move a viewer one level down.
const DROPS_TO_STEP_DOWN: u32 = 3;
/// Images: refusals are frames, many a second when a viewer is slow.
const DROP_WINDOW: Duration = Duration::from_secs(2);
/// Encoded video: after a refusal a viewer is offered only the next keyframe (one a second or
/// two), so refusals are counted over a longer window: three resyncs in 10 s step down.
const ENCODED_DROP_WINDOW: Duration = Duration::from_secs(10);
/// Time without drops before a viewer moves one level back up.
const CLEAR_TO_STEP_UP: Duration = Duration::from_secs(5);
/// A shared send only says how many member queues were full, not whose. After one that found
/// any full (or gone), the next frame goes viewer by viewer to everyone, members included (a
/// probe): the slow member is found one frame later and leaves the group. Every this many
/// frames (by `seq`) a probe goes out anyway, as a safety net (~1 s at 30 fps).
pub const PROBE_EVERY: u64 = 32;

#[derive(Debug)]
struct Viewer<S> {
    conn: ConnId,
    sink: S,
    /// Since when every offer has found the queue full.
    full_since: Option<Instant>,
    /// Encoded modes: data was dropped; deliver nothing until the next keyframe.
    waiting_key: bool,
    /// The next frame sent is the first after a drop.
    resync_pending: bool,
    level: usize,
    /// The level the viewer was last told about (told after a successful send, when its
    /// queue has room).
    announced_level: usize,
    drops_in_window: u32,
    window_start: Option<Instant>,
    last_change: Option<Instant>,
    last_drop: Option<Instant>,
    /// Member of the stream's group (gets picture frames by the shared send).
    grouped: bool,
}

impl<S: ViewerSink> Viewer<S> {
    fn new(conn: &str, sink: S, synced: bool) -> Self {
        Self {
            conn: conn.to_owned(),
            sink,
            full_since: None,
            waiting_key: !synced,
            resync_pending: false,
            level: 0,
            announced_level: 0,
            drops_in_window: 0,
            window_start: None,
            last_change: None,
            last_drop: None,
            grouped: false,
        }
    }

    /// Whether this viewer gets `frame` at its current state and level.
    fn wants(&self, frame: &Frame) -> bool {
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
    fn resyncs_at(&self, frame: &Frame) -> bool {
        frame.kind == FrameKind::Key
            && (self.resync_pending || (self.level > 0 && frame.media != MediaMode::Images))
    }

    /// Whether this viewer can take picture frames by the shared send: level 0 and nothing
    /// refused for [`CLEAR_TO_STEP_UP`].
    fn shareable(&self, now: Instant) -> bool {
        self.level == 0
            && self.sink.groupable()
            && self.full_since.is_none()
            && self
                .last_drop
                .is_none_or(|t| now.saturating_duration_since(t) >= CLEAR_TO_STEP_UP)
    }

    fn note_drop(&mut self, now: Instant, media: MediaMode) {
        let (window, max_level) = match media {
            MediaMode::Images => (DROP_WINDOW, LEVELS - 1),
            _ => (ENCODED_DROP_WINDOW, 1),
        };
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) > window {
            self.window_start = Some(now);
            self.drops_in_window = 0;
        }
        self.drops_in_window += 1;
        self.last_change = Some(now);
        self.last_drop = Some(now);
        if self.drops_in_window >= DROPS_TO_STEP_DOWN && self.level < max_level {
            self.level += 1;
            self.drops_in_window = 0;
            self.window_start = Some(now);
        }
    }

    fn note_sent(&mut self, now: Instant) {
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
enum Outcome {
    /// Not for this viewer at its state and level.
    Skipped,
    /// Queued; `announce`: tell the viewer its new level.
    Sent {
        announce: Option<usize>,
    },
    /// Its queue was full; `resync`: this drop started a wait for a keyframe; `evict`: full
    /// for longer than the stall timeout.
    Refused {
        resync: bool,
        evict: bool,
    },
    Closed,
}

/// One frame's offer, the same for every viewer (shared by the fan-out threads).
struct OfferCtx<'a> {
    key: &'a str,
    frame: &'a Arc<Frame>,
    resync_bundle: Option<&'a Arc<Frame>>,
    stall_timeout: Duration,
    now: Instant,
}

impl OfferCtx<'_> {
    fn to<S: ViewerSink>(&self, v: &mut Viewer<S>) -> Outcome {
        let (frame, now) = (self.frame, self.now);
        if !v.wants(frame) {
            return Outcome::Skipped;
        }
        let resync = v.resyncs_at(frame);
        let to_send = match self.resync_bundle {
            Some(bundle) if resync => bundle,
            _ => frame,
        };
        match v.sink.offer(self.key, to_send, resync) {
            Offer::Sent => {
                v.full_since = None;
                if frame.kind != FrameKind::Delta {
                    v.waiting_key = false;
                    v.resync_pending = false;
                }
                v.note_sent(now);
                let announce = (v.level != v.announced_level).then(|| {
                    v.announced_level = v.level;
                    v.level
                });
                Outcome::Sent { announce }
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
    media: MediaState,
    ring: VecDeque<Arc<Frame>>,
    ring_cap: usize,
    next_seq: u64,
    rate: TokenBucket,
    window: VecDeque<(Instant, usize)>,
    first_frame_at: Option<Instant>,
    last_keyframe_request: Option<Instant>,
    counted_viewers: usize,
    /// The last shared send found a member queue full or gone: probe with the next frame.
    probe_next: bool,
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
            media: MediaState::default(),
            ring: VecDeque::with_capacity(limits.buffer_frames),
            ring_cap: limits.buffer_frames,
            next_seq: 1,
            rate: TokenBucket::new(limits.max_fps, f64::from(limits.max_fps), now),
            window: VecDeque::new(),
            first_frame_at: None,
            last_keyframe_request: None,
            counted_viewers: 0,
            probe_next: false,
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
                dropped_bad_media: 0,
                evicted: 0,
                media: MediaMode::Images,
                resyncs: 0,
                levels: [0; LEVELS],
                gop_frames: 0,
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

    pub(super) fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
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

    pub(super) fn end(&mut self, group: &impl GroupSink<S>) {
        self.status = StreamStatus::Ended;
        self.owner = None;
        for v in self.viewers.iter().filter(|v| v.grouped) {
            group.leave(&self.meta.key, &v.sink);
        }
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

    pub(super) fn add_viewer(&mut self, conn: &str, sink: S, synced: bool) -> bool {
        if self.has_viewer(conn) {
            return false;
        }
        self.viewers.push(Viewer::new(conn, sink, synced));
        true
    }

    /// Looks at connection `conn`'s viewer sink.
    pub(super) fn viewer_sink<R>(&self, conn: &str, f: impl FnOnce(&S) -> R) -> Option<R> {
        self.viewers
            .iter()
            .find(|v| v.conn == conn)
            .map(|v| f(&v.sink))
    }

    pub(super) fn media_mode(&self) -> MediaMode {
        self.media.mode
    }

    /// What a joiner gets: the ring (images) or the decodable catch-up (encoded modes), and
    /// whether the frames that follow are decodable for it.
    pub(super) fn catch_up(&self, wall: Millis) -> (Vec<Arc<Frame>>, bool) {
        if self.media.mode == MediaMode::Images {
            return (self.buffer(), true);
        }
        let template = Frame {
            data: streamhub_protocol::FrameData::Binary(bytes::Bytes::new()),
            timestamp: wall,
            seq: self.next_seq.saturating_sub(1),
            media: self.media.mode,
            kind: FrameKind::Delta,
            init: false,
            chunk: None,
            config: None,
            out: Default::default(),
        };
        self.media.catch_up(&template)
    }

    /// Removes connection `conn`'s viewer if `which` says so of its sink.
    pub(super) fn remove_viewer(
        &mut self,
        conn: &str,
        which: impl Fn(&S) -> bool,
        group: &impl GroupSink<S>,
    ) -> bool {
        let before = self.viewers.len();
        let key = &self.meta.key;
        self.viewers.retain(|v| {
            if v.conn != conn || !which(&v.sink) {
                return true;
            }
            if v.grouped {
                group.leave(key, &v.sink);
            }
            false
        });
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
        incoming: Incoming,
        limits: &RelayLimits,
        group: &impl GroupSink<S>,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, RelayError> {
        self.check_owner(conn)?;
        let size = incoming.data.len();
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
        let chunk = incoming.chunk.clone();
        let cuts = match self.media.cut(incoming) {
            Ok(cuts) => cuts,
            Err(e) => {
                self.stats.dropped_bad_media += 1;
                return Err(RelayError::BadMedia(e.to_string()));
            }
        };
        let started = self.start(wall).then(|| self.info());
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

        let mut delivery = self.relay_cuts(cuts, chunk.as_ref(), limits, group, now, wall);
        delivery.started = started;
        delivery.keyframe_wanted = delivery.keyframe_wanted && self.keyframe_request_due(now);
        Ok(delivery)
    }

    /// Numbers, remembers and delivers cut frames (the part of a publish after the checks).
    fn relay_cuts(
        &mut self,
        cuts: Vec<Cut>,
        chunk: Option<&ChunkInfo>,
        limits: &RelayLimits,
        group: &impl GroupSink<S>,
        now: Instant,
        wall: Millis,
    ) -> Delivery {
        let mut delivery = Delivery {
            seq: self.next_seq.saturating_sub(1),
            reached: 0,
            evicted: Vec::new(),
            started: None,
            keyframe_wanted: false,
            level_changes: Vec::new(),
            shared_sent: 0,
            shared_full: 0,
        };
        for Cut {
            data,
            kind,
            init,
            raw,
        } in cuts
        {
            let frame = Arc::new(Frame {
                data,
                timestamp: wall,
                seq: self.next_seq,
                media: self.media.mode,
                kind,
                init,
                chunk: chunk.cloned(),
                config: (kind == FrameKind::Key)
                    .then(|| self.media.config.clone())
                    .flatten(),
                out: Default::default(),
            });
            self.next_seq += 1;
            delivery.seq = frame.seq;
            if self.media.mode == MediaMode::Images {
                if self.ring_cap > 0 {
                    if self.ring.len() == self.ring_cap {
                        self.ring.pop_front();
                    }
                    self.ring.push_back(Arc::clone(&frame));
                }
            } else {
                self.ring.clear();
                self.media
                    .remember(&frame, raw.clone(), limits.max_gop_bytes);
            }
            self.deliver(&frame, raw, limits, group, now, &mut delivery);
        }
        delivery
    }

    /// The streamer stopped: relays what the WebM parser still holds (a recording ends with a
    /// Cluster it could only emit once the next one began). Other modes hold nothing.
    pub(super) fn flush_media(
        &mut self,
        conn: &str,
        limits: &RelayLimits,
        group: &impl GroupSink<S>,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, RelayError> {
        self.check_owner(conn)?;
        let cuts = self.media.finish();
        Ok(self.relay_cuts(cuts, None, limits, group, now, wall))
    }

    /// WebCodecs streams can be asked for a keyframe (like a WebRTC PLI); at most once a
    /// second per stream.
    pub(super) fn keyframe_request_due(&mut self, now: Instant) -> bool {
        let due = self.media.mode == MediaMode::Webcodecs
            && self
                .last_keyframe_request
                .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        if due {
            self.last_keyframe_request = Some(now);
        }
        due
    }

    /// Offers one frame to every viewer, applying each viewer's state and level, then folds
    /// the outcomes into the stream's counters. Picture frames reach the group members (level
    /// 0, nothing refused lately) by one shared send, except probe frames (see
    /// [`PROBE_EVERY`]), which go viewer by viewer to everyone so a member that fell behind
    /// is found and leaves the group. One thread: serving 2000 viewers from a rayon pool measured worse on
    /// two cores (p99 74 vs 25 ms, 0.85 vs 0.73 cores): the sends wake the viewers' writer
    /// tasks, which need the other core.
    fn deliver(
        &mut self,
        frame: &Arc<Frame>,
        raw: Option<bytes::Bytes>,
        limits: &RelayLimits,
        group: &impl GroupSink<S>,
        now: Instant,
        delivery: &mut Delivery,
    ) {
        let key = &self.meta.key;
        let pictures = frame.media == MediaMode::Images;
        let probe = self.probe_next || frame.seq.is_multiple_of(PROBE_EVERY);
        let shared = group.enabled() && pictures && !probe;
        let mut members = 0;
        for v in &mut self.viewers {
            // On probe frames membership stays as it is; encoded video has no group.
            let member = if shared {
                v.shareable(now)
            } else {
                v.grouped && pictures
            };
            if member != v.grouped {
                if member {
                    group.join(key, &v.sink);
                } else {
                    group.leave(key, &v.sink);
                }
                v.grouped = member;
            }
            members += usize::from(member);
        }
        let group_offer = if shared && members > 0 {
            group.broadcast(key, frame)
        } else {
            GroupOffer::default()
        };
        self.probe_next = group_offer.full + group_offer.closed > 0;
        // WebM viewers restarting at a keyframe need the init segment again (their player
        // resets its parser on `resync`); built once per frame, only when someone needs it.
        let resync_bundle = (frame.media == MediaMode::Webm
            && !frame.init
            && self
                .viewers
                .iter()
                .any(|v| v.wants(frame) && v.resyncs_at(frame)))
        .then(|| {
            let extra: Vec<bytes::Bytes> = raw.iter().cloned().collect();
            Arc::new(
                self.media
                    .webm_bundle(&extra, frame)
                    .unwrap_or_else(|| (**frame).clone()),
            )
        });
        let offer = OfferCtx {
            key,
            frame,
            resync_bundle: resync_bundle.as_ref(),
            stall_timeout: limits.stall_timeout,
            now,
        };
        let outcomes: Vec<Outcome> = self
            .viewers
            .iter_mut()
            .map(|v| {
                if shared && v.grouped {
                    Outcome::Skipped
                } else {
                    offer.to(v)
                }
            })
            .collect();
        let stats = &mut self.stats;
        let shared_reached = if shared {
            members.saturating_sub(group_offer.full + group_offer.closed)
        } else {
            0
        };
        stats.dropped_slow_viewer += group_offer.full as u64;
        delivery.shared_sent += shared_reached;
        delivery.shared_full += group_offer.full;
        let mut reached = shared_reached;
        let mut outcomes = outcomes.into_iter();
        self.viewers.retain_mut(|v| {
            let keep = match outcomes.next().unwrap_or(Outcome::Skipped) {
                Outcome::Skipped => true,
                Outcome::Sent { announce } => {
                    if let Some(level) = announce {
                        delivery.level_changes.push((v.conn.clone(), level));
                    }
                    reached += 1;
                    true
                }
                Outcome::Refused { resync, evict } => {
                    stats.dropped_slow_viewer += 1;
                    if resync {
                        stats.resyncs += 1;
                        delivery.keyframe_wanted = true;
                    }
                    if evict {
                        stats.evicted += 1;
                        delivery.evicted.push(v.conn.clone());
                    }
                    !evict
                }
                Outcome::Closed => false,
            };
            // A member a probe found full (or gone) leaves the group at once.
            if v.grouped && (!keep || !v.shareable(now)) {
                group.leave(key, &v.sink);
                v.grouped = false;
            }
            keep
        });
        stats.frames_out += reached as u64;
        delivery.reached = delivery.reached.max(reached);
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
            media: self.media.mode,
            levels: self.viewers.iter().fold([0; LEVELS], |mut acc, v| {
                acc[v.level] += 1;
                acc
            }),
            gop_frames: self.media.gop.len(),
            ..self.stats.clone()
        }
    }
}
