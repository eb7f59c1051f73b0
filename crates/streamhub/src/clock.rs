//! The wall clock. Read only at the edges (connection handlers, metrics, the dashboard, the
//! store writer) and passed into the relay as an argument, so the fan-out core never reads a
//! clock and its tests never sleep.

use std::time::{SystemTime, UNIX_EPOCH};

use streamhub_protocol::Millis;

/// Wall-clock milliseconds since the Unix epoch (the unit of every timestamp on the wire).
pub(crate) fn now_ms() -> Millis {
    now_us() / 1000
}

/// Wall-clock microseconds since the Unix epoch (queue delays).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
