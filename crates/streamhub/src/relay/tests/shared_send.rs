//! Shared sends: picture viewers at level 0 get frames by one send to the stream's group;
//! probes find the slow member.

use super::super::stream::PROBE_EVERY;
use super::*;

#[test]
fn an_ungroupable_viewer_gets_every_frame_on_its_own() {
    let t0 = origin();
    let (d, group) = grouped_relay(roomy());
    register(&d, "a", OWNER, t0);
    let shared = Sink::unbounded();
    let solo = Sink::solo();
    join(&d, "a", "shared", &shared, t0);
    join(&d, "a", "solo", &solo, t0);
    for n in 1..=40 {
        let out = publish(&d, "a", frame_n(n), t0 + ms(n as u64));
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
    let t0 = origin();
    let (d, group) = grouped_relay(roomy());
    register(&d, "a", OWNER, t0);
    let fast = Sink::unbounded();
    let slow = Sink::with_capacity(3);
    let other = Sink::unbounded();
    join(&d, "a", "fast", &fast, t0);
    join(&d, "a", "slow", &slow, t0);
    let p = 10;
    let send = |n: u64, at: Duration| publish(&d, "a", frame_n(n as usize), t0 + at);
    // Frame 1 joins both to the group and goes by the shared send.
    let first = send(1, ms(0));
    assert_eq!(first.reached, 2);
    assert!(group.is_member(&fast) && group.is_member(&slow));
    // A viewer that joins later is a member from its first frame on, never twice.
    join(&d, "a", "other", &other, t0);
    for n in 2..=p {
        // Reached: the viewers whose queue took it, counted once, shared or not.
        let want = if n <= 3 { 3 } else { 2 };
        assert_eq!(send(n, ms(10 * n)).reached, want, "frame {n}");
    }
    // `slow` took 3 and is full: the shared send of frame 4 counted one full queue, so frame
    // 5 went viewer by viewer (a probe), found it, and it left the group; it gets frames one
    // by one from then on (all refused: it does not read; after 5, 6 and 7 it is at level 1,
    // so 9 is not even offered).
    assert_eq!(slow.seqs(), [1, 2, 3]);
    assert!(!group.is_member(&slow));
    assert!(group.is_member(&fast) && group.is_member(&other));
    let st = stats(&d, "a", t0);
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
    send(p + 1, secs(6));
    send(p + 2, secs(6));
    assert!(!group.is_member(&slow));
    send(p + 3, secs(6));
    assert!(group.is_member(&slow));
    assert_eq!(slow.seqs()[3..], [p + 2, p + 3]);
    assert_eq!(group.shared_seqs(&slow), [1, 2, 3, p + 3]);
    // Leaving the stream leaves the group.
    assert_eq!(d.remove_viewer("a", "fast"), Some(2));
    assert!(!group.is_member(&fast));
    let ended = end(&d, "a", t0 + secs(7)).ended;
    assert!(group.is_empty(), "ending empties the group");
    assert_eq!(ended.stats.dropped_slow_viewer, 6);
}

#[test]
fn encoded_video_never_goes_by_the_shared_send() {
    let t0 = origin();
    let (d, group) = grouped_relay(roomy());
    register(&d, "a", OWNER, t0);
    let v = Sink::unbounded();
    join(&d, "a", "v", &v, t0);
    publish(&d, "a", frame_n(0), t0);
    assert!(group.is_member(&v));
    // The stream turns into WebCodecs video: the member leaves, chunks go one by one.
    for i in 0..(2 * PROBE_EVERY) {
        publish(&d, "a", key(i as u32), t0 + ms(i));
    }
    assert!(!group.is_member(&v));
    assert_eq!(v.seqs().len() as u64, 1 + 2 * PROBE_EVERY);
    assert_eq!(group.shared_seqs(&v), [1]);
}

#[test]
fn delivery_counts_add_up_to_the_stream_stats_shared_sends_included() {
    let t0 = origin();
    let (d, group) = grouped_relay(roomy());
    register(&d, "a", OWNER, t0);
    let fast = Sink::unbounded();
    let slow = Sink::with_capacity(3);
    let solo = Sink::solo();
    let gone = Sink::unbounded();
    let late = Sink::unbounded();
    join(&d, "a", "fast", &fast, t0);
    join(&d, "a", "slow", &slow, t0);
    join(&d, "a", "solo", &solo, t0);
    join(&d, "a", "gone", &gone, t0);

    let (mut frames, mut bytes, mut dropped) = (0, 0, 0);
    for n in 1..=80u64 {
        match n {
            5 => gone.close(),
            10 => {
                join(&d, "a", "late", &late, t0 + ms(10 * n));
            }
            // `slow` catches up now and then: it leaves and rejoins the group.
            40 | 60 => slow.drain(),
            _ => {}
        }
        // Frames of different sizes, so bytes are not frames times a constant.
        let data = FrameData::Binary(Bytes::from(vec![0u8; n as usize]));
        let del = publish(&d, "a", data, t0 + ms(100 * n));
        assert_eq!(del.frames_out, del.reached as u64, "frame {n}");
        assert_eq!(del.bytes_out, del.frames_out * n, "frame {n}");
        frames += del.frames_out;
        bytes += del.bytes_out;
        dropped += del.dropped_slow;
    }
    // Both ways of sending were used, and shared sends found full queues.
    assert!(group.shared_total() > 0);
    assert!(group.full_found() > 0);
    assert!(!solo.received().is_empty());

    // What the deliveries said is what the viewers got and refused...
    let viewers = [&fast, &slow, &solo, &gone, &late];
    let got: u64 = viewers.iter().map(|v| v.len() as u64).sum();
    let got_bytes: u64 = viewers.iter().map(|v| v.bytes_received()).sum();
    let refused: u64 = viewers.iter().map(|v| v.refused() as u64).sum();
    assert_eq!((frames, bytes, dropped), (got, got_bytes, refused));
    // ...and what the stream counted.
    let st = stats(&d, "a", t0 + secs(9));
    assert_eq!(
        (st.frames_out, st.bytes_out, st.dropped_slow_viewer),
        (frames, bytes, dropped)
    );
    let ended = end(&d, "a", t0 + secs(9)).ended;
    assert_eq!(
        (
            ended.stats.frames_out,
            ended.stats.bytes_out,
            ended.stats.dropped_slow_viewer
        ),
        (frames, bytes, dropped),
        "the lifetime counters"
    );
    assert_eq!(ended.stats.frames_in, 80);
}
