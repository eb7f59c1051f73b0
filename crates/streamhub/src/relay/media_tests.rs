#![allow(clippy::unwrap_used)]

//! Unit tests for the media-aware relay: mode detection, WebM re-cut at keyframe Clusters (fed
//! with the real Chrome `MediaRecorder` captures in `tests/fixtures/`), the late-join catch-up
//! of both encoded modes, keyframe resync of slow viewers, keyframe requests, delivery levels,
//! the GOP cap, malformed WebM and mode switches.
//!
//! The recording sink here keeps the whole [`Frame`] and the `resync` flag of every offer it
//! accepts. Time comes in as `Instant`s built from one base `t0`, except in the one place where
//! the relay reads the clock itself (`add_viewer_with` asks `Instant::now()` whether a keyframe
//! request is due), which `webcodecs_joiner_without_a_key_waits_and_requests_one` waits out.

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use streamhub_protocol::client::{ChunkInfo, ChunkKind};
use streamhub_protocol::server::MediaMode;
use streamhub_protocol::{ErrorCode, FrameData, Millis};

use super::tests::{OWNER, Record, Recorder, ms, new_stream, roomy, secs};
use super::*;

// ---------------------------------------------------------------------------------------------
// Recording sink
// ---------------------------------------------------------------------------------------------

/// One offer a viewer accepted: the whole frame and the resync flag.
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
}

/// A bounded-queue viewer that records every whole frame it accepts (see [`Recorder`]).
type MediaSink = Recorder<Rec>;

impl MediaSink {
    fn frames(&self) -> Vec<Frame> {
        self.received().into_iter().map(|r| r.frame).collect()
    }

    fn seqs(&self) -> Vec<u64> {
        self.received().iter().map(|r| r.frame.seq).collect()
    }

    /// The decoded bytes of everything received, in order.
    fn bytes(&self) -> Vec<u8> {
        concat(&self.frames())
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type Relay = Distributor<MediaSink>;

const KEY: &str = "m";
const CLUSTER_ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];
const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1,
];

/// A publish rate no test gets near: these tests are about media, not the rate limit.
fn limits() -> RelayLimits {
    RelayLimits {
        max_fps: 100_000,
        ..roomy()
    }
}

/// A relay with one stream, `KEY`, owned by `OWNER`.
fn open(limits: RelayLimits) -> (Relay, Instant) {
    let t0 = Instant::now();
    let d = Distributor::new(limits);
    d.register_stream(new_stream(KEY, OWNER), t0).unwrap();
    (d, t0)
}

fn try_send(d: &Relay, incoming: Incoming, now: Instant) -> Result<Delivery, RelayError> {
    d.distribute(KEY, OWNER, incoming, now, 0)
}

fn send(d: &Relay, incoming: Incoming, now: Instant) -> Delivery {
    try_send(d, incoming, now).unwrap()
}

fn join(d: &Relay, conn: &str, sink: &MediaSink) -> Joined {
    d.add_viewer(KEY, conn, sink.clone()).unwrap()
}

fn stats(d: &Relay, now: Instant) -> StreamStats {
    d.get_stream_stats(KEY, now).unwrap()
}

fn plain(data: FrameData) -> Incoming {
    Incoming {
        data,
        chunk: None,
        config: None,
    }
}

fn binary(b: &[u8]) -> Incoming {
    plain(FrameData::Binary(Bytes::copy_from_slice(b)))
}

fn base64(b: &[u8]) -> Incoming {
    plain(FrameData::Text(B64.encode(b)))
}

fn media_chunk(b: &[u8], text: bool) -> Incoming {
    if text { base64(b) } else { binary(b) }
}

/// A WebCodecs chunk whose payload names it (`"K3"`, `"D4"`), with encoder timestamp `ts`.
fn wc(kind: ChunkKind, ts: u32, config: Option<serde_json::Value>) -> Incoming {
    let tag = if kind == ChunkKind::Key { 'K' } else { 'D' };
    Incoming {
        data: FrameData::Binary(Bytes::from(format!("{tag}{ts}"))),
        chunk: Some(ChunkInfo {
            kind,
            timestamp: f64::from(ts),
            duration: Some(33_333.0),
        }),
        config,
    }
}

fn key(ts: u32) -> Incoming {
    wc(ChunkKind::Key, ts, None)
}

fn delta(ts: u32) -> Incoming {
    wc(ChunkKind::Delta, ts, None)
}

fn config(codec: &str) -> serde_json::Value {
    json!({"codec": codec, "codedWidth": 640, "codedHeight": 480})
}

/// A frame's bytes: binary as is, text base64-decoded.
fn raw(data: &FrameData) -> Vec<u8> {
    match data {
        FrameData::Binary(b) => b.to_vec(),
        FrameData::Text(t) => B64.decode(t).unwrap(),
    }
}

fn concat<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> Vec<u8> {
    frames.into_iter().flat_map(|f| raw(&f.data)).collect()
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

// ---------------------------------------------------------------------------------------------
// Fixtures (shared with the parser's tests: media::webm::fixtures)
// ---------------------------------------------------------------------------------------------

use crate::media::webm::fixtures::{Fixture, all as fixtures, vp8, vp8_opus};

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

/// Publishes `data` cut at `lens`, 1 ms apart from `t`.
fn feed(d: &Relay, data: &[u8], lens: &[usize], text: bool, t: Instant) {
    let mut at = 0;
    for (i, n) in lens.iter().enumerate() {
        send(d, media_chunk(&data[at..at + n], text), t + ms(i as u64));
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

// ---------------------------------------------------------------------------------------------
// 1. Mode detection
// ---------------------------------------------------------------------------------------------

#[test]
fn jpeg_binary_and_base64_are_images_and_pass_through_unchanged() {
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    let jpeg_b64 = B64.encode(JPEG);
    assert!(jpeg_b64.starts_with("/9j/"));

    send(&d, binary(JPEG), t0);
    assert_eq!(stats(&d, t0).media, MediaMode::Images);
    send(&d, plain(FrameData::Text(jpeg_b64.clone())), t0 + ms(1));

    let got = v.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].frame.data,
        FrameData::Binary(Bytes::from_static(JPEG))
    );
    assert_eq!(got[1].frame.data, FrameData::Text(jpeg_b64));
    for r in &got {
        assert_eq!(r.key, KEY);
        assert_eq!(r.frame.media, MediaMode::Images);
        assert_eq!(r.frame.kind, FrameKind::Independent);
        assert!(!r.frame.init && !r.resync);
        assert_eq!(
            (r.frame.chunk.clone(), r.frame.config.clone()),
            (None, None)
        );
    }
    let st = stats(&d, t0 + ms(1));
    assert_eq!(st.media, MediaMode::Images);
    assert_eq!(st.buffer_size, 2, "images keep the catch-up ring");
    assert_eq!(st.gop_frames, 0);
}

#[test]
fn binary_starting_with_the_ebml_magic_is_webm() {
    let fx = vp8();
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    let first = fx.chunks()[0];
    assert_eq!(fx.data[..4], [0x1A, 0x45, 0xDF, 0xA3]);

    send(&d, binary(&fx.data[..first]), t0);
    assert_eq!(stats(&d, t0).media, MediaMode::Webm);
    let got = v.received();
    assert!(!got.is_empty());
    assert!(got.iter().all(|r| r.frame.media == MediaMode::Webm));
    assert!(
        got[0].frame.init,
        "the first WebM frame carries the init segment"
    );
    assert!(got[0].frame.data.is_binary());
    assert_eq!(stats(&d, t0).buffer_size, 0, "no images ring in WebM mode");
}

#[test]
fn base64_text_webm_is_parsed_and_relayed_as_base64_text() {
    for fx in fixtures() {
        let (d, t0) = open(limits());
        let v = MediaSink::unbounded();
        join(&d, "v", &v);
        let first = B64.encode(&fx.data[..fx.chunks()[0]]);
        assert!(first.starts_with("GkXf"), "{}", fx.name);

        feed(&d, fx.data, &fx.chunks(), true, t0);

        let frames = v.frames();
        assert_eq!(stats(&d, t0).media, MediaMode::Webm, "{}", fx.name);
        assert!(
            frames.iter().all(|f| matches!(f.data, FrameData::Text(_))),
            "{}: viewers get the type the streamer sent",
            fx.name
        );
        assert!(frames.iter().all(|f| f.media == MediaMode::Webm));
        assert_eq!(concat(&frames), fx.relayed(), "{}: decoded bytes", fx.name);
        // Parsed, not passed through: re-cut at keyframe Clusters.
        let keys = frames.iter().filter(|f| f.kind == FrameKind::Key).count();
        assert_eq!(keys, fx.keyframes().len(), "{}", fx.name);
        assert_eq!(frames.iter().filter(|f| f.init).count(), 1, "{}", fx.name);
    }
}

#[test]
fn chunk_info_makes_webcodecs_with_key_and_delta_kinds() {
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);

    // Even bytes that look like WebM or JPEG: the chunk label decides.
    let mut k = wc(ChunkKind::Key, 0, Some(config("vp8")));
    k.data = FrameData::Binary(Bytes::from_static(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]));
    send(&d, k, t0);
    assert_eq!(stats(&d, t0).media, MediaMode::Webcodecs);
    let mut dl = delta(33_333);
    dl.data = FrameData::Binary(Bytes::from_static(JPEG));
    send(&d, dl, t0 + ms(1));

    let got = v.received();
    assert_eq!(got.len(), 2);
    let (k, dl) = (&got[0].frame, &got[1].frame);
    assert_eq!(k.media, MediaMode::Webcodecs);
    assert_eq!(k.kind, FrameKind::Key);
    assert_eq!(raw(&k.data), [0x1A, 0x45, 0xDF, 0xA3, 0x9F], "not re-cut");
    assert!(!k.init);
    assert_eq!(k.chunk.as_ref().map(|c| c.kind), Some(ChunkKind::Key));
    assert_eq!(k.config.as_deref(), Some(&config("vp8")));
    assert_eq!(dl.media, MediaMode::Webcodecs);
    assert_eq!(dl.kind, FrameKind::Delta);
    assert_eq!(raw(&dl.data), JPEG);
    assert_eq!(
        dl.chunk,
        Some(ChunkInfo {
            kind: ChunkKind::Delta,
            timestamp: 33_333.0,
            duration: Some(33_333.0)
        })
    );
    assert_eq!(dl.config, None, "config rides on key chunks only");
    assert_eq!(stats(&d, t0).gop_frames, 2);
}

// ---------------------------------------------------------------------------------------------
// 2. WebM through the relay, real captures, recorded chunks
// ---------------------------------------------------------------------------------------------

#[test]
fn webm_fixtures_are_relayed_byte_exact_and_cut_at_keyframe_clusters() {
    for fx in fixtures() {
        let (d, t0) = open(limits());
        let v = MediaSink::unbounded();
        join(&d, "v", &v);
        feed(&d, fx.data, &fx.chunks(), false, t0);

        let got = v.received();
        let frames = v.frames();
        assert_eq!(v.bytes(), fx.relayed(), "{}: byte-exact", fx.name);
        assert_eq!(
            v.seqs(),
            (1..=frames.len() as u64).collect::<Vec<_>>(),
            "{}",
            fx.name
        );
        assert!(got.iter().all(|r| !r.resync && r.key == KEY));
        for f in &frames {
            assert_eq!(f.media, MediaMode::Webm, "{}", fx.name);
            assert_ne!(f.kind, FrameKind::Independent, "{}", fx.name);
            assert_eq!((f.chunk.clone(), f.config.clone()), (None, None));
        }
        let inits: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].init).collect();
        assert_eq!(inits, [0], "{}: only the first frame has the init", fx.name);

        // Where each Key frame's Cluster starts in the file.
        let mut at = 0;
        let mut key_clusters = Vec::new();
        for f in &frames {
            let b = raw(&f.data);
            if f.kind == FrameKind::Key {
                let cluster = if f.init {
                    assert_eq!(&b[..fx.layout.init_len], fx.init(), "{}", fx.name);
                    at + fx.layout.init_len
                } else {
                    at
                };
                assert_eq!(
                    b[cluster - at..cluster - at + 4],
                    CLUSTER_ID,
                    "{}: Key frame at {at} does not start with a Cluster (or the init)",
                    fx.name
                );
                key_clusters.push(cluster);
            }
            at += b.len();
        }
        assert_eq!(key_clusters, fx.keyframes(), "{}", fx.name);
        let st = stats(&d, t0 + secs(1));
        assert_eq!(st.media, MediaMode::Webm);
        assert_eq!(st.frames_in, fx.chunks().len() as u64);
        assert_eq!(st.bytes_in, fx.data.len() as u64);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Late join to WebM
// ---------------------------------------------------------------------------------------------

/// One joiner: where it joined and what it got.
struct Late {
    /// Chunks published before the join.
    n: usize,
    /// Bytes relayed (to a viewer present from the start) before the join.
    relayed: usize,
    /// Where the last relayed frame starts in the file.
    last_start: usize,
    last_seq: u64,
    last_timestamp: Millis,
    joined: Joined,
    sink: MediaSink,
}

/// Feeds `lens` and, after each chunk for which `join_after(bytes relayed)` holds, adds a
/// viewer.
fn late_joiners(
    fx: &Fixture,
    lens: &[usize],
    text: bool,
    join_after: impl Fn(usize) -> bool,
) -> (Vec<Late>, MediaSink) {
    let (d, t0) = open(limits());
    let early = MediaSink::unbounded();
    join(&d, "early", &early);
    let mut at = 0;
    let mut late = Vec::new();
    for (i, n) in lens.iter().enumerate() {
        // Wall clock 1000 + i, so the bundle's timestamp can be checked.
        let wall = 1_000 + i as Millis;
        let chunk = media_chunk(&fx.data[at..at + n], text);
        d.distribute(KEY, OWNER, chunk, t0 + ms(i as u64), wall)
            .unwrap();
        at += n;
        let relayed = early.bytes().len();
        if join_after(relayed) {
            let sink = MediaSink::unbounded();
            let joined = join(&d, &format!("late-{}", i + 1), &sink);
            let last_len = early.frames().last().map_or(0, |f| raw(&f.data).len());
            late.push(Late {
                n: i + 1,
                relayed,
                last_start: relayed - last_len,
                last_seq: early.seqs().last().copied().unwrap_or(0),
                last_timestamp: early.frames().last().map_or(0, |f| f.timestamp),
                joined,
                sink,
            });
        }
    }
    (late, early)
}

/// What a WebM joiner must get when `relayed` bytes have gone out: init + the GOP so far.
fn expected_bundle(fx: &Fixture, relayed: usize) -> Option<(Vec<u8>, FrameKind)> {
    match fx.key_before(relayed) {
        Some(k) => Some((cat(fx.init(), &fx.data[k..relayed]), FrameKind::Key)),
        None if relayed >= fx.layout.init_len => Some((fx.init().to_vec(), FrameKind::Delta)),
        None => None,
    }
}

fn check_bundle(fx: &Fixture, l: &Late, what: &str) {
    let ctx = format!("{} {what}: joined after {} chunks", fx.name, l.n);
    assert_eq!(l.joined.media, MediaMode::Webm, "{ctx}");
    assert!(l.joined.new && !l.joined.keyframe_wanted, "{ctx}");
    match expected_bundle(fx, l.relayed) {
        None => assert!(l.joined.buffer.is_empty(), "{ctx}"),
        Some((bytes, kind)) => {
            assert_eq!(l.joined.buffer.len(), 1, "{ctx}: one stream:data");
            let b = &l.joined.buffer[0];
            assert!(b.init, "{ctx}");
            assert_eq!(b.kind, kind, "{ctx}");
            assert_eq!(b.media, MediaMode::Webm, "{ctx}");
            assert_eq!(
                b.seq, l.last_seq,
                "{ctx}: the bundle ends at the last relayed frame"
            );
            if kind == FrameKind::Key {
                assert_eq!(
                    b.timestamp, l.last_timestamp,
                    "{ctx}: ...and has its timestamp"
                );
            }
            assert!(raw(&b.data) == bytes, "{ctx}: bundle bytes");
        }
    }
}

#[test]
fn webm_late_joiner_gets_init_plus_gop_then_continues_seamlessly() {
    for fx in fixtures() {
        let lens = fx.chunks();
        // Every join point after the first GOP: right after each keyframe Cluster and mid-GOP.
        // (Joins during the first GOP are reported separately: the init comes twice.)
        let (late, early) = late_joiners(&fx, &lens, false, |relayed| relayed > fx.keyframes()[1]);
        assert_eq!(early.bytes(), fx.relayed());
        assert!(late.len() > 5, "{}", fx.name);
        let mut right_after_key = 0;
        let mut mid_gop = 0;
        for l in &late {
            check_bundle(&fx, l, "recorded chunks");
            let b = &l.joined.buffer[0];
            // The GOP in the bundle is one frame right after a keyframe Cluster, more mid-GOP.
            let key = fx.key_before(l.relayed).unwrap();
            if l.last_start == key {
                right_after_key += 1;
            } else {
                mid_gop += 1;
            }
            // Then the live frames pick up exactly where the bundle ended.
            let rest = l.sink.frames();
            let next = (l.n < lens.len()).then_some(b.seq + 1);
            assert_eq!(rest.first().map(|f| f.seq), next, "{} n={}", fx.name, l.n);
            assert!(l.sink.received().iter().all(|r| !r.resync));
            assert!(rest.iter().all(|f| !f.init));
            let whole = cat(&raw(&b.data), &concat(&rest));
            let key = fx.key_before(l.relayed).unwrap();
            assert!(
                whole == cat(fx.init(), &fx.relayed()[key..]),
                "{} n={}: bundle + live = init + file from the keyframe on",
                fx.name,
                l.n
            );
        }
        assert_eq!(
            right_after_key, 2,
            "{}: one join per later keyframe",
            fx.name
        );
        assert!(mid_gop >= 5, "{}", fx.name);
    }
}

#[test]
fn webm_late_join_bundle_is_the_same_for_any_chunking() {
    for fx in fixtures() {
        let first_gop_end = fx.keyframes()[1];
        // Reference: the recorded chunks, one joiner after each.
        let lens = fx.chunks();
        let (reference, _) = late_joiners(&fx, &lens, false, |_| true);
        let at: BTreeMap<usize, (usize, Vec<u8>)> = reference
            .iter()
            .map(|l| {
                let pos = ends(&lens)[l.n - 1];
                let bundle = l.joined.buffer.first().map(|f| raw(&f.data));
                (pos, (l.relayed, bundle.unwrap_or_default()))
            })
            .collect();

        for seed in [1u64, 7, 42, 0x5EED] {
            let mut rng = StdRng::seed_from_u64(seed);
            for text in [false, true] {
                // Recorded boundaries split further at random points: the same positions recur.
                let fine = refine(&lens, &mut rng);
                let fine_ends = ends(&fine);
                let (late, early) = late_joiners(&fx, &fine, text, |_| true);
                assert_eq!(early.bytes(), fx.relayed(), "{} seed {seed}", fx.name);
                let mut compared = 0;
                for l in &late {
                    let pos = fine_ends[l.n - 1];
                    if l.relayed > first_gop_end {
                        check_bundle(&fx, l, &format!("seed {seed} text {text}"));
                    }
                    // (During the first GOP the bundle is not chunking-independent: its init
                    // comes twice when the init and the first Cluster were cut together;
                    // reported separately.)
                    if let Some((relayed, bundle)) = at.get(&pos)
                        && *relayed > first_gop_end
                    {
                        compared += 1;
                        assert_eq!(l.relayed, *relayed, "{} at byte {pos}", fx.name);
                        let got = l.joined.buffer.first().map(|f| raw(&f.data));
                        assert!(
                            got.unwrap_or_default() == *bundle,
                            "{} seed {seed}: bundle at byte {pos} differs",
                            fx.name
                        );
                    }
                }
                let later = ends(&lens)
                    .iter()
                    .filter(|&&e| e > first_gop_end + 1)
                    .count();
                assert_eq!(compared, later, "{}", fx.name);
            }

            // Entirely random sizes: every join point still matches the file.
            let lens = random_chunks(fx.data.len(), 3000, &mut rng);
            let lens_ends = ends(&lens);
            let (late, early) = late_joiners(&fx, &lens, false, |_| true);
            assert_eq!(early.bytes(), fx.relayed(), "{} seed {seed}", fx.name);
            for l in &late {
                let pos = lens_ends[l.n - 1];
                assert!(l.relayed <= pos, "{} relayed more than was sent", fx.name);
                if l.relayed > first_gop_end {
                    check_bundle(&fx, l, &format!("random seed {seed}"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Joining a WebM stream before its first Cluster
// ---------------------------------------------------------------------------------------------

#[test]
fn webm_joiner_before_any_cluster_gets_the_init_or_nothing_and_then_everything() {
    for fx in fixtures() {
        // `head` bytes: nothing relayed yet (EBML header incomplete / no Cluster header), or
        // the init out (the first Cluster's header is complete, its first video block not).
        for head in [100, fx.layout.init_len + 14] {
            let ctx = format!("{} head {head}", fx.name);
            let (d, t0) = open(limits());
            let early = MediaSink::unbounded();
            join(&d, "early", &early);
            send(&d, binary(&fx.data[..head]), t0);
            let v = MediaSink::unbounded();
            let joined = join(&d, "v", &v);
            assert_eq!(joined.media, MediaMode::Webm, "{ctx}");
            assert!(!joined.keyframe_wanted, "{ctx}");
            if head < fx.layout.init_len {
                assert!(early.received().is_empty(), "{ctx}: nothing cut yet");
                assert!(joined.buffer.is_empty(), "{ctx}: no init yet");
            } else {
                assert_eq!(early.bytes(), fx.init(), "{ctx}");
                assert_eq!(joined.buffer.len(), 1, "{ctx}");
                let b = &joined.buffer[0];
                assert!(b.init, "{ctx}");
                assert_eq!(b.kind, FrameKind::Delta, "{ctx}: init only, no GOP");
                assert_eq!(raw(&b.data), fx.init(), "{ctx}");
            }
            // The rest, in the recorded chunks' boundaries past `head`.
            let mut at = head;
            for (i, end) in ends(&fx.chunks()).into_iter().enumerate() {
                if end > at {
                    send(&d, binary(&fx.data[at..end]), t0 + ms(i as u64 + 1));
                    at = end;
                }
            }
            // Synced: it gets every following frame, and with the catch-up that is the file.
            assert_eq!(
                v.seqs().first().copied(),
                early
                    .seqs()
                    .get(usize::from(head >= fx.layout.init_len))
                    .copied(),
                "{ctx}"
            );
            let all = cat(&concat(joined.buffer.iter().map(|f| &**f)), &v.bytes());
            assert!(all == fx.relayed(), "{ctx}: catch-up + live = the file");
            assert!(v.received().iter().all(|r| !r.resync), "{ctx}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. WebM drop policy
// ---------------------------------------------------------------------------------------------

#[test]
fn webm_slow_viewer_skips_to_the_next_keyframe_cluster_with_init_and_resync() {
    for fx in fixtures() {
        for text in [false, true] {
            let ctx = format!("{} text {text}", fx.name);
            let (d, t0) = open(limits());
            let healthy = MediaSink::unbounded();
            let slow = MediaSink::with_capacity(3);
            join(&d, "healthy", &healthy);
            join(&d, "slow", &slow);
            let lens = fx.chunks();
            let key2 = fx.keyframes()[1];
            let mut at = 0;
            for (i, n) in lens.iter().enumerate() {
                send(
                    &d,
                    media_chunk(&fx.data[at..at + n], text),
                    t0 + ms(10 * i as u64),
                );
                at += n;
                // Refuses the 4th frame, then keeps up again from the 5th chunk on, still
                // inside the first GOP.
                if i == 4 {
                    assert!(at < key2, "{ctx}");
                }
                if i >= 4 {
                    slow.drain();
                }
            }
            assert_eq!(
                healthy.bytes(),
                fx.relayed(),
                "{ctx}: healthy viewer gets every byte"
            );

            let all = healthy.frames();
            // The healthy viewer's frame that starts at the second keyframe Cluster.
            let mut offsets = ends(&all.iter().map(|f| raw(&f.data).len()).collect::<Vec<_>>());
            offsets.insert(0, 0);
            let k = offsets.iter().position(|&o| o == key2).unwrap();
            let keyframe = &all[k];
            assert_eq!(keyframe.kind, FrameKind::Key, "{ctx}");

            let got = slow.received();
            assert_eq!(
                got.iter().map(|r| r.frame.seq).collect::<Vec<_>>()[..4],
                [1, 2, 3, keyframe.seq],
                "{ctx}: nothing between the drop and the keyframe"
            );
            assert!(got[..3].iter().all(|r| !r.resync));
            let resync = &got[3];
            assert!(resync.resync, "{ctx}");
            assert!(resync.frame.init, "{ctx}");
            assert_eq!(resync.frame.kind, FrameKind::Key, "{ctx}");
            assert_eq!(resync.frame.media, MediaMode::Webm, "{ctx}");
            assert_eq!(resync.frame.data.is_binary(), !text, "{ctx}: sender's type");
            assert!(
                raw(&resync.frame.data) == cat(fx.init(), &raw(&keyframe.data)),
                "{ctx}: init + the keyframe frame"
            );
            // From there on it gets every frame again.
            assert_eq!(
                slow.seqs()[3..],
                all[k..].iter().map(|f| f.seq).collect::<Vec<_>>()[..],
                "{ctx}"
            );
            assert!(got[4..].iter().all(|r| !r.resync && !r.frame.init));
            let tail = concat(got[3..].iter().map(|r| &r.frame));
            assert!(tail == cat(fx.init(), &fx.relayed()[key2..]), "{ctx}");

            let st = stats(&d, t0 + secs(1));
            assert_eq!(st.resyncs, 1, "{ctx}");
            assert_eq!(
                st.dropped_slow_viewer, 1,
                "{ctx}: only the first miss is offered"
            );
            assert_eq!(st.viewer_count, 2);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. WebCodecs
// ---------------------------------------------------------------------------------------------

#[test]
fn webcodecs_joiner_gets_the_gop_since_the_latest_key_with_the_latest_config() {
    let (d, t0) = open(limits());
    let early = MediaSink::unbounded();
    join(&d, "early", &early);
    let mut t = t0;
    let mut next = |i: Incoming| {
        t += ms(33);
        send(&d, i, t)
    };
    next(wc(ChunkKind::Key, 1, Some(config("vp8")))); // 1
    next(delta(2));
    next(delta(3));
    next(key(4)); // 4: no config of its own, the latest still applies
    next(delta(5));

    let a = MediaSink::unbounded();
    let ja = join(&d, "a", &a);
    assert_eq!(ja.media, MediaMode::Webcodecs);
    assert!(!ja.keyframe_wanted);
    assert_eq!(
        ja.buffer.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [4, 5],
        "frames since the latest key, in order"
    );
    assert_eq!(ja.buffer[0].kind, FrameKind::Key);
    assert_eq!(ja.buffer[0].config.as_deref(), Some(&config("vp8")));
    assert_eq!(ja.buffer[1].kind, FrameKind::Delta);

    next(wc(ChunkKind::Key, 6, Some(config("vp09.00.10.08")))); // 6
    next(delta(7));
    next(delta(8));
    assert_eq!(stats(&d, t0 + secs(1)).gop_frames, 3);

    let b = MediaSink::unbounded();
    let jb = join(&d, "b", &b);
    let seqs: Vec<u64> = jb.buffer.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [6, 7, 8]);
    assert_eq!(jb.buffer[0].kind, FrameKind::Key);
    assert_eq!(
        jb.buffer[0].config.as_deref(),
        Some(&config("vp09.00.10.08"))
    );
    assert_eq!(raw(&jb.buffer[0].data), b"K6");
    assert!(jb.buffer[1..].iter().all(|f| f.kind == FrameKind::Delta));
    assert!(jb.buffer[1..].iter().all(|f| f.config.is_none()));
    assert_eq!(
        jb.buffer
            .iter()
            .map(|f| f.chunk.as_ref().map(|c| c.timestamp))
            .collect::<Vec<_>>(),
        [Some(6.0), Some(7.0), Some(8.0)]
    );
    // The catch-up frames are the very frames live viewers got.
    let live = early.frames();
    for f in &jb.buffer {
        assert_eq!(**f, live[f.seq as usize - 1]);
    }

    // Synced: the next delta reaches both joiners.
    let del = next(delta(9));
    assert!(!del.keyframe_wanted);
    assert_eq!(a.seqs(), [6, 7, 8, 9]);
    assert_eq!(b.seqs(), [9]);
    assert!(b.received().iter().all(|r| !r.resync));
}

#[test]
fn webcodecs_joiner_without_a_key_waits_and_requests_one() {
    let (d, t0) = open(limits());
    // Deltas only (the encoder's key went out before anyone listened).
    send(&d, delta(1), t0);
    send(&d, delta(2), t0 + ms(33));
    assert_eq!(stats(&d, t0).gop_frames, 0);

    let v1 = MediaSink::unbounded();
    let j1 = join(&d, "v1", &v1);
    assert_eq!(j1.media, MediaMode::Webcodecs);
    assert!(j1.buffer.is_empty());
    assert!(j1.keyframe_wanted, "nothing to start from: ask for a key");

    let v2 = MediaSink::unbounded();
    assert!(
        !join(&d, "v2", &v2).keyframe_wanted,
        "within 1 s: throttled"
    );
    let again = join(&d, "v1", &v1);
    assert!(!again.new && !again.keyframe_wanted);

    // Not synced: deltas do not reach them.
    let del = send(&d, delta(3), t0 + ms(66));
    assert_eq!(del.reached, 0);
    assert!(v1.received().is_empty() && v2.received().is_empty());

    // The throttle runs on the real clock here (add_viewer_with reads Instant::now()).
    std::thread::sleep(Duration::from_millis(1050));
    let v3 = MediaSink::unbounded();
    assert!(
        join(&d, "v3", &v3).keyframe_wanted,
        "a second later: ask again"
    );
    assert!(!join(&d, "v4", &MediaSink::unbounded()).keyframe_wanted);

    send(&d, key(4), t0 + ms(99));
    send(&d, delta(5), t0 + ms(132));
    for v in [&v1, &v2, &v3] {
        assert_eq!(v.seqs(), [4, 5]);
        let got = v.received();
        assert_eq!(got[0].frame.kind, FrameKind::Key);
        assert!(got.iter().all(|r| !r.resync), "joiners are not resyncing");
    }
}

#[test]
fn webcodecs_overflow_resyncs_at_the_next_key_and_requests_one_at_most_each_second() {
    let (d, t0) = open(limits());
    let healthy = MediaSink::unbounded();
    let slow = MediaSink::with_capacity(1);
    join(&d, "healthy", &healthy);
    join(&d, "slow", &slow);
    let t = t0 + secs(1);

    assert!(!send(&d, key(1), t).keyframe_wanted); // slow: queued (now full)
    let drop1 = send(&d, delta(2), t + ms(10)); // slow: refused
    assert!(drop1.keyframe_wanted, "a viewer lost data: ask for a key");
    assert_eq!(stats(&d, t).resyncs, 1);
    slow.drain();
    let skipped = send(&d, delta(3), t + ms(20));
    assert!(!skipped.keyframe_wanted);
    assert_eq!(skipped.reached, 1, "the slow viewer waits for a key");
    send(&d, key(4), t + ms(30)); // slow: resync, full again
    let drop2 = send(&d, delta(5), t + ms(500)); // refused again
    assert!(
        !drop2.keyframe_wanted,
        "within a second of the last request"
    );
    slow.drain();
    send(&d, delta(6), t + ms(600));
    send(&d, key(7), t + ms(700)); // slow: resync, full again
    let drop3 = send(&d, delta(8), t + ms(1010)); // refused, a second after the first request
    assert!(drop3.keyframe_wanted);
    slow.drain();
    send(&d, key(9), t + ms(1100));

    let got = slow.received();
    assert_eq!(slow.seqs(), [1, 4, 7, 9]);
    assert_eq!(
        got.iter().map(|r| r.resync).collect::<Vec<_>>(),
        [false, true, true, true]
    );
    assert!(got.iter().all(|r| r.frame.kind == FrameKind::Key));
    assert_eq!(healthy.seqs(), (1..=9).collect::<Vec<_>>());
    assert!(healthy.received().iter().all(|r| !r.resync));
    let st = stats(&d, t + secs(1));
    assert_eq!(st.resyncs, 3);
    assert_eq!(st.dropped_slow_viewer, 3);
}

// ---------------------------------------------------------------------------------------------
// 7. Delivery levels
// ---------------------------------------------------------------------------------------------

#[test]
fn images_viewer_steps_down_on_refusals_and_back_up_after_5s_clear() {
    let (d, t0) = open(limits());
    let v = MediaSink::with_capacity(1);
    join(&d, "v", &v);
    let levels = |at| stats(&d, at).levels;
    let mut seq = 0u64;
    // Publishes the next frame at `at`; unless `congested`, the viewer drains first.
    let mut pub_at = |at: Instant, congested: bool| {
        if !congested {
            v.drain();
        }
        seq += 1;
        let del = send(&d, binary(JPEG), at);
        assert_eq!(del.seq, seq);
        del.level_changes
    };
    let none: Vec<(ConnId, usize)> = Vec::new();
    let told = |level: usize| vec![("v".to_owned(), level)];

    let t = t0;
    assert_eq!(pub_at(t, false), none); // 1: sent
    assert_eq!(pub_at(t + ms(100), true), none); // 2: refused
    assert_eq!(pub_at(t + ms(1000), true), none); // 3: refused
    assert_eq!(levels(t), [1, 0, 0], "two refusals are not enough");
    assert_eq!(pub_at(t + ms(1100), false), none); // 4: sent at level 0
    // 5: the third refusal within 2 s of the first (a send in between does not matter).
    assert_eq!(pub_at(t + ms(2050), true), none, "not told while refusing");
    assert_eq!(levels(t), [0, 1, 0]);

    // Level 1: every 2nd frame. Told once, with the first frame sent after the change.
    let changes: Vec<_> = (6..=12)
        .map(|i| pub_at(t + ms(2000 + 10 * i), false))
        .collect();
    assert_eq!(changes[0], told(1), "with frame 6");
    assert!(changes[1..].iter().all(Vec::is_empty));
    // 13..=18 while full: 14, 16 and 18 are offered and refused (18 is 1.95 s after the
    // step down at 2.05 s, which restarted the count) -> level 2.
    for (i, at) in [
        (13, 2200),
        (14, 2300),
        (15, 2400),
        (16, 3300),
        (17, 3900),
        (18, 4000),
    ] {
        assert_eq!(pub_at(t + ms(at), true), none, "frame {i}");
    }
    assert_eq!(levels(t), [0, 0, 1]);
    let changes: Vec<_> = (19..=28)
        .map(|i| pub_at(t + ms(4000 + 10 * i), false))
        .collect();
    assert_eq!(changes[1], told(2), "with frame 20");
    assert_eq!(changes.iter().filter(|c| !c.is_empty()).count(), 1);
    assert_eq!(v.seqs(), [1, 4, 6, 8, 10, 12, 20, 24, 28]);

    // The last change was the step down at 4 s. One level up per 5 s without refusals.
    let last = t + ms(4000);
    for i in 29..=31 {
        assert_eq!(pub_at(last + ms(100 + i), false), none);
    }
    assert_eq!(
        pub_at(last + ms(4900), false),
        none,
        "32: sent, 4.9 s is too early"
    );
    for i in 33..=35 {
        assert_eq!(pub_at(last + ms(4900 + i), false), none);
    }
    assert_eq!(
        pub_at(last + secs(5), false),
        told(1),
        "36: sent 5 s on, one level up"
    );
    assert_eq!(levels(last + secs(5)), [0, 1, 0]);
    assert_eq!(pub_at(last + ms(5010), false), none); // 37: skipped
    assert_eq!(pub_at(last + ms(5020), false), none); // 38: sent
    assert_eq!(pub_at(last + ms(9900), false), none); // 39: skipped
    assert_eq!(
        pub_at(last + ms(9950), false),
        none,
        "40: 4.95 s after the step up"
    );
    assert_eq!(pub_at(last + ms(10_000), false), none); // 41: skipped
    assert_eq!(
        pub_at(last + ms(10_020), false),
        told(0),
        "42: another 5 s, level 0"
    );
    assert_eq!(levels(last + secs(11)), [1, 0, 0]);
    for i in 43..=45 {
        assert_eq!(pub_at(last + ms(10_000 + i), false), none);
    }
    assert_eq!(
        v.seqs()[9..],
        [32, 36, 38, 40, 42, 43, 44, 45],
        "every 4th, every 2nd, then every frame"
    );
}

#[test]
fn refusals_spread_over_more_than_2s_do_not_step_down() {
    let (d, t0) = open(limits());
    let v = MediaSink::with_capacity(1);
    join(&d, "v", &v);
    send(&d, binary(JPEG), t0); // queued: full from here on
    for at in [100, 1500, 2200] {
        // The third is 2.1 s after the first: the count restarts at 1.
        send(&d, binary(JPEG), t0 + ms(at));
    }
    assert_eq!(stats(&d, t0).levels, [1, 0, 0]);
    assert_eq!(stats(&d, t0).dropped_slow_viewer, 3);
    send(&d, binary(JPEG), t0 + ms(2500));
    send(&d, binary(JPEG), t0 + ms(4100)); // 1.9 s after 2.2 s: three in the window
    assert_eq!(stats(&d, t0).levels, [0, 1, 0]);
}

#[test]
fn webm_viewer_at_level_1_gets_each_keyframe_piece_as_a_fresh_start_then_steps_back_up() {
    let fx = vp8();
    let (d, t0) = open(limits());
    let healthy = MediaSink::unbounded();
    let slow = MediaSink::with_capacity(2);
    join(&d, "healthy", &healthy);
    join(&d, "slow", &slow);
    let lens = fx.chunks();
    // Segment 1: `slow` takes two frames, then refuses frame 3 and the two keyframe Clusters
    // offered to it after that: three refusals, level 1.
    feed(&d, fx.data, &lens, false, t0);
    let st = stats(&d, t0 + secs(1));
    assert_eq!(st.levels, [1, 1, 0]);
    assert_eq!(st.dropped_slow_viewer, 3);
    assert_eq!(st.resyncs, 1);
    assert_eq!(slow.seqs(), [1, 2]);

    // The recorder restarts: a new EBML header begins a new segment (init + keyframe Cluster
    // in the first chunk). `slow` keeps up from here on, but stays at level 1 for 5 s.
    let resend = |from: Instant| {
        let first = healthy.seqs().last().unwrap() + 1;
        let mut at = 0;
        let mut changes = Vec::new();
        for (i, n) in lens.iter().enumerate() {
            slow.drain();
            let del = send(&d, binary(&fx.data[at..at + n]), from + ms(i as u64));
            changes.extend(del.level_changes);
            at += n;
        }
        (first, changes)
    };
    let (first_seq, changes) = resend(t0 + ms(500));
    // Told on the first frame its queue took after the step down.
    assert_eq!(changes, [("slow".to_owned(), 1)]);
    let got: Vec<Rec> = slow.received()[2..].to_vec();
    let keys: Vec<Frame> = healthy
        .frames()
        .into_iter()
        .filter(|f| f.seq >= first_seq && f.kind == FrameKind::Key)
        .collect();
    assert!(keys.len() >= 2, "the fixture has several keyframe Clusters");
    assert_eq!(
        got.iter().map(|r| r.frame.seq).collect::<Vec<_>>(),
        keys.iter().map(|f| f.seq).collect::<Vec<_>>(),
        "keyframe pieces only at level 1"
    );
    for (r, key) in got.iter().zip(&keys) {
        // Each one decodable on its own: the init, then the keyframe piece, once each.
        assert!(r.resync && r.frame.init && r.frame.kind == FrameKind::Key);
        let bytes = raw(&r.frame.data);
        assert!(bytes.starts_with(fx.init()), "starts with the init segment");
        let piece = raw(&key.data);
        let piece = piece.strip_prefix(fx.init()).unwrap_or(&piece);
        assert!(
            bytes[fx.layout.init_len..] == *piece,
            "then the keyframe piece"
        );
    }
    assert_eq!(stats(&d, t0 + secs(1)).levels, [1, 1, 0]);

    // 5 s without refusals: back to level 0 at the first keyframe, then every piece again.
    let (first_seq, changes) = resend(t0 + secs(6));
    assert_eq!(changes, [("slow".to_owned(), 0)]);
    let got = slow.received();
    let restart = got.iter().position(|r| r.frame.seq >= first_seq).unwrap();
    assert!(got[restart].resync && got[restart].frame.init);
    assert!(concat(got[restart..].iter().map(|r| &r.frame)) == fx.data);
    assert!(got[restart + 1..].iter().all(|r| !r.resync));
    assert_eq!(stats(&d, t0 + secs(7)).levels, [2, 0, 0]);
}

#[test]
fn encoded_viewer_that_resyncs_once_per_gop_steps_down_to_keys_only() {
    // One refusal per 1.5 s GOP: too sparse for the 2 s window of pictures, three within the
    // 10 s window of encoded video.
    let (d, t0) = open(limits());
    let v = MediaSink::with_capacity(1);
    join(&d, "v", &v);
    let mut ts = 0;
    for gop in 0..3u64 {
        let t = t0 + ms(1500 * gop);
        v.drain();
        send(&d, key(ts), t); // taken; the queue is full again
        send(&d, delta(ts + 1), t + ms(100)); // refused: wait for the next key
        ts += 2;
        let want = if gop < 2 { [1, 0, 0] } else { [0, 1, 0] };
        assert_eq!(stats(&d, t + ms(100)).levels, want, "after GOP {gop}");
    }
    assert_eq!(stats(&d, t0).resyncs, 3);
}

#[test]
fn webcodecs_viewer_at_level_1_gets_key_chunks_only() {
    let (d, t0) = open(limits());
    let v = MediaSink::with_capacity(1);
    join(&d, "v", &v);
    let t = t0 + secs(2);
    send(&d, key(1), t); // queued, full
    send(&d, delta(2), t + ms(10)); // refused (1): waits for a key
    send(&d, key(3), t + ms(20)); // refused (2)
    send(&d, key(4), t + ms(30)); // refused (3): level 1
    assert_eq!(stats(&d, t).levels, [0, 1, 0]);

    let mut received_after = Vec::new();
    for (i, inc) in [delta(5), key(6), delta(7), delta(8), key(9), delta(10)]
        .into_iter()
        .enumerate()
    {
        v.drain();
        let del = send(&d, inc, t + ms(100 + 10 * i as u64));
        received_after.push(del.level_changes);
    }
    assert_eq!(v.seqs(), [1, 6, 9], "key chunks only at level 1");
    assert!(v.frames().iter().all(|f| f.kind == FrameKind::Key));
    assert_eq!(received_after[1], [("v".to_owned(), 1)]);
    assert_eq!(stats(&d, t + secs(1)).levels, [0, 1, 0]);

    // 5 s without refusals: back to level 0 on the next key, then deltas flow again.
    v.drain();
    send(&d, delta(11), t + ms(30) + secs(5));
    assert_eq!(
        v.seqs(),
        [1, 6, 9],
        "a delta cannot step up: it is not offered"
    );
    let del = send(&d, key(12), t + ms(40) + secs(5));
    assert_eq!(del.level_changes, [("v".to_owned(), 0)]);
    v.drain();
    send(&d, delta(13), t + ms(50) + secs(5));
    assert_eq!(v.seqs(), [1, 6, 9, 12, 13]);
}

// ---------------------------------------------------------------------------------------------
// 8. GOP cap
// ---------------------------------------------------------------------------------------------

#[test]
fn webcodecs_gop_over_the_cap_is_dropped_and_joiners_wait_for_a_key() {
    let (d, t0) = open(RelayLimits {
        max_gop_bytes: 8,
        ..limits()
    });
    send(&d, key(1), t0); // "K1": 2 bytes
    send(&d, delta(22), t0 + ms(1)); // 3 bytes: 5
    assert_eq!(stats(&d, t0).gop_frames, 2);
    send(&d, delta(33), t0 + ms(2)); // 3 bytes: 8, at the cap
    assert_eq!(stats(&d, t0).gop_frames, 3);
    send(&d, delta(4), t0 + ms(3)); // 10 > 8: dropped
    assert_eq!(stats(&d, t0).gop_frames, 0);
    send(&d, delta(5), t0 + ms(4));
    assert_eq!(stats(&d, t0).gop_frames, 0, "no partial GOP grows back");

    let v = MediaSink::unbounded();
    let j = join(&d, "v", &v);
    assert!(j.buffer.is_empty(), "no partial GOP");
    assert!(j.keyframe_wanted);
    send(&d, delta(6), t0 + ms(5));
    assert!(
        v.received().is_empty(),
        "not synced: waits for the next key"
    );
    send(&d, key(7), t0 + ms(6));
    send(&d, delta(8), t0 + ms(7));
    assert_eq!(v.seqs(), [7, 8]);
    assert_eq!(stats(&d, t0).gop_frames, 2);
}

#[test]
fn webm_gop_over_the_cap_is_dropped_and_joiners_wait_for_the_next_keyframe() {
    let fx = vp8();
    let lens = fx.chunks();
    let ends = ends(&lens);
    // The cap holds the first 4 chunks of the first GOP; the 7th goes past it, still before
    // the second keyframe Cluster.
    assert!(ends[6] < fx.keyframes()[1]);
    let (d, t0) = open(RelayLimits {
        max_gop_bytes: ends[3],
        ..limits()
    });
    let early = MediaSink::unbounded();
    join(&d, "early", &early);
    feed(&d, fx.data, &lens[..4], false, t0);
    assert_eq!(stats(&d, t0).gop_frames, 4);
    feed(&d, &fx.data[ends[3]..], &lens[4..7], false, t0 + ms(4));
    assert_eq!(stats(&d, t0).gop_frames, 0);

    let v = MediaSink::unbounded();
    let j = join(&d, "v", &v);
    assert_eq!(j.buffer.len(), 1);
    assert!(j.buffer[0].init);
    assert_eq!(
        j.buffer[0].kind,
        FrameKind::Delta,
        "the init alone, no partial GOP"
    );
    assert_eq!(raw(&j.buffer[0].data), fx.init());
    feed(&d, &fx.data[ends[6]..], &lens[7..], false, t0 + ms(10));

    // It waited for the second keyframe Cluster.
    let got = v.frames();
    assert_eq!(got[0].kind, FrameKind::Key);
    assert!(!got[0].init);
    assert!(raw(&got[0].data).starts_with(&CLUSTER_ID));
    let whole = cat(&raw(&j.buffer[0].data), &v.bytes());
    assert!(whole == cat(fx.init(), &fx.data[fx.keyframes()[1]..]));
    assert_eq!(early.bytes(), fx.relayed());
}

// ---------------------------------------------------------------------------------------------
// 9. Malformed WebM
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_webm_is_refused_until_a_new_header_arrives() {
    let fx = vp8();
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);

    // EBML magic, then a size VINT with no marker bit in its first byte: unparseable.
    let garbage = [0x1A, 0x45, 0xDF, 0xA3, 0x00, 0x13, 0x37, 0xFF, 0x00, 0x42];
    let err = try_send(&d, binary(&garbage), t0).unwrap_err();
    assert!(matches!(err, RelayError::BadMedia(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::InvalidPayload);
    assert_eq!(stats(&d, t0).dropped_bad_media, 1);
    // The rest of that stream is refused too, chunk by chunk.
    let err = try_send(&d, binary(&fx.data[500..900]), t0 + ms(1)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidPayload);
    // Base64 text that is not base64.
    let err = try_send(
        &d,
        plain(FrameData::Text("GkXf*not base64*".into())),
        t0 + ms(2),
    );
    assert!(matches!(err, Err(RelayError::BadMedia(_))), "{err:?}");
    let st = stats(&d, t0 + ms(2));
    assert_eq!(st.dropped_bad_media, 3);
    assert_eq!(st.frames_in, 0);
    assert!(v.received().is_empty());
    assert!(
        d.stream_info(KEY).unwrap().started_at.is_none(),
        "refused frames start nothing"
    );

    // A recorder restart: a new, valid header resets the parser.
    feed(&d, fx.data, &fx.chunks(), false, t0 + ms(10));
    assert_eq!(v.bytes(), fx.data);
    assert_eq!(v.seqs(), (1..=v.len() as u64).collect::<Vec<_>>());
    let st = stats(&d, t0 + secs(1));
    assert_eq!(st.dropped_bad_media, 3);
    assert_eq!(st.media, MediaMode::Webm);
    assert_eq!(st.frames_in, fx.chunks().len() as u64);
}

// ---------------------------------------------------------------------------------------------
// 10. Mode switches
// ---------------------------------------------------------------------------------------------

#[test]
fn images_stream_switching_to_webcodecs_clears_the_ring() {
    let (d, t0) = open(limits());
    for i in 0..5 {
        send(&d, binary(JPEG), t0 + ms(i));
    }
    let st = stats(&d, t0);
    assert_eq!((st.media, st.buffer_size), (MediaMode::Images, 5));
    let j = join(&d, "before", &MediaSink::unbounded());
    assert_eq!((j.media, j.buffer.len()), (MediaMode::Images, 5));

    send(&d, wc(ChunkKind::Key, 6, Some(config("vp8"))), t0 + ms(6));
    let st = stats(&d, t0 + ms(6));
    assert_eq!(st.media, MediaMode::Webcodecs);
    assert_eq!(st.buffer_size, 0, "the images ring is gone");
    assert_eq!(st.gop_frames, 1);
    let v = MediaSink::unbounded();
    let j = join(&d, "after", &v);
    assert_eq!(j.media, MediaMode::Webcodecs);
    assert_eq!(j.buffer.iter().map(|f| f.seq).collect::<Vec<_>>(), [6]);
    send(&d, delta(7), t0 + ms(7));
    assert_eq!(v.seqs(), [7]);
}

#[test]
fn images_stream_switching_to_webm_clears_the_ring() {
    let fx = vp8();
    let (d, t0) = open(limits());
    for i in 0..3 {
        send(&d, binary(JPEG), t0 + ms(i));
    }
    assert_eq!(stats(&d, t0).buffer_size, 3);
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    feed(&d, fx.data, &fx.chunks(), false, t0 + ms(10));
    let st = stats(&d, t0 + secs(1));
    assert_eq!(st.media, MediaMode::Webm);
    assert_eq!(st.buffer_size, 0);
    assert_eq!(v.bytes(), fx.data);
    assert_eq!(v.seqs()[0], 4, "seq keeps counting across the switch");
}

// Regression tests for bugs found while writing this file.

#[test]
fn recorded_vp8_opus_chunks_with_a_one_byte_head_are_webm() {
    let fx = vp8_opus();
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    feed(&d, fx.data, &fx.one_byte_head(), false, t0); // first chunk: the single byte 0x1A
    assert_eq!(stats(&d, t0).media, MediaMode::Webm);
    assert!(v.frames().iter().all(|f| f.media == MediaMode::Webm));
}

#[test]
fn a_joiner_during_the_first_gop_gets_the_init_once() {
    let fx = vp8();
    let (d, t0) = open(limits());
    let early = MediaSink::unbounded();
    join(&d, "early", &early);
    assert!(
        ends(&fx.recorded)[2] < fx.keyframes()[1],
        "3 chunks: inside the first GOP"
    );
    feed(&d, fx.data, &fx.recorded[..3], false, t0);
    let relayed = early.bytes().len();
    let j = join(&d, "v", &MediaSink::unbounded());
    let b = raw(&j.buffer[0].data);
    assert_eq!(
        (relayed, b.len()),
        (relayed, relayed),
        "init + file[126..relayed] is file[..relayed]"
    );
    assert!(b == fx.data[..relayed]);
}

#[test]
fn a_viewer_waiting_for_a_key_is_not_stranded_by_a_switch_to_images() {
    let (d, t0) = open(limits());
    send(&d, delta(1), t0); // webcodecs, no key yet
    let v = MediaSink::unbounded();
    let j = join(&d, "v", &v);
    assert!(j.buffer.is_empty());
    for i in 0..5 {
        send(&d, binary(JPEG), t0 + ms(10 + i)); // streamer falls back to JPEG
    }
    assert_eq!(stats(&d, t0).media, MediaMode::Images);
    assert_eq!(v.seqs(), [2, 3, 4, 5, 6]);
}

#[test]
fn ebml_magic_inside_a_chunk_is_payload_not_a_restart() {
    let fx = vp8();
    // Overwrite 4 payload bytes well inside a SimpleBlock of the first Cluster with the EBML
    // magic and cut a chunk there: the bytes are still a well-formed WebM stream.
    let mut data = fx.data.to_vec();
    let at = 1000;
    data[at..at + 4].copy_from_slice(&[0x1A, 0x45, 0xDF, 0xA3]);
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    // The magic sits one byte into a chunk: only a chunk that starts with it is a restart
    // (see starts_webm; a chunk starting with payload equal to the magic has a 2^-32 chance).
    send(&d, binary(&data[..at - 1]), t0);
    let mut results = Vec::new();
    let mut prev = at - 1;
    for (i, e) in ends(&fx.recorded).into_iter().enumerate() {
        if e > prev {
            results.push(try_send(&d, binary(&data[prev..e]), t0 + ms(i as u64 + 1)).map(|_| ()));
            prev = e;
        }
    }
    let errs = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        errs,
        0,
        "first error: {:?}",
        results.iter().find(|r| r.is_err())
    );
    assert!(v.bytes() == data);
}

#[test]
fn joining_again_does_not_resend_the_catch_up() {
    let fx = vp8();
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    feed(&d, fx.data, &fx.recorded[..10], false, t0);
    let again = join(&d, "v", &v);
    assert!(!again.new);
    assert!(
        again.buffer.is_empty(),
        "an existing viewer must not get init+GOP again mid-stream"
    );
}

#[test]
fn a_waiting_webm_viewer_skips_a_restart_init_until_the_keyframe() {
    let fx = vp8();
    let (d, t0) = open(limits());
    let slow = MediaSink::with_capacity(1);
    join(&d, "slow", &slow);
    feed(&d, fx.data, &fx.chunks()[..3], false, t0); // frame 1 taken, frame 2 refused: waiting
    assert_eq!(stats(&d, t0).resyncs, 1);
    slow.drain();
    // Recorder restart; its init arrives in a chunk of its own (no Cluster block yet).
    let head = fx.layout.init_len + 14;
    send(&d, binary(&fx.data[..head]), t0 + ms(10));
    slow.drain();
    send(&d, binary(&fx.data[head..5000]), t0 + ms(11));
    let got = slow.received();
    // protocol.md: "at the first drop, nothing until the next keyframe Cluster, which comes with
    // init: true, resync: true"
    assert_eq!(
        got.len(),
        2,
        "{:?} (seq, init, kind, resync, len)",
        got.iter()
            .map(|r| (r.frame.seq, r.frame.init, r.frame.kind, r.resync))
            .collect::<Vec<_>>()
    );
    let s: Vec<_> = slow
        .received()
        .iter()
        .map(|r| {
            (
                r.frame.seq,
                r.frame.init,
                r.frame.kind,
                r.resync,
                raw(&r.frame.data).len(),
            )
        })
        .collect();
    assert!(
        got[1].resync && got[1].frame.kind == FrameKind::Key,
        "{s:?}"
    );
}

#[test]
fn a_recorder_restart_sent_as_recorded_keeps_the_stream_alive() {
    let fx = vp8_opus();
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    feed(&d, fx.data, &fx.chunks(), false, t0); // first session: merged head, fine
    // The recorder restarts and sends its chunks as Chrome may deliver them (first one: the
    // byte 0x1A).
    let (mut at, mut refused) = (0, 0);
    let restart = fx.one_byte_head();
    for (i, n) in restart.iter().enumerate() {
        refused += usize::from(
            try_send(&d, binary(&fx.data[at..at + n]), t0 + ms(100 + i as u64)).is_err(),
        );
        at += n;
    }
    assert_eq!(
        refused,
        0,
        "of {} chunks; dropped_bad_media {}",
        restart.len(),
        stats(&d, t0).dropped_bad_media
    );
}

#[test]
fn a_webcodecs_joiner_whose_catch_up_did_not_all_go_out_waits_for_the_next_key() {
    let (d, t0) = open(limits());
    send(&d, key(0), t0);
    send(&d, delta(1), t0 + ms(1));
    send(&d, delta(2), t0 + ms(2));
    let v = MediaSink::unbounded();
    // The welcome reports that part of the GOP did not fit the viewer's queue.
    let joined = d
        .add_viewer_with(KEY, "v", v.clone(), |j| {
            assert_eq!(j.buffer.len(), 3);
            false
        })
        .expect("join");
    assert!(joined.new);
    // A delta now would decode against a hole: not delivered. The next key is.
    send(&d, delta(3), t0 + ms(3));
    assert!(v.seqs().is_empty(), "got {:?}", v.seqs());
    send(&d, key(4), t0 + ms(4));
    assert_eq!(v.seqs(), [5]);
}

#[test]
fn stopping_relays_the_webm_tail_the_parser_held() {
    let fx = vp8_opus();
    assert_ne!(
        fx.relayed(),
        fx.data,
        "the recording ends with an audio-only Cluster"
    );
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    feed(&d, fx.data, &fx.chunks(), false, t0);
    assert_eq!(v.bytes(), fx.relayed(), "held until the next Cluster");
    let before = stats(&d, t0).frames_out;
    let flushed = d.flush_media(KEY, OWNER, t0 + ms(100), 0).expect("owner");
    assert_eq!(flushed.reached, 1);
    assert_eq!(v.bytes(), fx.data, "every byte once the streamer stopped");
    assert_eq!(stats(&d, t0).frames_out, before + 1);
    // Nothing more to flush, and only the owner may.
    assert_eq!(
        d.flush_media(KEY, OWNER, t0 + ms(200), 0)
            .expect("owner")
            .reached,
        0
    );
    assert!(d.flush_media(KEY, "v", t0 + ms(200), 0).is_err());
}

#[test]
fn stopping_a_picture_stream_relays_nothing_more() {
    let (d, t0) = open(limits());
    let v = MediaSink::unbounded();
    join(&d, "v", &v);
    send(&d, binary(JPEG), t0);
    let flushed = d.flush_media(KEY, OWNER, t0 + ms(10), 0).expect("owner");
    assert_eq!((flushed.reached, v.seqs()), (0, vec![1]));
}
