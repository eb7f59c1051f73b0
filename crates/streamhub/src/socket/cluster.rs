//! Cluster mode, the tasks: what arrives from Redis is applied to this node's hub (frames into
//! replicas, control messages to the local participants, registry changes to the mirror), and
//! what happens here that others must see goes out (frames, counts, records). Single-node mode
//! runs none of this: every function here is called with the hub's cluster, and the room
//! events go out through [`fanout`], which delivers locally when there is no bus.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socketioxide::SocketIo;
use streamhub_protocol::server::{self, EndReason, MediaMode, StreamStatus};
use streamhub_protocol::{Millis, events};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{emit_room, stream};
use crate::clock::now_ms;
use crate::cluster::{
    Cluster, ClusterError, Control, Cursor, Record, RegistryChange, keys, next_epoch,
};
use crate::hub::Hub;

/// A room event, delivered to this node's participants of the stream. With a bus it goes to
/// every node's participants instead, this node's included, when it comes back from Redis, so
/// all of them see the same order; without one (single node, or Redis away) it goes out here
/// at once.
pub(crate) async fn fanout(hub: &Arc<Hub>, io: &SocketIo, key: &str, control: Control) {
    if let Some(cluster) = &hub.cluster
        && cluster.is_up()
    {
        match cluster.publish(key, &control).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(stream = key, error = %e, "bus publish failed; local only"),
        }
    }
    deliver(hub, io, key, control).await;
}

/// Applies a control message to this node's participants of a stream.
async fn deliver(hub: &Arc<Hub>, io: &SocketIo, key: &str, control: Control) {
    match control {
        Control::Chat { msg } => emit_room(io, key, events::CHAT_MESSAGE, &msg).await,
        Control::Reaction { reaction } => emit_room(io, key, events::REACTION, &reaction).await,
        Control::Status { status, grace_ms } => {
            if let Some(cluster) = &hub.cluster
                && let Some(mut record) = cluster.record(key)
            {
                record.info.status = status;
                hub.relay.mirror(&record.info);
            }
            let payload = server::Status {
                stream_key: key.to_owned(),
                status,
                grace_ms,
            };
            emit_room(io, key, events::STREAM_STATUS, &payload).await;
        }
        Control::Started { stream } => {
            hub.relay.mirror(&stream);
            emit_room(
                io,
                key,
                events::STREAM_STARTED,
                &server::StreamEnvelope { stream },
            )
            .await;
        }
        Control::Updated { stream } => {
            hub.relay.mirror(&stream);
            emit_room(
                io,
                key,
                events::STREAM_UPDATED,
                &server::StreamEnvelope { stream },
            )
            .await;
        }
        Control::Ended { reason } => {
            // Out of this node's list before its viewers hear `stream:ended`, not at the
            // registry's next word: a channel page asking "what is live now" right after the
            // end must not be sent back to this stream.
            if let Some(cluster) = &hub.cluster {
                cluster.drop_record(key);
            }
            // The origin ended its own part already; replicas end here.
            if let Some(ended) = hub.relay.unfollow(key, Instant::now()) {
                stream::announce_local_end(hub, io, &ended.info.stream_key, reason).await;
            }
            if let Some(cluster) = &hub.cluster {
                cluster.forget(key);
                let _ = cluster.unsubscribe(key).await;
            }
        }
        Control::Viewers { node, count } => {
            let Some(cluster) = &hub.cluster else { return };
            let before = cluster.total(key);
            cluster.note_count(key, &node, count);
            let viewer_count = cluster.total(key);
            if viewer_count != before {
                let payload = server::Viewers {
                    stream_key: key.to_owned(),
                    viewer_count,
                };
                emit_room(io, key, events::STREAM_VIEWERS, &payload).await;
            }
        }
        Control::Keyframe { reason } => {
            if let Some(owner) = hub.relay.owner_of(key)
                && let Some(owner) = super::socket_by_conn(io, &owner)
            {
                stream::request_keyframe(
                    hub,
                    &owner,
                    key,
                    if reason == "join" { "join" } else { "resync" },
                );
            }
        }
        Control::Origin { node, epoch } => {
            let Some(cluster) = &hub.cluster else { return };
            if node != cluster.node && hub.relay.demote(key, epoch) {
                // Our streamer left and resumed elsewhere: this node keeps its viewers as a
                // follower of the new origin.
                tracing::info!(stream = key, origin = node, "stream moved to another node");
                start_reader(hub, key, None);
            }
        }
    }
}

/// Background work of cluster mode, until `shutdown`.
pub(crate) async fn run(hub: Arc<Hub>, io: SocketIo, shutdown: CancellationToken) {
    let Some(cluster) = hub.cluster.clone() else {
        return;
    };
    // Every log line of the cluster's tasks names this node.
    let span = tracing::info_span!("cluster", node = %cluster.node);
    let writer = tokio::spawn(
        write_frames(Arc::clone(&cluster), shutdown.child_token()).instrument(span.clone()),
    );
    let dispatcher = tokio::spawn(
        dispatch(Arc::clone(&hub), io.clone(), shutdown.child_token()).instrument(span.clone()),
    );
    maintain_loop(&hub, &io, &cluster, shutdown)
        .instrument(span)
        .await;
    writer.abort();
    dispatcher.abort();
    let _ = writer.await;
    let _ = dispatcher.await;
}

/// Every tick, [`maintain`]; tells when the bus goes down and comes back.
async fn maintain_loop(
    hub: &Arc<Hub>,
    io: &SocketIo,
    cluster: &Arc<Cluster>,
    shutdown: CancellationToken,
) {
    if let Err(e) = cluster.subscribe_registry().await {
        tracing::warn!(error = %e, "cannot subscribe to registry changes yet");
    }
    if let Err(e) = cluster.subscribe_channels().await {
        tracing::warn!(error = %e, "cannot subscribe to channel notices yet");
    }
    let mut tick = tokio::time::interval(crate::cluster::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = cluster.is_up();
    let mut orphans: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let up = maintain(hub, io, cluster, &mut orphans).await;
        if up && !was_up {
            tracing::info!("cluster bus is back");
            heal(hub, cluster).await;
        } else if !up && was_up {
            tracing::warn!("cluster bus is down: serving local streams only");
        }
        was_up = up;
    }
}

/// One tick: heartbeat, the registry mirror, this node's records, and streams whose origin
/// died. Returns whether the bus is up.
async fn maintain(
    hub: &Arc<Hub>,
    io: &SocketIo,
    cluster: &Arc<Cluster>,
    orphans: &mut HashMap<String, Instant>,
) -> bool {
    let wall = now_ms();
    if let Err(e) = cluster.heartbeat(wall).await {
        tracing::debug!(error = %e, "heartbeat failed");
        return false;
    }
    if let Err(e) = cluster.refresh().await {
        tracing::debug!(error = %e, "registry refresh failed");
    }
    // This node's own streams: records with fresh stats, keys kept alive.
    for (info, stats) in hub.relay.snapshot_origins(Instant::now()) {
        let key = info.stream_key.clone();
        if let Some(mut record) = cluster.record(&key)
            && record.origin == cluster.node
        {
            record.info = info;
            record.stats = serde_json::to_value(&stats).ok();
            record.media = stats.media;
            if let Err(e) = cluster.put_quiet(&record).await {
                tracing::debug!(stream = key, error = %e, "record refresh failed");
            }
            let _ = cluster.touch(&key).await;
        }
    }
    // Streams whose origin is gone: reconnecting here at once, ended after the grace period
    // (by one node for the cluster; by each node for its own participants).
    let grace = hub.config.relay.grace;
    let now = Instant::now();
    let mut seen = HashSet::new();
    for record in cluster.records() {
        let key = record.info.stream_key.clone();
        // A record naming this node for a stream it does not have is from before a restart
        // of this node: that origin is gone as surely as a dead node's.
        let mine = record.origin == cluster.node;
        let gone = if mine {
            hub.relay.epoch(&key).is_none_or(|(_, replica)| replica)
        } else {
            !cluster.is_alive(&record.origin)
        };
        if !gone {
            orphans.remove(&key);
            continue;
        }
        seen.insert(key.clone());
        let since = *orphans.entry(key.clone()).or_insert_with(|| {
            tracing::info!(
                stream = key,
                origin = record.origin,
                "origin gone: stream reconnecting"
            );
            now
        });
        if since == now {
            // Newly seen dead: this node's participants hear it now, whoever tells the
            // registry.
            let mut info = record.info.clone();
            info.status = StreamStatus::Reconnecting;
            hub.relay.mirror(&info);
            let status = server::Status {
                stream_key: key.clone(),
                status: StreamStatus::Reconnecting,
                grace_ms: Some(grace.as_millis() as u64),
            };
            emit_room(io, &key, events::STREAM_STATUS, &status).await;
            if record.info.status != StreamStatus::Reconnecting
                && cluster
                    .try_lock(&key, Duration::from_secs(2))
                    .await
                    .unwrap_or(false)
            {
                let mut r = record.clone();
                r.info.status = StreamStatus::Reconnecting;
                r.orphaned_at = Some(wall);
                let _ = cluster.put(&r).await;
                // Every node's participants hear it, also where the origin looks alive (it
                // restarted without the stream).
                let _ = cluster
                    .publish(
                        &key,
                        &Control::Status {
                            status: StreamStatus::Reconnecting,
                            grace_ms: Some(grace.as_millis() as u64),
                        },
                    )
                    .await;
            }
        }
        if now.saturating_duration_since(since) >= grace {
            orphans.remove(&key);
            if cluster.try_lock(&key, grace).await.unwrap_or(false) {
                let _ = cluster
                    .publish(
                        &key,
                        &Control::Ended {
                            reason: EndReason::StreamerGone,
                        },
                    )
                    .await;
                let _ = cluster.remove(&key).await;
            }
            if let Some(ended) = hub.relay.unfollow(&key, now) {
                stream::announce_local_end(
                    hub,
                    io,
                    &ended.info.stream_key,
                    EndReason::StreamerGone,
                )
                .await;
            }
        }
    }
    orphans.retain(|k, _| seen.contains(k));
    true
}

/// Redis came back (perhaps empty, after a restart): this node's records, counts and
/// followers are put back.
async fn heal(hub: &Arc<Hub>, cluster: &Arc<Cluster>) {
    for (info, stats) in hub.relay.snapshot_origins(Instant::now()) {
        let key = info.stream_key.clone();
        let record = match cluster.record(&key) {
            Some(mut r) if r.origin == cluster.node => {
                r.info = info;
                r.media = stats.media;
                r
            }
            _ => continue,
        };
        if let Err(e) = cluster.put(&record).await {
            tracing::debug!(stream = key, error = %e, "record not restored");
        }
        if let Some(init) = hub.relay.webm_init(&key) {
            let _ = cluster.put_init(&key, init).await;
        }
        let _ = cluster.subscribe(&key).await;
        let _ = cluster.set_count(&key, stats.viewer_count).await;
    }
    for key in hub.relay.followed() {
        let _ = cluster.subscribe(&key).await;
        if let Some(viewers) = hub.relay.viewer_count(&key) {
            let _ = cluster.set_count(&key, viewers).await;
        }
    }
}

/// Writes queued frames to the bus, in order. A keyframe moves the stream's catch-up start
/// (its record's `key_seq`); a WebM init segment is stored for new followers.
async fn write_frames(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let Some(mut rx) = cluster.take_outgoing() else {
        return;
    };
    loop {
        let o = tokio::select! {
            () = shutdown.cancelled() => break,
            o = rx.recv() => match o { Some(o) => o, None => break },
        };
        let key = o.key.clone();
        let frame = Arc::clone(&o.frame);
        if let Err(e) = cluster.write(o).await {
            tracing::debug!(stream = key, error = %e, "frame not written to the bus");
            continue;
        }
        if frame.media != MediaMode::Images && Cluster::catch_up_start(&frame).is_some() {
            if frame.init
                && let Some(init) = init_bytes(&frame)
                && let Err(e) = cluster.put_init(&key, init).await
            {
                tracing::debug!(stream = key, error = %e, "init segment not stored");
            }
            if let Some(mut record) = cluster.record(&key)
                && record.origin == cluster.node
            {
                record.key_seq = Some(frame.seq);
                record.media = frame.media;
                if let Err(e) = cluster.put_quiet(&record).await {
                    tracing::debug!(stream = key, error = %e, "catch-up start not recorded");
                }
            }
        }
    }
}

/// The init segment a WebM frame starts with (decoded, for base64 text).
fn init_bytes(frame: &crate::relay::Frame) -> Option<bytes::Bytes> {
    use base64::Engine;
    let raw = match &frame.data {
        streamhub_protocol::FrameData::Binary(b) => b.clone(),
        streamhub_protocol::FrameData::Text(t) => bytes::Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(t.trim())
                .ok()?,
        ),
    };
    (frame.init_len <= raw.len()).then(|| raw.slice(..frame.init_len))
}

/// Applies what arrives on the subscriber connection: control messages and registry
/// changes.
async fn dispatch(hub: Arc<Hub>, io: SocketIo, shutdown: CancellationToken) {
    let Some(cluster) = hub.cluster.clone() else {
        return;
    };
    let mut rx = cluster.messages();
    loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => break,
            m = rx.recv() => m,
        };
        let msg = match msg {
            Ok(msg) => msg,
            Err(RecvError::Lagged(n)) => {
                cluster.counters.lost_events.inc_by(n);
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let Some(text) = msg.value.as_str().map(|s| s.to_string()) else {
            continue;
        };
        if msg.channel == keys::registry() {
            if let Ok(change) = serde_json::from_str::<RegistryChange>(&text) {
                if change.exists {
                    let _ = cluster.load(&change.key).await;
                } else {
                    cluster.drop_record(&change.key);
                }
            }
            continue;
        }
        if msg.channel == keys::channels() {
            match serde_json::from_str::<server::ChannelLive>(&text) {
                Ok(live) => super::channel::deliver_live(&io, &live).await,
                Err(e) => tracing::debug!(error = %e, "bad channel notice"),
            }
            continue;
        }
        let Some(key) = keys::events_key(&msg.channel) else {
            continue;
        };
        match serde_json::from_str::<Control>(&text) {
            Ok(control) => deliver(&hub, &io, key, control).await,
            Err(e) => tracing::debug!(stream = key, error = %e, "bad control message"),
        }
    }
}

/// Makes this node a follower of another node's stream (a viewer of it joined here): its
/// control channel, its counts, a replica primed with the catch-up, and a reader for live
/// frames. Does nothing if the stream is already here.
pub(crate) async fn follow(hub: &Arc<Hub>, key: &str) -> Result<bool, ClusterError> {
    let Some(cluster) = &hub.cluster else {
        return Ok(false);
    };
    let _guard = hub.follow_lock(key).await;
    if hub.relay.epoch(key).is_some() {
        return Ok(true);
    }
    let record = match cluster.record(key) {
        Some(r) => Some(r),
        None => cluster.load(key).await?,
    };
    let Some(record) = record else {
        return Ok(false);
    };
    if record.origin == cluster.node {
        // Our own record, but the stream is gone from this node (it ended): not a stream.
        return Ok(false);
    }
    cluster.subscribe(key).await?;
    cluster.load_counts(key).await?;
    let now = Instant::now();
    let mut info = record.info.clone();
    info.viewer_count = 0;
    if hub.relay.follow(&info, record.epoch, now).is_err() {
        return Ok(false);
    }
    let (frames, last) = cluster.catch_up(key, &record).await?;
    if record.media == MediaMode::Webm
        && let Some(init) = cluster.init(key).await?
    {
        hub.relay
            .seed_init(key, init, frames.iter().any(|f| !f.data.is_binary()));
    }
    for f in frames {
        cluster.counters.frames_in.inc();
        cluster.counters.bytes_in.inc_by(f.data.len() as u64);
        // No viewer yet: this fills the replica's catch-up, nothing is sent.
        let _ = hub.relay.ingest(key, f, now);
    }
    start_reader(hub, key, Some(last));
    Ok(true)
}

/// Spawns the task that reads a followed stream's live frames (from `after`, or from now).
fn start_reader(hub: &Arc<Hub>, key: &str, after: Option<Cursor>) {
    let stop = CancellationToken::new();
    if let Some(old) = hub.readers.lock().insert(key.to_owned(), stop.clone()) {
        old.cancel();
    }
    let hub = Arc::clone(hub);
    let key = key.to_owned();
    let io = hub.io.get();
    let span = tracing::info_span!(
        "follow",
        node = hub.cluster.as_ref().map_or("", |c| c.node.as_str()),
        stream = %key
    );
    tokio::spawn(
        async move {
            let Some(io) = io else { return };
            read_frames(&hub, &io, &key, after, stop).await;
        }
        .instrument(span),
    );
}

/// Reads a followed stream's frames and relays them to this node's viewers, until stopped.
/// After an error (Redis away, or restarted empty) it starts again from the catch-up; the
/// frames missed in between are a gap the replica counts.
async fn read_frames(
    hub: &Arc<Hub>,
    io: &SocketIo,
    key: &str,
    after: Option<Cursor>,
    stop: CancellationToken,
) {
    let Some(cluster) = hub.cluster.clone() else {
        return;
    };
    let reader = match cluster.reader().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(stream = key, error = %e, "no reader connection");
            return;
        }
    };
    let mut after = after.unwrap_or_else(Cursor::now);
    while !stop.is_cancelled() {
        let read = tokio::select! {
            () = stop.cancelled() => break,
            r = cluster.read_after(&reader, key, &after) => r,
        };
        match read {
            Ok((frames, last)) => {
                after = last;
                for f in frames {
                    let wall = f.timestamp;
                    match crate::direct::fan_out(|| hub.relay.ingest(key, f, Instant::now())) {
                        Ok(delivery) => {
                            if delivery.gap {
                                cluster.counters.gaps.inc();
                            }
                            stream::settle_remote(hub, io, key, delivery, wall).await;
                        }
                        Err(e) => tracing::debug!(stream = key, error = %e, "frame not relayed"),
                    }
                }
            }
            Err(e) => {
                tracing::debug!(stream = key, error = %e, "reading frames failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                // Read on from the newest frames (what is still there): a gap, not a hang.
                if let Some(record) = cluster.record(key)
                    && let Ok((frames, last)) = cluster.catch_up(key, &record).await
                {
                    after = last;
                    for f in frames {
                        let wall = f.timestamp;
                        let ingest = || hub.relay.ingest(key, f, Instant::now());
                        if let Ok(delivery) = crate::direct::fan_out(ingest) {
                            stream::settle_remote(hub, io, key, delivery, wall).await;
                        }
                    }
                }
            }
        }
    }
    use fred::interfaces::ClientLike;
    let _ = reader.quit().await;
}

/// How long a followed stream stays with no viewer here before this node stops following it
/// (a joiner between following and joining, a page that reloads, keep the replica).
const LINGER: Duration = Duration::from_secs(5);

/// Stops following the streams this node has had no viewers of for [`LINGER`].
pub(crate) async fn unfollow_unwatched(hub: &Hub) {
    let Some(cluster) = &hub.cluster else { return };
    let now = Instant::now();
    let followed = hub.relay.followed();
    let idle: Vec<String> = {
        let mut unwatched = hub.unwatched.lock();
        unwatched.retain(|k, _| followed.contains(k));
        followed
            .into_iter()
            .filter(|key| {
                if hub.relay.viewer_count(key).unwrap_or(0) > 0 {
                    unwatched.remove(key);
                    return false;
                }
                let since = *unwatched.entry(key.clone()).or_insert(now);
                now.saturating_duration_since(since) >= LINGER
            })
            .collect()
    };
    for key in idle {
        hub.unwatched.lock().remove(&key);
        if hub.relay.unfollow_if_unwatched(&key, now) {
            if let Some(stop) = hub.readers.lock().remove(&key) {
                stop.cancel();
            }
            let _ = cluster.unsubscribe(&key).await;
            let _ = cluster.set_count(&key, 0).await;
        }
    }
}

/// A new stream of this node goes into the registry.
pub(crate) async fn register(hub: &Hub, info: &server::StreamInfo, token: &str, epoch: u64) {
    let Some(cluster) = &hub.cluster else { return };
    let record = Record {
        info: info.clone(),
        origin: cluster.node.clone(),
        epoch,
        token: crate::cluster::token_hash(token),
        media: MediaMode::Images,
        key_seq: None,
        orphaned_at: None,
        stats: None,
    };
    if let Err(e) = cluster.put(&record).await {
        tracing::debug!(stream = info.stream_key, error = %e, "stream not registered with the cluster");
    }
    let _ = cluster.subscribe(&info.stream_key).await;
}

/// This node's stream changed state (started, title, reconnecting, live again).
pub(crate) async fn update(hub: &Hub, info: &server::StreamInfo, orphaned_at: Option<Millis>) {
    let Some(cluster) = &hub.cluster else { return };
    if let Some(mut record) = cluster.record(&info.stream_key)
        && record.origin == cluster.node
    {
        record.info = info.clone();
        record.orphaned_at = orphaned_at;
        if let Err(e) = cluster.put(&record).await {
            tracing::debug!(stream = info.stream_key, error = %e, "record update failed");
        }
    }
}

/// This node's stream ended: gone from the cluster, and every other node ends its part.
pub(crate) async fn unregister(hub: &Hub, key: &str, reason: EndReason) {
    let Some(cluster) = &hub.cluster else { return };
    let _ = cluster.publish(key, &Control::Ended { reason }).await;
    if let Err(e) = cluster.remove(key).await {
        tracing::debug!(stream = key, error = %e, "stream not removed from the cluster");
    }
    cluster.forget(key);
    let _ = cluster.unsubscribe(key).await;
}

/// A streamer resumes, with its token, a stream this node does not own: its origin died or
/// it reconnected to another node. Checks the token against the registry and makes this
/// node the origin, keeping every viewer everywhere.
pub(crate) async fn take_over(
    hub: &Arc<Hub>,
    key: &str,
    token: &str,
    conn: &str,
) -> Result<Option<server::StreamInfo>, TakeOverError> {
    let Some(cluster) = &hub.cluster else {
        return Ok(None);
    };
    let Some(record) = cluster.load(key).await? else {
        return Ok(None);
    };
    if !crate::ids::secrets_match(&record.token, &crate::cluster::token_hash(token)) {
        return Err(TakeOverError::Token);
    }
    let wall = now_ms();
    let epoch = next_epoch(wall, Some(record.epoch));
    let next_seq = cluster.last_seq(key).await?.map_or(1, |s| s + 1);
    let _guard = hub.follow_lock(key).await;
    let mut info = record.info.clone();
    info.viewer_count = 0;
    let info = hub
        .relay
        .take_over(&info, token, conn, epoch, next_seq, Instant::now())
        .map_err(|_| TakeOverError::Full)?;
    if let Some(stop) = hub.readers.lock().remove(key) {
        stop.cancel();
    }
    hub.taps.create(key);
    let record = Record {
        info: info.clone(),
        origin: cluster.node.clone(),
        epoch,
        orphaned_at: None,
        ..record
    };
    cluster.put(&record).await?;
    cluster.subscribe(key).await?;
    cluster
        .publish(
            key,
            &Control::Origin {
                node: cluster.node.clone(),
                epoch,
            },
        )
        .await?;
    Ok(Some(info))
}

/// Why a takeover was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TakeOverError {
    #[error("wrong publish token")]
    Token,
    #[error("this node has no room for another stream")]
    Full,
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Sends a keyframe request to the stream's origin (a viewer of a replica here needs one).
pub(crate) async fn request_keyframe(hub: &Hub, key: &str, reason: &str) {
    if let Some(cluster) = &hub.cluster {
        let _ = cluster
            .publish(
                key,
                &Control::Keyframe {
                    reason: reason.to_owned(),
                },
            )
            .await;
    }
}

/// Viewer counts that changed on this node, told to the cluster (every node then shows the
/// cluster-wide total). Without a bus, this node's participants hear the total it knows.
pub(crate) async fn counts_changed(hub: &Hub, io: &SocketIo, changes: &[(String, usize)]) {
    let Some(cluster) = &hub.cluster else { return };
    for (key, count) in changes {
        let before = cluster.total(key);
        // `set_count` notes this node's count at once, so its own message coming back through
        // the bus changes nothing and emits nothing: the new total is emitted here. Waiting
        // for another node's message instead lost it when that one came first (seen under
        // load: a viewer kept a total of 1 while the streamer saw 2).
        if let Err(e) = cluster.set_count(key, *count).await {
            tracing::debug!(stream = key, error = %e, "count not shared");
        }
        let viewer_count = cluster.total(key);
        if viewer_count != before {
            let payload = server::Viewers {
                stream_key: key.clone(),
                viewer_count,
            };
            emit_room(io, key, events::STREAM_VIEWERS, &payload).await;
        }
    }
}
