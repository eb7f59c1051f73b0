//! WebCodecs streams: the GOP and decoder config for joiners, keyframe requests, resyncs.

use super::*;

#[test]
fn webcodecs_joiner_gets_the_gop_since_the_latest_key_with_the_latest_config() {
    let (d, t0) = open(roomy());
    let early = MediaSink::unbounded();
    join(&d, KEY, "early", &early, t0);
    let mut t = t0;
    let mut next = |i: Publish| {
        t += ms(33);
        publish(&d, KEY, i, t)
    };
    next(wc(ChunkKind::Key, 1, Some(config("vp8")))); // 1
    next(delta(2));
    next(delta(3));
    next(key(4)); // 4: no config of its own, the latest still applies
    next(delta(5));

    let a = MediaSink::unbounded();
    let ja = join(&d, KEY, "a", &a, t0);
    assert_eq!(ja.media, MediaMode::Webcodecs);
    assert!(!ja.keyframe_wanted);
    assert_eq!(
        ja.catch_up.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [4, 5],
        "frames since the latest key, in order"
    );
    assert_eq!(ja.catch_up[0].kind, FrameKind::Key);
    assert_eq!(ja.catch_up[0].config.as_deref(), Some(&config("vp8")));
    assert_eq!(ja.catch_up[1].kind, FrameKind::Delta);

    next(wc(ChunkKind::Key, 6, Some(config("vp09.00.10.08")))); // 6
    next(delta(7));
    next(delta(8));
    assert_eq!(stats(&d, KEY, t0 + secs(1)).gop_frames, 3);

    let b = MediaSink::unbounded();
    let jb = join(&d, KEY, "b", &b, t0);
    let seqs: Vec<u64> = jb.catch_up.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [6, 7, 8]);
    assert_eq!(jb.catch_up[0].kind, FrameKind::Key);
    assert_eq!(
        jb.catch_up[0].config.as_deref(),
        Some(&config("vp09.00.10.08"))
    );
    assert_eq!(raw(&jb.catch_up[0].data), b"K6");
    assert!(jb.catch_up[1..].iter().all(|f| f.kind == FrameKind::Delta));
    assert!(jb.catch_up[1..].iter().all(|f| f.config.is_none()));
    assert_eq!(
        jb.catch_up
            .iter()
            .map(|f| f.chunk.as_ref().map(|c| c.timestamp))
            .collect::<Vec<_>>(),
        [Some(6.0), Some(7.0), Some(8.0)]
    );
    assert_eq!(
        jb.catch_up
            .iter()
            .map(|f| f.capture_time)
            .collect::<Vec<_>>(),
        [Some(0.006), Some(0.007), Some(0.008)],
        "each frame keeps the capture time it was sent with"
    );
    // The catch-up frames are the very frames live viewers got.
    let live = early.frames();
    for f in &jb.catch_up {
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
    let (d, t0) = open(roomy());
    // Deltas only (the encoder's key went out before anyone listened).
    publish(&d, KEY, delta(1), t0);
    publish(&d, KEY, delta(2), t0 + ms(33));
    assert_eq!(stats(&d, KEY, t0).gop_frames, 0);

    let v1 = MediaSink::unbounded();
    let j1 = join(&d, KEY, "v1", &v1, t0 + ms(40));
    assert_eq!(j1.media, MediaMode::Webcodecs);
    assert!(j1.catch_up.is_empty());
    assert!(j1.keyframe_wanted, "nothing to start from: ask for a key");

    let v2 = MediaSink::unbounded();
    assert!(
        !join(&d, KEY, "v2", &v2, t0 + ms(50)).keyframe_wanted,
        "within 1 s: throttled"
    );
    let again = join(&d, KEY, "v1", &v1, t0 + ms(50));
    assert!(!again.new && !again.keyframe_wanted);

    // Not synced: deltas do not reach them.
    let del = publish(&d, KEY, delta(3), t0 + ms(66));
    assert_eq!(del.reached, 0);
    assert!(v1.received().is_empty() && v2.received().is_empty());

    let v3 = MediaSink::unbounded();
    assert!(
        join(&d, KEY, "v3", &v3, t0 + ms(1090)).keyframe_wanted,
        "a second later: ask again"
    );
    assert!(!join(&d, KEY, "v4", &MediaSink::unbounded(), t0 + ms(1090)).keyframe_wanted);

    publish(&d, KEY, key(4), t0 + ms(1100));
    publish(&d, KEY, delta(5), t0 + ms(1133));
    for v in [&v1, &v2, &v3] {
        assert_eq!(v.seqs(), [4, 5]);
        let got = v.received();
        assert_eq!(got[0].frame.kind, FrameKind::Key);
        assert!(got.iter().all(|r| !r.resync), "joiners are not resyncing");
    }
}

#[test]
fn add_viewer_takes_its_time_from_its_arguments() {
    // Made-up times, 100 s and more past the real clock: a relay that read the clock would
    // see these joins microseconds apart and refuse `v4` its request.
    let (d, t0) = open(roomy());
    publish(&d, KEY, delta(1), t0);
    let at = t0 + secs(100);
    let wants_key = |conn: &str, now: Instant| {
        let joined = join(&d, KEY, conn, &MediaSink::unbounded(), now);
        assert!(joined.catch_up.is_empty(), "no GOP to start from");
        joined.keyframe_wanted
    };
    assert!(wants_key("v1", at), "due at the given time");
    assert!(!wants_key("v2", at), "not again at the same time");
    assert!(!wants_key("v3", at + ms(999)), "nor within 1 s of it");
    assert!(wants_key("v4", at + secs(1)), "due again 1 s after it");
    assert!(!wants_key("v5", at + secs(1) + ms(500)));
    // The requests joins make and those publishes make share the throttle: `slow` takes a
    // key, refuses the next delta, and needs another key.
    let slow = MediaSink::with_capacity(1);
    join(&d, KEY, "slow", &slow, at + secs(1) + ms(500));
    publish(&d, KEY, key(2), at + secs(1) + ms(600));
    let refused = publish(&d, KEY, delta(3), at + secs(1) + ms(700));
    assert_eq!(slow.refused(), 1);
    assert!(!refused.keyframe_wanted, "0.7 s after the last request");
    slow.drain();
    publish(&d, KEY, key(4), at + secs(1) + ms(800));
    let refused = publish(&d, KEY, delta(5), at + secs(2));
    assert_eq!(slow.refused(), 2);
    assert!(refused.keyframe_wanted, "1 s after the last request");
}

#[test]
fn a_webcodecs_joiner_whose_catch_up_did_not_all_go_out_waits_for_the_next_key() {
    let (d, t0) = open(roomy());
    publish(&d, KEY, key(0), t0);
    publish(&d, KEY, delta(1), t0 + ms(1));
    publish(&d, KEY, delta(2), t0 + ms(2));
    let v = MediaSink::unbounded();
    // The welcome reports that part of the GOP did not fit the viewer's queue.
    let joined = d
        .add_viewer(KEY, "v", v.clone(), t0 + ms(3), 0, |j| {
            assert_eq!(j.catch_up.len(), 3);
            false
        })
        .expect("join");
    assert!(joined.new);
    assert!(
        joined.keyframe_wanted,
        "it has nothing to decode from: the streamer is asked for a key"
    );
    // A delta now would decode against a hole: not delivered. The next key is.
    publish(&d, KEY, delta(3), t0 + ms(3));
    assert!(v.seqs().is_empty(), "got {:?}", v.seqs());
    publish(&d, KEY, key(4), t0 + ms(4));
    assert_eq!(v.seqs(), [5]);
}

#[test]
fn webcodecs_overflow_resyncs_at_the_next_key_and_requests_one_at_most_each_second() {
    let (d, t0) = open(roomy());
    let healthy = MediaSink::unbounded();
    let slow = MediaSink::with_capacity(1);
    join(&d, KEY, "healthy", &healthy, t0);
    join(&d, KEY, "slow", &slow, t0);
    let t = t0 + secs(1);

    assert!(!publish(&d, KEY, key(1), t).keyframe_wanted); // slow: queued (now full)
    let drop1 = publish(&d, KEY, delta(2), t + ms(10)); // slow: refused
    assert!(drop1.keyframe_wanted, "a viewer lost data: ask for a key");
    assert_eq!(stats(&d, KEY, t).resyncs, 1);
    slow.drain();
    let skipped = publish(&d, KEY, delta(3), t + ms(20));
    assert!(!skipped.keyframe_wanted);
    assert_eq!(skipped.reached, 1, "the slow viewer waits for a key");
    publish(&d, KEY, key(4), t + ms(30)); // slow: resync, full again
    let drop2 = publish(&d, KEY, delta(5), t + ms(500)); // refused again
    assert!(
        !drop2.keyframe_wanted,
        "within a second of the last request"
    );
    slow.drain();
    publish(&d, KEY, delta(6), t + ms(600));
    publish(&d, KEY, key(7), t + ms(700)); // slow: resync, full again
    let drop3 = publish(&d, KEY, delta(8), t + ms(1010)); // refused, a second after the first request
    assert!(drop3.keyframe_wanted);
    slow.drain();
    publish(&d, KEY, key(9), t + ms(1100));

    let got = slow.received();
    assert_eq!(slow.seqs(), [1, 4, 7, 9]);
    assert_eq!(
        got.iter().map(|r| r.resync).collect::<Vec<_>>(),
        [false, true, true, true]
    );
    assert!(got.iter().all(|r| r.frame.kind == FrameKind::Key));
    assert_eq!(healthy.seqs(), (1..=9).collect::<Vec<_>>());
    assert!(healthy.received().iter().all(|r| !r.resync));
    let st = stats(&d, KEY, t + secs(1));
    assert_eq!(st.resyncs, 3);
    assert_eq!(st.dropped_slow_viewer, 3);
}

#[test]
fn a_joiner_whose_catch_up_did_not_fit_starts_at_the_next_key_with_resync() {
    let (d, t0) = open(roomy());
    publish(&d, KEY, wc(ChunkKind::Key, 1, Some(config("vp8"))), t0);
    publish(&d, KEY, delta(2), t0 + ms(33));

    // The welcome could not send the GOP (the viewer's byte budget): it answers `false`.
    let v = MediaSink::unbounded();
    let admitted = d
        .add_viewer(KEY, "v", v.clone(), t0 + ms(40), 0, |_| false)
        .expect("add_viewer");
    assert_eq!(admitted.catch_up.len(), 2, "the GOP was offered");
    assert!(
        admitted.keyframe_wanted,
        "the streamer is asked for a key at once"
    );

    // Deltas after a GOP it never got cannot decode: none reach it.
    publish(&d, KEY, delta(3), t0 + ms(66));
    assert!(v.received().is_empty());
    // The next key does, as a restart.
    publish(&d, KEY, key(4), t0 + ms(99));
    publish(&d, KEY, delta(5), t0 + ms(132));
    assert_eq!(v.seqs(), [4, 5]);
    assert!(v.received()[0].resync, "the key restarts its decoder");
    assert!(!v.received()[1].resync);

    // A joiner whose catch-up went out whole is synced: the next delta reaches it.
    let w = MediaSink::unbounded();
    join(&d, KEY, "w", &w, t0 + ms(140));
    publish(&d, KEY, delta(6), t0 + ms(165));
    assert_eq!(w.seqs(), [6]);
}
