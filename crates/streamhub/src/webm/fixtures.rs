//! The WebM fixtures in `tests/fixtures/`, shared by the parser's and the relay's tests.
//!
//! Recorded by the browser tests (`web/e2e/fixtures.test.mjs`, `UPDATE_FIXTURES=1`): our
//! streamer page in WebM mode with Chromium's fake camera, every `MediaRecorder` chunk kept as
//! delivered. Their layout (`*.layout.json`) was read by the independent `ebml_dump.py`, never by
//! the parser these tests check.

use serde::Deserialize;

pub(crate) struct Fixture {
    pub name: &'static str,
    pub data: &'static [u8],
    /// `dataavailable` chunk lengths as recorded.
    pub recorded: Vec<usize>,
    pub layout: Layout,
}

#[derive(Deserialize)]
pub(crate) struct Layout {
    /// Everything before the first Cluster.
    pub init_len: usize,
    pub tracks: Vec<TrackInfo>,
    pub clusters: Vec<ClusterInfo>,
}

#[derive(Deserialize)]
pub(crate) struct TrackInfo {
    pub number: u64,
    /// Matroska TrackType: 1 video, 2 audio.
    #[serde(rename = "type")]
    pub kind: u64,
    pub codec: String,
}

#[derive(Deserialize, Clone, Copy)]
pub(crate) struct ClusterInfo {
    pub offset: u64,
    pub timecode: u64,
    /// The Cluster's first video block is a keyframe.
    pub keyframe: bool,
    /// Where that block starts, from the Cluster's start; none for an audio-only Cluster.
    pub video_at: Option<u64>,
}

fn load(
    name: &'static str,
    data: &'static [u8],
    chunks: &'static str,
    layout: &'static str,
) -> Fixture {
    let fixture = Fixture {
        name,
        data,
        recorded: serde_json::from_str(chunks)
            .unwrap_or_else(|e| panic!("{name}.chunks.json: {e}")),
        layout: serde_json::from_str(layout).unwrap_or_else(|e| panic!("{name}.layout.json: {e}")),
    };
    assert_eq!(
        fixture.recorded.iter().sum::<usize>(),
        data.len(),
        "{name}: chunk lengths add up to the file"
    );
    fixture
}

/// Video and audio: `video/webm;codecs=vp8,opus`.
pub(crate) fn vp8_opus() -> Fixture {
    load(
        "chrome-vp8-opus",
        include_bytes!("../../tests/fixtures/chrome-vp8-opus.webm"),
        include_str!("../../tests/fixtures/chrome-vp8-opus.chunks.json"),
        include_str!("../../tests/fixtures/chrome-vp8-opus.layout.json"),
    )
}

/// Video only (a streamer without a microphone): `video/webm;codecs=vp8`.
pub(crate) fn vp8() -> Fixture {
    load(
        "chrome-vp8",
        include_bytes!("../../tests/fixtures/chrome-vp8.webm"),
        include_str!("../../tests/fixtures/chrome-vp8.chunks.json"),
        include_str!("../../tests/fixtures/chrome-vp8.layout.json"),
    )
}

pub(crate) fn all() -> [Fixture; 2] {
    [vp8_opus(), vp8()]
}

impl Fixture {
    pub(crate) fn init(&self) -> &'static [u8] {
        &self.data[..self.layout.init_len]
    }

    fn track(&self, kind: u64) -> Option<&TrackInfo> {
        self.layout.tracks.iter().find(|t| t.kind == kind)
    }

    pub(crate) fn video_track(&self) -> u64 {
        self.track(1).map(|t| t.number).expect("a video track")
    }

    pub(crate) fn audio_track(&self) -> Option<&TrackInfo> {
        self.track(2)
    }

    /// Offsets of the Clusters whose first video block is a keyframe.
    pub(crate) fn keyframes(&self) -> Vec<usize> {
        self.layout
            .clusters
            .iter()
            .filter(|c| c.keyframe)
            .map(|c| c.offset as usize)
            .collect()
    }

    /// The latest keyframe Cluster that starts before `end` (so its start has been relayed).
    pub(crate) fn key_before(&self, end: usize) -> Option<usize> {
        self.keyframes().into_iter().filter(|&k| k < end).max()
    }

    /// The recorded chunks with the first one's leading byte alone, as Chrome's audio+video
    /// recorder delivered it in an earlier recording (`0x1A`, then the rest).
    pub(crate) fn one_byte_head(&self) -> Vec<usize> {
        let mut out = self.recorded.clone();
        if out[0] > 1 {
            out[0] -= 1;
            out.insert(0, 1);
        }
        out
    }
}
