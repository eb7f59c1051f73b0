//! Delivery levels: a viewer that keeps refusing frames gets fewer of them (every 2nd or 4th
//! picture: once it refused half of at least 8 offered within 2 s; key frames only: after 3
//! refusals within 10 s), and more again after 5 s without refusals.

use super::*;

#[test]
fn images_viewer_steps_down_when_it_refuses_half_and_back_up_after_5s_clear() {
    let (d, t0) = open(roomy());
    let v = MediaSink::with_capacity(1);
    join(&d, KEY, "v", &v, t0);
    let levels = |at| stats(&d, KEY, at).levels;
    let mut seq = 0u64;
    // Publishes the next frame at `at`; unless `congested`, the viewer drains first.
    let mut pub_at = |at: Instant, congested: bool| {
        if !congested {
            v.drain();
        }
        seq += 1;
        let del = publish(&d, KEY, binary(JPEG), at);
        assert_eq!(del.seq, seq);
        del.level_changes
    };
    let none: Vec<(ConnId, usize)> = Vec::new();
    let told = |level: usize| vec![("v".to_owned(), level)];

    let t = t0;
    assert_eq!(pub_at(t, false), none); // 1: sent
    for i in 2..=4 {
        assert_eq!(pub_at(t + ms(100 * i), true), none); // refused
    }
    assert_eq!(
        levels(t),
        [1, 0, 0],
        "3 of 4 refused: too few offers to judge"
    );
    for i in 5..=8 {
        assert_eq!(pub_at(t + ms(100 * i), false), none); // sent
    }
    assert_eq!(
        levels(t),
        [1, 0, 0],
        "3 of 8 refused: it takes most pictures"
    );
    assert_eq!(pub_at(t + ms(900), true), none); // 9: refused, 4 of 9
    assert_eq!(levels(t), [1, 0, 0]);
    // 10: refused, 5 of 10 within 2 s: half.
    assert_eq!(pub_at(t + ms(1000), true), none, "not told while refusing");
    assert_eq!(levels(t), [0, 1, 0]);

    // Level 1: every 2nd picture. Told once, with the first one sent after the change.
    let changes: Vec<_> = (11..=14)
        .map(|i| pub_at(t + ms(1000 + 10 * i), false))
        .collect();
    assert_eq!(changes[1], told(1), "with frame 12");
    assert!(changes.iter().filter(|c| !c.is_empty()).count() == 1);
    // 15..=30 while full, within 2 s of the step down: with 12 and 14 (sent), 16..=26 make
    // 8 offered, 6 refused -> level 2 at 26; 28 is refused at level 2 as well.
    for i in 15..=30 {
        assert_eq!(pub_at(t + ms(1000 + 50 * i), true), none, "frame {i}");
    }
    assert_eq!(levels(t), [0, 0, 1]);
    let changes: Vec<_> = (31..=40)
        .map(|i| pub_at(t + ms(2500 + 10 * i), false))
        .collect();
    assert_eq!(changes[1], told(2), "with frame 32");
    assert_eq!(changes.iter().filter(|c| !c.is_empty()).count(), 1);
    assert_eq!(v.seqs(), [1, 5, 6, 7, 8, 12, 14, 32, 36, 40]);

    // The last change was frame 28's refusal at 2.4 s. One level up per 5 s without refusals.
    let last = t + ms(2400);
    for i in 41..=43 {
        assert_eq!(pub_at(last + ms(4800 + i), false), none); // skipped
    }
    assert_eq!(
        pub_at(last + ms(4900), false),
        none,
        "44: sent, 4.9 s is too early"
    );
    for i in 45..=47 {
        assert_eq!(pub_at(last + ms(4900 + i), false), none);
    }
    assert_eq!(
        pub_at(last + secs(5), false),
        told(1),
        "48: sent 5 s on, one level up"
    );
    assert_eq!(levels(last + secs(5)), [0, 1, 0]);
    assert_eq!(pub_at(last + ms(10_000), false), none); // 49: skipped
    assert_eq!(
        pub_at(last + ms(10_020), false),
        told(0),
        "50: another 5 s, level 0"
    );
    for i in 51..=53 {
        assert_eq!(pub_at(last + ms(10_000 + i), false), none);
    }
    assert_eq!(
        v.seqs()[10..],
        [44, 48, 50, 51, 52, 53],
        "every 4th, every 2nd, then every picture"
    );
}

#[test]
fn refusals_spread_over_more_than_2s_do_not_step_down() {
    let (d, t0) = open(roomy());
    let v = MediaSink::with_capacity(1);
    join(&d, KEY, "v", &v, t0);
    publish(&d, KEY, binary(JPEG), t0); // queued: full from here on
    // Refused, 300 ms apart: the ninth is 2.4 s after the first, so the window holds 7 (too
    // few to judge) when it rolls over.
    for i in 1..=9 {
        publish(&d, KEY, binary(JPEG), t0 + ms(300 * i));
    }
    assert_eq!(stats(&d, KEY, t0).levels, [1, 0, 0]);
    assert_eq!(stats(&d, KEY, t0).dropped_slow_viewer, 9);
    // Eight within the next 2 s: all refused, level 1.
    for i in 0..8 {
        publish(&d, KEY, binary(JPEG), t0 + ms(2800 + 100 * i));
    }
    assert_eq!(stats(&d, KEY, t0).levels, [0, 1, 0]);
}

#[test]
fn webm_viewer_at_level_1_gets_each_keyframe_piece_as_a_fresh_start_then_steps_back_up() {
    let fx = vp8();
    let (d, t0) = open(roomy());
    let healthy = MediaSink::unbounded();
    let slow = MediaSink::with_capacity(2);
    join(&d, KEY, "healthy", &healthy, t0);
    join(&d, KEY, "slow", &slow, t0);
    let lens = fx.chunks();
    // Segment 1: `slow` takes two frames, then refuses frame 3 and the two keyframe Clusters
    // offered to it after that: three refusals, level 1.
    feed(&d, fx.data, &lens, false, t0);
    let st = stats(&d, KEY, t0 + secs(1));
    assert_eq!(st.levels, [1, 1, 0]);
    assert_eq!(st.dropped_slow_viewer, 3);
    assert_eq!(st.resyncs, 1);
    assert_eq!(slow.seqs(), [1, 2]);

    // The recorder restarts: a new EBML header begins a new segment (init + keyframe Cluster
    // in the first chunk). `slow` keeps up from here on, but stays at level 1 for 5 s.
    let resend = |from: Instant| {
        let first = healthy.seqs().last().expect("frames so far") + 1;
        let mut at = 0;
        let mut changes = Vec::new();
        for (i, n) in lens.iter().enumerate() {
            slow.drain();
            let del = publish(&d, KEY, binary(&fx.data[at..at + n]), from + ms(i as u64));
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
    assert_eq!(stats(&d, KEY, t0 + secs(1)).levels, [1, 1, 0]);

    // 5 s without refusals: back to level 0 at the first keyframe, then every piece again.
    let (first_seq, changes) = resend(t0 + secs(6));
    assert_eq!(changes, [("slow".to_owned(), 0)]);
    let got = slow.received();
    let restart = got
        .iter()
        .position(|r| r.frame.seq >= first_seq)
        .expect("frames of the last segment");
    assert!(got[restart].resync && got[restart].frame.init);
    assert!(concat(got[restart..].iter().map(|r| &r.frame)) == fx.data);
    assert!(got[restart + 1..].iter().all(|r| !r.resync));
    assert_eq!(stats(&d, KEY, t0 + secs(7)).levels, [2, 0, 0]);
}

#[test]
fn encoded_viewer_that_resyncs_once_per_gop_steps_down_to_keys_only() {
    // One refusal per 1.5 s GOP: too sparse for the 2 s window of pictures, three within the
    // 10 s window of encoded video.
    let (d, t0) = open(roomy());
    let v = MediaSink::with_capacity(1);
    join(&d, KEY, "v", &v, t0);
    let mut ts = 0;
    for gop in 0..3u64 {
        let t = t0 + ms(1500 * gop);
        v.drain();
        publish(&d, KEY, key(ts), t); // taken; the queue is full again
        publish(&d, KEY, delta(ts + 1), t + ms(100)); // refused: wait for the next key
        ts += 2;
        let want = if gop < 2 { [1, 0, 0] } else { [0, 1, 0] };
        assert_eq!(stats(&d, KEY, t + ms(100)).levels, want, "after GOP {gop}");
    }
    assert_eq!(stats(&d, KEY, t0).resyncs, 3);
}

#[test]
fn webcodecs_viewer_at_level_1_gets_key_chunks_only() {
    let (d, t0) = open(roomy());
    let v = MediaSink::with_capacity(1);
    join(&d, KEY, "v", &v, t0);
    let t = t0 + secs(2);
    publish(&d, KEY, key(1), t); // queued, full
    publish(&d, KEY, delta(2), t + ms(10)); // refused (1): waits for a key
    publish(&d, KEY, key(3), t + ms(20)); // refused (2)
    publish(&d, KEY, key(4), t + ms(30)); // refused (3): level 1
    assert_eq!(stats(&d, KEY, t).levels, [0, 1, 0]);

    let mut received_after = Vec::new();
    for (i, inc) in [delta(5), key(6), delta(7), delta(8), key(9), delta(10)]
        .into_iter()
        .enumerate()
    {
        v.drain();
        let del = publish(&d, KEY, inc, t + ms(100 + 10 * i as u64));
        received_after.push(del.level_changes);
    }
    assert_eq!(v.seqs(), [1, 6, 9], "key chunks only at level 1");
    assert!(v.frames().iter().all(|f| f.kind == FrameKind::Key));
    assert_eq!(received_after[1], [("v".to_owned(), 1)]);
    assert_eq!(stats(&d, KEY, t + secs(1)).levels, [0, 1, 0]);

    // 5 s without refusals: back to level 0 on the next key, then deltas flow again.
    v.drain();
    publish(&d, KEY, delta(11), t + ms(30) + secs(5));
    assert_eq!(
        v.seqs(),
        [1, 6, 9],
        "a delta cannot step up: it is not offered"
    );
    let del = publish(&d, KEY, key(12), t + ms(40) + secs(5));
    assert_eq!(del.level_changes, [("v".to_owned(), 0)]);
    v.drain();
    publish(&d, KEY, delta(13), t + ms(50) + secs(5));
    assert_eq!(v.seqs(), [1, 6, 9, 12, 13]);
}
