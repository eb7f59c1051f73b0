//! HTTP routes: health, the stream API. Socket.IO is layered on top in [`crate::run`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use streamhub_protocol::server::StreamList;
use streamhub_protocol::{ErrorCode, validate};

use crate::Hub;

/// The HTTP routes alone, so they can be tested with `oneshot` and no socket.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/streams", get(streams))
        .route("/api/streams/{key}", get(stream))
        .fallback(not_found)
        .with_state(hub)
}

fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn healthz(State(hub): State<Arc<Hub>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": if hub.shutting_down.load(Ordering::Relaxed) { "draining" } else { "ok" },
        "streams": hub.relay.stream_count(),
        "connections": hub.connections.load(Ordering::Relaxed),
        "connectionsRefused": hub.counters.connections_refused.load(Ordering::Relaxed),
        "refused": hub.counters.refused_snapshot(),
    }))
}

async fn streams(State(hub): State<Arc<Hub>>) -> Json<StreamList> {
    Json(StreamList {
        streams: hub.relay.list(),
    })
}

async fn stream(State(hub): State<Arc<Hub>>, Path(key): Path<String>) -> Response {
    let found = validate::stream_key(&key).ok().and_then(|k| {
        let info = hub.relay.stream_info(k)?;
        let stats = hub.relay.get_stream_stats(k, Instant::now())?;
        Some((info, stats))
    });
    match found {
        Some((stream, stats)) => Json(json!({"stream": stream, "stats": stats})).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            ErrorCode::StreamNotFound,
            "no stream with this key (it may have ended)",
        ),
    }
}

/// Pages and assets; anything else is a JSON 404 under /api and a plain one elsewhere.
async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::StreamNotFound,
            "no such route",
        );
    }
    crate::web::page(&uri).unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_json(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let res = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn health_and_unknown_stream() {
        let hub = Arc::new(Hub::new(Config::defaults()));
        let (status, body) = get_json(router(hub.clone()), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["streams"], 0);

        let (status, body) = get_json(router(hub.clone()), "/api/streams/sk_nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "STREAM_NOT_FOUND");

        let (status, body) = get_json(router(hub), "/api/streams").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["streams"], json!([]));
    }
}
