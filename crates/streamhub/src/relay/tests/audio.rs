//! Audio, a stream's second track: numbered on its own, kept in a short ring for late
//! joiners, offered to every viewer whatever its level or keyframe wait, refused when bad.

use super::*;

fn opus_config() -> serde_json::Value {
    json!({"codec": "opus", "sampleRate": 48000, "numberOfChannels": 1})
}

/// An Opus chunk whose payload names it (`"A40000"`), encoder timestamp `ts` µs, 20 ms long.
fn opus(ts: u32, config: Option<serde_json::Value>) -> AudioPublish {
    AudioPublish {
        data: FrameData::Binary(Bytes::from(format!("A{ts}"))),
        chunk: ChunkInfo {
            kind: ChunkKind::Key,
            timestamp: f64::from(ts),
            duration: Some(20_000.0),
        },
        config,
    }
}

fn try_audio<S: ViewerSink>(
    d: &Distributor<S>,
    chunk: AudioPublish,
    now: Instant,
) -> Result<Delivery, PublishError> {
    d.publish_audio(KEY, OWNER, chunk, now, 0)
}

fn audio<S: ViewerSink>(d: &Distributor<S>, chunk: AudioPublish, now: Instant) -> Delivery {
    try_audio(d, chunk, now).expect("owner publishes audio")
}

/// What a viewer got, in order: `V<seq>` for video, `A<seq>` for audio, `*` when it came with
/// `resync`, `+cfg` when it carries a config as the sink would send it.
fn log(v: &MediaSink) -> Vec<String> {
    v.received()
        .iter()
        .map(|r| {
            let track = match r.frame.track {
                Track::Video => 'V',
                Track::Audio => 'A',
            };
            let cfg = (r.frame.kind == FrameKind::Key || r.resync) && r.frame.config.is_some();
            format!(
                "{track}{}{}{}",
                r.frame.seq,
                if r.resync { "*" } else { "" },
                if cfg { "+cfg" } else { "" }
            )
        })
        .collect()
}

#[test]
fn audio_is_numbered_apart_and_reaches_every_viewer_beside_video() {
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    publish(&d, KEY, wc(ChunkKind::Key, 0, Some(config("vp8"))), t0);
    let first = audio(&d, opus(0, Some(opus_config())), t0 + ms(1));
    assert_eq!(
        (first.seq, first.track, first.reached),
        (1, Track::Audio, 1)
    );
    publish(&d, KEY, delta(33_333), t0 + ms(33));
    audio(&d, opus(20_000, None), t0 + ms(21));
    // The same config again is no change: not sent again.
    audio(&d, opus(40_000, Some(opus_config())), t0 + ms(41));

    assert_eq!(log(&v), ["V1+cfg", "A1*+cfg", "V2", "A2", "A3"]);
    let got = v.frames();
    let a = &got[1];
    assert_eq!(a.chunk.as_ref().map(|c| c.timestamp), Some(0.0));
    assert_eq!(a.chunk.as_ref().and_then(|c| c.duration), Some(20_000.0));
    assert_eq!(
        a.media,
        MediaMode::Webcodecs,
        "audio carries the stream's mode"
    );

    let st = stats(&d, KEY, t0 + secs(1));
    assert_eq!((st.frames_in, st.audio_frames_in), (2, 3));
    assert_eq!((st.frames_out, st.audio_frames_out), (2, 3));
    assert_eq!(st.audio_bytes_in, 2 + 6 + 6, "A0, A20000, A40000");
    assert_eq!(st.media, MediaMode::Webcodecs, "audio changes no mode");
}

#[test]
fn a_late_joiner_gets_the_latest_audio_not_the_gop_start() {
    let (d, t0) = open(roomy());
    publish(&d, KEY, wc(ChunkKind::Key, 0, Some(config("vp8"))), t0);
    audio(&d, opus(0, Some(opus_config())), t0);
    let n = streamhub_protocol::AUDIO_CATCHUP_CHUNKS as u32 + 15;
    for i in 1..n {
        audio(&d, opus(i * 20_000, None), t0 + ms(u64::from(i) * 20));
        if i % 3 == 0 {
            publish(&d, KEY, delta(i * 20_000), t0 + ms(u64::from(i) * 20));
        }
    }
    let v = MediaSink::unbounded();
    let admitted = join(&d, KEY, "late", &v, t0 + secs(1));
    // The video catch-up starts at the key frame; the audio one is the latest chunks only.
    assert_eq!(admitted.catch_up.first().map(|f| f.seq), Some(1));
    let seqs: Vec<u64> = admitted.audio_catch_up.iter().map(|f| f.seq).collect();
    let want: Vec<u64> = (u64::from(n) - streamhub_protocol::AUDIO_CATCHUP_CHUNKS as u64 + 1
        ..=u64::from(n))
        .collect();
    assert_eq!(seqs, want);
    // The ring keeps the config even though the chunk that brought it is long gone.
    assert!(admitted.audio_catch_up.iter().all(|f| f.config.is_some()));
    assert_eq!(
        stats(&d, KEY, t0 + secs(1)).audio_buffer_size,
        streamhub_protocol::AUDIO_CATCHUP_CHUNKS
    );

    // The first live chunk after the join goes with `resync` and the config again, so a
    // joiner whose audio catch-up did not fit still decodes.
    audio(&d, opus(n * 20_000, None), t0 + secs(1) + ms(20));
    audio(&d, opus((n + 1) * 20_000, None), t0 + secs(1) + ms(40));
    assert_eq!(log(&v), [format!("A{}*+cfg", n + 1), format!("A{}", n + 2)]);
}

#[test]
fn a_slow_viewer_keeps_its_audio_while_its_video_drops_to_keyframes() {
    let (d, t0) = open(roomy());
    publish(&d, KEY, wc(ChunkKind::Key, 0, Some(config("vp8"))), t0);
    audio(&d, opus(0, Some(opus_config())), t0);
    // Four video slots, and two more only audio may fill.
    let slow = MediaSink::with_reserve(6, 2);
    let fast = MediaSink::unbounded();
    join(&d, KEY, "slow", &slow, t0);
    join(&d, KEY, "fast", &fast, t0);

    // 30 fps video and 50 chunks/s audio for 4 s; the slow viewer reads only every 300 ms.
    let mut audio_ts = 20_000;
    let mut video_ts = 33_333;
    let (mut next_audio, mut next_video, mut next_read) = (ms(20), ms(33), ms(300));
    let end = secs(4);
    let mut t = ms(0);
    while t < end {
        t = next_audio.min(next_video).min(next_read);
        if t == next_read {
            slow.drain();
            next_read += ms(300);
        } else if t == next_audio {
            audio(&d, opus(audio_ts, None), t0 + t);
            audio_ts += 20_000;
            next_audio += ms(20);
        } else {
            let frame = if video_ts % (33_333 * 30) == 0 {
                key(video_ts)
            } else {
                delta(video_ts)
            };
            publish(&d, KEY, frame, t0 + t);
            video_ts += 33_333;
            next_video += ms(33);
        }
    }

    let st = stats(&d, KEY, t0 + end);
    assert_eq!(
        st.levels,
        [1, 1, 0],
        "the slow viewer dropped to key frames only"
    );
    assert!(st.dropped_slow_viewer > 0, "its video was dropped");
    let got = slow.frames();
    let audio_got = got.iter().filter(|f| f.track == Track::Audio).count();
    let video_got = got.iter().filter(|f| f.track == Track::Video).count();
    let audio_sent = fast
        .frames()
        .iter()
        .filter(|f| f.track == Track::Audio)
        .count();
    // Audio is offered at every chunk and fills the reserve between reads: two chunks per
    // 300 ms read at least, far more than the video gets.
    assert!(audio_got >= 2 * 13, "audio {audio_got} of {audio_sent}");
    assert!(
        audio_got > 2 * video_got,
        "audio {audio_got}, video {video_got}"
    );
    assert_eq!(
        st.audio_dropped_slow_viewer as usize,
        audio_sent - audio_got,
        "every audio chunk it missed is counted"
    );
    // Every audio chunk after a drop comes with `resync` and the config.
    let recs = slow.received();
    for pair in recs
        .iter()
        .filter(|r| r.frame.track == Track::Audio)
        .collect::<Vec<_>>()
        .windows(2)
    {
        if pair[1].frame.seq != pair[0].frame.seq + 1 {
            assert!(pair[1].resync, "chunk {} after a gap", pair[1].frame.seq);
        }
    }
    assert_eq!(
        st.evicted, 0,
        "a viewer that reads its audio is no stalled viewer"
    );
}

#[test]
fn audio_alone_does_not_change_a_viewers_level() {
    let (d, t0) = open(roomy());
    audio(&d, opus(0, Some(opus_config())), t0);
    let v = MediaSink::with_capacity(1);
    join(&d, KEY, "v", &v, t0);
    for i in 1..=20u32 {
        audio(&d, opus(i * 20_000, None), t0 + ms(u64::from(i) * 20));
    }
    let st = stats(&d, KEY, t0 + secs(1));
    assert_eq!(st.levels, [1, 0, 0]);
    assert_eq!(st.audio_dropped_slow_viewer, 19);
    assert_eq!(st.dropped_slow_viewer, 0, "audio drops are counted apart");
}

#[test]
fn a_stalled_viewer_is_still_evicted_when_not_even_audio_fits() {
    let (d, t0) = open(roomy());
    audio(&d, opus(0, Some(opus_config())), t0);
    let v = MediaSink::with_capacity(0);
    join(&d, KEY, "v", &v, t0);
    let stall = d.limits().stall_timeout;
    audio(&d, opus(20_000, None), t0 + ms(20));
    let last = audio(&d, opus(40_000, None), t0 + ms(20) + stall);
    assert_eq!(last.evicted, ["v"]);
}

#[test]
fn bad_audio_is_refused_and_the_stream_carries_on() {
    let (d, t0) = open(RelayLimits {
        max_fps: 1000,
        ..RelayLimits::default()
    });
    // No config yet.
    assert_eq!(
        try_audio(&d, opus(0, None), t0),
        Err(PublishError::BadMedia(MediaError::AudioWithoutConfig))
    );
    let big = AudioPublish {
        data: FrameData::Binary(Bytes::from(vec![
            0;
            streamhub_protocol::AUDIO_MAX_BYTES + 1
        ])),
        ..opus(0, Some(opus_config()))
    };
    let e = try_audio(&d, big, t0).expect_err("too large");
    assert_eq!(e.code(), ErrorCode::FrameTooLarge);
    assert_eq!(
        d.publish_audio(KEY, "someone-else", opus(0, Some(opus_config())), t0, 0),
        Err(PublishError::NotOwner(KEY.to_owned()))
    );
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    audio(&d, opus(0, Some(opus_config())), t0);
    publish(&d, KEY, JPEG_FRAME.clone(), t0);

    // Over the audio rate: a second's burst, then refused with its own error, video untouched.
    let per_sec = streamhub_protocol::AUDIO_MAX_CHUNKS_PER_SEC;
    let refused = (0..per_sec + 5)
        .filter(|i| try_audio(&d, opus(20_000 * (i + 1), None), t0 + ms(1)).is_err())
        .count();
    assert!(refused >= 5, "{refused} refused");
    let e = try_audio(&d, opus(0, None), t0 + ms(1)).expect_err("over the rate");
    assert!(matches!(e, PublishError::AudioRateLimited { max, .. } if max == per_sec));
    assert_eq!(e.code(), ErrorCode::RateLimited);
    publish(&d, KEY, JPEG_FRAME.clone(), t0 + ms(2));
    audio(&d, opus(9_000_000, None), t0 + secs(2));

    let st = stats(&d, KEY, t0 + secs(2));
    assert_eq!(st.audio_dropped_rate_limited as usize, refused + 1);
    assert_eq!(st.dropped_rate_limited, 0);
    assert_eq!(st.dropped_too_large, 1);
    assert_eq!(st.dropped_bad_media, 1);
    assert_eq!(st.frames_in, 2);
    assert!(v.frames().last().is_some_and(|f| f.track == Track::Audio));
}

#[test]
fn webm_streams_refuse_audio_chunks() {
    let (d, t0) = open(roomy());
    let f = vp8_opus();
    feed(&d, f.data, &f.chunks()[..2], false, t0);
    assert_eq!(stats(&d, KEY, t0).media, MediaMode::Webm);
    assert_eq!(
        try_audio(&d, opus(0, Some(opus_config())), t0),
        Err(PublishError::BadMedia(MediaError::AudioBesideWebm))
    );
}

#[test]
fn a_replica_relays_the_origins_audio_once_and_keeps_its_catch_up() {
    let t0 = origin();
    let d = relay(roomy());
    let info = StreamInfo {
        stream_key: KEY.to_owned(),
        title: "remote".to_owned(),
        streamer: UserRef {
            id: "u".to_owned(),
            username: "remote".to_owned(),
        },
        status: StreamStatus::Live,
        created_at: 1,
        started_at: Some(2),
        viewer_count: 0,
    };
    d.follow(&info, 5, t0).expect("follows");
    let chunk = |epoch: u64, seq: u64| Forwarded {
        epoch,
        seq,
        timestamp: 1_000 + seq,
        media: MediaMode::Webcodecs,
        track: Track::Audio,
        kind: FrameKind::Delta,
        init_len: None,
        data: FrameData::Binary(Bytes::from(format!("A{seq}"))),
        chunk: None,
        config: Some(Arc::new(opus_config())),
        capture_time: None,
    };
    // The catch-up read, before any viewer.
    for seq in 1..=3 {
        let delivery = d.ingest(KEY, chunk(5, seq), t0).expect("ingest");
        assert_eq!(delivery.track, Track::Audio);
    }
    let v = Sink::unbounded();
    let admitted = join(&d, KEY, "v", &v, t0);
    assert_eq!(
        admitted
            .audio_catch_up
            .iter()
            .map(|f| f.seq)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The live read overlaps the catch-up: 3 is skipped; an older epoch too.
    for (epoch, seq) in [(5, 3), (5, 4), (4, 9), (6, 1)] {
        d.ingest(KEY, chunk(epoch, seq), t0).expect("ingest");
    }
    assert_eq!(v.seqs(), [4, 1]);
}

static JPEG_FRAME: std::sync::LazyLock<Publish> = std::sync::LazyLock::new(|| binary(JPEG));

#[test]
fn beside_image_frames_audio_stays_out_of_the_pictures_numbering_ring_and_levels() {
    let (d, t0) = open(roomy());
    let v = MediaSink::with_reserve(4, 2);
    join(&d, KEY, "v", &v, t0);
    audio(&d, opus(0, Some(opus_config())), t0);
    // Pictures the viewer never drains: it drops to level 2 (every 4th picture).
    for i in 1..=30u32 {
        publish(&d, KEY, JPEG_FRAME.clone(), t0 + ms(u64::from(i) * 10));
        audio(&d, opus(i * 20_000, None), t0 + ms(u64::from(i) * 10 + 5));
        if i % 10 == 0 {
            v.drain();
        }
    }
    let st = stats(&d, KEY, t0 + secs(1));
    assert_eq!(st.media, MediaMode::Images);
    assert_eq!(st.levels, [0, 0, 1]);
    let pictures: Vec<u64> = v
        .frames()
        .iter()
        .filter(|f| f.track == Track::Video)
        .map(|f| f.seq)
        .collect();
    assert!(
        pictures.iter().all(|s| *s <= 30),
        "pictures numbered 1..=30: {pictures:?}"
    );
    let chunks = v
        .frames()
        .iter()
        .filter(|f| f.track == Track::Audio)
        .count();
    assert!(
        chunks > pictures.len(),
        "audio {chunks}, pictures {pictures:?}"
    );
    // A joiner's `stream:buffer` holds pictures only; the audio comes apart.
    let late = MediaSink::unbounded();
    let admitted = join(&d, KEY, "late", &late, t0 + secs(1));
    assert_eq!(admitted.catch_up.len(), 30);
    assert!(admitted.catch_up.iter().all(|f| f.track == Track::Video));
    assert_eq!(
        admitted.audio_catch_up.len(),
        streamhub_protocol::AUDIO_CATCHUP_CHUNKS
    );
}
