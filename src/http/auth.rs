//! The key check: who is asking, from the request's headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::compat::{Api, CompatError};
use super::error::ApiError;
use crate::agent::{ApiKeys, Client};

/// The key a request presents: `Authorization: Bearer <key>`, or `x-api-key: <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
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
    let client = if keys.is_enabled() {
        match presented_key(request.headers()).and_then(|key| keys.identify(key)) {
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
        assert_eq!(presented_key(&headers), Some(&b"abc"[..]));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented_key(&headers), Some(&b"xyz"[..]));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&headers), None);
    }
}
