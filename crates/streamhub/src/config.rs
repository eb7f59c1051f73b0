//! Command line and environment, validated once at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::relay::RelayLimits;

/// StreamHub: a self-hosted live-streaming hub. One upload per stream, Socket.IO multicast to
/// every viewer.
#[derive(Debug, Parser)]
#[command(name = "streamhub", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: Socket.IO, the HTTP API and the web pages on one port.
    Serve(Box<ServeArgs>),
}

/// Every limit has a default that suits a small box; all are per server process.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "STREAMHUB_BIND", default_value = "0.0.0.0:3000")]
    pub bind: SocketAddr,

    /// SQLite database file (created if missing).
    #[arg(long, env = "STREAMHUB_DB", default_value = "streamhub.db")]
    pub db: PathBuf,

    /// When set, registering as STREAMER requires this secret in `user:register`.
    #[arg(long, env = "STREAMHUB_PUBLISH_SECRET", hide_env_values = true)]
    pub publish_secret: Option<String>,

    /// Largest frame a streamer may send, in bytes.
    #[arg(long, env = "STREAMHUB_MAX_FRAME_BYTES", default_value_t = 2 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1..=64 * 1024 * 1024))]
    pub max_frame_bytes: u32,

    /// Most frames per second a stream may publish; the excess is dropped and counted.
    #[arg(long, env = "STREAMHUB_MAX_FPS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_fps: u32,

    /// Frames kept per stream for late joiners (the seed's catch-up buffer).
    #[arg(long, env = "STREAMHUB_BUFFER_FRAMES", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub buffer_frames: u32,

    /// Largest GOP (bytes since the latest keyframe) kept per encoded stream for late joiners.
    #[arg(long, env = "STREAMHUB_MAX_GOP_BYTES", default_value_t = 8 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..=256 * 1024 * 1024))]
    pub max_gop_bytes: u32,

    /// Packets queued per connection before frames are dropped for that viewer.
    #[arg(long, env = "STREAMHUB_VIEWER_QUEUE", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(4..=4096))]
    pub viewer_queue: u32,

    /// A viewer whose queue stays full this long is evicted.
    #[arg(long, env = "STREAMHUB_STALL_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=300))]
    pub stall_timeout_secs: u32,

    /// TCP user timeout on every connection: the kernel aborts one whose data goes
    /// unacknowledged this long (0 = off).
    #[arg(long, env = "STREAMHUB_TCP_USER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=600))]
    pub tcp_user_timeout_secs: u32,

    /// How long a stream waits for its streamer to reconnect (`stream:resume`).
    #[arg(long, env = "STREAMHUB_GRACE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub grace_secs: u32,

    /// Chat messages a user may send at once before the rate applies.
    #[arg(long, env = "STREAMHUB_CHAT_BURST", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub chat_burst: u32,

    /// Chat messages per second per user, sustained.
    #[arg(long, env = "STREAMHUB_CHAT_PER_SEC", default_value_t = 1.0)]
    pub chat_per_sec: f64,

    /// Reactions a user may send at once before the rate applies.
    #[arg(long, env = "STREAMHUB_REACTION_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reaction_burst: u32,

    /// Reactions per second per user, sustained.
    #[arg(long, env = "STREAMHUB_REACTION_PER_SEC", default_value_t = 5.0)]
    pub reaction_per_sec: f64,

    /// Streams one connection may own at once.
    #[arg(long, env = "STREAMHUB_MAX_STREAMS_PER_CONNECTION", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_streams_per_connection: u32,

    /// Streams one connection may watch at once.
    #[arg(long, env = "STREAMHUB_MAX_JOINS_PER_CONNECTION", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_joins_per_connection: u32,

    /// Streams on the server at once.
    #[arg(long, env = "STREAMHUB_MAX_STREAMS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_streams: u32,

    /// Socket.IO connections at once; more are refused with a connect error.
    #[arg(long, env = "STREAMHUB_MAX_CONNECTIONS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Longest username, in characters.
    #[arg(long, env = "STREAMHUB_MAX_USERNAME_CHARS", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_username_chars: u32,

    /// Longest stream title, in characters.
    #[arg(long, env = "STREAMHUB_MAX_TITLE_CHARS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_title_chars: u32,

    /// Longest chat message, in characters.
    #[arg(long, env = "STREAMHUB_MAX_CHAT_CHARS", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub max_chat_chars: u32,

    /// How often viewer counts are pushed (`stream:viewers`), at most, per stream.
    #[arg(long, env = "STREAMHUB_VIEWER_COUNT_INTERVAL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u32).range(10..=60_000))]
    pub viewer_count_interval_ms: u32,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub db: PathBuf,
    pub publish_secret: Option<String>,
    pub relay: RelayLimits,
    pub viewer_queue: usize,
    pub tcp_user_timeout: Option<Duration>,
    pub chat_burst: u32,
    pub chat_per_sec: f64,
    pub reaction_burst: u32,
    pub reaction_per_sec: f64,
    pub max_streams_per_connection: usize,
    pub max_joins_per_connection: usize,
    pub max_connections: usize,
    pub max_username_chars: usize,
    pub max_title_chars: usize,
    pub max_chat_chars: usize,
    pub tick: Duration,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{name} must be a finite number between {min} and {max}, got {value}")]
    OutOfRange {
        name: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
}

fn rate(name: &'static str, value: f64) -> Result<f64, ConfigError> {
    let (min, max) = (0.01, 1000.0);
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::OutOfRange {
            name,
            value,
            min,
            max,
        })
    }
}

impl ServeArgs {
    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(Config {
            bind: self.bind,
            db: self.db,
            publish_secret: self.publish_secret.filter(|s| !s.is_empty()),
            relay: RelayLimits {
                buffer_frames: self.buffer_frames as usize,
                max_frame_bytes: self.max_frame_bytes as usize,
                max_fps: self.max_fps,
                stall_timeout: Duration::from_secs(self.stall_timeout_secs.into()),
                grace: Duration::from_secs(self.grace_secs.into()),
                max_streams: self.max_streams as usize,
                max_gop_bytes: self.max_gop_bytes as usize,
            },
            viewer_queue: self.viewer_queue as usize,
            tcp_user_timeout: (self.tcp_user_timeout_secs > 0)
                .then(|| Duration::from_secs(self.tcp_user_timeout_secs.into())),
            chat_burst: self.chat_burst,
            chat_per_sec: rate("chat-per-sec", self.chat_per_sec)?,
            reaction_burst: self.reaction_burst,
            reaction_per_sec: rate("reaction-per-sec", self.reaction_per_sec)?,
            max_streams_per_connection: self.max_streams_per_connection as usize,
            max_joins_per_connection: self.max_joins_per_connection as usize,
            max_connections: self.max_connections as usize,
            max_username_chars: self.max_username_chars as usize,
            max_title_chars: self.max_title_chars as usize,
            max_chat_chars: self.max_chat_chars as usize,
            tick: Duration::from_millis(self.viewer_count_interval_ms.into()),
        })
    }
}

impl Config {
    /// Defaults as `streamhub serve` would have them, for tests and embedding.
    pub fn defaults() -> Self {
        let cli = Cli::parse_from(["streamhub", "serve"]);
        let Command::Serve(args) = cli.command;
        args.validate()
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }

    /// Largest Socket.IO message the transport accepts: a base64 frame at the frame limit
    /// plus room for the envelope.
    pub fn max_message_bytes(&self) -> usize {
        self.relay.max_frame_bytes / 3 * 4 + 64 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_docs() {
        let c = Config::defaults();
        assert_eq!(c.bind.port(), 3000);
        assert_eq!(c.relay.buffer_frames, 30);
        assert_eq!(c.relay.max_frame_bytes, 2 * 1024 * 1024);
        assert_eq!(c.relay.grace, Duration::from_secs(30));
        assert_eq!(c.max_chat_chars, 500);
        assert!(c.publish_secret.is_none());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["streamhub", "serve", "--max-fps", "0"]).is_err());
        assert!(Cli::try_parse_from(["streamhub", "serve", "--bind", "nope"]).is_err());
        assert!(Cli::try_parse_from(["streamhub", "serve", "--no-such-flag"]).is_err());
        let cli = Cli::parse_from(["streamhub", "serve", "--chat-per-sec", "5000"]);
        let Command::Serve(args) = cli.command;
        let err = args.validate().expect_err("huge rate refused");
        assert!(err.to_string().contains("chat-per-sec"), "{err}");
    }
}
