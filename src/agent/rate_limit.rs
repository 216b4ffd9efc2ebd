//! While the subscription is known to be rate limited, new agents are refused instead of
//! spawned only to fail.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::Error;

#[derive(Debug, Default)]
pub struct RateLimitGate {
    until: Mutex<Option<DateTime<Utc>>>,
}

impl RateLimitGate {
    /// The subscription refuses requests until `until` (a later time wins).
    pub fn limited_until(&self, until: DateTime<Utc>) {
        let mut current = crate::lock(&self.until);
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    /// Refuses while the subscription is limited, as found here or (`shared`) by another
    /// instance.
    pub fn check(&self, shared: Option<DateTime<Utc>>) -> Result<(), Error> {
        match (*crate::lock(&self.until)).max(shared) {
            Some(until) if until > Utc::now() => Err(Error::RateLimited { until }),
            _ => Ok(()),
        }
    }
}
