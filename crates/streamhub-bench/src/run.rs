//! One run: streamer, viewers, measurement, report.
//!
//! ```text
//! streamer (own thread)  register STREAMER → stream:created → stream:start → ready ──┐
//! viewers (tokio tasks)  ramped connects: open → user:register → stream:join ────────┤ connect phase
//! streamer               frames 1..W (warm-up) │ W+1..N (measured window) │ stop    ─┤ frames
//! viewers                count + latency of frames > W                 │ drain    ─┤
//! orchestrator           /proc snapshots at window start/end, RSS every 500 ms, stalled-socket watch
//! ```

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::ws::Msg;
use serde_json::json;
use streamhub_protocol::client::Role;
use streamhub_protocol::events;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::client::{self, Client, Target, client_tls};
use crate::eio::{self, Packet};
use crate::error::ProtocolError;
use crate::procfs::{self, Memory, Pid};
use crate::report::*;
use crate::stamp::{FrameTemplate, OutFrame, Stamp, now_us};
use crate::stats::{self, Latencies, Sample, delivered_fraction};

/// How long to wait for the streamer's replies.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Streamer = 0,
    Connect,
    Settle,
    Warmup,
    Measure,
    Drain,
    Done,
}

impl Phase {
    fn name(v: u8) -> &'static str {
        match v {
            0 => "streamer",
            1 => "connect",
            2 => "settle",
            3 => "warm-up",
            4 => "measure",
            5 => "drain",
            _ => "done",
        }
    }
}

/// State every task shares.
#[derive(Debug)]
struct Shared {
    target: Target,
    /// Where viewers connect (`--viewer-url`, in turn); empty: `target`.
    viewer_targets: Vec<Target>,
    stream_key: Mutex<String>,
    warmup_frames: u64,
    /// Ends every task.
    stop: CancellationToken,
    phase: AtomicU8,
    connected: AtomicU64,
    registered: AtomicU64,
    joined: AtomicU64,
    failed: AtomicU64,
    /// Measured frames received by healthy viewers.
    measured: AtomicU64,
    /// Slow viewers that joined (they read on, but are not expected to get every frame).
    slow_joined: AtomicU64,
    /// Frames the streamer has sent.
    sent: AtomicU64,
    /// Healthy viewers still reading.
    lost: AtomicU64,
    /// Client ports of stalled viewers that joined.
    stalled_ports: Mutex<Vec<u16>>,
    /// Viewers record latencies only once the run is collecting (not in idle mode).
    collect: AtomicBool,
    latency_capacity: usize,
    /// Viewers read frames from the media channel (`--media`).
    media: bool,
    /// Frames are binary (else base64 text).
    binary: bool,
}

impl Shared {
    fn key(&self) -> String {
        self.stream_key
            .lock()
            .map(|k| k.clone())
            .unwrap_or_default()
    }
}

/// What one viewer saw.
#[derive(Debug, Default)]
struct ViewerOutcome {
    stalled: bool,
    slow: bool,
    joined_after: Option<Duration>,
    failure: Option<&'static str>,
    measured: u64,
    out_of_order: u64,
    /// Every stamped frame received (warm-up included), for the histograms.
    samples: Vec<Sample>,
    /// Why the connection ended before the run did.
    lost: Option<&'static str>,
}

/// Runs the load described by `args` and returns the report.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    args.check()?;
    let tls = args.tls_ca.as_deref().map(client_tls).transpose()?;
    let target = Target::parse_with(&args.url, tls.clone())?;
    let viewer_targets = args
        .viewer_urls
        .iter()
        .map(|u| Target::parse_with(u, tls.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let run_start = Instant::now();
    let server = args.server_pid.map(Pid::Other);
    let total_viewers = args.viewers + args.slow + args.stalled;
    let shared = Arc::new(Shared {
        target,
        viewer_targets,
        stream_key: Mutex::new(String::new()),
        warmup_frames: args.warmup_frames(),
        stop: CancellationToken::new(),
        phase: AtomicU8::new(Phase::Streamer as u8),
        connected: AtomicU64::new(0),
        registered: AtomicU64::new(0),
        joined: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        slow_joined: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        stalled_ports: Mutex::new(Vec::new()),
        collect: AtomicBool::new(!args.idle),
        latency_capacity: if args.idle {
            0
        } else {
            ((args.warmup + args.duration + 1.0) * f64::from(args.fps)) as usize
        },
        media: args.media,
        binary: args.binary,
    });
    let mut notes = Vec::new();

    // Server memory every 500 ms, for the whole run.
    let timeline: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let sampler = server.map(|pid| {
        let timeline = Arc::clone(&timeline);
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = iv.tick() => {}
                }
                if let Some(m) = procfs::memory(pid)
                    && let Ok(mut t) = timeline.lock()
                {
                    t.push((run_start.elapsed().as_secs_f64(), m.rss_kb));
                }
            }
        })
    });
    let progress = (!args.quiet)
        .then(|| tokio::spawn(progress(Arc::clone(&shared), total_viewers, run_start)));

    // 1. The streamer, on its own thread so its frame clock does not queue behind viewers.
    let (ready_tx, ready_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (win_tx, mut win_rx) = mpsc::unbounded_channel();
    let streamer = {
        let shared = Arc::clone(&shared);
        let args = args.clone();
        std::thread::Builder::new()
            .name("streamer".into())
            .spawn(move || -> StreamerOutcome {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        return StreamerOutcome {
                            problem: Some(format!("runtime: {e}")),
                            ..Default::default()
                        };
                    }
                };
                rt.block_on(streamer(shared, args, ready_tx, go_rx, win_tx))
            })?
    };
    let key = match tokio::time::timeout(REPLY_TIMEOUT * 2, ready_rx).await {
        Ok(Ok(Ok(key))) => key,
        Ok(Ok(Err(e))) => {
            shared.stop.cancel();
            anyhow::bail!("streamer setup failed: {e}");
        }
        _ => {
            shared.stop.cancel();
            anyhow::bail!("streamer setup did not finish");
        }
    };
    if let Ok(mut k) = shared.stream_key.lock() {
        *k = key;
    }
    if args.idle {
        // Let the server settle after the streamer's setup before the baseline.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss_start = server.and_then(procfs::memory).map(|m| m.rss_kb);

    // 2. Connect phase: healthy viewers, then slow ones, then stalled ones, `ramp` per second.
    shared.phase.store(Phase::Connect as u8, Relaxed);
    let connect_start = Instant::now();
    let connect_timeout = Duration::from_secs_f64(args.connect_timeout);
    let mut viewers = Vec::with_capacity(total_viewers);
    for i in 0..total_viewers {
        let delay = if args.ramp > 0.0 {
            Duration::from_secs_f64(i as f64 / args.ramp)
        } else {
            Duration::ZERO
        };
        let kind = if i < args.viewers {
            Kind::Healthy
        } else if i < args.viewers + args.slow {
            // Each pauses after a frame for as long as `1/fraction` frames last.
            Kind::Slow(Duration::from_secs_f64(
                1.0 / (f64::from(args.fps) * args.slow_fraction),
            ))
        } else {
            Kind::Stalled
        };
        viewers.push(tokio::spawn(viewer(
            Arc::clone(&shared),
            i,
            kind,
            connect_start + delay,
            connect_timeout,
        )));
    }
    let ramp_time = if args.ramp > 0.0 {
        total_viewers as f64 / args.ramp
    } else {
        0.0
    };
    let connect_deadline = connect_start
        + Duration::from_secs_f64(ramp_time)
        + connect_timeout
        + Duration::from_secs(1);
    loop {
        let done = shared.joined.load(Relaxed) + shared.failed.load(Relaxed);
        if done >= total_viewers as u64 || Instant::now() > connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joined_now = shared.joined.load(Relaxed);
    if joined_now + shared.failed.load(Relaxed) < total_viewers as u64 {
        notes.push(format!(
            "connect phase hit its deadline with {} of {} viewers joined",
            joined_now, total_viewers
        ));
    }

    let mut window = None;
    let mut watched = Vec::new();
    let mut idle_report = None;
    let mut cpu_window = (None, None, None);
    let mut thread_window = Vec::new();
    let threads = || server.map(procfs::thread_ticks).unwrap_or_default();
    let mut drain_s = 0.0;
    let frames_start = Instant::now();
    let mut watcher = None;
    if args.idle {
        shared.phase.store(Phase::Settle as u8, Relaxed);
        let t0 = Instant::now();
        let (s0, b0, m0) = (
            server.and_then(procfs::cpu_ticks),
            procfs::cpu_ticks(Pid::Me),
            procfs::machine_busy_ticks(),
        );
        let th0 = threads();
        tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
        let secs = t0.elapsed().as_secs_f64();
        thread_window = procfs::thread_cores(&th0, &threads(), secs);
        cpu_window = (
            procfs::cores(s0, server.and_then(procfs::cpu_ticks), secs),
            procfs::cores(b0, procfs::cpu_ticks(Pid::Me), secs),
            procfs::cores(m0, procfs::machine_busy_ticks(), secs),
        );
        let after = server.and_then(procfs::memory).map(|m| m.rss_kb);
        let joined = shared.joined.load(Relaxed);
        idle_report = Some(IdleReport {
            viewers: joined,
            rss_before_kb: rss_start,
            rss_after_kb: after,
            per_viewer_kb: match (rss_start, after) {
                (Some(b), Some(a)) if joined > 0 => Some((a as f64 - b as f64) / joined as f64),
                _ => None,
            },
        });
        let _ = go_tx.send(());
    } else {
        // 3. Frames: warm-up, then the measured window.
        shared.phase.store(Phase::Warmup as u8, Relaxed);
        if args.stalled > 0 {
            watcher = Some(tokio::spawn(watch_stalled(
                Arc::clone(&shared),
                frames_start,
                Arc::clone(&timeline),
                run_start,
            )));
        }
        let _ = go_tx.send(());
        let patience =
            Duration::from_secs_f64(args.warmup + args.duration) + Duration::from_secs(30);
        let mut start = None;
        let mut end = None;
        let mut th0 = Vec::new();
        let (mut watch0, mut watch1) = (Vec::new(), Vec::new());
        let deadline = tokio::time::Instant::now() + patience;
        while end.is_none() {
            match tokio::time::timeout_at(deadline, win_rx.recv()).await {
                Ok(Some(Window::Start)) => {
                    shared.phase.store(Phase::Measure as u8, Relaxed);
                    th0 = threads();
                    watch0 = watched_ticks(&args.watch);
                    start = Some((
                        Instant::now(),
                        server.and_then(procfs::cpu_ticks),
                        procfs::cpu_ticks(Pid::Me),
                        procfs::machine_busy_ticks(),
                    ));
                }
                Ok(Some(Window::End { measured })) => {
                    watch1 = watched_ticks(&args.watch);
                    end = Some((
                        Instant::now(),
                        server.and_then(procfs::cpu_ticks),
                        procfs::cpu_ticks(Pid::Me),
                        procfs::machine_busy_ticks(),
                        measured,
                    ));
                }
                Ok(None) => break,
                Err(_) => {
                    notes.push("the streamer did not finish in time; stopped it".into());
                    break;
                }
            }
        }
        let end = end.or_else(|| {
            start.map(|_| {
                (
                    Instant::now(),
                    server.and_then(procfs::cpu_ticks),
                    procfs::cpu_ticks(Pid::Me),
                    procfs::machine_busy_ticks(),
                    shared
                        .sent
                        .load(Relaxed)
                        .saturating_sub(shared.warmup_frames),
                )
            })
        });
        if let (Some((t0, s0, b0, m0)), Some((t1, s1, b1, m1, measured))) = (start, end) {
            let secs = (t1 - t0).as_secs_f64();
            // Threads read a moment after the other end readings: close enough at this scale.
            thread_window = procfs::thread_cores(&th0, &threads(), secs);
            cpu_window = (
                procfs::cores(s0, s1, secs),
                procfs::cores(b0, b1, secs),
                procfs::cores(m0, m1, secs),
            );
            window = Some((secs, measured));
            watched = args
                .watch
                .iter()
                .zip(watch0.iter().zip(&watch1))
                .map(|((name, pid), (a, b))| WatchedReport {
                    name: name.clone(),
                    pid: *pid,
                    cpu_cores: procfs::cores(*a, *b, secs),
                    rss_kb: procfs::memory(Pid::Other(*pid)).map(|m| m.rss_kb),
                })
                .collect();
        } else {
            notes.push("the warm-up never ended: no measured window".into());
        }
        // 4. Drain: frames still in flight count until every one arrived, or `drain` s.
        shared.phase.store(Phase::Drain as u8, Relaxed);
        let healthy = shared.joined.load(Relaxed).saturating_sub(
            shared
                .stalled_ports
                .lock()
                .map(|p| p.len() as u64)
                .unwrap_or(0)
                + shared.slow_joined.load(Relaxed),
        );
        let expected = healthy * window.map(|w| w.1).unwrap_or(0);
        let t = Instant::now();
        let drain_max = Duration::from_secs_f64(args.drain);
        while t.elapsed() < drain_max && shared.measured.load(Relaxed) < expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drain_s = t.elapsed().as_secs_f64();
    }
    shared.phase.store(Phase::Done as u8, Relaxed);
    let rss_end = server.and_then(procfs::memory);
    shared.stop.cancel();

    // 5. Collect.
    let mut outcomes = Vec::with_capacity(viewers.len());
    let collect_deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for v in viewers {
        match tokio::time::timeout_at(collect_deadline, v).await {
            Ok(Ok(o)) => outcomes.push(o),
            Ok(Err(e)) => notes.push(format!("a viewer task failed: {e}")),
            Err(_) => {
                notes.push("viewer tasks did not stop in time".into());
                break;
            }
        }
    }
    let streamer_out = tokio::task::spawn_blocking(move || streamer.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| StreamerOutcome {
            problem: Some("streamer thread panicked".into()),
            ..Default::default()
        });
    let stalled_report = match watcher {
        Some(w) => w.await.ok(),
        None => None,
    };
    if let Some(s) = sampler {
        let _ = s.await;
    }
    if let Some(p) = progress {
        let _ = p.await;
    }

    Ok(build_report(
        &args,
        &shared,
        outcomes,
        streamer_out,
        Measured {
            window,
            cpu_window,
            watched,
            thread_window,
            drain_s,
            rss_start,
            rss_end,
            timeline: timeline.lock().map(|t| t.clone()).unwrap_or_default(),
            stalled: stalled_report,
            idle: idle_report,
            total_s: run_start.elapsed().as_secs_f64(),
        },
        notes,
    ))
}

/// Readings taken by the orchestrator.
struct Measured {
    /// (seconds, measured frames) of the window.
    window: Option<(f64, u64)>,
    /// (server, bench, whole machine busy) cores over the window.
    cpu_window: (Option<f64>, Option<f64>, Option<f64>),
    /// `--watch` processes over the measured window.
    watched: Vec<WatchedReport>,
    /// Server cores per thread over the window.
    thread_window: Vec<(String, f64)>,
    drain_s: f64,
    rss_start: Option<u64>,
    rss_end: Option<Memory>,
    timeline: Vec<(f64, u64)>,
    stalled: Option<StalledReport>,
    idle: Option<IdleReport>,
    total_s: f64,
}

fn build_report(
    args: &Args,
    shared: &Shared,
    outcomes: Vec<ViewerOutcome>,
    streamer: StreamerOutcome,
    m: Measured,
    mut notes: Vec<String>,
) -> Report {
    let mut failures = BTreeMap::new();
    let mut join = Latencies::new();
    let mut lost_reasons = BTreeMap::new();
    let (mut healthy, mut received, mut complete, mut lost, mut ooo) = (0u64, 0u64, 0, 0, 0);
    let measured_frames = m.window.map(|w| w.1).unwrap_or(0);
    for o in &outcomes {
        if let Some(f) = o.failure {
            *failures.entry(f.to_owned()).or_insert(0) += 1;
        }
        if let Some(j) = o.joined_after {
            join.record_us(j.as_micros() as u64);
        }
        if o.stalled || o.slow || o.joined_after.is_none() {
            continue;
        }
        healthy += 1;
        received += o.measured;
        ooo += o.out_of_order;
        if measured_frames > 0 && o.measured >= measured_frames {
            complete += 1;
        }
        if let Some(r) = o.lost {
            lost += 1;
            *lost_reasons.entry(r.to_owned()).or_insert(0) += 1;
        }
    }
    let (lat, timeline) = stats::aggregate(
        outcomes
            .iter()
            .filter(|o| !o.stalled && !o.slow && o.joined_after.is_some())
            .map(|o| o.samples.as_slice()),
        shared.warmup_frames,
        args.fps,
    );
    // Connect phase: from the first attempt to the last join (per-viewer times are measured
    // from each viewer's own start, so add its ramp offset back).
    let phase_ms = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let offset = if args.ramp > 0.0 {
                i as f64 / args.ramp
            } else {
                0.0
            };
            o.joined_after
                .map(|j| j.as_secs_f64() * 1000.0 + offset * 1000.0)
        })
        .fold(0.0, f64::max);

    if let Some(p) = &streamer.problem {
        notes.push(format!("streamer: {p}"));
    }
    let frames = (!args.idle).then(|| {
        let (window_s, measured) = m.window.unwrap_or((0.0, 0));
        FramesReport {
            sent: streamer.sent,
            warmup: streamer.sent.min(shared.warmup_frames),
            measured,
            send_fps: if window_s > 0.0 {
                measured as f64 / window_s
            } else {
                0.0
            },
            window_s,
            streamer_errors: streamer.errors,
            streamer_problem: streamer.problem.clone(),
        }
    });
    let delivery = (!args.idle).then(|| DeliveryReport {
        healthy_viewers: healthy,
        expected: healthy * measured_frames,
        received,
        fraction: delivered_fraction(received, healthy, measured_frames),
        viewers_complete: complete,
        viewers_lost: lost,
        lost_reasons,
        out_of_order: ooo,
        drain_s: m.drain_s,
    });
    let peak = m
        .timeline
        .iter()
        .map(|s| s.1)
        .chain(m.rss_end.map(|r| r.hwm_kb))
        .max();
    let server = args.server_pid.map(|pid| ServerReport {
        pid,
        cpu_cores: m.cpu_window.0,
        threads: m.thread_window.clone(),
        rss_start_kb: m.rss_start,
        rss_peak_kb: peak,
        rss_end_kb: m.rss_end.map(|r| r.rss_kb),
        rss_timeline: m.timeline.clone(),
    });
    let slow = (args.slow > 0).then(|| {
        let slow: Vec<&ViewerOutcome> = outcomes
            .iter()
            .filter(|o| o.slow && o.joined_after.is_some())
            .collect();
        let mut lost_reasons = BTreeMap::new();
        for r in slow.iter().filter_map(|o| o.lost) {
            *lost_reasons.entry(r.to_owned()).or_insert(0) += 1;
        }
        let got: u64 = slow.iter().map(|o| o.measured).sum();
        SlowReport {
            viewers: args.slow,
            joined: slow.len() as u64,
            read_fraction: args.slow_fraction,
            received_fraction: (measured_frames > 0 && !slow.is_empty())
                .then(|| got as f64 / (measured_frames * slow.len() as u64) as f64),
            lost: slow.iter().filter(|o| o.lost.is_some()).count() as u64,
            lost_reasons,
        }
    });
    let stalled = m.stalled.map(|mut s| {
        s.rss_end_kb = m.rss_end.map(|r| r.rss_kb);
        s
    });
    Report {
        watched: m.watched.clone(),
        label: args.label.clone(),
        url: args.url.clone(),
        mode: if args.idle { "idle" } else { "frames" },
        encoding: if args.binary { "binary" } else { "base64" },
        transport: if args.media { "media" } else { "socket.io" },
        fps: args.fps,
        frame_size: args.frame_size,
        wire_data_bytes: FrameTemplate::new("k", args.frame_size, args.binary).wire_data_len(),
        warmup_s: args.warmup,
        duration_s: args.duration,
        connect: ConnectReport {
            viewers: args.viewers,
            stalled: args.stalled,
            slow: args.slow,
            connected: shared.connected.load(Relaxed),
            registered: shared.registered.load(Relaxed),
            joined: shared.joined.load(Relaxed),
            failed: shared.failed.load(Relaxed),
            failures,
            phase_ms,
            join_ms: join.summary(),
        },
        frames,
        delivery,
        latency: lat.summary(),
        latency_timeline: timeline,
        stalled,
        slow,
        server,
        idle: m.idle,
        bench: BenchReport {
            cpu_cores: m.cpu_window.1,
            machine_busy_cores: m.cpu_window.2,
            other_cores: match m.cpu_window {
                (Some(s), Some(b), Some(all)) => Some((all - s - b).max(0.0)),
                _ => None,
            },
            peak_rss_kb: procfs::memory(Pid::Me).map(|m| m.hwm_kb),
        },
        total_s: m.total_s,
        notes,
    }
}

/// How a viewer reads.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Every frame, as fast as it can.
    Healthy,
    /// Pauses this long after each frame.
    Slow(Duration),
    /// Never reads again once joined.
    Stalled,
}

/// A viewer: connect, register, join, then read frames as its `kind` says until told to stop.
async fn viewer(
    shared: Arc<Shared>,
    index: usize,
    kind: Kind,
    start_at: Instant,
    timeout: Duration,
) -> ViewerOutcome {
    let stalled = matches!(kind, Kind::Stalled);
    let pause = match kind {
        Kind::Slow(p) => Some(p),
        _ => None,
    };
    let mut out = ViewerOutcome {
        stalled,
        slow: pause.is_some(),
        ..Default::default()
    };
    tokio::select! {
        _ = shared.stop.cancelled() => return out,
        _ = tokio::time::sleep_until(start_at.into()) => {}
    }
    let began = Instant::now();
    let setup = async {
        let target = match shared.viewer_targets.len() {
            0 => &shared.target,
            n => &shared.viewer_targets[index % n],
        };
        let mut c = Client::connect_within(target, timeout).await?;
        shared.connected.fetch_add(1, Relaxed);
        let name = format!(
            "{}{index}",
            match kind {
                Kind::Healthy => "v",
                Kind::Slow(_) => "slow",
                Kind::Stalled => "stall",
            }
        );
        c.register(&name, Role::Viewer).await?;
        shared.registered.fetch_add(1, Relaxed);
        // The media channel must be open before the join for the join's frames to use it.
        let media = if shared.media {
            Some(c.open_media().await?)
        } else {
            None
        };
        // Joined when `stream:joined` arrives (the ack would come after any catch-up).
        c.emit(events::STREAM_JOIN, &json!({"streamKey": shared.key()}))
            .await?;
        c.wait_for(events::STREAM_JOINED).await?;
        Ok::<_, ProtocolError>((c, media))
    };
    let conn = tokio::select! {
        _ = shared.stop.cancelled() => return out,
        r = tokio::time::timeout(timeout, setup) => r,
    };
    let (mut conn, media) = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.failure = Some(e.kind());
            shared.failed.fetch_add(1, Relaxed);
            return out;
        }
        Err(_) => {
            out.failure = Some("timeout");
            shared.failed.fetch_add(1, Relaxed);
            return out;
        }
    };
    out.joined_after = Some(began.elapsed());
    if stalled {
        // The connection that carries the frames is the one the server must close.
        let port = media.as_ref().map_or(conn.local_port, |m| m.local_port);
        if let Ok(mut p) = shared.stalled_ports.lock() {
            p.push(port);
        }
        shared.joined.fetch_add(1, Relaxed);
        // Never read again: the socket's receive buffer fills, then the server's queue.
        shared.stop.cancelled().await;
        drop(media);
        return out;
    }
    shared.joined.fetch_add(1, Relaxed);
    if pause.is_some() {
        shared.slow_joined.fetch_add(1, Relaxed);
    }
    if shared.collect.load(Relaxed) {
        out.samples.reserve_exact(shared.latency_capacity);
    }
    read_frames(
        &shared,
        &mut conn,
        media.map(client::MediaChannel::into_ws),
        pause,
        &mut out,
    )
    .await;
    if out.lost.is_some() {
        shared.lost.fetch_add(1, Relaxed);
    }
    out
}

/// The next message of the media channel, if there is one.
async fn next_media(
    media: &mut Option<client::Ws>,
) -> Option<Result<Msg, tokio_websockets::Error>> {
    match media {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

/// The stamp in a media-channel frame, found without parsing the header.
fn media_stamp(msg: &[u8], binary: bool) -> Option<Stamp> {
    let payload = streamhub_protocol::media_channel::payload(msg)?;
    if binary {
        Stamp::from_bytes(payload)
    } else {
        // Base64 is ASCII, so any prefix is valid UTF-8.
        let head = payload.get(..payload.len().min(64))?;
        Stamp::from_base64_prefix(std::str::from_utf8(head).ok()?)
    }
}

/// The hot loop: one websocket message at a time, stamps out of `stream:data` (or the media
/// channel's frames) without decoding JSON.
/// With `pause`, it waits that long after each frame (a slow viewer: the frames pile up in the
/// kernel's buffers and then the server's queue, as for a reader on a slow link).
async fn read_frames(
    shared: &Shared,
    conn: &mut Client,
    mut media: Option<client::Ws>,
    pause: Option<Duration>,
    out: &mut ViewerOutcome,
) {
    const FAST: &str = "42[\"stream:data\",";
    // Binary messages still due for the current binary packet, and which one is the frame.
    let mut pending = 0usize;
    let mut frame_at: Option<usize> = None;
    let mut index = 0usize;
    let mut last_seq = 0u64;
    let warmup = shared.warmup_frames;
    // Set by a frame, taken by the next turn of the loop (a local flag the closure shares).
    let paused_due = std::sync::atomic::AtomicBool::new(false);
    let mut on_stamp = |stamp: Stamp, out: &mut ViewerOutcome| {
        paused_due.store(pause.is_some(), Relaxed);
        let lat = stamp.latency_us(now_us());
        if stamp.seq <= last_seq {
            out.out_of_order += 1;
        }
        last_seq = stamp.seq;
        out.samples.push(Sample {
            seq: stamp.seq.min(u64::from(u32::MAX)) as u32,
            latency_us: lat.min(u64::from(u32::MAX)) as u32,
        });
        if stamp.seq > warmup {
            out.measured += 1;
            if pause.is_none() {
                shared.measured.fetch_add(1, Relaxed);
            }
        }
    };
    loop {
        if let Some(pause) = pause
            && paused_due.swap(false, Relaxed)
        {
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let msg = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return,
            m = next_media(&mut media) => {
                match m {
                    Some(Ok(Msg::Binary(b))) => {
                        if let Some(stamp) = media_stamp(&b, shared.binary) {
                            on_stamp(stamp, out);
                        }
                    }
                    Some(Ok(Msg::Close) | Err(_)) | None => {
                        out.lost = Some("media channel closed");
                        return;
                    }
                    Some(Ok(_)) => {}
                }
                continue;
            }
            m = conn.ws().next() => m,
        };
        match msg {
            Some(Ok(Msg::Text(t))) => {
                let s = t.as_str();
                if let Some(body) = s.strip_prefix(FAST) {
                    if media.is_some() {
                        // The server must send a media-channel viewer's frames there only.
                        out.lost = Some("stream:data over Socket.IO despite the media channel");
                        return;
                    }
                    if let Some(stamp) = eio::data_string(body).and_then(Stamp::from_base64_prefix)
                    {
                        on_stamp(stamp, out);
                    }
                    continue;
                }
                match eio::parse(s) {
                    Ok(Packet::Ping) => {
                        let answered = conn.send_text(eio::PONG.to_owned()).await;
                        if answered.is_err() {
                            out.lost = Some("pong failed");
                            return;
                        }
                    }
                    Ok(Packet::BinaryEvent {
                        attachments, body, ..
                    }) => {
                        pending = attachments;
                        index = 0;
                        frame_at = match eio::event_name(body) {
                            Some((events::STREAM_DATA, _)) if media.is_some() => {
                                out.lost =
                                    Some("stream:data over Socket.IO despite the media channel");
                                return;
                            }
                            Some((events::STREAM_DATA, _)) => eio::data_placeholder(body),
                            _ => None,
                        };
                    }
                    Ok(Packet::Event { body, .. }) => match eio::event_name(body) {
                        Some((events::STREAM_ENDED, _)) => {
                            out.lost = Some("stream ended");
                        }
                        Some((events::STREAM_EVICTED, _)) => {
                            out.lost = Some("evicted");
                        }
                        _ => {}
                    },
                    Ok(Packet::Close | Packet::Disconnect) => {
                        out.lost = Some("server closed");
                        return;
                    }
                    _ => {}
                }
            }
            Some(Ok(Msg::Binary(b))) => {
                if pending > 0 {
                    if frame_at == Some(index)
                        && let Some(stamp) = Stamp::from_bytes(&b)
                    {
                        on_stamp(stamp, out);
                    }
                    index += 1;
                    pending -= 1;
                }
            }
            Some(Ok(Msg::Close)) | None => {
                out.lost = Some("connection closed");
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                out.lost = Some(match e {
                    tokio_websockets::Error::Io(_) => "io error",
                    tokio_websockets::Error::AlreadyClosed => "connection closed",
                    _ => "websocket error",
                });
                return;
            }
        }
    }
}

#[derive(Debug)]
enum Window {
    Start,
    End { measured: u64 },
}

#[derive(Debug, Default)]
struct StreamerOutcome {
    sent: u64,
    errors: u64,
    problem: Option<String>,
}

/// The streamer: set up the stream, wait for the go, send frames for warm-up + duration.
async fn streamer(
    shared: Arc<Shared>,
    args: Args,
    ready: oneshot::Sender<Result<String, ProtocolError>>,
    go: oneshot::Receiver<()>,
    window: mpsc::UnboundedSender<Window>,
) -> StreamerOutcome {
    let mut out = StreamerOutcome::default();
    let setup = async {
        let mut c = Client::connect_within(&shared.target, REPLY_TIMEOUT).await?;
        let key = c.register_streamer("bench-streamer").await?;
        // The event, not an ack: the Node baseline acks nothing.
        c.emit(events::STREAM_START, &json!({"streamKey": key}))
            .await?;
        c.wait_for(events::STREAM_STARTED).await?;
        Ok::<_, ProtocolError>((c, key))
    };
    let (mut conn, key) = match setup.await {
        Ok(v) => v,
        Err(e) => {
            out.problem = Some(e.to_string());
            let _ = ready.send(Err(e));
            return out;
        }
    };
    let template = FrameTemplate::new(&key, args.frame_size, args.binary);
    let _ = ready.send(Ok(key));

    // Wait for the go, answering pings meanwhile.
    let mut go = go;
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return out,
            r = &mut go => { if r.is_err() { return out; } break; }
            m = conn.ws().next() => if !streamer_incoming(&mut conn, m, &mut out).await { return out; },
        }
    }
    if args.idle {
        // No frames: keep the stream alive until the end.
        loop {
            tokio::select! {
                _ = shared.stop.cancelled() => return out,
                m = conn.ws().next() => if !streamer_incoming(&mut conn, m, &mut out).await { return out; },
            }
        }
    }

    let period = Duration::from_secs_f64(1.0 / f64::from(args.fps));
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let warmup = shared.warmup_frames;
    let window_len = Duration::from_secs_f64(args.duration);
    let mut window_start: Option<tokio::time::Instant> = None;
    if warmup == 0 {
        let _ = window.send(Window::Start);
        window_start = Some(tokio::time::Instant::now());
    }
    let mut seq = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return out,
            m = conn.ws().next() => {
                if !streamer_incoming(&mut conn, m, &mut out).await { return out; }
                continue;
            }
            _ = iv.tick() => {}
        }
        if let Some(ws) = window_start
            && ws.elapsed() >= window_len
        {
            break;
        }
        seq += 1;
        let frame = template.stamped(Stamp {
            sent_us: now_us(),
            seq,
        });
        let sent = async {
            match frame {
                OutFrame::Text(t) => conn.ws().send_text(t).await,
                OutFrame::Binary { header, body } => conn.ws().send_text_binary(header, body).await,
            }
        };
        let r = tokio::select! {
            _ = shared.stop.cancelled() => {
                out.problem = Some(format!("a send was still blocked at the end (frame {seq})"));
                return out;
            }
            r = sent => r,
        };
        if let Err(e) = r {
            out.problem = Some(format!("sending frame {seq}: {e}"));
            return out;
        }
        out.sent = seq;
        shared.sent.store(seq, Relaxed);
        if seq == warmup {
            let _ = window.send(Window::Start);
            window_start = Some(tokio::time::Instant::now());
        }
    }
    let _ = window.send(Window::End {
        measured: seq.saturating_sub(warmup),
    });
    // Keep the stream up (and answer pings) until the run ends.
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return out,
            m = conn.ws().next() => if !streamer_incoming(&mut conn, m, &mut out).await { return out; },
        }
    }
}

/// Handles one message on the streamer's connection; false when the connection is gone.
async fn streamer_incoming(
    conn: &mut Client,
    msg: Option<Result<Msg, tokio_websockets::Error>>,
    out: &mut StreamerOutcome,
) -> bool {
    match msg {
        Some(Ok(Msg::Text(t))) => match eio::parse(t.as_str()) {
            Ok(Packet::Ping) => conn.send_text(eio::PONG.to_owned()).await.is_ok(),
            Ok(Packet::Event { body, .. }) => {
                if let Some((events::ERROR, _)) = eio::event_name(body) {
                    out.errors += 1;
                }
                true
            }
            Ok(Packet::Close | Packet::Disconnect) => {
                out.problem = Some("the server closed the streamer's connection".into());
                false
            }
            _ => true,
        },
        Some(Ok(_)) => true,
        Some(Err(e)) => {
            out.problem = Some(format!("streamer connection: {e}"));
            false
        }
        None => {
            out.problem = Some("the streamer's connection closed".into());
            false
        }
    }
}

/// CPU ticks of the `--watch` processes now (none for a process that is gone).
fn watched_ticks(watch: &[(String, u32)]) -> Vec<Option<u64>> {
    watch
        .iter()
        .map(|(_, pid)| procfs::cpu_ticks(Pid::Other(*pid)))
        .collect()
}

/// Watches the stalled viewers' connections in `/proc/net/tcp` and notes when each closes.
async fn watch_stalled(
    shared: Arc<Shared>,
    frames_start: Instant,
    timeline: Arc<Mutex<Vec<(f64, u64)>>>,
    run_start: Instant,
) -> StalledReport {
    let server_port = shared.target.addr.port();
    let ports: Vec<u16> = shared
        .stalled_ports
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    let mut open: HashSet<u16> = ports.iter().copied().collect();
    let mut evicted_at = Vec::new();
    let mut last_eviction_run_s = None;
    let mut iv = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            _ = iv.tick() => {}
        }
        if open.is_empty() {
            continue;
        }
        let table = tokio::task::spawn_blocking(move || procfs::tcp_states(server_port))
            .await
            .unwrap_or_default();
        let now = frames_start.elapsed().as_secs_f64();
        let closed: Vec<u16> = open
            .iter()
            .copied()
            .filter(|&p| !procfs::still_open(&table, p, server_port))
            .collect();
        for p in closed {
            open.remove(&p);
            evicted_at.push(now);
            last_eviction_run_s = Some(run_start.elapsed().as_secs_f64());
        }
    }
    evicted_at.sort_by(f64::total_cmp);
    // RSS at the first sample after the last eviction.
    let rss_at_last = last_eviction_run_s.and_then(|t| {
        timeline
            .lock()
            .ok()
            .and_then(|tl| tl.iter().find(|s| s.0 >= t).or(tl.last()).map(|s| s.1))
    });
    StalledReport {
        joined: ports.len() as u64,
        evicted: evicted_at.len() as u64,
        evicted_at_s: evicted_at,
        rss_at_last_eviction_kb: rss_at_last,
        rss_end_kb: None,
        method: "/proc/net/tcp: the server's side of the connection left ESTABLISHED or the client's side was reset",
    }
}

/// One status line on stderr every second (rewritten in place on a terminal).
async fn progress(shared: Arc<Shared>, total_viewers: usize, run_start: Instant) {
    let tty = std::io::stderr().is_terminal();
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    iv.tick().await;
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            _ = iv.tick() => {}
        }
        let line = format!(
            "[{:>5.1}s] {:<8} joined {}/{} failed {} | sent {} | measured frames received {} | lost {}",
            run_start.elapsed().as_secs_f64(),
            Phase::name(shared.phase.load(Relaxed)),
            shared.joined.load(Relaxed),
            total_viewers,
            shared.failed.load(Relaxed),
            shared.sent.load(Relaxed),
            shared.measured.load(Relaxed),
            shared.lost.load(Relaxed),
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprintln!();
    }
}
