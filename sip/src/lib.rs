//! SIP-side protocol pieces of Tollgate. Today: [`sdp`], the session
//! descriptions that offer/answer rewriting works on.

pub mod sdp;
