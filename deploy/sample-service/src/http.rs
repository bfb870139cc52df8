//! The HTTP routes: `/health`, `/version`, `/items` and `/slow`.

use crate::db::Db;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;

/// Largest accepted `POST /items` body; more gets 413 instead of filling memory.
const MAX_BODY: usize = 64 * 1024;

/// Longest accepted `/slow` delay, so a typo cannot pin a connection for days.
const MAX_SLOW_MS: u64 = 600_000;

/// What every request handler shares.
pub struct App {
    /// The database behind `/health` and `/items`.
    pub db: Db,
    /// The version `/version` reports.
    pub version: String,
    /// The deployment that started this process (`DEPLOYMENT_ID`), so `/version` tells which
    /// release serves even when every release carries the same version.
    pub deployment_id: Option<String>,
    /// The commit the release was built from (its `REVISION` file).
    pub commit: Option<String>,
}

/// Answers one request; never fails at the HTTP level (errors become JSON responses).
pub async fn handle(
    app: &App,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    tracing::debug!(%method, %path, "request");
    let response = match (path.as_str(), method) {
        ("/health", Method::GET) => match app.db.health().await {
            Ok(()) => reply(StatusCode::OK, json!({"status": "ok"})),
            Err(reason) => {
                tracing::warn!("health check failed: {reason}");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "unavailable", "reason": reason}),
                )
            }
        },
        ("/version", Method::GET) => reply(
            StatusCode::OK,
            json!({
                "version": app.version,
                "deployment_id": app.deployment_id,
                "commit": app.commit,
            }),
        ),
        ("/items", Method::GET) => match app.db.list().await {
            Ok(items) => reply(StatusCode::OK, json!(items)),
            Err(reason) => unavailable(&reason),
        },
        ("/items", Method::POST) => create_item(app, req).await,
        ("/slow", Method::GET) => slow(req.uri().query()).await,
        ("/health" | "/version" | "/slow", _) => not_allowed("GET"),
        ("/items", _) => not_allowed("GET, POST"),
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no route for {path}; try /health, /version, /items, /slow?ms=N")}),
        ),
    };
    Ok(response)
}

/// `POST /items`: the body, as UTF-8 text, becomes a new row.
async fn create_item(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("body larger than {MAX_BODY} bytes or interrupted")}),
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "body must be UTF-8 text"}),
        );
    };
    match app.db.insert(text).await {
        Ok(id) => reply(StatusCode::CREATED, json!({"id": id})),
        Err(reason) => unavailable(&reason),
    }
}

/// `GET /slow?ms=N`: answers after N ms, so tests can hold a request in flight.
async fn slow(query: Option<&str>) -> Response<Full<Bytes>> {
    let ms = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_SLOW_MS);
    let Some(ms) = ms else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("expected ?ms=N with N between 0 and {MAX_SLOW_MS}")}),
        );
    };
    // Logged at info so a drain can be watched (and waited for) from the outside.
    tracing::info!(ms, "slow request started");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    reply(StatusCode::OK, json!({"slept_ms": ms}))
}

fn unavailable(reason: &str) -> Response<Full<Bytes>> {
    tracing::warn!("database request failed: {reason}");
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unavailable", "reason": reason}),
    )
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": format!("method not allowed; use {allow}")}),
    );
    r.headers_mut()
        .insert(ALLOW, allow.parse().expect("static header value"));
    r
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("static header value"),
    );
    r
}
