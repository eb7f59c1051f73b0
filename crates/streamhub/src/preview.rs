//! Link previews of the viewer page: the Open Graph tags (`og:title`, `og:description`,
//! `og:image`, ...) a chat app's crawler reads from `/viewer.html?stream=KEY`. Crawlers do not
//! run scripts, so the server writes them into the page it serves (`web::page`'s `head`).
//!
//! Every value is escaped for an attribute, so a title cannot end the tag: the tags hold no
//! code, and the page's Content-Security-Policy (computed from the page as built) stays
//! right. Absolute URLs are made from the request's `Host`, accepted only when it is a plain
//! host name or address with an optional port; otherwise the tags that need one are left out.

use std::fmt::Write as _;

use streamhub_protocol::server::{StreamInfo, StreamStatus};

/// Text as an HTML attribute value (between double quotes).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `scheme://host[:port]` for absolute URLs, when `host` (the request's `Host`) is a plain
/// host: letters, digits, `.`, `-`, `:` and the brackets of an IPv6 address.
pub(crate) fn origin(host: Option<&str>, https: bool) -> Option<String> {
    let host = host?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    plain.then(|| format!("{}://{host}", if https { "https" } else { "http" }))
}

/// What a preview shows of one stream.
#[derive(Debug)]
pub(crate) struct Preview<'a> {
    pub(crate) stream: &'a StreamInfo,
    /// `scheme://host` of this server, when known ([`origin`]).
    pub(crate) origin: Option<&'a str>,
    /// The thumbnail's ETag without quotes, when the stream has one: a new thumbnail is a new
    /// `og:image` URL, so apps that cache previews by URL show the current one.
    pub(crate) thumbnail_version: Option<&'a str>,
}

/// The `<meta>` tags for `p`, one per line.
pub(crate) fn head(p: &Preview<'_>) -> String {
    let s = p.stream;
    let key = &s.stream_key;
    let title = format!("{} · StreamHub", s.title);
    let description = match s.status {
        StreamStatus::Live => format!(
            "{} is live now on StreamHub · {} watching",
            s.streamer.username, s.viewer_count
        ),
        _ => format!("A stream by {} on StreamHub", s.streamer.username),
    };
    let mut tags = vec![
        ("property", "og:type", String::from("video.other")),
        ("property", "og:site_name", String::from("StreamHub")),
        ("property", "og:title", title.clone()),
        ("property", "og:description", description.clone()),
        ("name", "description", description.clone()),
        ("name", "twitter:title", title),
        ("name", "twitter:description", description),
    ];
    if let Some(origin) = p.origin {
        tags.push((
            "property",
            "og:url",
            format!("{origin}/viewer.html?stream={key}"),
        ));
        if let Some(v) = p.thumbnail_version {
            let image = format!("{origin}/api/streams/{key}/thumbnail?v={v}");
            tags.push(("property", "og:image", image.clone()));
            tags.push(("property", "og:image:type", String::from("image/jpeg")));
            tags.push(("property", "og:image:alt", s.title.clone()));
            tags.push(("name", "twitter:image", image));
        }
    }
    let card = if p.thumbnail_version.is_some() && p.origin.is_some() {
        "summary_large_image"
    } else {
        "summary"
    };
    tags.push(("name", "twitter:card", String::from(card)));
    let mut out = String::from("\n");
    for (attr, name, content) in tags {
        let _ = writeln!(
            out,
            "    <meta {attr}=\"{name}\" content=\"{}\" />",
            escape(&content)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhub_protocol::server::UserRef;

    fn stream(title: &str, status: StreamStatus) -> StreamInfo {
        StreamInfo {
            stream_key: String::from("sk_abc-1"),
            title: title.to_owned(),
            streamer: UserRef {
                id: String::from("u1"),
                username: String::from("Ana <3"),
            },
            status,
            created_at: 1,
            started_at: Some(2),
            viewer_count: 7,
        }
    }

    #[test]
    fn values_cannot_leave_their_attribute() {
        assert_eq!(escape(r#"a"b'c<d>&e"#), "a&quot;b&#39;c&lt;d&gt;&amp;e");
        let s = stream(
            r#""><script>alert(1)</script><meta x=""#,
            StreamStatus::Live,
        );
        let head = head(&Preview {
            stream: &s,
            origin: Some("https://tv.example:8443"),
            thumbnail_version: Some("0123456789abcdef"),
        });
        assert!(!head.contains("<script"), "{head}");
        assert!(!head.contains("\"><"), "{head}");
        assert!(
            head.contains("Ana &lt;3 is live now on StreamHub · 7 watching"),
            "{head}"
        );
        assert!(head.contains(
            "<meta property=\"og:image\" content=\"https://tv.example:8443/api/streams/sk_abc-1/thumbnail?v=0123456789abcdef\" />"
        ));
        assert!(head.contains(
            "<meta property=\"og:url\" content=\"https://tv.example:8443/viewer.html?stream=sk_abc-1\" />"
        ));
        assert!(head.contains("content=\"summary_large_image\""));
        // Every line is one complete meta tag.
        for line in head.lines().filter(|l| !l.trim().is_empty()) {
            let line = line.trim();
            assert!(
                line.starts_with("<meta ") && line.ends_with(" />"),
                "{line}"
            );
            assert_eq!(line.matches('<').count(), 1, "{line}");
            assert_eq!(line.matches('"').count(), 4, "{line}");
        }
    }

    #[test]
    fn no_image_without_a_thumbnail_or_a_usable_host() {
        let s = stream("Cooking", StreamStatus::Reconnecting);
        let no_thumb = head(&Preview {
            stream: &s,
            origin: Some("http://h"),
            thumbnail_version: None,
        });
        assert!(!no_thumb.contains("og:image"));
        assert!(no_thumb.contains("content=\"summary\""));
        assert!(no_thumb.contains("A stream by Ana &lt;3 on StreamHub"));
        let no_host = head(&Preview {
            stream: &s,
            origin: None,
            thumbnail_version: Some("00"),
        });
        assert!(!no_host.contains("og:image") && !no_host.contains("og:url"));
        assert!(no_host.contains("content=\"Cooking · StreamHub\""));
    }

    #[test]
    fn only_plain_hosts_make_urls() {
        assert_eq!(
            origin(Some("tv.example:3000"), false).as_deref(),
            Some("http://tv.example:3000")
        );
        assert_eq!(
            origin(Some("[::1]:3000"), true).as_deref(),
            Some("https://[::1]:3000")
        );
        for bad in ["", "evil\"host", "a/b", "x y", "h@x", "h?x"] {
            assert_eq!(origin(Some(bad), false), None, "{bad:?}");
        }
        assert_eq!(origin(None, false), None);
    }
}
