//! The stream registry: register, list, titles, errors, start, end, membership, drain.

use super::*;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn every_refusal_has_its_protocol_code() {
    let bad_media = MediaError::Webm("truncated".into());
    let cases: Vec<(Box<dyn Coded>, ErrorCode)> = vec![
        (Box::new(not_found("k")), ErrorCode::StreamNotFound),
        (
            Box::new(RegisterError::ServerFull(3)),
            ErrorCode::ServerFull,
        ),
        (
            Box::new(RegisterError::KeyTaken("k".into())),
            ErrorCode::ServerFull,
        ),
        (
            Box::new(OwnerError::NotFound(not_found("k"))),
            ErrorCode::StreamNotFound,
        ),
        (
            Box::new(OwnerError::NotOwner("k".into())),
            ErrorCode::NotOwner,
        ),
        (
            Box::new(PublishError::NotFound(not_found("k"))),
            ErrorCode::StreamNotFound,
        ),
        (
            Box::new(PublishError::NotOwner("k".into())),
            ErrorCode::NotOwner,
        ),
        (
            Box::new(PublishError::TooLarge { size: 2, max: 1 }),
            ErrorCode::FrameTooLarge,
        ),
        (
            Box::new(PublishError::RateLimited {
                key: "k".into(),
                max_fps: 5,
            }),
            ErrorCode::RateLimited,
        ),
        (
            Box::new(PublishError::BadMedia(bad_media)),
            ErrorCode::InvalidPayload,
        ),
        (
            Box::new(MemberError::NotFound(not_found("k"))),
            ErrorCode::StreamNotFound,
        ),
        (
            Box::new(MemberError::NotInStream("k".into())),
            ErrorCode::NotInStream,
        ),
        (
            Box::new(ResumeError::NotFound(not_found("k"))),
            ErrorCode::StreamNotFound,
        ),
        (
            Box::new(ResumeError::InvalidToken("k".into())),
            ErrorCode::InvalidToken,
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code, "{err:?}");
    }
    // An owner check inside a publish keeps its meaning.
    assert_eq!(
        PublishError::from(OwnerError::NotOwner("k".into())),
        PublishError::NotOwner("k".into())
    );
    assert_eq!(
        PublishError::from(OwnerError::NotFound(not_found("k"))),
        PublishError::NotFound(not_found("k"))
    );
}

// ---------------------------------------------------------------------------------------------
// Register, list, titles
// ---------------------------------------------------------------------------------------------

#[test]
fn register_returns_created_info_and_counts() {
    let t0 = origin();
    let d = relay(roomy());
    assert_eq!(d.stream_count(), 0);

    let info = register(&d, "a", OWNER, t0);
    assert_eq!(info.stream_key, "a");
    assert_eq!(info.title, "title of a");
    assert_eq!(info.streamer.id, format!("user-{OWNER}"));
    assert_eq!(info.status, StreamStatus::Created);
    assert_eq!(info.created_at, 1_000);
    assert_eq!(info.started_at, None);
    assert_eq!(info.viewer_count, 0);

    register(&d, "b", OWNER, t0);
    assert_eq!(d.stream_count(), 2);
    assert_eq!(d.stream_info("a"), Some(info.clone()));
    let (described, st) = d.describe("a", t0).expect("a is registered");
    assert_eq!(described, info);
    assert_eq!(st, stats(&d, "a", t0));
    assert!(d.describe("never", t0).is_none());
}

#[test]
fn register_refuses_past_max_streams() {
    let t0 = origin();
    let d = relay(RelayLimits {
        max_streams: 2,
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    let err = d
        .register_stream(new_stream("c", OWNER), t0)
        .expect_err("third stream is over the limit");
    assert_eq!(err, RegisterError::ServerFull(2));
    assert_eq!(err.code(), ErrorCode::ServerFull);
    assert_eq!(d.stream_count(), 2);

    // Room again once one leaves.
    end(&d, "a", t0);
    register(&d, "c", OWNER, t0);
    assert_eq!(d.stream_count(), 2);
}

#[test]
fn register_refuses_a_key_in_use_and_keeps_the_stream_that_has_it() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    join(&d, "a", "v1", &Sink::unbounded(), t0);
    let err = d
        .register_stream(new_stream("a", "someone-else"), t0)
        .expect_err("the key is taken");
    assert_eq!(err, RegisterError::KeyTaken("a".into()));
    assert_eq!(err.code(), ErrorCode::ServerFull);
    let owned: Vec<String> = d
        .owned_by(OWNER)
        .into_iter()
        .map(|(info, _)| info.stream_key)
        .collect();
    assert_eq!(owned, ["a"]);
    assert!(d.owned_by("someone-else").is_empty());
    assert_eq!(d.get_stream_stats("a", t0).map(|s| s.viewer_count), Some(1));
}

#[test]
fn list_shows_only_started_streams_newest_first() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "created", OWNER, t0);
    register(&d, "older", OWNER, t0);
    register(&d, "newer", OWNER, t0);
    assert!(d.list().is_empty(), "nothing started yet");
    assert!(d.snapshot(t0).is_empty());

    d.start_stream("older", OWNER, 5_000).expect("start older");
    // A first frame starts a stream too.
    d.publish("newer", OWNER, text("x").into_publish(), t0, 9_000)
        .expect("publish newer");

    let listed = d.list();
    let keys: Vec<&str> = listed.iter().map(|i| i.stream_key.as_str()).collect();
    assert_eq!(keys, ["newer", "older"]);
    assert!(listed.iter().all(|i| i.status == StreamStatus::Live));
    assert_eq!(listed[0].started_at, Some(9_000));
    assert_eq!(listed[1].started_at, Some(5_000));
    assert_eq!(d.stream_count(), 3, "created streams still count");

    // The snapshot lists the same streams, with their stats.
    let snapshot = d.snapshot(t0);
    let infos: Vec<StreamInfo> = snapshot.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(infos, listed);
    assert_eq!(snapshot[0].1, stats(&d, "newer", t0));
    assert_eq!(snapshot[0].1.frames_in, 1);
}

#[test]
fn list_includes_reconnecting_streams() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    d.start_stream("a", OWNER, 10).expect("start");
    d.owner_disconnected(OWNER, t0);
    let listed = d.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, StreamStatus::Reconnecting);
}

#[test]
fn set_title_only_by_owner() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let err = d
        .set_title("a", "intruder", "hacked".into())
        .expect_err("not the owner");
    assert_eq!(err, OwnerError::NotOwner("a".into()));
    assert_eq!(err.code(), ErrorCode::NotOwner);
    let info = d.set_title("a", OWNER, "new title".into()).expect("owner");
    assert_eq!(info.title, "new title");
    assert_eq!(d.stream_info("a").expect("exists").title, "new title");
    let err = d
        .set_title("zzz", OWNER, "x".into())
        .expect_err("no such stream");
    assert_eq!(err, OwnerError::NotFound(not_found("zzz")));
    assert_eq!(err.code(), ErrorCode::StreamNotFound);
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

#[test]
fn first_frame_auto_starts_a_created_stream_once() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);

    let first = d
        .publish("a", OWNER, text("1").into_publish(), t0, 12_345)
        .expect("publish");
    let started = first.started.expect("first frame starts the stream");
    assert_eq!(started.stream_key, "a");
    assert_eq!(started.status, StreamStatus::Live);
    assert_eq!(started.started_at, Some(12_345));
    assert_eq!(started.viewer_count, 1);

    let second = d
        .publish("a", OWNER, text("2").into_publish(), t0, 12_400)
        .expect("publish");
    assert_eq!(second.started, None);

    let info = d.stream_info("a").expect("a");
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.started_at, Some(12_345), "started_at is not moved");
    assert_eq!(stats(&d, "a", t0).started_at, Some(12_345));
}

#[test]
fn start_stream_changes_state_once() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);

    let (info, changed) = d.start_stream("a", OWNER, 500).expect("start");
    assert!(changed);
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.started_at, Some(500));

    let (info, changed) = d.start_stream("a", OWNER, 900).expect("start again");
    assert!(!changed, "starting a live stream is a no-op");
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.started_at, Some(500));

    // Already live, so the first frame does not report a start.
    assert_eq!(publish(&d, "a", text("x"), t0).started, None);
}

#[test]
fn start_stream_checks_owner_and_key() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let err = d.start_stream("a", "other", 1).expect_err("not the owner");
    assert_eq!(err, OwnerError::NotOwner("a".into()));
    assert_eq!(err.code(), ErrorCode::NotOwner);
    assert_eq!(status(&d, "a"), StreamStatus::Created);
    let err = d.start_stream("b", OWNER, 1).expect_err("no such stream");
    assert_eq!(err, OwnerError::NotFound(not_found("b")));
    assert_eq!(err.code(), ErrorCode::StreamNotFound);
}

// ---------------------------------------------------------------------------------------------
// End, membership, drain
// ---------------------------------------------------------------------------------------------

#[test]
fn end_stream_removes_the_stream_and_reports_it_ended() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    publish(&d, "a", text("12345"), t0);

    let Ending { tail, ended } = end(&d, "a", t0 + secs(1));
    assert_eq!(ended.info.stream_key, "a");
    assert_eq!(ended.info.status, StreamStatus::Ended);
    assert_eq!(ended.info.started_at, Some(0), "started by its first frame");
    assert_eq!(ended.stats.frames_in, 1);
    assert_eq!(ended.stats.bytes_in, 5);
    assert_eq!((tail.seq, tail.reached, tail.frames_out), (1, 0, 0));
    assert_eq!(d.stream_count(), 1);
    assert!(d.stream_info("a").is_none());
    assert!(d.get_stream_stats("a", t0).is_none());
    assert!(d.stream_info("b").is_some());

    let again = d.end_stream("a", OWNER, t0, 0).expect_err("second end");
    assert_eq!(again, OwnerError::NotFound(not_found("a")));
    assert_eq!(again.code(), ErrorCode::StreamNotFound);
    assert_eq!(
        d.end_stream("never", OWNER, t0, 0).err(),
        Some(OwnerError::NotFound(not_found("never")))
    );
    assert_eq!(d.stream_count(), 1);
}

#[test]
fn end_stream_only_by_owner() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let v = Sink::unbounded();
    join(&d, "a", "v", &v, t0);
    publish(&d, "a", text("1"), t0);

    let err = d.end_stream("a", "v", t0, 0).expect_err("a viewer");
    assert_eq!(err, OwnerError::NotOwner("a".into()));
    assert_eq!(err.code(), ErrorCode::NotOwner);
    assert_eq!(d.stream_count(), 1);
    assert_eq!(status(&d, "a"), StreamStatus::Live);

    let ended = end(&d, "a", t0).ended;
    assert_eq!(ended.info.stream_key, "a");
    assert_eq!(ended.info.status, StreamStatus::Ended);
    assert_eq!(d.stream_count(), 0);
    assert!(d.stream_info("a").is_none());
    assert!(d.list().is_empty());
    assert!(d.joined_by("v").is_empty(), "its viewers are dropped");

    assert_eq!(
        d.end_stream("a", OWNER, t0, 0).err(),
        Some(OwnerError::NotFound(not_found("a")))
    );
    assert_eq!(
        try_publish(&d, "a", text("x"), t0),
        Err(PublishError::NotFound(not_found("a")))
    );
    assert_eq!(v.seqs(), [1]);
}

#[test]
fn ending_a_picture_stream_relays_nothing_more() {
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    publish(&d, KEY, binary(JPEG), t0);
    let Ending { tail, ended } = end(&d, KEY, t0 + ms(10));
    assert_eq!((tail.reached, tail.frames_out, v.seqs()), (0, 0, vec![1]));
    assert_eq!(tail.media, MediaMode::Images);
    assert_eq!(ended.stats.frames_out, 1);
}

#[test]
fn check_member_knows_owner_viewers_and_strangers() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    join(&d, "a", "v", &Sink::unbounded(), t0);

    let info = d.check_member("a", OWNER).expect("the owner");
    assert_eq!(info.stream_key, "a");
    assert_eq!(info.viewer_count, 1);
    assert_eq!(d.check_member("a", "v"), Ok(info));
    let err = d.check_member("a", "stranger").expect_err("stranger");
    assert_eq!(err, MemberError::NotInStream("a".into()));
    assert_eq!(err.code(), ErrorCode::NotInStream);
    let err = d.check_member("zzz", OWNER).expect_err("no such stream");
    assert_eq!(err, MemberError::NotFound(not_found("zzz")));
    assert_eq!(err.code(), ErrorCode::StreamNotFound);

    d.remove_viewer("a", "v");
    assert!(d.check_member("a", "v").is_err(), "left");
    d.owner_disconnected(OWNER, t0);
    assert!(d.check_member("a", OWNER).is_err(), "no longer the owner");
}

#[test]
fn drain_ends_every_stream() {
    let t0 = origin();
    let d = relay(roomy());
    for k in ["a", "b", "c"] {
        register(&d, k, OWNER, t0);
    }
    let v = Sink::unbounded();
    join(&d, "a", "v", &v, t0);
    publish(&d, "a", text("1"), t0);
    let drained = d.drain(t0 + secs(1));
    assert_eq!(keys(&drained), ["a", "b", "c"]);
    assert!(drained.iter().all(|e| e.info.status == StreamStatus::Ended));
    let a = drained
        .iter()
        .find(|e| e.info.stream_key == "a")
        .expect("a drained");
    assert_eq!((a.stats.frames_in, a.stats.frames_out), (1, 1));
    assert_eq!(d.stream_count(), 0);
    assert!(d.list().is_empty());
    assert!(d.stream_info("a").is_none());
    assert!(d.joined_by("v").is_empty());
    assert!(d.drain(t0 + secs(2)).is_empty());
}
