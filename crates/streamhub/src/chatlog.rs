//! Recent chat per channel (the streamer's username), so a viewer who joins sees the
//! conversation so far. In memory and bounded; the database keeps it across restarts.
//!
//! A channel the server has not read from the database yet (after a restart, or evicted from
//! memory) is *incomplete*: the first viewer to join it loads the stored history and merges it
//! with what arrived since, which is in memory but perhaps not yet written.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

use streamhub_protocol::server::ChatMessage;

/// Messages kept per channel.
pub(crate) const HISTORY_LEN: usize = 50;
/// Channels kept; the least recently written one goes first.
pub(crate) const MAX_CHANNELS: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct ChatLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Channel {
    messages: VecDeque<ChatMessage>,
    /// The database's older messages are merged in.
    complete: bool,
}

#[derive(Debug, Default)]
struct Inner {
    channels: HashMap<String, Channel>,
    /// Write order of channels, for eviction.
    order: VecDeque<String>,
}

impl Inner {
    /// The channel, made the most recently used one, created if new; the least recently used
    /// channels go past [`MAX_CHANNELS`]. Every way a channel enters the map goes through
    /// here, so the map never outgrows `order` (channel names are client-chosen).
    fn touch(&mut self, channel: &str) -> &mut Channel {
        if let Some(pos) = self.order.iter().position(|c| c == channel) {
            self.order.remove(pos);
        }
        self.order.push_back(channel.to_owned());
        while self.order.len() > MAX_CHANNELS {
            if let Some(old) = self.order.pop_front() {
                self.channels.remove(&old);
            }
        }
        self.channels.entry(channel.to_owned()).or_default()
    }
}

impl ChatLog {
    pub(crate) fn push(&self, channel: &str, msg: ChatMessage) {
        let mut inner = self.inner.lock();
        let log = &mut inner.touch(channel).messages;
        if log.len() == HISTORY_LEN {
            log.pop_front();
        }
        log.push_back(msg);
    }

    /// The channel's recent messages, oldest first; `None` while the stored history still
    /// has to be merged in ([`Self::merge_stored`]).
    pub(crate) fn recent(&self, channel: &str) -> Option<Vec<ChatMessage>> {
        let inner = self.inner.lock();
        match inner.channels.get(channel) {
            Some(c) if c.complete => Some(c.messages.iter().cloned().collect()),
            _ => None,
        }
    }

    /// What memory holds for the channel, complete or not (when the database is unreachable).
    pub(crate) fn in_memory(&self, channel: &str) -> Vec<ChatMessage> {
        let inner = self.inner.lock();
        inner
            .channels
            .get(channel)
            .map(|c| c.messages.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Merges the stored history (oldest first) under what memory has, keeps the newest
    /// [`HISTORY_LEN`], marks the channel complete and returns its messages.
    pub(crate) fn merge_stored(&self, channel: &str, stored: Vec<ChatMessage>) -> Vec<ChatMessage> {
        let mut inner = self.inner.lock();
        let c = inner.touch(channel);
        if !c.complete {
            let newer = std::mem::take(&mut c.messages);
            let mut merged: VecDeque<ChatMessage> = stored
                .into_iter()
                .filter(|m| !newer.iter().any(|n| n.id == m.id))
                .collect();
            merged.extend(newer);
            while merged.len() > HISTORY_LEN {
                merged.pop_front();
            }
            c.messages = merged;
            c.complete = true;
        }
        c.messages.iter().cloned().collect()
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
        assert!(
            log.recent("ana").is_none(),
            "not merged with the database yet"
        );
        let recent = log.merge_stored("ana", Vec::new());
        assert_eq!(recent.len(), HISTORY_LEN);
        assert_eq!(recent[0].id, "m10");
        assert_eq!(recent[49].id, "m59");
        assert_eq!(log.recent("ana").map(|r| r.len()), Some(HISTORY_LEN));
        assert!(log.recent("bob").is_none());
    }

    #[test]
    fn stored_history_goes_under_newer_messages_without_duplicates() {
        let log = ChatLog::default();
        log.push("ana", msg(5));
        log.push("ana", msg(6));
        let stored: Vec<_> = (0..6).map(msg).collect();
        let merged = log.merge_stored("ana", stored);
        let ids: Vec<_> = merged.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
        log.push("ana", msg(7));
        assert_eq!(log.recent("ana").map(|r| r.len()), Some(8));
        let again = log.merge_stored("ana", vec![msg(99)]);
        assert_eq!(again.len(), 8, "a complete channel is not merged twice");
    }

    #[test]
    fn channels_loaded_by_joins_are_bounded_too() {
        let log = ChatLog::default();
        for c in 0..MAX_CHANNELS + 5 {
            log.merge_stored(&format!("c{c}"), vec![msg(c)]);
        }
        let inner = log.inner.lock();
        assert_eq!(inner.channels.len(), MAX_CHANNELS);
        assert_eq!(inner.order.len(), MAX_CHANNELS);
        assert!(!inner.channels.contains_key("c0"), "the oldest went first");
    }

    #[test]
    fn channel_count_is_bounded() {
        let log = ChatLog::default();
        for c in 0..MAX_CHANNELS + 5 {
            log.push(&format!("c{c}"), msg(c));
        }
        assert!(log.in_memory("c0").is_empty());
        assert_eq!(log.in_memory(&format!("c{}", MAX_CHANNELS + 4)).len(), 1);
    }
}
