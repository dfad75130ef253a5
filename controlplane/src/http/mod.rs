//! The control plane's HTTP server (axum, on the control plane's tokio
//! runtime): Prometheus metrics, health and readiness, and a JSON API for
//! operators. On by default on `127.0.0.1:8088` (`[http]`, see
//! [`config`]); on any other address every request but `/health` needs
//! `Authorization: Bearer <http.token>` (401 otherwise; or
//! `?access_token=`), and the node
//! refuses to start without a token there.
//!
//! Routes:
//! - `GET /health`: 200 `ok` while the process runs.
//! - `GET /ready`: 200 when NG listens, SIP listens (when configured), the
//!   data plane answered its last sample and the node is not draining;
//!   else 503. Both with `{"ready": bool, "ng": bool, "sip": bool|null,
//!   "dataplane": bool, "dataplane_error": string|null, "draining": bool}`.
//! - `GET /metrics`: Prometheus text; the names are in [`metrics`].
//! - `GET /api/calls`: `{"calls": [call]}`, calls in progress, where a call
//!   is `{"call_id", "kind": "sip"|"ng", "state":
//!   "calling"|"answered"|"media", "from_number", "to_number", "start_ms",
//!   "answer_ms", "gateway", "carrier", "legs": [leg]}` (absent facts are
//!   null; NG calls carry no numbers) and a leg is `{"leg": "a"|"b"|"b2"...,
//!   "sip_call_id", "peer", "remote_uri", "tag", "media", "rtcp"}`; `rtcp`
//!   (null before the party's first RTCP report) is `{"remote_lost",
//!   "remote_jitter_ms", "rtt_ms"}`, what it reported of the media it
//!   receives and the relay's round trip to it; `media` (null
//!   before the leg's party has relay ports) is what that party sent the
//!   relay, as in CDRs: `{"packets", "bytes", "lost", "jitter_ms", "mos"}`,
//!   the last three once the data plane read RTP on the leg (every
//!   backend does). Counters are at most a second old (the sampler's).
//! - `GET /api/calls/{call_id}`: one such call, or 404 `{"error"}`.
//! - `GET /api/cdrs?limit=N`: `{"source", "cdrs": [cdr]}`, the newest
//!   first, N (default 20) at most 100: the CDRs this process wrote to
//!   its spool since it started, in the CDR model's JSON (as the `jsonl`
//!   sink writes them). Older ones are in the sinks (`tollgate cdr
//!   export`); the spool itself drops what every sink has.
//! - `GET /api/gateways`: `{"gateways": [{"id", "carrier", "addr",
//!   "priority", "up"}]}` from the LCR tables (`up` null until pinged).
//! - `GET /api/registrations`: `{"registrations": [{"user", "contact",
//!   "addr", "expires_in_secs"}]}`.
//! - `GET /api/drain`: `{"draining": bool, "calls": N}` (calls in
//!   progress); `POST /api/drain` with `{"drain": bool}` switches drain mode
//!   for maintenance: new INVITEs get 503 Draining and NG offers for new
//!   calls an error, calls in progress go on, and `/ready` answers 503 so a
//!   balancer stops sending; the reply is the same object.
//! - `POST /api/failover/takeover` with `{"keyspace": K}` (with
//!   `[failover]`): takes another node's keyspace over, as `tollgate ctl
//!   takeover K` does, and answers its outcome `{"by", "sessions",
//!   "sip_calls", "failed"}`; 400 `{"error"}` when K cannot be taken.
//! - `GET /`: the live dashboard, fed by `GET /api/events` (server-sent
//!   events, one `snapshot` a second; see [`dashboard`]).
//!
//! The token may also come as `?access_token=TOKEN` (what a browser can
//! send on a page and an event stream).

pub mod api;
pub mod config;
pub mod dashboard;
pub mod meters;
pub mod metrics;
pub mod sampler;

use crate::ngserver::NgServer;
use crate::sync::lock;
use axum::extract::{Path, Query, Request, State as With};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use config::HttpConfig;
use meters::Observed;
use sampler::Samples;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tollgate_cdr::spool::Spool;

/// What the handlers read.
pub struct State {
    pub observed: Arc<Observed>,
    pub ng: Arc<NgServer>,
    pub spool: Arc<Spool>,
    pub samples: Arc<Samples>,
    /// Whether `[sip]` listens at all (readiness waits for it then).
    pub sip_configured: bool,
    /// The archive uploader's status, when it runs.
    pub archive: Option<tollgate_archive::status::SharedStatus>,
    token: Option<String>,
}

type Shared = Arc<State>;

/// Binds `cfg.listen` (an error when it cannot), starts the data-plane
/// sampler on `socket`, and serves until `stop` is set.
pub async fn start(
    cfg: &HttpConfig,
    ng: Arc<NgServer>,
    spool: Arc<Spool>,
    socket: PathBuf,
    sip_configured: bool,
    archive: Option<tollgate_archive::status::SharedStatus>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let observed = ng.observed.clone();
    let samples = Arc::new(Samples::default());
    sampler::spawn(socket, ng.clone(), samples.clone(), stop.clone())?;
    let state = Arc::new(State {
        observed,
        ng,
        spool,
        samples,
        sip_configured,
        archive,
        token: cfg.token.clone(),
    });
    tracing::info!(listen = %listener.local_addr()?, token = cfg.token.is_some(),
        "HTTP listening (/metrics, /api, /health, /ready)");
    let app = router(state);
    Ok(tokio::spawn(async move {
        let stopped = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }))
}

fn router(state: Shared) -> Router {
    let guarded = Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/calls", get(calls))
        .route("/api/calls/{call_id}", get(call))
        .route("/api/cdrs", get(cdrs))
        .route("/api/gateways", get(gateways))
        .route("/api/registrations", get(registrations))
        .route("/api/drain", get(drain).post(set_drain))
        .route("/api/failover/takeover", axum::routing::post(takeover))
        .route("/api/events", get(dashboard::events))
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .merge(guarded)
        .with_state(state)
}

/// Lets a request through when no token is configured or it carries it.
async fn authorize(With(state): With<Shared>, req: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(req).await;
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // A browser's page and event stream carry it in the query (RFC 6750 §2.3).
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    let given = header.or(query);
    if given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
        return next.run(req).await;
    }
    let mut r = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "missing or wrong bearer token (see http.token)"})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Equality that takes as long wherever the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Runs `f` on the blocking pool: it takes locks the SIP thread holds
/// per message.
async fn blocking<T: Send + 'static>(
    state: Shared,
    f: impl FnOnce(&State) -> T + Send + 'static,
) -> Result<T, StatusCode> {
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

async fn ready(With(state): With<Shared>) -> Response {
    let draining = blocking(state.clone(), |s| lock(&s.ng.handler).draining)
        .await
        .unwrap_or(false);
    let plane = state.samples.latest();
    let ng = state.observed.is_ng_listening();
    let sip = state
        .sip_configured
        .then(|| state.observed.b2bua().is_some());
    let ok = ng && sip != Some(false) && plane.connected && !draining;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"ready": ok, "ng": ng, "sip": sip, "dataplane": plane.connected,
        "dataplane_error": plane.error, "draining": draining});
    (code, Json(body)).into_response()
}

async fn metrics(With(state): With<Shared>) -> Result<Response, StatusCode> {
    let text = blocking(state, |s| metrics::encode(metrics::gather(s)))
        .await?
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

async fn calls(With(state): With<Shared>) -> Result<Response, StatusCode> {
    let calls = blocking(state, api::calls).await?;
    Ok(Json(json!({ "calls": calls })).into_response())
}

async fn call(With(state): With<Shared>, Path(id): Path<String>) -> Result<Response, StatusCode> {
    let calls = blocking(state, api::calls).await?;
    Ok(match calls.into_iter().find(|c| c.call_id == id) {
        Some(c) => Json(c).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no call in progress with Call-ID {id:?}") })),
        )
            .into_response(),
    })
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn cdrs(With(state): With<Shared>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(20).min(meters::CDR_TAIL);
    let cdrs = state.observed.calls.recent(limit);
    Json(json!({
        "source": "the CDRs this process spooled since it started, newest first",
        "cdrs": cdrs,
    }))
    .into_response()
}

async fn gateways(With(state): With<Shared>) -> Result<Response, StatusCode> {
    let gateways = blocking(state, |s| {
        s.observed
            .b2bua()
            .map(|b| lock(b).gateways_view())
            .unwrap_or_default()
    })
    .await?;
    Ok(Json(json!({ "gateways": gateways })).into_response())
}

async fn registrations(With(state): With<Shared>) -> Result<Response, StatusCode> {
    let registrations = blocking(state, |s| {
        let now = std::time::Instant::now();
        s.observed
            .b2bua()
            .map(|b| lock(b).registrations_view(now))
            .unwrap_or_default()
    })
    .await?;
    Ok(Json(json!({ "registrations": registrations })).into_response())
}

#[derive(Deserialize)]
struct DrainRequest {
    drain: bool,
}

async fn drain(With(state): With<Shared>) -> Result<Response, StatusCode> {
    drain_to(state, None).await
}

async fn set_drain(
    With(state): With<Shared>,
    Json(req): Json<DrainRequest>,
) -> Result<Response, StatusCode> {
    drain_to(state, Some(req.drain)).await
}

#[derive(Deserialize)]
struct TakeoverRequest {
    keyspace: String,
}

async fn takeover(
    With(state): With<Shared>,
    Json(req): Json<TakeoverRequest>,
) -> Result<Response, StatusCode> {
    let outcome = blocking(state, move |s| {
        let cfg = s
            .observed
            .failover
            .config
            .get()
            .ok_or_else(|| anyhow::anyhow!("this node has no [failover] section"))?;
        crate::failover::takeover::assign(cfg, &req.keyspace, Duration::from_secs(10))
    })
    .await?;
    Ok(match outcome {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("{e:#}")})),
        )
            .into_response(),
    })
}

/// Switches drain mode on the NG handler and the B2BUA alike (when `to`
/// is given) and says where it stands.
async fn drain_to(state: Shared, to: Option<bool>) -> Result<Response, StatusCode> {
    let (draining, calls) = blocking(state, move |s| {
        let mut h = lock(&s.ng.handler);
        if let Some(on) = to {
            h.draining = on;
            if let Some(b) = s.observed.b2bua() {
                lock(b).guard.set_draining(on);
            }
        }
        (h.draining, h.sessions.active())
    })
    .await?;
    Ok(Json(json!({ "draining": draining, "calls": calls })).into_response())
}
