//! Publishing: sequence numbers, fan-out, frame size, publish rate, the catch-up ring, stats.

use super::*;

// ---------------------------------------------------------------------------------------------
// Sequence numbers and fan-out
// ---------------------------------------------------------------------------------------------

#[test]
fn seq_starts_at_one_and_grows_by_one() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let seqs: Vec<u64> = (0..10)
        .map(|i| publish(&d, "a", frame_n(i), t0).seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
}

#[test]
fn seq_is_per_stream() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    assert_eq!(publish(&d, "a", text("1"), t0).seq, 1);
    assert_eq!(publish(&d, "a", text("2"), t0).seq, 2);
    assert_eq!(publish(&d, "b", text("1"), t0).seq, 1);
}

#[test]
fn every_viewer_gets_every_frame_exactly_once() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let sinks: Vec<Sink> = (0..3).map(|_| Sink::unbounded()).collect();
    for (i, s) in sinks.iter().enumerate() {
        join(&d, "a", &format!("viewer-{i}"), s, t0);
    }

    for i in 0..5 {
        let delivery = publish(&d, "a", frame_n(i), t0);
        assert_eq!(delivery.reached, 3);
        assert_eq!(delivery.frames_out, 3);
        assert_eq!(delivery.bytes_out, 3 * frame_n(i).len() as u64);
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
    assert_eq!(st.bytes_out, 3 * st.bytes_in);
}

#[test]
fn reached_counts_viewers_and_is_zero_without_any() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    assert_eq!(publish(&d, "a", text("x"), t0).reached, 0);
    let s1 = Sink::unbounded();
    join(&d, "a", "v1", &s1, t0);
    assert_eq!(publish(&d, "a", text("x"), t0).reached, 1);
    let s2 = Sink::unbounded();
    join(&d, "a", "v2", &s2, t0);
    assert_eq!(publish(&d, "a", text("x"), t0).reached, 2);
    // A frame published before a viewer joined is not pushed to it live.
    assert_eq!(s1.seqs(), [2, 3]);
    assert_eq!(s2.seqs(), [3]);
}

#[test]
fn frames_only_reach_viewers_of_their_stream() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    let sa = Sink::unbounded();
    let sb = Sink::unbounded();
    join(&d, "a", "va", &sa, t0);
    join(&d, "b", "vb", &sb, t0);
    publish(&d, "a", text("for a"), t0);
    assert_eq!(sa.received().len(), 1);
    assert!(sb.received().is_empty());
}

#[test]
fn text_and_binary_data_arrive_unchanged_with_wall_timestamp() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);

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
            .publish("a", OWNER, p.clone().into_publish(), t0, w)
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
    let ring = join(&d, "a", "late", &Sink::unbounded(), t0);
    let ring_data: Vec<&FrameData> = ring.catch_up.iter().map(|f| &f.data).collect();
    assert_eq!(ring_data, payloads.iter().collect::<Vec<_>>());
    let ring_ts: Vec<Millis> = ring.catch_up.iter().map(|f| f.timestamp).collect();
    assert_eq!(ring_ts, walls);

    let st = stats(&d, "a", t0);
    let bytes: usize = payloads.iter().map(FrameData::len).sum();
    assert_eq!(st.bytes_in, bytes as u64);
}

#[test]
fn only_the_owner_may_publish() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = Sink::unbounded();
    join(&d, "a", "viewer", &s, t0);

    for conn in ["viewer", "stranger", ""] {
        let err = d
            .publish("a", conn, text("x").into_publish(), t0, 0)
            .expect_err("non-owner publish");
        assert_eq!(err, PublishError::NotOwner("a".into()));
        assert_eq!(err.code(), ErrorCode::NotOwner);
    }
    assert!(s.received().is_empty());
    let st = stats(&d, "a", t0);
    assert_eq!(st.frames_in, 0);
    assert_eq!(status(&d, "a"), StreamStatus::Created);
}

#[test]
fn publishing_to_unknown_key_is_not_found() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let err = try_publish(&d, "nope", text("x"), t0).expect_err("unknown stream");
    assert_eq!(err, PublishError::NotFound(not_found("nope")));
    assert_eq!(err.code(), ErrorCode::StreamNotFound);
}

#[test]
fn rejected_frames_do_not_use_up_seq() {
    let t0 = origin();
    let d = relay(RelayLimits {
        max_frame_bytes: 4,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    assert_eq!(publish(&d, "a", text("1"), t0).seq, 1);
    try_publish(&d, "a", text("too big"), t0).expect_err("too large");
    d.publish("a", "other", text("2").into_publish(), t0, 0)
        .expect_err("not owner");
    assert_eq!(publish(&d, "a", text("2"), t0).seq, 2);
}

// ---------------------------------------------------------------------------------------------
// Catch-up ring
// ---------------------------------------------------------------------------------------------

#[test]
fn ring_holds_the_last_30_frames_oldest_first() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    for i in 1..=40 {
        publish(&d, "a", frame_n(i), t0);
    }
    let joined = join(&d, "a", "late", &Sink::unbounded(), t0);
    assert!(joined.new);
    assert_eq!(joined.catch_up.len(), 30);
    let seqs: Vec<u64> = joined.catch_up.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (11..=40).collect::<Vec<u64>>());
    let data: Vec<FrameData> = joined.catch_up.iter().map(|f| f.data.clone()).collect();
    assert_eq!(data, (11..=40).map(frame_n).collect::<Vec<_>>());

    let st = stats(&d, "a", t0);
    assert_eq!(st.buffer_size, 30);
    assert_eq!(st.viewer_count, 1);
}

#[test]
fn ring_with_few_frames_holds_them_all() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let empty = join(&d, "a", "early", &Sink::unbounded(), t0);
    assert!(empty.catch_up.is_empty());
    for i in 1..=3 {
        publish(&d, "a", frame_n(i), t0);
    }
    let joined = join(&d, "a", "late", &Sink::unbounded(), t0);
    assert_eq!(
        joined.catch_up.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(stats(&d, "a", t0).buffer_size, 3);
}

#[test]
fn ring_of_zero_keeps_nothing() {
    let t0 = origin();
    let d = relay(RelayLimits {
        buffer_frames: 0,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let live = Sink::unbounded();
    join(&d, "a", "v", &live, t0);
    for i in 1..=5 {
        publish(&d, "a", frame_n(i), t0);
    }
    assert_eq!(live.seqs(), [1, 2, 3, 4, 5], "live delivery still works");
    let joined = join(&d, "a", "late", &Sink::unbounded(), t0);
    assert!(joined.catch_up.is_empty());
    let st = stats(&d, "a", t0);
    assert_eq!(st.buffer_size, 0);
    assert_eq!(st.viewer_count, 2);
}

// ---------------------------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------------------------

#[test]
fn stats_track_viewer_count_and_buffer_size() {
    let t0 = origin();
    let d = relay(RelayLimits {
        buffer_frames: 3,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let st = stats(&d, "a", t0);
    assert_eq!((st.viewer_count, st.buffer_size), (0, 0));

    join(&d, "a", "v1", &Sink::unbounded(), t0);
    join(&d, "a", "v2", &Sink::unbounded(), t0);
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
fn the_catch_up_buffer_is_bounded_in_bytes_and_keeps_the_newest_frame() {
    let t0 = origin();
    let d = relay(RelayLimits {
        buffer_frames: 30,
        buffer_bytes: 2500,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    for i in 0..10u8 {
        publish(&d, "a", FrameData::Binary(Bytes::from(vec![i; 1000])), t0);
    }
    // Two 1000-byte frames fit in 2500 bytes, the newest ones.
    let v = Sink::unbounded();
    let joined = join(&d, "a", "v", &v, t0);
    assert_eq!(
        joined.catch_up.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [9, 10]
    );
    assert_eq!(stats(&d, "a", t0).buffer_size, 2);
    // A frame larger than the cap is still kept, alone.
    publish(&d, "a", FrameData::Binary(Bytes::from(vec![0; 5000])), t0);
    assert_eq!(stats(&d, "a", t0).buffer_size, 1);
    publish(&d, "a", FrameData::Binary(Bytes::from(vec![0; 1000])), t0);
    assert_eq!(
        stats(&d, "a", t0).buffer_size,
        1,
        "5000 + 1000 bytes do not fit"
    );
    publish(&d, "a", FrameData::Binary(Bytes::from(vec![0; 1000])), t0);
    assert_eq!(stats(&d, "a", t0).buffer_size, 2);
}

#[test]
fn stats_serialize_camel_case() {
    let t0 = origin();
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
        "bytesOut",
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
    let t0 = origin();
    let d = relay(RelayLimits {
        max_frame_bytes: 8,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);

    let big = FrameData::Binary(Bytes::from(vec![0u8; 9]));
    let err = try_publish(&d, "a", big, t0).expect_err("over the limit");
    assert_eq!(err, PublishError::TooLarge { size: 9, max: 8 });
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    // Text is measured in UTF-8 bytes: 3 x 3-byte characters = 9 bytes.
    let err = try_publish(&d, "a", text("€€€"), t0).expect_err("over the limit in bytes");
    assert_eq!(err, PublishError::TooLarge { size: 9, max: 8 });

    let st = stats(&d, "a", t0);
    assert_eq!(st.dropped_too_large, 2);
    assert_eq!(st.frames_in, 0);
    assert_eq!(st.buffer_size, 0);
    assert!(s.received().is_empty());
    assert_eq!(
        status(&d, "a"),
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
    let t0 = origin();
    let d = relay(RelayLimits {
        max_fps: 5,
        ..RelayLimits::default()
    });
    register(&d, "a", OWNER, t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);

    for i in 1..=5 {
        assert_eq!(publish(&d, "a", frame_n(i), t0).seq, i as u64);
    }
    let err = try_publish(&d, "a", text("6th"), t0).expect_err("sixth frame in the same instant");
    assert_eq!(
        err,
        PublishError::RateLimited {
            key: "a".into(),
            max_fps: 5
        }
    );
    assert_eq!(err.code(), ErrorCode::RateLimited);
    let st = stats(&d, "a", t0);
    assert_eq!(st.dropped_rate_limited, 1);
    assert_eq!(st.frames_in, 5);
    assert_eq!(s.seqs(), [1, 2, 3, 4, 5]);

    // Still empty a little later.
    assert!(try_publish(&d, "a", text("x"), t0 + ms(100)).is_err());
    assert_eq!(stats(&d, "a", t0).dropped_rate_limited, 2);

    // A second later the bucket is full again: five more pass, the sixth does not.
    let t1 = t0 + secs(1) + ms(100);
    for i in 6..=10 {
        assert_eq!(publish(&d, "a", frame_n(i), t1).seq, i as u64);
    }
    assert!(matches!(
        try_publish(&d, "a", text("y"), t1),
        Err(PublishError::RateLimited { .. })
    ));
    assert_eq!(stats(&d, "a", t1).dropped_rate_limited, 3);
    assert_eq!(s.seqs(), (1..=10).collect::<Vec<u64>>());
}

#[test]
fn publish_rate_allows_a_steady_max_fps() {
    let t0 = origin();
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

#[test]
fn what_a_stream_holds_is_freed_when_it_ends() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    for i in 0..10u8 {
        publish(&d, "a", FrameData::Binary(Bytes::from(vec![i; 1000])), t0);
    }
    // A late joiner's catch-up is the ring itself: every frame the stream holds.
    let v = Sink::unbounded();
    let joined = join(&d, "a", "v", &v, t0);
    let held: Vec<std::sync::Weak<Frame>> = joined.catch_up.iter().map(Arc::downgrade).collect();
    assert_eq!(held.len(), 10);
    drop((joined, v));
    assert!(
        held.iter().all(|w| w.upgrade().is_some()),
        "held while live"
    );
    end(&d, "a", t0);
    assert!(
        held.iter().all(|w| w.upgrade().is_none()),
        "a frame outlived its ended stream"
    );
}
