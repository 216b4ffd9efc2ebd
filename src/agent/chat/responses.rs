//! The Responses API's responses, kept per key and bounded: each answered response's reply
//! (what `GET /v1/responses/{id}` shows again) and the CLI session that gave it, which a request
//! naming it as `previous_response_id` resumes a fork of. A response asked with `store: false`
//! is never kept. The store keeps them too (as conversations recalled by `response:` and the
//! id), so that a restart, or another instance, finds them.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

use uuid::Uuid;

use crate::agent::Client;

/// How many responses are kept per key; past it, the oldest is forgotten and its session's file
/// removed.
pub const RESPONSES_PER_KEY: usize = 256;

/// How many bytes of reply text (and instructions) are kept per key; past it, the oldest
/// responses are forgotten, so a key's memory is bounded whatever its replies' length.
pub const RESPONSE_BYTES_PER_KEY: usize = 4 * 1024 * 1024;

/// The tokens a reply took, as the CLI's result counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

/// A response as it was answered: enough to answer it again (and, as JSON, what the store
/// keeps of it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ResponseRecord {
    /// As the API gave it (`resp_...`).
    pub id: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// As the client named it.
    pub model: String,
    pub instructions: Option<String>,
    pub previous_response_id: Option<String>,
    /// The reply's whole text.
    pub text: String,
    pub usage: TokenUsage,
}

impl ResponseRecord {
    /// What it holds in memory, beyond its fixed size.
    fn bytes(&self) -> usize {
        self.id.len()
            + self.model.len()
            + self.text.len()
            + self.instructions.as_ref().map_or(0, String::len)
            + self.previous_response_id.as_ref().map_or(0, String::len)
    }
}

#[derive(Debug)]
struct Kept {
    record: ResponseRecord,
    session: Uuid,
    /// Its session's file, removed when it is forgotten.
    file: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct OwnersResponses {
    /// Oldest first.
    kept: VecDeque<Kept>,
    bytes: usize,
}

/// The responses kept, per key.
#[derive(Debug, Default)]
pub struct ResponseMemory {
    by_owner: Mutex<HashMap<Client, OwnersResponses>>,
}

impl ResponseMemory {
    /// The session that gave `owner`'s response `id`.
    pub fn session_of(&self, owner: Client, id: &str) -> Option<Uuid> {
        crate::sync::lock(&self.by_owner)
            .get(&owner)?
            .kept
            .iter()
            .find(|k| k.record.id == id)
            .map(|k| k.session)
    }

    /// `owner`'s response `id`, as it was answered.
    pub fn get(&self, owner: Client, id: &str) -> Option<ResponseRecord> {
        crate::sync::lock(&self.by_owner)
            .get(&owner)?
            .kept
            .iter()
            .find(|k| k.record.id == id)
            .map(|k| k.record.clone())
    }

    /// Keeps a response with its session; the oldest go while the key is over either bound.
    pub fn keep(
        &self,
        owner: Client,
        record: ResponseRecord,
        session: Uuid,
        file: Option<PathBuf>,
    ) {
        let forgotten = {
            let mut by_owner = crate::sync::lock(&self.by_owner);
            let responses = by_owner.entry(owner).or_default();
            responses.bytes += record.bytes();
            responses.kept.push_back(Kept {
                record,
                session,
                file,
            });
            let mut forgotten = Vec::new();
            while responses.kept.len() > RESPONSES_PER_KEY
                || (responses.bytes > RESPONSE_BYTES_PER_KEY && responses.kept.len() > 1)
            {
                let Some(oldest) = responses.kept.pop_front() else {
                    break;
                };
                responses.bytes -= oldest.record.bytes();
                forgotten.extend(oldest.file);
            }
            forgotten
        };
        for file in forgotten {
            let _ = std::fs::remove_file(file);
        }
    }

    /// Forgets `owner`'s response `id` and removes its session's file; false: none such.
    pub fn forget(&self, owner: Client, id: &str) -> bool {
        let forgotten = {
            let mut by_owner = crate::sync::lock(&self.by_owner);
            let Some(responses) = by_owner.get_mut(&owner) else {
                return false;
            };
            let Some(at) = responses.kept.iter().position(|k| k.record.id == id) else {
                return false;
            };
            let kept = responses.kept.remove(at).expect("found at that position");
            responses.bytes -= kept.record.bytes();
            kept.file
        };
        if let Some(file) = forgotten {
            let _ = std::fs::remove_file(file);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, text: &str) -> ResponseRecord {
        ResponseRecord {
            id: id.to_owned(),
            created_at: 0,
            model: "sonnet".into(),
            instructions: None,
            previous_response_id: None,
            text: text.to_owned(),
            usage: TokenUsage::default(),
        }
    }

    #[test]
    fn a_key_keeps_its_newest_responses_within_both_bounds_and_no_other_key_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let memory = ResponseMemory::default();
        let owner = Client::Anonymous;
        let files: Vec<PathBuf> = (0..=RESPONSES_PER_KEY)
            .map(|n| dir.path().join(format!("{n}.jsonl")))
            .collect();
        for (n, file) in files.iter().enumerate() {
            std::fs::write(file, "{}").unwrap();
            memory.keep(
                owner,
                record(&format!("resp_{n}"), "hi"),
                Uuid::new_v4(),
                Some(file.clone()),
            );
        }
        // One past the count: the oldest is forgotten, and its file removed.
        assert!(memory.get(owner, "resp_0").is_none());
        assert!(!files[0].exists() && files[1].exists());
        assert_eq!(memory.get(owner, "resp_1").unwrap().text, "hi");

        let another = Client::from_stored(&"ab".repeat(16)).expect("a stored key id");
        assert!(memory.get(another, "resp_1").is_none());
        assert!(memory.session_of(another, "resp_1").is_none());
        assert!(!memory.forget(another, "resp_1"));
        assert!(memory.forget(owner, "resp_1"));
        assert!(!files[1].exists());
        assert!(memory.session_of(owner, "resp_1").is_none());

        // The bytes: two replies of nearly half the bound fit; a third pushes the first out.
        let half = "x".repeat(RESPONSE_BYTES_PER_KEY / 2 - 100);
        for n in 0..3 {
            memory.keep(
                another,
                record(&format!("big_{n}"), &half),
                Uuid::new_v4(),
                None,
            );
        }
        assert!(memory.get(another, "big_0").is_none());
        assert!(memory.get(another, "big_1").is_some() && memory.get(another, "big_2").is_some());
    }
}
