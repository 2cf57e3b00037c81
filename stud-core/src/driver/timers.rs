//! Connection deadlines: a binary heap with lazy deletion.
//!
//! Each connection has at most one *live* entry, the earliest deadline it asked for. A connection
//! whose deadline moves later keeps its entry; when that entry fires the connection is asked for
//! its real deadline and scheduled again. A deadline that moves earlier gets a new entry with a new
//! generation, which makes the old one stale; stale entries are skipped when they surface and
//! purged when they outnumber live ones, so the heap stays within a constant factor of the number
//! of connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::Instant;

/// One heap entry: when, for which connection slot, and with which generation.
type Entry = Reverse<(Instant, usize, u64)>;

/// The deadlines of every connection of one driver.
#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Entry>,
    /// Generations are unique across slots and slot reuse, so an entry left by a closed
    /// connection never matches its slot's next occupant.
    next_generation: u64,
}

/// A connection's view of its live entry.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TimerSlot {
    armed: Option<(Instant, u64)>,
}

impl TimerSlot {
    /// Whether `generation` is this slot's live entry; if so the entry is consumed.
    pub(super) fn fire(&mut self, generation: u64) -> bool {
        match self.armed {
            Some((_, g)) if g == generation => {
                self.armed = None;
                true
            }
            _ => false,
        }
    }

    fn is_live(&self, generation: u64) -> bool {
        matches!(self.armed, Some((_, g)) if g == generation)
    }
}

impl Timers {
    /// Makes sure slot `key` is woken no later than `deadline`.
    pub(super) fn schedule(&mut self, key: usize, slot: &mut TimerSlot, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            // A live entry may still fire; the connection then finds nothing due.
            return;
        };
        if slot.armed.is_some_and(|(t, _)| t <= deadline) {
            return;
        }
        self.next_generation += 1;
        slot.armed = Some((deadline, self.next_generation));
        self.heap
            .push(Reverse((deadline, key, self.next_generation)));
    }

    /// The earliest entry's time (possibly a stale entry: waking for it early is harmless).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Removes and returns one entry due at `now`: `(slot key, generation)`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => {}
            _ => return None,
        }
        self.heap
            .pop()
            .map(|Reverse((_, key, generation))| (key, generation))
    }

    /// Drops stale entries once they outnumber the live ones; `slot(key)` looks a slot up.
    pub(super) fn compact<'a>(
        &mut self,
        live: usize,
        slot: impl Fn(usize) -> Option<&'a TimerSlot>,
    ) {
        if self.heap.len() <= 2 * live + 64 {
            return;
        }
        self.heap
            .retain(|Reverse((_, key, g))| slot(*key).is_some_and(|s| s.is_live(*g)));
    }

    /// Entries held, live or stale.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    #[test]
    fn a_later_deadline_keeps_the_earlier_entry() {
        let mut timers = Timers::default();
        let mut slot = TimerSlot::default();
        timers.schedule(3, &mut slot, Some(t(10)));
        timers.schedule(3, &mut slot, Some(t(20)));
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next_deadline(), Some(t(10)));
        let (key, g) = timers.pop_due(t(10)).expect("due");
        assert_eq!(key, 3);
        assert!(slot.fire(g));
        assert!(timers.pop_due(t(30)).is_none());
    }

    #[test]
    fn an_earlier_deadline_makes_the_old_entry_stale() {
        let mut timers = Timers::default();
        let mut slot = TimerSlot::default();
        timers.schedule(1, &mut slot, Some(t(20)));
        timers.schedule(1, &mut slot, Some(t(5)));
        let (_, g) = timers.pop_due(t(5)).expect("due");
        assert!(slot.fire(g));
        assert!(timers.pop_due(t(19)).is_none());
        let (_, stale) = timers.pop_due(t(20)).expect("stale entry surfaces");
        assert!(!slot.fire(stale));
    }

    #[test]
    fn compaction_keeps_only_live_entries() {
        let mut timers = Timers::default();
        let mut slots = [TimerSlot::default(); 4];
        for round in 0..100u64 {
            for (key, slot) in slots.iter_mut().enumerate() {
                // Ever earlier deadlines: each one leaves a stale entry behind.
                timers.schedule(key, slot, Some(t(1_000_000 - round)));
            }
        }
        timers.compact(slots.len(), |k| slots.get(k));
        assert_eq!(timers.len(), slots.len());
    }
}
