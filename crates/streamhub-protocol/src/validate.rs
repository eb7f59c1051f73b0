//! Validation of client-supplied text. Every function trims, checks length in characters
//! (not bytes, so emoji count once) and refuses control characters, returning the cleaned
//! value or the error code to send back.

use crate::{ErrorCode, REACTIONS};

/// Longest stream key the server ever issues; anything longer is refused before a lookup.
pub const MAX_STREAM_KEY_LEN: usize = 64;

fn clean(input: &str, min: usize, max: usize) -> Option<String> {
    let trimmed = input.trim();
    // Count lazily so a 100 KB string costs at most `max + 1` steps.
    let chars = trimmed.chars().take(max + 1).count();
    if chars < min || chars > max || trimmed.chars().any(char::is_control) {
        return None;
    }
    Some(trimmed.to_owned())
}

/// Code points that draw nothing on their own (inclusive ranges): zero-width spaces and
/// joiners, bidi and other format marks, variation selectors, fillers and the blank braille
/// pattern. A name made only of these (and whitespace) shows as nothing, so it is refused.
/// Hand-listed rather than from Unicode tables: these are the ones that are abused as
/// "empty" names; the pages get the same list (`INVISIBLE_RANGES` in the generated TS).
pub const INVISIBLE_RANGES: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` draws something: not whitespace, not a control, not in [`INVISIBLE_RANGES`].
pub fn is_visible(c: char) -> bool {
    !c.is_whitespace()
        && !c.is_control()
        && !INVISIBLE_RANGES
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// A username: 1..=`max` characters after trimming, at least one of them visible
/// ([`is_visible`]).
pub fn username(input: &str, max: usize) -> Result<String, ErrorCode> {
    let name = clean(input, 1, max).ok_or(ErrorCode::InvalidUsername)?;
    if !name.chars().any(is_visible) {
        return Err(ErrorCode::InvalidUsername);
    }
    Ok(name)
}

/// A channel name as clients and URLs give it: a username ([`username`]), in lower case (how
/// channel names are compared).
pub fn channel(input: &str, max: usize) -> Result<String, ErrorCode> {
    username(input, max).map(|n| n.to_lowercase())
}

/// A stream title: 0..=`max` characters after trimming (empty means "use the default").
pub fn title(input: &str, max: usize) -> Result<String, ErrorCode> {
    clean(input, 0, max).ok_or(ErrorCode::InvalidTitle)
}

/// A chat message: 1..=`max` characters after trimming. Newlines are refused with the other
/// control characters: chat is one line per message.
pub fn chat_message(input: &str, max: usize) -> Result<String, ErrorCode> {
    clean(input, 1, max).ok_or(ErrorCode::InvalidMessage)
}

/// A reaction from the fixed set [`REACTIONS`].
pub fn reaction(input: &str) -> Result<&'static str, ErrorCode> {
    REACTIONS
        .iter()
        .copied()
        .find(|r| *r == input)
        .ok_or(ErrorCode::InvalidReaction)
}

/// A stream key as clients send it: refused early if it cannot be one the server issued.
pub fn stream_key(input: &str) -> Result<&str, ErrorCode> {
    if input.is_empty()
        || input.len() > MAX_STREAM_KEY_LEN
        || !input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ErrorCode::StreamNotFound);
    }
    Ok(input)
}

/// A thumbnail (`stream:thumbnail`): binary, 1..=`max` bytes, and a JPEG by its first
/// bytes (`FF D8 FF`: start of image, then a marker). Only the magic is checked; browsers
/// show a broken picture for a damaged one, which is the sender's own stream's loss.
pub fn thumbnail(data: &crate::FrameData, max: usize) -> Result<&[u8], ErrorCode> {
    let crate::FrameData::Binary(bytes) = data else {
        return Err(ErrorCode::InvalidThumbnail);
    };
    if bytes.len() > max {
        return Err(ErrorCode::ThumbnailTooLarge);
    }
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(ErrorCode::InvalidThumbnail);
    }
    Ok(bytes)
}

/// Why an audio chunk (`stream:audio:send`) is refused, before it reaches the relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// `data` came as text (base64); audio is binary only.
    #[error("audio data must be binary (an ArrayBuffer, Blob or Buffer), not text")]
    NotBinary,
    /// An empty packet.
    #[error("audio data is empty")]
    Empty,
    /// Over [`crate::AUDIO_MAX_BYTES`].
    #[error("audio chunk of {0} bytes is over the {max}-byte limit", max = crate::AUDIO_MAX_BYTES)]
    TooLarge(usize),
    /// `chunk.timestamp` or `chunk.duration` not a finite number in range.
    #[error(
        "chunk.timestamp must be a finite number of microseconds and chunk.duration between 1 and 120000 µs"
    )]
    Timing,
    /// `config` is not an Opus `AudioDecoderConfig` this server relays.
    #[error("config must be an AudioDecoderConfig with codec \"opus\", sampleRate 48000 and numberOfChannels 1 or 2, at most {max} bytes: {0}", max = crate::AUDIO_CONFIG_MAX_BYTES)]
    Config(&'static str),
}

impl AudioError {
    /// The code the refusal travels with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge(_) => ErrorCode::FrameTooLarge,
            _ => ErrorCode::InvalidPayload,
        }
    }
}

/// An audio chunk (`stream:audio:send`): binary, 1..=[`crate::AUDIO_MAX_BYTES`] bytes, a
/// finite timestamp, a duration up to Opus's longest packet (120 ms), and a config (when
/// given) that names Opus at 48 kHz, mono or stereo.
pub fn audio(send: &crate::client::AudioSend) -> Result<(), AudioError> {
    let crate::FrameData::Binary(bytes) = &send.data else {
        return Err(AudioError::NotBinary);
    };
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    if bytes.len() > crate::AUDIO_MAX_BYTES {
        return Err(AudioError::TooLarge(bytes.len()));
    }
    let c = &send.chunk;
    let duration_ok = c
        .duration
        .is_none_or(|d| d.is_finite() && d > 0.0 && d <= 120_000.0);
    if !c.timestamp.is_finite() || !duration_ok {
        return Err(AudioError::Timing);
    }
    if let Some(config) = &send.config {
        audio_config(config)?;
    }
    Ok(())
}

/// `captureTime` of `stream:data:send`: a number (serde already refused anything else) that
/// is finite and not negative. Its value is the streamer's business: it is relayed as sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("captureTime must be a finite, non-negative number of ms since the epoch, not {0}")]
pub struct CaptureTimeError(pub f64);

impl CaptureTimeError {
    /// The wire code: a mistyped field.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidPayload
    }
}

/// Checks `captureTime` (absent is fine).
pub fn capture_time(v: Option<f64>) -> Result<(), CaptureTimeError> {
    match v {
        Some(t) if !t.is_finite() || t < 0.0 => Err(CaptureTimeError(t)),
        _ => Ok(()),
    }
}

fn audio_config(config: &serde_json::Value) -> Result<(), AudioError> {
    let obj = config
        .as_object()
        .ok_or(AudioError::Config("not an object"))?;
    if serde_json::to_vec(config).map_or(usize::MAX, |v| v.len()) > crate::AUDIO_CONFIG_MAX_BYTES {
        return Err(AudioError::Config("too large"));
    }
    if obj.get("codec").and_then(|v| v.as_str()) != Some("opus") {
        return Err(AudioError::Config("codec is not \"opus\""));
    }
    if obj.get("sampleRate").and_then(|v| v.as_u64()) != Some(u64::from(crate::AUDIO_SAMPLE_RATE)) {
        return Err(AudioError::Config("sampleRate is not 48000"));
    }
    if !matches!(
        obj.get("numberOfChannels").and_then(|v| v.as_u64()),
        Some(1 | 2)
    ) {
        return Err(AudioError::Config("numberOfChannels is not 1 or 2"));
    }
    if obj.get("description").is_some_and(|d| !d.is_string()) {
        return Err(AudioError::Config("description is not a base64 string"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn capture_time_is_a_finite_non_negative_number() {
        assert!(super::capture_time(None).is_ok());
        assert!(super::capture_time(Some(0.0)).is_ok());
        assert!(super::capture_time(Some(1_765_000_000_123.25)).is_ok());
        for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(super::capture_time(Some(bad)).is_err(), "{bad} accepted");
        }
    }

    use super::*;

    #[test]
    fn audio_chunks_are_binary_opus_within_the_limits() {
        use crate::client::{AudioSend, ChunkInfo, ChunkKind};
        let send = |data: crate::FrameData, ts: f64, dur: Option<f64>, config| AudioSend {
            stream_key: "k".into(),
            data,
            chunk: ChunkInfo {
                kind: ChunkKind::Key,
                timestamp: ts,
                duration: dur,
            },
            config,
        };
        let bin = |n: usize| crate::FrameData::Binary(bytes::Bytes::from(vec![1u8; n]));
        let opus = serde_json::json!({"codec": "opus", "sampleRate": 48000, "numberOfChannels": 2});
        assert_eq!(
            audio(&send(bin(160), 20_000.0, Some(20_000.0), Some(opus))),
            Ok(())
        );
        assert_eq!(audio(&send(bin(160), 0.0, None, None)), Ok(()));
        assert_eq!(
            audio(&send(
                crate::FrameData::Text("AAAA".into()),
                0.0,
                None,
                None
            )),
            Err(AudioError::NotBinary)
        );
        assert_eq!(
            audio(&send(bin(0), 0.0, None, None)),
            Err(AudioError::Empty)
        );
        let big = audio(&send(bin(crate::AUDIO_MAX_BYTES + 1), 0.0, None, None));
        assert_eq!(big, Err(AudioError::TooLarge(crate::AUDIO_MAX_BYTES + 1)));
        assert_eq!(big.expect_err("too large").code(), ErrorCode::FrameTooLarge);
        for (ts, dur) in [
            (f64::NAN, None),
            (f64::INFINITY, None),
            (0.0, Some(0.0)),
            (0.0, Some(200_000.0)),
        ] {
            assert_eq!(
                audio(&send(bin(10), ts, dur, None)),
                Err(AudioError::Timing)
            );
        }
        for bad in [
            serde_json::json!("opus"),
            serde_json::json!({"codec": "aac", "sampleRate": 48000, "numberOfChannels": 2}),
            serde_json::json!({"codec": "opus", "sampleRate": 44100, "numberOfChannels": 2}),
            serde_json::json!({"codec": "opus", "sampleRate": 48000, "numberOfChannels": 6}),
            serde_json::json!({"codec": "opus", "sampleRate": 48000, "numberOfChannels": 1, "description": 5}),
            serde_json::json!({"codec": "opus", "sampleRate": 48000, "numberOfChannels": 1, "description": "A".repeat(2000)}),
        ] {
            let r = audio(&send(bin(10), 0.0, None, Some(bad.clone())));
            assert!(matches!(r, Err(AudioError::Config(_))), "{bad} accepted");
            assert_eq!(r.expect_err("refused").code(), ErrorCode::InvalidPayload);
        }
    }

    #[test]
    fn username_is_trimmed_and_bounded() {
        assert_eq!(username("  ana ", 32), Ok("ana".into()));
        assert_eq!(username("   ", 32), Err(ErrorCode::InvalidUsername));
        assert_eq!(
            username(&"x".repeat(33), 32),
            Err(ErrorCode::InvalidUsername)
        );
        assert_eq!(
            username(&"x".repeat(100_000), 32),
            Err(ErrorCode::InvalidUsername)
        );
        assert_eq!(username("a\u{0}b", 32), Err(ErrorCode::InvalidUsername));
        // Characters, not bytes.
        assert_eq!(username(&"ñ".repeat(32), 32), Ok("ñ".repeat(32)));
    }

    #[test]
    fn username_needs_a_visible_character() {
        for blank in [
            "\u{200B}\u{200B}",
            "\u{200D}",
            "\u{FEFF}\u{2060}",
            "\u{3164}",
            "\u{2800}",
            "\u{FE0F}\u{00AD}",
            "\u{E0041}",
        ] {
            assert_eq!(
                username(blank, 32),
                Err(ErrorCode::InvalidUsername),
                "{blank:?}"
            );
        }
        assert_eq!(
            username("\u{200B}a\u{200B}", 32),
            Ok("\u{200B}a\u{200B}".into())
        );
        assert_eq!(username("👍", 32), Ok("👍".into()));
        assert_eq!(username("李", 32), Ok("李".into()));
    }

    #[test]
    fn title_may_be_empty() {
        assert_eq!(title("", 10), Ok(String::new()));
        assert_eq!(title(&"t".repeat(11), 10), Err(ErrorCode::InvalidTitle));
    }

    #[test]
    fn chat_bounds() {
        assert_eq!(chat_message(" hi ", 500), Ok("hi".into()));
        assert_eq!(chat_message("", 500), Err(ErrorCode::InvalidMessage));
        assert!(chat_message(&"m".repeat(500), 500).is_ok());
        assert_eq!(
            chat_message(&"m".repeat(501), 500),
            Err(ErrorCode::InvalidMessage)
        );
        assert_eq!(chat_message("a\nb", 500), Err(ErrorCode::InvalidMessage));
    }

    #[test]
    fn reactions_from_the_set_only() {
        assert_eq!(reaction("🔥"), Ok("🔥"));
        assert_eq!(reaction("<b>"), Err(ErrorCode::InvalidReaction));
    }

    #[test]
    fn stream_keys_are_bounded() {
        assert!(stream_key("sk_abc-DEF_1").is_ok());
        assert!(stream_key("").is_err());
        assert!(stream_key("a b").is_err());
        assert!(stream_key(&"k".repeat(65)).is_err());
    }

    #[test]
    fn thumbnails_are_binary_jpegs_within_the_limit() {
        use crate::FrameData;
        use bytes::Bytes;
        let jpeg = |n: usize| {
            let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
            v.resize(n, 0);
            FrameData::Binary(Bytes::from(v))
        };
        assert_eq!(thumbnail(&jpeg(100), 100).map(<[u8]>::len), Ok(100));
        assert_eq!(
            thumbnail(&jpeg(101), 100),
            Err(ErrorCode::ThumbnailTooLarge)
        );
        let png = FrameData::Binary(Bytes::from_static(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(thumbnail(&png, 100), Err(ErrorCode::InvalidThumbnail));
        for short in [&b""[..], &[0xFF][..], &[0xFF, 0xD8][..]] {
            let data = FrameData::Binary(Bytes::copy_from_slice(short));
            assert_eq!(thumbnail(&data, 100), Err(ErrorCode::InvalidThumbnail));
        }
        let text = FrameData::Text("/9j/4AAQ".into());
        assert_eq!(thumbnail(&text, 100), Err(ErrorCode::InvalidThumbnail));
    }
}
