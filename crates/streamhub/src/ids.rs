//! Random identifiers. Stream keys and publish tokens are unguessable: a stream key is what a
//! viewer shares, a publish token is what lets a streamer take a stream back.

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
pub fn stream_key() -> String {
    random("sk_", 20)
}

/// 32 alphanumerics: about 190 bits.
pub fn token() -> String {
    random("pt_", 32)
}

pub fn user_id() -> String {
    random("u_", 12)
}

pub fn message_id() -> String {
    random("m_", 12)
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
}
