//! Joining a WebM stream: the init segment plus the GOP so far, for any chunking, before the
//! first Cluster, and only once.

use std::collections::BTreeMap;

use super::*;

// ---------------------------------------------------------------------------------------------
// Late join
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
    joined: Admitted,
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
    let (d, t0) = open(roomy());
    let early = MediaSink::unbounded();
    join(&d, KEY, "early", &early, t0);
    let mut at = 0;
    let mut late = Vec::new();
    for (i, n) in lens.iter().enumerate() {
        // Wall clock 1000 + i, so the bundle's timestamp can be checked.
        let wall = 1_000 + i as Millis;
        let now = t0 + ms(i as u64);
        let chunk = media_chunk(&fx.data[at..at + n], text);
        d.publish(KEY, OWNER, chunk, now, wall)
            .expect("owner publish");
        at += n;
        let relayed = early.bytes().len();
        if join_after(relayed) {
            let sink = MediaSink::unbounded();
            let joined = join(&d, KEY, &format!("late-{}", i + 1), &sink, now);
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
        None => assert!(l.joined.catch_up.is_empty(), "{ctx}"),
        Some((bytes, kind)) => {
            assert_eq!(l.joined.catch_up.len(), 1, "{ctx}: one stream:data");
            let b = &l.joined.catch_up[0];
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
            let b = &l.joined.catch_up[0];
            // The GOP in the bundle is one frame right after a keyframe Cluster, more mid-GOP.
            let key = fx.key_before(l.relayed).expect("after the first GOP");
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
            let key = fx.key_before(l.relayed).expect("after the first GOP");
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
                let bundle = l.joined.catch_up.first().map(|f| raw(&f.data));
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
                        let got = l.joined.catch_up.first().map(|f| raw(&f.data));
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

#[test]
fn a_joiner_during_the_first_gop_gets_the_init_once() {
    let fx = vp8();
    let (d, t0) = open(roomy());
    let early = MediaSink::unbounded();
    join(&d, KEY, "early", &early, t0);
    assert!(
        ends(&fx.recorded)[2] < fx.keyframes()[1],
        "3 chunks: inside the first GOP"
    );
    feed(&d, fx.data, &fx.recorded[..3], false, t0);
    let relayed = early.bytes().len();
    let j = join(&d, KEY, "v", &MediaSink::unbounded(), t0);
    let b = raw(&j.catch_up[0].data);
    assert_eq!(
        (relayed, b.len()),
        (relayed, relayed),
        "init + file[126..relayed] is file[..relayed]"
    );
    assert!(b == fx.data[..relayed]);
}

#[test]
fn joining_again_does_not_resend_the_catch_up() {
    let fx = vp8();
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    feed(&d, fx.data, &fx.recorded[..10], false, t0);
    let again = join(&d, KEY, "v", &v, t0);
    assert!(!again.new);
    assert!(
        again.catch_up.is_empty(),
        "an existing viewer must not get init+GOP again mid-stream"
    );
}

// ---------------------------------------------------------------------------------------------
// Joining before the first Cluster
// ---------------------------------------------------------------------------------------------

#[test]
fn webm_joiner_before_any_cluster_gets_the_init_or_nothing_and_then_everything() {
    for fx in fixtures() {
        // `head` bytes: nothing relayed yet (EBML header incomplete / no Cluster header), or
        // the init out (the first Cluster's header is complete, its first video block not).
        for head in [100, fx.layout.init_len + 14] {
            let ctx = format!("{} head {head}", fx.name);
            let (d, t0) = open(roomy());
            let early = MediaSink::unbounded();
            join(&d, KEY, "early", &early, t0);
            publish(&d, KEY, binary(&fx.data[..head]), t0);
            let v = MediaSink::unbounded();
            let joined = join(&d, KEY, "v", &v, t0);
            assert_eq!(joined.media, MediaMode::Webm, "{ctx}");
            assert!(!joined.keyframe_wanted, "{ctx}");
            if head < fx.layout.init_len {
                assert!(early.received().is_empty(), "{ctx}: nothing cut yet");
                assert!(joined.catch_up.is_empty(), "{ctx}: no init yet");
            } else {
                assert_eq!(early.bytes(), fx.init(), "{ctx}");
                assert_eq!(joined.catch_up.len(), 1, "{ctx}");
                let b = &joined.catch_up[0];
                assert!(b.init, "{ctx}");
                assert_eq!(b.kind, FrameKind::Delta, "{ctx}: init only, no GOP");
                assert_eq!(raw(&b.data), fx.init(), "{ctx}");
            }
            // The rest, in the recorded chunks' boundaries past `head`.
            let mut at = head;
            for (i, end) in ends(&fx.chunks()).into_iter().enumerate() {
                if end > at {
                    publish(&d, KEY, binary(&fx.data[at..end]), t0 + ms(i as u64 + 1));
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
            let all = cat(&concat(joined.catch_up.iter().map(|f| &**f)), &v.bytes());
            assert!(all == fx.relayed(), "{ctx}: catch-up + live = the file");
            assert!(v.received().iter().all(|r| !r.resync), "{ctx}");
        }
    }
}

#[test]
fn a_webm_catch_up_bundle_carries_the_newest_capture_time() {
    // The viewer's camera-to-screen figure for a late joiner starts from the bundle's capture
    // time: the newest chunk's, not the GOP's first.
    for fx in fixtures() {
        let lens = fx.chunks();
        let (d, t0) = open(roomy());
        let mut at = 0;
        let mut newest = None;
        for (i, n) in lens.iter().enumerate() {
            let mut chunk = media_chunk(&fx.data[at..at + n], false);
            let captured = 5_000.0 + i as f64 * 33.0;
            chunk.capture_time = Some(captured);
            newest = Some(captured);
            d.publish(KEY, OWNER, chunk, t0 + ms(i as u64), 1_000 + i as Millis)
                .expect("owner publish");
            at += n;
        }
        let sink = MediaSink::unbounded();
        let joined = join(&d, KEY, "late", &sink, t0 + ms(lens.len() as u64));
        let bundle = joined.catch_up.first().expect("a catch-up bundle");
        assert!(
            bundle.init,
            "{}: the bundle starts with the init segment",
            fx.name
        );
        assert_eq!(bundle.capture_time, newest, "{}", fx.name);
    }
}
