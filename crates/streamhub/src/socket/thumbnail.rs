//! `stream:thumbnail`: the owner's latest JPEG of its stream, kept for the lobby and link
//! previews (`crate::thumbnails`), and in cluster mode shared through Redis.

use std::sync::Arc;
use std::time::Instant;

use streamhub_protocol::ErrorCode;
use streamhub_protocol::client::ThumbnailSend;
use streamhub_protocol::server::ThumbnailStored;

use super::{Ctx, Handled, Refusal};
use crate::metrics::ThumbRefused;

pub(super) async fn thumbnail(ctx: &mut Ctx<'_>, r: ThumbnailSend) -> Handled<ThumbnailStored> {
    let result = store(ctx, r);
    match &result {
        Ok(_) => ctx.hub.metrics.thumbnails_accepted.inc(),
        Err((reason, _)) => ctx.hub.metrics.thumbnail_refused(*reason).inc(),
    }
    result.map_err(|(_, refusal)| refusal)
}

fn store(ctx: &mut Ctx<'_>, r: ThumbnailSend) -> Result<ThumbnailStored, (ThumbRefused, Refusal)> {
    let not_owner = |refusal| (ThumbRefused::NotOwner, refusal);
    ctx.session.user().map_err(not_owner)?;
    let key = super::stream::key(&r.stream_key).map_err(not_owner)?;
    let hub = ctx.hub;
    if hub.relay.owner_of(key).as_deref() != Some(ctx.session.conn.as_str()) {
        let elsewhere = hub.relay.info_of(key).is_some()
            || hub
                .cluster
                .as_ref()
                .is_some_and(|c| c.record(key).is_some());
        return Err(not_owner(if elsewhere {
            Refusal::new(
                ErrorCode::NotOwner,
                "only the stream's streamer sends its thumbnail",
            )
        } else {
            Refusal::new(
                ErrorCode::StreamNotFound,
                "no stream with this key (it may have ended)",
            )
        }));
    }
    let thumb = hub
        .thumbnails
        .offer(key, &r.data, Instant::now())
        .map_err(|e| (e.reason(), Refusal::from(e)))?;
    if let Some(cluster) = &hub.cluster {
        // Off the connection's actor: a slow Redis must not hold up the streamer's frames.
        // At most one write per stream a second (the rate limit above), each one thumbnail.
        let (cluster, metrics) = (Arc::clone(cluster), Arc::clone(&hub.metrics));
        let (key, jpeg) = (key.to_owned(), thumb.jpeg.clone());
        tokio::spawn(async move {
            if let Err(e) = cluster.put_thumbnail(&key, jpeg).await {
                tracing::debug!(stream = key, error = %e, "thumbnail not shared with the cluster");
                metrics.thumbnail_refused(ThumbRefused::Cluster).inc();
            }
        });
    }
    Ok(ThumbnailStored {
        etag: thumb.etag.clone(),
    })
}
