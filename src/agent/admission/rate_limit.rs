//! While the subscription is known to be rate limited, new agents are refused instead of
//! spawned only to fail; and the subscription's windows, as the API's last answer told them.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::agent::Error;

#[derive(Debug, Default)]
pub struct RateLimitGate {
    until: Mutex<Option<DateTime<Utc>>>,
}

impl RateLimitGate {
    /// The subscription refuses requests until `until` (a later time wins).
    pub fn limited_until(&self, until: DateTime<Utc>) {
        let mut current = crate::sync::lock(&self.until);
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    /// Until when new agents are refused, if they are now: as found here or (`shared`) by
    /// another instance.
    pub fn until(&self, shared: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        (*crate::sync::lock(&self.until))
            .max(shared)
            .filter(|until| *until > Utc::now())
    }

    /// Refuses while the subscription is limited, as found here or (`shared`) by another
    /// instance.
    pub fn check(&self, shared: Option<DateTime<Utc>>) -> Result<(), Error> {
        match self.until(shared) {
            Some(until) => Err(Error::RateLimited { until }),
            None => Ok(()),
        }
    }
}

/// One of the subscription's windows (5 hours, 7 days), as the API's last answer said it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Window {
    /// `allowed`, `allowed_warning` or `rejected`.
    pub status: Option<String>,
    /// How much of the window is used, from 0 to 1.
    pub utilization: Option<f64>,
    pub resets_at: Option<DateTime<Utc>>,
}

/// The subscription's rate limits, from the `anthropic-ratelimit-unified-*` headers of the
/// last answer of the API's that had them (the gateway reads them as it relays).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SubscriptionLimits {
    /// `allowed`, `allowed_warning` or `rejected`: whether the API takes requests now.
    pub status: Option<String>,
    /// When the limit that binds resets.
    pub resets_at: Option<DateTime<Utc>>,
    /// Which window binds (`five_hour`, `seven_day`, ...).
    pub representative_claim: Option<String>,
    /// Whether paid extra usage covers what is over the limit (`allowed`, `rejected`, ...).
    pub overage_status: Option<String>,
    pub five_hour: Window,
    pub seven_day: Window,
    /// When the answer that said so came.
    pub observed_at: DateTime<Utc>,
}

impl SubscriptionLimits {
    /// Until when the API refuses requests, as these say: rejected, with no extra usage to go
    /// on with (as the CLI reads them), until the reset.
    pub fn refused_until(&self) -> Option<DateTime<Utc>> {
        let overage_covers = self
            .overage_status
            .as_deref()
            .is_some_and(|status| status != "rejected");
        (self.status.as_deref() == Some("rejected") && !overage_covers)
            .then_some(self.resets_at)
            .flatten()
            .filter(|until| *until > Utc::now())
    }
}

/// The last limits the API told of.
#[derive(Debug, Default)]
pub struct LimitsSeen {
    last: Mutex<Option<SubscriptionLimits>>,
}

impl LimitsSeen {
    pub fn observe(&self, limits: SubscriptionLimits) {
        *crate::sync::lock(&self.last) = Some(limits);
    }

    pub fn last(&self) -> Option<SubscriptionLimits> {
        crate::sync::lock(&self.last).clone()
    }
}
