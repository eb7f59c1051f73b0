//! Writes the web pages' copy of the protocol, `web/src/generated/protocol.ts`, from this crate:
//! the payload types (through `ts-rs`, a dev-dependency, so the server never builds it), the
//! event names, error codes, reactions and limits. The test below fails when the checked-in
//! file differs from what this crate generates, and `UPDATE_GENERATED=1` rewrites it.

use std::fmt::Write as _;
use std::path::Path;

use ts_rs::{Config, TS};

use crate::events::{CLIENT_TO_SERVER, EventName, SERVER_TO_CLIENT};
use crate::{ErrorCode, api, client, media_channel, server};

/// The generated file, from this crate's directory.
const OUT: &str = "../../web/src/generated/protocol.ts";

const COMMAND: &str = "UPDATE_GENERATED=1 cargo test -p streamhub-protocol typescript";

/// One exported type: its declaration and the names of the types it refers to.
struct Decl {
    name: String,
    docs: Option<String>,
    decl: String,
    deps: Vec<String>,
}

fn decl<T: TS + ?Sized + 'static>(cfg: &Config) -> Decl {
    Decl {
        name: T::ident(cfg),
        docs: T::docs(),
        decl: T::decl(cfg),
        deps: T::dependencies(cfg)
            .into_iter()
            .map(|d| d.ts_name)
            .collect(),
    }
}

/// Every wire type, in the order the file lists them.
fn decls() -> Vec<Decl> {
    // Every integer on the wire (ms timestamps, seq, counts) fits a JavaScript number.
    let cfg = Config::new().with_large_int("number");
    vec![
        // Values.
        decl::<ErrorCode>(&cfg),
        decl::<client::Role>(&cfg),
        decl::<server::StreamStatus>(&cfg),
        decl::<server::MediaMode>(&cfg),
        decl::<server::EndReason>(&cfg),
        decl::<client::ChunkKind>(&cfg),
        decl::<crate::FrameData>(&cfg),
        decl::<client::ChunkInfo>(&cfg),
        decl::<server::Track>(&cfg),
        // Client → server.
        decl::<client::Register>(&cfg),
        decl::<client::Create>(&cfg),
        decl::<client::StreamRef>(&cfg),
        decl::<client::DataSend>(&cfg),
        decl::<client::AudioSend>(&cfg),
        decl::<client::Resume>(&cfg),
        decl::<client::ChatSend>(&cfg),
        decl::<client::ReactionSend>(&cfg),
        decl::<client::ThumbnailSend>(&cfg),
        decl::<client::ChannelJoin>(&cfg),
        decl::<client::TitleSet>(&cfg),
        // Server → client.
        decl::<server::User>(&cfg),
        decl::<server::UserRef>(&cfg),
        decl::<server::StreamInfo>(&cfg),
        decl::<server::Registered>(&cfg),
        decl::<server::Created>(&cfg),
        decl::<server::StreamEnvelope>(&cfg),
        decl::<server::Joined>(&cfg),
        decl::<server::StreamData<'static>>(&cfg),
        decl::<server::BufferedFrame<'static>>(&cfg),
        decl::<server::Buffer<'static>>(&cfg),
        decl::<server::Level>(&cfg),
        decl::<server::KeyframeRequest>(&cfg),
        decl::<server::Ended>(&cfg),
        decl::<server::Left>(&cfg),
        decl::<server::Viewers>(&cfg),
        decl::<server::Status>(&cfg),
        decl::<server::Evicted>(&cfg),
        decl::<server::ChatMessage>(&cfg),
        decl::<server::ChatHistory>(&cfg),
        decl::<server::Reaction>(&cfg),
        decl::<server::StreamList>(&cfg),
        decl::<server::PastStream>(&cfg),
        decl::<server::ChannelState>(&cfg),
        decl::<server::ChannelJoined>(&cfg),
        decl::<server::ChannelLive>(&cfg),
        decl::<server::ErrorEvent>(&cfg),
        // Acks.
        decl::<server::Ack<server::Empty>>(&cfg),
        decl::<server::AckError>(&cfg),
        decl::<server::Empty>(&cfg),
        decl::<server::Published>(&cfg),
        decl::<server::ChatSent>(&cfg),
        decl::<server::MediaToken>(&cfg),
        decl::<server::TimeSync>(&cfg),
        decl::<server::ThumbnailStored>(&cfg),
        // The HTTP API the pages read.
        decl::<api::Rates>(&cfg),
        decl::<api::ServerPoint>(&cfg),
        decl::<api::StreamPoint>(&cfg),
        decl::<api::NodeViewers>(&cfg),
        decl::<api::ClusterPoint>(&cfg),
        decl::<api::Snapshot>(&cfg),
        decl::<api::SessionRecord>(&cfg),
        // The media channel.
        decl::<media_channel::Header>(&cfg),
        decl::<media_channel::Payload>(&cfg),
    ]
}

/// A Rust string as a TypeScript string literal (JSON's escaping is valid there).
fn lit(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// `/** ... */` at `indent`, one line when the text is one line. Rustdoc links
/// (``[`crate::REACTIONS`]``) become plain code spans, which is what they are in TypeScript.
fn doc(out: &mut String, indent: &str, lines: &[&str]) {
    let lines: Vec<String> = lines
        .iter()
        .map(|l| {
            l.replace("[`crate::", "`")
                .replace("[`", "`")
                .replace("`]", "`")
        })
        .collect();
    match lines.as_slice() {
        [] => {}
        [one] => {
            let _ = writeln!(out, "{indent}/** {one} */");
        }
        _ => {
            let _ = writeln!(out, "{indent}/**");
            for l in &lines {
                let _ = writeln!(out, "{indent} *{}{l}", if l.is_empty() { "" } else { " " });
            }
            let _ = writeln!(out, "{indent} */");
        }
    }
}

fn events(out: &mut String, name: &str, about: &str, list: &[EventName]) {
    doc(out, "", &[about]);
    let _ = writeln!(out, "export const {name} = {{");
    for e in list {
        let lines: Vec<&str> = e.doc.lines().map(str::trim).collect();
        doc(out, "  ", &lines);
        let _ = writeln!(out, "  {}: {},", e.name, lit(e.value));
    }
    out.push_str("} as const;\n\n");
}

/// The whole file.
fn generate() -> String {
    let mut out = format!(
        "// Generated from crates/streamhub-protocol by `{COMMAND}`.\n\
         // Do not edit: change the crate and run that command; `cargo test` fails while this\n\
         // file differs from what the crate generates. docs/protocol.md describes the same\n\
         // contract for humans. Timestamps are milliseconds since the Unix epoch.\n\n"
    );

    out.push_str(
        "// ---- Event names -------------------------------------------------------------\n\n",
    );
    events(
        &mut out,
        "CLIENT_EVENTS",
        "Events clients send (docs/protocol.md, \"Client → server\").",
        CLIENT_TO_SERVER,
    );
    events(
        &mut out,
        "SERVER_EVENTS",
        "Events the server emits (docs/protocol.md, \"Server → client\").",
        SERVER_TO_CLIENT,
    );
    out.push_str(
        "/** Every event name, either way: `EVENTS.STREAM_JOIN` is `\"stream:join\"`. */\n\
         export const EVENTS = { ...CLIENT_EVENTS, ...SERVER_EVENTS } as const;\n\n\
         /** An event a client may send. */\n\
         export type ClientEvent = (typeof CLIENT_EVENTS)[keyof typeof CLIENT_EVENTS];\n\n\
         /** An event the server may emit. */\n\
         export type ServerEvent = (typeof SERVER_EVENTS)[keyof typeof SERVER_EVENTS];\n\n",
    );

    out.push_str(
        "// ---- Values and limits ---------------------------------------------------------\n\n",
    );
    doc(
        &mut out,
        "",
        &["Every error code: `ERROR_CODES.STREAM_NOT_FOUND` is `\"STREAM_NOT_FOUND\"`."],
    );
    out.push_str("export const ERROR_CODES = {\n");
    for code in ErrorCode::ALL {
        let _ = writeln!(out, "  {}: {},", code.as_str(), lit(code.as_str()));
    }
    out.push_str("} as const;\n\n");
    doc(
        &mut out,
        "",
        &["The reactions the server accepts (`reaction:send`'s `type`)."],
    );
    let reactions: Vec<String> = crate::REACTIONS.iter().map(|r| lit(r)).collect();
    let _ = writeln!(
        out,
        "export const REACTIONS = [{}] as const;\n",
        reactions.join(", ")
    );
    doc(
        &mut out,
        "",
        &[
            "Code points that draw nothing (inclusive `[low, high]` ranges): a username needs one",
            "character outside these that is not whitespace or a control.",
        ],
    );
    let ranges: Vec<String> = crate::validate::INVISIBLE_RANGES
        .iter()
        .map(|&(lo, hi)| format!("[0x{:04X}, 0x{:04X}]", lo as u32, hi as u32))
        .collect();
    let _ = writeln!(
        out,
        "export const INVISIBLE_RANGES: readonly (readonly [number, number])[] = [{}];\n",
        ranges.join(", ")
    );
    doc(
        &mut out,
        "",
        &[
            "Most binary attachments in one Socket.IO message: `stream:buffer` comes in pieces of",
            "at most this many frames (socket.io-parser drops a connection over its own limit).",
        ],
    );
    let _ = writeln!(
        out,
        "export const MAX_ATTACHMENTS_PER_MESSAGE = {};\n",
        crate::MAX_ATTACHMENTS_PER_MESSAGE
    );
    doc(
        &mut out,
        "",
        &["The media channel's path: a WebSocket to `PATH?token=<the media:token ack's token>`."],
    );
    let _ = writeln!(
        out,
        "export const MEDIA_CHANNEL_PATH = {};\n",
        lit(media_channel::PATH)
    );
    doc(
        &mut out,
        "",
        &["Largest media-channel header the decoders accept, in bytes."],
    );
    let _ = writeln!(
        out,
        "export const MEDIA_MAX_HEADER = {};\n",
        media_channel::MAX_HEADER
    );

    doc(
        &mut out,
        "",
        &[
            "Largest `stream:thumbnail` JPEG the server accepts by default (`--max-thumbnail-bytes`),",
            "in bytes.",
        ],
    );
    let _ = writeln!(
        out,
        "export const THUMBNAIL_MAX_BYTES = {};\n",
        crate::THUMBNAIL_MAX_BYTES
    );
    doc(
        &mut out,
        "",
        &["Shortest time between two accepted thumbnails of one stream, in milliseconds."],
    );
    let _ = writeln!(
        out,
        "export const THUMBNAIL_MIN_INTERVAL_MS = {};\n",
        crate::THUMBNAIL_MIN_INTERVAL_MS
    );
    for (name, value, about) in [
        (
            "AUDIO_MAX_BYTES",
            crate::AUDIO_MAX_BYTES.to_string(),
            "Largest `stream:audio:send` chunk the server accepts, in bytes.",
        ),
        (
            "AUDIO_MAX_CHUNKS_PER_SEC",
            crate::AUDIO_MAX_CHUNKS_PER_SEC.to_string(),
            "Most audio chunks a stream may send per second (20 ms Opus frames are 50).",
        ),
        (
            "AUDIO_CATCHUP_CHUNKS",
            crate::AUDIO_CATCHUP_CHUNKS.to_string(),
            "Audio chunks a late joiner gets at once (the latest ones).",
        ),
        (
            "AUDIO_CONFIG_MAX_BYTES",
            crate::AUDIO_CONFIG_MAX_BYTES.to_string(),
            "Largest audio `config` (AudioDecoderConfig as JSON) accepted, in bytes.",
        ),
        (
            "AUDIO_SAMPLE_RATE",
            crate::AUDIO_SAMPLE_RATE.to_string(),
            "The one audio sample rate accepted (Opus, 48 kHz).",
        ),
    ] {
        doc(&mut out, "", &[about]);
        let _ = writeln!(out, "export const {name} = {value};\n");
    }

    out.push_str(
        "// ---- Payloads ----------------------------------------------------------------\n",
    );
    for d in decls() {
        out.push('\n');
        if let Some(docs) = &d.docs {
            let lines = doc_lines(docs);
            doc(&mut out, "", &lines);
        }
        out.push_str("export ");
        out.push_str(&layout(&d.decl));
        out.push('\n');
    }
    out
}

/// The text of a `/** ... */` comment as `ts-rs` writes it, one entry per line.
fn doc_lines(comment: &str) -> Vec<&str> {
    let body = comment.trim();
    let body = body.strip_prefix("/**").unwrap_or(body);
    let body = body.strip_suffix("*/").unwrap_or(body);
    let lines: Vec<&str> = body
        .lines()
        .map(|l| {
            let l = l.trim();
            l.strip_prefix('*').unwrap_or(l).trim()
        })
        .collect();
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let last = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |i| i + 1);
    lines[first..last].to_vec()
}

/// A piece of a `ts-rs` declaration, for [`layout`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Doc(&'a str),
    Open,
    Close,
    Comma,
    Bar,
    Text(&'a str),
}

fn tokens(s: &str) -> Vec<Tok<'_>> {
    fn flush<'a>(out: &mut Vec<Tok<'a>>, text: &'a str) {
        if !text.trim().is_empty() {
            out.push(Tok::Text(text));
        }
    }
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let (mut i, mut text) = (0, 0);
    while i < bytes.len() {
        let tok = match bytes[i] {
            b'/' if s[i..].starts_with("/**") => {
                let end = s[i..].find("*/").map_or(s.len(), |e| i + e + 2);
                Some((Tok::Doc(&s[i..end]), end))
            }
            b'"' => {
                // Skip a string literal (a `type` override such as `"join" | "resync"`).
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                i = j + 1;
                continue;
            }
            b'{' => Some((Tok::Open, i + 1)),
            b'}' => Some((Tok::Close, i + 1)),
            b',' => Some((Tok::Comma, i + 1)),
            b'|' => Some((Tok::Bar, i + 1)),
            _ => None,
        };
        match tok {
            Some((t, next)) => {
                flush(&mut out, &s[text..i]);
                out.push(t);
                i = next;
                text = next;
            }
            None => i += 1,
        }
    }
    flush(&mut out, &s[text..]);
    out
}

/// Lays out one `type X = ...;` from `ts-rs` (which writes it on as few lines as it can, with
/// each field's doc comment flush left): one field per line, its doc comment above it, and
/// a union over several lines when it is long or holds objects. Only whitespace changes.
fn layout(decl: &str) -> String {
    let decl = decl.trim().trim_end_matches(';');
    let (head, body) = decl.split_once(" = ").expect("ts-rs writes `type X = ...`");
    let toks = tokens(body);
    let alternatives: Vec<&[Tok<'_>]> = split_top(&toks, |t| *t == Tok::Bar);
    let one_line: Vec<String> = alternatives.iter().map(|a| render(a, "")).collect();
    let flat = one_line.join(" | ");
    if alternatives.len() > 1 && (flat.len() > 90 || flat.contains('\n')) {
        let alts: Vec<String> = alternatives.iter().map(|a| render(a, "  ")).collect();
        format!("{head} =\n  | {};", alts.join("\n  | "))
    } else {
        format!("{head} = {flat};")
    }
}

/// `toks` split at the tokens `at` outside braces, brackets and parentheses (a tuple's
/// commas, `[number, number]`, are not field separators).
fn split_top<'t, 'a>(toks: &'t [Tok<'a>], at: impl Fn(&Tok<'a>) -> bool) -> Vec<&'t [Tok<'a>]> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    let mut nest = 0i32;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Text(text) => {
                let opens = text.matches(['[', '(']).count() as i32;
                nest += opens - text.matches([']', ')']).count() as i32;
            }
            t if depth == 0 && nest == 0 && at(t) => {
                parts.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&toks[start..]);
    parts.retain(|p| !p.is_empty());
    parts
}

/// One type expression; objects get a field per line at `indent` + 2 spaces.
fn render(toks: &[Tok<'_>], indent: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Open => {
                let close = matching(toks, i);
                let fields = split_top(&toks[i + 1..close], |t| *t == Tok::Comma);
                if fields.is_empty() {
                    out.push_str("{}");
                } else {
                    let inner = format!("{indent}  ");
                    if out.ends_with(':') {
                        out.push(' ');
                    }
                    out.push_str("{\n");
                    for f in fields {
                        let (docs, rest): (Vec<Tok<'_>>, Vec<Tok<'_>>) =
                            f.iter().partition(|t| matches!(t, Tok::Doc(_)));
                        for d in docs {
                            if let Tok::Doc(d) = d {
                                doc(&mut out, &inner, &doc_lines(d));
                            }
                        }
                        let _ = writeln!(out, "{inner}{};", render(&rest, &inner));
                    }
                    let _ = write!(out, "{indent}}}");
                }
                i = close + 1;
                continue;
            }
            Tok::Close | Tok::Doc(_) => {}
            Tok::Comma => out.push(','),
            Tok::Bar => out.push_str(" |"),
            Tok::Text(t) => {
                let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
                if !out.is_empty() && !out.ends_with(['(', '<', '[']) {
                    out.push(' ');
                }
                out.push_str(&t);
            }
        }
        i += 1;
    }
    out
}

/// Index of the `}` that closes the `{` at `open`.
fn matching(toks: &[Tok<'_>], open: usize) -> usize {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

#[test]
fn typescript_matches_the_checked_in_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(OUT);
    let want = generate();
    if std::env::var_os("UPDATE_GENERATED").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("a parent directory")).expect("mkdir");
        std::fs::write(&path, &want).expect("write the generated file");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        panic!(
            "{} is out of date with crates/streamhub-protocol (first difference at line {}): \
             run `{COMMAND}` and commit the file",
            OUT.trim_start_matches("../../"),
            line + 1
        );
    }
}

#[test]
fn every_referenced_type_is_in_the_file() {
    let decls = decls();
    let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    for d in &decls {
        for dep in &d.deps {
            assert!(
                names.contains(&dep.as_str()),
                "{} refers to {dep}, which typescript.rs does not list",
                d.name
            );
        }
    }
}
