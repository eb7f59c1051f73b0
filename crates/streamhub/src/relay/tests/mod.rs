//! Unit tests for the relay, one file per topic, and the kit they share.
//!
//! Viewers are [`Recorder`]s: recording sinks with a bounded queue the test drains by hand.
//! Time is never slept and never read: every call takes
//! an `Instant` made up from one base `t0` (`origin()` serves only as that origin).
//!
//! WebM tests feed the real Chrome `MediaRecorder` captures of `tests/fixtures/` (see
//! [`crate::webm::fixtures`]).

// Tests publish frames for what they do to the viewers and read the `Delivery` only where it
// is the point; its `must_use` is for the server's handlers, which must act on it.
#![allow(unused_must_use)]

mod audio;
mod counts;
mod gop_cap;
mod levels;
mod modes;
mod publish;
mod rates;
mod reconnect;
mod registry;
mod replica;
mod slow_viewers;
mod viewers;
mod webcodecs;
mod webm;
mod webm_join;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use streamhub_protocol::client::{ChunkInfo, ChunkKind};
use streamhub_protocol::server::{MediaMode, StreamStatus, Track, UserRef};
use streamhub_protocol::{ErrorCode, FrameData, Millis};

use super::*;
use crate::webm::fixtures::{Fixture, all as fixtures, vp8, vp8_opus};

// ---------------------------------------------------------------------------------------------
// Viewers: the recording sink
// ---------------------------------------------------------------------------------------------

/// What a [`Recorder`] keeps of each offer it accepts.
trait Record: Clone + std::fmt::Debug + Send + Sync + 'static {
    fn of(stream_key: &str, frame: &Frame, resync: bool) -> Self;
    fn seq(&self) -> u64;
}

/// One frame as a viewer received it: enough for the fan-out tests.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    key: String,
    seq: u64,
    data: FrameData,
    timestamp: Millis,
}

impl Record for Got {
    fn of(stream_key: &str, frame: &Frame, _resync: bool) -> Self {
        Got {
            key: stream_key.to_owned(),
            seq: frame.seq,
            data: frame.data.clone(),
            timestamp: frame.timestamp,
        }
    }

    fn seq(&self) -> u64 {
        self.seq
    }
}

/// One offer as a media viewer received it: the whole frame and the resync flag.
#[derive(Debug, Clone)]
struct Rec {
    key: String,
    frame: Frame,
    resync: bool,
}

impl Record for Rec {
    fn of(stream_key: &str, frame: &Frame, resync: bool) -> Self {
        Rec {
            key: stream_key.to_owned(),
            frame: frame.clone(),
            resync,
        }
    }

    fn seq(&self) -> u64 {
        self.frame.seq
    }
}

/// A viewer sink that records every frame it accepts.
///
/// It models a bounded queue: each accepted frame is "pending" until [`Recorder::drain`] is
/// called; once `capacity` frames are pending, offers answer [`Offer::Full`] (and are counted
/// in [`Recorder::refused`]). [`Recorder::close`] makes every later offer answer
/// [`Offer::Closed`]. Clones share the same state, so the test keeps one clone as a handle
/// after handing the other to the relay.
#[derive(Debug, Clone)]
struct Recorder<T> {
    log: Arc<Mutex<Vec<T>>>,
    pending: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    capacity: usize,
    /// Of `capacity`, the slots only audio may fill (the socket sink's audio reserve).
    reserve: usize,
    /// Stands for a media-channel viewer (a transport of its own).
    solo: bool,
    /// Reports the payload bytes it holds as queued (the picture cap reads them); the other
    /// doubles report none, as a sink that writes at once would.
    counts_bytes: bool,
    pending_bytes: Arc<AtomicUsize>,
}

/// A viewer of the fan-out tests.
type Sink = Recorder<Got>;
/// A viewer of the media tests.
type MediaSink = Recorder<Rec>;

impl<T: Record> Recorder<T> {
    fn unbounded() -> Self {
        Self::with_capacity(usize::MAX)
    }

    fn with_capacity(capacity: usize) -> Self {
        Self {
            log: Arc::new(Mutex::new(Vec::new())),
            pending: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicUsize::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
            capacity,
            reserve: 0,
            solo: false,
            counts_bytes: false,
            pending_bytes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// An unbounded queue that reports the bytes it holds until drained.
    fn counting_bytes() -> Self {
        Self {
            counts_bytes: true,
            ..Self::unbounded()
        }
    }

    /// A queue of `capacity` whose last `reserve` slots only audio may fill.
    fn with_reserve(capacity: usize, reserve: usize) -> Self {
        Self {
            reserve,
            ..Self::with_capacity(capacity)
        }
    }

    /// A viewer on a transport of its own (a media channel).
    fn solo() -> Self {
        Self {
            solo: true,
            ..Self::unbounded()
        }
    }

    /// The viewer caught up: its queue is empty again.
    fn drain(&self) {
        self.pending.store(0, Ordering::SeqCst);
        self.pending_bytes.store(0, Ordering::SeqCst);
    }

    /// The viewer is gone: every later offer answers [`Offer::Closed`].
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<T> {
        self.log.lock().expect("sink log lock").clone()
    }

    fn len(&self) -> usize {
        self.log.lock().expect("sink log lock").len()
    }

    fn seqs(&self) -> Vec<u64> {
        self.received().iter().map(Record::seq).collect()
    }

    /// Offers this viewer answered [`Offer::Full`].
    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl<T: Record> ViewerSink for Recorder<T> {
    fn offer(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer {
        if self.closed.load(Ordering::SeqCst) {
            return Offer::Closed;
        }
        let room = match frame.track {
            Track::Video => self.capacity - self.reserve,
            Track::Audio => self.capacity,
        };
        if self.pending.load(Ordering::SeqCst) >= room {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Offer::Full;
        }
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.pending_bytes
            .fetch_add(frame.data.len(), Ordering::SeqCst);
        self.log
            .lock()
            .expect("sink log lock")
            .push(T::of(stream_key, frame, resync));
        Offer::Sent
    }

    fn bytes_queued(&self) -> u64 {
        if self.counts_bytes {
            self.pending_bytes.load(Ordering::SeqCst) as u64
        } else {
            0
        }
    }
}

impl Sink {
    /// Payload bytes of everything received.
    fn bytes_received(&self) -> u64 {
        self.received().iter().map(|g| g.data.len() as u64).sum()
    }
}

impl MediaSink {
    fn frames(&self) -> Vec<Frame> {
        self.received().into_iter().map(|r| r.frame).collect()
    }

    /// The decoded bytes of everything received, in order.
    fn bytes(&self) -> Vec<u8> {
        concat(&self.frames())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared sends: the group double
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Relays, streams, frames
// ---------------------------------------------------------------------------------------------

/// A relay sending frame by frame to [`Sink`]s.
type Relay = Distributor<Sink>;
/// A relay sending to [`MediaSink`]s.
type MediaRelay = Distributor<MediaSink>;

const OWNER: &str = "conn-owner";
const TOKEN: &str = "secret-token";
/// The stream of the media tests (see [`open`]).
const KEY: &str = "m";

/// Default limits, but with a publish rate no test gets near (except the rate tests, which set
/// their own).
/// The origin of every test's made-up time: each later moment is `origin() + d`. Its value
/// is never compared with the clock, so it is the relay tests' one clock read, and no test
/// waits for time to pass.
fn origin() -> Instant {
    Instant::now()
}

fn roomy() -> RelayLimits {
    RelayLimits {
        max_fps: 100_000,
        ..RelayLimits::default()
    }
}

fn relay(limits: RelayLimits) -> Relay {
    Distributor::new(limits)
}

/// A media relay with one stream, [`KEY`], owned by [`OWNER`]; and the time it was opened.
fn open(limits: RelayLimits) -> (MediaRelay, Instant) {
    let t0 = origin();
    let d = Distributor::new(limits);
    register(&d, KEY, OWNER, t0);
    (d, t0)
}

/// The numbering epoch of the streams the kit registers.
const EPOCH: u64 = 1_700_000_000_000;

fn new_stream(key: &str, owner: &str) -> NewStream {
    NewStream {
        key: key.to_owned(),
        title: format!("title of {key}"),
        streamer: UserRef {
            id: format!("user-{owner}"),
            username: format!("name-{owner}"),
        },
        owner: owner.to_owned(),
        publish_token: TOKEN.to_owned(),
        created_at: 1_000,
        epoch: EPOCH,
    }
}

fn register<S: ViewerSink>(d: &Distributor<S>, key: &str, owner: &str, now: Instant) -> StreamInfo {
    d.register_stream(new_stream(key, owner), now)
        .expect("register_stream")
}

/// What a test publishes: bare data (a picture, WebM bytes) or a whole [`Publish`] (a
/// WebCodecs chunk).
trait Payload {
    fn into_publish(self) -> Publish;
}

impl Payload for FrameData {
    fn into_publish(self) -> Publish {
        Publish {
            data: self,
            chunk: None,
            config: None,
            capture_time: None,
        }
    }
}

impl Payload for Publish {
    fn into_publish(self) -> Publish {
        self
    }
}

/// The owner publishes one frame (wall clock 0).
fn try_publish<S: ViewerSink>(
    d: &Distributor<S>,
    key: &str,
    frame: impl Payload,
    now: Instant,
) -> Result<Delivery, PublishError> {
    d.publish(key, OWNER, frame.into_publish(), now, 0)
}

/// The owner publishes one frame (wall clock 0), which the relay takes.
fn publish<S: ViewerSink>(
    d: &Distributor<S>,
    key: &str,
    frame: impl Payload,
    now: Instant,
) -> Delivery {
    try_publish(d, key, frame, now).expect("owner publish")
}

/// `conn` joins with `sink` at `now` and takes the whole catch-up.
fn join<S: ViewerSink + Clone>(
    d: &Distributor<S>,
    key: &str,
    conn: &str,
    sink: &S,
    now: Instant,
) -> Admitted {
    d.add_viewer(key, conn, sink.clone(), now, 0, |_| true)
        .expect("add_viewer")
}

fn stats<S: ViewerSink>(d: &Distributor<S>, key: &str, now: Instant) -> StreamStats {
    d.get_stream_stats(key, now).expect("stream exists")
}

fn status<S: ViewerSink>(d: &Distributor<S>, key: &str) -> StreamStatus {
    d.stream_info(key).expect("stream exists").status
}

/// The owner ends the stream.
fn end<S: ViewerSink>(d: &Distributor<S>, key: &str, now: Instant) -> Ending {
    d.end_stream(key, OWNER, now, 0).expect("owner ends")
}

/// The keys of streams that left, sorted.
fn keys(ended: &[Ended]) -> Vec<String> {
    let mut keys: Vec<String> = ended.iter().map(|e| e.info.stream_key.clone()).collect();
    keys.sort();
    keys
}

fn not_found(key: &str) -> NotFound {
    NotFound(key.to_owned())
}

fn text(s: &str) -> FrameData {
    FrameData::Text(s.to_owned())
}

fn frame_n(n: usize) -> FrameData {
    FrameData::Text(format!("frame-{n}"))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------------
// Media frames
// ---------------------------------------------------------------------------------------------

const CLUSTER_ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];
const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1,
];

fn binary(b: &[u8]) -> Publish {
    FrameData::Binary(Bytes::copy_from_slice(b)).into_publish()
}

fn base64(b: &[u8]) -> Publish {
    FrameData::Text(B64.encode(b)).into_publish()
}

fn media_chunk(b: &[u8], text: bool) -> Publish {
    if text { base64(b) } else { binary(b) }
}

/// A WebCodecs chunk whose payload names it (`"K3"`, `"D4"`), with encoder timestamp `ts`.
fn wc(kind: ChunkKind, ts: u32, config: Option<serde_json::Value>) -> Publish {
    let tag = if kind == ChunkKind::Key { 'K' } else { 'D' };
    Publish {
        data: FrameData::Binary(Bytes::from(format!("{tag}{ts}"))),
        chunk: Some(ChunkInfo {
            kind,
            timestamp: f64::from(ts),
            duration: Some(33_333.0),
        }),
        config,
        capture_time: Some(f64::from(ts) / 1000.0),
    }
}

fn key(ts: u32) -> Publish {
    wc(ChunkKind::Key, ts, None)
}

fn delta(ts: u32) -> Publish {
    wc(ChunkKind::Delta, ts, None)
}

fn config(codec: &str) -> serde_json::Value {
    json!({"codec": codec, "codedWidth": 640, "codedHeight": 480})
}

/// A frame's bytes: binary as is, text base64-decoded.
fn raw(data: &FrameData) -> Vec<u8> {
    match data {
        FrameData::Binary(b) => b.to_vec(),
        FrameData::Text(t) => B64.decode(t).expect("base64 text"),
    }
}

fn concat<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> Vec<u8> {
    frames.into_iter().flat_map(|f| raw(&f.data)).collect()
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

// ---------------------------------------------------------------------------------------------
// WebM fixtures (shared with the parser's tests: `webm::fixtures`)
// ---------------------------------------------------------------------------------------------

trait RelayChunks {
    fn chunks(&self) -> Vec<usize>;
    fn relayed(&self) -> &'static [u8];
}

impl RelayChunks for Fixture {
    /// The recorded chunks, except that a first chunk shorter than the 4-byte EBML magic is
    /// merged into the next: the relay only recognises WebM when one frame holds the whole
    /// magic (the one-byte head is tested on its own, see `Fixture::one_byte_head`).
    fn chunks(&self) -> Vec<usize> {
        let mut out = self.recorded.clone();
        while out.len() > 1 && out[0] < 4 {
            let first = out.remove(0);
            out[0] += first;
        }
        out
    }

    /// What the relay has sent once the whole file is in: all of it but a last Cluster without
    /// a video block, which the parser holds until the next Cluster says whether it was a
    /// keyframe start, or the streamer stops (Chrome ends an audio+video recording with an
    /// audio-only Cluster).
    fn relayed(&self) -> &'static [u8] {
        match self.layout.clusters.last() {
            Some(c) if c.video_at.is_none() => &self.data[..c.offset as usize],
            _ => self.data,
        }
    }
}

/// Stream offsets after each chunk.
fn ends(lens: &[usize]) -> Vec<usize> {
    lens.iter()
        .scan(0, |at, n| {
            *at += n;
            Some(*at)
        })
        .collect()
}

/// Publishes `data` to [`KEY`] cut at `lens`, 1 ms apart from `t`.
fn feed(d: &MediaRelay, data: &[u8], lens: &[usize], text: bool, t: Instant) {
    let mut at = 0;
    for (i, n) in lens.iter().enumerate() {
        publish(
            d,
            KEY,
            media_chunk(&data[at..at + n], text),
            t + ms(i as u64),
        );
        at += n;
    }
}

/// Random chunk lengths summing to `total`; the first is at least 4 (see [`Fixture::chunks`]).
fn random_chunks(total: usize, max: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let min = if out.is_empty() { 4 } else { 1 };
        let n = rng.random_range(min..=max).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// Splits every chunk at up to three random points: the result has every boundary of `lens`.
fn refine(lens: &[usize], rng: &mut StdRng) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        let lo = if i == 0 { 4.min(n) } else { 1 };
        let mut cuts: Vec<usize> = (0..rng.random_range(0..=3))
            .filter(|_| n > lo)
            .map(|_| rng.random_range(lo..n))
            .collect();
        cuts.push(n);
        cuts.sort_unstable();
        cuts.dedup();
        let mut prev = 0;
        for c in cuts {
            out.push(c - prev);
            prev = c;
        }
    }
    out
}
