//! The DPDK backend: ports given wholly to user space, polled by workers
//! pinned to cores, for relay flows and flows with pipeline stages alike
//! (there is no kernel fast path beside DPDK).
//!
//! The sans-IO parts are always built and tested: [`neighbour`] (ARP and
//! neighbour discovery, next hops, packets held for resolution) and
//! [`relay`] (classification, source rules, the header rewrite). The rest
//! needs the `dpdk` feature (DPDK's libraries on the host).

pub mod neighbour;
pub mod relay;
