//! Recent chat per channel (the streamer's username), so a viewer who joins sees the
//! conversation so far. In memory and bounded; SQLite keeps it across restarts (issue 6).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use streamhub_protocol::server::ChatMessage;

/// Messages kept per channel.
pub const HISTORY_LEN: usize = 50;
/// Channels kept; the least recently written one goes first.
pub const MAX_CHANNELS: usize = 1000;

#[derive(Debug, Default)]
pub struct ChatLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    channels: HashMap<String, VecDeque<ChatMessage>>,
    /// Write order of channels, for eviction.
    order: VecDeque<String>,
}

impl ChatLog {
    pub fn push(&self, channel: &str, msg: ChatMessage) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { channels, order } = &mut *inner;
        if let Some(pos) = order.iter().position(|c| c == channel) {
            order.remove(pos);
        }
        order.push_back(channel.to_owned());
        while order.len() > MAX_CHANNELS {
            if let Some(old) = order.pop_front() {
                channels.remove(&old);
            }
        }
        let log = channels.entry(channel.to_owned()).or_default();
        if log.len() == HISTORY_LEN {
            log.pop_front();
        }
        log.push_back(msg);
    }

    /// The channel's recent messages, oldest first.
    pub fn recent(&self, channel: &str) -> Vec<ChatMessage> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .channels
            .get(channel)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhub_protocol::server::UserRef;

    fn msg(i: usize) -> ChatMessage {
        ChatMessage {
            id: format!("m{i}"),
            stream_key: "k".into(),
            user: UserRef {
                id: "u".into(),
                username: "ana".into(),
            },
            message: format!("hello {i}"),
            timestamp: i as u64,
        }
    }

    #[test]
    fn keeps_the_last_fifty_oldest_first() {
        let log = ChatLog::default();
        for i in 0..60 {
            log.push("ana", msg(i));
        }
        let recent = log.recent("ana");
        assert_eq!(recent.len(), HISTORY_LEN);
        assert_eq!(recent[0].id, "m10");
        assert_eq!(recent[49].id, "m59");
        assert!(log.recent("bob").is_empty());
    }

    #[test]
    fn channel_count_is_bounded() {
        let log = ChatLog::default();
        for c in 0..MAX_CHANNELS + 5 {
            log.push(&format!("c{c}"), msg(c));
        }
        assert!(log.recent("c0").is_empty());
        assert_eq!(log.recent(&format!("c{}", MAX_CHANNELS + 4)).len(), 1);
    }
}
