//! What the API counted for the agents' requests, as the gateway read it from the answers it
//! relayed (`usage` of a message, or of a stream's `message_start` and `message_delta`): tokens
//! of each kind, requests and errors, by model, kept per key and per agent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agent::admission::keys::Client;

/// Counts of requests to the Messages API and the tokens the API counted for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Requests relayed (`POST /v1/messages`).
    pub requests: u64,
    /// Of them, those the API refused or ended with an error.
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
    }
}

/// One model's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelUsage {
    /// As the API named it (`unknown` for a request refused before it said).
    pub model: String,
    #[serde(flatten)]
    pub usage: Usage,
}

/// Adds `usage` of `model` to `list`, one entry per model, in the order first seen.
pub fn add_model_usage(list: &mut Vec<ModelUsage>, model: &str, usage: &Usage) {
    match list.iter_mut().find(|m| m.model == model) {
        Some(entry) => entry.usage.add(usage),
        None => list.push(ModelUsage {
            model: model.to_owned(),
            usage: *usage,
        }),
    }
}

/// One relayed request's usage, as the store is handed it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEntry {
    pub owner: Client,
    pub agent_id: Uuid,
    pub model: String,
    /// When the request was answered.
    pub at: DateTime<Utc>,
    pub usage: Usage,
}

/// How `GET /usage` adds its rows up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageBy {
    /// One row per UTC day.
    #[default]
    Day,
    Agent,
    Model,
}

/// Which usage of a key to add up, and how. The store keeps it by the hour: an hour counts
/// when it ends after `from` and begins before `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub by: UsageBy,
}

/// One row of a usage report: the day, agent or model it adds up, and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// With `by=day`: the UTC day, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// With `by=agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// With `by=model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(flatten)]
    pub usage: Usage,
}

/// `GET /usage`: a key's own usage.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// The key's id (`anonymous` without keys): the one its agents are stored under.
    pub key_id: String,
    pub by: UsageBy,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub rows: Vec<UsageRow>,
    /// The rows added up.
    pub total: Usage,
    /// The subscription's windows, as the API's last answer that told them said (null before
    /// one has).
    pub subscription: Option<crate::agent::admission::rate_limit::SubscriptionLimits>,
}
