//! SIP-side protocol cores of Tollgate: [`message`] (parsing and building
//! SIP messages), [`headers`] and [`view`] (a message's header list and the
//! typed view of it, parsed once), [`method`], [`sdp`] (the session
//! descriptions offer/answer rewriting works on) and [`sdes`] (their
//! `a=crypto` lines), [`transaction`] and
//! [`dialog`] (RFC 3261 transactions and dialogs as sans-IO state machines)
//! and [`digest`] (digest authentication).

pub mod dialog;
pub mod digest;
pub mod headers;
mod lex;
pub mod message;
pub mod method;
pub mod sdes;
pub mod sdp;
pub mod transaction;
pub mod view;
