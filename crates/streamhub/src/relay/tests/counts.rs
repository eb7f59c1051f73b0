//! The relay's counts: what each delivery reports is what the viewers got, and what the
//! stream counts.

use bytes::Bytes;

use super::*;

#[test]
fn delivery_counts_add_up_to_the_stream_stats() {
    let t0 = origin();
    let d = relay(roomy());
    register(&d, "a", OWNER, t0);
    let fast = Sink::unbounded();
    let slow = Sink::with_capacity(3);
    let gone = Sink::unbounded();
    let late = Sink::unbounded();
    join(&d, "a", "fast", &fast, t0);
    join(&d, "a", "slow", &slow, t0);
    join(&d, "a", "gone", &gone, t0);

    let (mut frames, mut bytes, mut dropped) = (0, 0, 0);
    for n in 1..=80u64 {
        match n {
            5 => gone.close(),
            10 => {
                join(&d, "a", "late", &late, t0 + ms(10 * n));
            }
            // `slow` catches up now and then.
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
    assert!(slow.refused() > 0, "the slow viewer refused frames");

    // What the deliveries said is what the viewers got and refused...
    let viewers = [&fast, &slow, &gone, &late];
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
