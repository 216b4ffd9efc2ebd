//! While the subscription is known to be rate limited, new agents are refused instead of
//! spawned only to fail.

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
