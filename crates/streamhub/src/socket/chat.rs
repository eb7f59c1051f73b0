//! Chat and reactions: validated, rate-limited per connection, sent to the stream's room.
//! A chat message is stored before it is sent or acknowledged.

use std::time::{Duration, Instant};

use streamhub_protocol::client::{ChatSend, ReactionSend};
use streamhub_protocol::server::{self, ChatMessage, ChatSent, Empty, Reaction};
use streamhub_protocol::{ErrorCode, validate};

use super::cluster::fanout;
use super::{Ctx, Handled, Refusal};
use crate::bus::HubEvent;
use crate::clock::now_ms;
use crate::cluster::Control;
use crate::ids;
use crate::store::{ChatRecord, Write};

/// Longest a chat message waits for the database before it is refused (`STORAGE_UNAVAILABLE`)
/// instead of acknowledged. The database's own busy timeout is as long, so a locked or stalled
/// disk turns into a refusal rather than a connection that stops answering.
const CHAT_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The sender and the stream, when the sender owns or watches it.
fn member(ctx: &Ctx<'_>, raw_key: &str) -> Handled<(server::UserRef, server::StreamInfo)> {
    let user = ctx.session.user()?;
    let key = validate::stream_key(raw_key)
        .map_err(|code| Refusal::new(code, "no stream with this key (it may have ended)"))?;
    let stream = ctx.hub.relay.check_member(key, &ctx.session.conn)?;
    Ok((
        server::UserRef {
            id: user.id.clone(),
            username: user.username.clone(),
        },
        stream,
    ))
}

pub(super) async fn chat(ctx: &mut Ctx<'_>, r: ChatSend) -> Handled<ChatSent> {
    let (user, stream) = member(ctx, &r.stream_key)?;
    let key = stream.stream_key;
    let max = ctx.hub.config.max_chat_chars;
    let message = validate::chat_message(&r.message, max).map_err(|code| {
        Refusal::new(
            code,
            format!("a chat message is one line of 1 to {max} characters"),
        )
    })?;
    if !ctx.session.chat.try_take(Instant::now()) {
        return Err(Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "chat is limited to {} messages at once, then {} per second; message dropped",
                ctx.hub.config.chat_burst, ctx.hub.config.chat_per_sec
            ),
        ));
    }
    let msg = ChatMessage {
        id: ids::message_id(),
        stream_key: key.clone(),
        user,
        message,
        timestamp: now_ms(),
    };
    // History belongs to the streamer's channel.
    let channel = stream.streamer.username;
    // Stored before anyone sees it: the ack (and the broadcast) then mean the message survives
    // a crash. This connection's actor waits here, bounded, so its later requests keep their
    // order; other connections' messages share the writer's batches meanwhile.
    let record = ChatRecord {
        id: msg.id.clone(),
        channel: channel.clone(),
        stream_key: key.clone(),
        user_id: msg.user.id.clone(),
        username: msg.user.username.clone(),
        message: msg.message.clone(),
        at: msg.timestamp,
    };
    if let Err(e) = ctx
        .hub
        .writes
        .commit(Write::Chat(record), CHAT_COMMIT_TIMEOUT)
        .await
    {
        // Counted by code (`streamhub_errors_total`) and by cause (`..._db_writes_dropped_total`).
        tracing::debug!(stream = key, error = %e, "chat message not stored");
        return Err(Refusal::new(
            ErrorCode::StorageUnavailable,
            format!("message not stored ({e}), so it was not sent to anyone; try again"),
        ));
    }
    if let Some(cluster) = &ctx.hub.cluster
        && let Err(e) = cluster.push_chat(&channel, &msg).await
    {
        tracing::debug!(stream = key, error = %e, "chat not kept in the cluster's history");
    }
    fanout(ctx.hub, ctx.io, &key, Control::Chat { msg: msg.clone() }).await;
    ctx.hub.chat.push(&channel, msg.clone());
    // For the log and `/metrics`; the database has it already.
    ctx.hub.bus.publish(HubEvent::Chat {
        key,
        channel,
        id: msg.id.clone(),
        user_id: msg.user.id.clone(),
        user: msg.user.username.clone(),
        message: msg.message.clone(),
        at: msg.timestamp,
    });
    Ok(ChatSent { id: msg.id })
}

pub(super) async fn reaction(ctx: &mut Ctx<'_>, r: ReactionSend) -> Handled<Empty> {
    let (user, stream) = member(ctx, &r.stream_key)?;
    let key = stream.stream_key;
    let kind = validate::reaction(&r.kind).map_err(|code| {
        Refusal::new(
            code,
            format!(
                "reaction must be one of {}",
                streamhub_protocol::REACTIONS.join(" ")
            ),
        )
    })?;
    if !ctx.session.reactions.try_take(Instant::now()) {
        return Err(Refusal::new(
            ErrorCode::RateLimited,
            "too many reactions; this one was dropped",
        ));
    }
    let reaction = Reaction {
        stream_key: key.clone(),
        kind: kind.to_owned(),
        user,
        timestamp: now_ms(),
    };
    fanout(
        ctx.hub,
        ctx.io,
        &key,
        Control::Reaction {
            reaction: reaction.clone(),
        },
    )
    .await;
    ctx.hub.bus.publish(HubEvent::Reaction { key, kind });
    Ok(Empty {})
}
