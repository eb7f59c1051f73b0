//! The fan-out core: streams, viewers, the catch-up ring and the slow-viewer policy.
//!
//! Plain Rust with no sockets, no clock of its own and no async: callers pass `Instant`s and
//! wall-clock milliseconds in, and every outgoing frame leaves through a [`ViewerSink`] (one
//! viewer) or a [`GroupSink`] (one shared send to many), the two seams to the network. That
//! keeps the hard logic testable with recording sinks.
//!
//! Method names follow the design note's `StreamDistributor` (`register_stream`,
//! `add_viewer`, `distribute_stream_data`, `get_stream_stats`, ...).

mod media;
mod rate;
mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use streamhub_protocol::server::{MediaMode, StreamInfo, UserRef};
use streamhub_protocol::{ErrorCode, FrameData, Millis};

pub use media::{Frame, FrameKind, Incoming, MediaError};
pub use rate::TokenBucket;
use stream::Stream;
pub use stream::{LEVELS, StreamStats};

/// Identifies one client connection (the Socket.IO socket id).
pub type ConnId = String;

/// What became of a frame offered to one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued for sending.
    Sent,
    /// The viewer's bounded queue is full: this frame is dropped for this viewer only.
    Full,
    /// The viewer is gone.
    Closed,
}

/// Where a viewer's frames go. Implementations must not block: a full queue answers
/// [`Offer::Full`] at once.
pub trait ViewerSink: Send + Sync + 'static {
    /// False: this viewer cannot be a member of a [`GroupSink`] (frames go to it one by one).
    fn groupable(&self) -> bool {
        true
    }
    /// `resync`: this viewer missed data and restarts decoding at this (key)frame.
    fn offer(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer;
}

/// One shared send to many viewers of a stream (a Socket.IO room): the frame is encoded once
/// and every member's queue holds the same bytes, instead of one encoding and copy per viewer.
/// Members are picture viewers at level 0; the relay decides membership (`join`/`leave`) and
/// still learns who is slow: after a shared send that found a full queue, the next frame goes
/// viewer by viewer (see [`PROBE_EVERY`]).
pub trait GroupSink<S>: Send + Sync + 'static {
    /// False: no shared sends; every frame goes viewer by viewer.
    fn enabled(&self) -> bool {
        true
    }
    fn join(&self, stream_key: &str, viewer: &S);
    fn leave(&self, stream_key: &str, viewer: &S);
    /// Sends `frame` to every member of the stream's group.
    fn broadcast(&self, stream_key: &str, frame: &Frame) -> GroupOffer;
}

/// What became of one shared send: members whose queue was full, or that were gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupOffer {
    pub full: usize,
    pub closed: usize,
}

/// No shared sends (every frame viewer by viewer).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoGroup;

impl<S> GroupSink<S> for NoGroup {
    fn enabled(&self) -> bool {
        false
    }
    fn join(&self, _: &str, _: &S) {}
    fn leave(&self, _: &str, _: &S) {}
    fn broadcast(&self, _: &str, _: &Frame) -> GroupOffer {
        GroupOffer::default()
    }
}

pub use stream::PROBE_EVERY;

/// Limits the relay enforces.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// Frames kept for late joiners (the seed's 30).
    pub buffer_frames: usize,
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
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            buffer_frames: 30,
            max_frame_bytes: 2 * 1024 * 1024,
            max_fps: 60,
            stall_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            max_streams: 1000,
            max_gop_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Why the relay refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("no stream with key {0}")]
    NotFound(String),
    #[error("stream {0} belongs to another connection")]
    NotOwner(String),
    #[error("frame of {size} bytes is over the {max}-byte limit")]
    FrameTooLarge { size: usize, max: usize },
    #[error("stream {0} is over its publish rate of {1} frames/s; frame dropped")]
    RateLimited(String, u32),
    #[error("the server already has {0} streams")]
    ServerFull(usize),
    /// Keys are random (about 119 bits), so this means a broken generator, not bad luck.
    #[error("stream key {0} is already in use")]
    KeyTaken(String),
    #[error("wrong publish token for stream {0}")]
    InvalidToken(String),
    #[error("you neither own nor watch stream {0}")]
    NotInStream(String),
    #[error("frame refused: {0}")]
    BadMedia(String),
}

impl RelayError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::StreamNotFound,
            Self::NotOwner(_) => ErrorCode::NotOwner,
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::RateLimited(..) => ErrorCode::RateLimited,
            Self::ServerFull(_) | Self::KeyTaken(_) => ErrorCode::ServerFull,
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
            Self::NotInStream(_) => ErrorCode::NotInStream,
            Self::BadMedia(_) => ErrorCode::InvalidPayload,
        }
    }
}

/// A stream to register.
#[derive(Debug, Clone)]
pub struct NewStream {
    pub key: String,
    pub title: String,
    pub streamer: UserRef,
    pub owner: ConnId,
    pub publish_token: String,
    pub created_at: Millis,
}

/// The result of [`Distributor::distribute_stream_data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub seq: u64,
    /// Viewers whose queue took the frame.
    pub reached: usize,
    /// Viewers removed by this call because their queue stayed full past the stall timeout.
    pub evicted: Vec<ConnId>,
    /// Set when this frame started a `created` stream.
    pub started: Option<StreamInfo>,
    /// Ask the streamer for a keyframe (a WebCodecs viewer is waiting for one).
    pub keyframe_wanted: bool,
    /// Viewers whose delivery level changed, with the new level (see [`LEVELS`]).
    pub level_changes: Vec<(ConnId, usize)>,
    /// Of `reached`, the viewers that got the frame by the shared send (their sink never
    /// saw it, so the caller counts them).
    pub shared_sent: usize,
    /// Shared-send members whose queue was full.
    pub shared_full: usize,
}

/// The result of [`Distributor::add_viewer`].
#[derive(Debug, Clone)]
pub struct Joined {
    pub stream: StreamInfo,
    pub viewer_count: usize,
    /// Images: the catch-up ring (`stream:buffer`), oldest first. Encoded modes: what the
    /// viewer must receive as `stream:data` before live frames (init + GOP).
    pub buffer: Vec<Arc<Frame>>,
    pub media: MediaMode,
    /// False when this connection was already a viewer.
    pub new: bool,
    /// Ask the streamer for a keyframe: this viewer has nothing to start decoding from.
    pub keyframe_wanted: bool,
}

/// A stream whose owner's connection dropped.
#[derive(Debug, Clone)]
pub struct Orphaned {
    pub key: String,
    pub grace: Duration,
}

/// The seed's `StreamDistributor`: every stream, its viewers and its catch-up ring.
///
/// Each stream sits behind its own mutex, so publishing to one stream never waits on another;
/// the map lock is only held to look a stream up.
#[derive(Debug)]
pub struct Distributor<S, G = NoGroup> {
    limits: RelayLimits,
    group: G,
    streams: RwLock<HashMap<String, Arc<Mutex<Stream<S>>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a stream lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: ViewerSink> Distributor<S> {
    /// A relay that sends every frame viewer by viewer.
    pub fn new(limits: RelayLimits) -> Self {
        Self::with_group(limits, NoGroup)
    }
}

impl<S: ViewerSink, G: GroupSink<S>> Distributor<S, G> {
    /// A relay that sends frames to level-0 picture viewers through `group`.
    pub fn with_group(limits: RelayLimits, group: G) -> Self {
        Self {
            limits,
            group,
            streams: RwLock::new(HashMap::new()),
        }
    }

    pub fn group(&self) -> &G {
        &self.group
    }

    pub fn limits(&self) -> &RelayLimits {
        &self.limits
    }

    fn get(&self, key: &str) -> Result<Arc<Mutex<Stream<S>>>, RelayError> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .ok_or_else(|| RelayError::NotFound(key.to_owned()))
    }

    fn all(&self) -> Vec<Arc<Mutex<Stream<S>>>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Registers a new stream in the `created` state. A key already in use is refused, never
    /// replaced (that would cut off the other stream's streamer and viewers).
    pub fn register_stream(&self, new: NewStream, now: Instant) -> Result<StreamInfo, RelayError> {
        let mut map = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.limits.max_streams {
            return Err(RelayError::ServerFull(map.len()));
        }
        let std::collections::hash_map::Entry::Vacant(slot) = map.entry(new.key.clone()) else {
            return Err(RelayError::KeyTaken(new.key));
        };
        let stream = Stream::new(new, &self.limits, now);
        let info = stream.info();
        slot.insert(Arc::new(Mutex::new(stream)));
        Ok(info)
    }

    /// Removes a stream. Returns its last state, or `None` if it was not there.
    pub fn unregister_stream(&self, key: &str) -> Option<StreamInfo> {
        let removed = self
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)?;
        let mut stream = lock(&removed);
        stream.end(&self.group);
        Some(stream.info())
    }

    /// Ends a stream on its owner's request.
    pub fn end_stream(&self, key: &str, conn: &str) -> Result<StreamInfo, RelayError> {
        lock(&*self.get(key)?).check_owner(conn)?;
        self.unregister_stream(key)
            .ok_or_else(|| RelayError::NotFound(key.to_owned()))
    }

    /// Marks a stream live. Returns its info and whether this call changed its state.
    pub fn start_stream(
        &self,
        key: &str,
        conn: &str,
        wall: Millis,
    ) -> Result<(StreamInfo, bool), RelayError> {
        let s = self.get(key)?;
        let mut s = lock(&s);
        s.check_owner(conn)?;
        let changed = s.start(wall);
        Ok((s.info(), changed))
    }

    /// Updates the title of a stream this connection owns.
    pub fn set_title(
        &self,
        key: &str,
        conn: &str,
        title: String,
    ) -> Result<StreamInfo, RelayError> {
        let s = self.get(key)?;
        let mut s = lock(&s);
        s.check_owner(conn)?;
        s.meta.title = title;
        Ok(s.info())
    }

    /// Adds a viewer and hands back the catch-up buffer.
    pub fn add_viewer(&self, key: &str, conn: &str, sink: S) -> Result<Joined, RelayError> {
        self.add_viewer_with(key, conn, sink, |_| true)
    }

    /// Adds a viewer; `welcome` runs under the stream's lock before the viewer can receive a
    /// live frame, so whatever it sends (the join reply, the catch-up buffer) arrives first.
    /// It returns whether the whole catch-up went out: if not (the viewer's queue filled), an
    /// encoded stream's viewer starts by waiting for the next keyframe instead of decoding a
    /// GOP with a hole in it.
    pub fn add_viewer_with(
        &self,
        key: &str,
        conn: &str,
        sink: S,
        welcome: impl FnOnce(&Joined) -> bool,
    ) -> Result<Joined, RelayError> {
        let s = self.get(key)?;
        let mut s = lock(&s);
        let already = s.has_viewer(conn);
        let viewer_count = s.viewer_count() + usize::from(!already);
        let (buffer, synced) = if already {
            (Vec::new(), true)
        } else {
            s.catch_up(crate::now_ms())
        };
        let keyframe_wanted = !already && !synced && s.keyframe_request_due(Instant::now());
        let joined = Joined {
            stream: StreamInfo {
                viewer_count,
                ..s.info()
            },
            viewer_count,
            buffer,
            media: s.media_mode(),
            new: !already,
            keyframe_wanted,
        };
        let delivered = welcome(&joined);
        s.add_viewer(conn, sink, synced && delivered);
        Ok(joined)
    }

    /// Removes a viewer from every stream it watches; returns `(key, viewers left)` for each.
    pub fn remove_viewer_everywhere(&self, conn: &str) -> Vec<(String, usize)> {
        self.remove_viewer_everywhere_if(conn, |_| true)
    }

    /// Like [`Self::remove_viewer_everywhere`], for the viewers whose sink `which` picks (those
    /// that went through a transport that closed, say).
    pub fn remove_viewer_everywhere_if(
        &self,
        conn: &str,
        which: impl Fn(&S) -> bool,
    ) -> Vec<(String, usize)> {
        self.all()
            .iter()
            .filter_map(|s| {
                let mut s = lock(s);
                s.remove_viewer(conn, &which, &self.group)
                    .then(|| (s.meta.key.clone(), s.viewer_count()))
            })
            .collect()
    }

    /// Keys of the streams this connection watches.
    pub fn joined_by(&self, conn: &str) -> Vec<String> {
        self.all()
            .iter()
            .filter_map(|s| {
                let s = lock(s);
                s.has_viewer(conn).then(|| s.meta.key.clone())
            })
            .collect()
    }

    /// The streams this connection owns, with their publish tokens.
    pub fn owned_by(&self, conn: &str) -> Vec<(StreamInfo, String)> {
        self.all()
            .iter()
            .filter_map(|s| {
                let s = lock(s);
                s.is_owner(conn)
                    .then(|| (s.info(), s.meta.publish_token.clone()))
            })
            .collect()
    }

    /// Removes a viewer. Returns whether it was there.
    pub fn remove_viewer(&self, key: &str, conn: &str) -> bool {
        self.get(key)
            .map(|s| lock(&s).remove_viewer(conn, |_| true, &self.group))
            .unwrap_or(false)
    }

    /// Multicasts one frame from the stream's owner to every viewer (the note's
    /// `distributeStreamData`).
    pub fn distribute_stream_data(
        &self,
        key: &str,
        conn: &str,
        data: FrameData,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, RelayError> {
        self.distribute(
            key,
            conn,
            Incoming {
                data,
                chunk: None,
                config: None,
            },
            now,
            wall,
        )
    }

    /// [`Self::distribute_stream_data`] with WebCodecs chunk information.
    pub fn distribute(
        &self,
        key: &str,
        conn: &str,
        incoming: Incoming,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, RelayError> {
        let s = self.get(key)?;
        let mut s = lock(&s);
        s.publish(conn, incoming, &self.limits, &self.group, now, wall)
    }

    /// Looks at the sink of connection `conn`'s viewer of stream `key`, if it watches it.
    pub fn with_viewer<R>(&self, key: &str, conn: &str, f: impl FnOnce(&S) -> R) -> Option<R> {
        let s = self.get(key).ok()?;
        let s = lock(&s);
        s.viewer_sink(conn, f)
    }

    /// The streamer is stopping: relays what the stream still holds back (the end of a WebM
    /// recording), before [`Self::end_stream`].
    pub fn flush_media(
        &self,
        key: &str,
        conn: &str,
        now: Instant,
        wall: Millis,
    ) -> Result<Delivery, RelayError> {
        let s = self.get(key)?;
        let mut s = lock(&s);
        s.flush_media(conn, &self.limits, &self.group, now, wall)
    }

    /// Viewer count and ring size (the note's `getStreamStats`), plus rates and drop counters.
    pub fn get_stream_stats(&self, key: &str, now: Instant) -> Option<StreamStats> {
        self.get(key).ok().map(|s| lock(&s).stats(now))
    }

    /// The connection that currently owns the stream (none while it waits for a resume).
    pub fn owner(&self, key: &str) -> Option<ConnId> {
        self.get(key)
            .ok()
            .and_then(|s| lock(&s).owner().map(str::to_owned))
    }

    pub fn stream_info(&self, key: &str) -> Option<StreamInfo> {
        self.get(key).ok().map(|s| lock(&s).info())
    }

    /// Whether `conn` owns or watches the stream (who may chat and react).
    pub fn check_member(&self, key: &str, conn: &str) -> Result<(), RelayError> {
        let s = self.get(key)?;
        let s = lock(&s);
        if s.is_owner(conn) || s.has_viewer(conn) {
            Ok(())
        } else {
            Err(RelayError::NotInStream(key.to_owned()))
        }
    }

    /// Streams that are live or waiting for their streamer, newest first.
    pub fn list(&self) -> Vec<StreamInfo> {
        let mut out: Vec<StreamInfo> = self
            .all()
            .iter()
            .map(|s| lock(s).info())
            .filter(|i| i.started_at.is_some())
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.started_at));
        out
    }

    pub fn stream_count(&self) -> usize {
        self.streams.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The owner's connection dropped: its streams wait `grace` for `stream:resume`.
    pub fn owner_disconnected(&self, conn: &str, now: Instant) -> Vec<Orphaned> {
        self.all()
            .iter()
            .filter_map(|s| {
                let mut s = lock(s);
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
    pub fn resume(&self, key: &str, token: &str, conn: &str) -> Result<StreamInfo, RelayError> {
        let s = self.get(key)?;
        let mut s = lock(&s);
        if !s.token_matches(token) {
            return Err(RelayError::InvalidToken(key.to_owned()));
        }
        s.adopt(conn);
        Ok(s.info())
    }

    /// Unregisters streams whose grace period ran out; returns their keys.
    pub fn expire_orphans(&self, now: Instant) -> Vec<String> {
        let grace = self.limits.grace;
        let candidates: Vec<String> = self
            .all()
            .iter()
            .filter_map(|s| {
                let s = lock(s);
                s.orphan_expired(now, grace).then(|| s.meta.key.clone())
            })
            .collect();
        // Check again under the map's write lock: a `resume` may have landed in between.
        let mut map = self.streams.write().unwrap_or_else(|e| e.into_inner());
        candidates
            .into_iter()
            .filter(|key| {
                let expired = map
                    .get(key)
                    .is_some_and(|s| lock(s).orphan_expired(now, grace));
                if expired && let Some(s) = map.remove(key) {
                    lock(&s).end(&self.group);
                }
                expired
            })
            .collect()
    }

    /// Streams whose viewer count changed since the last call, with the new count.
    pub fn take_viewer_count_changes(&self) -> Vec<(String, usize)> {
        self.all()
            .iter()
            .filter_map(|s| {
                let mut s = lock(s);
                s.take_count_change().map(|n| (s.meta.key.clone(), n))
            })
            .collect()
    }

    /// Unregisters every stream (shutdown); returns their keys.
    pub fn drain(&self) -> Vec<String> {
        let keys: Vec<String> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for key in &keys {
            self.unregister_stream(key);
        }
        keys
    }
}

#[cfg(test)]
mod media_tests;
#[cfg(test)]
mod tests;
