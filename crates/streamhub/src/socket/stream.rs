//! Stream lifecycle and frames: create, start, data, join, leave, end, resume, list.

use std::sync::Arc;
use std::time::Instant;

use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef};
use streamhub_protocol::client::{AudioSend, Create, DataSend, Resume, StreamRef};
use streamhub_protocol::server::{
    self, Ack, BufferedFrame, Created, EndReason, MediaMode, Published, StreamEnvelope, StreamList,
    StreamStatus, Track,
};
use streamhub_protocol::{ErrorCode, events, validate};

use super::cluster::{self as remote, fanout};
use super::{Ctx, Handled, Refusal, Session, emit, emit_room, refuse, room, send_ack};
use crate::bus::{HubEvent, StreamTotals};
use crate::clock::{now_ms, now_us};
use crate::cluster::Control;
use crate::hub::Hub;
use crate::ids;
use crate::metrics::{DropReason, StreamTap};
use crate::relay::{
    AudioPublish, Delivery, Ended, NewStream, Offer, Publish, PublishError, RegisterError,
    ViewerSink,
};
use crate::sink::SocketSink;

pub(super) fn key(raw: &str) -> Handled<&str> {
    validate::stream_key(raw)
        .map_err(|code| Refusal::new(code, "no stream with this key (it may have ended)"))
}

/// Creates a stream for the session's streamer, or hands back the one it created and has not
/// started yet (so the seed's automatic `stream:created` and an explicit `stream:create` do
/// not leave an orphan behind).
pub(super) async fn create_for(ctx: &mut Ctx<'_>, title: Option<String>) -> Handled<Created> {
    let user = ctx.session.streamer()?.clone();
    let max = ctx.hub.config.max_title_chars;
    let title = match title {
        Some(t) => Some(validate::title(&t, max).map_err(|code| {
            Refusal::new(
                code,
                format!("title must be at most {max} characters, without control characters"),
            )
        })?),
        None => None,
    }
    .filter(|t| !t.is_empty());
    let conn = &ctx.session.conn;
    let owned = ctx.hub.relay.owned_by(conn);
    if let Some((idle, token)) = owned
        .iter()
        .find(|(info, _)| info.status == StreamStatus::Created)
    {
        let stream = match title {
            Some(t) => ctx.hub.relay.set_title(&idle.stream_key, conn, t)?,
            None => idle.clone(),
        };
        return Ok(Created {
            stream,
            publish_token: token.clone(),
        });
    }
    if owned.len() >= ctx.hub.config.max_streams_per_connection {
        return Err(Refusal::new(
            ErrorCode::TooManyStreams,
            format!(
                "this connection already owns {} streams; end one first",
                owned.len()
            ),
        ));
    }
    let publish_token = ids::token();
    let epoch = crate::cluster::next_epoch(now_ms(), None);
    let title = title.unwrap_or_else(|| format!("{}'s stream", user.username));
    let new = |key: &str| NewStream {
        key: key.to_owned(),
        title: title.clone(),
        streamer: server::UserRef {
            id: user.id.clone(),
            username: user.username.clone(),
        },
        owner: conn.clone(),
        publish_token: publish_token.clone(),
        created_at: now_ms(),
        epoch,
    };
    // A key in use is refused, not replaced; a second draw settles what can only be a fluke.
    let mut key = ids::stream_key();
    let stream = match ctx.hub.relay.register_stream(new(&key), Instant::now()) {
        Err(RegisterError::KeyTaken(_)) => {
            tracing::error!(key, "a freshly drawn stream key was already in use");
            key = ids::stream_key();
            ctx.hub.relay.register_stream(new(&key), Instant::now())
        }
        other => other,
    }?;
    ctx.hub.taps.create(&key);
    ctx.s.join(room(&key));
    remote::register(ctx.hub, &stream, &publish_token, epoch).await;
    ctx.hub.bus.publish(HubEvent::StreamCreated {
        key,
        streamer: user.username,
    });
    Ok(Created {
        stream,
        publish_token,
    })
}

pub(super) async fn create(ctx: &mut Ctx<'_>, r: Create) -> Handled<Created> {
    let created = create_for(ctx, r.title).await?;
    emit(ctx.hub, ctx.s, events::STREAM_CREATED, &created);
    Ok(created)
}

async fn announce_start(hub: &Arc<Hub>, io: &SocketIo, stream: &server::StreamInfo) {
    remote::update(hub, stream, None).await;
    fanout(
        hub,
        io,
        &stream.stream_key,
        Control::Started {
            stream: stream.clone(),
        },
    )
    .await;
    super::channel::announce_live(hub, io, stream).await;
    hub.bus.publish(HubEvent::StreamStarted {
        key: stream.stream_key.clone(),
        title: stream.title.clone(),
        streamer: stream.streamer.username.clone(),
        at: stream.started_at.unwrap_or_else(now_ms),
    });
}

pub(super) async fn start(ctx: &mut Ctx<'_>, r: StreamRef) -> Handled<StreamEnvelope> {
    ctx.session.user()?;
    let key = key(&r.stream_key)?;
    let (stream, changed) = ctx
        .hub
        .relay
        .start_stream(key, &ctx.session.conn, now_ms())?;
    if changed {
        announce_start(ctx.hub, ctx.io, &stream).await;
    } else {
        emit(
            ctx.hub,
            ctx.s,
            events::STREAM_STARTED,
            &StreamEnvelope {
                stream: stream.clone(),
            },
        );
    }
    Ok(StreamEnvelope { stream })
}

/// The frame path. Acks only when asked; the common case (the seed's plain `emit`) costs one
/// relay call and one emit per viewer (or one room broadcast for all of them).
pub(super) async fn data(ctx: &mut Ctx<'_>, r: DataSend, ack: AckSender) {
    let event = events::STREAM_DATA_SEND;
    let k = match registered_key(ctx, &r.stream_key) {
        Ok(k) => k,
        Err(refusal) => return refuse(ctx.hub, ctx.s, ack, event, refusal),
    };
    if let Err(e) = validate::capture_time(r.capture_time) {
        return refuse(
            ctx.hub,
            ctx.s,
            ack,
            event,
            Refusal::new(e.code(), e.to_string()),
        );
    }
    let now = Instant::now();
    let size = r.data.len();
    let frame = Publish {
        data: r.data,
        chunk: r.chunk,
        config: r.config,
        capture_time: r.capture_time,
    };
    let wall = now_ms();
    let delivery = match crate::direct::fan_out(|| {
        ctx.hub
            .relay
            .publish(k, &ctx.session.conn, frame, now, wall)
    }) {
        Ok(delivery) => delivery,
        Err(e) => {
            // Frames refused for their content or rate are drops (the relay counted them for
            // the stream); the others (not the owner, no such stream) are only refusals.
            count_refused(ctx.hub, &e);
            return refuse_frame(ctx, ack, event, e, now);
        }
    };
    relayed(ctx, ack, k, Track::Video, size, delivery, wall).await;
}

/// What a frame or an audio chunk the relay took goes on to: the metrics, the cluster (a
/// video frame that starts a catch-up tells it where to keep from), the stream's start,
/// [`settle`], the ack.
async fn relayed(
    ctx: &mut Ctx<'_>,
    ack: AckSender,
    k: &str,
    track: Track,
    size: usize,
    delivery: Delivery,
    wall: streamhub_protocol::Millis,
) {
    ctx.hub.metrics.frame_in(track, size);
    if let Some(cluster) = &ctx.hub.cluster {
        let keep_from = match track {
            Track::Video => delivery
                .frames
                .iter()
                .rev()
                .find_map(|f| crate::cluster::Cluster::catch_up_start(f)),
            Track::Audio => None,
        };
        cluster.forward(k, delivery.epoch, &delivery.frames, keep_from);
    }
    let tap = session_tap(ctx.hub, ctx.session, k);
    if let Some(stream) = &delivery.started {
        announce_start(ctx.hub, ctx.io, stream).await;
    }
    let published = Published {
        seq: delivery.seq,
        viewers: delivery.reached,
    };
    settle(ctx.hub, ctx.io, ctx.s, k, delivery, wall, &tap).await;
    send_ack(ctx.hub, ack, &Ack::ok(published));
}

/// The stream key a registered user sends to, checked.
fn registered_key<'k>(ctx: &Ctx<'_>, stream_key: &'k str) -> Result<&'k str, Refusal> {
    ctx.session.user()?;
    key(stream_key)
}

/// Frames refused for their content or rate are drops (the relay counted them for the
/// stream); the other refusals (not the owner, no such stream) are only refusals.
fn count_refused(hub: &Hub, e: &PublishError) {
    let reason = match e {
        PublishError::RateLimited { .. } | PublishError::AudioRateLimited { .. } => {
            Some(DropReason::RateLimited)
        }
        PublishError::TooLarge { .. } => Some(DropReason::TooLarge),
        PublishError::BadMedia(_) => Some(DropReason::BadMedia),
        PublishError::NotFound(_) | PublishError::NotOwner(_) => None,
    };
    if let Some(reason) = reason {
        hub.metrics.frame_refused(reason);
    }
}

/// The audio path (`stream:audio:send`): checked (`validate::audio`), then relayed as the
/// stream's second track, like a frame. Acks only when asked.
pub(super) async fn audio(ctx: &mut Ctx<'_>, r: AudioSend, ack: AckSender) {
    let event = events::STREAM_AUDIO_SEND;
    let k = match registered_key(ctx, &r.stream_key) {
        Ok(k) => k,
        Err(refusal) => return refuse(ctx.hub, ctx.s, ack, event, refusal),
    };
    if let Err(e) = validate::audio(&r) {
        let reason = match e {
            validate::AudioError::TooLarge(_) => DropReason::TooLarge,
            _ => DropReason::BadMedia,
        };
        ctx.hub.metrics.frame_refused(reason);
        return refuse(
            ctx.hub,
            ctx.s,
            ack,
            event,
            Refusal::new(e.code(), e.to_string()),
        );
    }
    let now = Instant::now();
    let size = r.data.len();
    let chunk = AudioPublish {
        data: r.data,
        chunk: r.chunk,
        config: r.config,
    };
    let wall = now_ms();
    let delivery = match crate::direct::fan_out(|| {
        ctx.hub
            .relay
            .publish_audio(k, &ctx.session.conn, chunk, now, wall)
    }) {
        Ok(delivery) => delivery,
        Err(e) => {
            count_refused(ctx.hub, &e);
            return refuse_frame(ctx, ack, event, e, now);
        }
    };
    relayed(ctx, ack, k, Track::Audio, size, delivery, wall).await;
}

/// Acts on what a published frame did: records it in the metrics, asks the streamer (`owner`)
/// for a keyframe when a viewer waits for one, tells viewers their new level, evicts the
/// viewers that stayed full. Every delivery goes through here, the end-of-stream tail too.
async fn settle(
    hub: &Hub,
    io: &SocketIo,
    owner: &SocketRef,
    key: &str,
    delivery: Delivery,
    wall: streamhub_protocol::Millis,
    tap: &StreamTap,
) {
    let delay_us = now_us().saturating_sub(wall.saturating_mul(1000));
    hub.metrics.delivered(
        tap,
        delivery.track,
        delivery.frames_out,
        delivery.bytes_out,
        delivery.dropped_slow,
        delay_us,
    );
    if delivery.keyframe_wanted {
        request_keyframe(hub, owner, key, "resync");
    }
    for (conn, level) in &delivery.level_changes {
        if let Some(viewer) = super::socket_by_conn(io, conn) {
            let payload = server::Level {
                stream_key: key.to_owned(),
                level: *level,
            };
            emit(hub, &viewer, events::STREAM_LEVEL, &payload);
        }
    }
    for conn in &delivery.evicted {
        evict(hub, io, key, conn).await;
    }
}

/// What a frame relayed from another node did here (this node follows the stream): counted,
/// levels told, stalled viewers evicted; a keyframe wanted is asked of the origin.
pub(super) async fn settle_remote(
    hub: &Hub,
    io: &SocketIo,
    key: &str,
    delivery: Delivery,
    wall: streamhub_protocol::Millis,
) {
    let keyframe = delivery.keyframe_wanted;
    let tap = hub.taps.get(key);
    let delay_us = now_us().saturating_sub(wall.saturating_mul(1000));
    hub.metrics.delivered(
        &tap,
        delivery.track,
        delivery.frames_out,
        delivery.bytes_out,
        delivery.dropped_slow,
        delay_us,
    );
    for (conn, level) in &delivery.level_changes {
        if let Some(viewer) = super::socket_by_conn(io, conn) {
            let payload = server::Level {
                stream_key: key.to_owned(),
                level: *level,
            };
            emit(hub, &viewer, events::STREAM_LEVEL, &payload);
        }
    }
    for conn in &delivery.evicted {
        evict(hub, io, key, conn).await;
    }
    if keyframe {
        remote::request_keyframe(hub, key, "resync").await;
    }
}

/// Answers a refused frame (of `event`: `stream:data:send` or `stream:audio:send`).
fn refuse_frame(
    ctx: &mut Ctx<'_>,
    ack: AckSender,
    event: &'static str,
    e: PublishError,
    now: Instant,
) {
    if let PublishError::RateLimited { .. } | PublishError::AudioRateLimited { .. } = e {
        // One error event a second at most: a streamer over the rate would otherwise get
        // an error per frame. The ack (if any) always says what happened.
        let refusal = Refusal::from(e);
        ctx.hub.counters.refused(refusal.code);
        send_ack(
            ctx.hub,
            ack,
            &Ack::<server::Empty>::err(refusal.code, refusal.message.clone()),
        );
        if rate_error_due(ctx.session, now) {
            super::error_event(ctx.hub, ctx.s, event, &refusal);
        }
    } else {
        refuse(ctx.hub, ctx.s, ack, event, e.into());
    }
}

/// Most taps a connection keeps cached; past this the cache starts over (it is refilled from
/// the hub's map, one lookup per stream).
const MAX_SESSION_TAPS: usize = 16;

/// The delay tap of a stream this connection just published to, from its cache.
fn session_tap(hub: &Hub, session: &mut Session, key: &str) -> Arc<StreamTap> {
    if let Some(tap) = session.taps.get(key) {
        return Arc::clone(tap);
    }
    if session.taps.len() >= MAX_SESSION_TAPS {
        session.taps.clear();
    }
    // The stream exists (a frame was just published to it), so this is its own tap.
    let tap = hub.taps.get(key);
    session.taps.insert(key.to_owned(), Arc::clone(&tap));
    tap
}

/// Asks the streamer's encoder for a keyframe (throttled by the relay).
pub(super) fn request_keyframe(hub: &Hub, owner: &SocketRef, key: &str, reason: &'static str) {
    emit(
        hub,
        owner,
        events::STREAM_KEYFRAME_REQUEST,
        &server::KeyframeRequest {
            stream_key: key.to_owned(),
            reason,
        },
    );
}

fn rate_error_due(session: &mut Session, now: Instant) -> bool {
    let due = session
        .last_frame_refusal
        .is_none_or(|t| now.saturating_duration_since(t).as_secs() >= 1);
    if due {
        session.last_frame_refusal = Some(now);
    }
    due
}

/// Sends a joiner its welcome: `stream:joined`, then the catch-up, within the viewer's byte
/// budget. Returns whether all of the catch-up was queued, and how many of its frames did not
/// fit.
fn welcome(
    hub: &Hub,
    s: &SocketRef,
    sink: &SocketSink,
    key: &str,
    admitted: &crate::relay::Admitted,
) -> (bool, usize) {
    emit(
        hub,
        s,
        events::STREAM_JOINED,
        &server::Joined {
            stream: admitted.stream.clone(),
            viewer_count: admitted.viewer_count,
            media: None,
        },
    );
    let (complete, left_out) = welcome_video(hub, s, sink, key, admitted);
    // The latest audio, after the video: the first chunk with `resync` and the config. Not
    // part of `complete` (what decides where the video starts); a chunk that does not fit is
    // a catch-up drop like the video's.
    let mut audio_left_out = 0;
    for (i, frame) in admitted.audio_catch_up.iter().enumerate() {
        if sink.offer(key, frame, i == 0) != Offer::Sent {
            audio_left_out = admitted.audio_catch_up.len() - i;
            break;
        }
    }
    (complete, left_out + audio_left_out)
}

/// The video part of a joiner's welcome (see [`welcome`]).
fn welcome_video(
    hub: &Hub,
    s: &SocketRef,
    sink: &SocketSink,
    key: &str,
    admitted: &crate::relay::Admitted,
) -> (bool, usize) {
    let fit = sink.newest_that_fit(&admitted.catch_up);
    let left_out = admitted.catch_up.len() - fit.len();
    if admitted.media != MediaMode::Images {
        // Encoded streams: the decodable catch-up goes out as ordinary `stream:data`, so
        // clients that only append what arrives can start from it. Not counted as frames
        // sent: it is old by design, and its delay would say nothing about the queue. A GOP
        // that does not fit whole goes not at all: the viewer starts at the next keyframe.
        if left_out > 0 {
            return (false, admitted.catch_up.len());
        }
        let sent = fit
            .iter()
            .take_while(|frame| sink.offer(key, frame, false) == Offer::Sent)
            .count();
        return (sent == fit.len(), fit.len() - sent);
    }
    // Pictures: the newest that fit, in one message as the seed expects, unless frames are
    // binary: official clients refuse more than MAX_ATTACHMENTS_PER_MESSAGE attachments in
    // one message.
    let per_message = if fit.iter().any(|f| f.data.is_binary()) {
        streamhub_protocol::MAX_ATTACHMENTS_PER_MESSAGE
    } else {
        fit.len().max(1)
    };
    for chunk in fit.chunks(per_message) {
        let frames = chunk
            .iter()
            .map(|f| BufferedFrame {
                data: &f.data,
                timestamp: f.timestamp,
                seq: f.seq,
            })
            .collect();
        emit(
            hub,
            s,
            events::STREAM_BUFFER,
            &server::Buffer {
                stream_key: key,
                frames,
            },
        );
    }
    (true, left_out)
}

pub(super) async fn join(ctx: &mut Ctx<'_>, r: StreamRef) -> Handled<server::Joined> {
    ctx.session.user()?;
    let key = key(&r.stream_key)?;
    let conn = &ctx.session.conn;
    let watching = ctx.hub.relay.joined_by(conn);
    let max = ctx.hub.config.max_joins_per_connection;
    if watching.len() >= max && !watching.iter().any(|k| k == key) {
        return Err(Refusal::new(
            ErrorCode::TooManyJoins,
            format!("this connection already watches {max} streams; leave one first"),
        ));
    }
    if ctx.hub.cluster.is_some() && ctx.hub.relay.epoch(key).is_none() {
        // Another node's stream: this node starts following it (a no-op if it is nowhere).
        if let Err(e) = remote::follow(ctx.hub, key).await {
            tracing::warn!(stream = key, error = %e, "cannot follow a stream of another node");
            return Err(Refusal::new(
                ErrorCode::ServerFull,
                "the stream is on another node, which this node cannot reach right now",
            ));
        }
    }
    let sink = SocketSink::new(
        ctx.s.clone(),
        ctx.hub.media.get(conn),
        ctx.hub.config.viewer_queue,
        ctx.hub.config.viewer_queue_bytes,
    );
    let uses_media = sink.uses_media();
    let for_welcome = sink.clone();
    let s = ctx.s.clone();
    // The welcome goes out under the stream's lock, so no live frame can overtake the
    // catch-up.
    let mut left_out = 0;
    let admitted =
        ctx.hub
            .relay
            .add_viewer(key, conn, sink, Instant::now(), now_ms(), |admitted| {
                let (complete, dropped) = welcome(ctx.hub, &s, &for_welcome, key, admitted);
                left_out = dropped;
                complete
            })?;
    ctx.hub
        .metrics
        .dropped(DropReason::CatchUpBudget)
        .inc_by(left_out as u64);
    if admitted.keyframe_wanted {
        match &admitted.owner {
            Some(owner) => {
                if let Some(owner) = super::socket_by_conn(ctx.io, owner) {
                    request_keyframe(ctx.hub, &owner, key, "join");
                }
            }
            None => remote::request_keyframe(ctx.hub, key, "join").await,
        }
    }
    if admitted.new {
        ctx.s.join(room(key));
        send_history(ctx.hub, ctx.s, &admitted.stream).await;
        ctx.hub.bus.publish(HubEvent::ViewerJoined {
            key: key.to_owned(),
            viewers: admitted.viewer_count,
        });
    }
    // An existing viewer keeps the sink it joined with; this join's flag says where its
    // frames go only when it is new.
    let viewer_count = cluster_count(ctx.hub, key, admitted.viewer_count);
    Ok(server::Joined {
        stream: server::StreamInfo {
            viewer_count,
            ..admitted.stream
        },
        viewer_count,
        media: Some(uses_media),
    })
}

/// `chat:history` for `stream`'s channel, when it has chat: to a joiner, and to the streamer
/// when its stream is made or resumed (so it sees what was said before, as viewers do).
pub(super) async fn send_history(hub: &Hub, s: &SocketRef, stream: &server::StreamInfo) {
    let history = chat_history(hub, &stream.streamer.username).await;
    if !history.is_empty() {
        emit(
            hub,
            s,
            events::CHAT_HISTORY,
            &server::ChatHistory {
                stream_key: stream.stream_key.clone(),
                messages: history,
            },
        );
    }
}

/// A stream's viewers on every node, given this node's `local` count.
fn cluster_count(hub: &Hub, key: &str, local: usize) -> usize {
    hub.cluster.as_ref().map_or(local, |c| {
        let others: usize = c
            .by_node(key)
            .iter()
            .filter(|(n, _)| *n != c.node)
            .map(|(_, n)| n)
            .sum();
        others + local
    })
}

/// The channel's recent chat: from memory, or (first time after a restart) merged with the
/// database's. Only joins read the database, on the joiner's own connection.
async fn chat_history(hub: &Hub, channel: &str) -> Vec<server::ChatMessage> {
    // The cluster's history is every node's: read from Redis when it answers.
    if let Some(cluster) = &hub.cluster {
        match cluster.recent_chat(channel).await {
            Ok(msgs) => return msgs,
            Err(e) => tracing::debug!(channel, error = %e, "cluster chat history unavailable"),
        }
    }
    if let Some(recent) = hub.chat.recent(channel) {
        return recent;
    }
    match hub
        .store
        .recent_chat(channel, crate::chatlog::HISTORY_LEN)
        .await
    {
        Ok(stored) => hub
            .chat
            .merge_stored(channel, stored.into_iter().map(Into::into).collect()),
        Err(e) => {
            tracing::warn!(channel, error = %e, "loading chat history");
            hub.chat.in_memory(channel)
        }
    }
}

pub(super) async fn leave(ctx: &mut Ctx<'_>, r: StreamRef) -> Handled<server::Left> {
    let key = key(&r.stream_key)?;
    let Some(viewers) = ctx.hub.relay.remove_viewer(key, &ctx.session.conn) else {
        return Err(Refusal::new(
            ErrorCode::NotInStream,
            "you are not watching this stream",
        ));
    };
    ctx.s.leave(room(key));
    let left = server::Left {
        stream_key: key.to_owned(),
    };
    emit(ctx.hub, ctx.s, events::STREAM_LEFT, &left);
    ctx.hub.bus.publish(HubEvent::ViewerLeft {
        key: key.to_owned(),
        viewers,
    });
    Ok(left)
}

pub(super) async fn end(ctx: &mut Ctx<'_>, r: StreamRef) -> Handled<server::Left> {
    ctx.session.user()?;
    let key = key(&r.stream_key)?;
    // Nothing silently dropped: the tail a WebM parser held goes out before stream:ended, and
    // what it did (evictions included) is settled like any frame's.
    let wall = now_ms();
    let ending = ctx
        .hub
        .relay
        .end_stream(key, &ctx.session.conn, Instant::now(), wall)?;
    let tap = ctx
        .session
        .taps
        .remove(key)
        .unwrap_or_else(|| ctx.hub.taps.get(key));
    settle(ctx.hub, ctx.io, ctx.s, key, ending.tail, wall, &tap).await;
    announce_end(ctx.hub, ctx.io, &ending.ended, EndReason::Ended).await;
    Ok(server::Left {
        stream_key: key.to_owned(),
    })
}

pub(super) async fn resume(ctx: &mut Ctx<'_>, r: Resume) -> Handled<StreamEnvelope> {
    ctx.session.streamer()?;
    let key = key(&r.stream_key)?;
    let local = ctx
        .hub
        .relay
        .epoch(key)
        .is_some_and(|(_, replica)| !replica);
    let stream = if local || ctx.hub.cluster.is_none() {
        ctx.hub
            .relay
            .resume(key, &r.publish_token, &ctx.session.conn)?
    } else {
        // The stream's origin is another node (dead, or left behind by this streamer): it
        // moves here.
        match remote::take_over(ctx.hub, key, &r.publish_token, &ctx.session.conn).await {
            Ok(Some(stream)) => stream,
            Ok(None) => {
                return Err(Refusal::new(
                    ErrorCode::StreamNotFound,
                    "no stream with this key (it may have ended)",
                ));
            }
            Err(remote::TakeOverError::Token) => {
                return Err(Refusal::new(
                    ErrorCode::InvalidToken,
                    format!("wrong publish token for stream {key}"),
                ));
            }
            Err(e) => return Err(Refusal::new(ErrorCode::ServerFull, e.to_string())),
        }
    };
    remote::update(ctx.hub, &stream, None).await;
    ctx.s.join(room(key));
    // The streamer's page shows this count until it changes: in a cluster, every node's viewers.
    let stream = ctx.hub.counted(stream);
    let reply = StreamEnvelope {
        stream: stream.clone(),
    };
    emit(ctx.hub, ctx.s, events::STREAM_RESUMED, &reply);
    send_history(ctx.hub, ctx.s, &stream).await;
    fanout(
        ctx.hub,
        ctx.io,
        key,
        Control::Status {
            status: stream.status,
            grace_ms: None,
        },
    )
    .await;
    ctx.hub.bus.publish(HubEvent::StreamResumed {
        key: key.to_owned(),
    });
    Ok(reply)
}

pub(super) fn list(ctx: &mut Ctx<'_>) -> Handled<StreamList> {
    let list = StreamList {
        streams: ctx.hub.streams(),
    };
    emit(ctx.hub, ctx.s, events::STREAM_LIST, &list);
    Ok(list)
}

/// Tells everyone in the room a stream that left the relay is over, empties the room, and
/// publishes its end with its lifetime totals.
pub(crate) async fn announce_end(hub: &Hub, io: &SocketIo, ended: &Ended, reason: EndReason) {
    let key = ended.info.stream_key.as_str();
    announce_local_end(hub, io, key, reason).await;
    // The channel page of an offline channel shows its last stream, from any node.
    if let (Some(cluster), Some(started_at)) = (&hub.cluster, ended.info.started_at) {
        let past = server::PastStream {
            title: ended.info.title.clone(),
            started_at,
            ended_at: Some(now_ms()),
        };
        let name = ended.info.streamer.username.to_lowercase();
        if let Err(e) = cluster.put_last_stream(&name, &past).await {
            tracing::debug!(channel = name, error = %e, "last stream not kept in the cluster");
        }
    }
    // Every other node ends its part too.
    remote::unregister(hub, key, reason).await;
    hub.bus.publish(HubEvent::StreamEnded {
        key: key.to_owned(),
        reason,
        totals: StreamTotals::from(&ended.stats),
        at: now_ms(),
    });
}

/// Tells this node's participants a stream is over and empties its room (a replica ends this
/// way alone; the origin also records the session).
pub(crate) async fn announce_local_end(hub: &Hub, io: &SocketIo, key: &str, reason: EndReason) {
    emit_room(
        io,
        key,
        events::STREAM_ENDED,
        &server::Ended {
            stream_key: key.to_owned(),
            reason,
        },
    )
    .await;
    if let Err(e) = io.to(room(key)).leave(room(key)).await {
        tracing::debug!(stream = key, error = %e, "emptying room failed");
    }
    hub.taps.remove(key);
    hub.thumbnails.remove(key);
}

/// Removes a viewer that stopped reading. The relay already stopped routing frames to it; the
/// disconnect may fail while its queue is full, in which case the TCP user timeout ends it.
async fn evict(hub: &Hub, io: &SocketIo, key: &str, conn: &str) {
    tracing::warn!(stream = key, "evicting a viewer whose queue stayed full");
    hub.bus.publish(HubEvent::ViewerEvicted {
        key: key.to_owned(),
        viewer: ids::conn_label(conn),
    });
    let Some(s) = super::socket_by_conn(io, conn) else {
        return;
    };
    s.leave(room(key));
    emit(
        hub,
        &s,
        events::STREAM_EVICTED,
        &server::Evicted {
            stream_key: key.to_owned(),
            reason: "too_slow",
        },
    );
    if let Err(e) = s.disconnect() {
        tracing::debug!(error = %e, "disconnect of evicted viewer deferred to TCP timeout");
    }
}

/// The connection is gone: it leaves every stream it watched; its own streams wait for a
/// resume.
pub(super) async fn disconnected(hub: &Arc<Hub>, io: &SocketIo, session: &Session) {
    hub.media.remove(&session.conn);
    hub.leave_everywhere(&session.conn, |_| true);
    for orphan in hub.relay.owner_disconnected(&session.conn, Instant::now()) {
        if let Some(info) = hub.relay.info_of(&orphan.key) {
            remote::update(hub, &info, Some(now_ms())).await;
        }
        fanout(
            hub,
            io,
            &orphan.key,
            Control::Status {
                status: StreamStatus::Reconnecting,
                grace_ms: Some(orphan.grace.as_millis() as u64),
            },
        )
        .await;
        hub.bus
            .publish(HubEvent::StreamReconnecting { key: orphan.key });
    }
}
