//! What a stream's frames are: images, WebM or WebCodecs, told from the frames themselves,
//! and what a switch from one to another does.

use super::*;

// ---------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------

#[test]
fn jpeg_binary_and_base64_are_images_and_pass_through_unchanged() {
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    let jpeg_b64 = B64.encode(JPEG);
    assert!(jpeg_b64.starts_with("/9j/"));

    publish(&d, KEY, binary(JPEG), t0);
    assert_eq!(stats(&d, KEY, t0).media, MediaMode::Images);
    publish(&d, KEY, FrameData::Text(jpeg_b64.clone()), t0 + ms(1));

    let got = v.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].frame.data,
        FrameData::Binary(Bytes::from_static(JPEG))
    );
    assert_eq!(got[1].frame.data, FrameData::Text(jpeg_b64));
    for r in &got {
        assert_eq!(r.key, KEY);
        assert_eq!(r.frame.media, MediaMode::Images);
        assert_eq!(r.frame.kind, FrameKind::Independent);
        assert!(!r.frame.init && !r.resync);
        assert_eq!(
            (r.frame.chunk.clone(), r.frame.config.clone()),
            (None, None)
        );
    }
    let st = stats(&d, KEY, t0 + ms(1));
    assert_eq!(st.media, MediaMode::Images);
    assert_eq!(st.buffer_size, 2, "images keep the catch-up ring");
    assert_eq!(st.gop_frames, 0);
}

#[test]
fn binary_starting_with_the_ebml_magic_is_webm() {
    let fx = vp8();
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    let first = fx.chunks()[0];
    assert_eq!(fx.data[..4], [0x1A, 0x45, 0xDF, 0xA3]);

    publish(&d, KEY, binary(&fx.data[..first]), t0);
    assert_eq!(stats(&d, KEY, t0).media, MediaMode::Webm);
    let got = v.received();
    assert!(!got.is_empty());
    assert!(got.iter().all(|r| r.frame.media == MediaMode::Webm));
    assert!(
        got[0].frame.init,
        "the first WebM frame carries the init segment"
    );
    assert!(got[0].frame.data.is_binary());
    assert_eq!(
        stats(&d, KEY, t0).buffer_size,
        0,
        "no images ring in WebM mode"
    );
}

#[test]
fn base64_text_webm_is_parsed_and_relayed_as_base64_text() {
    for fx in fixtures() {
        let (d, t0) = open(roomy());
        let v = MediaSink::unbounded();
        join(&d, KEY, "v", &v, t0);
        let first = B64.encode(&fx.data[..fx.chunks()[0]]);
        assert!(first.starts_with("GkXf"), "{}", fx.name);

        feed(&d, fx.data, &fx.chunks(), true, t0);

        let frames = v.frames();
        assert_eq!(stats(&d, KEY, t0).media, MediaMode::Webm, "{}", fx.name);
        assert!(
            frames.iter().all(|f| matches!(f.data, FrameData::Text(_))),
            "{}: viewers get the type the streamer sent",
            fx.name
        );
        assert!(frames.iter().all(|f| f.media == MediaMode::Webm));
        assert_eq!(concat(&frames), fx.relayed(), "{}: decoded bytes", fx.name);
        // Parsed, not passed through: re-cut at keyframe Clusters.
        let keys = frames.iter().filter(|f| f.kind == FrameKind::Key).count();
        assert_eq!(keys, fx.keyframes().len(), "{}", fx.name);
        assert_eq!(frames.iter().filter(|f| f.init).count(), 1, "{}", fx.name);
    }
}

#[test]
fn chunk_info_makes_webcodecs_with_key_and_delta_kinds() {
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);

    // Even bytes that look like WebM or JPEG: the chunk label decides.
    let mut k = wc(ChunkKind::Key, 0, Some(config("vp8")));
    k.data = FrameData::Binary(Bytes::from_static(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]));
    publish(&d, KEY, k, t0);
    assert_eq!(stats(&d, KEY, t0).media, MediaMode::Webcodecs);
    let mut dl = delta(33_333);
    dl.data = FrameData::Binary(Bytes::from_static(JPEG));
    publish(&d, KEY, dl, t0 + ms(1));

    let got = v.received();
    assert_eq!(got.len(), 2);
    let (k, dl) = (&got[0].frame, &got[1].frame);
    assert_eq!(k.media, MediaMode::Webcodecs);
    assert_eq!(k.kind, FrameKind::Key);
    assert_eq!(raw(&k.data), [0x1A, 0x45, 0xDF, 0xA3, 0x9F], "not re-cut");
    assert!(!k.init);
    assert_eq!(k.chunk.as_ref().map(|c| c.kind), Some(ChunkKind::Key));
    assert_eq!(k.config.as_deref(), Some(&config("vp8")));
    assert_eq!(dl.media, MediaMode::Webcodecs);
    assert_eq!(dl.kind, FrameKind::Delta);
    assert_eq!(raw(&dl.data), JPEG);
    assert_eq!(
        dl.chunk,
        Some(ChunkInfo {
            kind: ChunkKind::Delta,
            timestamp: 33_333.0,
            duration: Some(33_333.0)
        })
    );
    assert_eq!(dl.config, None, "config rides on key chunks only");
    assert_eq!(stats(&d, KEY, t0).gop_frames, 2);
}

#[test]
fn recorded_vp8_opus_chunks_with_a_one_byte_head_are_webm() {
    let fx = vp8_opus();
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    feed(&d, fx.data, &fx.one_byte_head(), false, t0); // first chunk: the single byte 0x1A
    assert_eq!(stats(&d, KEY, t0).media, MediaMode::Webm);
    assert!(v.frames().iter().all(|f| f.media == MediaMode::Webm));
}

#[test]
fn ebml_magic_inside_a_chunk_is_payload_not_a_restart() {
    let fx = vp8();
    // Overwrite 4 payload bytes well inside a SimpleBlock of the first Cluster with the EBML
    // magic and cut a chunk there: the bytes are still a well-formed WebM stream.
    let mut data = fx.data.to_vec();
    let at = 1000;
    data[at..at + 4].copy_from_slice(&[0x1A, 0x45, 0xDF, 0xA3]);
    let (d, t0) = open(roomy());
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    // The magic sits one byte into a chunk: only a chunk that starts with it is a restart
    // (see starts_webm; a chunk starting with payload equal to the magic has a 2^-32 chance).
    publish(&d, KEY, binary(&data[..at - 1]), t0);
    let mut results = Vec::new();
    let mut prev = at - 1;
    for (i, e) in ends(&fx.recorded).into_iter().enumerate() {
        if e > prev {
            results.push(
                try_publish(&d, KEY, binary(&data[prev..e]), t0 + ms(i as u64 + 1)).map(|_| ()),
            );
            prev = e;
        }
    }
    let errs = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        errs,
        0,
        "first error: {:?}",
        results.iter().find(|r| r.is_err())
    );
    assert!(v.bytes() == data);
}

// ---------------------------------------------------------------------------------------------
// Switches
// ---------------------------------------------------------------------------------------------

#[test]
fn images_stream_switching_to_webcodecs_clears_the_ring() {
    let (d, t0) = open(roomy());
    for i in 0..5 {
        publish(&d, KEY, binary(JPEG), t0 + ms(i));
    }
    let st = stats(&d, KEY, t0);
    assert_eq!((st.media, st.buffer_size), (MediaMode::Images, 5));
    let j = join(&d, KEY, "before", &MediaSink::unbounded(), t0);
    assert_eq!((j.media, j.catch_up.len()), (MediaMode::Images, 5));

    publish(
        &d,
        KEY,
        wc(ChunkKind::Key, 6, Some(config("vp8"))),
        t0 + ms(6),
    );
    let st = stats(&d, KEY, t0 + ms(6));
    assert_eq!(st.media, MediaMode::Webcodecs);
    assert_eq!(st.buffer_size, 0, "the images ring is gone");
    assert_eq!(st.gop_frames, 1);
    let v = MediaSink::unbounded();
    let j = join(&d, KEY, "after", &v, t0);
    assert_eq!(j.media, MediaMode::Webcodecs);
    assert_eq!(j.catch_up.iter().map(|f| f.seq).collect::<Vec<_>>(), [6]);
    publish(&d, KEY, delta(7), t0 + ms(7));
    assert_eq!(v.seqs(), [7]);
}

#[test]
fn images_stream_switching_to_webm_clears_the_ring() {
    let fx = vp8();
    let (d, t0) = open(roomy());
    for i in 0..3 {
        publish(&d, KEY, binary(JPEG), t0 + ms(i));
    }
    assert_eq!(stats(&d, KEY, t0).buffer_size, 3);
    let v = MediaSink::unbounded();
    join(&d, KEY, "v", &v, t0);
    feed(&d, fx.data, &fx.chunks(), false, t0 + ms(10));
    let st = stats(&d, KEY, t0 + secs(1));
    assert_eq!(st.media, MediaMode::Webm);
    assert_eq!(st.buffer_size, 0);
    assert_eq!(v.bytes(), fx.data);
    assert_eq!(v.seqs()[0], 4, "seq keeps counting across the switch");
}

#[test]
fn a_viewer_waiting_for_a_key_is_not_stranded_by_a_switch_to_images() {
    let (d, t0) = open(roomy());
    publish(&d, KEY, delta(1), t0); // webcodecs, no key yet
    let v = MediaSink::unbounded();
    let j = join(&d, KEY, "v", &v, t0);
    assert!(j.catch_up.is_empty());
    for i in 0..5 {
        publish(&d, KEY, binary(JPEG), t0 + ms(10 + i)); // streamer falls back to JPEG
    }
    assert_eq!(stats(&d, KEY, t0).media, MediaMode::Images);
    assert_eq!(v.seqs(), [2, 3, 4, 5, 6]);
}
