//! The live dashboard: one page (`/`, with `/dashboard.js` and
//! `/dashboard.css`, compiled into the binary: no CDN, nothing fetched
//! elsewhere) and `/api/events`, server-sent events carrying a
//! [`Snapshot`] once a second: active calls with each leg's quality, calls
//! per second and active calls over the last minutes, the data plane's
//! per-worker load, SIP responses sent by code, the CDR tail, the spool
//! and its sinks, the recording archive's queue, and gateway health. The page draws them; the layout
//! folds to one column on a phone. Behind a token, a browser passes it as
//! `?access_token=` (RFC 6750 §2.3), which the page carries on to the
//! event stream.

use super::api::{self, CallJson};
use super::sampler::{Second, WorkerSample};
use super::{Shared, State};
use crate::b2bua::view::GatewayView;
use crate::sync::lock;
use axum::extract::State as With;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use tollgate_cdr::model::Cdr;
use tollgate_cdr::spool::Status;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// CDRs in the dashboard's tail.
const TAIL: usize = 10;

/// What the page shows, as one event.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub at_ms: i64,
    pub calls: Vec<CallJson>,
    pub cps: f64,
    pub history: Vec<Second>,
    pub dataplane_up: bool,
    pub backend: Option<String>,
    pub workers: Vec<WorkerSample>,
    /// Final and provisional responses the node sent, by code.
    pub sip_codes: BTreeMap<u16, u64>,
    pub cdrs: Vec<Cdr>,
    pub spool: Status,
    /// The recording archive's queue, while its uploader runs.
    pub archive: Option<tollgate_archive::status::ArchiveStatus>,
    pub gateways: Vec<GatewayView>,
}

/// The snapshot now (blocking: the B2BUA's and the media handler's locks).
pub fn snapshot(state: &State) -> Snapshot {
    let plane = state.samples.latest();
    let mut sip_codes = BTreeMap::new();
    for (dir, _, code, n) in state.observed.sip.responses() {
        if dir == super::meters::Direction::Sent {
            *sip_codes.entry(code).or_insert(0) += n;
        }
    }
    Snapshot {
        at_ms: crate::media::ms(std::time::SystemTime::now()),
        calls: api::calls(state),
        cps: plane.cps,
        history: state.samples.history(),
        dataplane_up: plane.connected,
        backend: plane.backend.clone(),
        workers: plane.workers.clone(),
        sip_codes,
        cdrs: state.observed.calls.recent(TAIL),
        spool: state.spool.status(),
        archive: state.archive.as_ref().map(|a| lock(a).clone()),
        gateways: state
            .observed
            .b2bua()
            .map(|b| lock(b).gateways_view())
            .unwrap_or_default(),
    }
}

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// A snapshot at once, then one every sampler interval, while the client
/// stays.
pub async fn events(
    With(state): With<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(super::sampler::EVERY).await;
        }
        let s = state.clone();
        let snap = tokio::task::spawn_blocking(move || snapshot(&s))
            .await
            .ok()?;
        let event = Event::default()
            .event("snapshot")
            .json_data(&snap)
            .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
        Some((Ok(event), (state, false)))
    });
    Sse::new(ticks).keep_alive(KeepAlive::default())
}
