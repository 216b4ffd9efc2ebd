//! The key check: who is asking, from the request's headers.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::compat::{Api, CompatError};
use super::error::ApiError;
use crate::agent::{ApiKeys, Client};

/// The key a request presents: `Authorization: Bearer <key>`, or `x-api-key: <key>`. A
/// header given twice is refused: which of the two counts would be a guess.
fn presented_key(headers: &HeaderMap) -> Result<Option<&[u8]>, ApiError> {
    for name in ["Authorization", "x-api-key"] {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(ApiError::InvalidHeader {
                name,
                reason: "is given more than once; send one key".into(),
            });
        }
    }
    Ok(key_of(headers))
}

fn key_of(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.as_bytes();
        let scheme = value.get(..7)?;
        return scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| value[7..].trim_ascii());
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

/// Lets a request through with its [`Client`] attached, or answers 401.
pub async fn require_key(
    State(keys): State<ApiKeys>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = match presented_key(request.headers()) {
        Ok(presented) => presented,
        Err(error) => return error.into_response(),
    };
    let client = if keys.is_enabled() {
        match presented.and_then(|key| keys.identify(key)) {
            Some(client) => client,
            // The compatible APIs answer in their own format, which their SDKs read.
            None if request.uri().path().starts_with("/v1/") => {
                let api = Api::of(request.uri().path(), request.headers());
                return CompatError::from_api(api, ApiError::Unauthorized).into_response();
            }
            None => return ApiError::Unauthorized.into_response(),
        }
    } else {
        Client::Anonymous
    };
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// Who asks a public route: the client, when its key is good or none are configured; None
/// when keys are configured and none (or a wrong one) was presented. Public routes show such a
/// stranger less.
#[derive(Debug, Clone, Copy)]
pub struct MaybeClient(pub Option<Client>);

impl FromRequestParts<ApiState> for MaybeClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        if !state.keys.is_enabled() {
            return Ok(MaybeClient(Some(Client::Anonymous)));
        }
        let presented = presented_key(&parts.headers)?;
        Ok(MaybeClient(
            presented.and_then(|key| state.keys.identify(key)),
        ))
    }
}

/// Lets a request to /metrics through: with an operator's metrics key, only that key; without
/// one, any client key (the figures are every client's together, which the README says).
pub async fn require_metrics_key(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(metrics_key) = &state.metrics_key else {
        return require_key(State(state.keys.clone()), request, next).await;
    };
    let presented = match presented_key(request.headers()) {
        Ok(presented) => presented,
        Err(error) => return error.into_response(),
    };
    match presented {
        Some(key) if metrics_key.matches(key) => next.run(request).await,
        Some(key) if state.keys.identify(key).is_some() => {
            ApiError::MetricsKeyNeeded.into_response()
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// The operator's key to /metrics, kept and compared as client keys are (a digest, in
/// constant time), but apart from them: it opens /metrics and nothing else.
#[derive(Debug)]
pub struct MetricsKey(ApiKeys);

impl MetricsKey {
    pub fn new(key: &str) -> Self {
        Self(ApiKeys::new(&[key.to_owned()]))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        self.0.identify(presented).is_some()
    }
}

/// The names a proxy without client keys answers to: loopback names and addresses, and the
/// operator's PROXY_ALLOWED_HOSTS. A page on another site that rebinds its own name to this
/// machine sends that name as its `Host`, and is refused; with keys configured, None: any
/// host is answered, since the key is what keeps strangers out.
#[derive(Debug, Clone)]
pub struct HostCheck(pub Option<Arc<[String]>>);

pub async fn check_host(State(check): State<HostCheck>, request: Request, next: Next) -> Response {
    if let Some(allowed) = &check.0 {
        let headers = request.headers().get_all(header::HOST);
        if headers.iter().nth(1).is_some() {
            return ApiError::InvalidHeader {
                name: "Host",
                reason: "is given more than once".into(),
            }
            .into_response();
        }
        // The Host header, and the authority of an absolute-form target: each must be ours.
        let names: Vec<String> = headers
            .iter()
            .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned())
            .chain(request.uri().authority().map(|a| a.to_string()))
            .collect();
        if names.is_empty() && request.version() >= axum::http::Version::HTTP_11 {
            return ApiError::InvalidHeader {
                name: "Host",
                reason: "is required in HTTP/1.1".into(),
            }
            .into_response();
        }
        for host in names {
            let name = host_name(&host);
            if !is_loopback_name(&name) && !allowed.contains(&name) {
                return ApiError::HostNotAllowed(host.chars().take(100).collect()).into_response();
            }
        }
    }
    next.run(request).await
}

/// The name of a `Host` value, lower-cased, without its port or a final dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_and_x_api_key_are_both_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(presented_key(&headers).unwrap(), Some(&b"abc"[..]));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented_key(&headers).unwrap(), Some(&b"xyz"[..]));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&headers).unwrap(), None);
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert!(
            presented_key(&headers).is_err(),
            "two Authorization headers"
        );
    }

    #[test]
    fn host_names_are_read_without_their_ports() {
        for (host, name, loopback) in [
            ("localhost:8000", "localhost", true),
            ("LOCALHOST.", "localhost", true),
            ("app.localhost", "app.localhost", true),
            ("127.0.0.1:1", "127.0.0.1", true),
            ("127.9.9.9", "127.9.9.9", true),
            ("[::1]:8000", "::1", true),
            ("evil.example.com", "evil.example.com", false),
            ("evil.example.com:8000", "evil.example.com", false),
            ("localhost.evil.example", "localhost.evil.example", false),
            ("10.0.0.1", "10.0.0.1", false),
        ] {
            assert_eq!(host_name(host), name, "{host}");
            assert_eq!(is_loopback_name(&host_name(host)), loopback, "{host}");
        }
    }
}
