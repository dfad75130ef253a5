//! Tollgate's audio codecs, as one small leaf crate (no workspace
//! dependencies) so the data plane's media endpoints and transcoder and
//! the recording archive's WAV writer share one implementation: G.711
//! ([`g711`]), G.722 ([`g722`]), G.729 ([`g729`], over bcg729), Opus (over
//! libopus), one encoder and decoder type over all of them ([`coder`]),
//! and sample-rate conversion ([`resample`]).

pub mod coder;
pub mod g711;
pub mod g722;
pub mod g729;
pub mod resample;

pub use coder::{Codec, Decoder, Encoder};
pub use g711::Law;
pub use resample::Resampler;
