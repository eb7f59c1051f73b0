//! One stream: its owner, its viewers, its catch-up state and its counters.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use streamhub_protocol::client::ChunkInfo;
use streamhub_protocol::server::{MediaMode, StreamInfo, StreamStatus, Track};
use streamhub_protocol::{FrameData, Millis};

use super::catchup::MediaError;
use super::catchup::{CatchUp, Cut};
use super::frame::{AudioPublish, Forwarded, Frame, FrameKind, Publish};
use super::viewer::{LEVELS, OfferCtx, Outcome, Start, Viewer};
use super::{
    ConnId, Delivery, NewStream, OwnerError, PublishError, RelayLimits, TokenBucket, ViewerSink,
};

/// What `GET /api/streams/{key}` and the note's `getStreamStats` report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamStats {
    pub(crate) viewer_count: usize,
    pub(crate) buffer_size: usize,
    pub(crate) fps: f64,
    pub(crate) bitrate_kbps: f64,
    pub(crate) started_at: Option<Millis>,
    pub(crate) frames_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) dropped_slow_viewer: u64,
    pub(crate) dropped_rate_limited: u64,
    pub(crate) dropped_too_large: u64,
    pub(crate) dropped_bad_media: u64,
    pub(crate) evicted: u64,
    pub(crate) media: MediaMode,
    /// Times a viewer of an encoded stream fell behind and restarted at a keyframe.
    pub(crate) resyncs: u64,
    /// A replica of another node's stream: frames that went missing on the way here (a jump
    /// in `seq`, or a new origin epoch), each a restart at the next keyframe for its viewers.
    pub(crate) gaps: u64,
    /// Viewers at each delivery level: `[full, reduced, minimal]` (see `docs/architecture.md`).
    pub(crate) levels: [usize; LEVELS],
    /// Frames in the GOP cache (encoded modes).
    pub(crate) gop_frames: usize,
    /// Audio chunks accepted (`stream:audio:send`); not in `framesIn`.
    pub(crate) audio_frames_in: u64,
    pub(crate) audio_bytes_in: u64,
    /// Audio chunks queued to viewers (one per viewer); not in `framesOut`.
    pub(crate) audio_frames_out: u64,
    /// Audio chunks dropped for viewers whose queue was full even with the audio reserve;
    /// not in `droppedSlowViewer`.
    pub(crate) audio_dropped_slow_viewer: u64,
    /// Audio chunks refused for their rate; not in `droppedRateLimited`.
    pub(crate) audio_dropped_rate_limited: u64,
    /// Audio chunks in the late joiners' catch-up.
    pub(crate) audio_buffer_size: usize,
}

/// A stream's audio track: the latest chunks for late joiners, the latest decoder config, its
/// own numbering and publish rate.
#[derive(Debug)]
struct Audio {
    /// The latest chunks, oldest first: at most `AUDIO_CATCHUP_CHUNKS` of at most
    /// `AUDIO_MAX_BYTES` each.
    ring: VecDeque<Arc<Frame>>,
    config: Option<Arc<serde_json::Value>>,
    next_seq: u64,
    /// A replica: the origin epoch of the last chunk relayed (chunks of older epochs, or
    /// already relayed ones, are skipped).
    epoch: u64,
    rate: TokenBucket,
}

impl Audio {
    fn new(now: Instant) -> Self {
        let per_sec = streamhub_protocol::AUDIO_MAX_CHUNKS_PER_SEC;
        Self {
            ring: VecDeque::with_capacity(streamhub_protocol::AUDIO_CATCHUP_CHUNKS),
            config: None,
            next_seq: 1,
            epoch: 0,
            rate: TokenBucket::new(per_sec, f64::from(per_sec), now),
        }
    }

    fn keep(&mut self, frame: &Arc<Frame>) {
        self.ring.push_back(Arc::clone(frame));
        while self.ring.len() > streamhub_protocol::AUDIO_CATCHUP_CHUNKS {
            self.ring.pop_front();
        }
    }
}

/// Least time between two keyframe requests to one streamer.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// The rate window behind `fps` and `bitrateKbps`.
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// A picture stream's age from which its rate bounds its viewers' queues
/// (`RelayLimits::picture_queue`).
const PICTURE_RATE_KNOWN: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct Stream<S> {
    pub(super) meta: NewStream,
    status: StreamStatus,
    started_at: Option<Millis>,
    /// While the owner is away: since when.
    orphaned_at: Option<Instant>,
    owner: Option<ConnId>,
    viewers: Vec<Viewer<S>>,
    media: CatchUp,
    audio: Audio,
    ring: VecDeque<Arc<Frame>>,
    ring_cap: usize,
    /// Bytes of the frames in the ring (bounded by `RelayLimits::buffer_bytes`).
    ring_bytes: usize,
    next_seq: u64,
    /// The newest video frame's `captureTime`: what a catch-up bundle carries.
    last_capture: Option<f64>,
    rate: TokenBucket,
    window: VecDeque<(Instant, usize)>,
    /// Bytes of the frames in `window`.
    window_bytes: usize,
    first_frame_at: Option<Instant>,
    last_keyframe_request: Option<Instant>,
    counted_viewers: usize,
    stats: StreamStats,
    /// This node's numbering of the stream (cluster mode: frames on the bus carry it, and a
    /// new origin after a failover starts a new one).
    epoch: u64,
    /// The stream is a replica of another node's: frames come from [`Stream::ingest`] only.
    replica: bool,
}

impl<S: ViewerSink> Stream<S> {
    pub(super) fn new(meta: NewStream, limits: &RelayLimits, now: Instant) -> Self {
        let owner = Some(meta.owner.clone());
        let epoch = meta.epoch;
        Self {
            epoch,
            replica: false,
            meta,
            status: StreamStatus::Created,
            started_at: None,
            orphaned_at: None,
            owner,
            viewers: Vec::new(),
            media: CatchUp::default(),
            audio: Audio::new(now),
            ring: VecDeque::with_capacity(limits.buffer_frames),
            ring_cap: limits.buffer_frames,
            ring_bytes: 0,
            next_seq: 1,
            last_capture: None,
            rate: TokenBucket::new(limits.max_fps, f64::from(limits.max_fps), now),
            window: VecDeque::new(),
            window_bytes: 0,
            first_frame_at: None,
            last_keyframe_request: None,
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
                bytes_out: 0,
                dropped_slow_viewer: 0,
                dropped_rate_limited: 0,
                dropped_too_large: 0,
                dropped_bad_media: 0,
                evicted: 0,
                media: MediaMode::Images,
                resyncs: 0,
                gaps: 0,
                levels: [0; LEVELS],
                gop_frames: 0,
                audio_frames_in: 0,
                audio_bytes_in: 0,
                audio_frames_out: 0,
                audio_dropped_slow_viewer: 0,
                audio_dropped_rate_limited: 0,
                audio_buffer_size: 0,
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

    pub(super) fn check_owner(&self, conn: &str) -> Result<(), OwnerError> {
        if self.is_owner(conn) {
            Ok(())
        } else {
            Err(OwnerError::NotOwner(self.meta.key.clone()))
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

    /// Ends the stream: its viewers are dropped (their sinks hold their sockets). Returns its
    /// last state and lifetime counters, read before the viewers go.
    pub(super) fn end(&mut self, now: Instant) -> super::Ended {
        let stats = self.stats(now);
        let mut info = self.info();
        info.status = StreamStatus::Ended;
        self.status = StreamStatus::Ended;
        self.owner = None;
        self.viewers.clear();
        super::Ended {
            info,
            stats,
            replica: self.replica,
        }
    }

    pub(super) fn webm_init(&self) -> Option<bytes::Bytes> {
        self.media.webm_init()
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
        crate::ids::secrets_match(&self.meta.publish_token, token)
    }

    pub(super) fn adopt(&mut self, conn: &str) {
        self.owner = Some(conn.to_owned());
        self.orphaned_at = None;
        if self.status == StreamStatus::Reconnecting {
            self.status = StreamStatus::Live;
        }
    }

    pub(super) fn add_viewer(&mut self, conn: &str, sink: S, start: Start) -> bool {
        if self.has_viewer(conn) {
            return false;
        }
        self.viewers.push(Viewer::new(conn, sink, start));
        true
    }

    /// The latest audio chunks, oldest first: a joiner's audio catch-up (its first chunk goes
    /// out with the config).
    pub(super) fn audio_catch_up(&self) -> Vec<Arc<Frame>> {
        self.audio.ring.iter().cloned().collect()
    }

    pub(super) fn media_mode(&self) -> MediaMode {
        self.media.mode
    }

    /// What a joiner gets: the ring (images) or the decodable catch-up (encoded modes), and
    /// whether the frames that follow are decodable for it.
    pub(super) fn catch_up(&self, wall: Millis) -> (Vec<Arc<Frame>>, bool) {
        if self.media.mode == MediaMode::Images {
            return (self.ring.iter().cloned().collect(), true);
        }
        let template = Frame {
            data: streamhub_protocol::FrameData::Binary(bytes::Bytes::new()),
            timestamp: wall,
            seq: self.next_seq.saturating_sub(1),
            media: self.media.mode,
            track: Track::Video,
            kind: FrameKind::Delta,
            init: false,
            init_len: 0,
            chunk: None,
            config: None,
            capture_time: self.last_capture,
            out: Default::default(),
        };
        self.media.catch_up(&template)
    }

    /// Removes connection `conn`'s viewer if `which` says so of its sink.
    pub(super) fn remove_viewer(&mut self, conn: &str, which: impl Fn(&S) -> bool) -> bool {
        let before = self.viewers.len();
        self.viewers.retain(|v| v.conn != conn || !which(&v.sink));
        before != self.viewers.len()
    }

    pub(super) fn viewer_queues(&self) -> impl Iterator<Item = u64> + '_ {
        self.viewers.iter().map(|v| v.sink.bytes_queued())
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
        incoming: Publish,
        limits: &RelayLimits,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, PublishError> {
        self.check_owner(conn)?;
        let size = incoming.data.len();
        if size > limits.max_frame_bytes {
            self.stats.dropped_too_large += 1;
            return Err(PublishError::TooLarge {
                size,
                max: limits.max_frame_bytes,
            });
        }
        if !self.rate.try_take(now) {
            self.stats.dropped_rate_limited += 1;
            return Err(PublishError::RateLimited {
                key: self.meta.key.clone(),
                max_fps: limits.max_fps,
            });
        }
        let chunk = incoming.chunk.clone();
        let capture_time = incoming.capture_time;
        let cuts = match self.media.cut(incoming) {
            Ok(cuts) => cuts,
            Err(e) => {
                self.stats.dropped_bad_media += 1;
                return Err(PublishError::BadMedia(e));
            }
        };
        let started = self.start(wall).then(|| self.info());
        self.count_in(size, now);

        let mut delivery = self.relay_cuts(cuts, chunk.as_ref(), capture_time, limits, now, wall);
        delivery.started = started;
        delivery.keyframe_wanted = delivery.keyframe_wanted && self.keyframe_request_due(now);
        Ok(delivery)
    }

    /// Relays one audio chunk: the stream's second track. Its own size limit, rate and
    /// numbering; kept in the short ring of latest chunks for late joiners; offered to every
    /// viewer whatever its level or keyframe wait (see `viewer.rs`).
    pub(super) fn publish_audio(
        &mut self,
        conn: &str,
        incoming: AudioPublish,
        limits: &RelayLimits,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, PublishError> {
        self.check_owner(conn)?;
        let size = incoming.data.len();
        if size > streamhub_protocol::AUDIO_MAX_BYTES {
            self.stats.dropped_too_large += 1;
            return Err(PublishError::TooLarge {
                size,
                max: streamhub_protocol::AUDIO_MAX_BYTES,
            });
        }
        if self.media.mode == MediaMode::Webm {
            self.stats.dropped_bad_media += 1;
            return Err(PublishError::BadMedia(MediaError::AudioBesideWebm));
        }
        let new_config = incoming.config.map(Arc::new);
        if new_config.is_none() && self.audio.config.is_none() {
            self.stats.dropped_bad_media += 1;
            return Err(PublishError::BadMedia(MediaError::AudioWithoutConfig));
        }
        if !self.audio.rate.try_take(now) {
            self.stats.audio_dropped_rate_limited += 1;
            return Err(PublishError::AudioRateLimited {
                key: self.meta.key.clone(),
                max: streamhub_protocol::AUDIO_MAX_CHUNKS_PER_SEC,
            });
        }
        // A config equal to the one kept is no change: a sender may repeat it on every chunk.
        let changed = new_config.is_some() && new_config != self.audio.config;
        if changed {
            self.audio.config = new_config;
        }
        let started = self.start(wall).then(|| self.info());
        self.stats.audio_frames_in += 1;
        self.stats.audio_bytes_in += size as u64;
        let frame = self.audio_frame(
            incoming.data,
            wall,
            self.audio.next_seq,
            changed,
            Some(incoming.chunk),
            None,
        );
        self.audio.next_seq += 1;
        let mut delivery = self.audio_delivery(frame.seq);
        self.audio.keep(&frame);
        self.deliver(&frame, None, limits, now, &mut delivery);
        delivery.frames.push(frame);
        delivery.started = started;
        Ok(delivery)
    }

    /// Relays an audio chunk of a replica, as the origin numbered it. Chunks already relayed
    /// (the catch-up read and the live read overlap) are skipped; a gap needs nothing (every
    /// Opus packet decodes on its own; the viewers' decoders conceal the loss).
    fn ingest_audio(&mut self, f: Forwarded, limits: &RelayLimits, now: Instant) -> Delivery {
        let mut delivery = self.audio_delivery(f.seq);
        let a = &mut self.audio;
        if f.epoch < a.epoch || (f.epoch == a.epoch && f.seq < a.next_seq) {
            return delivery;
        }
        a.epoch = f.epoch;
        a.next_seq = f.seq + 1;
        let changed = f.config.is_some() && f.config != self.audio.config;
        if changed {
            self.audio.config.clone_from(&f.config);
        }
        self.stats.audio_frames_in += 1;
        self.stats.audio_bytes_in += f.data.len() as u64;
        delivery.started = self.start(f.timestamp).then(|| self.info());
        let frame = self.audio_frame(f.data, f.timestamp, f.seq, changed, f.chunk, f.capture_time);
        self.audio.keep(&frame);
        self.deliver(&frame, None, limits, now, &mut delivery);
        delivery
    }

    /// An audio chunk as it is kept and sent: a key frame when it brings a new config, which
    /// it carries (the current one) either way.
    fn audio_frame(
        &self,
        data: FrameData,
        timestamp: Millis,
        seq: u64,
        changed: bool,
        chunk: Option<ChunkInfo>,
        capture_time: Option<f64>,
    ) -> Arc<Frame> {
        Arc::new(Frame {
            data,
            timestamp,
            seq,
            media: self.media.mode,
            track: Track::Audio,
            kind: if changed {
                FrameKind::Key
            } else {
                FrameKind::Delta
            },
            init: false,
            init_len: 0,
            chunk,
            config: self.audio.config.clone(),
            capture_time,
            out: Default::default(),
        })
    }

    /// What an audio chunk numbered `seq` did, to be filled in.
    fn audio_delivery(&self, seq: u64) -> Delivery {
        let mut delivery = Delivery::empty(seq, self.media.mode);
        delivery.track = Track::Audio;
        delivery.epoch = self.epoch;
        delivery
    }

    /// Numbers, remembers and delivers cut frames (the part of a publish after the checks).
    fn relay_cuts(
        &mut self,
        cuts: Vec<Cut>,
        chunk: Option<&ChunkInfo>,
        capture_time: Option<f64>,
        limits: &RelayLimits,
        now: Instant,
        wall: Millis,
    ) -> Delivery {
        let mut delivery = Delivery::empty(self.next_seq.saturating_sub(1), self.media.mode);
        delivery.epoch = self.epoch;
        if capture_time.is_some() {
            self.last_capture = capture_time;
        }
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
                track: Track::Video,
                kind,
                init,
                init_len: if init { self.media.init_len() } else { 0 },
                chunk: chunk.cloned(),
                config: (kind == FrameKind::Key)
                    .then(|| self.media.config.clone())
                    .flatten(),
                capture_time,
                out: Default::default(),
            });
            self.next_seq += 1;
            delivery.seq = frame.seq;
            self.keep(&frame, raw.clone(), limits);
            self.deliver(&frame, raw, limits, now, &mut delivery);
            delivery.frames.push(frame);
        }
        delivery.media = self.media.mode;
        delivery
    }

    /// Keeps a numbered frame for late joiners: in the ring (pictures) or the GOP cache.
    fn keep(&mut self, frame: &Arc<Frame>, raw: Option<bytes::Bytes>, limits: &RelayLimits) {
        if self.media.mode == MediaMode::Images {
            if self.ring_cap > 0 {
                self.ring.push_back(Arc::clone(frame));
                self.ring_bytes += frame.data.len();
                // Within the frame count and the byte cap, the newest frame always kept.
                while self.ring.len() > self.ring_cap
                    || (self.ring_bytes > limits.buffer_bytes && self.ring.len() > 1)
                {
                    if let Some(old) = self.ring.pop_front() {
                        self.ring_bytes -= old.data.len();
                    }
                }
            }
        } else {
            self.ring.clear();
            self.ring_bytes = 0;
            self.media.remember(frame, raw, limits.max_gop_bytes);
        }
    }

    /// Counts a frame in and keeps the rate window (fps and bitrate).
    fn count_in(&mut self, size: usize, now: Instant) {
        self.stats.frames_in += 1;
        self.stats.bytes_in += size as u64;
        self.first_frame_at.get_or_insert(now);
        self.window.push_back((now, size));
        self.window_bytes += size;
        while let Some(&(t, old)) = self.window.front() {
            if now.saturating_duration_since(t) < RATE_WINDOW {
                break;
            }
            self.window.pop_front();
            self.window_bytes -= old;
        }
    }

    /// The span the rate window covers: its length, or the stream's age while younger (at
    /// least 0.5 s, so a new stream does not read as slow or as a burst).
    fn rate_span(&self, now: Instant) -> Duration {
        self.first_frame_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default()
            .clamp(Duration::from_millis(500), RATE_WINDOW)
    }

    /// How many bytes of this picture stream `limits.picture_queue` is at its recent rate;
    /// none while the stream is younger than [`PICTURE_RATE_KNOWN`] (its first frames, often
    /// a burst, would read as a slow rate and a small cap).
    fn picture_cap(&self, frame: &Frame, limits: &RelayLimits, now: Instant) -> Option<u64> {
        let t = limits.picture_queue?;
        let age = now.saturating_duration_since(self.first_frame_at?);
        (frame.media == MediaMode::Images
            && frame.track == Track::Video
            && age >= PICTURE_RATE_KNOWN)
            .then(|| {
                let rate = self.window_bytes as f64 / self.rate_span(now).as_secs_f64();
                (rate * t.as_secs_f64()) as u64
            })
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(super) fn is_replica(&self) -> bool {
        self.replica
    }

    /// A replica of another node's stream: no owner here; frames come through
    /// [`Stream::ingest`], numbered by the origin.
    pub(super) fn replica(
        meta: NewStream,
        info: &StreamInfo,
        limits: &RelayLimits,
        now: Instant,
    ) -> Self {
        let mut s = Self::new(meta, limits, now);
        s.owner = None;
        s.replica = true;
        s.status = info.status;
        s.started_at = info.started_at;
        s.next_seq = 0;
        s
    }

    /// Mirrors the origin's state (live, reconnecting) on a replica.
    pub(super) fn mirror(&mut self, info: &StreamInfo) {
        self.status = info.status;
        self.started_at = info.started_at;
        self.meta.title.clone_from(&info.title);
    }

    /// Relays a frame the origin cut and numbered (this stream is a replica). A jump in `seq`
    /// or a new epoch is a gap: encoded-video viewers restart at the next keyframe. A frame
    /// older than the last one relayed (the catch-up read and the live read overlap) is
    /// skipped.
    pub(super) fn ingest(
        &mut self,
        f: Forwarded,
        limits: &RelayLimits,
        now: Instant,
    ) -> Result<Delivery, PublishError> {
        if f.track == Track::Audio {
            return Ok(self.ingest_audio(f, limits, now));
        }
        let same_epoch = f.epoch == self.epoch;
        if same_epoch && f.seq < self.next_seq {
            return Ok(Delivery::empty(f.seq, self.media.mode));
        }
        let known = self.next_seq > 0;
        let gap = known && (!same_epoch || f.seq != self.next_seq);
        if gap {
            self.stats.gaps += 1;
            for v in &mut self.viewers {
                v.lose_sync();
            }
        }
        self.epoch = f.epoch;
        self.next_seq = f.seq + 1;
        let size = f.data.len();
        let raw = match self
            .media
            .forwarded(f.media, &f.data, f.init_len, f.config.as_ref())
        {
            Ok(raw) => raw,
            Err(e) => {
                self.stats.dropped_bad_media += 1;
                return Err(PublishError::BadMedia(e));
            }
        };
        let started = self.start(f.timestamp).then(|| self.info());
        self.count_in(size, now);
        if f.capture_time.is_some() {
            self.last_capture = f.capture_time;
        }
        let frame = Arc::new(Frame {
            data: f.data,
            timestamp: f.timestamp,
            seq: f.seq,
            media: f.media,
            track: Track::Video,
            kind: f.kind,
            init: f.init_len.is_some(),
            init_len: f.init_len.unwrap_or(0),
            chunk: f.chunk,
            config: f.config,
            capture_time: f.capture_time,
            out: Default::default(),
        });
        let mut delivery = Delivery::empty(f.seq, f.media);
        delivery.epoch = self.epoch;
        delivery.gap = gap;
        self.keep(&frame, raw.clone(), limits);
        self.deliver(&frame, raw, limits, now, &mut delivery);
        delivery.started = started;
        Ok(delivery)
    }

    /// Seeds a replica's WebM init segment.
    pub(super) fn seed_init(&mut self, init: bytes::Bytes, text: bool) {
        self.media.seed_webm_init(init, text);
    }

    /// The origin becomes a replica (its streamer resumed on another node). Returns false if
    /// it was one already.
    pub(super) fn demote(&mut self, epoch: u64) -> bool {
        if self.replica {
            return false;
        }
        self.replica = true;
        self.owner = None;
        self.orphaned_at = None;
        self.epoch = epoch;
        // The new origin's first frame continues the numbering: no gap unless one happens.
        true
    }

    /// A replica becomes the origin: its streamer resumed on this node. Numbering goes on
    /// from the last frame relayed, in a new epoch.
    pub(super) fn take_over(&mut self, conn: &str, epoch: u64, next_seq: u64) {
        self.replica = false;
        self.epoch = epoch;
        self.next_seq = self.next_seq.max(next_seq).max(1);
        self.owner = Some(conn.to_owned());
        self.orphaned_at = None;
        self.status = if self.started_at.is_some() {
            StreamStatus::Live
        } else {
            StreamStatus::Created
        };
    }

    /// The streamer stopped: relays what the WebM parser still holds (a recording ends with a
    /// Cluster it could only emit once the next one began). Other modes hold nothing.
    pub(super) fn flush(
        &mut self,
        conn: &str,
        limits: &RelayLimits,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, OwnerError> {
        self.check_owner(conn)?;
        let cuts = self.media.finish();
        Ok(self.relay_cuts(cuts, None, self.last_capture, limits, now, wall))
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
    /// the outcomes into the stream's counters. Each viewer's sink shares the frame's encoded
    /// packet (built once, see `sink.rs`), so a send per viewer costs a reference count and a
    /// queue slot, not an encoding. One thread: serving 2000 viewers from a rayon pool measured
    /// worse on two cores (p99 74 vs 25 ms, 0.85 vs 0.73 cores): the sends wake the viewers' writer
    /// tasks, which need the other core.
    fn deliver(
        &mut self,
        frame: &Arc<Frame>,
        raw: Option<bytes::Bytes>,
        limits: &RelayLimits,
        now: Instant,
        delivery: &mut Delivery,
    ) {
        let key = &self.meta.key;
        // WebM viewers restarting at a keyframe need the init segment again (their player
        // resets its parser on `resync`); built once per frame, only when someone needs it.
        let resync_bundle = (frame.media == MediaMode::Webm
            && frame.track == Track::Video
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
            picture_cap: self.picture_cap(frame, limits, now),
            now,
        };
        let stats = &mut self.stats;
        let audio = frame.track == Track::Audio;
        let (mut reached, mut sent_bytes) = (0, 0);
        self.viewers.retain_mut(|v| match offer.to(v) {
            Outcome::Skipped => true,
            Outcome::Sent { announce, bytes } => {
                if let Some(level) = announce {
                    delivery.level_changes.push((v.conn.clone(), level));
                }
                reached += 1;
                sent_bytes += bytes as u64;
                true
            }
            Outcome::Refused { resync, evict } => {
                if audio {
                    stats.audio_dropped_slow_viewer += 1;
                } else {
                    stats.dropped_slow_viewer += 1;
                }
                delivery.dropped_slow += 1;
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
        });
        // The one place a frame sent is counted: the stream's totals and this delivery's.
        if audio {
            stats.audio_frames_out += reached;
        } else {
            stats.frames_out += reached;
        }
        stats.bytes_out += sent_bytes;
        delivery.frames_out += reached;
        delivery.bytes_out += sent_bytes;
        delivery.reached = delivery.reached.max(reached as usize);
    }

    pub(super) fn stats(&self, now: Instant) -> StreamStats {
        // Frames of the last window, over the window, or over the stream's age while it is
        // younger than that (so a new stream does not read as slow).
        let recent = self
            .window
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) < RATE_WINDOW);
        let (frames, bytes) = recent.fold((0usize, 0usize), |(n, b), (_, size)| (n + 1, b + size));
        let span = self.rate_span(now).as_secs_f64();
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
            audio_buffer_size: self.audio.ring.len(),
            ..self.stats.clone()
        }
    }
}
