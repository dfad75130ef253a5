//! Once a second, on a thread of its own: the data plane's counters,
//! workers and flows over its control socket (one exchange), with rates
//! from the previous sample (packets per second and busy share per
//! worker, calls per second), and a few minutes of that history for the
//! dashboard. Scrapes and API calls read the latest sample, so they never
//! wait on the data plane, and the data plane is asked once a second
//! however many clients look. With HEP export on, the same flow list
//! yields the RTCP reports that are new since the last sample
//! ([`crate::hep::rtcp`]); the sampler then runs even without `[http]`.

use super::meters::Observed;
use crate::hep::rtcp::Cursor;
use crate::media::FlowStat;
use crate::ngserver::NgServer;
use crate::sync::lock;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_dataplane::backend::WorkerReport;
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::{Reply, Request};
use tollgate_dataplane::table::FlowReport;

/// How often the data plane is sampled.
pub const EVERY: Duration = Duration::from_secs(1);
/// Seconds of history kept for the dashboard.
pub const HISTORY: usize = 300;

/// One worker, with rates over the last sample interval.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSample {
    #[serde(flatten)]
    pub report: WorkerReport,
    pub rx_pps: f64,
    pub tx_pps: f64,
    /// Share of the interval spent on packets and timers, 0-1.
    pub busy: f64,
}

/// What the data plane said at the last sample.
#[derive(Debug, Clone, Default)]
pub struct PlaneSample {
    /// The data plane answered; else `error` says why not.
    pub connected: bool,
    pub error: Option<String>,
    pub backend: Option<String>,
    pub counters: BTreeMap<String, u64>,
    pub workers: Vec<WorkerSample>,
    /// Every installed flow's counters, by its local address.
    pub flows: HashMap<SocketAddr, FlowStat>,
    pub cps: f64,
    /// Packets per second the backend received (its `rx` counter: the XDP
    /// program's, or its workers' summed), over the last interval.
    pub rx_pps: f64,
}

/// One second of the dashboard's charts.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub at_ms: i64,
    pub cps: f64,
    pub active_calls: usize,
    pub rx_pps: f64,
}

/// The latest sample and the history, shared with the HTTP handlers.
#[derive(Default)]
pub struct Samples {
    latest: Mutex<Arc<PlaneSample>>,
    history: Mutex<VecDeque<Second>>,
}

impl Samples {
    pub fn latest(&self) -> Arc<PlaneSample> {
        lock(&self.latest).clone()
    }

    pub fn history(&self) -> Vec<Second> {
        lock(&self.history).iter().cloned().collect()
    }
}

/// The sampler's memory between samples.
struct Sampler {
    socket: PathBuf,
    client: Option<ControlClient>,
    ng: Arc<NgServer>,
    /// What of each flow's RTCP was exported (with HEP on).
    rtcp: Cursor,
    /// The previous sample: when, its workers, calls started by then, and
    /// the backend's `rx` counter.
    prev: Option<(Instant, Vec<WorkerReport>, u64, Option<u64>)>,
}

/// Samples into `samples` every [`EVERY`] until `stop` is set.
pub fn spawn(
    socket: PathBuf,
    ng: Arc<NgServer>,
    samples: Arc<Samples>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let observed = ng.observed.clone();
    std::thread::Builder::new()
        .name("tg-http-sample".into())
        .spawn(move || {
            let mut s = Sampler {
                socket,
                client: None,
                ng,
                rtcp: Cursor::default(),
                prev: None,
            };
            while !stop.load(Ordering::Relaxed) {
                let sample = s.sample(&observed);
                record(&samples, &observed, &sample);
                *lock(&samples.latest) = Arc::new(sample);
                std::thread::sleep(EVERY);
            }
        })
}

/// Appends the sample's second to the history.
fn record(samples: &Samples, observed: &Observed, s: &PlaneSample) {
    let active_calls = observed.b2bua().map_or(0, |b| lock(b).active_calls());
    let at_ms = crate::media::ms(std::time::SystemTime::now());
    let mut h = lock(&samples.history);
    if h.len() == HISTORY {
        h.pop_front();
    }
    h.push_back(Second {
        at_ms,
        cps: s.cps,
        active_calls,
        rx_pps: s.workers.iter().map(|w| w.rx_pps).sum(),
    });
}

impl Sampler {
    fn sample(&mut self, observed: &Observed) -> PlaneSample {
        let now = Instant::now();
        let started = observed.calls.started();
        let mut out = match self.ask() {
            Ok(s) => s,
            Err(e) => {
                self.client = None;
                PlaneSample {
                    error: Some(e),
                    ..PlaneSample::default()
                }
            }
        };
        let reports: Vec<WorkerReport> = out.workers.iter().map(|w| w.report.clone()).collect();
        let rx = out.counters.get("rx").copied();
        if let Some((then, before, started_then, rx_then)) = &self.prev {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            out.cps = started.saturating_sub(*started_then) as f64 / secs;
            if let (Some(rx), Some(rx_then)) = (rx, rx_then) {
                out.rx_pps = rx.saturating_sub(*rx_then) as f64 / secs;
            }
            for w in &mut out.workers {
                if let Some(b) = before.iter().find(|b| b.worker == w.report.worker) {
                    rates(w, b, secs);
                }
            }
        }
        self.prev = Some((now, reports, started, rx));
        out
    }

    /// One exchange: hello, counters, workers, flows.
    fn ask(&mut self) -> Result<PlaneSample, String> {
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(
                ControlClient::connect(&self.socket)
                    .map_err(|e| format!("data plane unreachable: {e}"))?,
            ),
        };
        let reqs = [
            Request::Hello,
            Request::Counters,
            Request::Workers,
            Request::FlowList,
        ];
        let answers = client
            .request_all_typed(&reqs)
            .map_err(|e| format!("data plane: {e}"))?;
        let mut s = PlaneSample {
            connected: true,
            ..PlaneSample::default()
        };
        for a in answers {
            match a.map_err(|e| format!("data plane: {}", e.message))? {
                Reply::Hello(h) => s.backend = Some(h.backend),
                Reply::Counters(c) => s.counters = c,
                Reply::Workers(w) => s.workers = w.into_iter().map(unrated).collect(),
                Reply::Flows(f) => {
                    self.export_rtcp(&f);
                    s.flows = f
                        .iter()
                        .map(|r| (r.flow.local, crate::plane::flow_stat(r)))
                        .collect()
                }
                other => return Err(format!("unexpected data-plane reply: {other:?}")),
            }
        }
        Ok(s)
    }
}

impl Sampler {
    /// The RTCP reports new in `flows`, to the HEP collector.
    fn export_rtcp(&mut self, flows: &[FlowReport]) {
        let Some(tap) = self.ng.hep.as_ref().filter(|t| t.rtcp) else {
            return;
        };
        let handler = &self.ng.handler;
        // Twice the interval: a report that passed since the previous poll.
        tap.rtcp_reports(&mut self.rtcp, flows, 2 * EVERY, || {
            lock(handler).sessions.flow_calls()
        });
    }
}

fn unrated(report: WorkerReport) -> WorkerSample {
    WorkerSample {
        report,
        rx_pps: 0.0,
        tx_pps: 0.0,
        busy: 0.0,
    }
}

/// Rates of `w` since `before`, `secs` earlier.
fn rates(w: &mut WorkerSample, before: &WorkerReport, secs: f64) {
    let r = &w.report;
    w.rx_pps = r.rx_packets.saturating_sub(before.rx_packets) as f64 / secs;
    w.tx_pps = r.tx_packets.saturating_sub(before.tx_packets) as f64 / secs;
    let up = r.uptime_ns.saturating_sub(before.uptime_ns).max(1);
    w.busy = (r.busy_ns.saturating_sub(before.busy_ns) as f64 / up as f64).min(1.0);
}
