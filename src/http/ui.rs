//! The dashboard (`GET /ui`): a page and its script and style, built from `ui/` into
//! `ui/dist/` (committed, so building the binary needs no Node.js) and served from inside the
//! binary. The page and its files need no key; the API calls the page makes do.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;

/// Only the page's own script and style run, and it talks only to this origin: no inline
/// script, no other origin, no framing, no form posting anywhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The dashboard: live agents, their events, tool approvals and the server's state.
#[utoipa::path(get, path = "/ui", tag = "service", security(()),
    responses((status = 200, description = "The dashboard page.", content_type = "text/html", body = String)))]
pub async fn page() -> Response {
    served(
        include_bytes!("../../ui/dist/index.html"),
        "text/html; charset=utf-8",
    )
}

/// `/ui/` is the dashboard too: sent to `/ui`, whose page names its files relative to itself.
#[utoipa::path(get, path = "/ui/", tag = "service", security(()),
    responses((status = 308, description = "To /ui.")))]
pub async fn page_with_slash() -> Redirect {
    // Relative, so that a proxy mounted under a path prefix keeps it.
    Redirect::permanent("../ui")
}

/// The dashboard's script and style.
#[utoipa::path(get, path = "/ui/{file}", tag = "service", security(()),
    params(("file" = String, Path, description = "app.js or style.css")),
    responses(
        (status = 200, description = "The file.", body = String),
        (status = 404, description = "No such file.", body = super::openapi::ErrorBody),
    ))]
pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => served(
            include_bytes!("../../ui/dist/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => served(
            include_bytes!("../../ui/dist/style.css"),
            "text/css; charset=utf-8",
        ),
        _ => ApiError::RouteNotFound(format!("/ui/{file}")).into_response(),
    }
}

fn served(body: &'static [u8], content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // The files change with the binary: the browser asks again each time.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
