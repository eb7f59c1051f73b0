//! The dashboard's data: a snapshot of the server and every stream, taken once a second and
//! pushed to `/dashboard.html` as server-sent events.
//!
//! One sampler task reads the relay's stats, the per-stream taps and the global counters; each
//! feed only clones the latest snapshot (a `watch` channel holds one value, so a slow dashboard
//! skips snapshots rather than queueing them). Feeds are limited by `--dashboard-clients`.
//! With `--admin-token` set, every route here needs `Authorization: Bearer TOKEN`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamhub_protocol::Millis;
use streamhub_protocol::server::{StreamStatus, UserRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::relay::LEVELS;
use crate::{Hub, now_ms};

/// How often a snapshot is taken.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Sessions `GET /api/sessions` returns by default, and at most.
const SESSIONS_DEFAULT: usize = 50;
const SESSIONS_MAX: usize = 500;

/// What the server and each stream report alike; rates are over the last interval.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    pub kbps_in: f64,
    pub kbps_out: f64,
    pub drops_per_sec: f64,
    /// Mean queue delay of the frames sent in the interval, milliseconds.
    pub latency_ms: f64,
    pub frames_in: u64,
    pub frames_out: u64,
}

/// Server-wide numbers of one snapshot.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPoint {
    pub connections: usize,
    pub streams: usize,
    pub viewers: usize,
    pub fps_in: f64,
    #[serde(flatten)]
    pub rates: Rates,
    pub dropped: u64,
}

/// One live stream in a snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamPoint {
    pub stream_key: String,
    pub title: String,
    pub streamer: UserRef,
    pub status: StreamStatus,
    pub media: &'static str,
    pub started_at: Option<Millis>,
    pub viewers: usize,
    /// Viewers at each delivery level: every frame, reduced, minimal.
    pub levels: [usize; LEVELS],
    pub fps: f64,
    #[serde(flatten)]
    pub rates: Rates,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub at: Millis,
    pub server: ServerPoint,
    pub streams: Vec<StreamPoint>,
}

/// Where snapshots are published.
#[derive(Debug)]
pub struct Feed {
    latest: watch::Sender<Arc<str>>,
    clients: Arc<Semaphore>,
    /// Cancelled at shutdown: open feeds end so connections can close.
    closed: CancellationToken,
}

impl Feed {
    pub fn new(max_clients: usize) -> Self {
        let empty = serde_json::to_string(&Snapshot {
            at: now_ms(),
            server: ServerPoint::default(),
            streams: Vec::new(),
        })
        .unwrap_or_default();
        Self {
            latest: watch::Sender::new(empty.into()),
            clients: Arc::new(Semaphore::new(max_clients)),
            closed: CancellationToken::new(),
        }
    }

    pub fn latest(&self) -> Arc<str> {
        self.latest.borrow().clone()
    }

    pub fn close(&self) {
        self.closed.cancel();
    }
}

/// Counters at the previous sample, to turn totals into rates.
#[derive(Debug, Clone, Copy, Default)]
struct Prev {
    bytes_out: u64,
    dropped: u64,
    delay_us: u64,
    delays: u64,
}

impl Prev {
    /// Rates from `before` to these counters over `secs`, with the totals given.
    fn rates(
        &self,
        before: &Prev,
        secs: f64,
        kbps_in: f64,
        frames_in: u64,
        frames_out: u64,
    ) -> Rates {
        Rates {
            kbps_in,
            kbps_out: per_sec(self.bytes_out, before.bytes_out, secs) * 8.0 / 1000.0,
            drops_per_sec: per_sec(self.dropped, before.dropped, secs),
            latency_ms: mean_ms(self.delay_us, before.delay_us, self.delays, before.delays),
            frames_in,
            frames_out,
        }
    }
}

fn per_sec(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

fn mean_ms(sum_us: u64, prev_sum_us: u64, n: u64, prev_n: u64) -> f64 {
    let n = n.saturating_sub(prev_n);
    if n == 0 {
        0.0
    } else {
        sum_us.saturating_sub(prev_sum_us) as f64 / n as f64 / 1000.0
    }
}

/// Takes a snapshot every [`INTERVAL`] until `shutdown`.
pub async fn sample(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev_streams: HashMap<String, Prev> = HashMap::new();
    let mut prev_server = Prev::default();
    let mut prev_at = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        let now = Instant::now();
        let secs = now
            .saturating_duration_since(prev_at)
            .as_secs_f64()
            .max(0.001);
        prev_at = now;
        let taps: HashMap<String, _> = hub.taps.snapshot().into_iter().collect();
        let mut streams = Vec::new();
        let mut next = HashMap::new();
        for info in hub.relay.list() {
            let Some(stats) = hub.relay.get_stream_stats(&info.stream_key, now) else {
                continue;
            };
            let totals = taps.get(&info.stream_key);
            let cur = totals.map_or(Prev::default(), |t| {
                t.set_mode(stats.media);
                let sum = t.totals();
                Prev {
                    bytes_out: sum.bytes_out,
                    dropped: sum.dropped,
                    delay_us: t.delay_us.load(std::sync::atomic::Ordering::Relaxed),
                    delays: t.delays.load(std::sync::atomic::Ordering::Relaxed),
                }
            });
            let before = prev_streams.get(&info.stream_key).copied().unwrap_or(cur);
            streams.push(StreamPoint {
                stream_key: info.stream_key.clone(),
                title: info.title,
                streamer: info.streamer,
                status: info.status,
                media: stats.media.as_str(),
                started_at: info.started_at,
                viewers: stats.viewer_count,
                levels: stats.levels,
                fps: stats.fps,
                rates: cur.rates(
                    &before,
                    secs,
                    stats.bitrate_kbps,
                    stats.frames_in,
                    stats.frames_out,
                ),
            });
            next.insert(info.stream_key, cur);
        }
        prev_streams = next;

        let m = &hub.metrics;
        let cur = Prev {
            bytes_out: m.bytes_out.get(),
            dropped: m.dropped_total(),
            delay_us: (m.queue_delay.get_sample_sum() * 1e6) as u64,
            delays: m.queue_delay.get_sample_count(),
        };
        let server = ServerPoint {
            connections: hub.connections.load(std::sync::atomic::Ordering::Relaxed),
            streams: streams.len(),
            viewers: streams.iter().map(|s| s.viewers).sum(),
            fps_in: streams.iter().map(|s| s.fps).sum(),
            rates: cur.rates(
                &prev_server,
                secs,
                streams.iter().map(|s| s.rates.kbps_in).sum(),
                m.frames_in.get(),
                m.frames_out.get(),
            ),
            dropped: cur.dropped,
        };
        prev_server = cur;
        let snapshot = Snapshot {
            at: now_ms(),
            server,
            streams,
        };
        match serde_json::to_string(&snapshot) {
            Ok(json) => {
                hub.dashboard.latest.send_replace(json.into());
            }
            Err(e) => tracing::warn!(error = %e, "dashboard snapshot not serializable"),
        }
    }
    hub.dashboard.close();
}

/// Compares without leaking, through timing, how much of the token matched.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an admin route refused a request.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("this needs the admin token: Authorization: Bearer TOKEN")]
    NoToken,
    #[error("the admin token is wrong")]
    WrongToken,
    #[error("too many dashboards open (--dashboard-clients)")]
    TooManyFeeds,
    #[error("the database is not answering")]
    Database(#[from] crate::store::StoreError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::NoToken | Self::WrongToken => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            Self::TooManyFeeds => (StatusCode::SERVICE_UNAVAILABLE, "SERVER_FULL"),
            Self::Database(e) => {
                tracing::warn!(error = %e, "admin route: database");
                (StatusCode::SERVICE_UNAVAILABLE, "DATABASE")
            }
        };
        let body = Json(json!({"error": {"code": code, "message": self.to_string()}}));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))];
            (status, challenge, body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

/// `Ok` when no admin token is set or the request carries it.
pub fn authorize(hub: &Hub, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(token) = hub.config.admin_token.as_deref() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.trim(), token) => Ok(()),
        Some(_) => Err(AdminError::WrongToken),
        None => Err(AdminError::NoToken),
    }
}

/// Decrements the feed gauge when a feed ends, however it ends.
struct FeedGuard {
    hub: Arc<Hub>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        self.hub.metrics.dashboard_clients.dec();
    }
}

/// `GET /api/dashboard/events`: the latest snapshot at once, then one per interval.
pub async fn events(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    authorize(&hub, &headers)?;
    let permit = Arc::clone(&hub.dashboard.clients)
        .try_acquire_owned()
        .map_err(|_| AdminError::TooManyFeeds)?;
    hub.metrics.dashboard_clients.inc();
    let rx = hub.dashboard.latest.subscribe();
    let closed = hub.dashboard.closed.clone();
    let guard = FeedGuard {
        hub: Arc::clone(&hub),
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(
        (rx, closed, guard, true),
        |(mut rx, closed, guard, first)| async move {
            if !first {
                tokio::select! {
                    _ = closed.cancelled() => return None,
                    changed = rx.changed() => changed.ok()?,
                }
            }
            let data = rx.borrow_and_update().clone();
            let event = Event::default().event("snapshot").data(&*data);
            Some((Ok::<_, Infallible>(event), (rx, closed, guard, false)))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /api/dashboard`: the latest snapshot.
pub async fn snapshot(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    authorize(&hub, &headers)?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        hub.dashboard.latest().to_string(),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct SessionsQuery {
    limit: Option<usize>,
}

/// `GET /api/sessions?limit=N`: past and running sessions from the database, newest first.
pub async fn sessions(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Query(query): Query<SessionsQuery>,
) -> Result<Response, AdminError> {
    authorize(&hub, &headers)?;
    let limit = query
        .limit
        .unwrap_or(SESSIONS_DEFAULT)
        .clamp(1, SESSIONS_MAX);
    let sessions = hub.store.sessions(limit).await?;
    Ok(Json(json!({ "sessions": sessions })).into_response())
}
