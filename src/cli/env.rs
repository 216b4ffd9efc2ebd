//! The environment the CLI is given: the server's own, less what must not reach the CLI or
//! the tools it runs, and the gateway as its API with a credential of its agent's own.
//!
//! Observed with the pinned CLI (2.1.x), against a stand-in that logs each request's headers:
//! - with `ANTHROPIC_BASE_URL=http://127.0.0.1:PORT`, every API request goes there:
//!   `POST /v1/messages?beta=true`, streamed (SSE), with `anthropic-beta:
//!   claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,...`;
//! - with `ANTHROPIC_API_KEY=<k>` it sends `x-api-key: <k>` and no `Authorization`; it does not
//!   check the key's form (`claude-proxy-agent-...` is taken as any key is); in print mode the
//!   key wins over a stored login, so a CLI whose home holds one still sends the key;
//! - with `CLAUDE_CODE_OAUTH_TOKEN=<t>` it sends `Authorization: Bearer <t>` and adds
//!   `oauth-2025-04-20` to `anthropic-beta`;
//! - `claude auth status` answers offline, but first sends `HEAD /api/hello` to
//!   `ANTHROPIC_BASE_URL`, with no credential, and answers the same whatever comes back;
//! - after a `400 invalid_request_error` the CLI asks once more (two requests per refusal);
//! - a `429 rate_limit_error` with `retry-after` and `x-should-retry: false` ends its turn at
//!   once: a synthetic assistant message, a result, `API Error: Request rejected (429) · ...`
//!   on stderr and exit code 1 (the proxy's stream says `rate_limited`), no retry;
//! - its program reads the `anthropic-ratelimit-unified-*` headers (see `gateway/limits.rs`
//!   for how): `-status`/`-5h-status`/`-7d-status` are `allowed`, `allowed_warning` or
//!   `rejected`, `-reset`/`-5h-reset`/`-7d-reset` Unix seconds, `-5h-utilization`/
//!   `-7d-utilization` fractions; `rejected` with no `-overage-status` but `rejected` means
//!   refused until `-reset`. What the proxy does with them: the gateway reads them off every
//!   answer it relays (`gateway/limits.rs`) into the subscription's windows (`/health` with a
//!   key, `GET /usage`, the dashboard); while they say refused, the gateway answers the CLIs'
//!   requests itself (the `429` above, with `Retry-After` until `-reset`), new agents get `429`
//!   (or wait in `PROXY_QUEUE` until the reset), and the CLI's own `rate_limit_event` lines
//!   feed the same gate;
//! - through the gateway the CLI is given `ANTHROPIC_API_KEY` (its agent's credential), so it
//!   sends `x-api-key` and none of the OAuth headers; the gateway puts on the operator's: an
//!   API key as `x-api-key`, an OAuth token as `Authorization: Bearer` with
//!   `anthropic-beta: oauth-2025-04-20` added to what the CLI sent (it keeps `?beta=true` and
//!   the CLI's other betas as they came).
//!
//! Not used, on purpose: its program also names `CLAUDE_CODE_OAUTH_REFRESH_TOKEN`,
//! `CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR` and `CLAUDE_CODE_SDK_HAS_OAUTH_REFRESH` (read from
//! the program's text, not exercised: with the last, the CLI asks its host for a new token
//! with an `oauth_token_refresh` control request over stream-json). Each of them hands the CLI
//! the subscription's own token, which then lives in the CLI's memory or environment, within a
//! tool's reach; the gateway exists so that no CLI holds it. A CLI's agent credential does not
//! expire while its agent runs, so the CLI never needs a refresh: the gateway refreshes the
//! stored login once for all (`gateway/login.rs`). All three are kept from every CLI.

use std::ffi::{OsStr, OsString};

/// Where the CLI sends its API requests (the documented way to put an LLM gateway before it).
pub const BASE_URL: &str = "ANTHROPIC_BASE_URL";
/// A key the CLI sends as `x-api-key`; in print mode it wins over every login.
pub const API_KEY: &str = "ANTHROPIC_API_KEY";
/// A token the CLI sends as `Authorization: Bearer`, as is (for a gateway of the operator's).
pub const AUTH_TOKEN: &str = "ANTHROPIC_AUTH_TOKEN";
/// A subscription's long-lived token (`claude setup-token`): sent as `Authorization: Bearer`
/// with the `oauth-2025-04-20` beta.
pub const OAUTH_TOKEN: &str = "CLAUDE_CODE_OAUTH_TOKEN";

/// Variables that hold (or lead to) a credential of the operator's: none reaches a CLI, whose
/// tools could read it. The CLI's program names the last three as other ways to hand it a
/// subscription's tokens.
const CREDENTIALS: &[&str] = &[
    API_KEY,
    AUTH_TOKEN,
    OAUTH_TOKEN,
    "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
    "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
];

/// The environment every CLI starts from. `PROXY_*` holds the proxy's settings (and its client
/// keys); `CLAUDECODE` makes the CLI believe it runs nested inside another Claude Code; the
/// operator's credentials (its OTLP collector's headers among them) and API address are the
/// gateway's alone (each CLI gets the gateway's address and a key of its own:
/// [`through_gateway`]); a trace context of the server's is no agent's ([`with_traceparent`]).
pub fn environment<I>(server_env: I) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    server_env
        .into_iter()
        .filter(|(name, _)| {
            is_passed_to_cli(name)
                && !is_credential(name)
                && name != BASE_URL
                && name != TRACEPARENT
                && name != TRACESTATE
        })
        .collect()
}

/// The environment of the proxy's own `claude auth status`, which says how the operator is
/// logged in: the server's, with its credentials (under a subscription, without API keys,
/// which would win over its login), and the gateway at `base_url` as its API, which refuses
/// the connectivity check (`HEAD /api/hello`) it sends there without a credential: nothing
/// reaches the API but through the gateway. No agent runs with it.
pub fn login_environment<I>(
    server_env: I,
    use_subscription: bool,
    base_url: &str,
) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    server_env
        .into_iter()
        .filter(|(name, _)| {
            is_passed_to_cli(name)
                && name != BASE_URL
                && !is_otlp_headers(name)
                && !(use_subscription && (name == API_KEY || name == AUTH_TOKEN))
        })
        .chain([(BASE_URL.into(), base_url.into())])
        .collect()
}

/// An agent's environment: `env`, with the gateway at `base_url` as its API and `credential`
/// as its key (`x-api-key`, which the gateway swaps for the real credential).
pub fn through_gateway(
    env: &[(OsString, OsString)],
    base_url: &str,
    credential: &str,
) -> Vec<(OsString, OsString)> {
    env.iter()
        .filter(|(name, _)| name != BASE_URL && name != API_KEY)
        .cloned()
        .chain([
            (BASE_URL.into(), base_url.into()),
            (API_KEY.into(), credential.into()),
        ])
        .collect()
}

fn is_passed_to_cli(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    !(name.starts_with(b"PROXY_") || name == b"CLAUDECODE")
}

fn is_credential(name: &OsStr) -> bool {
    CREDENTIALS.iter().any(|secret| name == *secret) || is_otlp_headers(name)
}

/// `OTEL_EXPORTER_OTLP_HEADERS` and its per-signal forms, which carry the operator's collector
/// credentials (the CLI would send them with its own telemetry, and its tools could read them).
fn is_otlp_headers(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b"OTEL_EXPORTER_OTLP_") && name.ends_with(b"HEADERS")
}

/// The W3C trace context the CLI continues its own spans from (when its telemetry is on, in
/// print mode): it reads these two variables, and passes `TRACEPARENT` on to the commands it
/// runs.
const TRACEPARENT: &str = "TRACEPARENT";
const TRACESTATE: &str = "TRACESTATE";

/// `env` with `traceparent` as the trace the CLI is part of.
pub fn with_traceparent(
    env: &[(OsString, OsString)],
    traceparent: &str,
) -> Vec<(OsString, OsString)> {
    env.iter()
        .filter(|(name, _)| name != TRACEPARENT && name != TRACESTATE)
        .cloned()
        .chain([(TRACEPARENT.into(), traceparent.into())])
        .collect()
}

/// Where the CLI, run with `env`, keeps its sessions: `CLAUDE_CONFIG_DIR`, else `$HOME/.claude`.
pub fn config_dir(env: &[(OsString, OsString)]) -> Option<std::path::PathBuf> {
    let var = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| std::path::PathBuf::from(value))
            .filter(|path| path.is_absolute())
    };
    var(CONFIG_DIR).or_else(|| var("HOME").map(|home| super::home::config_dir_in(&home)))
}

/// The variable that moves the CLI's own directory (sessions, settings, login) from
/// `$HOME/.claude`.
pub const CONFIG_DIR: &str = "CLAUDE_CONFIG_DIR";

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn proxy_settings_and_nesting_marker_never_pass() {
        let got = environment(env(&[
            ("PATH", "/bin"),
            ("PROXY_API_KEY", "s"),
            ("CLAUDECODE", "1"),
        ]));
        assert_eq!(got, env(&[("PATH", "/bin")]));
    }

    #[test]
    fn no_credential_of_the_operators_reaches_a_cli() {
        let server = env(&[
            ("ANTHROPIC_API_KEY", "k"),
            ("ANTHROPIC_AUTH_TOKEN", "t"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "o"),
            ("CLAUDE_CODE_OAUTH_REFRESH_TOKEN", "r"),
            ("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR", "3"),
            ("ANTHROPIC_BASE_URL", "http://upstream"),
            ("HOME", "/h"),
        ]);
        assert_eq!(environment(server.clone()), env(&[("HOME", "/h")]));
        let agent = through_gateway(
            &environment(server),
            "http://127.0.0.1:9",
            "agent-credential",
        );
        assert_eq!(
            agent,
            env(&[
                ("HOME", "/h"),
                ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
                ("ANTHROPIC_API_KEY", "agent-credential"),
            ])
        );
    }

    #[test]
    fn the_collectors_headers_stay_with_the_server_and_the_trace_is_the_agents() {
        let server = env(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer s"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-key=s"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "TRACEPARENT",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("TRACESTATE", "vendor=server"),
            ("HOME", "/h"),
        ]);
        let base = environment(server.clone());
        assert_eq!(
            base,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("HOME", "/h"),
            ])
        );
        let login = login_environment(server, false, "http://127.0.0.1:9");
        assert!(
            !login.iter().any(|(name, _)| is_otlp_headers(name)),
            "{login:?}"
        );
        let agents = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            with_traceparent(&base, agents),
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("HOME", "/h"),
                ("TRACEPARENT", agents),
            ])
        );
    }

    #[test]
    fn the_login_check_sees_api_keys_only_outside_subscription_mode() {
        let server = env(&[
            ("ANTHROPIC_API_KEY", "k"),
            ("ANTHROPIC_AUTH_TOKEN", "t"),
            ("HOME", "/h"),
        ]);
        let gateway = ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9");
        assert_eq!(
            login_environment(server.clone(), true, gateway.1),
            env(&[("HOME", "/h"), gateway])
        );
        let mut with_keys = server.clone();
        with_keys.extend(env(&[gateway]));
        assert_eq!(login_environment(server, false, gateway.1), with_keys);
    }
}
