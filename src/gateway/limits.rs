//! The subscription's windows, read from the `anthropic-ratelimit-unified-*` headers of an
//! answer the gateway relays. The CLI's program reads them so: `-status`, `-5h-status` and
//! `-7d-status` are `allowed`, `allowed_warning` or `rejected`; `-reset`, `-5h-reset` and
//! `-7d-reset` are Unix seconds; `-5h-utilization` and `-7d-utilization` fractions of 1; and a
//! `rejected` status with no `-overage-status` other than `rejected` is refused until `-reset`
//! (its `retry-after`).

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

use crate::agent::{SubscriptionLimits, Window};

const PREFIX: &str = "anthropic-ratelimit-unified-";

/// The limits these headers tell; None when they tell none (the limiter did not run).
pub fn read(headers: &HeaderMap) -> Option<SubscriptionLimits> {
    let text = |name: &str| {
        headers
            .get(format!("{PREFIX}{name}"))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let time = |name: &str| {
        text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(|secs| DateTime::from_timestamp(secs as i64, 0))
    };
    let window = |of: &str| Window {
        status: text(&format!("{of}-status")),
        utilization: text(&format!("{of}-utilization")).and_then(|v| v.parse().ok()),
        resets_at: time(&format!("{of}-reset")),
    };
    let status = text("status")?;
    Some(SubscriptionLimits {
        status: Some(status),
        resets_at: time("reset"),
        representative_claim: text("representative-claim"),
        overage_status: text("overage-status"),
        five_hour: window("5h"),
        seven_day: window("7d"),
        observed_at: Utc::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_windows_and_a_refusal_are_read_as_the_cli_reads_them() {
        let reset = Utc::now().timestamp() + 3600;
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("status", "rejected".to_owned()),
            ("reset", reset.to_string()),
            ("representative-claim", "five_hour".to_owned()),
            ("5h-status", "rejected".to_owned()),
            ("5h-utilization", "1.0".to_owned()),
            ("5h-reset", reset.to_string()),
            ("7d-utilization", "0.42".to_owned()),
        ] {
            headers.insert(
                axum::http::HeaderName::try_from(format!("{PREFIX}{name}")).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        let limits = read(&headers).unwrap();
        assert_eq!(limits.five_hour.utilization, Some(1.0));
        assert_eq!(limits.seven_day.utilization, Some(0.42));
        assert_eq!(limits.seven_day.status, None);
        assert_eq!(limits.representative_claim.as_deref(), Some("five_hour"));
        assert_eq!(limits.refused_until().map(|t| t.timestamp()), Some(reset));
        // Extra usage that goes on covers it.
        headers.insert(
            "anthropic-ratelimit-unified-overage-status",
            HeaderValue::from_static("allowed"),
        );
        assert_eq!(read(&headers).unwrap().refused_until(), None);
        assert!(read(&HeaderMap::new()).is_none());
    }
}
