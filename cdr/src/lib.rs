//! Tollgate's CDR pipeline: the call record model, a durable spool every
//! record passes through, and the sinks that take records from it (SQL
//! databases, AMQP, Redis, JSON lines), each at its own pace.

pub mod config;
pub mod export;
pub mod model;
pub mod quality;
pub mod sink;
pub mod spool;
