//! What the spool tests share: a small, numbered call record.

use tollgate_cdr::model::{CallStart, Record};

/// Record `i`: a call start whose Call-ID and time say which it is.
pub fn rec(i: u64) -> Record {
    Record::Started(CallStart {
        call_id: format!("call-{i}"),
        at_ms: i as i64,
        from_number: "100".into(),
        to_number: "200".into(),
        ..CallStart::default()
    })
}
