//! SIP-side protocol cores of Tollgate: [`message`] (parsing and building
//! SIP messages), [`sdp`] (the session descriptions offer/answer rewriting
//! works on), [`transaction`] (RFC 3261 transactions as sans-IO state
//! machines) and [`digest`] (digest authentication).

pub mod digest;
pub mod message;
pub mod sdp;
pub mod transaction;
