//! `/metrics`: the node's counters in the Prometheus text format (0.0.4),
//! encoded by the `prometheus-client` crate. Nothing here is counted at
//! scrape time: the adapters count with atomics as they go
//! ([`super::meters`]), the B2BUA keeps its own counters, the spool its
//! status and the sampler the data plane's last answer; a scrape copies
//! them into one [`Scrape`] (a short look under the B2BUA's and the media
//! handler's locks) and encodes that as a `prometheus-client` collector.
//!
//! Names (counters end in `_total`):
//! - calls: `tollgate_calls_active` (B2BUA calls in progress),
//!   `tollgate_media_sessions_active` (NG and B2BUA media sessions),
//!   `tollgate_calls_started_total`, `tollgate_calls_ended_total{outcome}`,
//!   `tollgate_calls_per_second` (over the last second);
//! - SIP: `tollgate_sip_requests_total{direction,method}`,
//!   `tollgate_sip_responses_total{direction,method,code}` (method from the
//!   CSeq), `tollgate_sip_retransmissions_total{direction}`,
//!   `tollgate_sip_malformed_total`, `tollgate_sip_bad_requests_total`,
//!   `tollgate_sip_overload_rejections_total`, `tollgate_registrations`,
//!   `tollgate_sip_banned_dropped_total` (datagrams of banned sources),
//!   `tollgate_sip_bans_total{reason}` (flood, auth),
//!   `tollgate_sip_sources_banned`, `tollgate_sip_closed_rejections_total{reason}`
//!   (new INVITEs refused while draining or shedding), `tollgate_draining`,
//!   `tollgate_gateway_up{gateway,carrier,address}` (1 up or not yet
//!   pinged, 0 down);
//! - NG: `tollgate_ng_commands_total{command}`,
//!   `tollgate_ng_errors_total{command}`, `tollgate_ng_malformed_total`,
//!   `tollgate_ng_refused_total` (from sources outside `ng.allow`);
//! - data plane: `tollgate_dataplane_up`, `tollgate_dataplane_info{backend}`,
//!   `tollgate_dataplane_packets_total{backend,counter}` (the backend's own
//!   counters: rx, forwarded, pass_*, to_worker, ...),
//!   `tollgate_dataplane_drops_total{backend,reason}` (its `drop_*`
//!   counters), `tollgate_dataplane_bytes_total{backend,counter}` (its
//!   `*_bytes` counters: the user-space workers' rx and tx),
//!   `tollgate_dataplane_rx_packets_per_second{backend}` (from its `rx`
//!   counter, the XDP program's included), `tollgate_flows`,
//!   `tollgate_flow_packets` and `tollgate_flow_bytes` (summed over the
//!   installed flows);
//!   per worker `tollgate_worker_rx_packets_total`,
//!   `tollgate_worker_tx_packets_total`, `tollgate_worker_rx_bytes_total`,
//!   `tollgate_worker_tx_bytes_total` (UDP payloads on the socket backend,
//!   frames on DPDK and AF_XDP), `tollgate_worker_busy_seconds_total`,
//!   `tollgate_worker_drops_total{reason}`, `tollgate_worker_flows`,
//!   `tollgate_worker_rx_packets_per_second` (labels `worker`, `core`);
//! - CDRs: `tollgate_cdr_spool_depth` (records some sink still has to
//!   take), `tollgate_cdr_spool_bytes`, `tollgate_cdr_sink_lag{sink}`,
//!   `tollgate_cdr_sink_failing{sink}`, `tollgate_cdr_spool_held_records`
//!   (records the spool's disk refused, held in memory) and
//!   `tollgate_cdr_spool_refusing_calls` (1 while that hold turns new calls away);
//! - the recording archive (while its uploader runs):
//!   `tollgate_archive_queue_depth`, `tollgate_archive_over_watermark`
//!   (1 above `queue_combined_watermark`), `tollgate_archive_flagged_total`,
//!   `tollgate_archive_archived_total`, `tollgate_archive_failed`;
//! - failover (with `[failover]`): `tollgate_failover_redis_up`,
//!   `tollgate_failover_fenced`, `tollgate_failover_write_errors_total`,
//!   `tollgate_failover_calls_taken_total`.

use super::meters::Observed;
use super::sampler::PlaneSample;
use crate::b2bua::guard::GuardCounters;
use crate::b2bua::view::GatewayView;
use crate::b2bua::Counters;
use crate::sync::lock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt::Error;
use std::sync::Arc;
use tollgate_cdr::spool::Status;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;

/// Everything one scrape reports, copied out of the live state.
#[derive(Debug)]
pub struct Scrape {
    pub observed: Arc<Observed>,
    /// The B2BUA's counters, calls, registrations and gateways (None
    /// without SIP).
    pub sip: Option<(Counters, usize, usize, Vec<GatewayView>)>,
    /// The B2BUA guard's counters and the sources banned now.
    pub guard: Option<(GuardCounters, usize)>,
    pub media_sessions: usize,
    pub ng_malformed: u64,
    pub ng_refused: u64,
    pub draining: bool,
    pub plane: Arc<PlaneSample>,
    pub spool: Status,
    pub archive: Option<tollgate_archive::status::ArchiveStatus>,
}

/// `rows` as one metric family of `kind` (a family without rows is
/// still described, so every name is always there).
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), Error> {
    let rows = rows.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(enc, name, help, MetricType::Counter, rows)
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), Error> {
    let rows = rows.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(enc, name, help, MetricType::Gauge, rows)
}

fn one(v: impl Into<f64>) -> [(Labels, f64); 1] {
    [(Vec::new(), v.into())]
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), Error> {
        self.calls(&mut enc)?;
        self.sip(&mut enc)?;
        self.b2bua(&mut enc)?;
        self.guard(&mut enc)?;
        self.ng(&mut enc)?;
        self.dataplane(&mut enc)?;
        self.throughput(&mut enc)?;
        self.workers(&mut enc)?;
        self.cdrs(&mut enc)?;
        self.archive(&mut enc)?;
        self.failover(&mut enc)
    }
}

impl Scrape {
    fn calls(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let calls = &self.observed.calls;
        let active = self.sip.as_ref().map_or(0, |s| s.1);
        gauges(
            enc,
            "tollgate_calls_active",
            "B2BUA calls in progress",
            one(active as f64),
        )?;
        let sessions = self.media_sessions as f64;
        gauges(
            enc,
            "tollgate_media_sessions_active",
            "Media sessions (NG and B2BUA calls)",
            one(sessions),
        )?;
        let started = [(Vec::new(), calls.started())];
        counters(enc, "tollgate_calls_started", "Calls started", started)?;
        let ended = calls
            .ended()
            .map(|(o, n)| (vec![("outcome", o.to_string())], n));
        counters(
            enc,
            "tollgate_calls_ended",
            "Calls ended, by outcome (CDR disposition)",
            ended,
        )?;
        gauges(
            enc,
            "tollgate_calls_per_second",
            "Calls started per second over the last second",
            one(self.plane.cps),
        )
    }

    fn sip(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let m = &self.observed.sip;
        let req = m.requests().into_iter().map(|(d, method, n)| {
            (
                vec![
                    ("direction", d.as_str().to_string()),
                    ("method", method.to_string()),
                ],
                n,
            )
        });
        counters(
            enc,
            "tollgate_sip_requests",
            "SIP requests, by direction and method",
            req,
        )?;
        let resp = m.responses().into_iter().map(|(d, method, code, n)| {
            let labels = vec![
                ("direction", d.as_str().to_string()),
                ("method", method.to_string()),
                ("code", code.to_string()),
            ];
            (labels, n)
        });
        counters(
            enc,
            "tollgate_sip_responses",
            "SIP responses, by direction, CSeq method and code",
            resp,
        )
    }

    fn b2bua(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let Some((c, _, registrations, gateways)) = &self.sip else {
            return Ok(());
        };
        let retrans = [
            (
                vec![("direction", "received".to_string())],
                c.retransmissions_received,
            ),
            (
                vec![("direction", "sent".to_string())],
                c.retransmissions_sent,
            ),
        ];
        counters(
            enc,
            "tollgate_sip_retransmissions",
            "SIP retransmissions absorbed (received) and sent on timers",
            retrans,
        )?;
        counters(
            enc,
            "tollgate_sip_malformed",
            "Datagrams that were not SIP, dropped",
            [(Vec::new(), c.malformed)],
        )?;
        counters(
            enc,
            "tollgate_sip_bad_requests",
            "Requests answered 400",
            [(Vec::new(), c.bad_requests)],
        )?;
        counters(
            enc,
            "tollgate_sip_overload_rejections",
            "INVITEs refused 503 for max_calls or max_cps",
            [(Vec::new(), c.overload)],
        )?;
        gauges(
            enc,
            "tollgate_registrations",
            "Live registration bindings",
            one(*registrations as f64),
        )?;
        let up = gateways.iter().map(|g| {
            let labels = vec![
                ("gateway", g.id.to_string()),
                ("carrier", g.carrier.clone().unwrap_or_default()),
                ("address", g.addr.to_string()),
            ];
            (labels, if g.up == Some(false) { 0.0 } else { 1.0 })
        });
        gauges(
            enc,
            "tollgate_gateway_up",
            "LCR gateway health from OPTIONS pings (1 up or not yet known)",
            up,
        )
    }

    fn ng(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let ng = &self.observed.ng;
        let label = |c: &str| vec![("command", c.to_string())];
        counters(
            enc,
            "tollgate_ng_commands",
            "NG requests answered, by command",
            ng.counts().map(|(c, n, _)| (label(c), n)),
        )?;
        counters(
            enc,
            "tollgate_ng_errors",
            "NG requests answered with an error, by command",
            ng.counts().map(|(c, _, e)| (label(c), e)),
        )?;
        counters(
            enc,
            "tollgate_ng_malformed",
            "NG messages that could not be decoded",
            [(Vec::new(), self.ng_malformed)],
        )?;
        counters(
            enc,
            "tollgate_ng_refused",
            "NG messages dropped: their source is not in ng.allow",
            [(Vec::new(), self.ng_refused)],
        )
    }

    fn guard(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        gauges(
            enc,
            "tollgate_draining",
            "1 while drain mode refuses new calls",
            one(u8::from(self.draining)),
        )?;
        let Some((g, banned)) = &self.guard else {
            return Ok(());
        };
        let reason = |r: &str| vec![("reason", r.to_string())];
        counters(
            enc,
            "tollgate_sip_banned_dropped",
            "SIP datagrams of banned sources, dropped unparsed",
            [(Vec::new(), g.banned_dropped)],
        )?;
        counters(
            enc,
            "tollgate_sip_bans",
            "Sources banned, by reason (request flood, digest failures)",
            [
                (reason("flood"), g.flood_bans),
                (reason("auth"), g.auth_bans),
            ],
        )?;
        gauges(
            enc,
            "tollgate_sip_sources_banned",
            "Sources banned now",
            one(*banned as f64),
        )?;
        counters(
            enc,
            "tollgate_sip_closed_rejections",
            "New INVITEs refused 503 while draining, shedding load or the CDR spool cannot write",
            [
                (reason("drain"), g.drain_refused),
                (reason("shed"), g.shed_refused),
                (reason("spool"), g.spool_refused),
            ],
        )
    }

    fn dataplane(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let p = &self.plane;
        gauges(
            enc,
            "tollgate_dataplane_up",
            "The data plane answered the last sample",
            one(u8::from(p.connected)),
        )?;
        let backend = p.backend.clone().unwrap_or_default();
        let info = p
            .backend
            .iter()
            .map(|b| (vec![("backend", b.clone())], 1.0));
        gauges(
            enc,
            "tollgate_dataplane_info",
            "The running data-plane backend",
            info,
        )?;
        let (drops, other): (Vec<_>, Vec<_>) = p
            .counters
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "flows" | "sockets" | "workers"))
            .filter(|(k, _)| !k.ends_with("_bytes"))
            .partition(|(k, _)| k.starts_with("drop_"));
        let with = |key: &'static str, name: &str| {
            vec![("backend", backend.clone()), (key, name.to_string())]
        };
        let other = other.into_iter().map(|(k, v)| (with("counter", k), *v));
        counters(
            enc,
            "tollgate_dataplane_packets",
            "The backend's packet counters, by name",
            other,
        )?;
        let drops = drops
            .into_iter()
            .map(|(k, v)| (with("reason", &k["drop_".len()..]), *v));
        counters(
            enc,
            "tollgate_dataplane_drops",
            "Packets the backend dropped, by reason",
            drops,
        )?;
        let flows = p
            .counters
            .get("flows")
            .copied()
            .unwrap_or(p.flows.len() as u64);
        gauges(enc, "tollgate_flows", "Installed flows", one(flows as f64))?;
        let packets: u64 = p.flows.values().map(|f| f.packets).sum();
        gauges(
            enc,
            "tollgate_flow_packets",
            "Packets carried by the installed flows",
            one(packets as f64),
        )?;
        let bytes: u64 = p.flows.values().map(|f| f.bytes).sum();
        gauges(
            enc,
            "tollgate_flow_bytes",
            "Bytes carried by the installed flows",
            one(bytes as f64),
        )
    }

    /// The backend's byte counters and receive rate.
    fn throughput(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let p = &self.plane;
        let backend = p.backend.clone().unwrap_or_default();
        let bytes = p
            .counters
            .iter()
            .filter(|(k, _)| k.ends_with("_bytes"))
            .map(|(k, v)| {
                (
                    vec![("backend", backend.clone()), ("counter", k.clone())],
                    *v,
                )
            });
        counters(
            enc,
            "tollgate_dataplane_bytes",
            "The backend's byte counters, by name",
            bytes,
        )?;
        let rate = p
            .backend
            .iter()
            .map(|b| (vec![("backend", b.clone())], p.rx_pps));
        gauges(
            enc,
            "tollgate_dataplane_rx_packets_per_second",
            "Packets the backend received per second, over the last second",
            rate,
        )
    }

    fn workers(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let ws = &self.plane.workers;
        let id = |w: &super::sampler::WorkerSample| {
            vec![
                ("worker", w.report.worker.to_string()),
                ("core", w.report.core.to_string()),
            ]
        };
        counters(
            enc,
            "tollgate_worker_rx_packets",
            "Packets a worker received",
            ws.iter().map(|w| (id(w), w.report.rx_packets)),
        )?;
        counters(
            enc,
            "tollgate_worker_tx_packets",
            "Packets a worker sent",
            ws.iter().map(|w| (id(w), w.report.tx_packets)),
        )?;
        counters(
            enc,
            "tollgate_worker_rx_bytes",
            "Bytes a worker received (UDP payloads on socket, frames on DPDK and AF_XDP)",
            ws.iter().map(|w| (id(w), w.report.rx_bytes)),
        )?;
        counters(
            enc,
            "tollgate_worker_tx_bytes",
            "Bytes a worker sent (UDP payloads on socket, frames on DPDK and AF_XDP)",
            ws.iter().map(|w| (id(w), w.report.tx_bytes)),
        )?;
        let busy = ws
            .iter()
            .map(|w| (id(w), ConstCounter::new(w.report.busy_ns as f64 / 1e9)));
        family(
            enc,
            "tollgate_worker_busy_seconds",
            "Time a worker spent on packets and timers",
            MetricType::Counter,
            busy,
        )?;
        let drops = ws.iter().flat_map(|w| {
            let named = w.report.drops.iter().map(|(k, v)| (k.to_string(), *v));
            let p = &w.report.pipeline;
            let pipeline = [
                ("pipeline_no_flow", p.dropped_no_flow),
                ("pipeline_stage", p.dropped_stage),
                ("pipeline_events_lost", p.events_lost),
                ("pipeline_tap_dropped", p.tap_dropped),
            ];
            named
                .chain(pipeline.map(|(k, v)| (k.to_string(), v)))
                .map(move |(reason, v)| {
                    let mut l = id(w);
                    l.push(("reason", reason));
                    (l, v)
                })
                .collect::<Vec<_>>()
        });
        counters(
            enc,
            "tollgate_worker_drops",
            "Packets a worker dropped, by reason",
            drops,
        )?;
        gauges(
            enc,
            "tollgate_worker_flows",
            "Flows a worker handles",
            ws.iter().map(|w| (id(w), w.report.flows as f64)),
        )?;
        gauges(
            enc,
            "tollgate_worker_rx_packets_per_second",
            "A worker's receive rate over the last second",
            ws.iter().map(|w| (id(w), w.rx_pps)),
        )
    }

    fn cdrs(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let s = &self.spool;
        gauges(
            enc,
            "tollgate_cdr_spool_depth",
            "Spooled records some sink still has to take",
            one(s.depth as f64),
        )?;
        gauges(
            enc,
            "tollgate_cdr_spool_bytes",
            "Bytes in the CDR spool",
            one(s.bytes as f64),
        )?;
        gauges(
            enc,
            "tollgate_cdr_spool_held_records",
            "Records the spool's disk refused, held in memory until it writes again",
            one(s.held_records as f64),
        )?;
        gauges(
            enc,
            "tollgate_cdr_spool_refusing_calls",
            "1 while new calls are refused because the CDR spool cannot write",
            one(if s.refusing_calls { 1.0 } else { 0.0 }),
        )?;
        let sink = |n: &str| vec![("sink", n.to_string())];
        gauges(
            enc,
            "tollgate_cdr_sink_lag",
            "Records a sink has not yet taken",
            s.sinks.iter().map(|k| (sink(&k.name), k.lag as f64)),
        )?;
        let failing = s.sinks.iter().map(|k| {
            (
                sink(&k.name),
                if k.failing_since_ms.is_some() {
                    1.0
                } else {
                    0.0
                },
            )
        });
        gauges(
            enc,
            "tollgate_cdr_sink_failing",
            "1 while a sink's last delivery failed",
            failing,
        )
    }
}

impl Scrape {
    fn archive(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let Some(a) = &self.archive else {
            return Ok(());
        };
        let flag = if a.over_watermark { 1.0 } else { 0.0 };
        for (name, help, v) in [
            (
                "tollgate_archive_queue_depth",
                "Recordings waiting to be archived",
                a.depth as f64,
            ),
            (
                "tollgate_archive_over_watermark",
                "1 while more recordings wait than queue_combined_watermark",
                flag,
            ),
            (
                "tollgate_archive_failed",
                "Recordings that cannot be archived (in failed/)",
                a.failed as f64,
            ),
        ] {
            gauges(enc, name, help, one(v))?;
        }
        counters(
            enc,
            "tollgate_archive_flagged",
            "Recordings flagged for arriving above the watermark",
            one_count(a.flagged),
        )?;
        counters(
            enc,
            "tollgate_archive_archived",
            "Recordings archived since the uploader started",
            one_count(a.archived),
        )
    }
}

impl Scrape {
    fn failover(&self, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let f = &self.observed.failover;
        if !f.running.load(Relaxed) {
            return Ok(());
        }
        let flag = |b: &std::sync::atomic::AtomicBool| one(u8::from(b.load(Relaxed)));
        gauges(
            enc,
            "tollgate_failover_redis_up",
            "1 while the failover writer's last Redis write went through",
            flag(&f.redis_up),
        )?;
        gauges(
            enc,
            "tollgate_failover_fenced",
            "1 once this node's keyspace was taken over (its writes refused)",
            flag(&f.fenced),
        )?;
        counters(
            enc,
            "tollgate_failover_write_errors",
            "Failover writes to Redis that failed (Redis down or unreachable)",
            one_count(f.write_errors.load(Relaxed)),
        )?;
        counters(
            enc,
            "tollgate_failover_calls_taken",
            "Calls restored from keyspaces this node took over",
            one_count(f.taken.load(Relaxed)),
        )
    }
}

fn one_count(n: u64) -> [(Labels, u64); 1] {
    [(Vec::new(), n)]
}

/// The scrape as Prometheus text.
pub fn encode(scrape: Scrape) -> Result<String, Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Copies the live state into a [`Scrape`] (blocking: takes the B2BUA's
/// and the media handler's locks briefly).
pub fn gather(state: &super::State) -> Scrape {
    let now = std::time::Instant::now();
    let (sip, guard) = state
        .observed
        .b2bua()
        .map(|b| {
            let b = lock(b);
            let sip = (
                b.counters,
                b.active_calls(),
                b.registrations_view(now).len(),
                b.gateways_view(),
            );
            (sip, (b.guard.counters, b.guard.bans(now)))
        })
        .unzip();
    let (media_sessions, draining) = {
        let h = lock(&state.ng.handler);
        (h.sessions.active(), h.draining)
    };
    Scrape {
        observed: state.observed.clone(),
        sip,
        guard,
        media_sessions,
        draining,
        ng_refused: state.ng.refused.load(std::sync::atomic::Ordering::Relaxed),
        ng_malformed: state
            .ng
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed),
        plane: state.samples.latest(),
        spool: state.spool.status(),
        archive: state.archive.as_ref().map(|a| lock(a).clone()),
    }
}
