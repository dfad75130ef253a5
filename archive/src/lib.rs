//! Tollgate's recording archive: what a closed recording is on disk
//! ([`meta`]), and how it travels from the node that recorded it to the
//! archive.
//!
//! # The hand-off directory
//!
//! The recorder and the archive meet in one directory, the archive's spool
//! (`[archive] spool`). A recording being written lives in
//! `<spool>/open/<recording-id>/`; when it closes, its directory holds the
//! packet capture(s) and a `recording.json` ([`meta::RecordingMeta`]), and the
//! whole directory is renamed (atomically, same file system) into
//! `<spool>/ready/<recording-id>/`. Everything under `ready/` belongs to the
//! archive from then on; nothing under `open/` is ever touched by it.

pub mod capture;
pub mod catalog;
pub mod envelope;
pub mod events;
pub mod journal;
pub mod meta;
pub mod queue;
pub mod render;
pub mod retention;
pub mod retrieve;
pub mod status;
pub mod store;
pub mod synth;
