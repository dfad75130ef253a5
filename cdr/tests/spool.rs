//! The spool on a real file system: order, restart, damage, bounds and
//! per-sink retention.

mod common;

use common::rec;
use std::path::Path;
use tollgate_cdr::spool::{inspect, Fsync, Spool, SpoolConfig, SpoolError};

fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 4096,
        ..SpoolConfig::new(dir)
    }
}

fn sinks(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Appends one at a time, so each is its own group and small segments
/// roll at their size (a group is written whole into one segment).
async fn append_all(spool: &Spool, range: std::ops::Range<u64>) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in range {
        seqs.push(spool.append(&rec(i)).durable().await.expect("appended"));
    }
    seqs
}

async fn read_ids(spool: &Spool, sink: &str, n: usize) -> Vec<(u64, String)> {
    let mut r = spool.reader(sink);
    let mut out = Vec::new();
    while out.len() < n {
        let batch = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            r.next_batch(64, std::time::Duration::ZERO),
        )
        .await
        .expect("records arrive")
        .expect("read");
        out.extend(batch.into_iter().map(|(s, r)| (s, r.call_id().to_string())));
    }
    out
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn records_come_back_in_order_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, repairs) = Spool::open(cfg(dir.path()), &sinks(&["db"])).unwrap();
        assert!(repairs.is_empty());
        let seqs = append_all(&spool, 0..300).await;
        assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
        assert!(segment_files(dir.path()).len() > 3, "small segments roll");
        let got = read_ids(&spool, "db", 120).await;
        assert_eq!(got[0], (1, "call-0".to_string()));
        assert_eq!(got[119], (120, "call-119".to_string()));
        spool.commit("db", 120, 120).unwrap();
    }
    let (spool, repairs) = Spool::open(cfg(dir.path()), &sinks(&["db"])).unwrap();
    assert!(repairs.is_empty(), "{repairs:?}");
    assert_eq!(spool.last_seq(), 300);
    let got = read_ids(&spool, "db", 180).await;
    assert_eq!(
        got.first().unwrap().0,
        121,
        "the reader resumes after its cursor"
    );
    assert_eq!(got.last().unwrap(), &(300, "call-299".to_string()));
    assert_eq!(append_all(&spool, 300..301).await, [301]);
    let st = spool.status();
    assert_eq!(st.sinks[0].lag, 181);
    assert_eq!(st.sinks[0].delivered, 120);
}

#[tokio::test]
async fn a_segment_goes_only_once_every_sink_has_taken_it() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(dir.path()), &sinks(&["fast", "slow"])).unwrap();
    append_all(&spool, 0..300).await;
    let before = segment_files(dir.path());
    spool.commit("fast", 300, 300).unwrap();
    assert_eq!(segment_files(dir.path()), before, "slow has taken nothing");
    spool.commit("slow", 150, 150).unwrap();
    let after = segment_files(dir.path());
    assert!(after.len() < before.len() && !after.is_empty());
    // What is left still holds everything after slow's cursor.
    let got = read_ids(&spool, "slow", 150).await;
    assert_eq!(got.first().unwrap().0, 151);
    spool.commit("slow", 300, 150).unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "the active segment stays"
    );
    let st = spool.status();
    assert_eq!(st.depth, 0);
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_reported_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = Spool::open(SpoolConfig::new(dir.path()), &sinks(&["db"])).unwrap();
        append_all(&spool, 0..10).await;
    }
    let seg = dir.path().join(&segment_files(dir.path())[0]);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (spool, repairs) = Spool::open(SpoolConfig::new(dir.path()), &sinks(&["db"])).unwrap();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert!(repairs[0].contains("cut short"), "{}", repairs[0]);
    assert!(repairs[0].contains("kept records 1..=9"), "{}", repairs[0]);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.contains(".damaged-").then_some(n)
        })
        .collect();
    assert_eq!(aside.len(), 1);
    let got = read_ids(&spool, "db", 9).await;
    assert_eq!(got.last().unwrap(), &(9, "call-8".to_string()));
    assert_eq!(append_all(&spool, 100..101).await, [10]);
    assert_eq!(read_ids(&spool, "db", 10).await[9].1, "call-100");
}

#[tokio::test]
async fn a_corrupt_record_keeps_the_ones_before_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = Spool::open(SpoolConfig::new(dir.path()), &sinks(&["db"])).unwrap();
        append_all(&spool, 0..10).await;
    }
    let seg = dir.path().join(&segment_files(dir.path())[0]);
    let mut bytes = std::fs::read(&seg).unwrap();
    let third = bytes.windows(6).position(|w| w == b"call-2").unwrap();
    bytes[third] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    let (spool, repairs) = Spool::open(SpoolConfig::new(dir.path()), &sinks(&["db"])).unwrap();
    assert!(
        repairs[0].contains("checksum mismatch in record 3"),
        "{repairs:?}"
    );
    assert!(repairs[0].contains("kept records 1..=2"), "{repairs:?}");
    assert_eq!(spool.last_seq(), 2);
    let got = read_ids(&spool, "db", 2).await;
    assert_eq!(got[1].1, "call-1");
}

#[tokio::test]
async fn the_bound_refuses_records_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig {
        max_bytes: 2000,
        ..cfg(dir.path())
    };
    let (spool, _) = Spool::open(c, &sinks(&["db"])).unwrap();
    let mut refused = None;
    for i in 0..100 {
        if let Err(e) = spool.append(&rec(i)).durable().await {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("the bound is reached");
    assert!(i > 5, "records fit until the bound");
    assert!(matches!(e, SpoolError::Full { .. }));
    assert!(e.to_string().contains("spool is full"), "{e}");
    assert!(spool.status().alarm);
    // Once the sink catches up, there is room again.
    spool.commit("db", spool.last_seq(), i).unwrap();
    drop(spool);
    let c = SpoolConfig {
        max_bytes: 2000,
        ..cfg(dir.path())
    };
    let st = inspect(&c, &sinks(&["db"])).unwrap();
    assert_eq!(st.sinks[0].lag, 0);
}

#[test]
fn concurrent_appends_get_distinct_contiguous_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig {
        fsync: Fsync::Always,
        ..cfg(dir.path())
    };
    let (spool, _) = Spool::open(c, &sinks(&["db"])).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut seqs: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let spool = &spool;
                let rt = &rt;
                s.spawn(move || {
                    (0..250)
                        .map(|i| {
                            rt.block_on(spool.append(&rec(t * 1000 + i)).durable())
                                .unwrap()
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    seqs.sort();
    assert_eq!(seqs, (1..=1000).collect::<Vec<u64>>());
}
