//! `tollgate tune`: inspects a host for media work and explains what to
//! change (`report`), recommends where the node's threads and interrupts go
//! (`plan`), and changes what is safe to change at run time (`apply`), with
//! a revert file written first (`revert`).
//!
//! Probes read the host through [`host::Host`], a root directory standing
//! for `/`, so tests run them on fixture trees captured from real hosts.

pub mod apply;
pub mod ethtool;
pub mod host;
pub mod model;
pub mod plan;
pub mod probe;
pub mod report;
pub mod revert;
pub mod topology;
