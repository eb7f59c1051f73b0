//! Random identifiers and secrets. Stream keys and publish tokens are unguessable: a stream
//! key is what a viewer shares, a publish token is what lets a streamer take a stream back.
//! Every comparison with a secret (publish tokens, the publish secret, the admin token) goes
//! through [`secrets_match`].

use rand::Rng;
use rand::distr::Alphanumeric;

fn random(prefix: &str, len: usize) -> String {
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    out.extend(
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(len)
            .map(char::from),
    );
    out
}

/// 20 alphanumerics: about 119 bits.
pub(crate) fn stream_key() -> String {
    random("sk_", 20)
}

/// 32 alphanumerics: about 190 bits.
pub(crate) fn token() -> String {
    random("pt_", 32)
}

/// 32 alphanumerics: what proves a streamer owns a claimed channel name.
pub(crate) fn channel_token() -> String {
    random("ct_", 32)
}

/// What the server keeps of a channel token: its SHA-256, hex.
pub(crate) fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `given` is the token whose hash is `hash`, compared in constant time.
pub(crate) fn token_matches(given: &str, hash: &str) -> bool {
    use subtle::ConstantTimeEq;
    token_hash(given).as_bytes().ct_eq(hash.as_bytes()).into()
}

/// 32 alphanumerics: a media channel's single-use credential.
pub(crate) fn media_token() -> String {
    random("mt_", 32)
}

/// The admin token a server makes for itself: 32 alphanumerics, about 190 bits.
pub(crate) fn admin_token() -> String {
    random("at_", 32)
}

pub(crate) fn user_id() -> String {
    random("u_", 12)
}

pub(crate) fn message_id() -> String {
    random("m_", 12)
}

/// A short, stable label for a connection in logs and spans: a keyed hash of its Socket.IO
/// id, 8 hex digits. The id itself is never logged: it opens the connection's media channel
/// (proxies and log files keep log lines). The key is random per process, so a label cannot
/// be turned back into an id.
pub(crate) fn conn_label(sid: &str) -> String {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let hash = KEY.get_or_init(Default::default).hash_one(sid);
    format!("c{:08x}", hash as u32)
}

/// Whether a secret given by a client equals the real one, in time that depends neither on
/// where they differ nor on their lengths (so the time taken leaks nothing of a guess, nor the
/// length of an operator's secret): their SHA-256 digests are compared in constant time.
pub(crate) fn secrets_match(real: &str, given: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(real.as_bytes())
        .ct_eq(&Sha256::digest(given.as_bytes()))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhub_protocol::validate;

    #[test]
    fn stream_keys_pass_validation_and_differ() {
        let a = stream_key();
        let b = stream_key();
        assert_ne!(a, b);
        assert_eq!(validate::stream_key(&a), Ok(a.as_str()));
        assert_eq!(a.len(), 23);
    }

    #[test]
    fn connection_labels_are_short_stable_and_hide_the_id() {
        let sid = "AbCdEfGhIjKlMnOp";
        let label = conn_label(sid);
        assert_eq!(label, conn_label(sid));
        assert_ne!(label, conn_label("AbCdEfGhIjKlMnOq"));
        assert_eq!(label.len(), 9);
        assert!(!label.contains(sid) && !sid.contains(&label[1..]));
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(secrets_match("pt_abc", "pt_abc"));
        assert!(!secrets_match("pt_abc", "pt_abd"));
        assert!(!secrets_match("pt_abc", "pt_ab"));
        assert!(!secrets_match("pt_abc", ""));
        assert!(secrets_match("", ""));
    }
}
