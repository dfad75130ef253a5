//! The host's XDP forwarding floor as a system under test: Tollgate's
//! redirect-only program (`ebpf/src/bpf/ceiling.bpf.c`) attached to the
//! relay's veths, every UDP packet sent unchanged out of the partner
//! interface. No flows, no NG: what any XDP relay must pay on this host, so
//! Tollgate's cost can be stated as a ratio of it. Its packets keep their
//! original addresses and are not delivered; CPU is counted per packet sent.

use crate::cpu;
use crate::topology::Topology;
use aya::maps::{DevMapHash, MapData};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

pub struct Ceiling {
    /// Holds the program attached; dropping it detaches.
    _ebpf: Ebpf,
    pub napi: Vec<u32>,
}

impl Ceiling {
    /// Attaches the program to `topo`'s relay veths, NAPI threads on `cores`.
    pub fn attach(topo: &Topology, cores: &[usize]) -> anyhow::Result<Ceiling> {
        let (ra, rb) = (topo.ra.clone(), topo.rb.clone());
        let ebpf = Topology::run_in(&topo.relay, move || -> anyhow::Result<Ebpf> {
            let mut ebpf = Ebpf::load(tollgate_ebpf::CEILING_OBJECT)?;
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
        let napi = cpu::napi_threads(&[&topo.ra, &topo.rb]);
        for t in &napi {
            cpu::pin(*t, cores)?;
        }
        Ok(Ceiling { _ebpf: ebpf, napi })
    }

    /// CPU nanoseconds so far: (processes: none, NAPI threads).
    pub fn cpu_ns(&self) -> (u64, u64) {
        (0, self.napi.iter().map(|t| cpu::task_ns(*t)).sum())
    }
}
