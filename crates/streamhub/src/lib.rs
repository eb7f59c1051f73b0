//! StreamHub: a self-hosted live-streaming hub. A streamer sends each frame once over
//! Socket.IO; the server multicasts it to every viewer of the stream.
//!
//! This file is the map: the modules, and the path a frame takes through them. Dependencies
//! point down the list; nothing imports the crate root.
//!
//! # Modules
//! Running the server:
//! - [`server`]: bind, assemble routes and the Socket.IO layer, start the background tasks,
//!   serve, drain on shutdown (`run`, `listen`). `accept`: the accept loop (connections per
//!   address, header-read timeout, TLS handshake, HTTP/1.1 with upgrades). [`tls`]: HTTPS
//!   (`--tls-cert`, `--tls-self-signed`), the certificate swapped on reload (SIGHUP);
//!   `acme`: `--acme-domain`'s certificates (ordered, cached, renewed; the CA's TLS-ALPN-01
//!   check answered in the accept loop); `redirect`: `--http-redirect`'s plain-HTTP listener.
//! - `socket`: Socket.IO glue: one ordered actor per connection turning events into relay
//!   calls and replies into emits; the periodic ticker (viewer counts, expired streams).
//! - `media_channel`: `GET /media`, the viewers' plain-WebSocket frame channel.
//! - `http`: `/healthz`, the `/api/streams` JSON API, `/metrics`; `http::admin` the
//!   dashboard's data and `/api/sessions` behind the admin token. [`admin_token`]: which
//!   token that is (`--admin-token`, stored, or generated on a non-loopback address), and
//!   the `streamhub admin-token` subcommand.
//! - `api_error`: the JSON error body every HTTP refusal uses.
//!
//! State and its parts:
//! - `hub`: the shared state handed to every connection (relay, bus, store, metrics, ...).
//! - `sink`: where frames leave for the network: the relay's sinks for Socket.IO and media
//!   channels, the registry of open media channels. `direct`: Socket.IO viewers' direct
//!   writes, reserved during a fan-out and written after it, spread over the workers.
//! - `relay`: the fan-out core (the design note's `StreamDistributor`): streams, viewers,
//!   catch-up, slow-viewer policy. Sans-IO: no sockets, no clock; typed results.
//! - `webm`: the sans-IO WebM push parser cutting live streams at Clusters.
//! - `bus`: the internal bus (the note's Pub/Sub) for lifecycle events; persistence, metrics
//!   and the log listen there, never on the frame path.
//! - `store`: the storage interface and its SQLite backend; `store::writer` feeds it from
//!   the bus (and chat handlers, which wait for the commit before acking) through a bounded
//!   queue in batches, and flushes it on shutdown.
//! - `metrics`: Prometheus counters and gauges; `dashboard`: the dashboard's snapshots.
//! - `attempts`: wrong publish secrets per client address (sans-IO backoff).
//! - `thumbnails`: each stream's latest `stream:thumbnail` JPEG (bounded, rate-limited, gone
//!   when the stream ends); `preview`: the viewer page's Open Graph tags for link previews.
//! - `chatlog`: recent chat per channel for late joiners. `ids`: keys, tokens, connection
//!   labels, the one constant-time secret comparison. `clock`: the wall clock, read only at
//!   the edges. [`config`]: flags, environment and TOML, validated at start. `web`: the
//!   pages, embedded in release builds; `csp`: their Content-Security-Policy (inline code of
//!   the design note's pages allowed by hash) and who may frame them.
//! - `fuzzing`: entry points for the fuzz targets (`fuzz/`) and their bounded run on stable.
//! - Wire types, event names, error codes and validation live in the `streamhub-protocol`
//!   crate.
//!
//! # A frame's path
//! 1. The streamer emits `stream:data:send {streamKey, data}`. socketioxide decodes it on the
//!    connection's read task, where `socket`'s extractor parses it into a typed request and
//!    queues it on the connection's bounded channel (arrival order is kept).
//! 2. The streamer's connection actor (`socket::stream::data`) reads the clock and calls
//!    `relay::Distributor::publish`: ownership, size and rate checks, a `seq` and the server
//!    `timestamp`, the catch-up (30-frame ring, or the GOP of encoded video).
//! 3. The relay offers the frame to each viewer's `sink::SocketSink`, under that viewer's
//!    policy (level, resync, eviction), byte budget (`--viewer-queue-bytes`) and, for
//!    pictures, time bound (`--picture-queue-ms` of the stream's rate). The frame's
//!    wire form is built once and cached on it (`OutgoingData`): for a media-channel viewer
//!    one complete websocket frame of the media message, for a Socket.IO viewer one complete websocket frame of the Engine.IO
//!    packet (plus its binary attachment); each viewer's bounded queue gets a `Bytes` clone,
//!    or, when a Socket.IO viewer's queue is empty, its connection is reserved for a direct
//!    write (`direct`). A full queue or budget drops the frame for that viewer only; full for
//!    too long: evicted.
//! 4. The relay returns a `relay::Delivery`: what it sent, dropped and evicted. The actor
//!    records it in the metrics once (atomics), tells viewers their new delivery level, and
//!    evicts the stalled ones.
//! 5. Once the relay's lock is released, `direct::fan_out` writes the reserved direct writes
//!    (non-blocking; what a socket does not take goes to its writer task) in tasks of 256
//!    that both runtime workers take. Each connection's websocket writer drains its queue (on Socket.IO, our
//!    patched engineioxide writer, `vendor/README.md`; on a media channel, `media_channel`'s own:
//!    a shared frame goes out as it is, no copy per viewer). Nothing
//!    on this path awaits a database, a metric, or another stream's lock.

mod accept;
mod acme;
pub mod admin_token;
mod api_error;
mod attempts;
mod bus;
mod chatlog;
mod clock;
mod cluster;
pub mod config;
mod csp;
mod dashboard;
mod direct;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod hub;
mod ids;
mod media_channel;
mod metrics;
mod preview;
mod redirect;
mod relay;
pub mod server;
mod sink;
mod socket;
mod store;
mod thumbnails;
pub mod tls;
mod web;
mod webm;

pub use server::{listen, run, run_with_reload};
