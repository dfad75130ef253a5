//! rtpengine's NG control protocol, as spoken by Kamailio's and OpenSIPS's
//! rtpengine modules: each message is `<cookie> <bencoded dictionary>` (or
//! `<cookie> <JSON object>`), the reply carries the same cookie and format.
//!
//! [`bencode`] and [`json`] are the codecs, [`message`] the framing (also over TCP streams,
//! where messages are only delimited by their own syntax), and [`client`] a
//! blocking UDP client used by `tollgate ctl`, the tests and the benchmarks
//! (against Tollgate or rtpengine alike).

pub mod bencode;
pub mod client;
pub mod json;
pub mod message;

pub use bencode::{BencodeError, Value};
pub use message::{Format, Message, MessageError};
