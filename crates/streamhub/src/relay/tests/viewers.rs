//! Viewers joining and leaving: counts, the welcome, leaving everywhere.

use super::*;

#[test]
fn add_viewer_reports_stream_count_and_owner() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let j1 = join(&d, "a", "v1", &Sink::unbounded(), t0);
    assert!(j1.new);
    assert_eq!(j1.viewer_count, 1);
    assert_eq!(j1.stream.stream_key, "a");
    assert_eq!(j1.stream.viewer_count, 1);
    assert_eq!(j1.owner.as_deref(), Some(OWNER));
    assert_eq!(j1.media, MediaMode::Images);
    assert!(!j1.keyframe_wanted);
    let j2 = join(&d, "a", "v2", &Sink::unbounded(), t0);
    assert_eq!(j2.viewer_count, 2);

    let err = d
        .add_viewer("missing", "v1", Sink::unbounded(), t0, 0, |_| true)
        .expect_err("no such stream");
    assert_eq!(err, not_found("missing"));
    assert_eq!(err.code(), ErrorCode::StreamNotFound);
}

#[test]
fn adding_the_same_viewer_twice_is_a_no_op() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let first = Sink::unbounded();
    let second = Sink::unbounded();
    assert!(join(&d, "a", "v", &first, t0).new);
    let again = join(&d, "a", "v", &second, t0);
    assert!(!again.new);
    assert_eq!(again.viewer_count, 1);
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    // Frames are delivered once, to the sink registered first.
    let delivery = publish(&d, "a", text("x"), t0);
    assert_eq!(delivery.reached, 1);
    assert_eq!(first.seqs(), [1]);
    assert!(second.received().is_empty());
}

#[test]
fn remove_viewer_reports_the_viewers_left() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);
    join(&d, "a", "w", &Sink::unbounded(), t0);

    assert_eq!(d.remove_viewer("a", "v"), Some(1));
    assert_eq!(d.remove_viewer("a", "v"), None, "already gone");
    assert_eq!(d.remove_viewer("a", "never-joined"), None);
    assert_eq!(d.remove_viewer("no-such-stream", "w"), None);
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    publish(&d, "a", text("x"), t0);
    assert!(s.received().is_empty(), "a viewer that left gets nothing");

    // Can join again afterwards.
    assert!(join(&d, "a", "v", &s, t0).new);
    assert_eq!(d.remove_viewer("a", "w"), Some(1));
    assert_eq!(d.remove_viewer("a", "v"), Some(0));
}

#[test]
fn viewer_count_changes_are_reported_once() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    assert!(d.take_viewer_count_changes().is_empty(), "no viewers yet");

    join(&d, "a", "v1", &Sink::unbounded(), t0);
    assert_eq!(d.take_viewer_count_changes(), [("a".to_owned(), 1)]);
    assert!(d.take_viewer_count_changes().is_empty(), "already reported");

    join(&d, "a", "v2", &Sink::unbounded(), t0);
    join(&d, "a", "v3", &Sink::unbounded(), t0);
    assert_eq!(
        d.take_viewer_count_changes(),
        [("a".to_owned(), 3)],
        "coalesced to the latest count"
    );

    d.remove_viewer("a", "v1");
    join(&d, "b", "v1", &Sink::unbounded(), t0);
    let mut changes = d.take_viewer_count_changes();
    changes.sort();
    assert_eq!(changes, [("a".to_owned(), 2), ("b".to_owned(), 1)]);

    // Joining twice does not change the count.
    join(&d, "b", "v1", &Sink::unbounded(), t0);
    assert!(d.take_viewer_count_changes().is_empty());
}

#[test]
fn add_viewer_welcomes_before_any_live_frame() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    for i in 1..=3 {
        publish(&d, "a", frame_n(i), t0);
    }
    let sink = Sink::unbounded();
    let mut welcomed: Vec<(Vec<u64>, usize, bool, usize)> = Vec::new();
    let joined = d
        .add_viewer("a", "v", sink.clone(), t0, 0, |j| {
            welcomed.push((
                j.catch_up.iter().map(|f| f.seq).collect(),
                j.viewer_count,
                j.new,
                sink.received().len(),
            ));
            true
        })
        .expect("join");
    // Called once, with the catch-up, the count including the joiner, and nothing sent yet.
    assert_eq!(welcomed, [(vec![1, 2, 3], 1, true, 0)]);
    assert_eq!(joined.viewer_count, 1);
    assert_eq!(joined.stream.viewer_count, 1);
    assert!(joined.new);
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    // Live frames follow the welcome.
    publish(&d, "a", frame_n(4), t0);
    assert_eq!(sink.seqs(), [4]);

    // Joining again answers again, without adding anyone.
    let mut calls = 0;
    let again = d
        .add_viewer("a", "v", Sink::unbounded(), t0, 0, |j| {
            calls += 1;
            assert!(!j.new);
            assert_eq!(j.viewer_count, 1);
            true
        })
        .expect("rejoin");
    assert_eq!(calls, 1);
    assert!(!again.new);
    assert_eq!(again.viewer_count, 1);
    assert_eq!(stats(&d, "a", t0).viewer_count, 1);

    // No welcome for a stream that does not exist.
    let mut called = false;
    let err = d
        .add_viewer("zzz", "v", Sink::unbounded(), t0, 0, |_| {
            called = true;
            true
        })
        .expect_err("unknown stream");
    assert_eq!(err, not_found("zzz"));
    assert!(!called);
}

#[test]
fn remove_viewer_everywhere_and_joined_by() {
    let t0 = origin();
    let d = relay(roomy());
    for k in ["a", "b", "c"] {
        register(&d, k, OWNER, t0);
    }
    join(&d, "a", "v", &Sink::unbounded(), t0);
    join(&d, "b", "v", &Sink::unbounded(), t0);
    join(&d, "b", "w", &Sink::unbounded(), t0);
    join(&d, "c", "w", &Sink::unbounded(), t0);

    let mut watching = d.joined_by("v");
    watching.sort();
    assert_eq!(watching, ["a", "b"]);
    assert!(d.joined_by(OWNER).is_empty(), "owning is not watching");

    let mut left = d.remove_viewer_everywhere("v", |_| true);
    left.sort();
    assert_eq!(left, [("a".to_owned(), 0), ("b".to_owned(), 1)]);
    assert!(d.joined_by("v").is_empty());
    assert!(
        d.remove_viewer_everywhere("v", |_| true).is_empty(),
        "nothing left"
    );
    assert_eq!(stats(&d, "b", t0).viewer_count, 1);
    assert_eq!(stats(&d, "c", t0).viewer_count, 1);
}

#[test]
fn remove_viewer_everywhere_takes_only_the_sinks_it_picks() {
    // One connection watches `a` over a transport of its own (a media channel: a solo sink)
    // and `b` over the shared one; the media channel closes.
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    join(&d, "a", "v", &Sink::solo(), t0);
    join(&d, "b", "v", &Sink::unbounded(), t0);

    let left = d.remove_viewer_everywhere("v", |s| s.solo);
    assert_eq!(left, [("a".to_owned(), 0)]);
    assert_eq!(d.joined_by("v"), ["b"]);
    assert!(d.remove_viewer_everywhere("v", |s| s.solo).is_empty());
}
