//! The fan-out core: streams, viewers, the catch-up state and the slow-viewer policy.
//!
//! Sans-IO: no sockets, no clock, no async. Callers pass the time in (`now: Instant` for
//! durations, `wall: Millis` for timestamps on the wire), and every outgoing frame leaves
//! through a [`ViewerSink`] (one viewer), the seam to the network. The tests drive it with recording sinks and a made-up clock.
//!
//! Every operation has its own error type, so callers match exhaustively, and its result
//! carries everything the caller needs next (a publish says the stream's mode and what to
//! count; a join says who owns the stream), so no handler asks the relay twice. The relay is
//! the one place that counts a frame sent: [`Delivery`] says how many, and the caller records
//! that in the metrics.
//!
//! Method names follow the design note's `StreamDistributor` (`register_stream`,
//! `add_viewer`, `get_stream_stats`, ...).

mod catchup;
mod frame;
mod rate;
mod stream;
mod viewer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use streamhub_protocol::server::{MediaMode, StreamInfo, Track, UserRef};
use streamhub_protocol::{ErrorCode, Millis};

pub(crate) use catchup::MediaError;
pub(crate) use frame::{AudioPublish, Forwarded, Frame, FrameKind, Publish};
pub(crate) use rate::TokenBucket;
use stream::Stream;
pub(crate) use stream::StreamStats;
pub(crate) use viewer::LEVELS;
use viewer::Start;

/// Identifies one client connection.
pub(crate) type ConnId = String;

/// What became of a frame offered to one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued for sending.
    Sent,
    /// The viewer's bounded queue is full: this frame is dropped for this viewer only.
    Full,
    /// The viewer is gone.
    Closed,
}

/// Where a viewer's frames go. Implementations must not block: a full queue answers
/// [`Offer::Full`] at once.
pub(crate) trait ViewerSink: Send + Sync + 'static {
    /// `resync`: this viewer missed data and restarts decoding at this (key)frame.
    fn offer(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer;
    /// Bytes waiting in this viewer's queue (for the metrics and the picture cap).
    fn bytes_queued(&self) -> u64 {
        0
    }
}

/// Whether `len` more bytes fit a viewer's budget of `budget` with `queued` already waiting.
/// A frame larger than the whole budget still goes into an empty queue, so a stream whose frames
/// outgrow the budget slows its viewers down instead of starving them: a viewer holds at most
/// the budget plus one frame.
pub(crate) fn fits(queued: u64, len: usize, budget: u64) -> bool {
    queued == 0 || queued.saturating_add(len as u64) <= budget
}

/// Limits the relay enforces (part of the server's `Config`).
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// Frames kept for late joiners (the seed's 30).
    pub buffer_frames: usize,
    /// Bytes those frames may hold at most (the newest frame is always kept).
    pub buffer_bytes: usize,
    pub max_frame_bytes: usize,
    /// Publish rate per stream; the bucket holds one second's worth.
    pub max_fps: u32,
    /// A viewer whose queue stays full this long is evicted.
    pub stall_timeout: Duration,
    /// How long a stream waits for its streamer to come back.
    pub grace: Duration,
    /// Most streams at once.
    pub max_streams: usize,
    /// Largest GOP kept for late joiners of encoded streams.
    pub max_gop_bytes: usize,
    /// Picture streams: a viewer's queue holds at most this much of the stream, the picture
    /// being offered included (its bytes at the stream's recent rate, halved per delivery
    /// level; an empty queue takes any picture); newer pictures are refused until it drains.
    /// `None`: only the byte and packet budgets.
    pub picture_queue: Option<Duration>,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            buffer_frames: 30,
            buffer_bytes: 16 * 1024 * 1024,
            max_frame_bytes: 2 * 1024 * 1024,
            max_fps: 60,
            stall_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            max_streams: 1000,
            max_gop_bytes: 8 * 1024 * 1024,
            picture_queue: Some(Duration::from_millis(300)),
        }
    }
}

/// The error code a refusal travels with (`error` event, failed ack, HTTP body).
pub(crate) trait Coded: std::error::Error {
    fn code(&self) -> ErrorCode;
}

/// No stream with this key (never existed, or ended). Part of most operations' errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no stream with key {0}")]
pub(crate) struct NotFound(pub(crate) String);

/// Why [`Distributor::register_stream`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegisterError {
    #[error("the server already has {0} streams")]
    ServerFull(usize),
    /// Keys are random (about 119 bits), so this means a broken generator, not bad luck.
    #[error("stream key {0} is already in use")]
    KeyTaken(String),
}

/// Why an owner-only operation (start, title, end) refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OwnerError {
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error("stream {0} belongs to another connection")]
    NotOwner(String),
}

/// Why [`Distributor::publish`] refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PublishError {
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error("stream {0} belongs to another connection")]
    NotOwner(String),
    #[error("frame of {size} bytes is over the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("stream {key} is over its publish rate of {max_fps} frames/s; frame dropped")]
    RateLimited { key: String, max_fps: u32 },
    #[error("stream {key} is over its audio rate of {max} chunks/s; chunk dropped")]
    AudioRateLimited { key: String, max: u32 },
    #[error("frame refused: {0}")]
    BadMedia(#[from] MediaError),
}

/// Why [`Distributor::check_member`] refused (chat and reactions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MemberError {
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error("you neither own nor watch stream {0}")]
    NotInStream(String),
}

/// Why [`Distributor::resume`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResumeError {
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error("wrong publish token for stream {0}")]
    InvalidToken(String),
}

impl Coded for NotFound {
    fn code(&self) -> ErrorCode {
        ErrorCode::StreamNotFound
    }
}

impl Coded for RegisterError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::ServerFull(_) | Self::KeyTaken(_) => ErrorCode::ServerFull,
        }
    }
}

impl Coded for OwnerError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(e) => e.code(),
            Self::NotOwner(_) => ErrorCode::NotOwner,
        }
    }
}

impl Coded for PublishError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(e) => e.code(),
            Self::NotOwner(_) => ErrorCode::NotOwner,
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::RateLimited { .. } | Self::AudioRateLimited { .. } => ErrorCode::RateLimited,
            Self::BadMedia(_) => ErrorCode::InvalidPayload,
        }
    }
}

impl Coded for MemberError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(e) => e.code(),
            Self::NotInStream(_) => ErrorCode::NotInStream,
        }
    }
}

impl Coded for ResumeError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(e) => e.code(),
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
        }
    }
}

impl From<OwnerError> for PublishError {
    fn from(e: OwnerError) -> Self {
        match e {
            OwnerError::NotFound(e) => Self::NotFound(e),
            OwnerError::NotOwner(k) => Self::NotOwner(k),
        }
    }
}

/// A stream to register.
#[derive(Debug, Clone)]
pub(crate) struct NewStream {
    pub(crate) key: String,
    pub(crate) title: String,
    pub(crate) streamer: UserRef,
    pub(crate) owner: ConnId,
    pub(crate) publish_token: String,
    pub(crate) created_at: Millis,
    /// The numbering's epoch (cluster mode: on the bus with every frame; any value alone).
    pub(crate) epoch: u64,
}

/// What one published frame did: the result of [`Distributor::publish`] (and of the tail a
/// stream flushes when it ends). The caller must act on it: evicted viewers are told, level
/// changes announced, the counts recorded.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a delivery's evictions, level changes and counts must be acted on"]
pub(crate) struct Delivery {
    pub(crate) seq: u64,
    /// The stream's numbering epoch (cluster mode: frames on the bus carry it).
    pub(crate) epoch: u64,
    /// A replica found frames missing before this one (its viewers resync).
    pub(crate) gap: bool,
    /// The stream's mode after this frame.
    pub(crate) media: MediaMode,
    /// The track of every frame of this delivery (a publish is one track's).
    pub(crate) track: Track,
    /// Most viewers one of the frames reached (the ack's `viewers`).
    pub(crate) reached: usize,
    /// Frames queued to viewers (one per viewer and frame), and their payload bytes.
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    /// Frames dropped for viewers whose queue was full.
    pub(crate) dropped_slow: u64,
    /// Viewers removed by this call because their queue stayed full past the stall timeout.
    pub(crate) evicted: Vec<ConnId>,
    /// Set when this frame started a `created` stream.
    pub(crate) started: Option<StreamInfo>,
    /// Ask the streamer for a keyframe (a WebCodecs viewer is waiting for one).
    pub(crate) keyframe_wanted: bool,
    /// Viewers whose delivery level changed, with the new level (see [`LEVELS`]).
    pub(crate) level_changes: Vec<(ConnId, usize)>,
    /// The frames this publish produced, numbered (cluster mode forwards them to the bus). A
    /// replica's delivery leaves it empty: its frames came from the bus.
    pub(crate) frames: Vec<Arc<Frame>>,
}

impl Delivery {
    fn empty(seq: u64, media: MediaMode) -> Self {
        Self {
            seq,
            epoch: 0,
            gap: false,
            media,
            track: Track::Video,
            reached: 0,
            frames_out: 0,
            bytes_out: 0,
            dropped_slow: 0,
            evicted: Vec::new(),
            started: None,
            keyframe_wanted: false,
            level_changes: Vec::new(),
            frames: Vec::new(),
        }
    }
}

/// The result of [`Distributor::add_viewer`].
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    pub(crate) stream: StreamInfo,
    pub(crate) viewer_count: usize,
    /// Images: the catch-up ring (`stream:buffer`), oldest first. Encoded modes: what the
    /// viewer must receive as `stream:data` before live frames (init + GOP).
    pub(crate) catch_up: Vec<Arc<Frame>>,
    /// The latest audio chunks, oldest first (`stream:audio`, the first with `resync` and the
    /// config), sent after `catch_up`. The first live chunk goes with `resync` and the config
    /// again, so a viewer whose audio catch-up did not all fit can still decode.
    pub(crate) audio_catch_up: Vec<Arc<Frame>>,
    pub(crate) media: MediaMode,
    /// False when this connection was already a viewer.
    pub(crate) new: bool,
    /// Ask the streamer for a keyframe: this viewer has nothing to start decoding from.
    pub(crate) keyframe_wanted: bool,
    /// The connection that owns the stream now (none while it waits for a resume).
    pub(crate) owner: Option<ConnId>,
}

/// A stream that left the relay, with its last state and its lifetime counters.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub(crate) info: StreamInfo,
    pub(crate) stats: StreamStats,
    /// It was a replica of another node's stream (cluster mode): only its local part ended.
    pub(crate) replica: bool,
}

/// The result of [`Distributor::end_stream`]: what the stream still held, relayed, then the
/// stream's end.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub(crate) tail: Delivery,
    pub(crate) ended: Ended,
}

/// A stream whose owner's connection dropped.
#[derive(Debug, Clone)]
pub(crate) struct Orphaned {
    pub(crate) key: String,
    pub(crate) grace: Duration,
}

/// The seed's `StreamDistributor`: every stream, its viewers and its catch-up state.
///
/// Each stream sits behind its own mutex, so publishing to one stream never waits on another;
/// the map lock is only held to look a stream up. The locks are `parking_lot`'s: they do not
/// poison, and nothing panics while holding one (see the panic policy in
/// `docs/architecture.md`).
#[derive(Debug)]
pub(crate) struct Distributor<S> {
    limits: RelayLimits,
    streams: RwLock<HashMap<String, Arc<Mutex<Stream<S>>>>>,
}

impl<S: ViewerSink> Distributor<S> {
    pub(crate) fn new(limits: RelayLimits) -> Self {
        Self {
            limits,
            streams: RwLock::new(HashMap::new()),
        }
    }

    #[cfg(test)]
    pub(crate) fn limits(&self) -> &RelayLimits {
        &self.limits
    }

    fn get(&self, key: &str) -> Result<Arc<Mutex<Stream<S>>>, NotFound> {
        self.streams
            .read()
            .get(key)
            .cloned()
            .ok_or_else(|| NotFound(key.to_owned()))
    }

    fn all(&self) -> Vec<Arc<Mutex<Stream<S>>>> {
        self.streams.read().values().cloned().collect()
    }

    /// Registers a new stream in the `created` state. A key already in use is refused, never
    /// replaced (that would cut off the other stream's streamer and viewers).
    pub(crate) fn register_stream(
        &self,
        new: NewStream,
        now: Instant,
    ) -> Result<StreamInfo, RegisterError> {
        let mut map = self.streams.write();
        if map.len() >= self.limits.max_streams {
            return Err(RegisterError::ServerFull(map.len()));
        }
        let std::collections::hash_map::Entry::Vacant(slot) = map.entry(new.key.clone()) else {
            return Err(RegisterError::KeyTaken(new.key));
        };
        let stream = Stream::new(new, &self.limits, now);
        let info = stream.info();
        slot.insert(Arc::new(Mutex::new(stream)));
        Ok(info)
    }

    /// Ends a stream on its owner's request: relays what it still holds back (the end of a
    /// WebM recording), then removes it. All of it under the map's write lock, so the stream
    /// ends once (a second call, or a drain, finds it gone) and no frame lands in between;
    /// ending is rare, and the flush is at most one frame's fan-out.
    pub(crate) fn end_stream(
        &self,
        key: &str,
        conn: &str,
        now: Instant,
        wall: Millis,
    ) -> Result<Ending, OwnerError> {
        let mut map = self.streams.write();
        let s = Arc::clone(map.get(key).ok_or_else(|| NotFound(key.to_owned()))?);
        let mut stream = s.lock();
        let tail = stream.flush(conn, &self.limits, now, wall)?;
        let ended = stream.end(now);
        drop(stream);
        map.remove(key);
        Ok(Ending { tail, ended })
    }

    /// Marks a stream live. Returns its info and whether this call changed its state.
    pub(crate) fn start_stream(
        &self,
        key: &str,
        conn: &str,
        wall: Millis,
    ) -> Result<(StreamInfo, bool), OwnerError> {
        let s = self.get(key)?;
        let mut s = s.lock();
        s.check_owner(conn)?;
        let changed = s.start(wall);
        Ok((s.info(), changed))
    }

    /// Updates the title of a stream this connection owns.
    pub(crate) fn set_title(
        &self,
        key: &str,
        conn: &str,
        title: String,
    ) -> Result<StreamInfo, OwnerError> {
        let s = self.get(key)?;
        let mut s = s.lock();
        s.check_owner(conn)?;
        s.meta.title = title;
        Ok(s.info())
    }

    /// Adds a viewer and hands back the catch-up. `welcome` runs under the stream's lock before
    /// the viewer can receive a live frame, so whatever it sends (the join reply, the catch-up)
    /// arrives first. It returns whether the whole catch-up went out: if not (the viewer's
    /// queue filled), an encoded stream's viewer starts by waiting for the next keyframe
    /// instead of decoding a GOP with a hole in it.
    pub(crate) fn add_viewer(
        &self,
        key: &str,
        conn: &str,
        sink: S,
        now: Instant,
        wall: Millis,
        welcome: impl FnOnce(&Admitted) -> bool,
    ) -> Result<Admitted, NotFound> {
        let s = self.get(key)?;
        let mut s = s.lock();
        let already = s.has_viewer(conn);
        let viewer_count = s.viewer_count() + usize::from(!already);
        let (catch_up, synced) = if already {
            (Vec::new(), true)
        } else {
            s.catch_up(wall)
        };
        let audio_catch_up = if already {
            Vec::new()
        } else {
            s.audio_catch_up()
        };
        let mut admitted = Admitted {
            stream: StreamInfo {
                viewer_count,
                ..s.info()
            },
            viewer_count,
            catch_up,
            audio_catch_up,
            media: s.media_mode(),
            new: !already,
            keyframe_wanted: false,
            owner: s.owner().map(str::to_owned),
        };
        let delivered = welcome(&admitted);
        let start = match (synced, delivered) {
            (true, true) => Start::Synced,
            (false, _) => Start::AtFirstKey,
            (true, false) => Start::Resync,
        };
        // Nothing to start decoding from (no GOP, or it did not all fit): ask for a keyframe.
        admitted.keyframe_wanted =
            !already && start != Start::Synced && s.keyframe_request_due(now);
        s.add_viewer(conn, sink, start);
        Ok(admitted)
    }

    /// Removes a viewer. Returns the viewers left, or `None` if it was not watching.
    pub(crate) fn remove_viewer(&self, key: &str, conn: &str) -> Option<usize> {
        let s = self.get(key).ok()?;
        let mut s = s.lock();
        s.remove_viewer(conn, |_| true).then(|| s.viewer_count())
    }

    /// Removes connection `conn`'s viewer from every stream where `which` picks its sink (all
    /// of them when it disconnects; those of a transport that closed). Returns `(key, viewers
    /// left)` for each.
    pub(crate) fn remove_viewer_everywhere(
        &self,
        conn: &str,
        which: impl Fn(&S) -> bool,
    ) -> Vec<(String, usize)> {
        self.all()
            .iter()
            .filter_map(|s| {
                let mut s = s.lock();
                s.remove_viewer(conn, &which)
                    .then(|| (s.meta.key.clone(), s.viewer_count()))
            })
            .collect()
    }

    /// Keys of the streams this connection watches.
    pub(crate) fn joined_by(&self, conn: &str) -> Vec<String> {
        self.all()
            .iter()
            .filter_map(|s| {
                let s = s.lock();
                s.has_viewer(conn).then(|| s.meta.key.clone())
            })
            .collect()
    }

    /// The streams this connection owns, with their publish tokens.
    pub(crate) fn owned_by(&self, conn: &str) -> Vec<(StreamInfo, String)> {
        self.all()
            .iter()
            .filter_map(|s| {
                let s = s.lock();
                s.is_owner(conn)
                    .then(|| (s.info(), s.meta.publish_token.clone()))
            })
            .collect()
    }

    /// Multicasts one frame from the stream's owner to every viewer (the note's
    /// `distributeStreamData`).
    pub(crate) fn publish(
        &self,
        key: &str,
        conn: &str,
        frame: Publish,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, PublishError> {
        let s = self.get(key)?;
        let mut s = s.lock();
        s.publish(conn, frame, &self.limits, now, wall)
    }

    /// Multicasts one audio chunk from the stream's owner to every viewer.
    pub(crate) fn publish_audio(
        &self,
        key: &str,
        conn: &str,
        chunk: AudioPublish,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, PublishError> {
        let s = self.get(key)?;
        let mut s = s.lock();
        s.publish_audio(conn, chunk, &self.limits, now, wall)
    }

    #[cfg(test)]
    /// Viewer count and catch-up size (the note's `getStreamStats`), plus rates and drops.
    pub(crate) fn get_stream_stats(&self, key: &str, now: Instant) -> Option<StreamStats> {
        self.get(key).ok().map(|s| s.lock().stats(now))
    }

    /// A stream's info and stats, read together.
    pub(crate) fn describe(&self, key: &str, now: Instant) -> Option<(StreamInfo, StreamStats)> {
        let s = self.get(key).ok()?;
        let s = s.lock();
        Some((s.info(), s.stats(now)))
    }

    /// Every stream that is live or waiting for its streamer, newest first, with its stats.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<(StreamInfo, StreamStats)> {
        let mut out: Vec<_> = self
            .all()
            .iter()
            .map(|s| {
                let s = s.lock();
                (s.info(), s.stats(now))
            })
            .filter(|(i, _)| i.started_at.is_some())
            .collect();
        out.sort_by_key(|(i, _)| std::cmp::Reverse(i.started_at));
        out
    }

    #[cfg(test)]
    pub(crate) fn stream_info(&self, key: &str) -> Option<StreamInfo> {
        self.get(key).ok().map(|s| s.lock().info())
    }

    /// Whether `conn` owns or watches the stream (who may chat and react); the stream's info
    /// when it does.
    pub(crate) fn check_member(&self, key: &str, conn: &str) -> Result<StreamInfo, MemberError> {
        let s = self.get(key)?;
        let s = s.lock();
        if s.is_owner(conn) || s.has_viewer(conn) {
            Ok(s.info())
        } else {
            Err(MemberError::NotInStream(key.to_owned()))
        }
    }

    /// Streams that are live or waiting for their streamer, newest first.
    pub(crate) fn list(&self) -> Vec<StreamInfo> {
        let mut out: Vec<StreamInfo> = self
            .all()
            .iter()
            .map(|s| s.lock().info())
            .filter(|i| i.started_at.is_some())
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.started_at));
        out
    }

    /// Bytes waiting in each viewer's queue, over all streams (a connection watching two
    /// streams counts twice).
    pub(crate) fn viewer_queues(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for s in self.all() {
            out.extend(s.lock().viewer_queues());
        }
        out
    }

    pub(crate) fn stream_count(&self) -> usize {
        self.streams.read().len()
    }

    /// The owner's connection dropped: its streams wait `grace` for `stream:resume`.
    pub(crate) fn owner_disconnected(&self, conn: &str, now: Instant) -> Vec<Orphaned> {
        self.all()
            .iter()
            .filter_map(|s| {
                let mut s = s.lock();
                s.is_owner(conn).then(|| {
                    s.orphan(now);
                    Orphaned {
                        key: s.meta.key.clone(),
                        grace: self.limits.grace,
                    }
                })
            })
            .collect()
    }

    /// Hands a stream to a new connection that proves it knows the publish token.
    pub(crate) fn resume(
        &self,
        key: &str,
        token: &str,
        conn: &str,
    ) -> Result<StreamInfo, ResumeError> {
        let s = self.get(key)?;
        let mut s = s.lock();
        if !s.token_matches(token) {
            return Err(ResumeError::InvalidToken(key.to_owned()));
        }
        s.adopt(conn);
        Ok(s.info())
    }

    /// Removes the streams whose grace period ran out.
    pub(crate) fn expire_orphans(&self, now: Instant) -> Vec<Ended> {
        let grace = self.limits.grace;
        let candidates: Vec<String> = self
            .all()
            .iter()
            .filter_map(|s| {
                let s = s.lock();
                s.orphan_expired(now, grace).then(|| s.meta.key.clone())
            })
            .collect();
        // Check again under the map's write lock: a `resume` may have landed in between. The
        // streams are ended after the lock is released (ending touches every viewer).
        let removed: Vec<_> = {
            let mut map = self.streams.write();
            candidates
                .into_iter()
                .filter_map(|key| {
                    let expired = map
                        .get(&key)
                        .is_some_and(|s| s.lock().orphan_expired(now, grace));
                    expired.then(|| map.remove(&key)).flatten()
                })
                .collect()
        };
        removed.iter().map(|s| s.lock().end(now)).collect()
    }

    /// Starts relaying another node's stream here (cluster mode: a viewer of it joined this
    /// node). The replica has no owner; [`Self::ingest`] feeds it the origin's frames. Returns
    /// false if the key is already here (a replica, or this node's own stream).
    pub(crate) fn follow(
        &self,
        info: &StreamInfo,
        epoch: u64,
        now: Instant,
    ) -> Result<bool, RegisterError> {
        let mut map = self.streams.write();
        if map.contains_key(&info.stream_key) {
            return Ok(false);
        }
        if map.len() >= self.limits.max_streams {
            return Err(RegisterError::ServerFull(map.len()));
        }
        let meta = NewStream {
            key: info.stream_key.clone(),
            title: info.title.clone(),
            streamer: info.streamer.clone(),
            owner: ConnId::new(),
            publish_token: String::new(),
            created_at: info.created_at,
            epoch,
        };
        let stream = Stream::replica(meta, info, &self.limits, now);
        map.insert(info.stream_key.clone(), Arc::new(Mutex::new(stream)));
        Ok(true)
    }

    /// Relays a frame of a followed stream, as the origin cut and numbered it.
    pub(crate) fn ingest(
        &self,
        key: &str,
        frame: Forwarded,
        now: Instant,
    ) -> Result<Delivery, PublishError> {
        let s = self.get(key)?;
        let mut s = s.lock();
        if !s.is_replica() {
            return Err(PublishError::NotOwner(key.to_owned()));
        }
        s.ingest(frame, &self.limits, now)
    }

    /// Mirrors the origin's state (status, start, title) on a followed stream.
    pub(crate) fn mirror(&self, info: &StreamInfo) {
        if let Ok(s) = self.get(&info.stream_key) {
            let mut s = s.lock();
            if s.is_replica() {
                s.mirror(info);
            }
        }
    }

    /// Stops following a stream this node no longer has viewers of. Returns whether it did.
    pub(crate) fn unfollow_if_unwatched(&self, key: &str, now: Instant) -> bool {
        let mut map = self.streams.write();
        let unwatched = map.get(key).is_some_and(|s| {
            let s = s.lock();
            s.is_replica() && s.viewer_count() == 0
        });
        if let Some(s) = unwatched.then(|| map.remove(key)).flatten() {
            drop(map);
            let _ = s.lock().end(now);
        }
        unwatched
    }

    /// Ends a followed stream here (its origin ended it, or it expired on the cluster); its
    /// viewers on this node are dropped.
    pub(crate) fn unfollow(&self, key: &str, now: Instant) -> Option<Ended> {
        let mut map = self.streams.write();
        if !map.get(key).is_some_and(|s| s.lock().is_replica()) {
            return None;
        }
        let s = map.remove(key)?;
        drop(map);
        let ended = s.lock().end(now);
        Some(ended)
    }

    /// Seeds a new replica's WebM init segment (the origin stores it apart from the frames).
    pub(crate) fn seed_init(&self, key: &str, init: bytes::Bytes, text: bool) {
        if let Ok(s) = self.get(key) {
            s.lock().seed_init(init, text);
        }
    }

    /// This node's stream moved to another node (its streamer resumed there): it stays here
    /// as a replica for its viewers, numbered by the new origin from `epoch` on. Returns
    /// whether it was this node's stream.
    pub(crate) fn demote(&self, key: &str, epoch: u64) -> bool {
        self.get(key).is_ok_and(|s| s.lock().demote(epoch))
    }

    /// The connection that owns the stream here (none for a replica, or while it waits for
    /// a resume).
    pub(crate) fn owner_of(&self, key: &str) -> Option<ConnId> {
        let s = self.get(key).ok()?;
        let s = s.lock();
        s.owner().map(str::to_owned)
    }

    /// Viewers of a stream on this node.
    pub(crate) fn viewer_count(&self, key: &str) -> Option<usize> {
        self.get(key).ok().map(|s| s.lock().viewer_count())
    }

    /// A WebM stream's init segment (decoded bytes), for the cluster to keep.
    pub(crate) fn webm_init(&self, key: &str) -> Option<bytes::Bytes> {
        self.get(key).ok().and_then(|s| s.lock().webm_init())
    }

    /// A stream's info.
    pub(crate) fn info_of(&self, key: &str) -> Option<StreamInfo> {
        self.get(key).ok().map(|s| s.lock().info())
    }

    /// This node's own streams (not replicas), with their stats.
    pub(crate) fn snapshot_origins(&self, now: Instant) -> Vec<(StreamInfo, StreamStats)> {
        self.all()
            .iter()
            .filter_map(|s| {
                let s = s.lock();
                (!s.is_replica()).then(|| (s.info(), s.stats(now)))
            })
            .collect()
    }

    /// Keys of the followed streams (replicas) on this node.
    pub(crate) fn followed(&self) -> Vec<String> {
        self.all()
            .iter()
            .filter_map(|s| {
                let s = s.lock();
                s.is_replica().then(|| s.meta.key.clone())
            })
            .collect()
    }

    /// The stream's epoch, and whether it is a replica here.
    pub(crate) fn epoch(&self, key: &str) -> Option<(u64, bool)> {
        let s = self.get(key).ok()?;
        let s = s.lock();
        Some((s.epoch(), s.is_replica()))
    }

    /// A followed stream's streamer resumed on this node: it becomes the origin here, with
    /// its viewers, numbering on from `next_seq` (or where this replica got to) in a new
    /// `epoch`. A stream that is not here is registered from `info` first.
    pub(crate) fn take_over(
        &self,
        info: &StreamInfo,
        publish_token: &str,
        conn: &str,
        epoch: u64,
        next_seq: u64,
        now: Instant,
    ) -> Result<StreamInfo, RegisterError> {
        self.follow(info, epoch, now)?;
        let s = self
            .get(&info.stream_key)
            .map_err(|_| RegisterError::KeyTaken(info.stream_key.clone()))?;
        let mut s = s.lock();
        s.meta.publish_token = publish_token.to_owned();
        s.meta.owner = conn.to_owned();
        s.take_over(conn, epoch, next_seq);
        Ok(s.info())
    }

    /// Streams whose viewer count changed since the last call, with the new count.
    pub(crate) fn take_viewer_count_changes(&self) -> Vec<(String, usize)> {
        self.all()
            .iter()
            .filter_map(|s| {
                let mut s = s.lock();
                s.take_count_change().map(|n| (s.meta.key.clone(), n))
            })
            .collect()
    }

    /// Removes every stream (shutdown).
    pub(crate) fn drain(&self, now: Instant) -> Vec<Ended> {
        let all: Vec<_> = self.streams.write().drain().map(|(_, s)| s).collect();
        all.iter().map(|s| s.lock().end(now)).collect()
    }
}

#[cfg(test)]
mod tests;
