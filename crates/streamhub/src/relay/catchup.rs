//! What a stream's frames are, and what a late joiner needs to decode them.
//!
//! Three modes, chosen from the frames themselves:
//! - **Images** (JPEG, WebP, anything else): every frame stands alone. Late joiners get the
//!   ring of the last `buffer_frames` frames (`stream:buffer`, the seed's catch-up).
//! - **WebM** (the first bytes are an EBML header): the byte stream goes through
//!   [`WebmParser`] and is re-cut so a frame starts wherever a Cluster opens with a video
//!   keyframe. The state keeps the init segment and the GOP (everything since the latest
//!   keyframe Cluster); a joiner gets `init + GOP` as one `stream:data`, so even a client that
//!   only appends what arrives (the note's MSE snippet) can start decoding.
//! - **WebCodecs** (the sender labels chunks `key`/`delta`): the GOP since the latest key
//!   chunk, with the latest decoder config, is kept for joiners.
//!
//! Base64 text WebM (the seed's way of sending) is decoded to parse it, and the re-cut frames
//! are encoded back to base64 text, so viewers get the type the streamer sent.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use streamhub_protocol::FrameData;
use streamhub_protocol::client::ChunkKind;
use streamhub_protocol::server::MediaMode;

use super::frame::{Frame, FrameKind, Publish};
use crate::webm::{Piece, WebmParser};

const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];
/// Base64 of a string starting with the EBML magic (`1A 45 DF`).
const EBML_MAGIC_B64: &str = "GkXf";

/// Why a frame cannot be relayed as media.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MediaError {
    #[error("not valid base64: {0}")]
    Base64(String),
    #[error("the WebM stream cannot be parsed ({0}); restart the recorder to send a new header")]
    Webm(String),
    #[error(
        "a WebM stream carries its own audio track; stream:audio:send is for WebCodecs and picture streams"
    )]
    AudioBesideWebm,
    #[error("the stream's first audio chunk must carry its config (the AudioDecoderConfig)")]
    AudioWithoutConfig,
}

/// Cut frames, without sequence numbers yet.
#[derive(Debug)]
pub(crate) struct Cut {
    pub(crate) data: FrameData,
    pub(crate) kind: FrameKind,
    pub(crate) init: bool,
    pub(crate) raw: Option<Bytes>,
}

#[derive(Debug, Default)]
struct WebmState {
    parser: WebmParser,
    /// The stream sends base64 text.
    text: bool,
    init: Option<Bytes>,
    /// Raw bytes of the GOP, for the joiner bundle.
    gop_raw: Vec<Bytes>,
    /// The parser has been fed.
    started: bool,
}

/// Per-stream media state: the mode, the WebM parser, and the catch-up of encoded modes.
#[derive(Debug, Default)]
pub(crate) struct CatchUp {
    pub(crate) mode: MediaMode,
    webm: Option<WebmState>,
    /// A frame too short to tell whether an EBML header starts here (Chrome's first WebM chunk
    /// can be the single byte `1A`), held until the next frame.
    held: Option<(Bytes, bool)>,
    /// Frames since the latest keyframe (encoded modes), the catch-up for joiners.
    pub(crate) gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    /// The GOP outgrew the limit: joiners wait for the next keyframe.
    gop_overflow: bool,
    pub(crate) config: Option<Arc<serde_json::Value>>,
}

/// A frame whose first four bytes are the EBML magic starts a (new) WebM segment. Inside a
/// chunk the magic is just payload; only a chunk that *starts* with it counts, and a false
/// positive there (payload bytes equal to the magic at a chunk boundary) has a 2^-32 chance.
fn starts_webm(data: &FrameData) -> bool {
    match data {
        FrameData::Binary(b) => b.starts_with(&EBML_MAGIC),
        FrameData::Text(t) => {
            t.starts_with(EBML_MAGIC_B64)
                && t.get(..8)
                    .and_then(|head| B64.decode(head).ok())
                    .is_some_and(|b| b.starts_with(&EBML_MAGIC))
        }
    }
}

/// A frame shorter than the EBML magic that could be its beginning.
fn magic_prefix(data: &FrameData) -> Option<(Bytes, bool)> {
    let (bytes, text) = match data {
        FrameData::Binary(b) if b.len() < EBML_MAGIC.len() => (b.clone(), false),
        FrameData::Text(t) if t.len() <= 8 => (Bytes::from(B64.decode(t.trim()).ok()?), true),
        _ => return None,
    };
    (!bytes.is_empty() && bytes.len() < EBML_MAGIC.len() && EBML_MAGIC.starts_with(&bytes))
        .then_some((bytes, text))
}

fn raw_bytes(data: FrameData) -> Result<(Bytes, bool), MediaError> {
    match data {
        FrameData::Binary(b) => Ok((b, false)),
        FrameData::Text(t) => B64
            .decode(t.trim())
            .map(|v| (Bytes::from(v), true))
            .map_err(|e| MediaError::Base64(e.to_string())),
    }
}

fn wrap(bytes: Bytes, text: bool) -> FrameData {
    if text {
        FrameData::Text(B64.encode(&bytes))
    } else {
        FrameData::Binary(bytes)
    }
}

impl CatchUp {
    /// Classifies and (for WebM) re-cuts one incoming frame. May return no frame at all (a
    /// held prefix, or bytes the WebM parser keeps until it can cut).
    pub(crate) fn cut(&mut self, mut incoming: Publish) -> Result<Vec<Cut>, MediaError> {
        if let Some(chunk) = &incoming.chunk {
            self.held = None;
            self.set_mode(MediaMode::Webcodecs);
            if let Some(config) = incoming.config {
                self.config = Some(Arc::new(config));
            }
            let kind = match chunk.kind {
                ChunkKind::Key => FrameKind::Key,
                ChunkKind::Delta => FrameKind::Delta,
            };
            return Ok(vec![Cut {
                data: incoming.data,
                kind,
                init: false,
                raw: None,
            }]);
        }
        if let Some((held, text)) = self.held.take() {
            let (bytes, _) = raw_bytes(incoming.data)?;
            let mut joined = BytesMut::from(&held[..]);
            joined.extend_from_slice(&bytes);
            incoming.data = wrap(joined.freeze(), text);
        } else if let Some(prefix) = magic_prefix(&incoming.data) {
            self.held = Some(prefix);
            return Ok(Vec::new());
        }
        let new_segment = starts_webm(&incoming.data);
        if !new_segment && self.mode != MediaMode::Webm {
            self.set_mode(MediaMode::Images);
            return Ok(vec![Cut {
                data: incoming.data,
                kind: FrameKind::Independent,
                init: false,
                raw: None,
            }]);
        }
        let (bytes, text) = raw_bytes(incoming.data)?;
        if self.mode != MediaMode::Webm {
            self.set_mode(MediaMode::Webm);
        }
        if new_segment && self.webm.as_ref().is_some_and(|w| w.started) {
            // The recorder restarted (a new EBML header): parse from scratch.
            self.webm = None;
            self.clear_gop();
        }
        let state = self.webm.get_or_insert_with(|| WebmState {
            text,
            ..WebmState::default()
        });
        state.started = true;
        let pieces = state.parser.push(&bytes);
        group(state, pieces)
    }

    /// The streamer stopped: what the WebM parser still holds, as frames. A truncated or
    /// broken tail is dropped (nothing a player could decode).
    pub(crate) fn finish(&mut self) -> Vec<Cut> {
        let Some(state) = self.webm.as_mut().filter(|w| w.started) else {
            return Vec::new();
        };
        let parser = std::mem::take(&mut state.parser);
        group(state, parser.finish()).unwrap_or_default()
    }

    /// Length of the WebM init segment that frames marked `init` start with (0 otherwise): a
    /// replica on another node splits it off with this.
    pub(crate) fn init_len(&self) -> usize {
        self.webm
            .as_ref()
            .and_then(|w| w.init.as_ref())
            .map_or(0, Bytes::len)
    }

    /// A frame another node's relay cut and numbered (this stream is a replica): takes the
    /// frame's mode, its decoder config, and for WebM its init segment (the first `init_len`
    /// bytes of a frame that has one). Returns the bytes to keep for WebM catch-up bundles.
    pub(crate) fn forwarded(
        &mut self,
        media: MediaMode,
        data: &FrameData,
        init_len: Option<usize>,
        config: Option<&Arc<serde_json::Value>>,
    ) -> Result<Option<Bytes>, MediaError> {
        self.set_mode(media);
        if let Some(config) = config {
            self.config = Some(Arc::clone(config));
        }
        if media != MediaMode::Webm {
            return Ok(None);
        }
        let (bytes, text) = raw_bytes(data.clone())?;
        let state = self.webm.get_or_insert_with(|| WebmState {
            text,
            ..WebmState::default()
        });
        state.text = text;
        let split = init_len.map_or(0, |n| n.min(bytes.len()));
        if split > 0 {
            state.init = Some(bytes.slice(..split));
        }
        Ok(Some(bytes.slice(split..)))
    }

    /// The WebM init segment, once known.
    pub(crate) fn webm_init(&self) -> Option<Bytes> {
        self.webm.as_ref().and_then(|w| w.init.clone())
    }

    /// A replica's WebM init segment, read from the bus before its first frame.
    pub(crate) fn seed_webm_init(&mut self, init: Bytes, text: bool) {
        self.set_mode(MediaMode::Webm);
        let state = self.webm.get_or_insert_with(WebmState::default);
        state.text = text;
        state.init = Some(init);
    }

    fn set_mode(&mut self, mode: MediaMode) {
        if self.mode != mode {
            self.mode = mode;
            self.webm = None;
            self.config = None;
            self.clear_gop();
        }
    }

    fn clear_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_overflow = false;
        if let Some(w) = &mut self.webm {
            w.gop_raw.clear();
        }
    }

    /// Records a relayed frame in the GOP cache (encoded modes).
    pub(crate) fn remember(
        &mut self,
        frame: &Arc<Frame>,
        raw: Option<Bytes>,
        max_gop_bytes: usize,
    ) {
        if self.mode == MediaMode::Images {
            return;
        }
        if frame.kind == FrameKind::Key {
            self.clear_gop();
        } else if self.gop.is_empty() || self.gop_overflow {
            // Nothing decodable to add to.
            return;
        }
        self.gop_bytes += frame.data.len();
        if self.gop_bytes > max_gop_bytes {
            self.clear_gop();
            self.gop_overflow = true;
            return;
        }
        self.gop.push(Arc::clone(frame));
        if let (Some(w), Some(raw)) = (&mut self.webm, raw) {
            w.gop_raw.push(raw);
        }
    }

    /// WebM: the init segment followed by `extra` (the GOP, or one keyframe for a resync) as
    /// one frame a fresh or reset MediaSource can append.
    pub(crate) fn webm_bundle(&self, extra: &[Bytes], template: &Frame) -> Option<Frame> {
        let w = self.webm.as_ref()?;
        let init = w.init.as_ref()?;
        let mut buf =
            BytesMut::with_capacity(init.len() + extra.iter().map(Bytes::len).sum::<usize>());
        buf.extend_from_slice(init);
        for b in extra {
            buf.extend_from_slice(b);
        }
        Some(Frame {
            data: wrap(buf.freeze(), w.text),
            init: true,
            init_len: init.len(),
            kind: if extra.is_empty() {
                FrameKind::Delta
            } else {
                FrameKind::Key
            },
            ..template.clone()
        })
    }

    /// What a viewer joining now receives, and whether it can decode what follows.
    pub(crate) fn catch_up(&self, now_template: &Frame) -> (Vec<Arc<Frame>>, bool) {
        match self.mode {
            MediaMode::Images => (Vec::new(), true),
            MediaMode::Webcodecs => (self.gop.clone(), !self.gop.is_empty()),
            MediaMode::Webm => {
                let gop_raw = self
                    .webm
                    .as_ref()
                    .map(|w| w.gop_raw.as_slice())
                    .unwrap_or(&[]);
                let synced = !self.gop.is_empty();
                let template = self.gop.last().map(|f| f.as_ref()).unwrap_or(now_template);
                let bundle = self.webm_bundle(if synced { gop_raw } else { &[] }, template);
                // No init yet: the viewer sees the stream from its very first byte.
                let has_init = bundle.is_some();
                (
                    bundle.map(Arc::new).into_iter().collect(),
                    synced || !has_init,
                )
            }
        }
    }
}

/// Groups parser pieces into frames that start at keyframe Clusters.
fn group(state: &mut WebmState, pieces: Vec<Piece>) -> Result<Vec<Cut>, MediaError> {
    let mut out: Vec<Cut> = Vec::new();
    let mut current: Option<(BytesMut, FrameKind, bool)> = None;
    let init_len = |state: &WebmState| state.init.as_ref().map_or(0, Bytes::len);
    // `raw` (kept for catch-up bundles) leaves out a leading init segment: bundles add the
    // init themselves.
    let flush = |current: &mut Option<(BytesMut, FrameKind, bool)>,
                 out: &mut Vec<Cut>,
                 text,
                 init_len: usize| {
        if let Some((buf, kind, init)) = current.take() {
            let all = buf.freeze();
            let raw = if init {
                all.slice(init_len.min(all.len())..)
            } else {
                all.clone()
            };
            out.push(Cut {
                data: wrap(all, text),
                kind,
                init,
                raw: Some(raw),
            });
        }
    };
    for piece in pieces {
        match piece {
            Piece::Error(e) => return Err(MediaError::Webm(e.to_string())),
            Piece::Init(b) => {
                state.init = Some(b.clone());
                flush(&mut current, &mut out, state.text, init_len(state));
                current = Some((BytesMut::from(&b[..]), FrameKind::Delta, true));
            }
            Piece::ClusterStart {
                bytes,
                keyframe: true,
                ..
            } => {
                // A keyframe Cluster right after the init stays in the same frame.
                match &mut current {
                    Some((buf, kind, true))
                        if *kind == FrameKind::Delta
                            && buf.len() == state.init.as_ref().map_or(0, Bytes::len) =>
                    {
                        buf.extend_from_slice(&bytes);
                        *kind = FrameKind::Key;
                    }
                    _ => {
                        flush(&mut current, &mut out, state.text, init_len(state));
                        current = Some((BytesMut::from(&bytes[..]), FrameKind::Key, false));
                    }
                }
            }
            Piece::ClusterStart { bytes, .. } | Piece::Data(bytes) => match &mut current {
                Some((buf, _, _)) => buf.extend_from_slice(&bytes),
                None => current = Some((BytesMut::from(&bytes[..]), FrameKind::Delta, false)),
            },
        }
    }
    flush(&mut current, &mut out, state.text, init_len(state));
    Ok(out)
}
