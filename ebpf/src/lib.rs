//! Tollgate's XDP program and the ABI it shares with user space.
//!
//! The program itself is C (`src/bpf/`), compiled by `build.rs` with clang;
//! [`OBJECT`] holds its bytes for the loader. [`abi`] mirrors the C structs of
//! `src/bpf/shared.h`, and [`host`] exposes the same headers compiled for the
//! host so tests check layouts and checksum arithmetic against the real C.

pub mod abi;
pub mod host;

/// The bytes of a BPF object compiled into OUT_DIR, 8-byte aligned for the ELF parser.
macro_rules! bpf_object {
    ($file:literal) => {{
        #[repr(C, align(8))]
        struct Aligned<T: ?Sized>(T);
        static BYTES: &Aligned<[u8]> =
            &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/", $file)));
        &BYTES.0
    }};
}

/// The compiled XDP relay (ELF, BPF target).
pub static OBJECT: &[u8] = bpf_object!("tollgate.bpf.o");

/// Name of the XDP program's function in [`OBJECT`].
pub const PROGRAM: &str = "tollgate_relay";

/// The benchmark's redirect-only program (`src/bpf/ceiling.bpf.c`): what XDP
/// forwarding costs on a host with no relay work at all.
pub static CEILING_OBJECT: &[u8] = bpf_object!("ceiling.bpf.o");

/// Name of the ceiling program's function, and its partner-interface map.
pub const CEILING_PROGRAM: &str = "tollgate_ceiling";
pub const CEILING_MAP: &str = "partner";
/// The ceiling's per-CPU packet counts by outcome, indexed by [`CeilingOutcome`].
pub const CEILING_OUTCOMES: &str = "outcomes";
/// The ceiling's load-time switch that passes every packet (for the
/// benchmark's tests that it refuses a floor that does not forward).
pub const CEILING_PASS_ALL: &str = "pass_all";

/// Indexes of the ceiling's `outcomes` map (`enum floor_outcome` in C).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum CeilingOutcome {
    Redirected = 0,
    /// Not UDP, or `pass_all` set.
    Passed = 1,
    /// Arrived on an interface without a partner.
    NoPartner = 2,
}

/// Map names in [`OBJECT`], as pinned in the bpffs.
pub mod maps {
    pub const FLOWS: &str = "flows";
    pub const LEARNED: &str = "learned";
    pub const FLOW_STATS: &str = "flow_stats";
    /// Per-flow RTP/RTCP quality (`struct tg_flow_quality`), shared, locked.
    pub const FLOW_QUALITY: &str = "flow_quality";
    pub const COUNTERS: &str = "counters";
    pub const TX_PORTS: &str = "tx_ports";
    pub const HAIRPIN_REDIRECT: &str = "hairpin_redirect";
    /// The pipeline workers' AF_XDP sockets (XSKMAP).
    pub const XSKS: &str = "xsks";
    /// Ingress ifindex -> the index of its rx queue 0 in `xsks`.
    pub const XSK_BASE: &str = "xsk_base";
}
