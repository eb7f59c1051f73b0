//! The admin routes: the dashboard's data (`/api/dashboard`, its server-sent events) and past
//! sessions (`/api/sessions`). With an admin token (`--admin-token`, or the one a server on a
//! non-loopback address stores for itself: `admin_token`), every route here needs
//! `Authorization: Bearer TOKEN`. Also the task that samples the server for the dashboard.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use streamhub_protocol::server::Track;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::api_error;
use crate::clock::now_ms;
use crate::dashboard::{ClusterPoint, INTERVAL, NodeViewers, Sampler, ServerTotals, StreamSample};
use crate::hub::Hub;
use crate::ids::secrets_match;

/// Cluster mode: every stream's viewers are the cluster's; the cluster's streams this node
/// does not relay are added as their records say (no rates: those are their origins').
fn with_cluster_streams(hub: &Hub, mut samples: Vec<StreamSample>) -> Vec<StreamSample> {
    let Some(cluster) = &hub.cluster else {
        return samples;
    };
    for s in &mut samples {
        // The cluster's count, not this node's alone (the node's own are in `by_node`).
        s.stats.viewer_count = cluster.total(&s.info.stream_key).max(s.stats.viewer_count);
    }
    for record in cluster.records() {
        let key = record.info.stream_key.clone();
        if record.info.started_at.is_none() || samples.iter().any(|s| s.info.stream_key == key) {
            continue;
        }
        let by_node: Vec<NodeViewers> = cluster
            .by_node(&key)
            .into_iter()
            .map(|(node, viewers)| NodeViewers { node, viewers })
            .collect();
        let stats = crate::relay::StreamStats {
            viewer_count: by_node.iter().map(|n| n.viewers).sum(),
            media: record.media,
            started_at: record.info.started_at,
            ..Default::default()
        };
        samples.push(StreamSample {
            info: record.info,
            stats,
            delay_us: 0,
            delays: 0,
            by_node,
            origin: Some(record.origin),
        });
    }
    samples
}

/// Sessions `GET /api/sessions` returns by default, and at most.
const SESSIONS_DEFAULT: usize = 50;
const SESSIONS_MAX: usize = 500;

/// Takes a dashboard snapshot every [`INTERVAL`] until `shutdown`.
pub(crate) async fn sample(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sampler = Sampler::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        let now = Instant::now();
        hub.metrics.sample_queues(&hub.relay.viewer_queues());
        let taps = hub.taps.snapshot();
        let samples = hub
            .relay
            .snapshot(now)
            .into_iter()
            .map(|(info, stats)| {
                let tap = taps.iter().find(|(k, _)| *k == info.stream_key);
                let (delay_us, delays) = tap.map_or((0, 0), |(_, t)| {
                    (
                        t.delay_us.load(Ordering::Relaxed),
                        t.delays.load(Ordering::Relaxed),
                    )
                });
                let (by_node, origin) = hub.cluster.as_ref().map_or((Vec::new(), None), |c| {
                    let by_node = c
                        .by_node(&info.stream_key)
                        .into_iter()
                        .map(|(node, viewers)| NodeViewers { node, viewers })
                        .collect();
                    (by_node, c.record(&info.stream_key).map(|r| r.origin))
                });
                StreamSample {
                    info,
                    stats,
                    delay_us,
                    delays,
                    by_node,
                    origin,
                }
            })
            .collect::<Vec<_>>();
        let samples = with_cluster_streams(&hub, samples);
        let m = &hub.metrics;
        let totals = ServerTotals {
            connections: hub.connections.load(Ordering::Relaxed),
            // The dashboard's frames are pictures and video: 50 audio chunks a second would
            // read as fps.
            frames_in: m.frames_in(Track::Video),
            frames_out: m.frames_out(Track::Video),
            bytes_out: m.bytes_out.get(),
            dropped: m.dropped_total(),
            delay_us: (m.queue_delay.get_sample_sum() * 1e6) as u64,
            delays: m.queue_delay.get_sample_count(),
        };
        let mut snapshot = sampler.take(now, now_ms(), samples, totals);
        snapshot.cluster = hub.cluster.as_ref().map(|c| ClusterPoint {
            node: c.node.clone(),
            nodes: c.nodes(),
            bus_up: c.is_up(),
        });
        hub.dashboard.publish(&snapshot);
    }
    hub.dashboard.close();
}

/// Why an admin route refused a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
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
        let mut response = api_error::body(status, code, &self.to_string());
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `Ok` when the server has no admin token (loopback only, none set or stored) or the
/// request carries it.
pub(crate) fn authorize(hub: &Hub, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(token) = hub.admin_token.get() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if secrets_match(&token, g.trim()) => Ok(()),
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
pub(crate) async fn events(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    authorize(&hub, &headers)?;
    let permit = Arc::clone(hub.dashboard.clients())
        .try_acquire_owned()
        .map_err(|_| AdminError::TooManyFeeds)?;
    hub.metrics.dashboard_clients.inc();
    let rx = hub.dashboard.subscribe();
    let closed = hub.dashboard.closed().clone();
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
pub(crate) async fn snapshot(
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
pub(crate) struct SessionsQuery {
    limit: Option<usize>,
}

/// `GET /api/sessions?limit=N`: past and running sessions from the database, newest first.
pub(crate) async fn sessions(
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
