//! The agents that wait for a place (`PROXY_QUEUE`): bounded, and served round robin by key,
//! so that one key with many waiting agents does not keep the others' out.
//!
//! The queue hands out one *turn* at a time: the waiter that has it tries for a place, and a
//! place that frees meanwhile is remembered, so no place frees unseen while a waiter would
//! take it. Each waiter watches its own position (or its turn) through a `watch` channel.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::agent::admission::keys::Client;

/// Where a waiter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Waiting, this many from the front (1: next).
    Waiting(usize),
    /// Its turn: it may try for a place.
    Turn,
}

#[derive(Debug)]
pub struct AdmissionQueue {
    /// Most agents waiting at once, the one whose turn it is among them.
    bound: usize,
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    by_key: HashMap<Client, VecDeque<Waiter>>,
    /// The keys that have waiters, the next to be served first.
    rotation: VecDeque<Client>,
    len: usize,
    next_id: u64,
    /// A waiter holds the turn and is trying for a place.
    turn_out: bool,
    /// The key of the waiter that holds the turn, or held it last.
    turn_key: Option<Client>,
    /// A place freed while the turn was out: once the turn is back, it goes on.
    freed_meanwhile: bool,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    slot: watch::Sender<Slot>,
}

/// The queue is full.
#[derive(Debug)]
pub struct Full;

impl AdmissionQueue {
    pub fn new(bound: usize) -> Arc<Self> {
        Arc::new(Self {
            bound,
            waiting: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        crate::sync::lock(&self.waiting)
    }

    /// Whether agents wait (or one is trying for a place): a new one goes behind them.
    pub fn busy(&self) -> bool {
        let waiting = self.lock();
        waiting.len > 0 || waiting.turn_out
    }

    /// How many agents wait (the one trying for a place among them).
    pub fn waiting(&self) -> usize {
        self.lock().waiting()
    }

    /// Puts an agent of `owner` in the queue, behind the others of its key. The turn is handed
    /// out at once if nobody has it: a place may have freed since the agent was refused one.
    pub fn join(self: &Arc<Self>, owner: Client) -> Result<Spot, Full> {
        let mut waiting = self.lock();
        if waiting.waiting() >= self.bound {
            return Err(Full);
        }
        let id = waiting.next_id;
        waiting.next_id += 1;
        let (slot, watched) = watch::channel(Slot::Waiting(waiting.waiting() + 1));
        waiting
            .by_key
            .entry(owner)
            .or_default()
            .push_back(Waiter { id, slot });
        if !waiting.rotation.contains(&owner) {
            waiting.rotation.push_back(owner);
        }
        waiting.len += 1;
        if !waiting.turn_out {
            waiting.hand_turn();
        }
        waiting.tell_positions();
        Ok(Spot {
            queue: Arc::clone(self),
            id,
            owner,
            slot: watched,
            left: false,
        })
    }

    /// A place has freed: the waiter next in turn tries for it.
    pub fn place_freed(&self) {
        let mut waiting = self.lock();
        if waiting.turn_out {
            waiting.freed_meanwhile = true;
        } else if waiting.hand_turn() {
            waiting.tell_positions();
        }
    }
}

impl Waiting {
    fn waiting(&self) -> usize {
        self.len + usize::from(self.turn_out)
    }

    /// Gives the turn to the first waiter of the key next in rotation, whose key then goes to
    /// the back. Returns whether anyone had it.
    fn hand_turn(&mut self) -> bool {
        while let Some(key) = self.rotation.pop_front() {
            let Some(waiters) = self.by_key.get_mut(&key) else {
                continue;
            };
            let Some(waiter) = waiters.pop_front() else {
                self.by_key.remove(&key);
                continue;
            };
            if waiters.is_empty() {
                self.by_key.remove(&key);
            } else {
                self.rotation.push_back(key);
            }
            self.len -= 1;
            self.freed_meanwhile = false;
            if waiter.slot.send(Slot::Turn).is_ok() {
                self.turn_out = true;
                self.turn_key = Some(key);
                return true;
            }
        }
        false
    }

    /// Tells each waiter its position: the order of service, one of each key in turn.
    fn tell_positions(&self) {
        // The one trying for a place is first, while it tries, and stands for its key in the
        // first round: found no place, it goes back first of its key, its key first; taken one,
        // its key's next waiter comes after the other keys' (`served`).
        let holder = self.turn_key.filter(|_| self.turn_out);
        let order: Vec<&Client> = holder
            .iter()
            .chain(self.rotation.iter().filter(|key| Some(**key) != holder))
            .collect();
        let mut position = usize::from(self.turn_out);
        let mut round = 0;
        loop {
            let mut any = false;
            for key in order.iter().copied() {
                let index = match holder {
                    Some(holder) if holder == *key && round == 0 => {
                        any = true;
                        continue;
                    }
                    Some(holder) if holder == *key => round - 1,
                    _ => round,
                };
                if let Some(waiter) = self.by_key.get(key).and_then(|w| w.get(index)) {
                    any = true;
                    position += 1;
                    waiter.slot.send_if_modified(|slot| {
                        let changed = *slot != Slot::Waiting(position);
                        *slot = Slot::Waiting(position);
                        changed
                    });
                }
            }
            if !any {
                return;
            }
            round += 1;
        }
    }

    fn remove(&mut self, owner: Client, id: u64) {
        let Some(waiters) = self.by_key.get_mut(&owner) else {
            return;
        };
        let before = waiters.len();
        waiters.retain(|w| w.id != id);
        self.len -= before - waiters.len();
        if waiters.is_empty() {
            self.by_key.remove(&owner);
            self.rotation.retain(|key| *key != owner);
        }
    }

    /// The turn's holder took a place (or gave up): its key's next waiter comes after the
    /// other keys' waiters.
    fn served(&mut self) {
        if let Some(key) = self.turn_key {
            if let Some(at) = self.rotation.iter().position(|k| *k == key) {
                self.rotation.remove(at);
                self.rotation.push_back(key);
            }
        }
    }

    /// The turn is given back; it goes on at once if a place freed meanwhile (`or_anyway`:
    /// whether or not).
    fn turn_back(&mut self, or_anyway: bool) {
        self.turn_out = false;
        if or_anyway || std::mem::take(&mut self.freed_meanwhile) {
            self.hand_turn();
        }
        self.tell_positions();
    }
}

/// An agent's place in the queue. Dropped (its client went away), it leaves the queue, and a
/// turn it held goes to the next.
#[derive(Debug)]
pub struct Spot {
    queue: Arc<AdmissionQueue>,
    id: u64,
    owner: Client,
    slot: watch::Receiver<Slot>,
    left: bool,
}

impl Spot {
    /// Where it stands now.
    pub fn slot(&self) -> Slot {
        *self.slot.borrow()
    }

    /// Waits until where it stands changes (cancel safe).
    pub async fn changed(&mut self) -> Slot {
        // The sender lives in the queue for as long as this spot waits there.
        let _ = self.slot.changed().await;
        *self.slot.borrow_and_update()
    }

    /// It had its turn and found no place: back to the front of the queue, first of its key,
    /// its key first in rotation.
    pub fn back_to_front(&mut self) {
        let mut waiting = self.queue.lock();
        let (slot, watched) = watch::channel(Slot::Waiting(1));
        waiting
            .by_key
            .entry(self.owner)
            .or_default()
            .push_front(Waiter { id: self.id, slot });
        waiting.rotation.retain(|key| *key != self.owner);
        waiting.rotation.push_front(self.owner);
        waiting.len += 1;
        self.slot = watched;
        waiting.turn_back(false);
    }

    /// It had its turn and took a place (or gave up for good): the next waiter tries, since
    /// another place may be free.
    pub fn leave(&mut self) {
        self.leave_now();
    }

    fn leave_now(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let mut waiting = self.queue.lock();
        // Read under the queue's lock, which every change of a slot holds.
        match *self.slot.borrow() {
            Slot::Waiting(_) => {
                waiting.remove(self.owner, self.id);
                waiting.tell_positions();
            }
            Slot::Turn => {
                waiting.served();
                waiting.turn_back(true);
            }
        }
    }
}

impl Drop for Spot {
    fn drop(&mut self) {
        self.leave_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn key(n: u8) -> Client {
        Client::from_stored(&format!("{n:032x}")).expect("a key id")
    }

    #[test]
    fn a_key_whose_waiter_holds_the_turn_is_not_served_again_before_the_others() {
        let queue = AdmissionQueue::new(8);
        // A's first holds the turn (trying for a place) as A's second and then B's come.
        let mut a1 = queue.join(key(1)).unwrap();
        assert_eq!(a1.slot(), Slot::Turn);
        let a2 = queue.join(key(1)).unwrap();
        let b1 = queue.join(key(2)).unwrap();
        assert_eq!(b1.slot(), Slot::Waiting(2), "b before a's second");
        assert_eq!(a2.slot(), Slot::Waiting(3));
        // A's first takes a place: B's turn, not A's second's.
        a1.leave();
        assert_eq!(b1.slot(), Slot::Turn);
        assert_eq!(a2.slot(), Slot::Waiting(2));
    }

    #[test]
    fn keys_are_served_in_turn_and_positions_follow() {
        let queue = AdmissionQueue::new(8);
        // Someone holds the turn, so the others wait behind it.
        let mut first = queue.join(key(0)).unwrap();
        assert_eq!(first.slot(), Slot::Turn);
        let a1 = queue.join(key(1)).unwrap();
        let a2 = queue.join(key(1)).unwrap();
        let b1 = queue.join(key(2)).unwrap();
        assert_eq!(a1.slot(), Slot::Waiting(2));
        assert_eq!(b1.slot(), Slot::Waiting(3), "b before a's second");
        assert_eq!(a2.slot(), Slot::Waiting(4));

        first.back_to_front();
        assert_eq!(
            first.slot(),
            Slot::Waiting(1),
            "no place freed: it waits, first"
        );
        assert_eq!(a1.slot(), Slot::Waiting(2));
        queue.place_freed();
        assert_eq!(first.slot(), Slot::Turn);
        first.leave();
        assert_eq!(a1.slot(), Slot::Turn, "the next in turn tries at once");
        assert_eq!(b1.slot(), Slot::Waiting(2));
        assert_eq!(a2.slot(), Slot::Waiting(3));

        drop(b1);
        assert_eq!(
            a2.slot(),
            Slot::Waiting(2),
            "one that leaves moves the others up"
        );
    }

    #[test]
    fn the_queue_is_bounded_and_a_turn_held_by_one_that_leaves_goes_on() {
        let queue = AdmissionQueue::new(2);
        let first = queue.join(key(1)).unwrap();
        let second = queue.join(key(2)).unwrap();
        assert!(queue.join(key(3)).is_err(), "full");
        drop(first);
        assert_eq!(second.slot(), Slot::Turn);
        assert!(queue.busy());
    }
}
