//! The latest thumbnail of each stream (`stream:thumbnail`), for the lobby's cards and link
//! previews (`GET /api/streams/{key}/thumbnail`, the viewer page's `og:image`).
//!
//! Sans-IO like the relay: callers pass the `Instant`. Bounded: one JPEG of at most
//! `--max-thumbnail-bytes` per stream, for at most `--max-streams` streams, so the whole
//! store holds at most their product (64 KiB × 1000 = 64 MiB by default, far less in
//! practice: a 320-pixel JPEG is 10–25 KiB). A stream's thumbnail is forgotten when the
//! stream ends on this node (`socket::announce_local_end`); a preview of an ended stream
//! would advertise something nobody can watch. In cluster mode the origin also writes it to
//! Redis (`cluster::Cluster::put_thumbnail`) so every node serves it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus::IntGauge;
use sha2::{Digest, Sha256};
use streamhub_protocol::{ErrorCode, FrameData, THUMBNAIL_MIN_INTERVAL_MS, validate};

use crate::metrics::ThumbRefused;
use crate::relay::Coded;

/// One stream's thumbnail as it is served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Thumbnail {
    pub(crate) jpeg: Bytes,
    /// Quoted, as the `ETag` header carries it: the same bytes give the same tag on every
    /// node, so a browser's `If-None-Match` works whichever node answers.
    pub(crate) etag: String,
}

impl Thumbnail {
    pub(crate) fn new(jpeg: Bytes) -> Self {
        let digest = Sha256::digest(&jpeg);
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            jpeg,
            etag: format!("\"{hex}\""),
        }
    }

    /// Whether an `If-None-Match` header value names this thumbnail (a list, weak tags and
    /// `*` included).
    pub(crate) fn matches(&self, if_none_match: &str) -> bool {
        if_none_match.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag == self.etag
        })
    }
}

/// Why a thumbnail was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ThumbnailError {
    #[error("a thumbnail must be a JPEG sent as binary (first bytes FF D8 FF)")]
    NotJpeg,
    #[error("the thumbnail is over the {max}-byte limit")]
    TooLarge { max: usize },
    #[error("one thumbnail per stream every {min_ms} ms; try again in {wait_ms} ms")]
    RateLimited { min_ms: u64, wait_ms: u64 },
    #[error("the server holds thumbnails of {0} streams already")]
    Full(usize),
}

impl Coded for ThumbnailError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotJpeg => ErrorCode::InvalidThumbnail,
            Self::TooLarge { .. } => ErrorCode::ThumbnailTooLarge,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Full(_) => ErrorCode::ServerFull,
        }
    }
}

impl ThumbnailError {
    /// The `reason` label of `streamhub_thumbnails_refused_total`.
    pub(crate) fn reason(&self) -> ThumbRefused {
        match self {
            Self::NotJpeg => ThumbRefused::NotJpeg,
            Self::TooLarge { .. } => ThumbRefused::TooLarge,
            Self::RateLimited { .. } => ThumbRefused::RateLimited,
            Self::Full(_) => ThumbRefused::Full,
        }
    }
}

#[derive(Debug)]
struct Entry {
    thumb: Arc<Thumbnail>,
    accepted: Instant,
}

/// Every stream's latest thumbnail on this node.
#[derive(Debug)]
pub(crate) struct Thumbnails {
    max_bytes: usize,
    max_streams: usize,
    min_interval: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// Bytes held (`streamhub_thumbnail_bytes`).
    held: IntGauge,
}

impl Thumbnails {
    pub(crate) fn new(max_bytes: usize, max_streams: usize, held: IntGauge) -> Self {
        Self {
            max_bytes,
            max_streams,
            min_interval: Duration::from_millis(THUMBNAIL_MIN_INTERVAL_MS),
            entries: Mutex::default(),
            held,
        }
    }

    /// Checks a thumbnail for stream `key` (whose owner sent it: the caller checked) and keeps
    /// it in place of the previous one.
    pub(crate) fn offer(
        &self,
        key: &str,
        data: &FrameData,
        now: Instant,
    ) -> Result<Arc<Thumbnail>, ThumbnailError> {
        let jpeg = match validate::thumbnail(data, self.max_bytes) {
            Ok(_) => match data {
                FrameData::Binary(b) => b.clone(),
                FrameData::Text(_) => return Err(ThumbnailError::NotJpeg),
            },
            Err(ErrorCode::ThumbnailTooLarge) => {
                return Err(ThumbnailError::TooLarge {
                    max: self.max_bytes,
                });
            }
            Err(_) => return Err(ThumbnailError::NotJpeg),
        };
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some(e) => {
                let since = now.saturating_duration_since(e.accepted);
                if since < self.min_interval {
                    return Err(ThumbnailError::RateLimited {
                        min_ms: self.min_interval.as_millis() as u64,
                        wait_ms: (self.min_interval - since).as_millis() as u64 + 1,
                    });
                }
            }
            None if entries.len() >= self.max_streams => {
                return Err(ThumbnailError::Full(self.max_streams));
            }
            None => {}
        }
        let thumb = Arc::new(Thumbnail::new(jpeg));
        let added = thumb.jpeg.len() as i64;
        let old = entries.insert(
            key.to_owned(),
            Entry {
                thumb: Arc::clone(&thumb),
                accepted: now,
            },
        );
        let removed = old.map_or(0, |e| e.thumb.jpeg.len() as i64);
        self.held.add(added - removed);
        Ok(thumb)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<Thumbnail>> {
        self.entries.lock().get(key).map(|e| Arc::clone(&e.thumb))
    }

    /// Forgets a stream's thumbnail (the stream ended here).
    pub(crate) fn remove(&self, key: &str) {
        if let Some(e) = self.entries.lock().remove(key) {
            self.held.sub(e.thumb.jpeg.len() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: usize, fill: u8) -> FrameData {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
        v.resize(n, fill);
        FrameData::Binary(Bytes::from(v))
    }

    fn store(max_bytes: usize, max_streams: usize) -> Thumbnails {
        Thumbnails::new(
            max_bytes,
            max_streams,
            IntGauge::new("held", "bytes").expect("gauge"),
        )
    }

    #[test]
    fn only_jpegs_within_the_limit_are_kept() {
        let t = store(1000, 10);
        let now = Instant::now();
        assert_eq!(
            t.offer("k", &jpeg(1001, 0), now),
            Err(ThumbnailError::TooLarge { max: 1000 })
        );
        let png = FrameData::Binary(Bytes::from_static(b"\x89PNG\r\n\x1a\n...."));
        assert_eq!(t.offer("k", &png, now), Err(ThumbnailError::NotJpeg));
        let text = FrameData::Text("/9j/4AAQSkZJRg".into());
        assert_eq!(t.offer("k", &text, now), Err(ThumbnailError::NotJpeg));
        assert!(t.get("k").is_none(), "nothing refused is kept");
        assert_eq!(t.held.get(), 0);

        let kept = t
            .offer("k", &jpeg(1000, 0), now)
            .expect("a JPEG at the limit");
        assert_eq!(t.get("k").as_deref(), Some(&*kept));
        assert_eq!(t.held.get(), 1000);
        assert_eq!(ThumbnailError::NotJpeg.code(), ErrorCode::InvalidThumbnail);
        assert_eq!(
            ThumbnailError::TooLarge { max: 1 }.code(),
            ErrorCode::ThumbnailTooLarge
        );
    }

    #[test]
    fn one_a_second_per_stream_and_the_newest_wins() {
        let t = store(1000, 10);
        let t0 = Instant::now();
        let first = t.offer("a", &jpeg(100, 1), t0).expect("first");
        let early = t.offer("a", &jpeg(200, 2), t0 + Duration::from_millis(400));
        assert_eq!(
            early,
            Err(ThumbnailError::RateLimited {
                min_ms: 1000,
                wait_ms: 601
            })
        );
        assert_eq!(early.expect_err("refused").code(), ErrorCode::RateLimited);
        // Another stream has its own budget.
        t.offer("b", &jpeg(50, 3), t0 + Duration::from_millis(400))
            .expect("another stream");
        assert_eq!(
            t.get("a").as_deref(),
            Some(&*first),
            "the refused one is not kept"
        );
        let second = t
            .offer("a", &jpeg(200, 2), t0 + Duration::from_millis(1000))
            .expect("a second later");
        assert_ne!(first.etag, second.etag);
        assert_eq!(t.get("a").as_deref(), Some(&*second));
        assert_eq!(t.held.get(), 250, "the replaced one no longer counts");
        t.remove("a");
        t.remove("a");
        assert!(t.get("a").is_none());
        assert_eq!(t.held.get(), 50);
    }

    #[test]
    fn the_store_holds_at_most_max_streams() {
        let t = store(100, 2);
        let now = Instant::now();
        t.offer("a", &jpeg(100, 0), now).expect("a");
        t.offer("b", &jpeg(100, 0), now).expect("b");
        assert_eq!(
            t.offer("c", &jpeg(100, 0), now),
            Err(ThumbnailError::Full(2))
        );
        assert_eq!(
            ThumbnailError::Full(2).code(),
            ErrorCode::ServerFull,
            "a full store is the server's limit"
        );
        // A stream already held may still replace its own.
        t.offer("a", &jpeg(90, 1), now + Duration::from_secs(1))
            .expect("replacing");
        t.remove("b");
        t.offer("c", &jpeg(100, 0), now).expect("room again");
        assert_eq!(t.held.get(), 190);
    }

    #[test]
    fn etags_follow_the_bytes_and_if_none_match_lists() {
        let FrameData::Binary(bytes) = jpeg(64, 7) else {
            unreachable!()
        };
        let a = Thumbnail::new(bytes.clone());
        let b = Thumbnail::new(bytes);
        assert_eq!(
            a.etag, b.etag,
            "the same bytes on another node, the same tag"
        );
        assert_eq!(a.etag.len(), 18);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
        assert!(a.matches(&a.etag));
        assert!(a.matches(&format!("\"x\", W/{}", a.etag)));
        assert!(a.matches("*"));
        assert!(!a.matches("\"0000000000000000\""));
        assert!(!a.matches(""));
    }
}
