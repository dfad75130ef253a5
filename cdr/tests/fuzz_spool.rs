//! Spool directories that fuzzing (fuzz/, targets `spool` and
//! `spool_cursor`) found to break the spool at open, kept as regressions.

use tollgate_cdr::spool::{segment, Spool, SpoolConfig};

fn sinks() -> Vec<String> {
    vec!["db".to_string()]
}

/// A cursor file claiming record 2^64-1 made the next sequence number
/// overflow; it is now refused, naming the file and the number.
#[test]
fn a_cursor_beyond_the_sequence_limit_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cursors")).unwrap();
    let path = dir.path().join("cursors/db.json");
    std::fs::write(
        &path,
        r#"{"delivered_seq":18446744073709551615,"delivered":1}"#,
    )
    .unwrap();
    let err = match Spool::open(SpoolConfig::new(dir.path()), &sinks()) {
        Ok(_) => panic!("a spool with an impossible cursor opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("delivered_seq 18446744073709551615 is beyond the limit 9223372036854775807"),
        "{err}"
    );
}

/// A segment whose record is numbered 2^64-1 overflowed the scan; it is
/// now damage: reported, moved aside, and the spool opens and appends.
#[test]
fn a_segment_numbered_beyond_the_limit_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = segment::MAGIC.to_vec();
    segment::encode(u64::MAX, b"{}", &mut seg);
    std::fs::write(dir.path().join(segment::file_name(u64::MAX)), &seg).unwrap();
    let (spool, repairs) = Spool::open(SpoolConfig::new(dir.path()), &sinks()).unwrap();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert!(
        repairs[0].contains("record 18446744073709551615 is numbered beyond the limit"),
        "{repairs:?}"
    );
    let rec = tollgate_cdr::model::Record::Answered {
        call_id: "c".into(),
        at_ms: 1,
    };
    assert_eq!(spool.append(&rec).wait().unwrap(), 1);
}
