//! SIP-side protocol cores of Tollgate: [`message`] (parsing and building
//! SIP messages), [`sdp`] (the session descriptions offer/answer rewriting
//! works on) and [`transaction`] (RFC 3261 transactions as sans-IO state
//! machines).

pub mod message;
pub mod sdp;
pub mod transaction;
