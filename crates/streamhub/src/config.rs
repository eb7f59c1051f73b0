//! Command line and environment, validated once at start.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use crate::relay::RelayLimits;

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
    /// Show, rotate or clear the admin token stored in the database.
    ///
    /// A server started without `--admin-token` on a non-loopback address makes one on its
    /// first start and stores it there; the dashboard's data and /api/sessions need it.
    AdminToken(AdminTokenArgs),
}

/// `streamhub admin-token`: the same database settings as `serve`.
#[derive(Debug, Clone, Args)]
pub struct AdminTokenArgs {
    /// The server's SQLite database file [default: `db` from --config, else streamhub.db].
    #[arg(long, env = "STREAMHUB_DB")]
    pub db: Option<PathBuf>,

    /// The server's TOML config file, for its `db` setting.
    #[arg(long, env = "STREAMHUB_CONFIG")]
    pub config: Option<PathBuf>,

    /// Replace the stored token with a new random one and print it. A running server started
    /// without `--admin-token` takes it within 2 seconds; the old one stops working.
    #[arg(long, conflicts_with = "clear")]
    pub rotate: bool,

    /// Delete the stored token. A running server keeps it until it restarts; a server on a
    /// non-loopback address then makes a new one.
    #[arg(long)]
    pub clear: bool,
}

/// What `streamhub admin-token` runs on.
#[derive(Debug, Clone)]
pub struct AdminTokenOptions {
    pub db: PathBuf,
    pub action: crate::admin_token::Action,
}

/// What the command line asks for, validated.
#[derive(Debug)]
pub enum Invocation {
    Serve(Box<Config>),
    AdminToken(AdminTokenOptions),
}

/// Every limit has a default that suits a small box; all are per server process.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "STREAMHUB_BIND", default_value = "0.0.0.0:3000")]
    pub bind: SocketAddr,

    /// TOML file with any of these settings (keys are the flag names in snake_case); flags
    /// and environment variables override it.
    #[arg(long, env = "STREAMHUB_CONFIG")]
    pub config: Option<PathBuf>,

    /// SQLite database file (created if missing): past sessions, chat, reaction totals.
    #[arg(long, env = "STREAMHUB_DB", default_value = "streamhub.db")]
    pub db: PathBuf,

    /// Database writes queued before new ones are dropped (and counted in /metrics).
    #[arg(long, env = "STREAMHUB_DB_QUEUE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub db_queue: u32,

    /// Token /api/sessions and the dashboard's data require (`Authorization: Bearer TOKEN`).
    /// Without it the token stored in the database applies; a server on a non-loopback
    /// address with none stored makes one and prints it once (`streamhub admin-token` shows
    /// it). Only a server on loopback with no token anywhere leaves these routes open.
    #[arg(long, env = "STREAMHUB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Who may show the viewer pages (`/viewer.html`, the seed viewers) in a frame: CSP
    /// `frame-ancestors` sources, space-separated (`'self'`, `'none'`, `https:`,
    /// `https://blog.example.com`). Every other page may not be framed at all.
    #[arg(long, env = "STREAMHUB_FRAME_ANCESTORS", default_value = "'self'",
          value_parser = crate::csp::parse_frame_ancestors)]
    pub frame_ancestors: String,

    /// Dashboard live feeds (server-sent events) open at once; more are refused with 503.
    #[arg(long, env = "STREAMHUB_DASHBOARD_CLIENTS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub dashboard_clients: u32,

    /// When set, registering as STREAMER requires this secret in `user:register`.
    #[arg(long, env = "STREAMHUB_PUBLISH_SECRET", hide_env_values = true)]
    pub publish_secret: Option<String>,

    /// Largest frame a streamer may send, in bytes.
    #[arg(long, env = "STREAMHUB_MAX_FRAME_BYTES", default_value_t = 2 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1..=64 * 1024 * 1024))]
    pub max_frame_bytes: u32,

    /// Largest `stream:thumbnail` JPEG, in bytes: one is kept per live stream (and in cluster
    /// mode in Redis), so the thumbnails held are at most this times --max-streams.
    #[arg(long, env = "STREAMHUB_MAX_THUMBNAIL_BYTES",
          default_value_t = streamhub_protocol::THUMBNAIL_MAX_BYTES as u32,
          value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024))]
    pub max_thumbnail_bytes: u32,

    /// Most frames per second a stream may publish; the excess is dropped and counted.
    #[arg(long, env = "STREAMHUB_MAX_FPS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_fps: u32,

    /// Frames kept per stream for late joiners (the seed's catch-up buffer).
    #[arg(long, env = "STREAMHUB_BUFFER_FRAMES", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub buffer_frames: u32,

    /// Bytes the catch-up buffer of a stream may hold (the newest frame is always kept): a
    /// streamer sending 2 MiB frames cannot make a stream hold 30 of them.
    #[arg(long, env = "STREAMHUB_BUFFER_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(64 * 1024..=1024 * 1024 * 1024))]
    pub buffer_bytes: u32,

    /// Largest GOP (bytes since the latest keyframe) kept per encoded stream for late joiners.
    #[arg(long, env = "STREAMHUB_MAX_GOP_BYTES", default_value_t = 8 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..=256 * 1024 * 1024))]
    pub max_gop_bytes: u32,

    /// Packets queued per connection before frames are dropped for that viewer.
    #[arg(long, env = "STREAMHUB_VIEWER_QUEUE", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(4..=4096))]
    pub viewer_queue: u32,

    /// Packets per connection kept for acks and events beyond the frames' share
    /// (`--viewer-queue`): control messages are never dropped for frames, only when this is
    /// full too (a client that stopped reading; counted).
    #[arg(long, env = "STREAMHUB_CONTROL_QUEUE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(16..=65536))]
    pub control_queue: u32,

    /// Bytes queued per viewer before frames are dropped for it (images: newest wins; encoded
    /// video: it waits for the next keyframe), on the Socket.IO path and the media channel
    /// alike; the catch-up sent on join counts too. A frame larger than this still goes into
    /// an empty queue.
    #[arg(long, env = "STREAMHUB_VIEWER_QUEUE_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(16 * 1024..=256 * 1024 * 1024))]
    pub viewer_queue_bytes: u32,

    /// Picture streams (JPEG/WebP frames): milliseconds of the stream a viewer's queue may hold
    /// (its bytes at the stream's recent rate); newer pictures are refused until it drains, so
    /// a viewer that falls behind sees pictures at most this late, not a second or more of
    /// old ones (0 = only `--viewer-queue` and `--viewer-queue-bytes`).
    #[arg(long, env = "STREAMHUB_PICTURE_QUEUE_MS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub picture_queue_ms: u32,

    /// A viewer whose queue stays full this long is evicted.
    #[arg(long, env = "STREAMHUB_STALL_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=300))]
    pub stall_timeout_secs: u32,

    /// TCP user timeout on every connection: the kernel aborts one whose data goes
    /// unacknowledged this long (0 = off).
    #[arg(long, env = "STREAMHUB_TCP_USER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=600))]
    pub tcp_user_timeout_secs: u32,

    /// Kernel send buffer per connection, bytes (SO_SNDBUF, which Linux doubles; 0 = the
    /// kernel's autotuning). Autotuned, a viewer that stops reading soaks up to
    /// `net.ipv4.tcp_wmem`'s maximum (often 4 MiB, ~10 s of a 3 Mbit/s stream) before its
    /// queue fills, and the server pays for copying all of it.
    #[arg(long, env = "STREAMHUB_TCP_SEND_BUFFER", default_value_t = 262_144,
          value_parser = clap::value_parser!(u32).range(0..=16_777_216))]
    pub tcp_send_buffer: u32,

    /// A connection must send its request headers within this many seconds of opening (or of
    /// its previous response), else it is closed: slow-header clients, sockets that never
    /// send a byte, idle keep-alive connections. Open websockets are not affected.
    #[arg(long, env = "STREAMHUB_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=300))]
    pub header_read_timeout_secs: u32,

    /// TCP connections one client address may hold open at once (pages, Socket.IO,
    /// media channels); more are answered 429 and closed (0 = no limit). A viewer's tab
    /// needs about 3; many viewers may share an address behind NAT.
    #[arg(long, env = "STREAMHUB_MAX_CONNECTIONS_PER_IP", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_connections_per_ip: u32,

    /// Serve HTTPS on `--bind` with this PEM certificate chain (the server's certificate
    /// first); needs `--tls-key`. Read again on SIGHUP: new connections get the new
    /// certificate, open ones keep theirs.
    #[arg(long, env = "STREAMHUB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of `--tls-cert` (PKCS#8, RSA or EC); read again on SIGHUP too.
    #[arg(long, env = "STREAMHUB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate for this machine's host name, `localhost`
    /// and its IP addresses, made on the first start and kept beside the database
    /// (`DB.tls-cert.pem`, `DB.tls-key.pem`; delete them to make a new one). Its SHA-256
    /// fingerprint is printed at every start, to check on the phone. Not with `--tls-cert`.
    #[arg(long, env = "STREAMHUB_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,

    /// Serve HTTPS with a certificate for this DNS name from an ACME CA (Let's Encrypt by
    /// default), obtained on the first start and renewed a third before it expires; give it
    /// once per name (or comma-separated). The CA checks each name with TLS-ALPN-01 on port
    /// 443 of the address the name points to, which must reach `--bind`. Not with
    /// `--tls-cert` or `--tls-self-signed`.
    #[arg(long, env = "STREAMHUB_ACME_DOMAIN", value_delimiter = ',', value_parser = acme_domain)]
    pub acme_domain: Vec<String>,

    /// Contact address given to the ACME CA with the account (it may send expiry notices).
    #[arg(long, env = "STREAMHUB_ACME_EMAIL", value_parser = acme_email)]
    pub acme_email: Option<String>,

    /// Directory keeping the ACME account key and the certificates across restarts (made if
    /// missing; it holds private keys) [default: beside the database, `DB.acme`].
    #[arg(long, env = "STREAMHUB_ACME_CACHE")]
    pub acme_cache: Option<PathBuf>,

    /// The ACME CA's directory URL. Let's Encrypt's staging CA, to try a setup without its
    /// rate limits: https://acme-staging-v02.api.letsencrypt.org/directory
    #[arg(long, env = "STREAMHUB_ACME_DIRECTORY", default_value = LETS_ENCRYPT,
          value_parser = acme_directory)]
    pub acme_directory: String,

    /// PEM file of the CA certificates that `--acme-directory`'s own HTTPS certificate is
    /// checked against, instead of the built-in web roots: for a private or test ACME CA
    /// (pebble, step-ca).
    #[arg(long, env = "STREAMHUB_ACME_DIRECTORY_CA")]
    pub acme_directory_ca: Option<PathBuf>,

    /// With TLS: also listen for plain HTTP on this address (`0.0.0.0:80`, say) and answer
    /// every request with a redirect (308) to the same path over HTTPS on `--bind`'s port.
    #[arg(long, env = "STREAMHUB_HTTP_REDIRECT")]
    pub http_redirect: Option<SocketAddr>,

    /// Apply `--max-connections-per-ip` to loopback addresses too (they are exempt by
    /// default, so local load tests and a reverse proxy on the same host work).
    #[arg(long, env = "STREAMHUB_LIMIT_LOOPBACK")]
    pub limit_loopback: bool,

    /// Web origins (`https://host[:port]`, comma-separated) whose pages may open Socket.IO
    /// connections and media channels, besides the server's own. Unset (the default): any
    /// origin may, so the design note's pages work from wherever they are served.
    #[arg(long, env = "STREAMHUB_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = origin)]
    pub allowed_origins: Vec<String>,

    /// How long a stream waits for its streamer to reconnect (`stream:resume`).
    #[arg(long, env = "STREAMHUB_GRACE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub grace_secs: u32,

    /// Chat messages a user may send at once before the rate applies.
    #[arg(long, env = "STREAMHUB_CHAT_BURST", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub chat_burst: u32,

    /// Chat messages per second per user, sustained.
    #[arg(long, env = "STREAMHUB_CHAT_PER_SEC", default_value_t = 1.0, value_parser = rate)]
    pub chat_per_sec: f64,

    /// Reactions a user may send at once before the rate applies.
    #[arg(long, env = "STREAMHUB_REACTION_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reaction_burst: u32,

    /// Reactions per second per user, sustained.
    #[arg(long, env = "STREAMHUB_REACTION_PER_SEC", default_value_t = 5.0, value_parser = rate)]
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

    /// Threads serving connections [default: one per CPU]. Fewer leave cores to other
    /// processes on the machine (several nodes of a cluster on one box, say).
    #[arg(long, env = "STREAMHUB_WORKER_THREADS",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub worker_threads: Option<u32>,

    /// Redis to share streams with other nodes through (`redis://HOST:PORT`): turns on
    /// cluster mode. Without it the server is one node and needs nothing else.
    #[arg(long, env = "STREAMHUB_REDIS_URL", value_parser = redis_url)]
    pub redis_url: Option<String>,

    /// This node's name in the cluster, the logs, `/metrics` and the dashboard
    /// [default: host name and port].
    #[arg(long, env = "STREAMHUB_NODE_ID", value_parser = node_id)]
    pub node_id: Option<String>,

    /// Cluster mode: bytes of frames queued for Redis before new ones are dropped (counted).
    #[arg(long, env = "STREAMHUB_CLUSTER_QUEUE_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(64 * 1024..=1024 * 1024 * 1024))]
    pub cluster_queue_bytes: u32,
}

/// A Redis URL: `redis://` or `rediss://`, with a host.
fn redis_url(raw: &str) -> Result<String, String> {
    let rest = raw
        .strip_prefix("redis://")
        .or_else(|| raw.strip_prefix("rediss://"))
        .ok_or_else(|| String::from("must start with redis:// (or rediss://)"))?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if host.is_empty() || host.starts_with([':', '/']) {
        return Err(String::from("needs a host, as in redis://127.0.0.1:6379"));
    }
    Ok(raw.to_owned())
}

/// Let's Encrypt's production ACME directory, `--acme-directory`'s default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A name an ACME CA can issue for and check with TLS-ALPN-01: a DNS name with at least two
/// labels, kept in lower case. Not an IP address (TLS-ALPN-01 here checks DNS names), not a
/// wildcard (only DNS-01 can prove those).
fn acme_domain(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.starts_with("*.") {
        return Err(String::from(
            "wildcard names need the DNS-01 challenge; give each name instead",
        ));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(String::from(
            "an IP address cannot get an ACME certificate here; give a DNS name",
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= 253 && name.contains('.') && name.split('.').all(label_ok) {
        Ok(name)
    } else {
        Err(String::from(
            "must be a DNS name like live.example.com (letters, digits, `-`, dots)",
        ))
    }
}

/// A contact address for the ACME account: `who@host`, no spaces (`mailto:` is added).
fn acme_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().trim_start_matches("mailto:");
    match email.split_once('@') {
        Some((who, host))
            if !who.is_empty()
                && host.contains('.')
                && !email.contains(|c: char| c.is_whitespace() || c == ',') =>
        {
            Ok(email.to_owned())
        }
        _ => Err(String::from(
            "must be an email address like ops@example.com",
        )),
    }
}

/// An ACME directory URL: `https://` and a host (RFC 8555 wants HTTPS).
fn acme_directory(raw: &str) -> Result<String, String> {
    let rest = raw.strip_prefix("https://").ok_or_else(|| {
        String::from("must be an https:// URL like https://acme-v02.api.letsencrypt.org/directory")
    })?;
    if rest.is_empty() || rest.starts_with(['/', ':']) || rest.contains(char::is_whitespace) {
        return Err(String::from(
            "needs a host, as in https://ca.example/directory",
        ));
    }
    Ok(raw.to_owned())
}

/// A web origin: `http://` or `https://`/// A web origin: `http://` or `https://`, a host, an optional port, nothing after; kept in
/// lower case as browsers send it.
fn origin(raw: &str) -> Result<String, String> {
    let o = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| String::from("must start with https:// or http://"))?;
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(o)
    } else {
        Err(String::from(
            "must be an origin like https://example.com or http://10.0.0.5:3000 (no path)",
        ))
    }
}

/// A node id: 1 to 64 letters, digits and `.-_:`.
fn node_id(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(String::from("must be 1 to 64 letters, digits or . - _ :"))
    }
}

/// This machine's host name, for the default node id.
pub(crate) fn host_name() -> String {
    machine_name()
        .filter(|h| node_id(h).is_ok())
        .unwrap_or_else(|| String::from("node"))
}

/// This machine's host name as the kernel (or `$HOSTNAME`) has it, if it is a DNS name
/// (letters, digits, `-` and `.`).
pub(crate) fn machine_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 253
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        })
}

/// Where the HTTPS certificate comes from (`Config::tls`; `None` there: plain HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// `--tls-cert` and `--tls-key`.
    Files { cert: PathBuf, key: PathBuf },
    /// `--tls-self-signed`: made on the first start, kept beside the database.
    SelfSigned,
    /// `--acme-domain`: obtained from an ACME CA and renewed in the background.
    Acme(AcmeSettings),
}

/// `--acme-*`: where a certificate comes from and where it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// DNS names, lower case, each once.
    pub domains: Vec<String>,
    pub email: Option<String>,
    /// The account key and certificates (`--acme-cache`, else `DB.acme`).
    pub cache: PathBuf,
    pub directory: String,
    /// Roots `directory`'s HTTPS is checked against; `None`: the built-in web roots.
    pub directory_ca: Option<PathBuf>,
}

/// Cluster mode's settings (present when `--redis-url` is given).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub redis_url: String,
    /// `None`: the host name and the port the server listens on (known once it binds).
    pub node_id: Option<String>,
    pub queue_bytes: usize,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub db: PathBuf,
    pub db_queue: usize,
    pub admin_token: Option<String>,
    /// CSP `frame-ancestors` of the viewer pages, checked (`csp::parse_frame_ancestors`).
    pub frame_ancestors: String,
    pub dashboard_clients: usize,
    pub publish_secret: Option<String>,
    pub relay: RelayLimits,
    pub max_thumbnail_bytes: usize,
    pub viewer_queue: usize,
    pub viewer_queue_bytes: usize,
    pub control_queue: usize,
    pub tcp_user_timeout: Option<Duration>,
    pub tcp_send_buffer: Option<usize>,
    pub header_read_timeout: Duration,
    /// `None`: any origin may connect.
    pub allowed_origins: Option<Vec<String>>,
    /// `None`: no limit.
    pub max_connections_per_ip: Option<usize>,
    pub limit_loopback: bool,
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
    pub cluster: Option<ClusterSettings>,
    /// `None`: one per CPU (tokio's default).
    pub worker_threads: Option<usize>,
    /// `None`: plain HTTP.
    pub tls: Option<TlsSource>,
    /// A plain-HTTP listener redirecting to HTTPS (only with `tls`).
    pub http_redirect: Option<SocketAddr>,
}

/// A setting that cannot work, from the command line, the environment or the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Flags or environment: clap's own message (it also handles --help and --version).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: unknown key `{key}`{hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
    },
    #[error("config file {path}: bad value for `{key}`: {message}")]
    BadValue {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("--tls-cert and --tls-key go together: {missing} is missing")]
    TlsHalf { missing: &'static str },
    #[error(
        "--tls-self-signed makes its own certificate: give it or --tls-cert/--tls-key, not both"
    )]
    TlsBoth,
    #[error(
        "--http-redirect redirects to HTTPS: it needs --tls-cert/--tls-key, --tls-self-signed or --acme-domain"
    )]
    RedirectWithoutTls,
    #[error("--acme-domain gets its certificate from an ACME CA: give it or {other}, not both")]
    AcmeAndTls { other: &'static str },
    #[error("{flag} is for ACME certificates: it needs --acme-domain")]
    AcmeWithoutDomain { flag: &'static str },
    #[error("--http-redirect {0} is --bind's address too")]
    RedirectOnBind(SocketAddr),
    /// [`load`] was given another subcommand than `serve`.
    #[error("expected `streamhub serve ...`")]
    NotServe,
}

/// Rates (per second) must be finite and between 0.01 and 1000.
fn rate(raw: &str) -> Result<f64, String> {
    let (min, max) = (0.01, 1000.0);
    let value: f64 = raw.parse().map_err(|e| format!("{e}"))?;
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be a number between {min} and {max}"))
    }
}

/// Parses flags, environment and the config file, with that precedence over the defaults.
///
/// The file's values become the arguments' defaults, so clap still lets a flag beat an
/// environment variable and an environment variable beat the file. Each file value is first
/// checked with its flag's own parser, so an error names the file's key.
pub fn parse_cli<I, T>(args: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let first = Cli::try_parse_from(&args)?;
    let Command::Serve(serve) = &first.command else {
        // `admin-token` reads only `db` from the file (`parse`).
        return Ok(first);
    };
    let Some(path) = serve.config.clone() else {
        return Ok(first);
    };
    let defaults = file_defaults(&path)?;
    let cmd = Cli::command().mut_subcommand("serve", |mut sub| {
        for (id, value) in defaults {
            sub = sub.mut_arg(id, |a| a.default_value(value));
        }
        sub
    });
    let matches = cmd.try_get_matches_from(&args)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// Parses and validates everything; the one call `main` makes.
pub fn parse<I, T>(args: I) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match parse_cli(args)?.command {
        Command::Serve(args) => Ok(Invocation::Serve(Box::new(args.validate()?))),
        Command::AdminToken(args) => {
            use crate::admin_token::Action;
            // As for `serve`: the flag (or its environment variable), then the file, then
            // the default.
            let from_file = match &args.config {
                Some(path) => file_defaults(path)?
                    .into_iter()
                    .find_map(|(key, value)| (key == "db").then(|| PathBuf::from(value))),
                None => None,
            };
            let db = args
                .db
                .or(from_file)
                .unwrap_or_else(|| PathBuf::from("streamhub.db"));
            let action = if args.rotate {
                Action::Rotate
            } else if args.clear {
                Action::Clear
            } else {
                Action::Show
            };
            Ok(Invocation::AdminToken(AdminTokenOptions { db, action }))
        }
    }
}

/// [`parse`] for `streamhub serve ...` alone (tests and embedding programs).
pub fn load<I, T>(args: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match parse(args)? {
        Invocation::Serve(config) => Ok(*config),
        Invocation::AdminToken(_) => Err(ConfigError::NotServe),
    }
}

/// Reads the TOML file and checks every key and value against `streamhub serve`'s arguments.
fn file_defaults(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
    let cli = Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .unwrap_or_else(|| unreachable!("the serve subcommand exists"));
    let known = |key: &str| {
        serve
            .get_arguments()
            .find(|a| a.get_id() == key && a.get_long().is_some() && key != "config")
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let Some(arg) = known(&key) else {
            let snake = key.replace('-', "_");
            let hint = if snake != key && known(&snake).is_some() {
                format!(" (did you mean `{snake}`?)")
            } else {
                String::from(" (keys are the flags of `streamhub serve --help` in snake_case)")
            };
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key,
                hint,
            });
        };
        let bad = |message: String| ConfigError::BadValue {
            path: path.to_owned(),
            key: key.clone(),
            message,
        };
        // A switch (`--limit-loopback`) takes no value on the command line, so its parser
        // cannot check one: the file says `true` or `false`.
        if !arg.get_action().takes_values() {
            let toml::Value::Boolean(on) = &value else {
                return Err(bad(format!(
                    "expected true or false, got {}",
                    value.type_str()
                )));
            };
            out.push((key, on.to_string()));
            continue;
        }
        let raw = match &value {
            toml::Value::String(s) => s.clone(),
            // A list flag (`acme_domain = ["a.example", "b.example"]`): its items joined as
            // the command line's comma-separated form.
            toml::Value::Array(items) if arg.get_value_delimiter().is_some() => {
                let mut joined = Vec::with_capacity(items.len());
                for item in items {
                    let toml::Value::String(s) = item else {
                        return Err(bad(format!(
                            "expected a list of strings, got a {} in it",
                            item.type_str()
                        )));
                    };
                    joined.push(s.clone());
                }
                joined.join(",")
            }
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(bad(format!(
                    "expected a string or a number, got {}",
                    other.type_str()
                )));
            }
        };
        // The flag's own parser, alone in a throw-away command (a value given there wins
        // over any environment variable, so only the file's value is checked).
        clap::Command::new("streamhub")
            .no_binary_name(true)
            .arg(arg.clone())
            .try_get_matches_from([format!("--{}", arg.get_long().unwrap_or(&key)), raw.clone()])
            .map_err(|e| bad(clap_message(&e)))?;
        out.push((key, raw));
    }
    Ok(out)
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

impl ServeArgs {
    /// `--acme-*` together, or `None` without `--acme-domain` (then every other `--acme-*`
    /// flag is refused: it would silently do nothing).
    fn acme_settings(&self) -> Result<Option<AcmeSettings>, ConfigError> {
        if self.acme_domain.is_empty() {
            let given = [
                ("--acme-email", self.acme_email.is_some()),
                ("--acme-cache", self.acme_cache.is_some()),
                ("--acme-directory", self.acme_directory != LETS_ENCRYPT),
                ("--acme-directory-ca", self.acme_directory_ca.is_some()),
            ];
            return match given.iter().find(|(_, set)| *set) {
                Some((flag, _)) => Err(ConfigError::AcmeWithoutDomain { flag }),
                None => Ok(None),
            };
        }
        let mut domains = self.acme_domain.clone();
        domains.sort();
        domains.dedup();
        let cache = self.acme_cache.clone().unwrap_or_else(|| {
            let mut name = self.db.as_os_str().to_owned();
            name.push(".acme");
            PathBuf::from(name)
        });
        Ok(Some(AcmeSettings {
            domains,
            email: self.acme_email.clone(),
            cache,
            directory: self.acme_directory.clone(),
            directory_ca: self.acme_directory_ca.clone(),
        }))
    }

    /// The settings as the server uses them; refuses combinations that cannot work (each
    /// value alone was checked by its parser).
    pub fn validate(self) -> Result<Config, ConfigError> {
        let acme = self.acme_settings()?;
        let tls = match (self.tls_cert, self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), false) => Some(TlsSource::Files { cert, key }),
            (None, None, true) => Some(TlsSource::SelfSigned),
            (None, None, false) => None,
            (Some(_), None, false) => {
                return Err(ConfigError::TlsHalf {
                    missing: "--tls-key",
                });
            }
            (None, Some(_), false) => {
                return Err(ConfigError::TlsHalf {
                    missing: "--tls-cert",
                });
            }
            (_, _, true) => return Err(ConfigError::TlsBoth),
        };
        let tls = match (tls, acme) {
            (tls, None) => tls,
            (None, Some(acme)) => Some(TlsSource::Acme(acme)),
            (Some(TlsSource::SelfSigned), Some(_)) => {
                return Err(ConfigError::AcmeAndTls {
                    other: "--tls-self-signed",
                });
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::AcmeAndTls {
                    other: "--tls-cert/--tls-key",
                });
            }
        };
        match self.http_redirect {
            Some(_) if tls.is_none() => return Err(ConfigError::RedirectWithoutTls),
            // Port 0 (tests): each gets its own free port.
            Some(addr) if addr == self.bind && addr.port() != 0 => {
                return Err(ConfigError::RedirectOnBind(addr));
            }
            _ => {}
        }
        Ok(Config {
            bind: self.bind,
            db: self.db,
            db_queue: self.db_queue as usize,
            admin_token: self.admin_token.filter(|s| !s.is_empty()),
            frame_ancestors: self.frame_ancestors,
            dashboard_clients: self.dashboard_clients as usize,
            publish_secret: self.publish_secret.filter(|s| !s.is_empty()),
            relay: RelayLimits {
                buffer_frames: self.buffer_frames as usize,
                buffer_bytes: self.buffer_bytes as usize,
                max_frame_bytes: self.max_frame_bytes as usize,
                max_fps: self.max_fps,
                stall_timeout: Duration::from_secs(self.stall_timeout_secs.into()),
                grace: Duration::from_secs(self.grace_secs.into()),
                max_streams: self.max_streams as usize,
                max_gop_bytes: self.max_gop_bytes as usize,
                picture_queue: (self.picture_queue_ms > 0)
                    .then(|| Duration::from_millis(self.picture_queue_ms.into())),
            },
            max_thumbnail_bytes: self.max_thumbnail_bytes as usize,
            viewer_queue: self.viewer_queue as usize,
            viewer_queue_bytes: self.viewer_queue_bytes as usize,
            control_queue: self.control_queue as usize,
            tcp_user_timeout: (self.tcp_user_timeout_secs > 0)
                .then(|| Duration::from_secs(self.tcp_user_timeout_secs.into())),
            tcp_send_buffer: (self.tcp_send_buffer > 0).then_some(self.tcp_send_buffer as usize),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.into()),
            allowed_origins: (!self.allowed_origins.is_empty()).then_some(self.allowed_origins),
            max_connections_per_ip: (self.max_connections_per_ip > 0)
                .then_some(self.max_connections_per_ip as usize),
            limit_loopback: self.limit_loopback,
            chat_burst: self.chat_burst,
            chat_per_sec: self.chat_per_sec,
            reaction_burst: self.reaction_burst,
            reaction_per_sec: self.reaction_per_sec,
            max_streams_per_connection: self.max_streams_per_connection as usize,
            max_joins_per_connection: self.max_joins_per_connection as usize,
            max_connections: self.max_connections as usize,
            max_username_chars: self.max_username_chars as usize,
            max_title_chars: self.max_title_chars as usize,
            max_chat_chars: self.max_chat_chars as usize,
            tick: Duration::from_millis(self.viewer_count_interval_ms.into()),
            worker_threads: self.worker_threads.map(|n| n as usize),
            cluster: self.redis_url.map(|redis_url| ClusterSettings {
                redis_url,
                node_id: self.node_id,
                queue_bytes: self.cluster_queue_bytes as usize,
            }),
            tls,
            http_redirect: self.http_redirect,
        })
    }
}

impl Config {
    /// Defaults as `streamhub serve` would have them, for tests and embedding.
    pub fn defaults() -> Self {
        match Cli::parse_from(["streamhub", "serve"]).command {
            Command::Serve(args) => args
                .validate()
                .unwrap_or_else(|e| unreachable!("the defaults are valid: {e}")),
            Command::AdminToken(_) => unreachable!("parsed `serve`"),
        }
    }

    /// Largest Socket.IO message the transport accepts: a base64 frame at the frame limit
    /// plus room for the envelope.
    pub fn max_message_bytes(&self) -> usize {
        self.relay.max_frame_bytes.max(self.max_thumbnail_bytes) / 3 * 4 + 64 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_settings_are_checked() {
        assert!(redis_url("redis://127.0.0.1:6379").is_ok());
        assert!(redis_url("rediss://user:pw@cache.example:6380/2").is_ok());
        for bad in [
            "127.0.0.1:6379",
            "http://x",
            "redis://",
            "redis://:6379",
            "redis://u@",
        ] {
            assert!(redis_url(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            origin("HTTPS://Live.Example/").as_deref(),
            Ok("https://live.example")
        );
        assert!(origin("http://10.0.0.5:3000").is_ok());
        for bad in [
            "live.example",
            "ftp://x",
            "https://",
            "https://a/b",
            "https://a b",
        ] {
            assert!(origin(bad).is_err(), "{bad} accepted");
        }
        let c = Cli::try_parse_from([
            "streamhub",
            "serve",
            "--allowed-origins",
            "https://a.example,http://b.example:8080",
        ])
        .expect("parses");
        let Command::Serve(args) = c.command else {
            panic!("parsed `serve`")
        };
        assert_eq!(
            args.validate()
                .expect("valid")
                .allowed_origins
                .map(|o| o.len()),
            Some(2)
        );
        assert!(
            Config::defaults().allowed_origins.is_none(),
            "open by default"
        );
        assert!(node_id("node-a.eu:3000").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(65)] {
            assert!(node_id(bad).is_err(), "{bad:?} accepted");
        }
        let c = Cli::try_parse_from([
            "streamhub",
            "serve",
            "--redis-url",
            "redis://r:1",
            "--node-id",
            "a",
        ])
        .expect("parses");
        let Command::Serve(args) = c.command else {
            panic!("parsed `serve`")
        };
        let cluster = args
            .validate()
            .expect("valid")
            .cluster
            .expect("cluster mode");
        assert_eq!(cluster.node_id.as_deref(), Some("a"));
        assert!(
            Config::defaults().cluster.is_none(),
            "single node unless asked"
        );
        assert_eq!(
            Config::defaults().worker_threads,
            None,
            "one per CPU unless asked"
        );
        let c =
            Cli::try_parse_from(["streamhub", "serve", "--worker-threads", "1"]).expect("parses");
        let Command::Serve(args) = c.command else {
            panic!("parsed `serve`")
        };
        assert_eq!(args.validate().expect("valid").worker_threads, Some(1));
        assert!(Cli::try_parse_from(["streamhub", "serve", "--worker-threads", "0"]).is_err());
    }

    #[test]
    fn admin_token_finds_the_database_like_serve() {
        use crate::admin_token::Action;
        let run = |args: &[&str]| match parse(args.iter().copied()).expect("parses") {
            Invocation::AdminToken(o) => (o.db, o.action),
            Invocation::Serve(_) => panic!("admin-token parsed as serve"),
        };
        // Run where STREAMHUB_DB / STREAMHUB_CONFIG are not set (as in CI).
        if std::env::var_os("STREAMHUB_DB").is_some()
            || std::env::var_os("STREAMHUB_CONFIG").is_some()
        {
            return;
        }
        assert_eq!(
            run(&["streamhub", "admin-token"]),
            (PathBuf::from("streamhub.db"), Action::Show)
        );
        let (_dir, path) = with_file("db = \"/var/lib/streamhub/x.db\"\nmax_fps = 30\n");
        assert_eq!(
            run(&["streamhub", "admin-token", "--config", &path, "--rotate"]),
            (PathBuf::from("/var/lib/streamhub/x.db"), Action::Rotate)
        );
        assert_eq!(
            run(&[
                "streamhub",
                "admin-token",
                "--config",
                &path,
                "--db",
                "y.db",
                "--clear"
            ]),
            (PathBuf::from("y.db"), Action::Clear),
            "--db beats the file"
        );
        assert!(Cli::try_parse_from(["streamhub", "admin-token", "--rotate", "--clear"]).is_err());
        assert!(matches!(
            load(["streamhub", "admin-token"]),
            Err(ConfigError::NotServe)
        ));
    }

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
        assert_eq!(c.max_thumbnail_bytes, 64 * 1024);
        assert_eq!(c.db_queue, 10_000);
        assert_eq!(c.dashboard_clients, 16);
        assert_eq!(c.tcp_send_buffer, Some(256 * 1024));
        assert!(c.publish_secret.is_none());
        assert!(c.admin_token.is_none());
        assert_eq!(c.frame_ancestors, "'self'");
    }

    #[test]
    fn frame_ancestors_come_checked_from_flags_and_files() {
        let c = load([
            "streamhub",
            "serve",
            "--frame-ancestors",
            "'self'  https://blog.example",
        ])
        .expect("valid");
        assert_eq!(c.frame_ancestors, "'self' https://blog.example");
        let err =
            Cli::try_parse_from(["streamhub", "serve", "--frame-ancestors", "*; script-src *"])
                .expect_err("a second directive refused");
        assert!(err.to_string().contains("frame-ancestors"), "{err}");
        let (_dir, path) =
            with_file("frame_ancestors = \"https://a.example, https://b.example\"\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("comma");
        assert!(err.to_string().contains("`frame_ancestors`"), "{err}");
    }

    #[test]
    fn tls_settings_come_from_flags_and_files_and_must_fit_together() {
        let c = load([
            "streamhub",
            "serve",
            "--tls-cert",
            "/etc/x/fullchain.pem",
            "--tls-key",
            "/etc/x/key.pem",
            "--http-redirect",
            "0.0.0.0:8080",
        ])
        .expect("valid");
        assert_eq!(
            c.tls,
            Some(TlsSource::Files {
                cert: PathBuf::from("/etc/x/fullchain.pem"),
                key: PathBuf::from("/etc/x/key.pem"),
            })
        );
        assert_eq!(c.http_redirect, Some("0.0.0.0:8080".parse().expect("addr")));
        assert!(Config::defaults().tls.is_none(), "plain HTTP by default");
        assert!(Config::defaults().http_redirect.is_none());

        let (_dir, path) =
            with_file("tls_self_signed = true\nhttp_redirect = \"127.0.0.1:8080\"\n");
        let c = load(["streamhub", "serve", "--config", &path]).expect("valid file");
        assert_eq!(c.tls, Some(TlsSource::SelfSigned));
        assert_eq!(
            c.http_redirect,
            Some("127.0.0.1:8080".parse().expect("addr"))
        );

        let refused = |args: &[&str]| {
            let mut all = vec!["streamhub", "serve"];
            all.extend_from_slice(args);
            load(all).expect_err("refused")
        };
        assert!(matches!(
            refused(&["--tls-cert", "c.pem"]),
            ConfigError::TlsHalf {
                missing: "--tls-key"
            }
        ));
        assert!(matches!(
            refused(&["--tls-key", "k.pem"]),
            ConfigError::TlsHalf {
                missing: "--tls-cert"
            }
        ));
        let e = refused(&[
            "--tls-self-signed",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        assert!(matches!(e, ConfigError::TlsBoth), "{e}");
        // The file and a flag are combined before the check.
        let e = refused(&[
            "--config",
            &path,
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        assert!(matches!(e, ConfigError::TlsBoth), "{e}");
        let e = refused(&["--http-redirect", "0.0.0.0:80"]);
        assert!(matches!(e, ConfigError::RedirectWithoutTls), "{e}");
        assert!(e.to_string().contains("--tls-self-signed"), "{e}");
        let e = refused(&[
            "--tls-self-signed",
            "--bind",
            "0.0.0.0:3000",
            "--http-redirect",
            "0.0.0.0:3000",
        ]);
        assert!(matches!(e, ConfigError::RedirectOnBind(_)), "{e}");
        // Switches in the file (before, `limit_loopback = true` was refused: its flag takes no
        // value to check).
        let (_dir, path) = with_file("limit_loopback = true\n");
        assert!(
            load(["streamhub", "serve", "--config", &path])
                .expect("valid")
                .limit_loopback
        );
        let (_dir, path) = with_file("limit_loopback = false\n");
        assert!(
            !load(["streamhub", "serve", "--config", &path])
                .expect("valid")
                .limit_loopback
        );
        let (_dir, path) = with_file("tls_self_signed = \"yes\"\n");
        let e = load(["streamhub", "serve", "--config", &path]).expect_err("not a boolean");
        assert!(e.to_string().contains("expected true or false"), "{e}");
        let (_dir, path) = with_file("http_redirect = \"port 80\"\n");
        let e = load(["streamhub", "serve", "--config", &path]).expect_err("not an address");
        assert!(e.to_string().contains("`http_redirect`"), "{e}");
    }

    #[test]
    fn acme_settings_come_from_flags_and_files_and_must_fit_together() {
        let c = load([
            "streamhub",
            "serve",
            "--db",
            "/var/lib/streamhub/hub.db",
            "--acme-domain",
            "Live.Example.COM.",
            "--acme-domain",
            "b.example.com,live.example.com",
            "--acme-email",
            "ops@example.com",
        ])
        .expect("valid");
        let Some(TlsSource::Acme(acme)) = c.tls else {
            panic!("ACME: {:?}", c.tls)
        };
        assert_eq!(acme.domains, ["b.example.com", "live.example.com"]);
        assert_eq!(acme.email.as_deref(), Some("ops@example.com"));
        assert_eq!(acme.cache, PathBuf::from("/var/lib/streamhub/hub.db.acme"));
        assert_eq!(acme.directory, LETS_ENCRYPT);
        assert_eq!(acme.directory_ca, None);

        let (_dir, path) = with_file(
            "acme_domain = [\"a.example.com\", \"b.example.com\"]\n\
             acme_cache = \"/srv/acme\"\n\
             acme_directory = \"https://127.0.0.1:14000/dir\"\n\
             acme_directory_ca = \"/srv/pebble.pem\"\n\
             http_redirect = \"0.0.0.0:8080\"\n",
        );
        let c = load(["streamhub", "serve", "--config", &path]).expect("valid file");
        let Some(TlsSource::Acme(acme)) = c.tls else {
            panic!("ACME: {:?}", c.tls)
        };
        assert_eq!(acme.domains, ["a.example.com", "b.example.com"]);
        assert_eq!(acme.cache, PathBuf::from("/srv/acme"));
        assert_eq!(acme.directory, "https://127.0.0.1:14000/dir");
        assert_eq!(acme.directory_ca, Some(PathBuf::from("/srv/pebble.pem")));
        assert!(
            c.http_redirect.is_some(),
            "ACME is TLS: the redirect may go to it"
        );

        let (_dir, path) = with_file("acme_domain = [\"a.example.com\", 3]\n");
        let e = load(["streamhub", "serve", "--config", &path]).expect_err("a number in it");
        assert!(e.to_string().contains("`acme_domain`"), "{e}");
        let (_dir, path) = with_file("acme_domain = [\"10.0.0.5\"]\n");
        let e = load(["streamhub", "serve", "--config", &path]).expect_err("an address");
        assert!(e.to_string().contains("IP address"), "{e}");

        let refused = |args: &[&str]| {
            let mut all = vec!["streamhub", "serve"];
            all.extend_from_slice(args);
            load(all).expect_err("refused")
        };
        let e = refused(&["--acme-domain", "a.example.com", "--tls-self-signed"]);
        assert!(
            matches!(
                e,
                ConfigError::AcmeAndTls {
                    other: "--tls-self-signed"
                }
            ),
            "{e}"
        );
        let e = refused(&[
            "--acme-domain",
            "a.example.com",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        assert!(matches!(e, ConfigError::AcmeAndTls { .. }), "{e}");
        for flag in [
            "--acme-email",
            "--acme-cache",
            "--acme-directory",
            "--acme-directory-ca",
        ] {
            let value = match flag {
                "--acme-email" => "a@example.com",
                "--acme-directory" => "https://ca.example/dir",
                _ => "/x",
            };
            let e = refused(&[flag, value]);
            assert!(
                matches!(e, ConfigError::AcmeWithoutDomain { flag: f } if f == flag),
                "{flag}: {e}"
            );
        }
        for (bad, flag) in [
            ("*.example.com", "--acme-domain"),
            ("example", "--acme-domain"),
            ("-a.example.com", "--acme-domain"),
            ("::1", "--acme-domain"),
        ] {
            assert!(
                Cli::try_parse_from(["streamhub", "serve", flag, bad]).is_err(),
                "{bad} accepted"
            );
        }
        assert!(acme_directory("https://acme-staging-v02.api.letsencrypt.org/directory").is_ok());
        for bad in [
            "http://ca.example/dir",
            "https://",
            "https:///dir",
            "ca.example",
        ] {
            assert!(acme_directory(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            acme_email("mailto:ops@example.com").as_deref(),
            Ok("ops@example.com")
        );
        for bad in [
            "ops",
            "@example.com",
            "ops@localhost",
            "a b@example.com",
            "a@b.c,d@e.f",
        ] {
            assert!(acme_email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["streamhub", "serve", "--max-fps", "0"]).is_err());
        assert!(Cli::try_parse_from(["streamhub", "serve", "--bind", "nope"]).is_err());
        assert!(Cli::try_parse_from(["streamhub", "serve", "--no-such-flag"]).is_err());
        let err = Cli::try_parse_from(["streamhub", "serve", "--chat-per-sec", "5000"])
            .expect_err("huge rate refused");
        assert!(err.to_string().contains("chat-per-sec"), "{err}");
    }

    fn with_file(toml: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("streamhub.toml");
        std::fs::write(&path, toml).expect("write config");
        let path = path.to_string_lossy().into_owned();
        (dir, path)
    }

    #[test]
    fn the_file_sets_values_and_flags_override_it() {
        let (_dir, path) =
            with_file("max_fps = 25\nbind = \"127.0.0.1:4000\"\nchat_per_sec = 2.5\n");
        let c = load(["streamhub", "serve", "--config", &path]).expect("valid file");
        assert_eq!(c.relay.max_fps, 25);
        assert_eq!(c.bind.port(), 4000);
        assert_eq!(c.chat_per_sec, 2.5);
        let c = load(["streamhub", "serve", "--config", &path, "--max-fps", "40"]).expect("valid");
        assert_eq!(c.relay.max_fps, 40, "a flag beats the file");
        assert_eq!(
            c.relay.buffer_frames, 30,
            "untouched settings keep their default"
        );
    }

    #[test]
    fn the_thumbnail_limit_comes_from_files_and_flags_within_its_range() {
        let (_dir, path) = with_file("max_thumbnail_bytes = 32768\n");
        let c = load(["streamhub", "serve", "--config", &path]).expect("valid file");
        assert_eq!(c.max_thumbnail_bytes, 32768);
        let c = load([
            "streamhub",
            "serve",
            "--max-thumbnail-bytes",
            "1048576",
            "--max-frame-bytes",
            "1024",
        ])
        .expect("valid flags");
        assert_eq!(c.max_thumbnail_bytes, 1024 * 1024);
        assert!(
            c.max_message_bytes() > 1024 * 1024 * 4 / 3,
            "a thumbnail larger than a frame still fits a message"
        );
        for bad in ["1023", "1048577"] {
            assert!(
                load(["streamhub", "serve", "--max-thumbnail-bytes", bad]).is_err(),
                "{bad} accepted"
            );
        }
        let (_dir, path) = with_file("max_thumbnail_bytes = 10\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("out of range");
        assert!(err.to_string().contains("`max_thumbnail_bytes`"), "{err}");
    }

    #[test]
    fn a_list_in_the_file_is_comma_separated() {
        let (_dir, path) =
            with_file("allowed_origins = \"https://a.example, https://b.example\"\n");
        let c = load(["streamhub", "serve", "--config", &path]).expect("valid file");
        assert_eq!(
            c.allowed_origins,
            Some(vec![
                String::from("https://a.example"),
                String::from("https://b.example")
            ])
        );
        let (_dir, path) = with_file("allowed_origins = \"example.com\"\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("not an origin");
        assert!(err.to_string().contains("`allowed_origins`"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let (_dir, path) = with_file("max_fps = 25\nmax_fsp = 10\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("unknown key");
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, .. } if key == "max_fsp"),
            "{err}"
        );
        assert!(err.to_string().contains("`max_fsp`"), "{err}");

        let (_dir, path) = with_file("max-fps = 25\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("kebab key");
        assert!(err.to_string().contains("did you mean `max_fps`"), "{err}");
    }

    #[test]
    fn an_out_of_range_value_is_named() {
        let (_dir, path) = with_file("viewer_queue = 1\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("out of range");
        let text = err.to_string();
        assert!(
            text.contains("`viewer_queue`") && text.contains("4..=4096"),
            "{text}"
        );

        let (_dir, path) = with_file("reaction_per_sec = 0\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("zero rate");
        assert!(err.to_string().contains("`reaction_per_sec`"), "{err}");

        let (_dir, path) = with_file("max_fps = [1, 2]\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("array");
        assert!(err.to_string().contains("got array"), "{err}");
    }

    #[test]
    fn a_missing_or_broken_file_is_an_error() {
        let err = load([
            "streamhub",
            "serve",
            "--config",
            "/nonexistent/streamhub.toml",
        ])
        .expect_err("missing file");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        let (_dir, path) = with_file("max_fps = = 3\n");
        let err = load(["streamhub", "serve", "--config", &path]).expect_err("bad toml");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }
}
