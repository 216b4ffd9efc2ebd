//! Budgets per key (`PROXY_KEY_BUDGETS`): a limit in tokens or in US dollars per day or per
//! week (UTC; a week from Monday), for every key or one key by its id. A key over a budget gets
//! no new agent until the period resets, and its running agents' next API request is refused by
//! the gateway. What a key spent is read from the usage the store keeps when one of its agents
//! starts (so it holds across restarts and instances), then counted as the gateway relays.
//!
//! Dollars are priced by [`PRICES`], as of [`PRICES_AS_OF`]. (In `lifecycle/`: it reads the
//! usage `usage.rs` names, which admission's vocabulary lies below.)

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};

use crate::agent::admission::keys::Client;
use crate::agent::usage::{ModelUsage, Usage};

/// When [`PRICES`] were Anthropic's list prices.
pub const PRICES_AS_OF: &str = "2025-11-24";

/// US dollars per million tokens, by the first name a model's contains: input, output. A cache
/// write costs 1.25 times the input, a cache read 0.1 times. A model none names is priced as
/// the dearest, so that a budget in dollars errs on the side of the operator.
pub const PRICES: &[(&str, f64, f64)] = &[
    ("opus-4-5", 5.0, 25.0),
    ("opus-4-6", 5.0, 25.0),
    ("opus", 15.0, 75.0),
    ("sonnet", 3.0, 15.0),
    ("haiku-4", 1.0, 5.0),
    ("3-5-haiku", 0.8, 4.0),
    ("haiku", 0.25, 1.25),
];
const DEAREST: (f64, f64) = (15.0, 75.0);

/// What `usage` of `model` costs, in US dollars.
pub fn price(model: &str, usage: &Usage) -> f64 {
    let (input, output) = PRICES
        .iter()
        .find(|(name, ..)| model.contains(name))
        .map_or(DEAREST, |(_, input, output)| (*input, *output));
    let tokens = |n: u64, per_million: f64| n as f64 * per_million / 1_000_000.0;
    tokens(usage.input_tokens, input)
        + tokens(usage.output_tokens, output)
        + tokens(usage.cache_creation_input_tokens, input * 1.25)
        + tokens(usage.cache_read_input_tokens, input * 0.1)
}

/// Every token the API counted, of each kind.
pub fn tokens(usage: &Usage) -> u64 {
    usage.input_tokens
        + usage.output_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_input_tokens
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Tokens(u64),
    Usd(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
}

impl Period {
    /// When the period that holds `now` began.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let day = Utc
            .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
            .single()
            .unwrap_or(now);
        match self {
            Period::Day => day,
            Period::Week => day - Duration::days(i64::from(now.weekday().num_days_from_monday())),
        }
    }

    /// When the period that holds `now` ends.
    pub fn reset(self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.start(now)
            + match self {
                Period::Day => Duration::days(1),
                Period::Week => Duration::weeks(1),
            }
    }

    fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
        }
    }
}

/// One budget: for every key (`key: None`), or the key of this id.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub key: Option<String>,
    pub limit: Limit,
    pub period: Period,
}

impl Budget {
    fn applies_to(&self, owner: Client) -> bool {
        self.key
            .as_deref()
            .is_none_or(|key| key == owner.to_stored())
    }

    fn describe(&self) -> String {
        let limit = match self.limit {
            Limit::Tokens(n) => format!("{n} tokens"),
            Limit::Usd(usd) => format!("{usd} USD (at the list prices of {PRICES_AS_OF})"),
        };
        format!("{limit} per {}", self.period.as_str())
    }
}

/// The budgets, as `PROXY_KEY_BUDGETS` gives them: `WHO=AMOUNT/PERIOD`, comma-separated, where
/// WHO is `*` (each key) or a key's id, AMOUNT `1000000tokens` or `5usd`, PERIOD `day` or `week`.
pub fn parse_budgets(value: &str) -> Result<Vec<Budget>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let bad = || {
                format!(
                    "{item:?} is not WHO=AMOUNT/PERIOD, such as *=5usd/day or 3f2a...=1000000tokens/week"
                )
            };
            let (who, rest) = item.split_once('=').ok_or_else(bad)?;
            let (amount, period) = rest.split_once('/').ok_or_else(bad)?;
            let key = match who.trim() {
                "*" => None,
                id if Client::from_stored(id).is_some() => Some(id.to_owned()),
                _ => return Err(bad()),
            };
            let amount = amount.trim().to_ascii_lowercase();
            let limit = if let Some(n) = amount.strip_suffix("tokens") {
                Limit::Tokens(n.trim().parse().map_err(|_| bad())?)
            } else if let Some(usd) = amount.strip_suffix("usd") {
                let usd: f64 = usd.trim().parse().map_err(|_| bad())?;
                if !usd.is_finite() || usd < 0.0 {
                    return Err(bad());
                }
                Limit::Usd(usd)
            } else {
                return Err(bad());
            };
            let period = match period.trim() {
                "day" => Period::Day,
                "week" => Period::Week,
                _ => return Err(bad()),
            };
            Ok(Budget { key, limit, period })
        })
        .collect()
}

/// What a key spent in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Spent {
    tokens: u64,
    usd: f64,
}

impl Spent {
    fn add(&mut self, model: &str, usage: &Usage) {
        self.tokens += tokens(usage);
        self.usd += price(model, usage);
    }
}

/// What each key spent in each period, and since when.
type Ledger = HashMap<(Client, Period), (DateTime<Utc>, Spent)>;

/// The budgets, and what each key spent in each period, as last read from the store and
/// counted since. Bounded by the keys times two periods.
#[derive(Debug, Default)]
pub struct BudgetBook {
    budgets: Vec<Budget>,
    spent: Mutex<Ledger>,
}

/// A key over one of its budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct Over {
    /// Which budget, in words.
    pub budget: String,
    pub until: DateTime<Utc>,
}

impl Over {
    /// The `error` event that ends the stream of an agent the gateway refused for it.
    pub fn event(&self) -> crate::agent::event_bodies::ErrorEvent {
        let until = self
            .until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        crate::agent::event_bodies::ErrorEvent {
            resets_at: Some(Some(until.clone())),
            ..crate::agent::event_bodies::ErrorEvent::new(
                "budget_exceeded",
                format!(
                    "this key has spent its budget of {} (PROXY_KEY_BUDGETS) until {until}",
                    self.budget
                ),
            )
        }
    }
}

impl BudgetBook {
    pub fn new(budgets: Vec<Budget>) -> Self {
        Self {
            budgets,
            spent: Mutex::default(),
        }
    }

    /// The periods whose spending `owner`'s budgets need, each from when it began.
    pub fn periods_of(&self, owner: Client, now: DateTime<Utc>) -> Vec<(Period, DateTime<Utc>)> {
        let mut periods: Vec<(Period, DateTime<Utc>)> = Vec::new();
        for budget in self.budgets.iter().filter(|b| b.applies_to(owner)) {
            if !periods.iter().any(|(p, _)| *p == budget.period) {
                periods.push((budget.period, budget.period.start(now)));
            }
        }
        periods
    }

    /// What `owner` spent in `period` (begun `since`), by model, as the store keeps it.
    pub fn seed(&self, owner: Client, period: Period, since: DateTime<Utc>, used: &[ModelUsage]) {
        let mut spent = Spent::default();
        used.iter().for_each(|m| spent.add(&m.model, &m.usage));
        crate::sync::lock(&self.spent).insert((owner, period), (since, spent));
    }

    /// One more request of `owner`'s, counted in each period known.
    pub fn add(&self, owner: Client, model: &str, usage: &Usage, now: DateTime<Utc>) {
        let mut spent = crate::sync::lock(&self.spent);
        for ((who, period), (since, total)) in spent.iter_mut() {
            if *who != owner {
                continue;
            }
            let start = period.start(now);
            if *since != start {
                // A new period began since it was read: nothing of it was counted yet.
                *since = start;
                *total = Spent::default();
            }
            total.add(model, usage);
        }
    }

    /// The first budget of `owner`'s that is spent, as counted; None while none is.
    pub fn over(&self, owner: Client, now: DateTime<Utc>) -> Option<Over> {
        let spent = crate::sync::lock(&self.spent);
        self.budgets
            .iter()
            .filter(|b| b.applies_to(owner))
            .find(|budget| {
                let Some((since, total)) = spent.get(&(owner, budget.period)) else {
                    return false;
                };
                *since == budget.period.start(now)
                    && match budget.limit {
                        Limit::Tokens(n) => total.tokens >= n,
                        Limit::Usd(usd) => total.usd >= usd,
                    }
            })
            .map(|budget| Over {
                budget: budget.describe(),
                until: budget.period.reset(now),
            })
    }

    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            requests: 1,
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[test]
    fn budgets_are_read_and_bad_ones_named() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse_budgets(&format!("*=5usd/day, {id}=1000000tokens/week")).unwrap(),
            vec![
                Budget {
                    key: None,
                    limit: Limit::Usd(5.0),
                    period: Period::Day
                },
                Budget {
                    key: Some(id.to_owned()),
                    limit: Limit::Tokens(1_000_000),
                    period: Period::Week
                },
            ]
        );
        assert_eq!(parse_budgets("").unwrap(), vec![]);
        for bad in [
            "*=5/day",
            "*=5usd/month",
            "key=5usd/day",
            "*=-1usd/day",
            "*5usd/day",
        ] {
            let err = parse_budgets(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn models_are_priced_by_the_table_and_unknown_ones_as_the_dearest() {
        let million = usage(1_000_000, 1_000_000);
        assert_eq!(price("claude-sonnet-4-5-20250929", &million), 18.0);
        assert_eq!(price("claude-opus-4-5", &million), 30.0);
        assert_eq!(price("claude-haiku-4-5", &million), 6.0);
        assert_eq!(price("something-new", &million), 90.0);
        let cached = Usage {
            cache_creation_input_tokens: 1_000_000,
            cache_read_input_tokens: 1_000_000,
            ..Usage::default()
        };
        assert!((price("claude-sonnet-4-5", &cached) - (3.75 + 0.3)).abs() < 1e-9);
    }

    #[test]
    fn a_key_is_over_once_its_count_reaches_the_limit_until_the_period_resets() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap(); // a Thursday
        assert_eq!(
            Period::Week.start(now),
            Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
        );
        assert_eq!(
            Period::Day.reset(now),
            Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap()
        );
        let book = BudgetBook::new(parse_budgets("*=40tokens/day").unwrap());
        let (a, b) = (
            Client::Anonymous,
            Client::from_stored("0123456789abcdef0123456789abcdef").unwrap(),
        );
        for owner in [a, b] {
            for (period, since) in book.periods_of(owner, now) {
                book.seed(owner, period, since, &[]);
            }
        }
        book.add(a, "m", &usage(12, 10), now);
        assert_eq!(book.over(a, now), None);
        book.add(a, "m", &usage(12, 10), now);
        let over = book.over(a, now).unwrap();
        assert_eq!(over.until, Period::Day.reset(now));
        assert_eq!(book.over(b, now), None, "each key its own");
        // The next day counts anew.
        let tomorrow = now + Duration::days(1);
        assert_eq!(book.over(a, tomorrow), None);
        book.add(a, "m", &usage(1, 1), tomorrow);
        assert_eq!(book.over(a, tomorrow), None);
    }
}
