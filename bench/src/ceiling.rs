//! The host's XDP forwarding floor as a system under test: Tollgate's
//! redirect-only program (`ebpf/src/bpf/ceiling.bpf.c`) attached to the
//! relay's veths, every UDP packet sent unchanged out of the partner
//! interface. No flows, no NG: what any XDP relay must pay on this host, so
//! Tollgate's cost can be stated as a ratio of it. Tollgate's program has
//! its per-flow RTP/RTCP quality tracking always on, so the ratio includes it. Its packets keep their
//! original addresses and are not delivered to a socket; what proves it
//! forwarded them is its own count of redirects and the far side's
//! interfaces' count of packets received ([`FloorCounts`]).

use crate::cpu::{self, Counted};
use crate::guard::FloorCounts;
use crate::topology::{self, Topology};
use aya::maps::{DevMapHash, MapData, PerCpuArray};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use tollgate_ebpf::CeilingOutcome;

pub struct Ceiling {
    /// Holds the program attached; dropping it detaches.
    ebpf: Ebpf,
    pub counted: Counted,
    /// The end hosts' namespace and interface: where its packets arrive.
    far_side: [(String, String); 2],
}

impl Ceiling {
    /// Attaches the program to `topo`'s relay veths, NAPI threads on `cores`.
    /// `pass_all` loads it passing every packet to the kernel instead: a
    /// floor that does not forward, for the tests that the benchmark refuses it.
    pub fn attach(topo: &Topology, cores: &[usize], pass_all: bool) -> anyhow::Result<Ceiling> {
        let (ra, rb) = (topo.ra.clone(), topo.rb.clone());
        let ebpf = Topology::run_in(&topo.relay, move || -> anyhow::Result<Ebpf> {
            let mut ebpf = EbpfLoader::new()
                .override_global(tollgate_ebpf::CEILING_PASS_ALL, &u32::from(pass_all), true)
                .load(tollgate_ebpf::CEILING_OBJECT)?;
            let prog: &mut Xdp = ebpf
                .program_mut(tollgate_ebpf::CEILING_PROGRAM)
                .ok_or_else(|| anyhow::anyhow!("no ceiling program in the object"))?
                .try_into()?;
            prog.load()?;
            for ifname in [&ra, &rb] {
                prog.attach(ifname, XdpMode::Driver)?;
            }
            let index = |n: &str| {
                tollgate_dataplane::backend::ifindex(n)
                    .ok_or_else(|| anyhow::anyhow!("no interface {n}"))
            };
            let (a, b) = (index(&ra)?, index(&rb)?);
            let map = ebpf
                .map_mut(tollgate_ebpf::CEILING_MAP)
                .ok_or_else(|| anyhow::anyhow!("no partner map"))?;
            let mut partner: DevMapHash<&mut MapData> = DevMapHash::try_from(map)?;
            partner.insert(a, b, None, 0)?;
            partner.insert(b, a, None, 0)?;
            Ok(ebpf)
        })?;
        let napi_threads = cpu::pin_napi_threads(&[&topo.ra, &topo.rb], cores)?;
        Ok(Ceiling {
            ebpf,
            counted: Counted {
                processes: Vec::new(),
                napi_threads,
            },
            far_side: [
                (topo.caller.clone(), topo.ca.clone()),
                (topo.callee.clone(), topo.eb.clone()),
            ],
        })
    }

    /// What the floor did so far: its counts, summed over CPUs, and the far
    /// side's received packets.
    pub fn counts(&self) -> anyhow::Result<FloorCounts> {
        let map = self
            .ebpf
            .map(tollgate_ebpf::CEILING_OUTCOMES)
            .ok_or_else(|| anyhow::anyhow!("no outcomes map in the ceiling"))?;
        let outcomes: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        let sum = |o: CeilingOutcome| -> anyhow::Result<u64> {
            Ok(outcomes.get(&(o as u32), 0)?.iter().sum())
        };
        let mut far_side_rx = 0;
        for (ns, ifname) in &self.far_side {
            far_side_rx += topology::rx_packets(ns, ifname)
                .ok_or_else(|| anyhow::anyhow!("no packet counters for {ifname} in {ns}"))?;
        }
        Ok(FloorCounts {
            redirected: sum(CeilingOutcome::Redirected)?,
            passed: sum(CeilingOutcome::Passed)?,
            no_partner: sum(CeilingOutcome::NoPartner)?,
            far_side_rx,
        })
    }
}
