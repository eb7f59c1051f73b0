//! Direct writes on the Socket.IO path, spread over the runtime's threads.
//!
//! A viewer whose queue is empty gets a frame written straight to its connection by the
//! sender (engineioxide's `DirectSlot`, part of the vendored patch): no queue push and pop, no
//! wake-up and poll of its writer task, which cost ~17% of the server's CPU at 2000 viewers.
//! But the write itself is most of the fan-out's cost (on loopback the kernel delivers to the
//! reader inside the sender's `send`: 84% of the server's CPU at 3000 viewers), and done
//! one by one in the loop that offers the frame, under the stream's lock, it all ran on one
//! thread: 3000 viewers took a whole core and p99 rose past a second, where per-viewer writer
//! tasks had used both. So the offers of one fan-out only *reserve* each connection
//! ([`SocketSink`](crate::sink::SocketSink) calls [`defer`]); once the relay is done and its
//! lock released, [`fan_out`] writes them, in tasks of a few hundred each that the runtime's
//! workers share. A reservation keeps the viewer's order: until its write is done, later packets
//! for that viewer wait in its queue, behind it.

use std::cell::RefCell;

use socketioxide::socket::DirectSlot;
use streamhub_protocol::engine_io::Framed;

/// Reserved writes are written in tasks of this many: a few milliseconds each, so the
/// runtime's workers share them and other tasks (the streamer's next frame, the load on the
/// same cores) get a turn between them. Fewer are written at once, on the caller's task.
const CHUNK: usize = 256;

/// The writes one fan-out reserved, with the packets they send (a fan-out sends one or two
/// packets to everyone: a frame, and its `resync` variant).
#[derive(Default)]
struct Reserved {
    packets: Vec<Framed>,
    slots: Vec<(DirectSlot, u8)>,
}

impl Reserved {
    fn push(&mut self, slot: DirectSlot, packet: &Framed) {
        let same = |p: &Framed| p.text.ws_frame().as_ptr() == packet.text.ws_frame().as_ptr();
        let i = match self.packets.iter().position(same) {
            Some(i) => i,
            None => {
                self.packets.push(packet.clone());
                self.packets.len() - 1
            }
        };
        // A fan-out offers a handful of distinct packets at most; past 255, write at once.
        match u8::try_from(i) {
            Ok(i) => self.slots.push((slot, i)),
            Err(_) => write(slot, packet),
        }
    }

    fn write(self) {
        for (slot, i) in self.slots {
            write(slot, &self.packets[usize::from(i)]);
        }
    }

    /// Splits off the writes past the first `at`.
    fn split_off(&mut self, at: usize) -> Self {
        Self {
            packets: self.packets.clone(),
            slots: self.slots.split_off(at),
        }
    }
}

fn write(slot: DirectSlot, packet: &Framed) {
    slot.write(&packet.text, packet.attachment.as_ref());
}

thread_local! {
    /// The writes reserved by the fan-out running on this thread, if one runs.
    static RESERVED: RefCell<Option<Reserved>> = const { RefCell::new(None) };
}

/// Puts off a reserved write until the end of the fan-out in progress on this thread
/// ([`fan_out`]); outside one, writes it now.
pub(crate) fn defer(slot: DirectSlot, packet: &Framed) {
    let slot = RESERVED.with(|r| match r.borrow_mut().as_mut() {
        Some(reserved) => {
            reserved.push(slot, packet);
            None
        }
        None => Some(slot),
    });
    if let Some(slot) = slot {
        write(slot, packet);
    }
}

/// Ends a fan-out: takes its reserved writes off the thread, also when the fan-out panics
/// (dropped reservations are given back).
struct Collect(Option<Reserved>);

impl Drop for Collect {
    fn drop(&mut self) {
        let prev = self.0.take();
        RESERVED.with(|r| *r.borrow_mut() = prev);
    }
}

/// Runs `relay_call`, a relay call that offers frames to viewers (publish, ingest), then
/// writes the direct writes its offers reserved: at once when few, else in spawned tasks of
/// [`CHUNK`] writes each, which both workers take from.
pub(crate) fn fan_out<R>(relay_call: impl FnOnce() -> R) -> R {
    let prev = RESERVED.with(|r| r.borrow_mut().replace(Reserved::default()));
    if prev.is_some() {
        // Nested: the outer fan-out writes them all.
        RESERVED.with(|r| *r.borrow_mut() = prev);
        return relay_call();
    }
    let collect = Collect(None);
    let out = relay_call();
    let mut reserved = RESERVED.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(collect);
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if reserved.slots.len() > CHUNK => {
            while reserved.slots.len() > CHUNK {
                let part = reserved.split_off(reserved.slots.len() - CHUNK);
                rt.spawn(async move { part.write() });
            }
            rt.spawn(async move { reserved.write() });
        }
        _ => reserved.write(),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_out_outside_any_runtime_writes_in_place_and_leaves_nothing_behind() {
        let n = fan_out(|| 7);
        assert_eq!(n, 7);
        RESERVED.with(|r| assert!(r.borrow().is_none()));
    }

    #[test]
    fn a_panicking_fan_out_leaves_no_collection_open() {
        let r = std::panic::catch_unwind(|| fan_out(|| panic!("boom")));
        assert!(r.is_err());
        RESERVED.with(|r| assert!(r.borrow().is_none()));
    }
}
