//! One request of a CLI, relayed: its agent's credential checked and swapped for the
//! operator's, forwarded to the real API, and the answer streamed back as it comes (an SSE
//! body is never buffered; the chunks of one that comes faster than a write a millisecond are
//! gathered, `gather.rs`).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::gather::{Gathered, WRITE_INTERVAL};
use super::meter::{Meter, model_named};
use super::passes::{Holder, Passes};
use super::upstream::Upstream;
use crate::agent::{Agents, Usage};

/// How much of a request's body is kept to find the model it names, for a request the API
/// refuses before it says.
const MODEL_PREFIX: usize = 64 * 1024;
/// The model of a request nothing named.
const UNKNOWN_MODEL: &str = "unknown";

/// What every relayed request needs.
#[derive(Debug)]
pub struct Relay {
    pub passes: Arc<Passes>,
    pub upstream: Upstream,
    pub client: reqwest::Client,
    /// Where each request's usage is counted.
    pub agents: Agents,
}

/// Counts one request of an agent's, once: when its answer has been read to its end, or
/// when it is dropped before (the CLI went away, or the API never answered).
struct Count {
    agents: Agents,
    holder: Holder,
    /// The first bytes of the request's body.
    prefix: Arc<Mutex<Vec<u8>>>,
    meter: Option<Meter>,
}

impl Count {
    fn feed(&mut self, chunk: &[u8]) {
        if let Some(meter) = &mut self.meter {
            meter.feed(chunk);
        }
    }

    fn done(&mut self) {
        let (model, usage) = match self.meter.take() {
            Some(meter) => meter.finish(),
            None => (
                None,
                Usage {
                    requests: 1,
                    errors: 1,
                    ..Usage::default()
                },
            ),
        };
        let model = model
            .or_else(|| model_named(&crate::sync::lock(&self.prefix)))
            .unwrap_or_else(|| UNKNOWN_MODEL.to_owned());
        let Holder { agent_id, owner } = self.holder;
        self.agents.record_usage(agent_id, owner, &model, usage);
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        if self.meter.is_some() {
            self.done();
        }
    }
}

/// Headers of one hop only (RFC 9110 7.6.1), and those the gateway sets itself.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The agent credential a CLI sent: its `x-api-key`, or a bearer token.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key") {
        return key.to_str().ok();
    }
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// An error in the Messages API's own shape, which the CLI reports as it would the API's.
pub fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    });
    (status, axum::Json(body)).into_response()
}

pub async fn relay(State(relay): State<Arc<Relay>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(holder) = presented(&parts.headers).and_then(|p| relay.passes.check(p)) else {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "claude-proxy's gateway: this credential is not one of a running agent's",
        );
    };
    let agent_id = holder.agent_id;
    // A request to the Messages API is counted; the others (token counting, ...) pass.
    let counted = parts.method == Method::POST && parts.uri.path() == "/v1/messages";
    if let (true, Some(until)) = (counted, relay.agents.requests_refused_until()) {
        return refused_until(until);
    }
    if counted {
        if let Some(over) = relay.agents.refuse_for_budget(agent_id, holder.owner) {
            // Not a rate limit (the subscription takes requests): a refusal the CLI reports
            // and does not retry; the agent's stream ends with `budget_exceeded`.
            let mut response = api_error(
                StatusCode::FORBIDDEN,
                "permission_error",
                &format!(
                    "claude-proxy's gateway: budget_exceeded: this key has spent its budget of {} until {}",
                    over.budget,
                    over.until
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            );
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
            return response;
        }
    }
    let prefix = Arc::new(Mutex::new(Vec::new()));
    let mut count = counted.then(|| Count {
        agents: relay.agents.clone(),
        holder,
        prefix: Arc::clone(&prefix),
        // Until an answer comes: a request that gets none is an error.
        meter: Some(Meter::new(false, "")),
    });
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let theirs = matches!(
            name.as_str(),
            "x-api-key" | "authorization" | "host" | "accept-encoding"
        );
        if !theirs && !is_hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    // Bodies pass as they are, so that what is relayed can be read as it goes.
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let stored_token = match relay
        .upstream
        .credential
        .apply(&mut headers, &relay.client)
        .await
    {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(%err, %agent_id, "the gateway has no credential to forward with");
            return api_error(StatusCode::BAD_GATEWAY, "api_error", &err.to_string());
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", relay.upstream.url);
    let has_body = parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING)
        || !matches!(parts.method, Method::GET | Method::HEAD);
    let mut upstream = relay.client.request(parts.method, url).headers(headers);
    if has_body {
        let body = body.into_data_stream().map_ok(move |chunk: Bytes| {
            if counted {
                let mut kept = crate::sync::lock(&prefix);
                let room = MODEL_PREFIX.saturating_sub(kept.len()).min(chunk.len());
                kept.extend_from_slice(&chunk[..room]);
            }
            chunk
        });
        upstream = upstream.body(reqwest::Body::wrap_stream(body));
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(err = %error_chain(&err), %agent_id, "the gateway could not reach the API");
            return api_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!(
                    "claude-proxy's gateway could not reach the API: {}",
                    error_chain(&err)
                ),
            );
        }
    };
    if let (StatusCode::UNAUTHORIZED, Some(token)) = (answer.status(), &stored_token) {
        // Expired before its time, or revoked: refreshed before the next request.
        relay.upstream.credential.refused(token);
    }
    if let Some(limits) = super::limits::read(answer.headers()) {
        relay.agents.observe_limits(limits);
    }
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !is_hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    if let Some(count) = &mut count {
        let content_type = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        count.meter = Some(Meter::new(answer.status().is_success(), content_type));
    }
    // The count reads each chunk on the way; a fast answer's chunks are gathered into fewer
    // writes.
    let mut chunks = answer.bytes_stream();
    let stream = async_stream::stream! {
        let mut count = count;
        while let Some(chunk) = chunks.next().await {
            if let (Ok(bytes), Some(count)) = (&chunk, &mut count) {
                count.feed(bytes);
            }
            yield chunk.map_err(axum::Error::new);
        }
        if let Some(count) = &mut count {
            count.done();
        }
    };
    response
        .body(Body::from_stream(Gathered::new(
            Box::pin(stream),
            WRITE_INTERVAL,
        )))
        .unwrap_or_else(|err| api_error(StatusCode::BAD_GATEWAY, "api_error", &err.to_string()))
}

/// The answer to a request while the API refuses the subscription: the API's own
/// `rate_limit_error`, with when to retry, and `x-should-retry: false`, so that the CLI ends
/// its turn with the error rather than wait for the reset.
fn refused_until(until: chrono::DateTime<chrono::Utc>) -> Response {
    let secs = (until - chrono::Utc::now()).num_seconds().max(1);
    let mut response = api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        &format!(
            "claude-proxy's gateway: the API refuses the subscription's requests until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    headers.insert("x-should-retry", HeaderValue::from_static("false"));
    response
}

/// An error and its causes, on one line (reqwest's own says only "error sending request").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
