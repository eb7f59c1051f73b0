//! Channels (a streamer's name): `channel:join` follows one, `channel:live` tells its followers
//! when a stream of it goes live (whatever its key), and `stream:title` renames a stream while
//! it runs. A connection follows one channel at a time (joining another leaves the first), so
//! a client cannot make the server hold more than one channel room membership per connection.

use std::sync::Arc;

use socketioxide::SocketIo;
use streamhub_protocol::client::{ChannelJoin, TitleSet};
use streamhub_protocol::server::{self, ChannelJoined, ChannelLive, StreamEnvelope};
use streamhub_protocol::{ErrorCode, events, validate};

use super::cluster::{self as remote, fanout};
use super::{Ctx, Handled, Refusal, stream};
use crate::bus::HubEvent;
use crate::cluster::Control;
use crate::hub::{ChannelError, Hub};

/// The room of a channel's followers (names in lower case).
pub(crate) fn room(name: &str) -> String {
    format!("channel:{name}")
}

pub(super) async fn join(ctx: &mut Ctx<'_>, r: ChannelJoin) -> Handled<ChannelJoined> {
    let max = ctx.hub.config.max_username_chars;
    let name = validate::channel(&r.channel, max).map_err(|code| {
        Refusal::new(
            code,
            format!(
                "a channel is a streamer's name: 1 to {max} characters, at least one visible, no control characters"
            ),
        )
    })?;
    let channel = ctx.hub.channel_state(&name).await.map_err(|e| match e {
        ChannelError::Storage(_) => Refusal::new(
            ErrorCode::StorageUnavailable,
            "the channel's state cannot be read right now; try again",
        ),
    })?;
    if let Some(previous) = ctx.session.channel.replace(name.clone())
        && previous != name
    {
        ctx.s.leave(room(&previous));
    }
    ctx.s.join(room(&name));
    Ok(ChannelJoined { channel })
}

/// `stream:title`: the owner renames its stream; its viewers (on every node), the lobby, the
/// channel API and the session record follow.
pub(super) async fn title(ctx: &mut Ctx<'_>, r: TitleSet) -> Handled<StreamEnvelope> {
    ctx.session.streamer()?;
    let key = stream::key(&r.stream_key)?;
    let max = ctx.hub.config.max_title_chars;
    let title = validate::title(&r.title, max)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::InvalidTitle,
                format!("title must be 1 to {max} characters, without control characters"),
            )
        })?;
    let stream = ctx
        .hub
        .relay
        .set_title(key, &ctx.session.conn, title.clone())?;
    remote::update(ctx.hub, &stream, None).await;
    let stream = ctx.hub.counted(stream);
    fanout(
        ctx.hub,
        ctx.io,
        key,
        Control::Updated {
            stream: stream.clone(),
        },
    )
    .await;
    ctx.hub.bus.publish(HubEvent::TitleChanged {
        key: key.to_owned(),
        title,
    });
    Ok(StreamEnvelope { stream })
}

/// A stream went live: its channel's followers on every node get `channel:live`. With a bus
/// the notice goes through Redis and every node (this one included) delivers it on receipt;
/// without one (single node, or Redis away) it goes out here.
pub(crate) async fn announce_live(hub: &Arc<Hub>, io: &SocketIo, stream: &server::StreamInfo) {
    let live = ChannelLive {
        channel: stream.streamer.username.to_lowercase(),
        stream: stream.clone(),
    };
    if let Some(cluster) = &hub.cluster
        && cluster.is_up()
    {
        match cluster.publish_channel_live(&live).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "channel notice not published; local only"),
        }
    }
    deliver_live(io, &live).await;
}

/// Gives this node's followers of a channel its `channel:live`.
pub(crate) async fn deliver_live(io: &SocketIo, live: &ChannelLive) {
    if let Err(e) = io
        .to(room(&live.channel))
        .emit(events::CHANNEL_LIVE, live)
        .await
    {
        tracing::debug!(channel = live.channel, error = %e, "channel emit partly failed");
    }
}
