//! Command line.

use clap::Parser;

/// Load generator for StreamHub (and any server speaking the design note's protocol): one
/// streamer and N viewers over raw Engine.IO v4 websockets. Each frame carries its send time,
/// so every viewer measures end-to-end latency on receipt.
#[derive(Debug, Clone, Parser)]
#[command(name = "streamhub-bench", version, about, long_about = None)]
pub struct Args {
    /// Server base URL: http://HOST:PORT, ws://HOST:PORT or HOST:PORT.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,

    /// PEM file of the certificate(s) to trust for an `https://` URL: a private CA, or the
    /// server's own `--tls-self-signed` certificate (`DB.tls-cert.pem`).
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// Where viewers connect instead of `--url` (repeat it: viewers take them in turn). The
    /// streamer stays on `--url`: a cluster's origin, with its viewers on other nodes.
    #[arg(long = "viewer-url", value_name = "URL")]
    pub viewer_urls: Vec<String>,

    /// Another process to report CPU and RSS of over the measured window, as NAME=PID
    /// (repeatable): the other nodes of a cluster, redis-server.
    #[arg(long = "watch", value_name = "NAME=PID", value_parser = watched)]
    pub watch: Vec<(String, u32)>,

    /// Viewers that join the stream and read every frame.
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,

    /// Frames per second the streamer sends.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fps: u32,

    /// Frame content size in bytes (base64 text on the wire is about 4/3 of it; at least 18).
    #[arg(long, default_value_t = 10_000)]
    pub frame_size: usize,

    /// Send frames as binary attachments instead of base64 text.
    #[arg(long)]
    pub binary: bool,

    /// Measurement window in seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Warm-up in seconds: frames sent then are delivered but not measured.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// Longest wait, in seconds, for frames still in flight after the last one was sent.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,

    /// Extra viewers that join and then never read their socket again.
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,

    /// Extra viewers that read, but only a fraction of the stream's frames per second
    /// (`--slow-fraction`): they pause after each frame they get.
    #[arg(long, default_value_t = 0)]
    pub slow: usize,

    /// The share of the stream's frame rate a slow viewer reads (0 < F < 1).
    #[arg(long, default_value_t = 0.25)]
    pub slow_fraction: f64,

    /// New connections per second while connecting (0 = all at once).
    #[arg(long, default_value_t = 1000.0)]
    pub ramp: f64,

    /// Seconds a viewer may take to connect, register and join before it counts as failed.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,

    /// The server's process id: report its CPU cores and RSS (same machine only).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Viewers open StreamHub's media channel (`GET /media`) before joining and read their
    /// frames there, as StreamHub's own viewer page does; Socket.IO keeps the control events.
    #[arg(long)]
    pub media: bool,

    /// Idle mode: viewers join, no frames are sent; report server RSS per idle viewer.
    #[arg(long)]
    pub idle: bool,

    /// Idle mode: seconds to wait after the last join before reading RSS.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// A label copied into the report (scenario and server name, for scripts).
    #[arg(long)]
    pub label: Option<String>,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// `NAME=PID`.
fn watched(raw: &str) -> Result<(String, u32), String> {
    let (name, pid) = raw
        .split_once('=')
        .ok_or_else(|| String::from("expected NAME=PID"))?;
    let pid = pid.parse().map_err(|e| format!("bad pid: {e}"))?;
    Ok((name.to_owned(), pid))
}

impl Args {
    /// Frames sent during the warm-up.
    pub fn warmup_frames(&self) -> u64 {
        (self.warmup.max(0.0) * f64::from(self.fps)).round() as u64
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.duration > 0.0, "--duration must be positive");
        anyhow::ensure!(self.warmup >= 0.0, "--warmup must not be negative");
        anyhow::ensure!(self.drain >= 0.0, "--drain must not be negative");
        anyhow::ensure!(
            self.ramp >= 0.0,
            "--ramp must not be negative (0 = all at once)"
        );
        anyhow::ensure!(
            self.connect_timeout > 0.0,
            "--connect-timeout must be positive"
        );
        anyhow::ensure!(self.settle >= 0.0, "--settle must not be negative");
        anyhow::ensure!(
            self.slow_fraction > 0.0 && self.slow_fraction < 1.0,
            "--slow-fraction must be between 0 and 1"
        );
        Ok(())
    }
}
