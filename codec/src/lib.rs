//! Tollgate's audio codecs, as one small leaf crate (no workspace
//! dependencies) so the data plane's media endpoints and the recording
//! archive's WAV writer share one implementation.
//!
//! Only G.711 for now ([`g711`]).

pub mod g711;

pub use g711::Law;
