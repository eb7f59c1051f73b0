//! The GOP cap: a GOP larger than `max_gop_bytes` is not kept, and joiners wait for the next
//! keyframe instead of getting part of one.

use super::*;

#[test]
fn webcodecs_gop_over_the_cap_is_dropped_and_joiners_wait_for_a_key() {
    let (d, t0) = open(RelayLimits {
        max_gop_bytes: 8,
        ..roomy()
    });
    publish(&d, KEY, key(1), t0); // "K1": 2 bytes
    publish(&d, KEY, delta(22), t0 + ms(1)); // 3 bytes: 5
    assert_eq!(stats(&d, KEY, t0).gop_frames, 2);
    publish(&d, KEY, delta(33), t0 + ms(2)); // 3 bytes: 8, at the cap
    assert_eq!(stats(&d, KEY, t0).gop_frames, 3);
    publish(&d, KEY, delta(4), t0 + ms(3)); // 10 > 8: dropped
    assert_eq!(stats(&d, KEY, t0).gop_frames, 0);
    publish(&d, KEY, delta(5), t0 + ms(4));
    assert_eq!(
        stats(&d, KEY, t0).gop_frames,
        0,
        "no partial GOP grows back"
    );

    let v = MediaSink::unbounded();
    let j = join(&d, KEY, "v", &v, t0);
    assert!(j.catch_up.is_empty(), "no partial GOP");
    assert!(j.keyframe_wanted);
    publish(&d, KEY, delta(6), t0 + ms(5));
    assert!(
        v.received().is_empty(),
        "not synced: waits for the next key"
    );
    publish(&d, KEY, key(7), t0 + ms(6));
    publish(&d, KEY, delta(8), t0 + ms(7));
    assert_eq!(v.seqs(), [7, 8]);
    assert_eq!(stats(&d, KEY, t0).gop_frames, 2);
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
        ..roomy()
    });
    let early = MediaSink::unbounded();
    join(&d, KEY, "early", &early, t0);
    feed(&d, fx.data, &lens[..4], false, t0);
    assert_eq!(stats(&d, KEY, t0).gop_frames, 4);
    feed(&d, &fx.data[ends[3]..], &lens[4..7], false, t0 + ms(4));
    assert_eq!(stats(&d, KEY, t0).gop_frames, 0);

    let v = MediaSink::unbounded();
    let j = join(&d, KEY, "v", &v, t0);
    assert_eq!(j.catch_up.len(), 1);
    assert!(j.catch_up[0].init);
    assert_eq!(
        j.catch_up[0].kind,
        FrameKind::Delta,
        "the init alone, no partial GOP"
    );
    assert_eq!(raw(&j.catch_up[0].data), fx.init());
    feed(&d, &fx.data[ends[6]..], &lens[7..], false, t0 + ms(10));

    // It waited for the second keyframe Cluster.
    let got = v.frames();
    assert_eq!(got[0].kind, FrameKind::Key);
    assert!(!got[0].init);
    assert!(raw(&got[0].data).starts_with(&CLUSTER_ID));
    let whole = cat(&raw(&j.catch_up[0].data), &v.bytes());
    assert!(whole == cat(fx.init(), &fx.data[fx.keyframes()[1]..]));
    assert_eq!(early.bytes(), fx.relayed());
}
