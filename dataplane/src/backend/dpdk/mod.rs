//! The DPDK backend: ports given wholly to user space, polled by workers
//! pinned to cores, for relay flows and flows with pipeline stages alike
//! (there is no kernel fast path beside DPDK).
//!
//! - Start-up: the EAL from `[dataplane.dpdk]` (memory options, lcores,
//!   `--vdev` per virtual port, extra arguments), one mbuf pool per worker,
//!   then every port, each with one receive and one transmit queue per
//!   worker. A port's receive queues are all polled by one worker (ports
//!   are dealt round robin), so the packets of a flow, matched on its
//!   `local` address, always meet the same worker and its pipeline state;
//!   any worker transmits on its own queue of any port.
//! - Neighbours: DPDK takes the port from the kernel, so the node answers
//!   ARP and neighbour solicitations for the port's addresses and resolves
//!   next hops itself (on-link, else the port's gateway), holding packets
//!   until the answer comes (bounded, counted when dropped). A port's table
//!   is written by its polling worker and published by RCU-style swap to
//!   the workers that send through it.
//! - Flows: the control thread sends each worker its flows by message; a
//!   flow with stages also gets a pipeline slot. Counters are per flow and
//!   per worker, one writer each, summed on read.
//! - Polling adapts: after a few hundred empty polls a worker sleeps, for
//!   5 us doubling up to `max_sleep_us`, and spins again once packets come.
//!
//! The sans-IO parts are always built and tested: [`neighbour`] (ARP and
//! neighbour discovery, next hops, packets held for resolution) and
//! [`relay`] (classification, source rules, the header rewrite). The rest
//! needs the `dpdk` feature (DPDK's libraries on the host; `dpdk-sys/`).
//!
//! Not yet: RSS across several workers for one port (one core per port),
//! IPv4 options and IPv6 extension headers (dropped, counted), multi-segment
//! mbufs (dropped, counted), hardware checksum offload (checksums are
//! updated in software, incrementally).

pub mod neighbour;
pub mod relay;

#[cfg(feature = "dpdk")]
mod eal;
#[cfg(feature = "dpdk")]
mod shared;
#[cfg(feature = "dpdk")]
mod worker;

#[cfg(feature = "dpdk")]
pub use backend::DpdkBackend;

#[cfg(feature = "dpdk")]
mod backend {
    //! The control thread's side: EAL and ports at start, flows to workers
    //! by message, counters summed on read.

    use super::eal::{Eal, Pool, Port};
    use super::neighbour::Interface;
    use super::relay::Policy;
    use super::shared::{FlowStats, PortCtx, WorkerStats};
    use super::worker::{Message, Worker, WorkerFlow};
    use crate::backend::{Backend, BackendError, FlowCounters, WorkerReport, EVENT_QUEUE};
    use crate::config::{parse_prefix, DpdkConfig};
    use crate::flow::{Flow, FlowError};
    use crate::pipeline::{Event, Pipeline, PipelineFlow, Slot};
    use arc_swap::ArcSwap;
    use crossbeam_channel::{Receiver, Sender};
    use std::collections::HashMap;
    use std::net::{IpAddr, SocketAddr};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    struct WorkerHandle {
        tx: Sender<Message>,
        stats: Arc<WorkerStats>,
        core: usize,
        thread: Option<JoinHandle<()>>,
        /// Pipeline slots free for reuse, and the next new one.
        free_slots: Vec<Slot>,
        next_slot: Slot,
    }

    struct Installed {
        worker: usize,
        stats: Arc<FlowStats>,
        slot: Option<Slot>,
    }

    pub struct DpdkBackend {
        workers: Vec<WorkerHandle>,
        flows: HashMap<SocketAddr, Installed>,
        /// Learned-source holders by local address, so a flow can follow
        /// another installed before or after it.
        shared: HashMap<SocketAddr, Arc<FlowStats>>,
        ctx: Arc<[PortCtx]>,
        events: Receiver<Event>,
        // Dropped in this order, after the workers stopped (Drop below).
        ports: Vec<Port>,
        _pools: Vec<Arc<Pool>>,
        _eal: Eal,
    }

    /// The port name DPDK gives a vdev: the driver instance before the options.
    fn port_name(p: &crate::config::DpdkPort) -> String {
        match (&p.vdev, &p.device) {
            (Some(v), _) => v.split(',').next().unwrap_or_default().to_string(),
            (None, Some(d)) => d.clone(),
            (None, None) => String::new(),
        }
    }

    impl DpdkBackend {
        /// Starts the EAL, one worker per core in `cores`, and every port of
        /// `cfg` (validated before), each polled by one worker.
        pub fn start(cfg: &DpdkConfig, cores: &[usize]) -> Result<Self, BackendError> {
            let first = *cores.first().unwrap_or(&0);
            let args = cfg.eal_args(first);
            tracing::info!(args = %args.join(" "), "starting DPDK's EAL");
            let eal = Eal::init(&args)?;
            let n = cores.len().max(1);
            let mut pools = Vec::new();
            for w in 0..n {
                pools.push(Arc::new(Pool::new(&format!("tg_pool_{w}"), cfg.mbufs)?));
            }
            let mut ports = Vec::new();
            let mut ctx = Vec::new();
            for (i, p) in cfg.ports.iter().enumerate() {
                let name = port_name(p);
                let id = Port::find(&name).map_err(|e| {
                    BackendError::Other(format!("dataplane.dpdk.ports[{i}] ({}): {e}", p.name))
                })?;
                let poller = i % n;
                let port =
                    Port::start(id, n as u16, cfg.descriptors, &pools[poller]).map_err(|e| {
                        BackendError::Other(format!("dataplane.dpdk.ports[{i}] ({}): {e}", p.name))
                    })?;
                let addresses = p
                    .addresses
                    .iter()
                    .map(|a| parse_prefix(a).map_err(BackendError::Other))
                    .collect::<Result<Vec<_>, _>>()?;
                let m = port.mac;
                tracing::info!(
                    port = %p.name,
                    id,
                    mac = %format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]),
                    addresses = %p.addresses.join(","),
                    worker = poller,
                    "DPDK port started"
                );
                ctx.push(PortCtx {
                    id,
                    rx_queues: port.queues,
                    name: p.name.clone(),
                    iface: Interface {
                        mac: port.mac,
                        addresses,
                        gateways: p.gateways.clone(),
                    },
                    poller,
                    neighbours: ArcSwap::from_pointee(Default::default()),
                });
                ports.push(port);
            }
            let ctx: Arc<[PortCtx]> = ctx.into();
            let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
            let mut workers = Vec::new();
            for (index, &core) in cores.iter().enumerate() {
                let (tx, inbox) = crossbeam_channel::unbounded();
                let stats = Arc::new(WorkerStats::default());
                let w = Worker {
                    index,
                    ports: ctx.clone(),
                    inbox,
                    stats: stats.clone(),
                    pool: pools[index].clone(),
                    pipeline: Pipeline::new(events_tx.clone()),
                    burst: cfg.burst as usize,
                    max_sleep_ns: cfg.max_sleep_us as u64 * 1000,
                };
                let thread = std::thread::Builder::new()
                    .name(format!("tg-dpdk-{core}"))
                    .spawn(move || {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            tracing::warn!(core, "could not pin the DPDK worker to its core");
                        }
                        w.run()
                    })
                    .map_err(|e| BackendError::Other(format!("spawning a DPDK worker: {e}")))?;
                tracing::info!(core, worker = index, "DPDK worker started");
                workers.push(WorkerHandle {
                    tx,
                    stats,
                    core,
                    thread: Some(thread),
                    free_slots: Vec::new(),
                    next_slot: 0,
                });
            }
            Ok(DpdkBackend {
                workers,
                flows: HashMap::new(),
                shared: HashMap::new(),
                ctx,
                events,
                ports,
                _pools: pools,
                _eal: eal,
            })
        }

        fn port_owning(&self, ip: IpAddr) -> Option<usize> {
            self.ctx.iter().position(|p| p.iface.owns(ip))
        }

        fn shared_for(&mut self, local: SocketAddr) -> Arc<FlowStats> {
            self.shared.entry(local).or_default().clone()
        }
    }

    impl Backend for DpdkBackend {
        fn name(&self) -> &'static str {
            "dpdk"
        }

        fn put(&mut self, flow: &Flow, previous: Option<&Flow>) -> Result<(), BackendError> {
            let not_ours = |field: &str, ip: IpAddr| {
                BackendError::Other(format!(
                    "flow {}: `{field}` {ip} is not an address of a DPDK port (dataplane.dpdk.ports[].addresses)",
                    flow.local
                ))
            };
            let ingress = self
                .port_owning(flow.local.ip())
                .ok_or_else(|| not_ours("local", flow.local.ip()))?;
            let egress = match &flow.egress {
                Some(name) => self
                    .ctx
                    .iter()
                    .position(|p| &p.name == name)
                    .ok_or_else(|| FlowError::NoSuchInterface {
                        local: flow.local,
                        name: name.clone(),
                    })?,
                None => self
                    .port_owning(flow.source.ip())
                    .ok_or_else(|| not_ours("source", flow.source.ip()))?,
            };
            let worker = self.ctx[ingress].poller;
            let stats = self.shared_for(flow.local);
            if previous.is_some() {
                stats.learned.store(None);
            }
            let follow = flow.follow.map(|f| self.shared_for(f));
            let old_slot = self.flows.get(&flow.local).and_then(|i| i.slot);
            let (slot, pipeline) = if flow.stages.is_empty() {
                if let Some(s) = old_slot {
                    self.workers[worker].free_slots.push(s);
                }
                (None, None)
            } else {
                let w = &mut self.workers[worker];
                let s = old_slot.unwrap_or_else(|| {
                    w.free_slots.pop().unwrap_or_else(|| {
                        w.next_slot += 1;
                        w.next_slot - 1
                    })
                });
                (Some(s), Some(PipelineFlow::new(flow)))
            };
            let wf = WorkerFlow {
                local: flow.local,
                source: flow.source,
                destination: flow.destination,
                policy: Policy {
                    learn: flow.learn,
                    strict: flow.strict,
                    expect: flow.expect,
                },
                stats: stats.clone(),
                follow,
                egress,
                slot,
                tracker: crate::quality::RtpTracker::new(flow.clock_rate),
            };
            let _ = self.workers[worker].tx.send(Message::Put {
                flow: Box::new(wf),
                pipeline,
            });
            self.flows.insert(
                flow.local,
                Installed {
                    worker,
                    stats,
                    slot,
                },
            );
            Ok(())
        }

        fn remove(&mut self, flow: &Flow) -> Result<(), BackendError> {
            if let Some(i) = self.flows.remove(&flow.local) {
                let w = &mut self.workers[i.worker];
                let _ = w.tx.send(Message::Remove { local: flow.local });
                if let Some(s) = i.slot {
                    w.free_slots.push(s);
                }
            }
            // A new flow on this address starts with fresh counters.
            self.shared.remove(&flow.local);
            Ok(())
        }

        fn flow_counters(&self, flow: &Flow) -> FlowCounters {
            self.flows
                .get(&flow.local)
                .map_or_else(FlowCounters::default, |i| i.stats.counters())
        }

        fn counters(&self) -> Vec<(String, u64)> {
            let mut totals =
                crate::backend::stats::sum_by_name(self.workers.iter().map(|w| w.stats.named()));
            for (p, port) in self.ctx.iter().zip(&self.ports) {
                if let Some((_, _, missed)) = port.stats() {
                    totals.push((format!("port_{}_rx_missed", p.name), missed));
                }
                totals.push((
                    format!("port_{}_neighbours", p.name),
                    p.neighbours.load().len() as u64,
                ));
            }
            totals.push(("flows".into(), self.flows.len() as u64));
            totals.push(("workers".into(), self.workers.len() as u64));
            totals.push(("ports".into(), self.ports.len() as u64));
            totals
        }

        fn adopted(&self) -> Vec<Flow> {
            Vec::new()
        }

        fn workers(&self) -> Vec<WorkerReport> {
            self.workers
                .iter()
                .enumerate()
                .map(|(worker, w)| {
                    let s = &w.stats;
                    let named = s.named();
                    WorkerReport {
                        worker,
                        core: w.core,
                        flows: s.flows.get() as usize,
                        rx_packets: s.rx.get(),
                        tx_packets: s.tx.get(),
                        rx_bytes: s.rx_bytes.get(),
                        tx_bytes: s.tx_bytes.get(),
                        busy_ns: s.busy_ns.get(),
                        uptime_ns: s.uptime_ns.get(),
                        drops: named
                            .into_iter()
                            .filter(|(n, _)| n.starts_with("drop_"))
                            .map(|(n, v)| (n.trim_start_matches("drop_").into(), v))
                            .collect(),
                        pipeline: s.pipeline.load(),
                    }
                })
                .collect()
        }

        fn take_events(&mut self) -> Vec<Event> {
            self.events.try_iter().collect()
        }
    }

    impl Drop for DpdkBackend {
        fn drop(&mut self) {
            for w in &self.workers {
                let _ = w.tx.send(Message::Stop);
            }
            for w in &mut self.workers {
                if let Some(t) = w.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// The whole backend in this process on DPDK's null driver (no device, no
/// namespace): EAL start, pools, a port, a worker that receives what the
/// driver makes up and counts it, flows put and removed, and a clean stop.
/// EAL starts once per process, so this is the only test that starts it.
#[cfg(all(test, feature = "dpdk"))]
mod tests {
    use super::DpdkBackend;
    use crate::backend::Backend;
    use crate::config::{DpdkConfig, DpdkPort};
    use crate::flow::Flow;
    use std::time::{Duration, Instant};

    #[test]
    fn starts_polls_takes_flows_and_stops_on_the_null_driver() {
        let cfg = DpdkConfig {
            no_huge: true,
            memory_mb: 128,
            mbufs: 2047,
            ports: vec![DpdkPort {
                name: "null".into(),
                vdev: Some("net_null0".into()),
                device: None,
                addresses: vec!["10.9.0.1/24".into()],
                gateways: vec![],
            }],
            ..Default::default()
        };
        let mut b = DpdkBackend::start(&cfg, &[0]).expect("DPDK on net_null");
        let deadline = Instant::now() + Duration::from_secs(5);
        let rx = |b: &DpdkBackend| b.workers()[0].rx_packets;
        while rx(&b) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(rx(&b) > 0, "the worker polls the port: {:?}", b.counters());
        let f = Flow {
            learn: true,
            stages: vec![crate::pipeline::StageSpec::Null],
            ..Flow::relay(
                "10.9.0.1:30000".parse().unwrap(),
                "10.9.0.1:30002".parse().unwrap(),
                "10.9.0.2:4000".parse().unwrap(),
            )
        };
        b.put(&f, None).expect("a flow on the port's address");
        let mut other = f.clone();
        other.local = "10.9.9.9:30000".parse().unwrap();
        let e = b.put(&other, None).unwrap_err().to_string();
        assert!(e.contains("not an address of a DPDK port"), "{e}");
        let c = b.counters();
        assert!(c.iter().any(|(n, v)| n == "flows" && *v == 1), "{c:?}");
        b.remove(&f).expect("remove");
        assert_eq!(b.flow_counters(&f), Default::default());
        drop(b);
        let e = DpdkBackend::start(&cfg, &[0])
            .err()
            .expect("EAL once per process");
        assert!(e.to_string().contains("once per process"), "{e}");
    }
}
