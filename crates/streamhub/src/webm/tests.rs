#![allow(clippy::unwrap_used)]

//! Tests: real Chrome `MediaRecorder` captures (`tests/fixtures/`) fed at every chunking,
//! synthetic streams for the layouts Chrome does not write, and a seeded random harness for
//! garbage, truncated and mutated input.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

use super::fixtures::{Fixture, vp8, vp8_opus};

/// (stream offset, Cluster Timecode, first video block is a keyframe) of every Cluster, from
/// the fixture's independent dump.
fn expected_clusters(f: &Fixture) -> Vec<(u64, u64, bool)> {
    f.layout
        .clusters
        .iter()
        .map(|c| (c.offset, c.timecode, c.keyframe))
        .collect()
}

/// A ClusterStart seen in a run: (stream offset, length, keyframe, timecode).
type Start = (u64, usize, bool, u64);

/// What one run of the parser produced.
struct Outcome {
    pieces: Vec<Piece>,
    /// After each push: (bytes emitted so far, bytes pushed so far).
    progress: Vec<(u64, u64)>,
    tracks: Vec<Track>,
    video_track: Option<u64>,
    max_buffered: usize,
}

impl Outcome {
    fn bytes(&self) -> Vec<u8> {
        self.pieces
            .iter()
            .flat_map(|p| p.bytes().iter().copied())
            .collect()
    }

    fn error(&self) -> Option<&WebmError> {
        self.pieces.iter().find_map(|p| match p {
            Piece::Error(e) => Some(e),
            _ => None,
        })
    }

    /// (offset, length) of the Init piece and (offset, length, keyframe, timecode) of every
    /// ClusterStart: these must not depend on how the input was chunked.
    fn summary(&self) -> (Vec<(u64, usize)>, Vec<Start>) {
        let (mut inits, mut starts, mut at) = (Vec::new(), Vec::new(), 0u64);
        for p in &self.pieces {
            match p {
                Piece::Init(b) => inits.push((at, b.len())),
                Piece::ClusterStart {
                    bytes,
                    keyframe,
                    timecode,
                } => {
                    starts.push((at, bytes.len(), *keyframe, *timecode));
                }
                Piece::Data(_) | Piece::Error(_) => {}
            }
            at += p.bytes().len() as u64;
        }
        (inits, starts)
    }
}

fn feed(data: &[u8], max_buffer: usize, mut next_size: impl FnMut() -> usize) -> Outcome {
    let mut parser = WebmParser::with_max_buffer(max_buffer);
    let (mut pieces, mut progress, mut emitted, mut pushed, mut max_buffered) =
        (Vec::new(), Vec::new(), 0u64, 0usize, 0usize);
    while pushed < data.len() {
        let n = next_size().clamp(1, data.len() - pushed);
        let out = parser.push(&data[pushed..pushed + n]);
        pushed += n;
        emitted += out.iter().map(|p| p.bytes().len() as u64).sum::<u64>();
        max_buffered = max_buffered.max(parser.buffered());
        progress.push((emitted, pushed as u64));
        pieces.extend(out);
    }
    let tracks = parser.tracks().to_vec();
    let video_track = parser.video_track().map(|t| t.number);
    pieces.extend(parser.finish());
    Outcome {
        pieces,
        progress,
        tracks,
        video_track,
        max_buffered,
    }
}

fn feed_chunks(data: &[u8], chunks: &[usize]) -> Outcome {
    assert_eq!(
        chunks.iter().sum::<usize>(),
        data.len(),
        "chunk lengths add up to the file"
    );
    let mut it = chunks.iter().copied();
    feed(data, DEFAULT_MAX_BUFFER, move || it.next().unwrap_or(1))
}

/// Random chunk sizes; each seed picks its own scale so both tiny and huge chunks are covered.
fn random_sizes(seed: u64) -> impl FnMut() -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let cap = [2, 7, 33, 200, 1500, 9000, 70_000, 500_000][(seed % 8) as usize];
    move || {
        if rng.random_bool(0.1) {
            rng.random_range(1..=4)
        } else {
            rng.random_range(1..=cap)
        }
    }
}

fn check_fixture_run(f: &Fixture, run: &Outcome, how: &str) {
    let ctx = format!("{} fed {how}", f.name);
    assert_eq!(run.error(), None, "{ctx}");
    assert!(
        run.bytes() == f.data,
        "{ctx}: concatenated pieces differ from the input"
    );

    let (inits, starts) = run.summary();
    assert_eq!(
        inits,
        vec![(0, f.layout.init_len)],
        "{ctx}: one Init, everything before the first Cluster"
    );
    assert!(
        matches!(run.pieces.first(), Some(Piece::Init(_))),
        "{ctx}: Init comes first"
    );
    let found: Vec<_> = starts.iter().map(|&(o, _, k, t)| (o, t, k)).collect();
    assert_eq!(
        found,
        expected_clusters(f),
        "{ctx}: clusters (offset, timecode, keyframe)"
    );
    assert!(
        starts.iter().filter(|s| s.2).count() >= 2,
        "{ctx}: at least 2 keyframe clusters"
    );

    // Each ClusterStart ends right after its first video block's header (track, timecode, flags);
    // an audio-only Cluster's at its first block's.
    for (&(o, len, keyframe, _), c) in starts.iter().zip(&f.layout.clusters) {
        if c.video_at.is_none() {
            assert!(!keyframe, "{ctx}: audio-only Cluster at {o} is no keyframe");
            continue;
        }
        let b = &f.data[o as usize..o as usize + len];
        assert_eq!(
            &b[..4],
            &[0x1F, 0x43, 0xB6, 0x75],
            "{ctx}: ClusterStart at {o} starts with Cluster ID"
        );
        assert_eq!(
            u64::from(b[len - 4]),
            0x80 | f.video_track(),
            "{ctx}: ends in a video block header"
        );
        assert_eq!(
            b[len - 1] & 0x80 != 0,
            keyframe,
            "{ctx}: keyframe flag at {o}"
        );
    }

    // Tracks as declared.
    assert_eq!(run.video_track, Some(f.video_track()), "{ctx}");
    let video = run
        .tracks
        .iter()
        .find(|t| t.number == f.video_track())
        .unwrap();
    assert_eq!(
        (video.kind, video.codec_id.as_str()),
        (TrackKind::Video, "V_VP8"),
        "{ctx}"
    );
    assert_eq!(
        video.codec_id,
        f.layout
            .tracks
            .iter()
            .find(|t| t.number == video.number)
            .unwrap()
            .codec,
        "{ctx}"
    );
    if let Some(a) = f.audio_track() {
        let audio = run.tracks.iter().find(|t| t.number == a.number).unwrap();
        assert_eq!(
            (audio.kind, audio.codec_id.as_str()),
            (TrackKind::Audio, a.codec.as_str()),
            "{ctx}"
        );
    }
    assert_eq!(
        run.tracks.len(),
        1 + usize::from(f.audio_track().is_some()),
        "{ctx}"
    );

    // Low latency: more than an element header (11 bytes) is held only while waiting for the
    // Init or for a Cluster's first video block, i.e. when the held bytes start at 0 or at a
    // Cluster.
    for &(emitted, pushed) in &run.progress {
        if pushed - emitted > 11 {
            assert!(
                emitted == 0 || f.layout.clusters.iter().any(|c| c.offset == emitted),
                "{ctx}: {} bytes held from offset {emitted}",
                pushed - emitted
            );
        }
    }
}

fn check_fixture(f: &Fixture) {
    let recorded = feed_chunks(f.data, &f.recorded);
    check_fixture_run(f, &recorded, "as recorded");
    let reference = recorded.summary();

    let one = feed(f.data, DEFAULT_MAX_BUFFER, || 1);
    check_fixture_run(f, &one, "1 byte at a time");
    assert_eq!(one.summary(), reference);
    assert!(
        one.max_buffered <= 3500,
        "{}: held {} bytes",
        f.name,
        one.max_buffered
    );

    let whole = feed(f.data, DEFAULT_MAX_BUFFER, || usize::MAX);
    check_fixture_run(f, &whole, "in one push");
    assert_eq!(whole.summary(), reference);

    for seed in 0..20 {
        let run = feed(f.data, DEFAULT_MAX_BUFFER, random_sizes(seed));
        check_fixture_run(f, &run, &format!("in random chunks (seed {seed})"));
        assert_eq!(run.summary(), reference, "seed {seed}");
    }
}

#[test]
fn chrome_vp8_opus_fixture_cuts_identically_at_any_chunking() {
    check_fixture(&vp8_opus());
}

#[test]
fn chrome_vp8_fixture_cuts_identically_at_any_chunking() {
    check_fixture(&vp8());
}

#[test]
fn chrome_chunks_never_start_at_a_cluster() {
    // Why the relay cannot cut at chunk boundaries: none of Chrome's chunks starts a Cluster.
    for f in [vp8_opus(), vp8()] {
        let mut at = 0u64;
        for &len in &f.recorded {
            assert!(
                !f.layout.clusters.iter().any(|c| c.offset == at),
                "{}: chunk at {at} starts a Cluster",
                f.name
            );
            at += len as u64;
        }
    }
}

#[test]
fn fixture_cluster_start_is_emitted_as_soon_as_the_video_block_flags_arrive() {
    let f = vp8_opus();
    // The Cluster that opens with the most audio before its first video block.
    let c = *f
        .layout
        .clusters
        .iter()
        .max_by_key(|c| c.video_at.unwrap_or(0))
        .unwrap();
    let video_at = c.video_at.unwrap();
    assert!(video_at > 100, "some Cluster opens with Opus blocks");
    let (_, starts) = feed_chunks(f.data, &f.recorded).summary();
    let &(offset, len, keyframe, timecode) = starts.iter().find(|s| s.0 == c.offset).unwrap();
    assert!(
        (keyframe, timecode) == (c.keyframe, c.timecode) && len as u64 > video_at,
        "audio blocks are held with the cluster start"
    );
    let flags_end = (offset as usize) + len;

    let mut parser = WebmParser::new();
    let before = parser.push(&f.data[..flags_end - 1]);
    assert!(
        !before
            .iter()
            .any(|p| matches!(p, Piece::ClusterStart { timecode, .. } if *timecode == c.timecode))
    );
    let after = parser.push(&f.data[flags_end - 1..flags_end]);
    assert!(
        matches!(
            after.as_slice(),
            [Piece::ClusterStart { keyframe, timecode, .. }] if (*keyframe, *timecode) == (c.keyframe, c.timecode)
        ),
        "{after:?}"
    );
    // The next bytes flow out at once.
    let more = parser.push(&f.data[flags_end..flags_end + 500]);
    assert_eq!(
        more,
        vec![Piece::Data(Bytes::copy_from_slice(
            &f.data[flags_end..flags_end + 500]
        ))]
    );
    assert_eq!(parser.buffered(), 0);
}

// ---------------------------------------------------------------------------------------------
// Synthetic streams.

fn size_vint(n: u64) -> Vec<u8> {
    let len = (1..=8).find(|&l| n < (1u64 << (7 * l)) - 1).unwrap();
    let mut v = n.to_be_bytes()[8 - len..].to_vec();
    v[0] |= 0x80 >> (len - 1);
    v
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    b[skip..].to_vec()
}

fn el(id: u32, body: &[u8]) -> Vec<u8> {
    [id_bytes(id), size_vint(body.len() as u64), body.to_vec()].concat()
}

fn el_unknown(id: u32) -> Vec<u8> {
    [
        id_bytes(id),
        vec![0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    ]
    .concat()
}

fn uint_el(id: u32, v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(7);
    el(id, &b[skip..])
}

fn ebml_header() -> Vec<u8> {
    el(EBML, &[el(0x4286, &[1]), el(0x4282, b"webm")].concat())
}

const VOID: u32 = 0xEC;

fn tracks(list: &[(u64, u64, &str)]) -> Vec<u8> {
    let entries: Vec<u8> = list
        .iter()
        .flat_map(|&(n, t, c)| {
            el(
                TRACK_ENTRY,
                &[
                    uint_el(TRACK_NUMBER, n),
                    uint_el(TRACK_TYPE, t),
                    el(CODEC_ID, c.as_bytes()),
                ]
                .concat(),
            )
        })
        .collect();
    el(TRACKS, &entries)
}

fn simple_block(track: u64, flags: u8, payload: usize) -> Vec<u8> {
    el(
        SIMPLE_BLOCK,
        &[size_vint(track), vec![0, 0, flags], vec![0x55; payload]].concat(),
    )
}

/// A Block inside a BlockGroup, with a ReferenceBlock (not a keyframe) or without.
fn block_group(track: u64, reference: bool, payload: usize) -> Vec<u8> {
    let block = el(
        BLOCK,
        &[size_vint(track), vec![0, 0, 0], vec![0x66; payload]].concat(),
    );
    let reference = if reference {
        el(REFERENCE_BLOCK, &[0xFF])
    } else {
        Vec::new()
    };
    el(BLOCK_GROUP, &[block, reference].concat())
}

fn cluster_body(timecode: u64, blocks: &[Vec<u8>]) -> Vec<u8> {
    [vec![uint_el(TIMECODE, timecode)], blocks.to_vec()]
        .concat()
        .concat()
}

fn av_tracks() -> Vec<u8> {
    tracks(&[(1, 2, "A_OPUS"), (2, 1, "V_VP8")])
}

/// Feeds `data` whole, in 1-byte pieces and in random pieces; checks pass-through and that the
/// cut does not depend on chunking; returns the whole-push outcome.
fn feed_all_ways(data: &[u8]) -> Outcome {
    let whole = feed(data, DEFAULT_MAX_BUFFER, || usize::MAX);
    let one = feed(data, DEFAULT_MAX_BUFFER, || 1);
    assert_eq!(one.summary(), whole.summary());
    assert_eq!(one.error(), whole.error());
    for seed in 0..8 {
        let run = feed(data, DEFAULT_MAX_BUFFER, random_sizes(seed));
        assert_eq!(run.summary(), whole.summary(), "seed {seed}");
    }
    if whole.error().is_none() {
        assert!(whole.bytes() == data && one.bytes() == data);
    }
    whole
}

fn starts(run: &Outcome) -> Vec<(bool, u64)> {
    run.summary().1.iter().map(|s| (s.2, s.3)).collect()
}

#[test]
fn known_size_segment_and_clusters_with_optional_elements() {
    let prefix = [
        el(SEEK_HEAD, &[0; 20]),
        el(VOID, &[0; 7]),
        el(INFO, &uint_el(0x2AD7B1, 1)),
        av_tracks(),
        el(TAGS, &[1, 2, 3]),
        el(CUES, &[]),
    ]
    .concat();
    let clusters = [
        // audio keyframe flag first, then a non-key video block: not a keyframe cluster.
        el(
            CLUSTER,
            &cluster_body(0, &[simple_block(1, 0x80, 30), simple_block(2, 0x00, 40)]),
        ),
        el(
            CLUSTER,
            &cluster_body(100, &[simple_block(1, 0x80, 30), simple_block(2, 0x80, 40)]),
        ),
        // Audio only: decided when the Cluster ends.
        el(CLUSTER, &cluster_body(200, &[simple_block(1, 0x80, 30)])),
        el(
            CLUSTER,
            &cluster_body(300, &[block_group(2, false, 50), simple_block(2, 0, 5)]),
        ),
        el(
            CLUSTER,
            &cluster_body(400, &[block_group(1, false, 10), block_group(2, true, 50)]),
        ),
    ]
    .concat();
    let body = [prefix.clone(), clusters, el(CUES, &[9; 12])].concat();
    let segment = el(SEGMENT, &body);
    let segment_header = segment.len() - body.len();
    let data = [ebml_header(), segment].concat();

    let run = feed_all_ways(&data);
    assert_eq!(run.error(), None);
    let (inits, _) = run.summary();
    // Init: EBML header + Segment header + everything before the first Cluster.
    assert_eq!(
        inits,
        vec![(0, ebml_header().len() + segment_header + prefix.len())]
    );
    assert_eq!(
        starts(&run),
        vec![
            (false, 0),
            (true, 100),
            (false, 200),
            (true, 300),
            (false, 400)
        ]
    );
    assert_eq!(run.video_track, Some(2));
    assert!(
        matches!(run.pieces.last(), Some(Piece::Data(_))),
        "Cues after the Clusters flow as Data"
    );
}

#[test]
fn unknown_size_clusters_end_at_segment_level_ids() {
    let data = [
        ebml_header(),
        el_unknown(SEGMENT),
        el(INFO, &[]),
        tracks(&[(7, 1, "V_VP8")]),
        el_unknown(CLUSTER),
        cluster_body(0, &[simple_block(7, 0x80, 100)]),
        el_unknown(CLUSTER),
        cluster_body(33, &[simple_block(7, 0x00, 100), el(VOID, &[0; 3])]),
        el(TAGS, &[0; 10]), // ends the Cluster; relayed as Data
        el_unknown(CLUSTER),
        cluster_body(66, &[el(VOID, &[0; 3]), simple_block(7, 0x80, 100)]),
    ]
    .concat();
    let run = feed_all_ways(&data);
    assert_eq!(run.error(), None);
    assert_eq!(starts(&run), vec![(true, 0), (false, 33), (true, 66)]);
    assert_eq!(
        run.tracks,
        vec![Track {
            number: 7,
            kind: TrackKind::Video,
            codec_id: "V_VP8".into()
        }]
    );
}

#[test]
fn cluster_without_video_is_emitted_when_the_next_cluster_starts() {
    let head = [ebml_header(), el_unknown(SEGMENT), av_tracks()].concat();
    let audio_cluster = [
        el_unknown(CLUSTER),
        cluster_body(0, &[simple_block(1, 0x80, 50)]),
    ]
    .concat();
    let next = el_unknown(CLUSTER);

    let mut parser = WebmParser::new();
    assert_eq!(parser.push(&head), vec![]);
    let out = parser.push(&audio_cluster);
    assert!(matches!(out.as_slice(), [Piece::Init(b)] if b.len() == head.len()));
    assert_eq!(
        parser.buffered(),
        audio_cluster.len(),
        "held: no video block yet"
    );
    let out = parser.push(&next);
    assert_eq!(
        out,
        vec![Piece::ClusterStart {
            bytes: Bytes::from(audio_cluster.clone()),
            keyframe: false,
            timecode: 0
        }]
    );
    assert_eq!(parser.buffered(), next.len());
    // The stream ends in a Cluster with no video block: finish() hands it back.
    assert_eq!(
        parser.finish(),
        vec![Piece::ClusterStart {
            bytes: Bytes::from(next),
            keyframe: false,
            timecode: 0
        }]
    );
}

#[test]
fn without_a_video_track_clusters_start_at_their_first_block() {
    let data = [
        ebml_header(),
        el_unknown(SEGMENT),
        tracks(&[(1, 2, "A_OPUS")]),
        el_unknown(CLUSTER),
        cluster_body(0, &[simple_block(1, 0x80, 50), simple_block(1, 0x80, 50)]),
        el_unknown(CLUSTER),
        cluster_body(60, &[simple_block(1, 0x80, 50)]),
    ]
    .concat();
    let run = feed_all_ways(&data);
    assert_eq!(run.error(), None);
    assert_eq!(starts(&run), vec![(false, 0), (false, 60)]);
    assert_eq!(run.video_track, None);
    // Cluster ID + size + Timecode only: the blocks flow.
    assert!(run.summary().1.iter().all(|s| s.1 == 12 + 3));
}

#[test]
fn refuses_what_it_cannot_cut() {
    let head = [ebml_header(), el_unknown(SEGMENT)].concat();
    let cases: Vec<(&str, Vec<u8>, WebmError)> = vec![
        (
            "http request",
            b"GET / HTTP/1.1\r\n".to_vec(),
            WebmError::NotWebm,
        ),
        ("zeros", vec![0; 16], WebmError::NotWebm),
        (
            "no tracks",
            [head.clone(), el_unknown(CLUSTER)].concat(),
            WebmError::NoTracks,
        ),
        (
            "unknown-size Info",
            [head.clone(), el_unknown(INFO)].concat(),
            WebmError::UnknownSize {
                id: INFO,
                offset: head.len() as u64,
            },
        ),
        (
            "child overruns parent",
            [
                ebml_header(),
                id_bytes(SEGMENT),
                size_vint(3),
                el(INFO, &[0; 5]),
            ]
            .concat(),
            WebmError::Overrun {
                id: INFO,
                offset: ebml_header().len() as u64 + 5,
            },
        ),
        (
            "second Segment",
            [head.clone(), av_tracks(), el_unknown(SEGMENT)].concat(),
            WebmError::Unsupported {
                what: "a second EBML header or Segment",
                offset: (head.len() + av_tracks().len()) as u64,
            },
        ),
        (
            "data after a known-size Segment",
            [ebml_header(), el(SEGMENT, &av_tracks()), el(VOID, &[])].concat(),
            WebmError::Unsupported {
                what: "data after the Segment",
                offset: (ebml_header().len() + el(SEGMENT, &av_tracks()).len()) as u64,
            },
        ),
        (
            "chained stream inside a Cluster",
            [
                head.clone(),
                av_tracks(),
                el_unknown(CLUSTER),
                ebml_header(),
            ]
            .concat(),
            WebmError::Unsupported {
                what: "a second EBML header or Segment",
                offset: (head.len() + av_tracks().len() + 12) as u64,
            },
        ),
        (
            "block too short",
            [
                head.clone(),
                av_tracks(),
                el_unknown(CLUSTER),
                el(SIMPLE_BLOCK, &[0x82, 0]),
            ]
            .concat(),
            WebmError::Malformed {
                what: "block header",
                offset: (head.len() + av_tracks().len() + 12) as u64,
            },
        ),
        (
            "invalid ID",
            [head.clone(), vec![0x08, 0x80]].concat(),
            WebmError::InvalidId {
                offset: head.len() as u64,
            },
        ),
        (
            "invalid size",
            [head.clone(), vec![0xEC, 0x00]].concat(),
            WebmError::InvalidSize {
                offset: head.len() as u64,
            },
        ),
    ];
    for (name, data, expected) in cases {
        let run = feed_all_ways(&data);
        assert_eq!(run.error(), Some(&expected), "{name}");
        assert!(
            matches!(run.pieces.last(), Some(Piece::Error(_))),
            "{name}: the error is the last piece"
        );
    }
}

#[test]
fn after_an_error_every_push_returns_it_again() {
    let mut parser = WebmParser::new();
    assert_eq!(parser.push(b"RIFF"), vec![Piece::Error(WebmError::NotWebm)]);
    assert_eq!(
        parser.push(&ebml_header()),
        vec![Piece::Error(WebmError::NotWebm)]
    );
    assert_eq!(parser.buffered(), 0);
    assert_eq!(parser.finish(), vec![Piece::Error(WebmError::NotWebm)]);
}

#[test]
fn finish_before_the_first_cluster_is_truncated() {
    assert_eq!(WebmParser::new().finish(), vec![]);
    let mut parser = WebmParser::new();
    assert_eq!(parser.push(&ebml_header()), vec![]);
    assert_eq!(parser.finish(), vec![Piece::Error(WebmError::Truncated)]);
}

#[test]
fn buffering_is_bounded() {
    let head = [ebml_header(), el_unknown(SEGMENT), av_tracks()].concat();
    // A huge SeekHead before the first Cluster would have to be held whole.
    let mut parser = WebmParser::with_max_buffer(1000);
    let mut out = parser.push(&head);
    out.extend(parser.push(&[id_bytes(SEEK_HEAD), size_vint(5000)].concat()));
    for _ in 0..10 {
        out.extend(parser.push(&[0; 300]));
        assert!(parser.buffered() <= 1000);
    }
    assert_eq!(
        out.first(),
        Some(&Piece::Error(WebmError::BufferLimit { limit: 1000 }))
    );

    // A Cluster whose video block never comes is held only up to the limit.
    let mut parser = WebmParser::with_max_buffer(1000);
    let mut out = parser.push(&[head.clone(), el_unknown(CLUSTER)].concat());
    for _ in 0..20 {
        out.extend(parser.push(&simple_block(1, 0x80, 90)));
        assert!(parser.buffered() <= 1000);
    }
    assert!(matches!(
        out[..2],
        [
            Piece::Init(_),
            Piece::Error(WebmError::BufferLimit { limit: 1000 })
        ]
    ));
    assert!(
        out[2..].iter().all(|p| matches!(p, Piece::Error(_))),
        "then only the error again"
    );

    // Once a Cluster flows, a block far larger than the limit is fine.
    let mut parser = WebmParser::with_max_buffer(1000);
    let data = [
        head,
        el_unknown(CLUSTER),
        simple_block(2, 0x80, 100_000),
        simple_block(2, 0, 100_000),
    ]
    .concat();
    let out: Vec<Piece> = data.chunks(777).flat_map(|c| parser.push(c)).collect();
    assert!(out.iter().all(|p| !matches!(p, Piece::Error(_))));
    assert_eq!(
        out.iter()
            .flat_map(|p| p.bytes().iter().copied())
            .collect::<Vec<u8>>(),
        data
    );
}

#[test]
fn header_vints_of_every_length() {
    // Sizes written with needlessly long VINTs are valid EBML.
    let long_size = |id: u32, body: &[u8], len: usize| {
        let mut size = (body.len() as u64).to_be_bytes()[8 - len..].to_vec();
        size[0] |= 0x80 >> (len - 1);
        [id_bytes(id), size, body.to_vec()].concat()
    };
    for len in 1..=8 {
        let data = [
            ebml_header(),
            el_unknown(SEGMENT),
            long_size(
                TRACKS,
                &el(
                    TRACK_ENTRY,
                    &[uint_el(TRACK_NUMBER, 1), uint_el(TRACK_TYPE, 1)].concat(),
                ),
                len,
            ),
            el_unknown(CLUSTER),
            long_size(SIMPLE_BLOCK, &[0x81, 0, 0, 0x80, 1, 2, 3], len),
        ]
        .concat();
        let run = feed_all_ways(&data);
        assert_eq!(run.error(), None, "size VINT of {len} bytes");
        assert_eq!(starts(&run), vec![(true, 0)]);
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage in: never panic, never hold more than the limit, never emit bytes that were not
// pushed, and pass everything through when no error is reported.

fn check_robust(data: &[u8], max_buffer: usize, seed: u64) {
    let mut parser = WebmParser::with_max_buffer(max_buffer);
    let mut sizes = random_sizes(seed);
    let (mut pushed, mut emitted, mut failed) = (0usize, Vec::<u8>::new(), false);
    while pushed < data.len() {
        let n = sizes().clamp(1, data.len() - pushed);
        for p in parser.push(&data[pushed..pushed + n]) {
            if failed {
                assert!(matches!(p, Piece::Error(_)), "only errors after an error");
            }
            failed |= matches!(p, Piece::Error(_));
            emitted.extend_from_slice(p.bytes());
        }
        pushed += n;
        assert!(
            parser.buffered() <= max_buffer,
            "held {} > {max_buffer}",
            parser.buffered()
        );
        assert!(
            data[..pushed].starts_with(&emitted),
            "emitted bytes are a prefix of the input"
        );
    }
    for p in parser.finish() {
        failed |= matches!(p, Piece::Error(_));
        emitted.extend_from_slice(p.bytes());
    }
    assert!(data.starts_with(&emitted));
    if !failed {
        assert!(emitted == data, "no error, so every byte must come out");
    }
}

#[test]
fn garbage_truncated_and_mutated_input_never_panics() {
    let fixtures = [vp8_opus().data, vp8().data];
    let mut rng = StdRng::seed_from_u64(0x5eed_ebe1);
    for case in 0..2000u64 {
        let base = fixtures[(case % 2) as usize];
        let data: Vec<u8> = match case % 8 {
            // Random bytes, and random bytes after a valid head.
            0 => (0..rng.random_range(0..3000))
                .map(|_| rng.random())
                .collect(),
            1 => {
                let cut = rng.random_range(0..=200);
                let mut d = base[..cut].to_vec();
                d.extend((0..rng.random_range(0..3000)).map(|_| rng.random::<u8>()));
                d
            }
            // Truncated.
            2 => base[..rng.random_range(0..base.len())].to_vec(),
            // A few bytes flipped, anywhere or in the headers.
            3 | 4 => {
                let mut d = base.to_vec();
                let span = if case % 8 == 3 { d.len() } else { 400 };
                for _ in 0..rng.random_range(1..=8) {
                    let i = rng.random_range(0..span);
                    d[i] ^= 1 << rng.random_range(0..8);
                }
                d
            }
            // A random byte overwritten, then truncated.
            5 => {
                let mut d = base[..rng.random_range(1..base.len())].to_vec();
                let i = rng.random_range(0..d.len());
                d[i] = rng.random();
                d
            }
            // A range cut out or repeated.
            6 => {
                let a = rng.random_range(0..base.len());
                let b = rng.random_range(a..base.len().min(a + 5000));
                if rng.random_bool(0.5) {
                    [&base[..a], &base[b..]].concat()
                } else {
                    [&base[..b], &base[a..]].concat()
                }
            }
            // Huge sizes: every byte 0x01 or 0xFF somewhere in the headers.
            _ => {
                let mut d = base[..rng.random_range(0..base.len())].to_vec();
                for _ in 0..4 {
                    if !d.is_empty() {
                        let i = rng.random_range(0..d.len().min(300));
                        d[i] = if rng.random_bool(0.5) { 0x01 } else { 0xFF };
                    }
                }
                d
            }
        };
        // Mostly the default limit, sometimes one so small that the limit itself is exercised.
        let max_buffer = [
            64,
            1000,
            16 * 1024,
            16 * 1024,
            DEFAULT_MAX_BUFFER,
            DEFAULT_MAX_BUFFER,
            DEFAULT_MAX_BUFFER,
            DEFAULT_MAX_BUFFER,
        ][rng.random_range(0..8)];
        check_robust(&data, max_buffer, case);
    }
}
