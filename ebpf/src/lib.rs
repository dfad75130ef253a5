//! Tollgate's XDP program and the ABI it shares with user space.
//!
//! The program itself is C (`src/bpf/`), compiled by `build.rs` with clang;
//! [`OBJECT`] holds its bytes for the loader. [`abi`] mirrors the C structs of
//! `src/bpf/shared.h`, and [`host`] exposes the same headers compiled for the
//! host so tests check layouts and checksum arithmetic against the real C.

pub mod abi;
pub mod host;

/// The compiled XDP object (ELF, BPF target), aligned for the ELF parser.
pub static OBJECT: &[u8] = {
    #[repr(C, align(8))]
    struct Aligned<T: ?Sized>(T);
    static BYTES: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/tollgate.bpf.o")));
    &BYTES.0
};

/// Name of the XDP program's function in [`OBJECT`].
pub const PROGRAM: &str = "tollgate_relay";

/// Map names in [`OBJECT`], as pinned in the bpffs.
pub mod maps {
    pub const FLOWS: &str = "flows";
    pub const LEARNED: &str = "learned";
    pub const FLOW_STATS: &str = "flow_stats";
    pub const COUNTERS: &str = "counters";
    pub const TX_PORTS: &str = "tx_ports";
}
