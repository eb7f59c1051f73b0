//! The JSON error body every HTTP answer uses (the API, the admin routes, the media channel's
//! refusals): `{"error": {"code", "message"}}`, the same codes as the Socket.IO `error` event.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use streamhub_protocol::ErrorCode;

/// An HTTP refusal: the status and the documented body.
pub(crate) fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    body(status, code.as_str(), message)
}

/// Like [`error`] for the admin routes' own codes (`UNAUTHORIZED`, `DATABASE`), which are not
/// Socket.IO error codes.
pub(crate) fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}
