//! The web pages the hub serves: the command-center console (`/console`) and the lead
//! phone page (`/lead`). Plain HTML, CSS and JavaScript from `clients/web/`, compiled
//! into the binary (no build step, no separate web server, nothing from the internet).
//! They speak only the public API and protocol.
//!
//! Every page goes out with a Content-Security-Policy that allows scripts, styles and
//! connections from this hub only and no inline script, so text that reached a page as
//! markup could not run even if a page forgot to escape it (they set text, not HTML).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::Hub;

macro_rules! asset {
    ($name:literal) => {
        include_str!(concat!("../../clients/web/", $name))
    };
}

/// (path under `/web/`, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "common.js",
        "text/javascript; charset=utf-8",
        asset!("common.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        asset!("console.js"),
    ),
    (
        "lead.js",
        "text/javascript; charset=utf-8",
        asset!("lead.js"),
    ),
    (
        "gridcast.css",
        "text/css; charset=utf-8",
        asset!("gridcast.css"),
    ),
];

const CONSOLE: &str = asset!("console.html");
const LEAD: &str = asset!("lead.html");

/// The pages' routes.
pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/console") }))
        .route(
            "/console",
            get(|h: HeaderMap| async move { page(&h, CONSOLE) }),
        )
        .route("/lead", get(|h: HeaderMap| async move { page(&h, LEAD) }))
        .route("/web/{file}", get(asset))
}

fn page(headers: &HeaderMap, html: &'static str) -> Response {
    // The lead page's WebSocket goes to this same host; CSP's 'self' does not cover
    // ws:// in every browser, so the host is named.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        })
        .unwrap_or("localhost");
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
