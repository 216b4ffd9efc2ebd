//! Which CLI session gave each reply of the compatible APIs, per key and bounded: found again by
//! the hash of the conversation up to that reply, or by the name a client gave the conversation
//! (`session_id`). What a key's requests made can be listed and forgotten.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::agent::Client;
use crate::agent::ports::store::ConversationRecord;

/// How many conversations are remembered per key, here as in the store; past it, the oldest
/// is forgotten and its session's file removed.
pub const REMEMBERED_PER_KEY: usize = crate::agent::ports::store::CONVERSATIONS_PER_KEY;

/// How a remembered conversation is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recall {
    /// The hash of the conversation, up to and including the reply.
    Hash([u8; 32]),
    /// The name the client gave it.
    Named(String),
}

impl Recall {
    /// As the store keeps it: `hash:` and the hash in hex, or `name:` and the name.
    pub fn stored(&self) -> String {
        match self {
            Recall::Hash(hash) => {
                let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                format!("hash:{hex}")
            }
            Recall::Named(name) => format!("name:{name}"),
        }
    }
}

impl ChatSession {
    /// A conversation the store keeps, as listed.
    pub fn of_record(record: &ConversationRecord) -> Self {
        let (id, named) = match record.recall.strip_prefix("name:") {
            Some(name) => (name.to_owned(), true),
            None => (record.session.to_string(), false),
        };
        ChatSession {
            id,
            session_id: record.session,
            named,
            created_at: record.created_at,
            last_used_at: record.last_used_at,
            replies: record.replies,
        }
    }

    /// Whether `id` names it.
    pub fn is(&self, id: &str) -> bool {
        match self.named {
            true => self.id == id,
            false => Uuid::try_parse(id) == Ok(self.session_id),
        }
    }
}

/// A remembered conversation: the session that produced its last reply.
#[derive(Debug)]
pub struct Remembered {
    pub recall: Recall,
    pub session: Uuid,
    /// Its file, removed when it is forgotten.
    pub file: Option<PathBuf>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// The replies given in it through the compatible APIs.
    pub replies: u32,
}

/// A conversation a key's requests made, as `GET /v1/sessions` lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ChatSession {
    /// The name the client gave it (`session_id`), or else its CLI session's id.
    pub id: String,
    /// The CLI session that gave its last reply.
    pub session_id: Uuid,
    /// Whether the client named it.
    pub named: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub replies: u32,
}

impl Remembered {
    fn view(&self) -> ChatSession {
        let (id, named) = match &self.recall {
            Recall::Named(name) => (name.clone(), true),
            Recall::Hash(_) => (self.session.to_string(), false),
        };
        ChatSession {
            id,
            session_id: self.session,
            named,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            replies: self.replies,
        }
    }

    /// Whether `id` names it, as a list entry's `id` does.
    fn is(&self, id: &str) -> bool {
        self.view().is(id)
    }
}

/// The conversations remembered, per key, oldest first.
#[derive(Debug, Default)]
pub struct ChatMemory {
    by_owner: Mutex<HashMap<Client, VecDeque<Remembered>>>,
}

impl ChatMemory {
    /// The session that gave the last reply of the conversation found so.
    pub fn session_of(&self, owner: Client, recall: &Recall) -> Option<Uuid> {
        crate::sync::lock(&self.by_owner)
            .get(&owner)?
            .iter()
            .find(|r| &r.recall == recall)
            .map(|r| r.session)
    }

    /// Remembers a reply's session. A named conversation keeps one entry, which the reply
    /// updates and makes the newest.
    pub fn remember(&self, owner: Client, recall: Recall, session: Uuid, file: Option<PathBuf>) {
        let now = Utc::now();
        let forgotten = {
            let mut by_owner = crate::sync::lock(&self.by_owner);
            let entries = by_owner.entry(owner).or_default();
            let earlier = match recall {
                Recall::Named(_) => entries
                    .iter()
                    .position(|r| r.recall == recall)
                    .and_then(|at| entries.remove(at)),
                Recall::Hash(_) => None,
            };
            let (created_at, replies, old_file) = match earlier {
                Some(earlier) => (earlier.created_at, earlier.replies, earlier.file),
                None => (now, 0, None),
            };
            entries.push_back(Remembered {
                recall,
                session,
                file: file.clone(),
                created_at,
                last_used_at: now,
                replies: replies + 1,
            });
            let mut forgotten: Vec<PathBuf> = old_file
                .into_iter()
                .filter(|f| Some(f) != file.as_ref())
                .collect();
            if entries.len() > REMEMBERED_PER_KEY {
                forgotten.extend(entries.pop_front().and_then(|r| r.file));
            }
            forgotten
        };
        for file in forgotten {
            let _ = std::fs::remove_file(file);
        }
    }

    /// The conversations of `owner`, newest first.
    pub fn list(&self, owner: Client) -> Vec<ChatSession> {
        crate::sync::lock(&self.by_owner)
            .get(&owner)
            .map(|entries| entries.iter().rev().map(Remembered::view).collect())
            .unwrap_or_default()
    }

    /// Forgets a conversation of `owner` and removes its session's file; false: none such.
    pub fn forget(&self, owner: Client, id: &str) -> bool {
        let forgotten = {
            let mut by_owner = crate::sync::lock(&self.by_owner);
            let Some(entries) = by_owner.get_mut(&owner) else {
                return false;
            };
            let before = entries.len();
            let mut files = Vec::new();
            entries.retain_mut(|r| {
                let keep = !r.is(id);
                if !keep {
                    files.extend(r.file.take());
                }
                keep
            });
            (entries.len() < before).then_some(files)
        };
        let Some(files) = forgotten else {
            return false;
        };
        for file in files {
            let _ = std::fs::remove_file(file);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn hash(n: usize) -> Recall {
        Recall::Hash(Sha256::digest(n.to_le_bytes()).into())
    }

    #[test]
    fn a_forgotten_conversation_takes_its_session_file_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let memory = ChatMemory::default();
        let owner = Client::Anonymous;
        let files: Vec<PathBuf> = (0..=REMEMBERED_PER_KEY)
            .map(|n| dir.path().join(format!("{n}.jsonl")))
            .collect();
        for (n, file) in files.iter().enumerate() {
            std::fs::write(file, "{}").unwrap();
            memory.remember(owner, hash(n), Uuid::new_v4(), Some(file.clone()));
        }
        // One past the bound: the oldest is forgotten, and its file removed.
        assert_eq!(memory.session_of(owner, &hash(0)), None);
        assert!(!files[0].exists());
        assert!(memory.session_of(owner, &hash(1)).is_some());
        assert!(files[1].exists() && files[REMEMBERED_PER_KEY].exists());
    }

    #[test]
    fn a_named_conversation_is_one_entry_that_each_reply_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let memory = ChatMemory::default();
        let owner = Client::Anonymous;
        let named = Recall::Named("support-42".into());
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let (first_file, second_file) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
        std::fs::write(&first_file, "{}").unwrap();
        std::fs::write(&second_file, "{}").unwrap();
        memory.remember(owner, named.clone(), first, Some(first_file.clone()));
        memory.remember(owner, hash(1), Uuid::new_v4(), None);
        memory.remember(owner, named.clone(), second, Some(second_file.clone()));
        assert_eq!(memory.session_of(owner, &named), Some(second));
        // The session it left is no one's now.
        assert!(!first_file.exists() && second_file.exists());
        let listed = memory.list(owner);
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(
            (listed[0].id.as_str(), listed[0].replies, listed[0].named),
            ("support-42", 2, true)
        );
        assert_eq!(listed[0].session_id, second);
        let another = Client::from_stored(&"ab".repeat(16)).expect("a stored key id");
        assert!(memory.list(another).is_empty(), "another key's");
        assert!(!memory.forget(another, "support-42"));
        assert!(memory.forget(owner, "support-42"));
        assert!(!second_file.exists());
        assert_eq!(memory.session_of(owner, &named), None);
        // A conversation found by its hash is listed, and forgotten, by its session's id.
        let unnamed = listed[1].id.clone();
        assert!(listed[1].is(&unnamed) && !listed[1].named);
        assert!(memory.forget(owner, &unnamed));
        assert!(memory.list(owner).is_empty());
    }
}

#[cfg(test)]
mod recall_tests {
    use super::*;

    #[test]
    fn a_recall_is_kept_as_its_kind_and_its_key() {
        assert_eq!(
            Recall::Named("support-42".into()).stored(),
            "name:support-42"
        );
        let stored = Recall::Hash([0xab; 32]).stored();
        assert_eq!(stored, format!("hash:{}", "ab".repeat(32)));
    }
}
