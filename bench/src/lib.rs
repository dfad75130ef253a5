//! Tollgate's benchmarks: call capacity of a media relay measured from the
//! outside, the same way for Tollgate and for rtpengine.
//!
//! [`topology`] builds namespaces and veths, [`sut`] starts the system under
//! test ([`ceiling`] is the host's redirect-only floor) and [`cpu`] accounts
//! its CPU, [`guard`] refuses figures whose accounting preconditions fail,
//! [`traffic`] generates and receives the
//! RTP, [`measure`] turns arrivals into loss, latency and jitter, [`media`]
//! runs single, ramped and compared benchmarks, and [`report`] prints, saves
//! and plots them. Systems under test are driven only through NG and RTP.
//! [`sip`] measures call setup through a SIP B2BUA or proxy with SIPp, and
//! [`peers`] starts Kamailio and rtpengine for it and for the tests.
//! [`stamp`] says what every report was measured with (commit, build,
//! kernel, CPU, pinning). [`cdr`] is the exception to measuring from the
//! outside: a spool has no network face, so it drives Tollgate's CDR
//! library in-process (spool and PostgreSQL sink) against PostgreSQL's own
//! floor; the library itself carries no benchmark code.

pub mod archive;
pub mod cdr;
pub mod ceiling;
pub mod cpu;
pub mod guard;
pub mod measure;
pub mod media;
pub mod peers;
pub mod report;
pub mod sip;
pub mod stamp;
pub mod sut;
pub mod topology;
pub mod traffic;
