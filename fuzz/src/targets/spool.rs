//! The CDR spool as it is read back from disk: a segment file's bytes
//! scanned in memory, and a whole spool directory opened (repaired) and
//! read by a sink, with a corrupted or truncated segment or cursor file.
//!
//! Properties: a scan's good records are the segment's framed records from
//! its start, back to back, re-encoding to the same bytes, and bytes left
//! over are reported as damage where they start; opening a damaged spool
//! reports the damage, keeps every good record (a sink reads them all, in
//! order) and goes on appending after them.

use std::path::Path;
use std::time::Duration;
use tollgate_cdr::model::Record;
use tollgate_cdr::spool::{segment, Fsync, Spool, SpoolConfig};

pub const TOKENS: &[&[u8]] = &[
    b"TGSPOOL1",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x01",
    b"\x01\x00\x00\x00\x00\x00\x00\x00",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"{\"delivered_seq\":",
    b"18446744073709551615",
    b"18446744073709551616",
    b"\"delivered\":",
    b"\"last_error\":\"",
    b"\"failing_since_ms\":-9223372036854775808",
    b"{\"type\":\"started\"",
    b"\"call_id\":\"",
];

/// The sequence number the segment's first record carries, as the file
/// name would give it; 1 without a whole record header.
fn first_seq(data: &[u8]) -> u64 {
    data.get(16..24)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(1)
}

pub fn segment(data: &[u8]) {
    let first = first_seq(data);
    let scan = segment::scan(data, first);
    match &scan.damage {
        None => assert_eq!(scan.good_len, data.len(), "{scan:?}"),
        Some((at, _)) => assert_eq!(*at, scan.good_len, "{scan:?}"),
    }
    if scan.good_len == 0 {
        assert!(scan.records.is_empty());
        return;
    }
    let mut again = segment::MAGIC.to_vec();
    for (i, r) in scan.records.iter().enumerate() {
        assert_eq!(
            r.offset,
            again.len(),
            "record {i} is not where the last one ended"
        );
        assert_eq!(r.seq, first + i as u64);
        segment::encode(r.seq, r.payload(data), &mut again);
    }
    assert_eq!(again, &data[..scan.good_len], "re-encoded records differ");
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        fsync: Fsync::Never,
        ..SpoolConfig::new(dir)
    }
}

/// `data` as the spool's only segment, from record `first_seq(data)`.
pub fn spool(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = first_seq(data).max(1);
    std::fs::write(dir.path().join(segment::file_name(first)), data).expect("segment written");
    let scan = segment::scan(data, first);
    let good: Vec<(u64, Record)> = scan
        .records
        .iter()
        .map_while(|r| Some((r.seq, serde_json::from_slice(r.payload(data)).ok()?)))
        .collect();
    let (spool, repairs) = match Spool::open(config(dir.path()), &["db".to_string()]) {
        Ok(s) => s,
        Err(e) => panic!(
            "a spool with segment {} does not open: {e}",
            crate::show(data)
        ),
    };
    assert_eq!(
        repairs.is_empty(),
        scan.damage.is_none(),
        "damage {:?} and repairs {repairs:?} disagree",
        scan.damage
    );
    if good.len() == scan.records.len() {
        assert_eq!(
            read(&spool, good.len()),
            good,
            "the good records of {}",
            crate::show(data)
        );
    }
    let rec = Record::Started(Default::default());
    let seq = spool.append(&rec).wait().expect("an append after repair");
    if let Some(last) = scan.last_seq() {
        assert_eq!(
            seq,
            last + 1,
            "the append after the records of {}",
            crate::show(data)
        );
    }
}

/// The first `n` records a sink reads.
fn read(spool: &Spool, n: usize) -> Vec<(u64, Record)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let mut r = spool.reader("db");
    let mut out = Vec::new();
    while out.len() < n {
        let batch = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), r.next_batch(n, Duration::ZERO)).await
            })
            .expect("the records arrive")
            .expect("the records read");
        out.extend(batch);
    }
    out
}

/// `data` as the sink's cursor file beside a spool of one record.
pub fn cursor(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut seg = segment::MAGIC.to_vec();
    let payload = serde_json::to_vec(&Record::Started(Default::default())).expect("a record");
    segment::encode(1, &payload, &mut seg);
    std::fs::write(dir.path().join(segment::file_name(1)), &seg).expect("segment written");
    std::fs::create_dir_all(dir.path().join("cursors")).expect("cursor directory");
    std::fs::write(dir.path().join("cursors/db.json"), data).expect("cursor written");
    // A cursor that does not read is refused by name; one that does must
    // leave a spool that appends.
    if let Ok((spool, _)) = Spool::open(config(dir.path()), &["db".to_string()]) {
        let seq = spool.append(&Record::Started(Default::default())).wait();
        assert!(
            seq.is_ok(),
            "append with cursor {}: {seq:?}",
            crate::show(data)
        );
    }
}
