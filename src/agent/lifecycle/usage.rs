//! The agents' usage of the API: what the gateway read of each request it relayed, added to
//! its agent (for `GET /agent/{id}`) and handed to the store (for `GET /usage`).

use chrono::Utc;
use uuid::Uuid;

use crate::agent::Agents;
use crate::agent::admission::keys::Client;
use crate::agent::admission::rate_limit::SubscriptionLimits;
use crate::agent::error::Error;
use crate::agent::lifecycle::budget::Over;
use crate::agent::usage::{Usage, UsageEntry, UsageQuery, UsageReport};

impl Agents {
    /// What the API counted for one request of the agent `agent_id` of `owner`.
    pub fn record_usage(&self, agent_id: Uuid, owner: Client, model: &str, usage: Usage) {
        self.core.table.add_usage(agent_id, model, &usage);
        self.core.budget_book.add(owner, model, &usage, Utc::now());
        self.core.metrics.api_used(
            owner.to_stored(),
            model.to_owned(),
            usage.requests,
            usage.errors,
            [
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_input_tokens,
                usage.cache_creation_input_tokens,
            ],
        );
        if let Some(store) = &self.core.store {
            store.usage(UsageEntry {
                owner,
                agent_id,
                model: model.to_owned(),
                at: Utc::now(),
                usage,
            });
        }
    }

    /// Refuses a new agent of `owner` while the key is over one of its budgets: what it spent
    /// in each period is read anew from the store (the usage every instance counted), then
    /// counted as the gateway relays.
    pub async fn check_budget(&self, owner: Client) -> Result<(), Error> {
        let book = &self.core.budget_book;
        if book.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        for (period, since) in book.periods_of(owner, now) {
            let query = UsageQuery {
                from: Some(since),
                to: None,
                by: crate::agent::usage::UsageBy::Model,
            };
            let rows = match &self.core.store {
                Some(store) => {
                    store.flush().await;
                    store
                        .usage_rows(owner, query)
                        .await
                        .map_err(|err| Error::SharedStore(err.0))?
                }
                None => self.core.table.usage_rows(owner, query),
            };
            let used: Vec<crate::agent::usage::ModelUsage> = rows
                .into_iter()
                .map(|row| crate::agent::usage::ModelUsage {
                    model: row.model.unwrap_or_default(),
                    usage: row.usage,
                })
                .collect();
            book.seed(owner, period, since, &used);
        }
        match book.over(owner, now) {
            Some(over) => Err(Error::BudgetExceeded {
                budget: over.budget,
                until: over.until,
            }),
            None => Ok(()),
        }
    }

    /// Whether the gateway refuses the next request of the agent `agent_id` of `owner`: its key
    /// is over a budget. The agent's stream then ends with `budget_exceeded`.
    pub fn refuse_for_budget(&self, agent_id: Uuid, owner: Client) -> Option<Over> {
        let over = self.core.budget_book.over(owner, Utc::now())?;
        crate::sync::lock(&self.core.over_budget).insert(agent_id, over.clone());
        Some(over)
    }

    /// The subscription's windows, as an answer the gateway relayed told them. A refusal until
    /// a reset refuses new agents until then too (here and, sharing a database, everywhere).
    pub fn observe_limits(&self, limits: SubscriptionLimits) {
        if let Some(until) = limits.refused_until() {
            tracing::warn!(%until, "the API refuses the subscription's requests until its limit resets");
            self.core.rate_limit.limited_until(until);
            if let Some(cluster) = &self.core.cluster {
                cluster.share_rate_limit(until);
            }
        }
        self.core.limits_seen.observe(limits);
    }

    /// The subscription's windows, as the API last told them; None before it has.
    pub fn subscription_limits(&self) -> Option<SubscriptionLimits> {
        self.core.limits_seen.last()
    }

    /// Until when the gateway refuses the agents' requests: the API said the subscription is
    /// refused until then.
    pub fn requests_refused_until(&self) -> Option<chrono::DateTime<Utc>> {
        self.core
            .limits_seen
            .last()
            .and_then(|limits| limits.refused_until())
    }

    /// `client`'s own usage, added up as `query` asks: from the store, which keeps it across
    /// restarts and instances; without one, of the agents still in memory.
    pub async fn usage(&self, client: Client, query: UsageQuery) -> Result<UsageReport, Error> {
        let rows = match &self.core.store {
            Some(store) => {
                // What the gateway handed over so far is counted.
                store.flush().await;
                store
                    .usage_rows(client, query)
                    .await
                    .map_err(|err| Error::SharedStore(err.0))?
            }
            None => self.core.table.usage_rows(client, query),
        };
        let mut total = Usage::default();
        rows.iter().for_each(|row| total.add(&row.usage));
        Ok(UsageReport {
            subscription: self.subscription_limits(),
            key_id: client.to_stored(),
            by: query.by,
            from: query.from,
            to: query.to,
            rows,
            total,
        })
    }
}
