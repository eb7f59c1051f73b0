//! The result of a run: JSON for scripts, a table for people.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::stats::{LatencySummary, SecondSummary};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: Option<String>,
    pub url: String,
    /// `frames` or `idle`.
    pub mode: &'static str,
    /// `base64` or `binary`.
    pub encoding: &'static str,
    /// Where viewers read frames: `socket.io` (`stream:data`) or `media` (the media channel).
    pub transport: &'static str,
    pub fps: u32,
    /// Frame content bytes (before base64).
    pub frame_size: usize,
    /// `data` bytes on the wire per frame (base64 text length or binary length).
    pub wire_data_bytes: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub connect: ConnectReport,
    pub frames: Option<FramesReport>,
    pub delivery: Option<DeliveryReport>,
    /// End-to-end latency of measured frames (healthy viewers only).
    pub latency: Option<LatencySummary>,
    /// Latency per second of send time (seconds since the first frame, warm-up included).
    pub latency_timeline: Vec<SecondSummary>,
    pub stalled: Option<StalledReport>,
    pub slow: Option<SlowReport>,
    pub server: Option<ServerReport>,
    /// `--watch` processes (other cluster nodes, redis-server) over the measured window.
    pub watched: Vec<WatchedReport>,
    pub idle: Option<IdleReport>,
    pub bench: BenchReport,
    pub total_s: f64,
    /// Anything a reader should know about this run (timeouts, failures).
    pub notes: Vec<String>,
}

/// A process watched with `--watch`.
#[derive(Debug, Clone, Serialize)]
pub struct WatchedReport {
    pub name: String,
    pub pid: u32,
    pub cpu_cores: Option<f64>,
    /// At the end of the run.
    pub rss_kb: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    /// Healthy viewers asked for.
    pub viewers: usize,
    /// Stalled viewers asked for.
    pub stalled: usize,
    /// Slow viewers asked for.
    pub slow: usize,
    /// Viewers (healthy + stalled) that completed each step.
    pub connected: u64,
    pub registered: u64,
    pub joined: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    /// From the first connection attempt to the last `stream:joined`.
    pub phase_ms: f64,
    /// Per viewer: from its own connection attempt to its `stream:joined`.
    pub join_ms: Option<LatencySummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FramesReport {
    /// All frames the streamer sent.
    pub sent: u64,
    pub warmup: u64,
    /// Frames sent during the measurement window.
    pub measured: u64,
    /// Measured frames per second actually sent (the streamer skips ticks it cannot keep).
    pub send_fps: f64,
    pub window_s: f64,
    /// `error` events the streamer received (rate limits, refusals).
    pub streamer_errors: u64,
    /// The streamer stopped early (connection lost, or a send stayed blocked).
    pub streamer_problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    /// Viewers that joined and read (stalled ones excluded).
    pub healthy_viewers: u64,
    /// healthy viewers × measured frames.
    pub expected: u64,
    /// Measured frames received by healthy viewers before the drain ended.
    pub received: u64,
    pub fraction: Option<f64>,
    /// Healthy viewers that received every measured frame.
    pub viewers_complete: u64,
    /// Healthy viewers whose connection ended before the run did.
    pub viewers_lost: u64,
    pub lost_reasons: BTreeMap<String, u64>,
    /// Frames that arrived with a counter not above the previous one.
    pub out_of_order: u64,
    /// Seconds waited after the last frame for frames in flight.
    pub drain_s: f64,
}

/// Viewers that read at a fraction of the stream's rate (`--slow`).
#[derive(Debug, Clone, Serialize)]
pub struct SlowReport {
    pub viewers: usize,
    pub joined: u64,
    /// The share of the stream's frame rate they read at.
    pub read_fraction: f64,
    /// Frames of the window they got, over what the stream sent them all.
    pub received_fraction: Option<f64>,
    /// Slow viewers whose connection ended before the run did, and why.
    pub lost: u64,
    pub lost_reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StalledReport {
    pub joined: u64,
    /// Stalled connections the server closed during the run.
    pub evicted: u64,
    /// When each was seen closed, seconds after the first frame, sorted.
    pub evicted_at_s: Vec<f64>,
    /// Server RSS when the last one was seen closed, and at the end.
    pub rss_at_last_eviction_kb: Option<u64>,
    pub rss_end_kb: Option<u64>,
    /// How closures are seen.
    pub method: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub pid: u32,
    /// CPU cores used during the measurement window (idle mode: while settled).
    pub cpu_cores: Option<f64>,
    /// The same, per thread (name, cores), busiest first: shows whether the server's work
    /// spreads over its threads or queues behind one.
    pub threads: Vec<(String, f64)>,
    pub rss_start_kb: Option<u64>,
    /// Highest RSS seen (sampled every 500 ms, and the kernel's VmHWM).
    pub rss_peak_kb: Option<u64>,
    pub rss_end_kb: Option<u64>,
    /// (seconds since the run started, RSS KiB) every 500 ms.
    pub rss_timeline: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub viewers: u64,
    pub rss_before_kb: Option<u64>,
    pub rss_after_kb: Option<u64>,
    /// (after − before) / joined viewers, KiB.
    pub per_viewer_kb: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The load generator's own CPU cores over the measurement window.
    pub cpu_cores: Option<f64>,
    /// Busy cores of the whole machine over the same window (`/proc/stat`).
    pub machine_busy_cores: Option<f64>,
    /// Busy cores neither the server nor the load generator used: other work on the machine
    /// that competed with this run (needs `--server-pid`).
    pub other_cores: Option<f64>,
    pub peak_rss_kb: Option<u64>,
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "n/a".into())
}

fn mb(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1} MB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut o = String::new();
        let row = |o: &mut String, k: &str, v: String| {
            let _ = writeln!(o, "  {k:<24} {v}");
        };
        let _ = writeln!(
            o,
            "streamhub-bench {} — {} — {} viewers{} — {} fps × {} B ({} on the wire, {}, over {})",
            self.label.as_deref().unwrap_or(""),
            self.url,
            self.connect.viewers,
            if self.connect.stalled > 0 {
                format!(" + {} stalled", self.connect.stalled)
            } else {
                String::new()
            },
            self.fps,
            self.frame_size,
            self.wire_data_bytes,
            self.encoding,
            self.transport
        );
        let c = &self.connect;
        row(
            &mut o,
            "connected/registered/joined",
            format!(
                "{}/{}/{} of {} (failed {}{})",
                c.connected,
                c.registered,
                c.joined,
                c.viewers + c.stalled,
                c.failed,
                if c.failures.is_empty() {
                    String::new()
                } else {
                    format!(": {:?}", c.failures)
                }
            ),
        );
        row(&mut o, "connect phase", format!("{:.0} ms", c.phase_ms));
        if let Some(j) = &c.join_ms {
            row(
                &mut o,
                "join time p50/p99/max",
                format!("{:.1} / {:.1} / {:.1} ms", j.p50_ms, j.p99_ms, j.max_ms),
            );
        }
        if let Some(fr) = &self.frames {
            row(
                &mut o,
                "frames sent",
                format!(
                    "{} ({} warm-up, {} measured over {:.1} s = {:.1} fps)",
                    fr.sent, fr.warmup, fr.measured, fr.window_s, fr.send_fps
                ),
            );
            if fr.streamer_errors > 0 || fr.streamer_problem.is_some() {
                row(
                    &mut o,
                    "streamer",
                    format!(
                        "{} error events; {}",
                        fr.streamer_errors,
                        fr.streamer_problem.as_deref().unwrap_or("ok")
                    ),
                );
            }
        }
        if let Some(d) = &self.delivery {
            row(
                &mut o,
                "delivered",
                format!(
                    "{} ({} of {}; {} of {} viewers complete; {} lost; {} out of order{})",
                    d.fraction
                        .map(|x| format!("{:.3}%", x * 100.0))
                        .unwrap_or_else(|| "n/a".into()),
                    d.received,
                    d.expected,
                    d.viewers_complete,
                    d.healthy_viewers,
                    d.viewers_lost,
                    d.out_of_order,
                    if d.lost_reasons.is_empty() {
                        String::new()
                    } else {
                        format!(": {:?}", d.lost_reasons)
                    }
                ),
            );
        }
        if let Some(l) = &self.latency {
            row(
                &mut o,
                "latency p50/p90/p99/max",
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} ms ({} samples)",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
                ),
            );
        } else if self.mode == "frames" {
            row(&mut o, "latency", "no measured frame arrived".into());
        }
        if let Some(s) = &self.stalled {
            row(
                &mut o,
                "stalled evicted",
                format!(
                    "{} of {} joined{}",
                    s.evicted,
                    s.joined,
                    match (s.evicted_at_s.first(), s.evicted_at_s.last()) {
                        (Some(a), Some(b)) => format!(", first at {a:.1} s, last at {b:.1} s"),
                        _ => String::new(),
                    }
                ),
            );
            if s.evicted > 0 {
                row(
                    &mut o,
                    "server RSS evicted → end",
                    format!("{} → {}", mb(s.rss_at_last_eviction_kb), mb(s.rss_end_kb)),
                );
            }
        }
        if let Some(s) = &self.server {
            row(
                &mut o,
                "server CPU",
                format!(
                    "{}{}",
                    opt(s.cpu_cores.map(|c| format!("{c:.2} cores"))),
                    if s.threads.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (threads: {})",
                            s.threads
                                .iter()
                                .take(4)
                                .map(|(n, c)| format!("{n} {c:.2}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            );
            row(
                &mut o,
                "server RSS start/peak/end",
                format!(
                    "{} / {} / {}",
                    mb(s.rss_start_kb),
                    mb(s.rss_peak_kb),
                    mb(s.rss_end_kb)
                ),
            );
        }
        for w in &self.watched {
            row(
                &mut o,
                &format!("{} (pid {})", w.name, w.pid),
                format!(
                    "{}, {} RSS",
                    opt(w.cpu_cores.map(|c| format!("{c:.2} cores"))),
                    mb(w.rss_kb)
                ),
            );
        }
        if let Some(i) = &self.idle {
            row(
                &mut o,
                "RSS per idle viewer",
                format!(
                    "{} ({} → {}, {} viewers)",
                    opt(i.per_viewer_kb.map(|k| format!("{k:.1} KB"))),
                    mb(i.rss_before_kb),
                    mb(i.rss_after_kb),
                    i.viewers
                ),
            );
        }
        row(
            &mut o,
            "bench CPU / RSS",
            format!(
                "{} / {}",
                opt(self.bench.cpu_cores.map(|c| format!("{c:.2} cores"))),
                mb(self.bench.peak_rss_kb)
            ),
        );
        row(
            &mut o,
            "machine busy / others",
            format!(
                "{} / {}",
                opt(self
                    .bench
                    .machine_busy_cores
                    .map(|c| format!("{c:.2} cores"))),
                opt(self.bench.other_cores.map(|c| format!("{c:.2} cores")))
            ),
        );
        row(&mut o, "total", format!("{:.1} s", self.total_s));
        for n in &self.notes {
            let _ = writeln!(o, "  note: {n}");
        }
        f.write_str(&o)
    }
}
