//! Which client made each session, and where it lives, so that only that client resumes it,
//! and in the directory the CLI keeps it under. Kept for the most recent sessions only.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use crate::agent::Error;
use crate::agent::admission::keys::Client;

/// How many sessions are remembered. The book takes its whole room at once, about 7 MiB, so
/// it never grows however many sessions go by (the paths are shared with the runs).
pub const SESSIONS_KEPT: usize = 100_000;

#[derive(Debug)]
pub struct SessionBook {
    sessions: HashMap<Uuid, (Client, Arc<Path>)>,
    /// Oldest first.
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl Default for SessionBook {
    fn default() -> Self {
        Self::with_capacity(SESSIONS_KEPT)
    }
}

impl SessionBook {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            sessions: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// The first client to run a session owns it.
    pub fn record(&mut self, session: Uuid, owner: Client, cwd: &Arc<Path>) {
        if self.sessions.contains_key(&session) {
            return;
        }
        self.sessions.insert(session, (owner, Arc::clone(cwd)));
        self.order.push_back(session);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.sessions.remove(&oldest);
            }
        }
    }

    /// Where a session made through the proxy lives, for `client` to resume it there; another
    /// client's session is refused. A session the proxy does not know is the CLI's to judge.
    pub fn home(&self, client: Client, session: Uuid) -> Result<Option<Arc<Path>>, Error> {
        match self.sessions.get(&session) {
            Some((owner, _)) if *owner != client => Err(not_yours(session)),
            Some((_, cwd)) => Ok(Some(Arc::clone(cwd))),
            None => Ok(None),
        }
    }
}

/// The refusal of a session that is not the client's: another client's, or one the proxy
/// does not know, told apart by nothing, so that no key learns which sessions exist.
pub fn not_yours(session: Uuid) -> Error {
    Error::Forbidden(format!(
        "session_id: this key made no session {session} here; a key can resume only the sessions it made here"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::admission::keys::ApiKeys;

    #[test]
    fn a_session_is_its_first_clients_and_the_oldest_are_forgotten() {
        let mut book = SessionBook::with_capacity(2);
        let here: Arc<Path> = Arc::from(Path::new("/w"));
        let keys = ApiKeys::new(&[
            "first-key-0123456789".to_owned(),
            "second-key-0123456789".to_owned(),
        ]);
        let one = keys.identify(b"first-key-0123456789").unwrap();
        let two = keys.identify(b"second-key-0123456789").unwrap();
        let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        book.record(a, one, &here);
        book.record(a, two, &here);
        assert!(book.home(two, a).is_err(), "the first client owns it");
        assert_eq!(book.home(one, a).unwrap(), Some(here.clone()));
        book.record(b, one, &here);
        book.record(c, one, &here);
        assert_eq!(book.home(two, a).unwrap(), None, "forgotten");
    }
}
