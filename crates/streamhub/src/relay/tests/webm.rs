//! WebM through the relay: the real captures re-cut at keyframe Clusters, the drop policy,
//! malformed input, recorder restarts, and the tail a stream flushes when it ends (joining:
//! `webm_join.rs`).

use super::*;

// ---------------------------------------------------------------------------------------------
// Relayed byte-exact, cut at keyframe Clusters
// ---------------------------------------------------------------------------------------------

#[test]
fn webm_fixtures_are_relayed_byte_exact_and_cut_at_keyframe_clusters() {
    for fx in fixtures() {
        let (d, t0) = open(roomy());
        let v = MediaSink::unbounded();
        join(&d, KEY, "v", &v, t0);
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
        let st = stats(&d, KEY, t0 + secs(1));
        assert_eq!(st.media, MediaMode::Webm);
        assert_eq!(st.frames_in, fx.chunks().len() as u64);
        assert_eq!(st.bytes_in, fx.data.len() as u64);
    }
}

// ---------------------------------------------------------------------------------------------
// Drop policy
// ---------------------------------------------------------------------------------------------

#[test]
fn webm_slow_viewer_skips_to_the_next_keyframe_cluster_with_init_and_resync() {
    for fx in fixtures() {
        for text in [false, true] {
            let ctx = format!("{} text {text}", fx.name);
            let (d, t0) = open(roomy());
            let healthy = MediaSink::unbounded();
            let slow = MediaSink::with_capacity(3);
            join(&d, KEY, "healthy", &healthy, t0);
            join(&d, KEY, "slow", &slow, t0);
            let lens = fx.chunks();
            let key2 = fx.keyframes()[1];
            let mut at = 0;
            for (i, n) in lens.iter().enumerate() {
                publish(
                    &d,
                    KEY,
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
            let k = offsets
                .iter()
                .position(|&o| o == key2)
                .expect("a frame starts at the second keyframe Cluster");
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

            let st = stats(&d, KEY, t0 + secs(1));
            assert_eq!(st.resyncs, 1, "{ctx}");
            assert_eq!(
                st.dropped_slow_viewer, 1,
                "{ctx}: only the first miss is offered"
            );
            assert_eq!(st.viewer_count, 2);
        }
    }
}

#[test]
fn a_waiting_webm_viewer_skips_a_restart_init_until_the_keyframe() {
    let fx = vp8();
    let (d, t0) = open(roomy());
    let slow = MediaSink::with_capacity(1);
    join(&d, KEY, "slow", &slow, t0);
    feed(&d, fx.data, &fx.chunks()[..3], false, t0); // frame 1 taken, frame 2 refused: waiting
    assert_eq!(stats(&d, KEY, t0).resyncs, 1);
    slow.drain();
    // Recorder restart; its init arrives in a chunk of its own (no Cluster block yet).
    let head = fx.layout.init_len + 14;
    publish(&d, KEY, binary(&fx.data[..head]), t0 + ms(10));
    slow.drain();
    publish(&d, KEY, binary(&fx.data[head..5000]), t0 + ms(11));
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

// ---------------------------------------------------------------------------------------------
// Malformed WebM, recorder restarts
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_webm_is_refused_until_a_new_header_arrives() {
    let fx = vp8();
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);

    // EBML magic, then a size VINT with no marker bit in its first byte: unparseable.
    let garbage = [0x1A, 0x45, 0xDF, 0xA3, 0x00, 0x13, 0x37, 0xFF, 0x00, 0x42];
    let err = try_publish(&d, KEY, binary(&garbage), t0).expect_err("garbage");
    assert!(matches!(err, PublishError::BadMedia(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::InvalidPayload);
    assert_eq!(stats(&d, KEY, t0).dropped_bad_media, 1);
    // The rest of that stream is refused too, chunk by chunk.
    let err =
        try_publish(&d, KEY, binary(&fx.data[500..900]), t0 + ms(1)).expect_err("after garbage");
    assert_eq!(err.code(), ErrorCode::InvalidPayload);
    // Base64 text that is not base64.
    let err = try_publish(
        &d,
        KEY,
        FrameData::Text("GkXf*not base64*".into()),
        t0 + ms(2),
    );
    assert!(matches!(err, Err(PublishError::BadMedia(_))), "{err:?}");
    let st = stats(&d, KEY, t0 + ms(2));
    assert_eq!(st.dropped_bad_media, 3);
    assert_eq!(st.frames_in, 0);
    assert!(v.received().is_empty());
    assert!(
        d.stream_info(KEY).expect("registered").started_at.is_none(),
        "refused frames start nothing"
    );

    // A recorder restart: a new, valid header resets the parser.
    feed(&d, fx.data, &fx.chunks(), false, t0 + ms(10));
    assert_eq!(v.bytes(), fx.data);
    assert_eq!(v.seqs(), (1..=v.len() as u64).collect::<Vec<_>>());
    let st = stats(&d, KEY, t0 + secs(1));
    assert_eq!(st.dropped_bad_media, 3);
    assert_eq!(st.media, MediaMode::Webm);
    assert_eq!(st.frames_in, fx.chunks().len() as u64);
}

#[test]
fn a_recorder_restart_sent_as_recorded_keeps_the_stream_alive() {
    let fx = vp8_opus();
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    feed(&d, fx.data, &fx.chunks(), false, t0); // first session: merged head, fine
    // The recorder restarts and sends its chunks as Chrome may deliver them (first one: the
    // byte 0x1A).
    let (mut at, mut refused) = (0, 0);
    let restart = fx.one_byte_head();
    for (i, n) in restart.iter().enumerate() {
        refused += usize::from(
            try_publish(
                &d,
                KEY,
                binary(&fx.data[at..at + n]),
                t0 + ms(100 + i as u64),
            )
            .is_err(),
        );
        at += n;
    }
    assert_eq!(
        refused,
        0,
        "of {} chunks; dropped_bad_media {}",
        restart.len(),
        stats(&d, KEY, t0).dropped_bad_media
    );
}

// ---------------------------------------------------------------------------------------------
// Ending
// ---------------------------------------------------------------------------------------------

#[test]
fn ending_relays_the_webm_tail_the_parser_held() {
    let fx = vp8_opus();
    assert_ne!(
        fx.relayed(),
        fx.data,
        "the recording ends with an audio-only Cluster"
    );
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    feed(&d, fx.data, &fx.chunks(), false, t0);
    assert_eq!(v.bytes(), fx.relayed(), "held until the next Cluster");
    let before = stats(&d, KEY, t0).frames_out;

    // Only the owner may end the stream, and a refused end relays nothing.
    let err = d
        .end_stream(KEY, "v", t0 + ms(100), 0)
        .expect_err("a viewer");
    assert_eq!(err, OwnerError::NotOwner(KEY.into()));
    assert_eq!(v.bytes(), fx.relayed());

    let Ending { tail, ended } = end(&d, KEY, t0 + ms(100));
    assert_eq!(tail.reached, 1);
    assert_eq!(tail.media, MediaMode::Webm);
    assert_eq!(v.bytes(), fx.data, "every byte once the streamer stopped");
    assert_eq!(ended.stats.frames_out, before + 1);
    // Nothing more: the stream is gone.
    assert_eq!(
        d.end_stream(KEY, OWNER, t0 + ms(200), 0).err(),
        Some(OwnerError::NotFound(not_found(KEY)))
    );
}

#[test]
fn end_stream_relays_the_tail_evicts_a_stalled_viewer_and_reports_the_lifetime_counters() {
    let fx = vp8_opus();
    // The tail is a Cluster without a keyframe: a viewer that refused anything since its last
    // keyframe is waiting for the next one and is not offered it, so only a viewer that was
    // still taking frames can be refused the tail. Its queue filled with the last frame, 30 s
    // before the end; with a zero stall timeout, being found full is being stalled too long.
    let (d, t0) = open(RelayLimits {
        stall_timeout: Duration::ZERO,
        ..roomy()
    });
    let healthy = MediaSink::unbounded();
    join(&d, KEY, "healthy", &healthy, t0);
    let frames = {
        // The frames the recording is cut into, as a dry run shows.
        let (dry, t) = open(roomy());
        let probe = MediaSink::unbounded();
        join(&dry, KEY, "probe", &probe, t);
        feed(&dry, fx.data, &fx.chunks(), false, t);
        probe.len()
    };
    let stalled = MediaSink::with_capacity(frames);
    join(&d, KEY, "stalled", &stalled, t0);
    feed(&d, fx.data, &fx.chunks(), false, t0);
    assert_eq!(stalled.bytes(), fx.relayed(), "it took every frame");
    assert_eq!(stalled.refused(), 0);

    let Ending { tail, ended } = end(&d, KEY, t0 + secs(30));
    // The tail reached the healthy viewer; the stalled one is evicted, for the caller to tell.
    let tail_bytes = (fx.data.len() - fx.relayed().len()) as u64;
    assert_eq!(healthy.bytes(), fx.data);
    assert_eq!(stalled.bytes(), fx.relayed());
    assert_eq!(stalled.refused(), 1);
    assert_eq!(tail.evicted, ["stalled".to_owned()]);
    assert_eq!((tail.reached, tail.frames_out), (1, 1));
    assert_eq!(tail.bytes_out, tail_bytes);
    assert_eq!(tail.dropped_slow, 1);
    assert_eq!(tail.seq, frames as u64 + 1, "the tail is the last frame");

    // The lifetime counters, the tail included.
    let st = &ended.stats;
    assert_eq!(st.frames_in, fx.chunks().len() as u64);
    assert_eq!(st.bytes_in, fx.data.len() as u64);
    assert_eq!(st.frames_out, 2 * frames as u64 + 1);
    assert_eq!(
        st.bytes_out,
        (fx.data.len() + fx.relayed().len()) as u64,
        "the healthy viewer got the file, the stalled one all but the tail"
    );
    assert_eq!((st.dropped_slow_viewer, st.evicted), (1, 1));
    assert_eq!(st.media, MediaMode::Webm);
    assert_eq!(ended.info.status, StreamStatus::Ended);
}
