//! rtpengine's NG control protocol, as spoken by Kamailio's and OpenSIPS's
//! rtpengine modules: each message is `<cookie> <bencoded dictionary>`, the
//! reply carries the same cookie.
//!
//! [`bencode`] is the codec, [`message`] the framing (also over TCP streams,
//! where messages are only delimited by their own syntax), and [`client`] a
//! blocking UDP client used by `tollgate ctl`, the tests and the benchmarks
//! (against Tollgate or rtpengine alike).

pub mod bencode;
pub mod client;
pub mod message;

pub use bencode::{BencodeError, Value};
pub use message::{Message, MessageError};
