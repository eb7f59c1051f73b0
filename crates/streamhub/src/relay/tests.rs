//! Unit tests for the sans-IO fan-out core, driven through a recording [`ViewerSink`].
//!
//! Time is never slept: every call takes an `Instant` built from one base `t0`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamhub_protocol::server::{StreamStatus, UserRef};
use streamhub_protocol::{ErrorCode, FrameData, Millis};

use super::*;

// ---------------------------------------------------------------------------------------------
// Test sink
// ---------------------------------------------------------------------------------------------

/// One frame as a viewer received it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    key: String,
    seq: u64,
    data: FrameData,
    timestamp: Millis,
}

/// What a [`Recorder`] keeps of each offer it accepts.
pub(super) trait Record: Clone + std::fmt::Debug + Send + Sync + 'static {
    fn of(stream_key: &str, frame: &Frame, resync: bool) -> Self;
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
}

/// A viewer sink that records every frame it accepts (the relay tests' and the media tests'
/// viewers).
///
/// It models a bounded queue: each accepted frame is "pending" until [`Recorder::drain`] is
/// called; once `capacity` frames are pending, offers answer [`Offer::Full`].
/// [`Recorder::close`] makes every later offer answer [`Offer::Closed`]. Clones share the same
/// state, so the test keeps one clone as a handle after handing the other to the distributor.
#[derive(Debug, Clone)]
pub(super) struct Recorder<T> {
    log: Arc<Mutex<Vec<T>>>,
    pending: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    capacity: usize,
    /// Answers `groupable() == false` (a media-channel viewer).
    solo: bool,
}

impl<T: Record> Recorder<T> {
    pub(super) fn unbounded() -> Self {
        Self::with_capacity(usize::MAX)
    }

    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            log: Arc::new(Mutex::new(Vec::new())),
            pending: Arc::new(AtomicUsize::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
            capacity,
            solo: false,
        }
    }

    /// A viewer that cannot be in a group: every frame is offered to it alone.
    pub(super) fn solo() -> Self {
        Self {
            solo: true,
            ..Self::unbounded()
        }
    }

    /// The viewer caught up: its queue is empty again.
    pub(super) fn drain(&self) {
        self.pending.store(0, Ordering::SeqCst);
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(super) fn received(&self) -> Vec<T> {
        self.log.lock().expect("sink log lock").clone()
    }

    pub(super) fn len(&self) -> usize {
        self.log.lock().expect("sink log lock").len()
    }
}

impl<T: Record> ViewerSink for Recorder<T> {
    fn groupable(&self) -> bool {
        !self.solo
    }

    fn offer(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer {
        if self.closed.load(Ordering::SeqCst) {
            return Offer::Closed;
        }
        if self.pending.load(Ordering::SeqCst) >= self.capacity {
            return Offer::Full;
        }
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.log
            .lock()
            .expect("sink log lock")
            .push(T::of(stream_key, frame, resync));
        Offer::Sent
    }
}

type TestSink = Recorder<Got>;

impl TestSink {
    fn seqs(&self) -> Vec<u64> {
        self.received().iter().map(|g| g.seq).collect()
    }
}

/// A shared send over [`TestSink`]s, modelled on socketioxide's room broadcast: members are
/// kept by (stream, sink); a broadcast offers the frame to each and counts who was full or
/// gone. `via_group` counts frames each member got this way.
#[derive(Default)]
struct TestGroup {
    members: Mutex<Vec<(String, TestSink)>>,
    via_group: Mutex<Vec<(usize, u64)>>,
    sinks: Mutex<Vec<TestSink>>,
}

impl TestGroup {
    fn index(&self, viewer: &TestSink) -> usize {
        let mut sinks = self.sinks.lock().expect("lock");
        match sinks.iter().position(|s| Arc::ptr_eq(&s.log, &viewer.log)) {
            Some(i) => i,
            None => {
                sinks.push(viewer.clone());
                sinks.len() - 1
            }
        }
    }

    fn is_member(&self, viewer: &TestSink) -> bool {
        self.members
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, s)| Arc::ptr_eq(&s.log, &viewer.log))
    }

    /// Seqs `viewer` got through the shared send.
    fn shared_seqs(&self, viewer: &TestSink) -> Vec<u64> {
        let i = self.index(viewer);
        let got = self.via_group.lock().expect("lock");
        got.iter()
            .filter(|(v, _)| *v == i)
            .map(|(_, q)| *q)
            .collect()
    }
}

impl GroupSink<TestSink> for &'static TestGroup {
    fn join(&self, key: &str, viewer: &TestSink) {
        assert!(!self.is_member(viewer), "joined twice");
        self.index(viewer);
        self.members
            .lock()
            .expect("lock")
            .push((key.to_owned(), viewer.clone()));
    }

    fn leave(&self, key: &str, viewer: &TestSink) {
        let mut m = self.members.lock().expect("lock");
        let before = m.len();
        m.retain(|(k, s)| !(k == key && Arc::ptr_eq(&s.log, &viewer.log)));
        assert_eq!(m.len() + 1, before, "left without being a member");
    }

    fn broadcast(&self, key: &str, frame: &Frame) -> GroupOffer {
        let members: Vec<TestSink> = self
            .members
            .lock()
            .expect("lock")
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
            .collect();
        let mut offer = GroupOffer::default();
        for m in members {
            match m.offer(key, frame, false) {
                Offer::Sent => {
                    let i = self.index(&m);
                    self.via_group.lock().expect("lock").push((i, frame.seq));
                }
                Offer::Full => offer.full += 1,
                Offer::Closed => offer.closed += 1,
            }
        }
        offer
    }
}

fn grouped_relay(
    limits: RelayLimits,
) -> (
    Distributor<TestSink, &'static TestGroup>,
    &'static TestGroup,
) {
    let group: &'static TestGroup = Box::leak(Box::default());
    (Distributor::with_group(limits, group), group)
}

#[test]
fn an_ungroupable_viewer_gets_every_frame_on_its_own() {
    let t0 = Instant::now();
    let (d, group) = grouped_relay(roomy());
    d.register_stream(new_stream("a", OWNER), t0)
        .expect("register");
    let shared = TestSink::unbounded();
    let solo = TestSink::solo();
    d.add_viewer("a", "shared", shared.clone()).expect("join");
    d.add_viewer("a", "solo", solo.clone()).expect("join");
    for n in 1..=40 {
        let out = d
            .distribute_stream_data("a", OWNER, frame_n(n), t0 + ms(n as u64), 0)
            .expect("publish");
        assert_eq!(out.reached, 2, "frame {n}");
        assert!(
            group.is_member(&shared) && !group.is_member(&solo),
            "frame {n}"
        );
    }
    assert_eq!(
        solo.seqs(),
        (1..=40).collect::<Vec<u64>>(),
        "offered one by one"
    );
}

#[test]
fn picture_viewers_get_frames_by_the_shared_send_and_probes_find_the_slow_one() {
    let t0 = Instant::now();
    let (d, group) = grouped_relay(roomy());
    d.register_stream(new_stream("a", OWNER), t0)
        .expect("register");
    let fast = TestSink::unbounded();
    let slow = TestSink::with_capacity(3);
    let other = TestSink::unbounded();
    d.add_viewer("a", "fast", fast.clone()).expect("join");
    d.add_viewer("a", "slow", slow.clone()).expect("join");
    let p = 10;
    let publish = |n: u64, at: Duration| {
        d.distribute_stream_data("a", OWNER, frame_n(n as usize), t0 + at, 0)
            .expect("publish")
    };
    // Frame 1 joins both to the group and goes by the shared send.
    let first = publish(1, ms(0));
    assert_eq!(first.reached, 2);
    assert!(group.is_member(&fast) && group.is_member(&slow));
    // A viewer that joins later is a member from its first frame on, never twice.
    d.add_viewer("a", "other", other.clone()).expect("join");
    for n in 2..=p {
        // Reached: the viewers whose queue took it, counted once, shared or not.
        let want = if n <= 3 { 3 } else { 2 };
        assert_eq!(publish(n, ms(10 * n)).reached, want, "frame {n}");
    }
    // `slow` took 3 and is full: the shared send of frame 4 counted one full queue, so frame
    // 5 went viewer by viewer (a probe), found it, and it left the group; it gets frames one
    // by one from then on (all refused: it does not read; after 5, 6 and 7 it is at level 1,
    // so 9 is not even offered).
    assert_eq!(slow.seqs(), [1, 2, 3]);
    assert!(!group.is_member(&slow));
    assert!(group.is_member(&fast) && group.is_member(&other));
    let st = d.get_stream_stats("a", t0).expect("stats");
    assert_eq!(st.dropped_slow_viewer, 6, "4 (shared), 5, 6, 7, 8, 10");
    // Every viewer got every frame once, in order, whichever way it went.
    assert_eq!(fast.seqs(), (1..=p).collect::<Vec<_>>());
    assert_eq!(other.seqs(), (2..=p).collect::<Vec<_>>());
    assert_eq!(
        group.shared_seqs(&fast),
        [1, 2, 3, 4, 6, 7, 8, 9, 10],
        "all but the probe frame shared"
    );
    assert_eq!(st.frames_out, p + (p - 1) + 3);

    // Caught up and clear for 5 s: at level 1 frame 11 is not offered to it; frame 12, sent to
    // it alone, shows its queue takes frames again and moves it back to level 0; it is back
    // in the group for the next shared frame.
    slow.drain();
    publish(p + 1, secs(6));
    publish(p + 2, secs(6));
    assert!(!group.is_member(&slow));
    publish(p + 3, secs(6));
    assert!(group.is_member(&slow));
    assert_eq!(slow.seqs()[3..], [p + 2, p + 3]);
    assert_eq!(group.shared_seqs(&slow), [1, 2, 3, p + 3]);
    // Leaving the stream leaves the group.
    assert!(d.remove_viewer("a", "fast"));
    assert!(!group.is_member(&fast));
    d.unregister_stream("a");
    assert!(
        group.members.lock().expect("lock").is_empty(),
        "ending empties the group"
    );
}

#[test]
fn encoded_video_never_goes_by_the_shared_send() {
    let t0 = Instant::now();
    let (d, group) = grouped_relay(roomy());
    d.register_stream(new_stream("a", OWNER), t0)
        .expect("register");
    let v = TestSink::unbounded();
    d.add_viewer("a", "v", v.clone()).expect("join");
    d.distribute_stream_data("a", OWNER, frame_n(0), t0, 0)
        .expect("picture");
    assert!(group.is_member(&v));
    // The stream turns into WebCodecs video: the member leaves, chunks go one by one.
    let chunk = Incoming {
        data: FrameData::Binary(Bytes::from_static(b"k")),
        chunk: Some(streamhub_protocol::client::ChunkInfo {
            kind: streamhub_protocol::client::ChunkKind::Key,
            timestamp: 0.0,
            duration: None,
        }),
        config: None,
    };
    for i in 0..(2 * PROBE_EVERY) {
        d.distribute("a", OWNER, chunk.clone(), t0 + ms(i), 0)
            .expect("chunk");
    }
    assert!(!group.is_member(&v));
    assert_eq!(v.seqs().len() as u64, 1 + 2 * PROBE_EVERY);
    assert_eq!(group.shared_seqs(&v), [1]);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub(super) const OWNER: &str = "conn-owner";
const TOKEN: &str = "secret-token";

/// Default limits, but with a publish rate high enough that bursts in tests never hit it.
pub(super) fn roomy() -> RelayLimits {
    RelayLimits {
        max_fps: 1000,
        ..RelayLimits::default()
    }
}

fn relay(limits: RelayLimits) -> Distributor<TestSink> {
    Distributor::new(limits)
}

pub(super) fn new_stream(key: &str, owner: &str) -> NewStream {
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
    }
}

fn register(d: &Distributor<TestSink>, key: &str, owner: &str, now: Instant) -> StreamInfo {
    d.register_stream(new_stream(key, owner), now)
        .expect("register_stream")
}

fn text(s: &str) -> FrameData {
    FrameData::Text(s.to_owned())
}

fn frame_n(n: usize) -> FrameData {
    FrameData::Text(format!("frame-{n}"))
}

fn publish(d: &Distributor<TestSink>, key: &str, data: FrameData, now: Instant) -> Delivery {
    d.distribute_stream_data(key, OWNER, data, now, 0)
        .expect("owner publish")
}

fn join(d: &Distributor<TestSink>, key: &str, conn: &str, sink: &TestSink) -> Joined {
    d.add_viewer(key, conn, sink.clone()).expect("add_viewer")
}

fn stats(d: &Distributor<TestSink>, key: &str, now: Instant) -> StreamStats {
    d.get_stream_stats(key, now).expect("stream exists")
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn error_codes_map_to_protocol_codes() {
    let cases = [
        (RelayError::NotFound("k".into()), ErrorCode::StreamNotFound),
        (RelayError::NotOwner("k".into()), ErrorCode::NotOwner),
        (
            RelayError::FrameTooLarge { size: 2, max: 1 },
            ErrorCode::FrameTooLarge,
        ),
        (
            RelayError::RateLimited("k".into(), 5),
            ErrorCode::RateLimited,
        ),
        (RelayError::ServerFull(3), ErrorCode::ServerFull),
        (
            RelayError::InvalidToken("k".into()),
            ErrorCode::InvalidToken,
        ),
        (RelayError::NotInStream("k".into()), ErrorCode::NotInStream),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code, "{err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Registry: register / unregister / list / count
// ---------------------------------------------------------------------------------------------

#[test]
fn register_returns_created_info_and_counts() {
    let t0 = Instant::now();
    let d = relay(roomy());
    assert_eq!(d.stream_count(), 0);

    let info = register(&d, "a", OWNER, t0);
    assert_eq!(info.stream_key, "a");
    assert_eq!(info.title, "title of a");
    assert_eq!(info.streamer.id, format!("user-{OWNER}"));
    assert_eq!(info.status, StreamStatus::Created);
    assert_eq!(info.created_at, 1_000);
    assert_eq!(info.started_at, None);
    assert_eq!(info.viewer_count, 0);

    register(&d, "b", OWNER, t0);
    assert_eq!(d.stream_count(), 2);
    assert_eq!(d.stream_info("a"), Some(info));
}

#[test]
fn unregister_removes_and_reports_ended() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);

    let gone = d.unregister_stream("a").expect("a was registered");
    assert_eq!(gone.stream_key, "a");
    assert_eq!(gone.status, StreamStatus::Ended);
    assert_eq!(d.stream_count(), 1);
    assert!(d.stream_info("a").is_none());
    assert!(d.get_stream_stats("a", t0).is_none());
    assert!(d.stream_info("b").is_some());

    assert!(d.unregister_stream("a").is_none(), "second unregister");
    assert!(d.unregister_stream("never").is_none());
    assert_eq!(d.stream_count(), 1);
}

#[test]
fn register_refuses_past_max_streams() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        max_streams: 2,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    let err = d
        .register_stream(new_stream("c", OWNER), t0)
        .expect_err("third stream is over the limit");
    assert_eq!(err, RelayError::ServerFull(2));
    assert_eq!(err.code(), ErrorCode::ServerFull);
    assert_eq!(d.stream_count(), 2);

    // Room again once one leaves.
    d.unregister_stream("a");
    register(&d, "c", OWNER, t0);
    assert_eq!(d.stream_count(), 2);
}

#[test]
fn register_refuses_a_key_in_use_and_keeps_the_stream_that_has_it() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    d.add_viewer("a", "v1", TestSink::unbounded())
        .expect("join");
    let err = d
        .register_stream(new_stream("a", "someone-else"), t0)
        .expect_err("the key is taken");
    assert_eq!(err, RelayError::KeyTaken("a".into()));
    assert_eq!(err.code(), ErrorCode::ServerFull);
    assert_eq!(d.owner("a").as_deref(), Some(OWNER));
    assert_eq!(d.get_stream_stats("a", t0).map(|s| s.viewer_count), Some(1));
}

#[test]
fn list_shows_only_started_streams_newest_first() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "created", OWNER, t0);
    register(&d, "older", OWNER, t0);
    register(&d, "newer", OWNER, t0);
    assert!(d.list().is_empty(), "nothing started yet");

    d.start_stream("older", OWNER, 5_000).expect("start older");
    // A first frame starts a stream too.
    d.distribute_stream_data("newer", OWNER, text("x"), t0, 9_000)
        .expect("publish newer");

    let listed = d.list();
    let keys: Vec<&str> = listed.iter().map(|i| i.stream_key.as_str()).collect();
    assert_eq!(keys, ["newer", "older"]);
    assert!(listed.iter().all(|i| i.status == StreamStatus::Live));
    assert_eq!(listed[0].started_at, Some(9_000));
    assert_eq!(listed[1].started_at, Some(5_000));
    assert_eq!(d.stream_count(), 3, "created streams still count");
}

#[test]
fn list_includes_reconnecting_streams() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    d.start_stream("a", OWNER, 10).expect("start");
    d.owner_disconnected(OWNER, t0);
    let listed = d.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, StreamStatus::Reconnecting);
}

#[test]
fn set_title_only_by_owner() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    assert_eq!(
        d.set_title("a", "intruder", "hacked".into()),
        Err(RelayError::NotOwner("a".into()))
    );
    let info = d.set_title("a", OWNER, "new title".into()).expect("owner");
    assert_eq!(info.title, "new title");
    assert_eq!(d.stream_info("a").expect("exists").title, "new title");
    assert_eq!(
        d.set_title("zzz", OWNER, "x".into()),
        Err(RelayError::NotFound("zzz".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// Publishing and fan-out
// ---------------------------------------------------------------------------------------------

#[test]
fn seq_starts_at_one_and_grows_by_one() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let seqs: Vec<u64> = (0..10)
        .map(|i| publish(&d, "a", frame_n(i), t0).seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
}

#[test]
fn seq_is_per_stream() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    assert_eq!(publish(&d, "a", text("1"), t0).seq, 1);
    assert_eq!(publish(&d, "a", text("2"), t0).seq, 2);
    assert_eq!(publish(&d, "b", text("1"), t0).seq, 1);
}

#[test]
fn every_viewer_gets_every_frame_exactly_once() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let sinks: Vec<TestSink> = (0..3).map(|_| TestSink::unbounded()).collect();
    for (i, s) in sinks.iter().enumerate() {
        join(&d, "a", &format!("viewer-{i}"), s);
    }

    for i in 0..5 {
        let delivery = publish(&d, "a", frame_n(i), t0);
        assert_eq!(delivery.reached, 3);
        assert!(delivery.evicted.is_empty());
    }
    for s in &sinks {
        let got = s.received();
        assert_eq!(
            got.iter().map(|g| g.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(got.iter().all(|g| g.key == "a"));
        let data: Vec<FrameData> = got.into_iter().map(|g| g.data).collect();
        assert_eq!(data, (0..5).map(frame_n).collect::<Vec<_>>());
    }
    let st = stats(&d, "a", t0);
    assert_eq!(st.frames_in, 5);
    assert_eq!(st.frames_out, 15);
}

#[test]
fn a_large_audience_gets_per_viewer_policy_and_evictions_in_order() {
    // 600 viewers: every third one takes one frame and is then full, six others close; the
    // rest take everything. Each gets its own outcome; evictions come in list order.
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        stall_timeout: ms(500),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let sinks: Vec<TestSink> = (0..600)
        .map(|i| {
            if i % 3 == 0 {
                TestSink::with_capacity(1)
            } else {
                TestSink::unbounded()
            }
        })
        .collect();
    for (i, s) in sinks.iter().enumerate() {
        join(&d, "a", &format!("v{i:03}"), s);
    }
    for (i, s) in sinks.iter().enumerate() {
        if i % 3 == 1 && i < 18 {
            s.close();
        }
    }
    let first = publish(&d, "a", frame_n(0), t0);
    assert_eq!(first.reached, 600 - 6);
    for n in 1..4 {
        let del = publish(&d, "a", frame_n(n), t0 + ms(100 * n as u64));
        assert_eq!(del.reached, 400 - 6, "frame {n}");
        assert!(del.evicted.is_empty());
    }
    // Three refusals: the full viewers are at level 1 now (even frames only), so frame 5 is
    // not offered to them. Frame 6 is, 600 ms after their first refusal: evicted, in order.
    let del = publish(&d, "a", frame_n(4), t0 + ms(700));
    assert!(del.evicted.is_empty());
    let del = publish(&d, "a", frame_n(5), t0 + ms(700));
    let expected: Vec<String> = (0..600).step_by(3).map(|i| format!("v{i:03}")).collect();
    assert_eq!(del.evicted, expected);
    for (i, s) in sinks.iter().enumerate() {
        let want: Vec<u64> = match i {
            _ if i % 3 == 1 && i < 18 => vec![],
            _ if i % 3 == 0 => vec![1],
            _ => vec![1, 2, 3, 4, 5, 6],
        };
        assert_eq!(s.seqs(), want, "viewer {i}");
    }
    let st = stats(&d, "a", t0 + ms(700));
    assert_eq!(st.viewer_count, 400 - 6);
    assert_eq!(st.dropped_slow_viewer, 200 * 4);
    assert_eq!(st.evicted, 200);
    assert_eq!(st.frames_out, 594 + 5 * 394);
}

#[test]
fn reached_counts_viewers_and_is_zero_without_any() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    assert_eq!(publish(&d, "a", text("x"), t0).reached, 0);
    let s1 = TestSink::unbounded();
    join(&d, "a", "v1", &s1);
    assert_eq!(publish(&d, "a", text("x"), t0).reached, 1);
    let s2 = TestSink::unbounded();
    join(&d, "a", "v2", &s2);
    assert_eq!(publish(&d, "a", text("x"), t0).reached, 2);
    // A frame published before a viewer joined is not pushed to it live.
    assert_eq!(s1.seqs(), [2, 3]);
    assert_eq!(s2.seqs(), [3]);
}

#[test]
fn frames_only_reach_viewers_of_their_stream() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    let sa = TestSink::unbounded();
    let sb = TestSink::unbounded();
    join(&d, "a", "va", &sa);
    join(&d, "b", "vb", &sb);
    publish(&d, "a", text("for a"), t0);
    assert_eq!(sa.received().len(), 1);
    assert!(sb.received().is_empty());
}

#[test]
fn text_and_binary_data_arrive_unchanged_with_wall_timestamp() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);

    // Binary that is valid UTF-8, binary that is not, and base64 text.
    let payloads = [
        FrameData::Text("aGVsbG8=".into()),
        FrameData::Binary(Bytes::from_static(b"hello")),
        FrameData::Binary(Bytes::from_static(&[0, 159, 146, 150, 255])),
        FrameData::Text(String::new()),
    ];
    let walls: [Millis; 4] = [1_700_000_000_000, 1_700_000_000_033, 42, 7];
    for (p, w) in payloads.iter().zip(walls) {
        let delivery = d
            .distribute_stream_data("a", OWNER, p.clone(), t0, w)
            .expect("publish");
        assert_eq!(delivery.reached, 1);
    }

    let got = s.received();
    assert_eq!(got.len(), 4);
    for ((g, p), w) in got.iter().zip(&payloads).zip(walls) {
        assert_eq!(&g.data, p);
        assert_eq!(g.data.is_binary(), p.is_binary());
        assert_eq!(g.timestamp, w);
    }
    // The catch-up ring keeps the same frames.
    let ring = d
        .add_viewer("a", "late", TestSink::unbounded())
        .expect("join");
    let ring_data: Vec<&FrameData> = ring.buffer.iter().map(|f| &f.data).collect();
    assert_eq!(ring_data, payloads.iter().collect::<Vec<_>>());
    let ring_ts: Vec<Millis> = ring.buffer.iter().map(|f| f.timestamp).collect();
    assert_eq!(ring_ts, walls);

    let st = stats(&d, "a", t0);
    let bytes: usize = payloads.iter().map(FrameData::len).sum();
    assert_eq!(st.bytes_in, bytes as u64);
}

#[test]
fn only_the_owner_may_publish() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = TestSink::unbounded();
    join(&d, "a", "viewer", &s);

    for conn in ["viewer", "stranger", ""] {
        let err = d
            .distribute_stream_data("a", conn, text("x"), t0, 0)
            .expect_err("non-owner publish");
        assert_eq!(err, RelayError::NotOwner("a".into()));
        assert_eq!(err.code(), ErrorCode::NotOwner);
    }
    assert!(s.received().is_empty());
    let st = stats(&d, "a", t0);
    assert_eq!(st.frames_in, 0);
    assert_eq!(d.stream_info("a").expect("a").status, StreamStatus::Created);
}

#[test]
fn publishing_to_unknown_key_is_not_found() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let err = d
        .distribute_stream_data("nope", OWNER, text("x"), t0, 0)
        .expect_err("unknown stream");
    assert_eq!(err, RelayError::NotFound("nope".into()));
    assert_eq!(err.code(), ErrorCode::StreamNotFound);
}

#[test]
fn rejected_frames_do_not_use_up_seq() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        max_frame_bytes: 4,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    assert_eq!(publish(&d, "a", text("1"), t0).seq, 1);
    d.distribute_stream_data("a", OWNER, text("too big"), t0, 0)
        .expect_err("too large");
    d.distribute_stream_data("a", "other", text("2"), t0, 0)
        .expect_err("not owner");
    assert_eq!(publish(&d, "a", text("2"), t0).seq, 2);
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

#[test]
fn first_frame_auto_starts_a_created_stream_once() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);

    let first = d
        .distribute_stream_data("a", OWNER, text("1"), t0, 12_345)
        .expect("publish");
    let started = first.started.expect("first frame starts the stream");
    assert_eq!(started.stream_key, "a");
    assert_eq!(started.status, StreamStatus::Live);
    assert_eq!(started.started_at, Some(12_345));
    assert_eq!(started.viewer_count, 1);

    let second = d
        .distribute_stream_data("a", OWNER, text("2"), t0, 12_400)
        .expect("publish");
    assert_eq!(second.started, None);

    let info = d.stream_info("a").expect("a");
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.started_at, Some(12_345), "started_at is not moved");
    assert_eq!(stats(&d, "a", t0).started_at, Some(12_345));
}

#[test]
fn start_stream_changes_state_once() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);

    let (info, changed) = d.start_stream("a", OWNER, 500).expect("start");
    assert!(changed);
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.started_at, Some(500));

    let (info, changed) = d.start_stream("a", OWNER, 900).expect("start again");
    assert!(!changed, "starting a live stream is a no-op");
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.started_at, Some(500));

    // Already live, so the first frame does not report a start.
    assert_eq!(publish(&d, "a", text("x"), t0).started, None);
}

#[test]
fn start_stream_checks_owner_and_key() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    assert_eq!(
        d.start_stream("a", "other", 1),
        Err(RelayError::NotOwner("a".into()))
    );
    assert_eq!(d.stream_info("a").expect("a").status, StreamStatus::Created);
    assert_eq!(
        d.start_stream("b", OWNER, 1),
        Err(RelayError::NotFound("b".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// Catch-up ring
// ---------------------------------------------------------------------------------------------

#[test]
fn ring_holds_the_last_30_frames_oldest_first() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    for i in 1..=40 {
        publish(&d, "a", frame_n(i), t0);
    }
    let joined = join(&d, "a", "late", &TestSink::unbounded());
    assert!(joined.new);
    assert_eq!(joined.buffer.len(), 30);
    let seqs: Vec<u64> = joined.buffer.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (11..=40).collect::<Vec<u64>>());
    let data: Vec<FrameData> = joined.buffer.iter().map(|f| f.data.clone()).collect();
    assert_eq!(data, (11..=40).map(frame_n).collect::<Vec<_>>());

    let st = stats(&d, "a", t0);
    assert_eq!(st.buffer_size, 30);
    assert_eq!(st.viewer_count, 1);
}

#[test]
fn ring_with_few_frames_holds_them_all() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let empty = join(&d, "a", "early", &TestSink::unbounded());
    assert!(empty.buffer.is_empty());
    for i in 1..=3 {
        publish(&d, "a", frame_n(i), t0);
    }
    let joined = join(&d, "a", "late", &TestSink::unbounded());
    assert_eq!(
        joined.buffer.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(stats(&d, "a", t0).buffer_size, 3);
}

#[test]
fn ring_of_zero_keeps_nothing() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        buffer_frames: 0,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let live = TestSink::unbounded();
    join(&d, "a", "v", &live);
    for i in 1..=5 {
        publish(&d, "a", frame_n(i), t0);
    }
    assert_eq!(live.seqs(), [1, 2, 3, 4, 5], "live delivery still works");
    let joined = join(&d, "a", "late", &TestSink::unbounded());
    assert!(joined.buffer.is_empty());
    let st = stats(&d, "a", t0);
    assert_eq!(st.buffer_size, 0);
    assert_eq!(st.viewer_count, 2);
}

#[test]
fn stats_track_viewer_count_and_buffer_size() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        buffer_frames: 3,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let st = stats(&d, "a", t0);
    assert_eq!((st.viewer_count, st.buffer_size), (0, 0));

    join(&d, "a", "v1", &TestSink::unbounded());
    join(&d, "a", "v2", &TestSink::unbounded());
    publish(&d, "a", text("1"), t0);
    let st = stats(&d, "a", t0);
    assert_eq!((st.viewer_count, st.buffer_size), (2, 1));

    for _ in 0..5 {
        publish(&d, "a", text("n"), t0);
    }
    d.remove_viewer("a", "v1");
    let st = stats(&d, "a", t0);
    assert_eq!((st.viewer_count, st.buffer_size), (1, 3));
}

#[test]
fn stats_serialize_camel_case() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let v = serde_json::to_value(stats(&d, "a", t0)).expect("serialize");
    for field in [
        "viewerCount",
        "bufferSize",
        "fps",
        "bitrateKbps",
        "startedAt",
        "framesIn",
        "bytesIn",
        "framesOut",
        "droppedSlowViewer",
        "droppedRateLimited",
        "droppedTooLarge",
        "evicted",
    ] {
        assert!(v.get(field).is_some(), "missing {field} in {v}");
    }
}

// ---------------------------------------------------------------------------------------------
// Frame size and publish rate
// ---------------------------------------------------------------------------------------------

#[test]
fn frame_over_the_limit_is_refused_and_counted() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        max_frame_bytes: 8,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);

    let big = FrameData::Binary(Bytes::from(vec![0u8; 9]));
    let err = d
        .distribute_stream_data("a", OWNER, big, t0, 0)
        .expect_err("over the limit");
    assert_eq!(err, RelayError::FrameTooLarge { size: 9, max: 8 });
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    // Text is measured in UTF-8 bytes: 3 x 3-byte characters = 9 bytes.
    let err = d
        .distribute_stream_data("a", OWNER, text("€€€"), t0, 0)
        .expect_err("over the limit in bytes");
    assert_eq!(err, RelayError::FrameTooLarge { size: 9, max: 8 });

    let st = stats(&d, "a", t0);
    assert_eq!(st.dropped_too_large, 2);
    assert_eq!(st.frames_in, 0);
    assert_eq!(st.buffer_size, 0);
    assert!(s.received().is_empty());
    assert_eq!(
        d.stream_info("a").expect("a").status,
        StreamStatus::Created,
        "a refused frame does not start the stream"
    );

    // Exactly at the limit passes.
    let at_limit = FrameData::Binary(Bytes::from(vec![1u8; 8]));
    let delivery = publish(&d, "a", at_limit, t0);
    assert_eq!(delivery.seq, 1);
    assert_eq!(stats(&d, "a", t0).dropped_too_large, 2);
}

#[test]
fn publish_rate_limits_the_sixth_frame_and_refills_after_a_second() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        max_fps: 5,
        ..RelayLimits::default()
    });
    register(&d, "a", OWNER, t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);

    for i in 1..=5 {
        assert_eq!(publish(&d, "a", frame_n(i), t0).seq, i as u64);
    }
    let err = d
        .distribute_stream_data("a", OWNER, text("6th"), t0, 0)
        .expect_err("sixth frame in the same instant");
    assert_eq!(err, RelayError::RateLimited("a".into(), 5));
    assert_eq!(err.code(), ErrorCode::RateLimited);
    let st = stats(&d, "a", t0);
    assert_eq!(st.dropped_rate_limited, 1);
    assert_eq!(st.frames_in, 5);
    assert_eq!(s.seqs(), [1, 2, 3, 4, 5]);

    // Still empty a little later.
    assert!(
        d.distribute_stream_data("a", OWNER, text("x"), t0 + ms(100), 0)
            .is_err()
    );
    assert_eq!(stats(&d, "a", t0).dropped_rate_limited, 2);

    // A second later the bucket is full again: five more pass, the sixth does not.
    let t1 = t0 + secs(1) + ms(100);
    for i in 6..=10 {
        assert_eq!(publish(&d, "a", frame_n(i), t1).seq, i as u64);
    }
    assert!(matches!(
        d.distribute_stream_data("a", OWNER, text("y"), t1, 0),
        Err(RelayError::RateLimited(..))
    ));
    assert_eq!(stats(&d, "a", t1).dropped_rate_limited, 3);
    assert_eq!(s.seqs(), (1..=10).collect::<Vec<u64>>());
}

#[test]
fn publish_rate_allows_a_steady_max_fps() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        max_fps: 5,
        ..RelayLimits::default()
    });
    register(&d, "a", OWNER, t0);
    // 5 frames/s spaced 200 ms apart, for ten seconds: none refused.
    for i in 0..50u64 {
        publish(&d, "a", frame_n(i as usize), t0 + ms(200 * i));
    }
    assert_eq!(stats(&d, "a", t0 + secs(10)).dropped_rate_limited, 0);
}

// ---------------------------------------------------------------------------------------------
// Slow viewers, stalls, closed sinks
// ---------------------------------------------------------------------------------------------

#[test]
fn slow_viewer_drops_frames_without_hurting_a_healthy_one() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let healthy = TestSink::unbounded();
    let slow = TestSink::with_capacity(2);
    join(&d, "a", "healthy", &healthy);
    join(&d, "a", "slow", &slow);

    let mut reached = Vec::new();
    for i in 1..=10 {
        reached.push(publish(&d, "a", frame_n(i), t0 + ms(10 * i as u64)).reached);
    }
    assert_eq!(reached, [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(healthy.seqs(), (1..=10).collect::<Vec<u64>>());
    assert_eq!(slow.seqs(), [1, 2]);

    let st = stats(&d, "a", t0 + secs(1));
    // Offered and refused: 3, 4, 5 (three drops: level 1, every 2nd frame), 6, 8, 10 (level 2,
    // every 4th). Frames skipped by the level are not offered, so not dropped.
    assert_eq!(st.dropped_slow_viewer, 6);
    assert_eq!(st.levels, [1, 0, 1]);
    assert_eq!(st.frames_out, 12);
    assert_eq!(st.viewer_count, 2, "still within the stall timeout");
    assert_eq!(st.evicted, 0);
}

#[test]
fn slow_viewer_resumes_at_the_newest_frame_after_draining() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let healthy = TestSink::unbounded();
    let slow = TestSink::with_capacity(2);
    join(&d, "a", "healthy", &healthy);
    join(&d, "a", "slow", &slow);

    for i in 1..=10 {
        publish(&d, "a", frame_n(i), t0 + ms(10 * i as u64));
    }
    slow.drain();
    // The slow viewer is at level 2 now (every 4th frame): 11 is skipped, 12 is offered.
    assert_eq!(publish(&d, "a", frame_n(11), t0 + ms(200)).reached, 1);
    let delivery = publish(&d, "a", frame_n(12), t0 + ms(210));
    assert_eq!(delivery.seq, 12);
    assert_eq!(delivery.reached, 2);

    // 3..=10 are gone for good: no backlog replay, straight to the live edge.
    assert_eq!(slow.seqs(), [1, 2, 12]);
    let last = slow.received().pop().expect("a frame after drain");
    assert_eq!(last.data, frame_n(12));
    assert_eq!(healthy.seqs(), (1..=12).collect::<Vec<u64>>());
    assert_eq!(stats(&d, "a", t0 + ms(200)).dropped_slow_viewer, 6);
}

#[test]
fn viewer_full_for_the_stall_timeout_is_evicted() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        stall_timeout: secs(10),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let healthy = TestSink::unbounded();
    let stuck = TestSink::with_capacity(0); // full from the first offer, at t0
    join(&d, "a", "healthy", &healthy);
    join(&d, "a", "stuck", &stuck);
    d.take_viewer_count_changes();

    let first = publish(&d, "a", text("t0"), t0);
    assert_eq!(first.reached, 1);
    assert!(first.evicted.is_empty());

    let before = publish(&d, "a", text("t0+9s"), t0 + secs(9));
    assert!(before.evicted.is_empty(), "9 s is under the timeout");
    assert_eq!(stats(&d, "a", t0 + secs(9)).viewer_count, 2);
    assert!(d.check_member("a", "stuck").is_ok());

    let at = publish(&d, "a", text("t0+10s"), t0 + secs(10));
    assert_eq!(at.evicted, ["stuck".to_owned()]);
    assert_eq!(at.reached, 1);

    let st = stats(&d, "a", t0 + secs(10));
    assert_eq!(st.viewer_count, 1);
    assert_eq!(st.evicted, 1);
    assert_eq!(st.dropped_slow_viewer, 3);
    assert_eq!(d.stream_info("a").expect("a").viewer_count, 1);
    assert_eq!(
        d.check_member("a", "stuck"),
        Err(RelayError::NotInStream("a".into()))
    );
    assert_eq!(d.take_viewer_count_changes(), [("a".to_owned(), 1)]);

    // No more frames routed to it, and no second eviction report.
    let after = publish(&d, "a", text("later"), t0 + secs(11));
    assert!(after.evicted.is_empty());
    assert!(stuck.received().is_empty());
    assert_eq!(stats(&d, "a", t0 + secs(11)).evicted, 1);
    assert_eq!(healthy.received().len(), 4);
}

#[test]
fn viewer_that_drains_before_the_timeout_is_not_evicted() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        stall_timeout: secs(10),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let slow = TestSink::with_capacity(1);
    join(&d, "a", "slow", &slow);

    publish(&d, "a", text("fills the queue"), t0);
    // Full from t0 + 1 s on.
    let d1 = publish(&d, "a", text("dropped"), t0 + secs(1));
    assert_eq!(d1.reached, 0);
    let d2 = publish(&d, "a", text("dropped"), t0 + secs(8));
    assert!(d2.evicted.is_empty());

    // Catches up at 9 s: the next offer succeeds and the stall clock resets.
    slow.drain();
    let d3 = publish(&d, "a", text("fits"), t0 + secs(9));
    assert_eq!(d3.reached, 1);

    // Full again from 11 s on. Had the stall clock kept its 1 s start, 11 s would evict; it has
    // not been full for 10 s straight at 11, 15 or 19 s.
    for at in [11, 15, 19] {
        let del = publish(&d, "a", text("dropped"), t0 + secs(at));
        assert!(del.evicted.is_empty(), "evicted at {at} s");
    }
    assert_eq!(stats(&d, "a", t0 + secs(19)).viewer_count, 1);
    assert_eq!(stats(&d, "a", t0 + secs(19)).evicted, 0);

    // ...but 10 s after it filled up again (first Full at 11 s), it goes.
    let del = publish(&d, "a", text("dropped"), t0 + secs(21));
    assert_eq!(del.evicted, ["slow".to_owned()]);
    assert_eq!(slow.seqs(), [1, 4]);
}

#[test]
fn closed_sink_is_removed_silently_on_next_publish() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let keep = TestSink::unbounded();
    let gone = TestSink::unbounded();
    join(&d, "a", "keep", &keep);
    join(&d, "a", "gone", &gone);
    publish(&d, "a", text("1"), t0);
    d.take_viewer_count_changes();

    gone.close();
    assert_eq!(
        stats(&d, "a", t0).viewer_count,
        2,
        "not noticed until a publish"
    );
    let delivery = publish(&d, "a", text("2"), t0);
    assert_eq!(delivery.reached, 1);
    assert!(delivery.evicted.is_empty(), "closing is not an eviction");

    let st = stats(&d, "a", t0);
    assert_eq!(st.viewer_count, 1);
    assert_eq!(st.evicted, 0);
    assert_eq!(st.dropped_slow_viewer, 0);
    assert_eq!(gone.seqs(), [1]);
    assert_eq!(keep.seqs(), [1, 2]);
    assert!(d.check_member("a", "gone").is_err());
    assert_eq!(d.take_viewer_count_changes(), [("a".to_owned(), 1)]);
}

// ---------------------------------------------------------------------------------------------
// Viewers joining and leaving
// ---------------------------------------------------------------------------------------------

#[test]
fn add_viewer_reports_stream_and_count() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let j1 = join(&d, "a", "v1", &TestSink::unbounded());
    assert!(j1.new);
    assert_eq!(j1.viewer_count, 1);
    assert_eq!(j1.stream.stream_key, "a");
    assert_eq!(j1.stream.viewer_count, 1);
    let j2 = join(&d, "a", "v2", &TestSink::unbounded());
    assert_eq!(j2.viewer_count, 2);

    assert_eq!(
        d.add_viewer("missing", "v1", TestSink::unbounded())
            .expect_err("no such stream"),
        RelayError::NotFound("missing".into())
    );
}

#[test]
fn adding_the_same_viewer_twice_is_a_no_op() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let first = TestSink::unbounded();
    let second = TestSink::unbounded();
    assert!(join(&d, "a", "v", &first).new);
    let again = join(&d, "a", "v", &second);
    assert!(!again.new);
    assert_eq!(again.viewer_count, 1);
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    // Frames are delivered once, to the sink registered first.
    let delivery = publish(&d, "a", text("x"), t0);
    assert_eq!(delivery.reached, 1);
    assert_eq!(first.seqs(), [1]);
    assert!(second.received().is_empty());
}

#[test]
fn remove_viewer_reports_whether_it_was_there() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);
    join(&d, "a", "w", &TestSink::unbounded());

    assert!(d.remove_viewer("a", "v"));
    assert!(!d.remove_viewer("a", "v"), "already gone");
    assert!(!d.remove_viewer("a", "never-joined"));
    assert!(!d.remove_viewer("no-such-stream", "w"));
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    publish(&d, "a", text("x"), t0);
    assert!(s.received().is_empty(), "a viewer that left gets nothing");

    // Can join again afterwards.
    assert!(join(&d, "a", "v", &s).new);
}

#[test]
fn viewer_count_changes_are_reported_once() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    assert!(d.take_viewer_count_changes().is_empty(), "no viewers yet");

    join(&d, "a", "v1", &TestSink::unbounded());
    assert_eq!(d.take_viewer_count_changes(), [("a".to_owned(), 1)]);
    assert!(d.take_viewer_count_changes().is_empty(), "already reported");

    join(&d, "a", "v2", &TestSink::unbounded());
    join(&d, "a", "v3", &TestSink::unbounded());
    assert_eq!(
        d.take_viewer_count_changes(),
        [("a".to_owned(), 3)],
        "coalesced to the latest count"
    );

    d.remove_viewer("a", "v1");
    join(&d, "b", "v1", &TestSink::unbounded());
    let mut changes = d.take_viewer_count_changes();
    changes.sort();
    assert_eq!(changes, [("a".to_owned(), 2), ("b".to_owned(), 1)]);

    // Joining twice does not change the count.
    join(&d, "b", "v1", &TestSink::unbounded());
    assert!(d.take_viewer_count_changes().is_empty());
}

#[test]
fn add_viewer_with_welcomes_before_any_live_frame() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    for i in 1..=3 {
        publish(&d, "a", frame_n(i), t0);
    }
    let sink = TestSink::unbounded();
    let mut welcomed: Vec<(Vec<u64>, usize, bool, usize)> = Vec::new();
    let joined = d
        .add_viewer_with("a", "v", sink.clone(), |j| {
            welcomed.push((
                j.buffer.iter().map(|f| f.seq).collect(),
                j.viewer_count,
                j.new,
                sink.received().len(),
            ));
            true
        })
        .expect("join");
    // Called once, with the buffer, the count including the joiner, and nothing sent yet.
    assert_eq!(welcomed, [(vec![1, 2, 3], 1, true, 0)]);
    assert_eq!(joined.viewer_count, 1);
    assert_eq!(joined.stream.viewer_count, 1);
    assert!(joined.new);
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    // Live frames follow the welcome.
    publish(&d, "a", frame_n(4), t0);
    assert_eq!(sink.seqs(), [4]);

    // Joining again answers again, without adding anyone.
    let mut calls = 0;
    let again = d
        .add_viewer_with("a", "v", TestSink::unbounded(), |j| {
            calls += 1;
            assert!(!j.new);
            assert_eq!(j.viewer_count, 1);
            true
        })
        .expect("rejoin");
    assert_eq!(calls, 1);
    assert!(!again.new);
    assert_eq!(again.viewer_count, 1);
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    // No welcome for a stream that does not exist.
    let mut called = false;
    let err = d
        .add_viewer_with("zzz", "v", TestSink::unbounded(), |_| {
            called = true;
            true
        })
        .expect_err("unknown stream");
    assert_eq!(err, RelayError::NotFound("zzz".into()));
    assert!(!called);
}

#[test]
fn remove_viewer_everywhere_and_joined_by() {
    let t0 = Instant::now();
    let d = relay(roomy());
    for k in ["a", "b", "c"] {
        register(&d, k, OWNER, t0);
    }
    join(&d, "a", "v", &TestSink::unbounded());
    join(&d, "b", "v", &TestSink::unbounded());
    join(&d, "b", "w", &TestSink::unbounded());
    join(&d, "c", "w", &TestSink::unbounded());

    let mut watching = d.joined_by("v");
    watching.sort();
    assert_eq!(watching, ["a", "b"]);
    assert!(d.joined_by(OWNER).is_empty(), "owning is not watching");

    let mut left = d.remove_viewer_everywhere("v");
    left.sort();
    assert_eq!(left, [("a".to_owned(), 0), ("b".to_owned(), 1)]);
    assert!(d.joined_by("v").is_empty());
    assert!(d.remove_viewer_everywhere("v").is_empty(), "nothing left");
    assert_eq!(stats(&d, "b", t0).viewer_count, 1);
    assert_eq!(stats(&d, "c", t0).viewer_count, 1);
}

#[test]
fn owned_by_lists_streams_with_their_tokens() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    register(&d, "c", "other", t0);

    let mut owned: Vec<(String, String)> = d
        .owned_by(OWNER)
        .into_iter()
        .map(|(info, token)| (info.stream_key, token))
        .collect();
    owned.sort();
    assert_eq!(
        owned,
        [
            ("a".to_owned(), TOKEN.to_owned()),
            ("b".to_owned(), TOKEN.to_owned())
        ]
    );
    assert!(d.owned_by("nobody").is_empty());

    d.owner_disconnected(OWNER, t0);
    assert!(d.owned_by(OWNER).is_empty());
    d.resume("a", TOKEN, "new").expect("resume");
    let owned = d.owned_by("new");
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].0.stream_key, "a");
}

// ---------------------------------------------------------------------------------------------
// Owner disconnect, resume, grace
// ---------------------------------------------------------------------------------------------

#[test]
fn owner_disconnect_puts_a_live_stream_in_reconnecting() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "other", "someone-else", t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);
    publish(&d, "a", text("1"), t0);

    assert!(d.owner_disconnected("not-an-owner", t0).is_empty());
    let orphaned = d.owner_disconnected(OWNER, t0);
    assert_eq!(orphaned.len(), 1);
    assert_eq!(orphaned[0].key, "a");
    assert_eq!(orphaned[0].grace, d.limits().grace);

    let info = d.stream_info("a").expect("still registered during grace");
    assert_eq!(info.status, StreamStatus::Reconnecting);
    assert_eq!(info.viewer_count, 1, "viewers stay during grace");
    assert_eq!(
        d.stream_info("other").expect("other").status,
        StreamStatus::Created,
        "other owners' streams untouched"
    );

    let err = d
        .distribute_stream_data("a", OWNER, text("2"), t0, 0)
        .expect_err("old connection lost ownership");
    assert_eq!(err, RelayError::NotOwner("a".into()));
    assert_eq!(
        d.start_stream("a", OWNER, 0),
        Err(RelayError::NotOwner("a".into()))
    );
    assert_eq!(
        d.end_stream("a", OWNER).map(|i| i.status),
        Err(RelayError::NotOwner("a".into()))
    );
    assert_eq!(s.seqs(), [1]);
}

#[test]
fn owner_disconnect_orphans_every_stream_it_owns() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    register(&d, "c", "x", t0);
    let mut keys: Vec<String> = d
        .owner_disconnected(OWNER, t0)
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
}

#[test]
fn owner_disconnect_leaves_a_created_stream_created() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    assert_eq!(d.owner_disconnected(OWNER, t0).len(), 1);
    assert_eq!(d.stream_info("a").expect("a").status, StreamStatus::Created);
    assert!(d.list().is_empty());
    // It still expires after the grace period.
    assert_eq!(d.expire_orphans(t0 + d.limits().grace), ["a".to_owned()]);
}

#[test]
fn resume_needs_the_right_token() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    publish(&d, "a", text("1"), t0);
    d.owner_disconnected(OWNER, t0);

    for bad in ["wrong", "", "secret-toke", "secret-tokenX", "SECRET-TOKEN"] {
        let err = d.resume("a", bad, "new-conn").expect_err("bad token");
        assert_eq!(err, RelayError::InvalidToken("a".into()), "token {bad:?}");
        assert_eq!(err.code(), ErrorCode::InvalidToken);
    }
    assert_eq!(
        d.stream_info("a").expect("a").status,
        StreamStatus::Reconnecting
    );
    assert!(
        d.distribute_stream_data("a", "new-conn", text("x"), t0, 0)
            .is_err(),
        "a failed resume grants nothing"
    );
    assert_eq!(
        d.resume("zzz", TOKEN, "new-conn").expect_err("no stream"),
        RelayError::NotFound("zzz".into())
    );
}

#[test]
fn resume_with_the_token_hands_the_stream_to_the_new_connection() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);
    publish(&d, "a", text("1"), t0);
    d.owner_disconnected(OWNER, t0);

    let info = d.resume("a", TOKEN, "new-conn").expect("resume");
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.stream_key, "a");
    assert_eq!(info.viewer_count, 1);

    let delivery = d
        .distribute_stream_data("a", "new-conn", text("2"), t0 + secs(1), 0)
        .expect("new owner publishes");
    assert_eq!(delivery.seq, 2, "seq continues across the resume");
    assert_eq!(delivery.started, None);
    assert_eq!(s.seqs(), [1, 2]);
    assert_eq!(
        d.distribute_stream_data("a", OWNER, text("x"), t0 + secs(1), 0),
        Err(RelayError::NotOwner("a".into())),
        "the old connection stays locked out"
    );
    assert!(d.check_member("a", "new-conn").is_ok());

    // No longer an orphan: the grace timer is cancelled.
    assert!(d.expire_orphans(t0 + secs(3600)).is_empty());
    assert_eq!(d.stream_count(), 1);

    // A late disconnect notice for the old connection changes nothing.
    assert!(d.owner_disconnected(OWNER, t0 + secs(2)).is_empty());
    assert_eq!(d.stream_info("a").expect("a").status, StreamStatus::Live);
}

#[test]
fn orphans_expire_only_after_the_grace_period() {
    let t0 = Instant::now();
    let d = relay(RelayLimits {
        grace: secs(30),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    register(&d, "kept", "other-owner", t0);
    let s = TestSink::unbounded();
    join(&d, "a", "v", &s);
    d.start_stream("a", OWNER, 1).expect("start");
    d.owner_disconnected(OWNER, t0 + secs(5));

    assert!(d.expire_orphans(t0 + secs(5)).is_empty());
    assert!(d.expire_orphans(t0 + secs(34)).is_empty(), "29 s after");
    assert_eq!(d.stream_count(), 2);

    let expired = d.expire_orphans(t0 + secs(35));
    assert_eq!(expired, ["a".to_owned()]);
    assert!(d.stream_info("a").is_none());
    assert_eq!(d.stream_count(), 1);
    assert!(
        d.stream_info("kept").is_some(),
        "owned streams never expire"
    );
    assert!(d.expire_orphans(t0 + secs(100)).is_empty(), "reported once");
    assert_eq!(
        d.resume("a", TOKEN, "late"),
        Err(RelayError::NotFound("a".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// End, membership, drain
// ---------------------------------------------------------------------------------------------

#[test]
fn end_stream_only_by_owner() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    join(&d, "a", "v", &TestSink::unbounded());
    publish(&d, "a", text("1"), t0);

    assert_eq!(
        d.end_stream("a", "v"),
        Err(RelayError::NotOwner("a".into()))
    );
    assert_eq!(d.stream_count(), 1);
    assert_eq!(d.stream_info("a").expect("a").status, StreamStatus::Live);

    let ended = d.end_stream("a", OWNER).expect("owner ends");
    assert_eq!(ended.stream_key, "a");
    assert_eq!(ended.status, StreamStatus::Ended);
    assert_eq!(d.stream_count(), 0);
    assert!(d.stream_info("a").is_none());
    assert!(d.list().is_empty());

    assert_eq!(
        d.end_stream("a", OWNER),
        Err(RelayError::NotFound("a".into()))
    );
    assert_eq!(
        d.distribute_stream_data("a", OWNER, text("x"), t0, 0),
        Err(RelayError::NotFound("a".into()))
    );
}

#[test]
fn check_member_knows_owner_viewers_and_strangers() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    join(&d, "a", "v", &TestSink::unbounded());

    assert_eq!(d.check_member("a", OWNER), Ok(()));
    assert_eq!(d.check_member("a", "v"), Ok(()));
    let err = d.check_member("a", "stranger").expect_err("stranger");
    assert_eq!(err, RelayError::NotInStream("a".into()));
    assert_eq!(err.code(), ErrorCode::NotInStream);
    assert_eq!(
        d.check_member("zzz", OWNER),
        Err(RelayError::NotFound("zzz".into()))
    );

    d.remove_viewer("a", "v");
    assert!(d.check_member("a", "v").is_err(), "left");
    d.owner_disconnected(OWNER, t0);
    assert!(d.check_member("a", OWNER).is_err(), "no longer the owner");
}

#[test]
fn drain_unregisters_every_stream() {
    let t0 = Instant::now();
    let d = relay(roomy());
    for k in ["a", "b", "c"] {
        register(&d, k, OWNER, t0);
    }
    join(&d, "a", "v", &TestSink::unbounded());
    let mut keys = d.drain();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(d.stream_count(), 0);
    assert!(d.list().is_empty());
    assert!(d.stream_info("a").is_none());
    assert!(d.drain().is_empty());
}

// ---------------------------------------------------------------------------------------------
// fps and bitrate
// ---------------------------------------------------------------------------------------------

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} ± {tolerance}"
    );
}

#[test]
fn fps_and_bitrate_over_one_second() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    // 20 frames of 1000 bytes, one every 50 ms, covering [t0, t0 + 1 s).
    for i in 0..20u64 {
        let data = FrameData::Binary(Bytes::from(vec![0u8; 1000]));
        publish(&d, "a", data, t0 + ms(50 * i));
    }
    let st = stats(&d, "a", t0 + secs(1));
    assert_close(st.fps, 20.0, 1.5, "fps");
    assert_close(st.bitrate_kbps, 160.0, 12.0, "bitrate");
    assert_eq!(st.frames_in, 20);
    assert_eq!(st.bytes_in, 20_000);

    // Five seconds of silence later, nothing is flowing.
    let st = stats(&d, "a", t0 + secs(6));
    assert_eq!(st.fps, 0.0);
    assert_eq!(st.bitrate_kbps, 0.0);
    assert_eq!(st.frames_in, 20, "totals stay");
}

#[test]
fn fps_is_zero_before_any_frame() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let st = stats(&d, "a", t0 + secs(1));
    assert_eq!(st.fps, 0.0);
    assert_eq!(st.bitrate_kbps, 0.0);
    assert_eq!(st.started_at, None);
}

#[test]
fn fps_tracks_a_steady_30fps_stream() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    // 30 fps for 10 s (frame period 33.333 ms), 500-byte frames.
    let period = Duration::from_nanos(1_000_000_000 / 30);
    let mut last = t0;
    for i in 0..300u32 {
        last = t0 + period * i;
        publish(
            &d,
            "a",
            FrameData::Binary(Bytes::from(vec![0u8; 500])),
            last,
        );
    }
    let st = stats(&d, "a", last + ms(16));
    assert_close(st.fps, 30.0, 1.5, "fps");
    assert_close(st.bitrate_kbps, 120.0, 6.0, "bitrate");
}

#[test]
fn fps_of_a_steady_1fps_stream_is_exact() {
    let t0 = Instant::now();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    for i in 0..10u64 {
        publish(
            &d,
            "a",
            FrameData::Binary(Bytes::from(vec![0u8; 1000])),
            t0 + secs(i),
        );
    }
    let st = stats(&d, "a", t0 + secs(9));
    assert_close(st.fps, 1.0, 0.1, "fps");
    assert_close(st.bitrate_kbps, 8.0, 0.8, "kbps");
}
