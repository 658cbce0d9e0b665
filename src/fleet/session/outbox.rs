//! Outbound QoS 1 publishes in flight (sent or still to send), and packet
//! id allocation shared with SUBSCRIBE/UNSUBSCRIBE.
//!
//! Entries stay until their PUBACK arrives, across reconnects: after a
//! CONNACK every entry is (re)sent in order, with DUP=1 if it had been sent
//! on an earlier connection. A retained publish to a topic replaces a queued
//! retained publish to the same topic (the broker keeps only the last one
//! anyway), so a status republished every second while offline does not pile
//! up. The queue holds at most `max` entries; the oldest is dropped first.

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub pkid: u16,
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// Transmitted at least once (so a resend carries DUP=1).
    pub sent: bool,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Outgoing>,
    max: usize,
    next_pkid: u16,
}

impl Outbox {
    pub(crate) fn new(max: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            // Leave ids for subscriptions even with an absurd setting.
            max: max.clamp(1, 60_000),
            next_pkid: 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// A packet id in use neither by this queue nor in `also_used`.
    pub(crate) fn alloc_pkid(&mut self, also_used: impl Fn(u16) -> bool) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !also_used(id) && !self.queue.iter().any(|o| o.pkid == id) {
                return id;
            }
        }
    }

    /// Queues a publish, replacing a queued retained publish to the same
    /// topic. Returns the topic of the oldest entry when it had to be
    /// dropped because the queue was full.
    #[must_use = "a dropped publish is to be reported"]
    pub(crate) fn push(&mut self, o: Outgoing) -> Option<String> {
        if o.retain {
            self.queue.retain(|q| !(q.retain && q.topic == o.topic));
        }
        let dropped = if self.queue.len() >= self.max {
            self.queue.pop_front().map(|d| d.topic)
        } else {
            None
        };
        self.queue.push_back(o);
        dropped
    }

    /// The PUBACK for `pkid` arrived: the entry is done.
    pub(crate) fn ack(&mut self, pkid: u16) -> Option<Outgoing> {
        let i = self.queue.iter().position(|o| o.pkid == pkid)?;
        self.queue.remove(i)
    }

    pub(crate) fn last_mut(&mut self) -> Option<&mut Outgoing> {
        self.queue.back_mut()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Outgoing> {
        self.queue.iter_mut()
    }
}
