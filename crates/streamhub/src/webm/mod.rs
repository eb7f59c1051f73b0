//! Incremental (push) WebM parser that cuts a live stream at Cluster boundaries.
//!
//! A viewer who joins a WebM stream late needs the init segment (every byte before the first
//! Cluster: EBML header, Segment header, Info, Tracks, ...) followed by data that starts at a
//! Cluster whose first *video* block is a keyframe; anything else kills the viewer's
//! MediaSource (`CHUNK_DEMUXER_ERROR_APPEND_FAILED`). Browsers' `MediaRecorder` chunks do not
//! line up with Clusters, so the relay feeds every chunk to a [`WebmParser`] and relays the
//! [`Piece`]s that come out:
//!
//! ```text
//! push(chunk) ─► [Init] [ClusterStart{keyframe, timecode}] [Data] [Data] [ClusterStart{..}] [Data] ...
//! ```
//!
//! The bytes of the pieces, concatenated, are exactly the bytes pushed: nothing is dropped,
//! rewritten or reordered, so relaying the pieces is relaying the stream.
//!
//! # How it works
//! The parser is sans-IO: [`WebmParser::push`] takes any slice (1 byte or a megabyte, at any
//! boundary) and returns the pieces it completes. It walks the element tree with a small stack
//! (at most three deep: Segment > Cluster > BlockGroup or Segment > Tracks > TrackEntry) and
//! reads the few values it needs: TrackEntry's TrackNumber / TrackType / CodecID, the Cluster
//! Timecode, and the header of the first video block of each Cluster (SimpleBlock flag `0x80`,
//! or a BlockGroup's Block without a ReferenceBlock). Every other element body is skipped.
//!
//! Bytes are held only while a decision is pending:
//! - before the first Cluster (they become [`Piece::Init`]),
//! - from a Cluster's ID until its first video block's header, or until the Cluster ends if it
//!   has none (they become [`Piece::ClusterStart`]),
//! - and at most 11 bytes of an incomplete element header.
//!
//! Everything else goes out as [`Piece::Data`] as soon as it arrives. Held bytes never exceed
//! the configured maximum (default [`DEFAULT_MAX_BUFFER`]); a stream that would need more, or
//! that is not well-formed enough to cut, ends in [`Piece::Error`] and should be refused.
//!
//! # Why a hand-written EBML scanner and not a crate
//! The relay needs the *original* bytes, passed through byte-exact, and element boundaries
//! that may fall anywhere inside a chunk, across chunks. EBML crates such as `ebml-iterable` /
//! `webm-iterable` pull from a `Read`, decode tags into owned values (copying every block
//! payload) and re-encode on write; they neither take pushed slices nor hand back the source
//! byte ranges, so we would buffer and re-slice the stream ourselves anyway. What we need is an
//! ID + VINT reader (about 40 lines) and a handful of element IDs, so we keep it here.
//!
//! # Limits (by design)
//! - One Segment per stream: a second EBML header / Segment, or bytes after a known-size
//!   Segment ends, are an error ([`WebmError::Unsupported`]).
//! - Tracks must come before the first Cluster ([`WebmError::NoTracks`]); a later Tracks
//!   element is relayed but not parsed.
//! - A stream without a video track has no keyframes to wait for: each Cluster's
//!   [`Piece::ClusterStart`] is emitted at its first block, with `keyframe: false`.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// Default cap on bytes held by one parser (4 MiB).
pub(crate) const DEFAULT_MAX_BUFFER: usize = 4 * 1024 * 1024;

/// Most tracks a stream may declare.
const MAX_TRACKS: usize = 64;
/// Longest CodecID accepted (real ones are ~16 bytes).
const MAX_CODEC_ID: u64 = 256;

// Element IDs, as written on the wire (marker bits included).
const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CHAPTERS: u32 = 0x1043_A770;
const CLUSTER: u32 = 0x1F43_B675;
const CUES: u32 = 0x1C53_BB6B;
const ATTACHMENTS: u32 = 0x1941_A469;
const TAGS: u32 = 0x1254_C367;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const REFERENCE_BLOCK: u32 = 0xFB;

/// Top-level (Segment and EBML header) and segment-level IDs: one of these ends an
/// unknown-size Cluster.
const ENDS_CLUSTER: [u32; 10] = [
    EBML,
    SEGMENT,
    SEEK_HEAD,
    INFO,
    TRACKS,
    CHAPTERS,
    CLUSTER,
    CUES,
    ATTACHMENTS,
    TAGS,
];

/// A run of stream bytes, in stream order. Concatenating the bytes of every piece returned by
/// [`WebmParser::push`] (and [`WebmParser::finish`]) gives back exactly the bytes pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Everything before the first Cluster. Emitted once, when the first Cluster's element
    /// header (ID and size) is complete. A late joiner gets this first.
    Init(Bytes),
    /// The start of a Cluster: from its ID through the header (track, timecode, flags) of its
    /// first video block, or through the end of the BlockGroup holding that block. A Cluster
    /// with no video block is emitted whole, with `keyframe: false`, when it ends.
    ClusterStart {
        bytes: Bytes,
        /// The first video block of this Cluster is a keyframe: a late joiner may start here.
        keyframe: bool,
        /// The Cluster's Timecode element (in TimecodeScale units, milliseconds for Chrome);
        /// 0 if none came before the deciding block.
        timecode: u64,
    },
    /// More bytes of the current Cluster (or of segment-level elements after a Cluster).
    Data(Bytes),
    /// The stream cannot be cut: refuse it. Bytes still held are not returned, and every
    /// later [`WebmParser::push`] returns this error again.
    Error(WebmError),
}

impl Piece {
    /// This piece's stream bytes (empty for [`Piece::Error`]). Tests and the fuzz targets
    /// check that these add up to the input.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Piece::Init(b) | Piece::Data(b) | Piece::ClusterStart { bytes: b, .. } => b,
            Piece::Error(_) => &[],
        }
    }
}

/// Why a stream was refused. `offset` is the stream position of the offending element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WebmError {
    #[error("not a WebM stream: it does not start with an EBML header")]
    NotWebm,
    #[error("invalid element ID at byte {offset}")]
    InvalidId { offset: u64 },
    #[error("invalid element size at byte {offset}")]
    InvalidSize { offset: u64 },
    #[error(
        "element {id:#x} at byte {offset} has unknown size (allowed for Segment and Cluster only)"
    )]
    UnknownSize { id: u32, offset: u64 },
    #[error("element {id:#x} at byte {offset} overruns its parent")]
    Overrun { id: u32, offset: u64 },
    #[error("malformed {what} at byte {offset}")]
    Malformed { what: &'static str, offset: u64 },
    #[error("no Tracks before the first Cluster")]
    NoTracks,
    #[error("more than {MAX_TRACKS} tracks")]
    TooManyTracks,
    #[error("unsupported at byte {offset}: {what}")]
    Unsupported { what: &'static str, offset: u64 },
    #[error("more than {limit} bytes would have to be held")]
    BufferLimit { limit: usize },
    #[error("the stream ended before its first Cluster")]
    Truncated,
}

/// What a track carries (Matroska TrackType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrackKind {
    /// TrackType 1.
    Video,
    /// TrackType 2.
    Audio,
    /// Any other TrackType (0 if the TrackEntry had none).
    Other(u64),
}

/// One TrackEntry from the Tracks element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Track {
    /// TrackNumber: what blocks refer to.
    pub number: u64,
    pub kind: TrackKind,
    /// CodecID, e.g. `V_VP8`, `A_OPUS` (empty if absent).
    pub codec_id: String,
}

/// The master elements the parser descends into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Segment,
    Tracks,
    TrackEntry,
    Cluster,
    BlockGroup,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    kind: Kind,
    /// Where this element ends: its own end, or for unknown size its parent's (if known).
    end: Option<u64>,
    unknown_size: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Before the first Cluster: everything is held for [`Piece::Init`].
    Header,
    /// Inside a Cluster whose [`Piece::ClusterStart`] is not decided yet: everything is held.
    Held,
    /// Parsed bytes go out as [`Piece::Data`].
    Flowing,
    Failed(WebmError),
}

/// An element header: ID, size (`None` = unknown) and header length.
#[derive(Debug, Clone, Copy)]
struct Header {
    id: u32,
    size: Option<u64>,
    len: usize,
}

#[derive(Debug, Default)]
struct TrackDraft {
    number: u64,
    kind: Option<u64>,
    codec_id: String,
}

#[derive(Debug, Default)]
struct GroupDraft {
    video: bool,
    has_reference: bool,
}

/// Whether the parser can go on with the bytes it has.
enum Step {
    Continue,
    NeedMore,
}

/// Incremental WebM parser; see the [module docs](self).
pub(crate) struct WebmParser {
    max_buffer: usize,
    /// Bytes received and not yet emitted.
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Bytes of `buf` already parsed.
    pos: usize,
    /// Stream offset up to which an element body is being passed over.
    skip_to: u64,
    stack: Vec<Open>,
    phase: Phase,
    seen_ebml: bool,
    segment_done: bool,
    tracks: Vec<Track>,
    track: Option<TrackDraft>,
    video_track: Option<u64>,
    cluster_timecode: Option<u64>,
    group: Option<GroupDraft>,
}

impl fmt::Debug for WebmParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebmParser")
            .field("phase", &self.phase)
            .field("offset", &(self.base + self.pos as u64))
            .field("buffered", &self.buf.len())
            .field("tracks", &self.tracks)
            .finish_non_exhaustive()
    }
}

impl Default for WebmParser {
    fn default() -> Self {
        Self::new()
    }
}

impl WebmParser {
    /// A parser holding at most [`DEFAULT_MAX_BUFFER`] bytes.
    pub(crate) fn new() -> Self {
        Self::with_max_buffer(DEFAULT_MAX_BUFFER)
    }

    /// A parser holding at most `max_buffer` bytes: the init segment and any Cluster's bytes up
    /// to its first video block must fit.
    pub(crate) fn with_max_buffer(max_buffer: usize) -> Self {
        Self {
            max_buffer,
            buf: BytesMut::new(),
            base: 0,
            pos: 0,
            skip_to: 0,
            stack: Vec::new(),
            phase: Phase::Header,
            seen_ebml: false,
            segment_done: false,
            tracks: Vec::new(),
            track: None,
            video_track: None,
            cluster_timecode: None,
            group: None,
        }
    }

    #[cfg(test)]
    /// The tracks declared before the first Cluster (complete once [`Piece::Init`] is out).
    pub(crate) fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    #[cfg(test)]
    /// The video track whose keyframes decide [`Piece::ClusterStart`]: the first TrackEntry
    /// with TrackType 1. Known once [`Piece::Init`] is out.
    pub(crate) fn video_track(&self) -> Option<&Track> {
        let number = self.video_track?;
        self.tracks.iter().find(|t| t.number == number)
    }

    #[cfg(test)]
    /// Bytes received but not yet returned in a piece.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next bytes of the stream; returns the pieces they complete, in stream order.
    /// Never panics. After a [`Piece::Error`] the parser only returns that error.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        if let Phase::Failed(e) = &self.phase {
            out.push(Piece::Error(e.clone()));
            return out;
        }
        let mut rest = chunk;
        while !rest.is_empty() {
            // Take no more than fits: the buffer never exceeds `max_buffer`.
            let room = self.max_buffer.saturating_sub(self.buf.len());
            if room == 0 {
                self.fail(
                    WebmError::BufferLimit {
                        limit: self.max_buffer,
                    },
                    &mut out,
                );
                break;
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            rest = later;
            self.buf.extend_from_slice(now);
            if let Err(e) = self.run(&mut out) {
                self.fail(e, &mut out);
                break;
            }
            if self.phase == Phase::Flowing && self.pos > 0 {
                let bytes = self.take(self.pos);
                out.push(Piece::Data(bytes));
            }
        }
        out
    }

    /// The stream has ended: returns whatever is still held (a Cluster still waiting for a
    /// video block becomes a `ClusterStart { keyframe: false }`).
    pub(crate) fn finish(mut self) -> Vec<Piece> {
        let rest = self.buf.split().freeze();
        match self.phase {
            Phase::Failed(e) => vec![Piece::Error(e)],
            Phase::Header if self.base == 0 && rest.is_empty() => Vec::new(),
            Phase::Header => vec![Piece::Error(WebmError::Truncated)],
            _ if rest.is_empty() => Vec::new(),
            Phase::Held => vec![Piece::ClusterStart {
                bytes: rest,
                keyframe: false,
                timecode: self.cluster_timecode.unwrap_or(0),
            }],
            Phase::Flowing => vec![Piece::Data(rest)],
        }
    }

    fn fail(&mut self, e: WebmError, out: &mut Vec<Piece>) {
        self.buf = BytesMut::new();
        self.pos = 0;
        self.stack.clear();
        self.phase = Phase::Failed(e.clone());
        out.push(Piece::Error(e));
    }

    /// Removes and returns the first `n` held bytes.
    fn take(&mut self, n: usize) -> Bytes {
        let bytes = self.buf.split_to(n).freeze();
        self.base += n as u64;
        self.pos -= n;
        bytes
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Parses as far as the held bytes allow.
    fn run(&mut self, out: &mut Vec<Piece>) -> Result<(), WebmError> {
        loop {
            let off = self.offset();
            if off < self.skip_to {
                let avail = (self.buf.len() - self.pos) as u64;
                let n = avail.min(self.skip_to - off);
                // n <= avail, which is a usize.
                self.pos += n as usize;
                if off + n < self.skip_to {
                    return Ok(());
                }
                continue;
            }
            if let Some(top) = self.stack.last()
                && top.end == Some(off)
            {
                self.close(out)?;
                continue;
            }
            if !self.seen_ebml && self.buf.get(self.pos).is_some_and(|&b| b != 0x1A) {
                return Err(WebmError::NotWebm);
            }
            let Some(header) = read_header(&self.buf[self.pos..], off)? else {
                return Ok(());
            };
            if let Step::NeedMore = self.element(header, out)? {
                return Ok(());
            }
        }
    }

    /// Handles the element whose header starts at `self.pos`.
    fn element(&mut self, h: Header, out: &mut Vec<Piece>) -> Result<Step, WebmError> {
        let off = self.offset();
        let top = self.stack.last().copied();
        let parent = top.map(|o| o.kind);

        // A segment-level ID ends an unknown-size Cluster; handle the ID again in the Segment.
        if let Some(o) = top
            && o.kind == Kind::Cluster
            && o.unknown_size
            && ENDS_CLUSTER.contains(&h.id)
        {
            self.close(out)?;
            return Ok(Step::Continue);
        }
        if parent == Some(Kind::Segment) && (h.id == EBML || h.id == SEGMENT) {
            return Err(WebmError::Unsupported {
                what: "a second EBML header or Segment",
                offset: off,
            });
        }
        if parent.is_none() && self.segment_done {
            return Err(WebmError::Unsupported {
                what: "data after the Segment",
                offset: off,
            });
        }

        let body = off + h.len as u64;
        let bound = top.and_then(|o| o.end);
        let end = match h.size {
            Some(size) => {
                let end = body
                    .checked_add(size)
                    .ok_or(WebmError::InvalidSize { offset: off })?;
                if bound.is_some_and(|b| end > b) {
                    return Err(WebmError::Overrun {
                        id: h.id,
                        offset: off,
                    });
                }
                Some(end)
            }
            None => {
                let allowed = (parent.is_none() && h.id == SEGMENT)
                    || (parent == Some(Kind::Segment) && h.id == CLUSTER);
                if !allowed {
                    return Err(WebmError::UnknownSize {
                        id: h.id,
                        offset: off,
                    });
                }
                None
            }
        };

        match (parent, h.id) {
            (None, EBML) => {
                self.seen_ebml = true;
                self.skip(h, end)
            }
            (None, _) if !self.seen_ebml => Err(WebmError::NotWebm),
            (None, SEGMENT) => Ok(self.enter(Kind::Segment, h, end, bound)),
            (Some(Kind::Segment), CLUSTER) => {
                self.begin_cluster(out)?;
                Ok(self.enter(Kind::Cluster, h, end, bound))
            }
            (Some(Kind::Segment), TRACKS) if self.phase == Phase::Header => {
                Ok(self.enter(Kind::Tracks, h, end, bound))
            }
            (Some(Kind::Tracks), TRACK_ENTRY) => {
                if self.tracks.len() >= MAX_TRACKS {
                    return Err(WebmError::TooManyTracks);
                }
                self.track = Some(TrackDraft::default());
                Ok(self.enter(Kind::TrackEntry, h, end, bound))
            }
            (Some(Kind::TrackEntry), TRACK_NUMBER | TRACK_TYPE) => {
                let Some(value) = self.read_uint(h, "TrackEntry value")? else {
                    return Ok(Step::NeedMore);
                };
                if let Some(t) = self.track.as_mut() {
                    if h.id == TRACK_NUMBER {
                        t.number = value;
                    } else {
                        t.kind = Some(value);
                    }
                }
                self.skip(h, end)
            }
            (Some(Kind::TrackEntry), CODEC_ID) => {
                let Some(raw) = self.body(h, MAX_CODEC_ID, "CodecID")? else {
                    return Ok(Step::NeedMore);
                };
                let codec_id = String::from_utf8_lossy(raw)
                    .trim_end_matches('\0')
                    .to_owned();
                if let Some(t) = self.track.as_mut() {
                    t.codec_id = codec_id;
                }
                self.skip(h, end)
            }
            (Some(Kind::Cluster), _) if self.phase != Phase::Held => self.skip(h, end),
            (Some(Kind::Cluster), TIMECODE) => {
                let Some(value) = self.read_uint(h, "Cluster Timecode")? else {
                    return Ok(Step::NeedMore);
                };
                self.cluster_timecode = Some(value);
                self.skip(h, end)
            }
            (Some(Kind::Cluster), SIMPLE_BLOCK | BLOCK_GROUP) if self.video_track.is_none() => {
                // No video track: nothing to wait for.
                self.emit_cluster_start(false, out);
                self.skip(h, end)
            }
            (Some(Kind::Cluster), SIMPLE_BLOCK) => {
                let Some((track, block_header, flags)) = self.read_block_header(h)? else {
                    return Ok(Step::NeedMore);
                };
                if Some(track) == self.video_track {
                    self.pos += h.len + block_header;
                    self.skip_to = end.unwrap_or(0);
                    self.emit_cluster_start(flags & 0x80 != 0, out);
                    Ok(Step::Continue)
                } else {
                    self.skip(h, end)
                }
            }
            (Some(Kind::Cluster), BLOCK_GROUP) => {
                self.group = Some(GroupDraft::default());
                Ok(self.enter(Kind::BlockGroup, h, end, bound))
            }
            (Some(Kind::BlockGroup), BLOCK) => {
                let Some((track, _, _)) = self.read_block_header(h)? else {
                    return Ok(Step::NeedMore);
                };
                if Some(track) == self.video_track
                    && let Some(g) = self.group.as_mut()
                {
                    g.video = true;
                }
                self.skip(h, end)
            }
            (Some(Kind::BlockGroup), REFERENCE_BLOCK) => {
                if let Some(g) = self.group.as_mut() {
                    g.has_reference = true;
                }
                self.skip(h, end)
            }
            _ => self.skip(h, end),
        }
    }

    /// Descends into a master element.
    fn enter(&mut self, kind: Kind, h: Header, end: Option<u64>, bound: Option<u64>) -> Step {
        self.stack.push(Open {
            kind,
            end: end.or(bound),
            unknown_size: end.is_none(),
        });
        self.pos += h.len;
        Step::Continue
    }

    /// Passes over an element's body (known size: unknown sizes were refused before).
    fn skip(&mut self, h: Header, end: Option<u64>) -> Result<Step, WebmError> {
        let end = end.ok_or(WebmError::UnknownSize {
            id: h.id,
            offset: self.offset(),
        })?;
        self.pos += h.len;
        self.skip_to = end;
        Ok(Step::Continue)
    }

    /// The master element on top of the stack ends here.
    fn close(&mut self, out: &mut Vec<Piece>) -> Result<(), WebmError> {
        let Some(open) = self.stack.pop() else {
            return Ok(());
        };
        match open.kind {
            Kind::Segment => self.segment_done = true,
            Kind::Tracks => {}
            Kind::TrackEntry => {
                if let Some(t) = self.track.take()
                    && t.number != 0
                {
                    let kind = match t.kind {
                        Some(1) => TrackKind::Video,
                        Some(2) => TrackKind::Audio,
                        other => TrackKind::Other(other.unwrap_or(0)),
                    };
                    self.tracks.push(Track {
                        number: t.number,
                        kind,
                        codec_id: t.codec_id,
                    });
                }
            }
            Kind::Cluster => {
                if self.phase == Phase::Held {
                    self.emit_cluster_start(false, out);
                }
            }
            Kind::BlockGroup => {
                if let Some(g) = self.group.take()
                    && g.video
                    && self.phase == Phase::Held
                {
                    self.emit_cluster_start(!g.has_reference, out);
                }
            }
        }
        Ok(())
    }

    /// A Cluster's header has been read at `self.pos`: emit what came before it.
    fn begin_cluster(&mut self, out: &mut Vec<Piece>) -> Result<(), WebmError> {
        match self.phase {
            Phase::Header => {
                if self.tracks.is_empty() {
                    return Err(WebmError::NoTracks);
                }
                self.video_track = self
                    .tracks
                    .iter()
                    .find(|t| t.kind == TrackKind::Video)
                    .map(|t| t.number);
                let init = self.take(self.pos);
                out.push(Piece::Init(init));
            }
            // Held cannot happen here: a Cluster is closed (Held -> Flowing) before the next one.
            _ => {
                if self.pos > 0 {
                    let data = self.take(self.pos);
                    out.push(Piece::Data(data));
                }
            }
        }
        self.phase = Phase::Held;
        self.cluster_timecode = None;
        self.group = None;
        Ok(())
    }

    /// Emits the held Cluster bytes up to `self.pos`; the rest of the Cluster flows.
    fn emit_cluster_start(&mut self, keyframe: bool, out: &mut Vec<Piece>) {
        let bytes = self.take(self.pos);
        out.push(Piece::ClusterStart {
            bytes,
            keyframe,
            timecode: self.cluster_timecode.unwrap_or(0),
        });
        self.phase = Phase::Flowing;
    }

    /// The whole body of a small element, if it has arrived.
    fn body(&self, h: Header, max: u64, what: &'static str) -> Result<Option<&[u8]>, WebmError> {
        let size = h.size.unwrap_or(u64::MAX);
        if size > max {
            return Err(WebmError::Malformed {
                what,
                offset: self.offset(),
            });
        }
        // size <= max, a small number.
        let start = self.pos + h.len;
        Ok(self.buf.get(start..start + size as usize))
    }

    /// An unsigned integer element (0 to 8 bytes, big-endian).
    fn read_uint(&self, h: Header, what: &'static str) -> Result<Option<u64>, WebmError> {
        Ok(self
            .body(h, 8, what)?
            .map(|b| b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x))))
    }

    /// A (Simple)Block's track number, the length of its header (track VINT, 16-bit timecode,
    /// flags byte) and its flags.
    fn read_block_header(&self, h: Header) -> Result<Option<(u64, usize, u8)>, WebmError> {
        let malformed = WebmError::Malformed {
            what: "block header",
            offset: self.offset(),
        };
        let start = self.pos + h.len;
        let Some(&first) = self.buf.get(start) else {
            return Ok(None);
        };
        let vint_len = first.leading_zeros() as usize + 1;
        if vint_len > 8 || h.size.is_none_or(|s| s < vint_len as u64 + 3) {
            return Err(malformed);
        }
        let (Some(raw), Some(&flags)) = (
            self.buf.get(start..start + vint_len),
            self.buf.get(start + vint_len + 2),
        ) else {
            return Ok(None);
        };
        Ok(Some((vint_value(raw), vint_len + 3, flags)))
    }
}

/// The value of a VINT (marker bit removed). `raw` is 1 to 8 bytes, its length given by the
/// first byte.
fn vint_value(raw: &[u8]) -> u64 {
    let mask = 0xFFu64 >> raw.len();
    raw.iter()
        .skip(1)
        .fold(u64::from(raw[0]) & mask, |v, &x| (v << 8) | u64::from(x))
}

/// Reads an element header (ID VINT of 1–4 bytes, size VINT of 1–8 bytes) from the start of
/// `b`; `None` if it is not complete yet. All-ones sizes mean "unknown".
fn read_header(b: &[u8], offset: u64) -> Result<Option<Header>, WebmError> {
    let Some(&first) = b.first() else {
        return Ok(None);
    };
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Err(WebmError::InvalidId { offset });
    }
    let Some(&size_first) = b.get(id_len) else {
        return Ok(None);
    };
    let size_len = size_first.leading_zeros() as usize + 1;
    if size_len > 8 {
        return Err(WebmError::InvalidSize { offset });
    }
    let Some(raw_size) = b.get(id_len..id_len + size_len) else {
        return Ok(None);
    };
    let id = b[..id_len]
        .iter()
        .fold(0u32, |v, &x| (v << 8) | u32::from(x));
    let size = vint_value(raw_size);
    let unknown = size == (1u64 << (7 * size_len)) - 1;
    Ok(Some(Header {
        id,
        size: (!unknown).then_some(size),
        len: id_len + size_len,
    }))
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
