//! Tollgate's benchmarks: call capacity of a media relay measured from the
//! outside, the same way for Tollgate and for rtpengine.
//!
//! [`topology`] builds the namespaces and veths; the rest of `tollgate bench
//! media` arrives here piece by piece: systems under test started and driven
//! over NG, an RTP load generator and receivers, and reports.

pub mod topology;
