//! HTTP routes: health, the stream API, metrics, and (in [`admin`]) past sessions and the
//! dashboard's data. The server (`server.rs`) adds the media channel and layers Socket.IO on
//! top.

pub(crate) mod admin;
pub(crate) mod origin;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use streamhub_protocol::server::StreamList;
use streamhub_protocol::{ErrorCode, validate};

use crate::api_error::error;
use crate::hub::Hub;

/// The HTTP routes alone (no Socket.IO, no media channel), so they can be tested with
/// `oneshot` and no socket. Extra routes (`extra`) go in before the fallback.
pub(crate) fn router(hub: Arc<Hub>, extra: Router<Arc<Hub>>) -> Router {
    extra
        .route("/healthz", get(healthz))
        .route("/api/streams", get(streams))
        .route("/api/streams/{key}", get(stream))
        .route("/api/streams/{key}/thumbnail", get(thumbnail))
        .route("/api/channels/{name}", get(channel))
        .route("/c/{name}", get(channel_page))
        .route("/c/{name}/", get(channel_slash))
        .route("/metrics", get(metrics))
        .route("/api/sessions", get(admin::sessions))
        .route("/api/dashboard", get(admin::snapshot))
        .route("/api/dashboard/events", get(admin::events))
        .fallback(not_found)
        .with_state(hub)
}

async fn healthz(State(hub): State<Arc<Hub>>) -> Json<serde_json::Value> {
    let bus_up = hub.cluster.as_ref().map(|c| c.is_up());
    let status = if hub.draining() {
        "draining"
    } else if bus_up == Some(false) {
        // Serving this node's own streams to its own viewers; nothing crosses nodes.
        "degraded"
    } else {
        "ok"
    };
    let mut body = json!({
        "status": status,
        "streams": hub.relay.stream_count(),
        "connections": hub.connections.load(Ordering::Relaxed),
        "connectionsRefused": hub.counters.connections_refused.get(),
        "refused": hub.counters.refused_snapshot(),
    });
    if let Some(c) = &hub.cluster {
        body["cluster"] = json!({
            "node": c.node,
            "bus": if c.is_up() { "up" } else { "down" },
            "nodes": c.nodes().len().max(1),
        });
    }
    Json(body)
}

async fn streams(State(hub): State<Arc<Hub>>) -> Json<StreamList> {
    Json(StreamList {
        streams: hub.streams(),
    })
}

async fn stream(State(hub): State<Arc<Hub>>, Path(key): Path<String>) -> Response {
    let found = validate::stream_key(&key)
        .ok()
        .and_then(|k| hub.describe(k, Instant::now()));
    match found {
        Some((stream, stats)) => Json(json!({"stream": stream, "stats": stats})).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            ErrorCode::StreamNotFound,
            "no stream with this key (it may have ended)",
        ),
    }
}

/// `GET /api/channels/{name}`: what the channel is doing (`ChannelState`), or a JSON 404 for a
/// name that was never live here and is not claimed.
async fn channel(State(hub): State<Arc<Hub>>, Path(name): Path<String>) -> Response {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such channel: nobody streamed under this name here, and nobody claimed it",
        )
    };
    let Ok(name) = validate::channel(&name, hub.config.max_username_chars) else {
        return not_found();
    };
    match hub.channel_state(&name).await {
        Ok(state) if state.live.is_none() && state.last.is_none() && !state.claimed => not_found(),
        Ok(state) => Json(state).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "channel state");
            crate::api_error::body(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE",
                "the channel's state cannot be read right now",
            )
        }
    }
}

/// `/c/NAME`, the channel page: the viewer page, which finds the channel's live stream itself
/// and follows it; with the live stream's link-preview tags, as `/viewer.html?stream=KEY` has.
async fn channel_page(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let ctx = crate::web::PageContext {
        host,
        frame_ancestors: &hub.config.frame_ancestors,
    };
    let live = match validate::channel(&name, hub.config.max_username_chars) {
        Ok(name) => hub.channel_live(&name),
        Err(_) => None,
    };
    let head = match live {
        Some(s) => preview_of(&hub, &s.stream_key, host).await,
        None => None,
    };
    crate::web::page(&Uri::from_static("/viewer.html"), ctx, head.as_deref())
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
}

/// `/c/NAME/`, a channel link pasted with a trailing slash, goes to `/c/NAME` (the path as
/// sent, so the name keeps its encoding; it always starts with `/c/`: no open redirect).
async fn channel_slash(uri: Uri) -> Redirect {
    Redirect::permanent(uri.path().trim_end_matches('/'))
}

/// How long browsers and previews may use a thumbnail before asking again (with
/// `If-None-Match`): the streamer page sends a new one every 5 s.
const THUMBNAIL_CACHE: &str = "public, max-age=5";

/// A stream's latest thumbnail (`stream:thumbnail`), `304` when `If-None-Match` names it.
async fn thumbnail(
    State(hub): State<Arc<Hub>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(key) = validate::stream_key(&key) else {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::StreamNotFound,
            "no stream with this key (it may have ended)",
        );
    };
    let Some(thumb) = hub.thumbnail(key).await else {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no thumbnail for this stream (it has not sent one, or it ended)",
        );
    };
    let etag = HeaderValue::from_str(&thumb.etag)
        .unwrap_or_else(|_| unreachable!("an ETag is hex between quotes"));
    let cache = [
        (header::ETAG, etag),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(THUMBNAIL_CACHE),
        ),
    ];
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| thumb.matches(v));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"))],
        thumb.jpeg.clone(),
    )
        .into_response()
}

/// The link-preview tags of `/viewer.html?stream=KEY` for a stream that exists.
async fn preview_head(hub: &Hub, uri: &Uri, host: Option<&str>) -> Option<String> {
    let key = uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("stream="))?;
    preview_of(hub, key, host).await
}

/// The link-preview tags of a stream that exists.
async fn preview_of(hub: &Hub, key: &str, host: Option<&str>) -> Option<String> {
    let key = validate::stream_key(key).ok()?;
    let (stream, _) = hub.describe(key, Instant::now())?;
    let thumb = hub.thumbnail(key).await;
    let origin = crate::preview::origin(host, hub.config.tls.is_some());
    Some(crate::preview::head(&crate::preview::Preview {
        stream: &stream,
        origin: origin.as_deref(),
        thumbnail_version: thumb.as_ref().map(|t| t.etag.trim_matches('"')),
    }))
}

/// Prometheus text format (version 0.0.4).
async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        hub.metrics.render(&hub.gauges()),
    )
        .into_response()
}

/// Pages and assets; anything else is a JSON 404 under /api and a plain one elsewhere.
async fn not_found(State(hub): State<Arc<Hub>>, uri: Uri, headers: HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        return error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route");
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let ctx = crate::web::PageContext {
        host,
        frame_ancestors: &hub.config.frame_ancestors,
    };
    // Link previews: crawlers run no scripts, so the viewer page comes with its stream's tags.
    let head = if uri.path() == "/viewer.html" {
        preview_head(&hub, &uri, host).await
    } else {
        None
    };
    crate::web::page(&uri, ctx, head.as_deref())
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_raw(app: Router, uri: &str, token: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = app
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, bytes.to_vec())
    }

    async fn get_json(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let (status, bytes) = get_raw(app, uri, None).await;
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    /// A hub on a throw-away SQLite file (the directory must outlive the hub).
    async fn hub(tweak: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Arc<Hub>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::defaults();
        config.db = dir.path().join("t.db");
        tweak(&mut config);
        let store = crate::store::sqlite::SqliteStore::open(&config.db)
            .await
            .expect("store");
        let metrics = Arc::new(crate::metrics::Metrics::new());
        // No writer drains this queue: these tests do not chat.
        let (writes, _) =
            crate::store::writer::WriteQueue::new(config.db_queue, Arc::clone(&metrics));
        (
            dir,
            Arc::new(Hub::new(config, Arc::new(store), writes, metrics, None)),
        )
    }

    #[tokio::test]
    async fn an_unknown_api_route_is_not_found_not_a_missing_stream() {
        let (_dir, hub) = hub(|_| {}).await;
        let (status, body) = get_json(router(hub, Router::new()), "/api/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        assert_eq!(body["error"]["message"], "no such route");
    }

    #[tokio::test]
    async fn admin_routes_need_the_token_when_one_is_set() {
        let (_dir, hub) = hub(|c| c.admin_token = Some("s3cret".into())).await;
        for uri in ["/api/sessions", "/api/dashboard", "/api/dashboard/events"] {
            let (status, body) = get_raw(router(hub.clone(), Router::new()), uri, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(body["error"]["code"], "UNAUTHORIZED");
            let (status, _) = get_raw(router(hub.clone(), Router::new()), uri, Some("wrong")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with a wrong token");
        }
        let (status, body) = get_raw(
            router(hub.clone(), Router::new()),
            "/api/sessions",
            Some("s3cret"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["sessions"], json!([]));
        let (status, _) = get_raw(
            router(hub.clone(), Router::new()),
            "/api/dashboard",
            Some("s3cret"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get_raw(router(hub, Router::new()), "/metrics", None).await;
        assert_eq!(status, StatusCode::OK, "/metrics stays open for scrapers");
    }

    #[tokio::test]
    async fn metrics_are_text_with_every_family() {
        let (_dir, hub) = hub(|_| {}).await;
        hub.counters.refused(ErrorCode::InvalidPayload);
        let (status, body) = get_raw(router(hub, Router::new()), "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body).expect("utf-8");
        for family in [
            "streamhub_build_info",
            "streamhub_connections ",
            "streamhub_media_channels 0",
            "streamhub_streams{status=\"live\"} 0",
            "streamhub_viewers ",
            "streamhub_frames_in_total",
            "streamhub_bytes_out_total",
            "streamhub_frames_dropped_total{reason=\"slow_viewer\"}",
            "streamhub_viewer_queue_delay_seconds_bucket",
            "streamhub_chat_messages_total",
            "streamhub_errors_total{code=\"INVALID_PAYLOAD\"} 1",
            "streamhub_db_writes_dropped_total{reason=\"queue_full\"} 0",
            "streamhub_thumbnails_accepted_total 0",
            "streamhub_thumbnails_refused_total{reason=\"cluster\"} 0",
            "streamhub_thumbnail_bytes 0",
        ] {
            assert!(text.contains(family), "{family} missing from\n{text}");
        }
    }

    #[tokio::test]
    async fn health_and_unknown_stream() {
        let (_dir, hub) = hub(|_| {}).await;
        let (status, body) = get_json(router(hub.clone(), Router::new()), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["streams"], 0);

        let (status, body) =
            get_json(router(hub.clone(), Router::new()), "/api/streams/sk_nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "STREAM_NOT_FOUND");

        let (status, body) = get_json(router(hub, Router::new()), "/api/streams").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["streams"], json!([]));
    }
}
