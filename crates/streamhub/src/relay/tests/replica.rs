//! Cluster mode: a stream followed from another node (a replica), and the two ways a stream
//! changes node (a replica taking over, an origin demoted).

use super::*;

/// The origin's info of stream `KEY`, live, as the registry carries it.
fn remote_info() -> StreamInfo {
    StreamInfo {
        stream_key: KEY.to_owned(),
        title: "remote".to_owned(),
        streamer: UserRef {
            id: "u-remote".to_owned(),
            username: "remote".to_owned(),
        },
        status: StreamStatus::Live,
        created_at: 1,
        started_at: Some(2),
        viewer_count: 0,
    }
}

/// A frame as the origin cut and numbered it.
fn forwarded(
    epoch: u64,
    seq: u64,
    data: FrameData,
    media: MediaMode,
    kind: FrameKind,
) -> Forwarded {
    Forwarded {
        epoch,
        seq,
        timestamp: 1_000 + seq,
        media,
        track: Track::Video,
        kind,
        init_len: None,
        data,
        chunk: None,
        config: None,
        capture_time: None,
    }
}

fn picture(epoch: u64, seq: u64) -> Forwarded {
    forwarded(
        epoch,
        seq,
        text(&format!("p{seq}")),
        MediaMode::Images,
        FrameKind::Independent,
    )
}

/// A WebCodecs chunk from the origin, tagged like the kit's (`K3`, `D4`).
fn chunk(epoch: u64, seq: u64, kind: FrameKind) -> Forwarded {
    let tag = if kind == FrameKind::Key { 'K' } else { 'D' };
    let mut f = forwarded(
        epoch,
        seq,
        FrameData::Binary(Bytes::from(format!("{tag}{seq}"))),
        MediaMode::Webcodecs,
        kind,
    );
    f.chunk = Some(ChunkInfo {
        kind: if kind == FrameKind::Key {
            ChunkKind::Key
        } else {
            ChunkKind::Delta
        },
        timestamp: seq as f64,
        duration: None,
    });
    f
}

fn follower(now: Instant) -> Relay {
    let d = Distributor::new(roomy());
    assert!(d.follow(&remote_info(), 7, now).expect("follow"));
    d
}

#[test]
fn a_replica_relays_the_origins_frames_as_they_are_numbered() {
    let t0 = origin();
    let d = follower(t0);
    assert!(
        !d.follow(&remote_info(), 7, t0).expect("again"),
        "followed once"
    );
    let v = Sink::unbounded();
    join(&d, KEY, "v", &v, t0);
    for seq in 40..43 {
        let delivery = d.ingest(KEY, picture(7, seq), t0).expect("ingest");
        assert_eq!((delivery.seq, delivery.reached), (seq, 1));
        assert!(!delivery.gap);
        assert!(
            delivery.frames.is_empty(),
            "a replica forwards nothing to the bus"
        );
    }
    let got = v.received();
    assert_eq!(got.iter().map(|g| g.seq).collect::<Vec<_>>(), [40, 41, 42]);
    assert_eq!(got[0].timestamp, 1_040, "the origin's timestamp");
    assert_eq!(got[2].data, text("p42"));
    let s = stats(&d, KEY, t0);
    assert_eq!((s.frames_in, s.frames_out, s.gaps), (3, 3, 0));
    // Its owner cannot publish here: there is none.
    assert!(matches!(
        try_publish(&d, KEY, text("x"), t0),
        Err(PublishError::NotOwner(_))
    ));
    // A late joiner gets the replica's own ring.
    let late = Sink::unbounded();
    let admitted = join(&d, KEY, "late", &late, t0);
    assert_eq!(admitted.catch_up.len(), 3);
    assert_eq!(admitted.owner, None);
}

#[test]
fn frames_the_replica_already_has_are_skipped() {
    let t0 = origin();
    let d = follower(t0);
    let v = Sink::unbounded();
    join(&d, KEY, "v", &v, t0);
    for seq in [5, 6, 6, 5, 7] {
        let _ = d.ingest(KEY, picture(7, seq), t0).expect("ingest");
    }
    assert_eq!(v.seqs(), [5, 6, 7]);
    assert_eq!(stats(&d, KEY, t0).gaps, 0);
}

#[test]
fn a_gap_or_a_new_epoch_restarts_encoded_viewers_at_the_next_keyframe() {
    let t0 = origin();
    let d: MediaRelay = Distributor::new(roomy());
    d.follow(&remote_info(), 7, t0).expect("follow");
    let v = MediaSink::unbounded();
    let _ = d.ingest(KEY, chunk(7, 1, FrameKind::Key), t0).expect("key");
    join(&d, KEY, "v", &v, t0);
    let _ = d
        .ingest(KEY, chunk(7, 2, FrameKind::Delta), t0)
        .expect("delta");
    // Seq 3 and 4 never arrive.
    let gap = d
        .ingest(KEY, chunk(7, 5, FrameKind::Delta), t0)
        .expect("after the gap");
    assert!(gap.gap);
    assert_eq!(gap.reached, 0, "a delta after a gap is not decodable");
    let resync = d.ingest(KEY, chunk(7, 6, FrameKind::Key), t0).expect("key");
    assert_eq!(resync.reached, 1);
    let last = v.received().last().cloned().expect("frames");
    assert_eq!(
        (last.frame.seq, last.resync),
        (6, true),
        "restarts at the key"
    );
    // A new origin (a new epoch) is a gap too, even with the next seq.
    let moved = d
        .ingest(KEY, chunk(9, 7, FrameKind::Delta), t0)
        .expect("new epoch");
    assert!(moved.gap);
    assert_eq!(moved.reached, 0);
    assert_eq!(stats(&d, KEY, t0).gaps, 2);
}

#[test]
fn a_webm_replica_seeded_with_the_init_segment_gives_joiners_init_and_gop() {
    let t0 = origin();
    let d: MediaRelay = Distributor::new(roomy());
    d.follow(&remote_info(), 7, t0).expect("follow");
    let init = Bytes::from_static(b"\x1a\x45\xdf\xa3-init");
    d.seed_init(KEY, init.clone(), false);
    let cluster = |seq: u64, kind: FrameKind| {
        forwarded(
            7,
            seq,
            FrameData::Binary(Bytes::from(format!("cluster{seq}"))),
            MediaMode::Webm,
            kind,
        )
    };
    let _ = d.ingest(KEY, cluster(10, FrameKind::Key), t0).expect("key");
    let _ = d
        .ingest(KEY, cluster(11, FrameKind::Delta), t0)
        .expect("delta");
    let v = MediaSink::unbounded();
    let admitted = join(&d, KEY, "v", &v, t0);
    assert_eq!(admitted.media, MediaMode::Webm);
    assert_eq!(admitted.catch_up.len(), 1, "one bundle");
    let bundle = &admitted.catch_up[0];
    assert!(bundle.init);
    assert_eq!(raw(&bundle.data), cat(&init, b"cluster10cluster11"));
    // A frame that carries a new init segment replaces it (the recorder restarted).
    let mut restart = forwarded(
        7,
        12,
        FrameData::Binary(Bytes::from_static(b"NEWINITcluster12")),
        MediaMode::Webm,
        FrameKind::Key,
    );
    restart.init_len = Some(7);
    let _ = d.ingest(KEY, restart, t0).expect("restart");
    let late = MediaSink::unbounded();
    let admitted = join(&d, KEY, "late", &late, t0);
    assert_eq!(raw(&admitted.catch_up[0].data), b"NEWINITcluster12");
    assert_eq!(d.webm_init(KEY).as_deref(), Some(&b"NEWINIT"[..]));
}

#[test]
fn a_replica_whose_streamer_resumes_here_becomes_the_origin_and_numbers_on() {
    let t0 = origin();
    let d = follower(t0);
    let v = Sink::unbounded();
    join(&d, KEY, "v", &v, t0);
    let _ = d.ingest(KEY, picture(7, 20), t0).expect("ingest");
    let info = d
        .take_over(&remote_info(), TOKEN, OWNER, 8, 15, t0)
        .expect("take over");
    assert_eq!(info.status, StreamStatus::Live);
    assert_eq!(d.owner_of(KEY).as_deref(), Some(OWNER));
    assert_eq!(d.epoch(KEY), Some((8, false)));
    let delivery = publish(&d, KEY, text("mine"), t0);
    assert_eq!(
        delivery.seq, 21,
        "after the last frame it relayed (not before it)"
    );
    assert_eq!(delivery.epoch, 8);
    assert_eq!(
        delivery.frames.len(),
        1,
        "the new origin forwards its frames"
    );
    assert_eq!(v.seqs(), [20, 21], "its viewer stayed");
    assert!(matches!(
        d.ingest(KEY, picture(7, 22), t0),
        Err(PublishError::NotOwner(_))
    ));
    // Its own streams are not replicas: unfollowing leaves them alone.
    assert!(d.unfollow(KEY, t0).is_none());
    assert!(d.followed().is_empty());
}

#[test]
fn a_take_over_of_a_stream_this_node_did_not_follow_registers_it() {
    let t0 = origin();
    let d: Relay = Distributor::new(roomy());
    d.take_over(&remote_info(), TOKEN, OWNER, 8, 15, t0)
        .expect("take over");
    assert_eq!(publish(&d, KEY, text("first"), t0).seq, 15);
}

#[test]
fn an_origin_demoted_keeps_its_viewers_as_a_replica() {
    let t0 = origin();
    let d: Relay = Distributor::new(roomy());
    register(&d, KEY, OWNER, t0);
    let v = Sink::unbounded();
    join(&d, KEY, "v", &v, t0);
    let _ = publish(&d, KEY, text("a"), t0);
    assert!(d.demote(KEY, 9));
    assert!(!d.demote(KEY, 9), "once");
    assert_eq!(d.owner_of(KEY), None);
    assert_eq!(d.followed(), [KEY.to_owned()]);
    let _ = d
        .ingest(KEY, picture(9, 2), t0)
        .expect("the new origin's frame");
    assert_eq!(v.seqs(), [1, 2]);
    assert_eq!(stats(&d, KEY, t0).gaps, 0, "numbering went on");
}

#[test]
fn only_unwatched_replicas_are_unfollowed() {
    let t0 = origin();
    let d = follower(t0);
    let v = Sink::unbounded();
    join(&d, KEY, "v", &v, t0);
    assert!(!d.unfollow_if_unwatched(KEY, t0), "it has a viewer");
    assert_eq!(d.remove_viewer(KEY, "v"), Some(0));
    assert!(d.unfollow_if_unwatched(KEY, t0));
    assert!(d.epoch(KEY).is_none());
    // A stream of this node is never unfollowed.
    register(&d, "own", OWNER, t0);
    assert!(!d.unfollow_if_unwatched("own", t0));
    assert!(d.epoch("own").is_some());
}

#[test]
fn an_origins_delivery_carries_its_numbered_frames_and_epoch() {
    let t0 = origin();
    let d: Relay = Distributor::new(roomy());
    register(&d, KEY, OWNER, t0);
    let delivery = publish(&d, KEY, text("x"), t0);
    assert_eq!(delivery.epoch, EPOCH);
    assert_eq!(delivery.frames.len(), 1);
    assert_eq!(delivery.frames[0].seq, delivery.seq);
    let ended = end(&d, KEY, t0);
    assert!(!ended.ended.replica);
}
