//! The calls whose CDRs the spool took last, read back at start. A control
//! plane killed after a call's CDR was spooled but before the call-state
//! journal recorded its end would otherwise restore the call, and a BYE or
//! delete repeated to it would write a second CDR. The newest segments
//! hold those CDRs: a segment is removed only once a newer one exists and
//! every sink is past it, and the window is one sync long.

use super::{io_err, list_segments, segment, SpoolConfig, SpoolError};
use crate::model::Record;
use std::collections::BTreeSet;

/// Call ids of the CDRs in the spool's `segments` newest segments.
pub fn ended_calls(cfg: &SpoolConfig, segments: usize) -> Result<BTreeSet<String>, SpoolError> {
    let mut out = BTreeSet::new();
    for (first, path) in list_segments(&cfg.dir)?.into_iter().rev().take(segments) {
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        for found in segment::scan(&bytes, first).records {
            if let Ok(Record::Ended(cdr)) = serde_json::from_slice(found.payload(&bytes)) {
                out.insert(cdr.call_id);
            }
        }
    }
    Ok(out)
}
