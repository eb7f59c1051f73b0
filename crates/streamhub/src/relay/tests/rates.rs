//! The stream's fps and bitrate, over a sliding window of made-up time.

use super::*;

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} ± {tolerance}"
    );
}

#[test]
fn fps_and_bitrate_over_one_second() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    // 20 frames of 1000 bytes, one every 50 ms, covering [t0, t0 + 1 s).
    for i in 0..20u64 {
        let data = FrameData::Binary(Bytes::from(vec![0u8; 1000]));
        publish(&d, "a", data, t0 + ms(50 * i));
    }
    let st = stats(&d, "a", t0 + secs(1));
    assert_close(st.fps, 20.0, 1.5, "fps");
    assert_close(st.bitrate_kbps, 160.0, 12.0, "bitrate");
    assert_eq!(st.frames_in, 20);
    assert_eq!(st.bytes_in, 20_000);

    // Five seconds of silence later, nothing is flowing.
    let st = stats(&d, "a", t0 + secs(6));
    assert_eq!(st.fps, 0.0);
    assert_eq!(st.bitrate_kbps, 0.0);
    assert_eq!(st.frames_in, 20, "totals stay");
}

#[test]
fn fps_is_zero_before_any_frame() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let st = stats(&d, "a", t0 + secs(1));
    assert_eq!(st.fps, 0.0);
    assert_eq!(st.bitrate_kbps, 0.0);
    assert_eq!(st.started_at, None);
}

#[test]
fn fps_tracks_a_steady_30fps_stream() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    // 30 fps for 10 s (frame period 33.333 ms), 500-byte frames.
    let period = Duration::from_nanos(1_000_000_000 / 30);
    let mut last = t0;
    for i in 0..300u32 {
        last = t0 + period * i;
        publish(
            &d,
            "a",
            FrameData::Binary(Bytes::from(vec![0u8; 500])),
            last,
        );
    }
    let st = stats(&d, "a", last + ms(16));
    assert_close(st.fps, 30.0, 1.5, "fps");
    assert_close(st.bitrate_kbps, 120.0, 6.0, "bitrate");
}

#[test]
fn fps_of_a_steady_1fps_stream_is_exact() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    for i in 0..10u64 {
        publish(
            &d,
            "a",
            FrameData::Binary(Bytes::from(vec![0u8; 1000])),
            t0 + secs(i),
        );
    }
    let st = stats(&d, "a", t0 + secs(9));
    assert_close(st.fps, 1.0, 0.1, "fps");
    assert_close(st.bitrate_kbps, 8.0, 0.8, "kbps");
}
