//! Latency percentiles and the delivered fraction.
//!
//! Each viewer keeps its own samples as a plain `Vec<Sample>` (8 bytes per frame, a few KB per
//! viewer, no sharing on the hot path); they are merged into HdrHistograms at the end: one for
//! the whole window and one per second of send time (the timeline). A histogram per viewer
//! would cost ~180 KB each at 3 significant digits, too much for 10,000 viewers; a shared one
//! would put a lock on every received frame.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tracks: one hour, in µs (longer ones are clamped).
const MAX_US: u64 = 3_600_000_000;

/// End-to-end latencies of one run, in µs.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// 3 significant digits: 0.1% resolution, enough to tell 30.0 from 30.1 ms.
    pub fn new() -> Self {
        Self::with_digits(3)
    }

    /// Coarser (and smaller) histograms for the per-second timeline: 2 digits = 1%.
    pub fn with_digits(digits: u8) -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_US, digits)
            .expect("constant histogram bounds are valid");
        Latencies { hist }
    }

    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_US));
    }

    pub fn record_all(&mut self, us: &[u32]) {
        for &v in us {
            self.record_us(u64::from(v));
        }
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds by construction; a mismatch would only drop samples, never panic.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Percentiles in milliseconds; `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(LatencySummary {
            count: self.hist.len(),
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p90_ms: ms(self.hist.value_at_quantile(0.90)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            max_ms: ms(self.hist.max()),
            mean_ms: self.hist.mean() / 1000.0,
        })
    }
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// One received frame: its counter and its latency in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub seq: u32,
    pub latency_us: u32,
}

/// Latency of the frames *sent* during one second of the run (second 0 starts with frame 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SecondSummary {
    /// Seconds since the first frame, by the frame counter (`(seq - 1) / fps`).
    pub t_s: u64,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Builds the overall histogram (frames after `warmup` only) and the per-second timeline (all
/// frames) from every viewer's samples.
pub fn aggregate<'a>(
    samples: impl Iterator<Item = &'a [Sample]>,
    warmup: u64,
    fps: u32,
) -> (Latencies, Vec<SecondSummary>) {
    let mut all = Latencies::new();
    let mut seconds: Vec<Latencies> = Vec::new();
    let fps = u64::from(fps.max(1));
    for viewer in samples {
        for s in viewer {
            let seq = u64::from(s.seq);
            let us = u64::from(s.latency_us);
            if seq > warmup {
                all.record_us(us);
            }
            let t = (seq.saturating_sub(1) / fps) as usize;
            if t >= seconds.len() {
                seconds.resize_with(t + 1, || Latencies::with_digits(2));
            }
            seconds[t].record_us(us);
        }
    }
    let timeline = seconds
        .iter()
        .enumerate()
        .filter_map(|(t, l)| {
            l.summary().map(|s| SecondSummary {
                t_s: t as u64,
                count: s.count,
                p50_ms: s.p50_ms,
                p99_ms: s.p99_ms,
                max_ms: s.max_ms,
            })
        })
        .collect();
    (all, timeline)
}

/// received / (viewers × frames): the share of frames every healthy viewer should have got
/// that it did get. `None` when nothing was expected.
pub fn delivered_fraction(received: u64, viewers: u64, frames: u64) -> Option<f64> {
    let expected = viewers.checked_mul(frames)?;
    if expected == 0 {
        return None;
    }
    Some(received as f64 / expected as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= b.abs() * rel
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut l = Latencies::new();
        // 1..=1000 ms.
        let v: Vec<u32> = (1..=1000).map(|ms| ms * 1000).collect();
        l.record_all(&v);
        let s = l.summary().expect("recorded");
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_ms, 500.0, 0.002), "{s:?}");
        assert!(close(s.p90_ms, 900.0, 0.002), "{s:?}");
        assert!(close(s.p99_ms, 990.0, 0.002), "{s:?}");
        assert!(close(s.max_ms, 1000.0, 0.002), "{s:?}");
        assert!(close(s.mean_ms, 500.5, 0.002), "{s:?}");
    }

    #[test]
    fn tail_is_seen() {
        let mut l = Latencies::new();
        for _ in 0..980 {
            l.record_us(2_000);
        }
        for _ in 0..20 {
            l.record_us(250_000);
        }
        let s = l.summary().expect("recorded");
        assert!(close(s.p50_ms, 2.0, 0.002));
        assert!(close(s.p90_ms, 2.0, 0.002));
        assert!(
            close(s.p99_ms, 250.0, 0.002),
            "2% of samples at 250 ms: {s:?}"
        );
    }

    #[test]
    fn zero_and_huge_values_are_clamped() {
        let mut l = Latencies::new();
        l.record_us(0);
        l.record_us(u64::MAX);
        let s = l.summary().expect("recorded");
        assert_eq!(s.count, 2);
        assert!(s.max_ms >= 3_600_000.0 * 0.999);
    }

    #[test]
    fn empty_has_no_summary() {
        assert!(Latencies::new().summary().is_none());
    }

    #[test]
    fn aggregate_splits_warmup_and_seconds() {
        // 30 fps, warm-up = 30 frames: second 0 is warm-up, second 1 is measured.
        let a: Vec<Sample> = (1..=60)
            .map(|seq| Sample {
                seq,
                latency_us: if seq <= 30 { 100_000 } else { 5_000 },
            })
            .collect();
        let b: Vec<Sample> = vec![Sample {
            seq: 45,
            latency_us: 7_000,
        }];
        let (all, timeline) = aggregate([a.as_slice(), b.as_slice()].into_iter(), 30, 30);
        let s = all.summary().expect("measured frames");
        assert_eq!(s.count, 31, "30 measured frames + 1 from the second viewer");
        assert!(
            close(s.max_ms, 7.0, 0.01),
            "warm-up latencies left out: {s:?}"
        );
        assert_eq!(timeline.len(), 2);
        assert_eq!((timeline[0].t_s, timeline[0].count), (0, 30));
        assert!(close(timeline[0].p99_ms, 100.0, 0.01));
        assert_eq!((timeline[1].t_s, timeline[1].count), (1, 31));
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Latencies::new();
        a.record_us(1000);
        let mut b = Latencies::new();
        b.record_us(3000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
    }

    #[test]
    fn delivered() {
        assert_eq!(delivered_fraction(600, 20, 30), Some(1.0));
        assert_eq!(delivered_fraction(300, 20, 30), Some(0.5));
        assert_eq!(delivered_fraction(0, 0, 30), None);
        assert_eq!(delivered_fraction(0, 20, 0), None);
        assert_eq!(delivered_fraction(1, u64::MAX, 2), None);
        let f = delivered_fraction(2_997_000, 5000, 600).expect("some");
        assert!(close(f, 0.999, 1e-9));
    }
}
