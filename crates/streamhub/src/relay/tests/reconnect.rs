//! The streamer's connection drops: the grace period, `stream:resume`, expiry.

use super::*;

#[test]
fn owner_disconnect_puts_a_live_stream_in_reconnecting() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "other", "someone-else", t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);
    publish(&d, "a", text("1"), t0);

    assert!(d.owner_disconnected("not-an-owner", t0).is_empty());
    let orphaned = d.owner_disconnected(OWNER, t0);
    assert_eq!(orphaned.len(), 1);
    assert_eq!(orphaned[0].key, "a");
    assert_eq!(orphaned[0].grace, d.limits().grace);

    let info = d.stream_info("a").expect("still registered during grace");
    assert_eq!(info.status, StreamStatus::Reconnecting);
    assert_eq!(info.viewer_count, 1, "viewers stay during grace");
    assert_eq!(
        status(&d, "other"),
        StreamStatus::Created,
        "other owners' streams untouched"
    );
    let joined = join(&d, "a", "w", &Sink::unbounded(), t0);
    assert_eq!(joined.owner, None, "nobody owns it while it waits");

    let err = try_publish(&d, "a", text("2"), t0).expect_err("old connection lost ownership");
    assert_eq!(err, PublishError::NotOwner("a".into()));
    assert_eq!(
        d.start_stream("a", OWNER, 0),
        Err(OwnerError::NotOwner("a".into()))
    );
    assert_eq!(
        d.end_stream("a", OWNER, t0, 0).err(),
        Some(OwnerError::NotOwner("a".into()))
    );
    assert_eq!(s.seqs(), [1]);
}

#[test]
fn owner_disconnect_orphans_every_stream_it_owns() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    register(&d, "c", "x", t0);
    let mut keys: Vec<String> = d
        .owner_disconnected(OWNER, t0)
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
}

#[test]
fn owner_disconnect_leaves_a_created_stream_created() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    assert_eq!(d.owner_disconnected(OWNER, t0).len(), 1);
    assert_eq!(status(&d, "a"), StreamStatus::Created);
    assert!(d.list().is_empty());
    // It still expires after the grace period.
    let expired = d.expire_orphans(t0 + d.limits().grace);
    assert_eq!(keys(&expired), ["a"]);
    assert_eq!(expired[0].info.status, StreamStatus::Ended);
    assert_eq!(expired[0].info.started_at, None, "it never started");
}

#[test]
fn resume_needs_the_right_token() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    publish(&d, "a", text("1"), t0);
    d.owner_disconnected(OWNER, t0);

    for bad in ["wrong", "", "secret-toke", "secret-tokenX", "SECRET-TOKEN"] {
        let err = d.resume("a", bad, "new-conn").expect_err("bad token");
        assert_eq!(err, ResumeError::InvalidToken("a".into()), "token {bad:?}");
        assert_eq!(err.code(), ErrorCode::InvalidToken);
    }
    assert_eq!(status(&d, "a"), StreamStatus::Reconnecting);
    assert!(
        d.publish("a", "new-conn", text("x").into_publish(), t0, 0)
            .is_err(),
        "a failed resume grants nothing"
    );
    let err = d.resume("zzz", TOKEN, "new-conn").expect_err("no stream");
    assert_eq!(err, ResumeError::NotFound(not_found("zzz")));
    assert_eq!(err.code(), ErrorCode::StreamNotFound);
}

#[test]
fn resume_with_the_token_hands_the_stream_to_the_new_connection() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);
    publish(&d, "a", text("1"), t0);
    d.owner_disconnected(OWNER, t0);

    let info = d.resume("a", TOKEN, "new-conn").expect("resume");
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(info.stream_key, "a");
    assert_eq!(info.viewer_count, 1);

    let delivery = d
        .publish("a", "new-conn", text("2").into_publish(), t0 + secs(1), 0)
        .expect("new owner publishes");
    assert_eq!(delivery.seq, 2, "seq continues across the resume");
    assert_eq!(delivery.started, None);
    assert_eq!(s.seqs(), [1, 2]);
    assert_eq!(
        try_publish(&d, "a", text("x"), t0 + secs(1)),
        Err(PublishError::NotOwner("a".into())),
        "the old connection stays locked out"
    );
    assert!(d.check_member("a", "new-conn").is_ok());
    let joined = join(&d, "a", "w", &Sink::unbounded(), t0 + secs(1));
    assert_eq!(joined.owner.as_deref(), Some("new-conn"));

    // No longer an orphan: the grace timer is cancelled.
    assert!(d.expire_orphans(t0 + secs(3600)).is_empty());
    assert_eq!(d.stream_count(), 1);

    // A late disconnect notice for the old connection changes nothing.
    assert!(d.owner_disconnected(OWNER, t0 + secs(2)).is_empty());
    assert_eq!(status(&d, "a"), StreamStatus::Live);
}

#[test]
fn orphans_expire_only_after_the_grace_period() {
    let t0 = origin();
    let d = relay(RelayLimits {
        grace: secs(30),
        ..roomy()
    });
    register(&d, "a", OWNER, t0);
    register(&d, "kept", "other-owner", t0);
    let s = Sink::unbounded();
    join(&d, "a", "v", &s, t0);
    d.start_stream("a", OWNER, 1).expect("start");
    publish(&d, "a", text("1"), t0);
    d.owner_disconnected(OWNER, t0 + secs(5));

    assert!(d.expire_orphans(t0 + secs(5)).is_empty());
    assert!(d.expire_orphans(t0 + secs(34)).is_empty(), "29 s after");
    assert_eq!(d.stream_count(), 2);

    let expired = d.expire_orphans(t0 + secs(35));
    assert_eq!(keys(&expired), ["a"]);
    let Ended {
        info,
        stats,
        replica,
    } = &expired[0];
    assert!(!replica, "the node's own stream");
    assert_eq!(info.status, StreamStatus::Ended);
    assert_eq!(info.started_at, Some(1));
    assert_eq!((stats.frames_in, stats.frames_out), (1, 1));
    assert!(d.stream_info("a").is_none());
    assert!(d.joined_by("v").is_empty(), "its viewers are dropped");
    assert_eq!(d.stream_count(), 1);
    assert!(
        d.stream_info("kept").is_some(),
        "owned streams never expire"
    );
    assert!(d.expire_orphans(t0 + secs(100)).is_empty(), "reported once");
    assert_eq!(
        d.resume("a", TOKEN, "late"),
        Err(ResumeError::NotFound(not_found("a")))
    );
}

#[test]
fn owned_by_lists_streams_with_their_tokens() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    register(&d, "b", OWNER, t0);
    register(&d, "c", "other", t0);

    let mut owned: Vec<(String, String)> = d
        .owned_by(OWNER)
        .into_iter()
        .map(|(info, token)| (info.stream_key, token))
        .collect();
    owned.sort();
    assert_eq!(
        owned,
        [
            ("a".to_owned(), TOKEN.to_owned()),
            ("b".to_owned(), TOKEN.to_owned())
        ]
    );
    assert!(d.owned_by("nobody").is_empty());

    d.owner_disconnected(OWNER, t0);
    assert!(d.owned_by(OWNER).is_empty());
    d.resume("a", TOKEN, "new").expect("resume");
    let owned = d.owned_by("new");
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].0.stream_key, "a");
}
