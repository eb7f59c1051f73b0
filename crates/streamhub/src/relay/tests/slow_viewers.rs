//! Slow viewers: drops, stalls, eviction, closed sinks (delivery levels: `levels.rs`).

use super::*;

#[test]
fn slow_viewer_drops_frames_without_hurting_a_healthy_one() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let healthy = Sink::unbounded();
    let slow = Sink::with_capacity(2);
    join(&d, "a", "healthy", &healthy, t0);
    join(&d, "a", "slow", &slow, t0);

    let mut reached = Vec::new();
    for i in 1..=10 {
        reached.push(publish(&d, "a", frame_n(i), t0 + ms(10 * i as u64)).reached);
    }
    assert_eq!(reached, [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(healthy.seqs(), (1..=10).collect::<Vec<u64>>());
    assert_eq!(slow.seqs(), [1, 2]);

    let st = stats(&d, "a", t0 + secs(1));
    // Offered and refused: 3..=8 (6 of 8 offered: level 1, every 2nd frame), 10. Frames
    // skipped by the level are not offered, so not dropped.
    assert_eq!(st.dropped_slow_viewer, 7);
    assert_eq!(slow.refused(), 7);
    assert_eq!(st.levels, [1, 1, 0]);
    assert_eq!(st.frames_out, 12);
    assert_eq!(st.viewer_count, 2, "still within the stall timeout");
    assert_eq!(st.evicted, 0);
}

#[test]
fn slow_viewer_resumes_at_the_newest_frame_after_draining() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let healthy = Sink::unbounded();
    let slow = Sink::with_capacity(2);
    join(&d, "a", "healthy", &healthy, t0);
    join(&d, "a", "slow", &slow, t0);

    for i in 1..=10 {
        publish(&d, "a", frame_n(i), t0 + ms(10 * i as u64));
    }
    slow.drain();
    // The slow viewer is at level 1 now (every 2nd frame): 11 is skipped, 12 is offered.
    assert_eq!(publish(&d, "a", frame_n(11), t0 + ms(200)).reached, 1);
    let delivery = publish(&d, "a", frame_n(12), t0 + ms(210));
    assert_eq!(delivery.seq, 12);
    assert_eq!(delivery.reached, 2);

    // 3..=10 are gone for good: no backlog replay, straight to the live edge.
    assert_eq!(slow.seqs(), [1, 2, 12]);
    let last = slow.received().pop().expect("a frame after drain");
    assert_eq!(last.data, frame_n(12));
    assert_eq!(healthy.seqs(), (1..=12).collect::<Vec<u64>>());
    assert_eq!(stats(&d, "a", t0 + ms(200)).dropped_slow_viewer, 7);
}

#[test]
fn viewer_full_for_the_stall_timeout_is_evicted() {
    let t0 = origin();
    let d = relay(RelayLimits {
        stall_timeout: secs(10),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let healthy = Sink::unbounded();
    let stuck = Sink::with_capacity(0); // full from the first offer, at t0
    join(&d, "a", "healthy", &healthy, t0);
    join(&d, "a", "stuck", &stuck, t0);
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
        Err(MemberError::NotInStream("a".into()))
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
    let t0 = origin();
    let d = relay(RelayLimits {
        stall_timeout: secs(10),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let slow = Sink::with_capacity(1);
    join(&d, "a", "slow", &slow, t0);

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
fn a_large_audience_gets_per_viewer_policy_and_evictions_in_order() {
    // 600 viewers: every third one takes one frame and is then full, six others close; the
    // rest take everything. Each gets its own outcome; evictions come in list order.
    let t0 = origin();
    let d = relay(RelayLimits {
        stall_timeout: ms(500),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    let sinks: Vec<Sink> = (0..600)
        .map(|i| {
            if i % 3 == 0 {
                Sink::with_capacity(1)
            } else {
                Sink::unbounded()
            }
        })
        .collect();
    for (i, s) in sinks.iter().enumerate() {
        join(&d, "a", &format!("v{i:03}"), s, t0);
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
    // Three refusals of four offers (too few to move a level): frame 5 is offered to the
    // full viewers too, 600 ms after their first refusal: evicted, in order.
    let del = publish(&d, "a", frame_n(4), t0 + ms(700));
    let expected: Vec<String> = (0..600).step_by(3).map(|i| format!("v{i:03}")).collect();
    assert_eq!(del.evicted, expected);
    let del = publish(&d, "a", frame_n(5), t0 + ms(700));
    assert!(del.evicted.is_empty());
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
fn closed_sink_is_removed_silently_on_next_publish() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let keep = Sink::unbounded();
    let gone = Sink::unbounded();
    join(&d, "a", "keep", &keep, t0);
    join(&d, "a", "gone", &gone, t0);
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
    assert_eq!(delivery.dropped_slow, 0);

    let st = stats(&d, "a", t0);
    assert_eq!(st.viewer_count, 1);
    assert_eq!(st.evicted, 0);
    assert_eq!(st.dropped_slow_viewer, 0);
    assert_eq!(gone.seqs(), [1]);
    assert_eq!(keep.seqs(), [1, 2]);
    assert!(d.check_member("a", "gone").is_err());
    assert_eq!(d.take_viewer_count_changes(), [("a".to_owned(), 1)]);
}

#[test]
fn a_viewer_behind_holds_at_most_300_ms_of_a_picture_stream() {
    let t0 = origin();
    let d = relay(roomy()); // picture_queue: 300 ms
    register(&d, "a", OWNER, t0);
    let healthy = Sink::unbounded();
    let behind = Sink::counting_bytes();
    join(&d, "a", "healthy", &healthy, t0);
    join(&d, "a", "behind", &behind, t0);
    // 1000-byte pictures at 30 fps (30 KB/s): `behind` reads the first second, then stops.
    let picture = |n: usize| FrameData::Binary(Bytes::from(vec![n as u8; 1000])).into_publish();
    let at = |n: usize| t0 + ms(n as u64 * 100 / 3);
    for n in 0..30 {
        behind.drain();
        publish(&d, "a", picture(n), at(n));
    }
    for n in 30..90 {
        publish(&d, "a", picture(n), at(n));
    }
    assert_eq!(healthy.len(), 90);
    // 300 ms of 30 KB/s is 9 pictures (9.3 at the rate measured over the stream's first
    // second): picture 29, still queued, and 8 more; refused beyond that, whatever room the
    // sink itself has.
    assert_eq!(behind.len(), 30 + 8);
    assert_eq!(
        behind.refused(),
        0,
        "the cap refuses before the sink is asked"
    );
    let st = stats(&d, "a", at(90));
    assert!(st.dropped_slow_viewer > 0);
    assert_eq!(st.levels, [1, 0, 1], "refusing every picture moved it down");
    // Drained, it goes on at the live edge (every 4th picture at level 2), not with a backlog.
    behind.drain();
    for n in 90..94 {
        publish(&d, "a", picture(n), at(n));
    }
    assert_eq!(behind.len(), 30 + 8 + 1);
    assert!(*behind.seqs().last().expect("a picture") > 90);
}

#[test]
fn the_picture_cap_leaves_encoded_video_to_the_byte_budget() {
    let (d, t0) = open(RelayLimits {
        picture_queue: Some(ms(1)),
        ..roomy()
    });
    let behind = MediaSink::counting_bytes();
    join(&d, KEY, "behind", &behind, t0);
    publish(&d, KEY, wc(ChunkKind::Key, 0, Some(config("vp8"))), t0);
    for n in 1..30u32 {
        publish(&d, KEY, delta(n * 33_333), t0 + ms(u64::from(n) * 33));
    }
    assert_eq!(
        behind.len(),
        30,
        "a GOP is not thinned by the pictures' cap"
    );
    assert_eq!(stats(&d, KEY, t0 + secs(1)).dropped_slow_viewer, 0);
}

#[test]
fn a_picture_streams_first_second_is_bounded_by_the_byte_budget_only() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let polling = Sink::counting_bytes();
    join(&d, "a", "polling", &polling, t0);
    // A burst (a page sending as fast as its acks come back) to a viewer that has not read
    // yet: its rate is not known, so nothing is refused for time.
    for n in 0..20 {
        publish(&d, "a", frame_n(n), t0 + ms(n as u64));
    }
    assert_eq!(polling.len(), 20);
    // From 1 s on it is: 20 frames in 1 s, 300 ms of them is 6; the viewer holds 20 already.
    let late = publish(&d, "a", frame_n(20), t0 + secs(1));
    assert_eq!(late.reached, 0);
    assert_eq!(polling.len(), 20);
}

#[test]
fn a_joiners_catch_up_does_not_count_against_the_picture_cap() {
    let t0 = origin();
    let d = relay(roomy()); // picture_queue: 300 ms, a catch-up ring of 30 pictures
    register(&d, "a", OWNER, t0);
    let picture = |n: usize| FrameData::Binary(Bytes::from(vec![n as u8; 1000])).into_publish();
    let at = |n: usize| t0 + ms(n as u64 * 100 / 3);
    for n in 0..60 {
        publish(&d, "a", picture(n), at(n));
    }
    // The joiner queues the seed's buffer (1 s of the stream, over three times the cap) and
    // has read none of it yet when the next pictures come.
    let joiner = Sink::counting_bytes();
    let admitted = d
        .add_viewer("a", "joiner", joiner.clone(), at(60), 0, |a| {
            a.catch_up
                .iter()
                .all(|f| joiner.offer("a", f, false) == Offer::Sent)
        })
        .expect("add_viewer");
    assert_eq!(admitted.catch_up.len(), 30);
    for n in 60..66 {
        publish(&d, "a", picture(n), at(n));
    }
    let seqs = joiner.seqs();
    assert_eq!(seqs.len(), 36, "the buffer, then every live picture");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap: {seqs:?}"
    );
    // Still not reading: the buffer plus 300 ms (9 pictures) of live ones, then the cap.
    for n in 66..80 {
        publish(&d, "a", picture(n), at(n));
    }
    assert_eq!(joiner.len(), 30 + 9);
    assert_eq!(
        stats(&d, "a", at(80)).levels,
        [0, 1, 0],
        "moved down by the refusals"
    );
    // Once the buffer is read, it is the plain cap again: at level 1, every other picture and
    // 150 ms of the stream (4 pictures), not the buffer's 30 on top.
    joiner.drain();
    for n in 80..100 {
        publish(&d, "a", picture(n), at(n));
    }
    assert_eq!(joiner.len(), 30 + 9 + 4);
}
