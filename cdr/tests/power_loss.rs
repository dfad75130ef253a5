//! The spool across power losses: its writer runs on a simulated disk
//! that keeps only what was synced, the power is cut at every operation
//! of a run in turn, and the spool reopened on what is left must hold
//! every record it acknowledged, and nothing it did not write.
//!
//! With `fsync = always` nothing acknowledged may be lost; `interval`
//! loses at most what it had not synced yet; `never` loses everything not
//! synced by the kernel, which these tests assert as the documented cost.
//! A write that fails halfway (a full disk) must leave nothing behind
//! either.

mod sim_disk;

mod common;

use common::rec;
use sim_disk::{SimDisk, Torn};
use std::path::Path;
use std::time::{Duration, Instant};
use tollgate_cdr::model::Record;
use tollgate_cdr::spool::{segment, Fsync, Spool, SpoolConfig, SpoolError};

/// Small segments, so runs roll over several of them.
fn cfg(dir: &Path, fsync: Fsync) -> SpoolConfig {
    SpoolConfig {
        fsync,
        segment_bytes: 600,
        ..SpoolConfig::new(dir)
    }
}

fn sinks() -> Vec<String> {
    vec!["db".to_string()]
}

/// Appends records `0..n` one after another until one is refused; the
/// sequence numbers acknowledged.
fn append_until_refused(spool: &Spool, n: u64) -> Vec<u64> {
    let mut acked = Vec::new();
    for i in 0..n {
        match spool.append(&rec(i)).wait() {
            Ok(seq) => acked.push(seq),
            Err(_) => break,
        }
    }
    acked
}

/// Reopens the spool on the real disk after the power came back: every
/// record it then holds, read through its own recovery and reader. It
/// must take a new record after the last one, too.
fn reboot_and_read(dir: &Path) -> Vec<(u64, Record)> {
    let (spool, _repairs) = Spool::open(cfg(dir, Fsync::Always), &sinks())
        .unwrap_or_else(|e| panic!("the spool reopens after a power loss: {e}"));
    let last = spool.last_seq();
    let next = spool.append(&rec(1_000_000)).wait().expect("appends go on");
    assert_eq!(next, last + 1, "the next record follows the survivors");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut reader = spool.reader("db");
    let mut out = Vec::new();
    rt.block_on(async {
        while out.last().map_or(0, |(s, _)| *s) < next {
            let batch = tokio::time::timeout(
                Duration::from_secs(5),
                reader.next_batch(256, Duration::ZERO),
            )
            .await
            .expect("every record up to the newest is readable")
            .expect("the reopened spool reads cleanly");
            out.extend(batch);
        }
    });
    assert_eq!(out.pop().map(|(_, r)| r), Some(rec(1_000_000)));
    out
}

/// What a sequential run left: records in order, each the one appended
/// with its number, every acknowledged one among them, and at most the
/// one in flight at the cut beyond them.
fn check_sequential(what: &str, acked: &[u64], got: &[(u64, Record)]) {
    assert_eq!(
        acked,
        (1..=acked.len() as u64).collect::<Vec<_>>(),
        "{what}: acknowledgements in order"
    );
    for (k, (seq, r)) in got.iter().enumerate() {
        assert_eq!(*seq, k as u64 + 1, "{what}: records in order");
        assert_eq!(
            r,
            &rec(seq - 1),
            "{what}: record {seq} is what was appended"
        );
    }
    assert!(
        got.len() >= acked.len(),
        "{what}: acknowledged records {}..={} lost",
        got.len() + 1,
        acked.len()
    );
    assert!(
        got.len() <= acked.len() + 1,
        "{what}: {} records came back but only {} were acknowledged",
        got.len(),
        acked.len()
    );
}

/// Every way a power loss can tear the unsynced tail: not at all, inside
/// a record header, inside a payload, the whole tail, and garbage.
const TORN: [Torn; 5] = [
    Torn::Nothing,
    Torn::Prefix(1),
    Torn::Prefix(segment::HEADER + 3),
    Torn::Prefix(1 << 20),
    Torn::Scrambled(segment::HEADER + 3),
];

/// Most operations a run of these tests makes: bounds every loop.
const MAX_OPS: usize = 2_000;

#[test]
fn fsync_always_keeps_every_acknowledged_record_whenever_the_power_goes() {
    const RECORDS: u64 = 20;
    for torn in TORN {
        let mut cut = 0;
        loop {
            assert!(cut < MAX_OPS, "a run of {RECORDS} records ends");
            let what = format!("power cut before operation {cut}, {torn:?}");
            let dir = tempfile::tempdir().unwrap();
            let disk = SimDisk::cut_before_op(cut, torn);
            let acked = match Spool::open_on(disk.clone(), cfg(dir.path(), Fsync::Always), &sinks())
            {
                Ok((spool, _)) => append_until_refused(&spool, RECORDS),
                Err(_) => Vec::new(),
            };
            // Dropping the spool stops its writer (its last sync fails once
            // the power is off).
            if disk.is_powered() {
                assert_eq!(acked.len() as u64, RECORDS, "{what}: a powered run");
                assert!(cut > RECORDS as usize * 2, "the run reached every point");
                break;
            }
            check_sequential(&what, &acked, &reboot_and_read(dir.path()));
            cut += 1;
        }
    }
}

#[test]
fn fsync_always_keeps_every_acknowledged_group_of_concurrent_appends() {
    const THREADS: u64 = 4;
    const EACH: u64 = 15;
    for cut in (0..).step_by(3) {
        assert!(cut < MAX_OPS, "a run ends");
        let dir = tempfile::tempdir().unwrap();
        let torn = TORN[cut / 3 % TORN.len()];
        let disk = SimDisk::cut_before_op(cut, torn);
        let Ok((spool, _)) = Spool::open_on(disk.clone(), cfg(dir.path(), Fsync::Always), &sinks())
        else {
            check_sequential("cut while opening", &[], &reboot_and_read(dir.path()));
            continue;
        };
        // Each thread's acknowledged (sequence number, record index).
        let acked: Vec<(u64, u64)> = std::thread::scope(|s| {
            let spool = &spool;
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for i in t * 1000..t * 1000 + EACH {
                            match spool.append(&rec(i)).wait() {
                                Ok(seq) => mine.push((seq, i)),
                                Err(_) => break,
                            }
                        }
                        mine
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        drop(spool);
        let powered = disk.is_powered();
        let got = reboot_and_read(dir.path());
        for (k, (seq, _)) in got.iter().enumerate() {
            assert_eq!(*seq, k as u64 + 1, "cut {cut}, {torn:?}: records in order");
        }
        for (seq, i) in &acked {
            assert_eq!(
                got.get(*seq as usize - 1).map(|(_, r)| r),
                Some(&rec(*i)),
                "cut {cut}, {torn:?}: acknowledged record {seq} (record {i})"
            );
        }
        for (seq, r) in &got {
            let i: u64 = r.call_id()["call-".len()..].parse().unwrap();
            assert!(
                r == &rec(i) && i % 1000 < EACH && i / 1000 < THREADS,
                "cut {cut}, {torn:?}: record {seq} was never appended: {r:?}"
            );
        }
        let mut ids: Vec<&str> = got.iter().map(|(_, r)| r.call_id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), got.len(), "cut {cut}, {torn:?}: a record twice");
        if powered {
            assert_eq!(acked.len() as u64, THREADS * EACH);
            break;
        }
    }
}

/// Waits until the writer has synced all it wrote.
fn wait_synced(disk: &SimDisk, within: Duration) {
    let end = Instant::now() + within;
    while disk.unsynced() > 0 {
        assert!(Instant::now() < end, "no sync within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn fsync_interval_keeps_what_it_synced_and_loses_what_it_had_not() {
    // Synced by the interval: every record acknowledged before survives.
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::default();
    let every = Fsync::Interval(Duration::from_millis(20));
    let (spool, _) = Spool::open_on(disk.clone(), cfg(dir.path(), every), &sinks()).unwrap();
    let acked = append_until_refused(&spool, 10);
    wait_synced(&disk, Duration::from_secs(10));
    disk.cut_power(Torn::Nothing);
    drop(spool);
    check_sequential("interval, synced", &acked, &reboot_and_read(dir.path()));

    // Acknowledged once written: a power cut before the interval is up
    // loses those records, as documented (a crash of the process alone
    // would not, the kernel has them). One segment: rolling over to the
    // next one syncs the last.
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::default();
    let hour = SpoolConfig {
        segment_bytes: 1 << 20,
        ..cfg(dir.path(), Fsync::Interval(Duration::from_secs(3600)))
    };
    let (spool, _) = Spool::open_on(disk.clone(), hour, &sinks()).unwrap();
    assert_eq!(append_until_refused(&spool, 10).len(), 10);
    assert!(disk.unsynced() > 0, "nothing synced within the hour");
    disk.cut_power(Torn::Nothing);
    drop(spool);
    assert!(
        reboot_and_read(dir.path()).is_empty(),
        "records not yet synced are lost"
    );
}

#[test]
fn fsync_always_syncs_lazy_appends_with_the_next_awaited_one_or_soon() {
    let one_segment = |dir: &Path| SpoolConfig {
        segment_bytes: 1 << 20,
        ..cfg(dir, Fsync::Always)
    };
    // Lazy appends are written soon, not synced: lost if the power goes first.
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::default();
    let hour = SpoolConfig {
        lazy_sync: Duration::from_secs(3600),
        ..one_segment(dir.path())
    };
    let (spool, _) = Spool::open_on(disk.clone(), hour, &sinks()).unwrap();
    for i in 0..3 {
        spool.append_lazy(&rec(i));
    }
    let end = Instant::now() + Duration::from_secs(10);
    while spool.last_seq() < 3 {
        assert!(
            Instant::now() < end,
            "lazy appends are written within LAZY_WRITE"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        disk.unsynced() > 0,
        "a lazy append is not synced on its own"
    );
    disk.cut_power(Torn::Nothing);
    drop(spool);
    assert!(reboot_and_read(dir.path()).is_empty());

    // An awaited append syncs every lazy one before it.
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::default();
    let (spool, _) = Spool::open_on(disk.clone(), one_segment(dir.path()), &sinks()).unwrap();
    for i in 0..3 {
        spool.append_lazy(&rec(i));
    }
    let last = spool.append(&rec(3)).wait().expect("durable");
    assert_eq!(last, 4, "the lazy appends came first");
    assert_eq!(
        disk.unsynced(),
        0,
        "the awaited append synced the lazy ones"
    );
    disk.cut_power(Torn::Nothing);
    drop(spool);
    check_sequential(
        "lazy then awaited",
        &[1, 2, 3, 4],
        &reboot_and_read(dir.path()),
    );

    // With nothing awaited after them, the writer syncs them within its bound.
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::default();
    let (spool, _) = Spool::open_on(disk.clone(), one_segment(dir.path()), &sinks()).unwrap();
    for i in 0..3 {
        spool.append_lazy(&rec(i));
    }
    while spool.last_seq() < 3 {
        std::thread::sleep(Duration::from_millis(2));
    }
    wait_synced(&disk, Duration::from_secs(10));
    disk.cut_power(Torn::Nothing);
    drop(spool);
    check_sequential(
        "lazy, synced soon",
        &[1, 2, 3],
        &reboot_and_read(dir.path()),
    );
}

#[test]
fn fsync_never_loses_every_unsynced_record_on_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::default();
    let (spool, _) = Spool::open_on(disk.clone(), cfg(dir.path(), Fsync::Never), &sinks()).unwrap();
    assert_eq!(append_until_refused(&spool, 10).len(), 10);
    let ops = disk.ops();
    disk.cut_power(Torn::Prefix(1 << 20));
    drop(spool);
    // Not even a segment's directory entry was synced.
    assert!(ops > 10, "the writer used the disk");
    assert!(reboot_and_read(dir.path()).is_empty());
}

#[test]
fn a_write_failing_halfway_leaves_no_trace_and_its_record_goes_next() {
    // In a segment the writer created and in one it continued after a
    // restart (opened for appending).
    for restarted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        if restarted {
            let (spool, _) = Spool::open(cfg(dir.path(), Fsync::Always), &sinks()).unwrap();
            assert_eq!(append_until_refused(&spool, 1), [1]);
        }
        let disk = SimDisk::default();
        let (spool, _) =
            Spool::open_on(disk.clone(), cfg(dir.path(), Fsync::Always), &sinks()).unwrap();
        let first = spool.last_seq() + 1;
        let ok = |i: u64| spool.append(&rec(i)).wait().expect("a record taken");
        assert_eq!(ok(first - 1), first);
        disk.fail_next_write(segment::HEADER + 5);
        let held = spool.append(&rec(999)).wait();
        assert!(
            matches!(held, Err(SpoolError::Held(ref why)) if why.contains("os error 28")),
            "a failed write is held, not acknowledged as durable: {held:?}"
        );
        // The held record is written first when the next one comes, right
        // after the last good one: the torn write left nothing behind.
        assert_eq!(ok(first), first + 2);
        assert_eq!(ok(first + 1), first + 3);
        assert_eq!(spool.status().held_records, 0);
        drop(spool);
        let got = reboot_and_read(dir.path());
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (1..=first + 3).collect::<Vec<_>>(),
            "restarted {restarted}"
        );
        let ids: Vec<&str> = got.iter().map(|(_, r)| r.call_id()).collect();
        let want: Vec<Record> = (0..first).chain([999, first, first + 1]).map(rec).collect();
        let want: Vec<&str> = want.iter().map(Record::call_id).collect();
        assert_eq!(
            ids, want,
            "restarted {restarted}: the held record before newer ones"
        );
    }
}

#[test]
fn a_full_disk_holds_records_in_order_refuses_calls_at_half_and_writes_all_when_freed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::default();
    let small = SpoolConfig {
        hold_bytes: 4000,
        ..cfg(dir.path(), Fsync::Always)
    };
    let (spool, _) = Spool::open_on(disk.clone(), small, &sinks()).unwrap();
    assert_eq!(spool.append(&rec(0)).wait().unwrap(), 1);
    disk.set_full(true);
    let mut held = 0u64;
    let mut lost = None;
    for i in 1..1000 {
        match spool.append(&rec(i)).wait() {
            Err(SpoolError::Held(why)) => {
                assert!(why.contains("No space left on device"), "{why}");
                assert!(why.contains(&dir.path().display().to_string()), "{why}");
                held += 1;
            }
            Err(SpoolError::WriteFailed(why)) => {
                assert!(why.contains("memory hold is full"), "{why}");
                lost = Some(i);
                break;
            }
            other => panic!("record {i} on a full disk: {other:?}"),
        }
        let st = spool.status();
        assert_eq!(st.held_records, held);
        assert_eq!(st.refusing_calls, st.held_bytes * 2 >= 4000, "{st:?}");
    }
    assert!(lost.is_some() && held > 4, "the hold fills: {held} held");
    assert!(spool.refusing_calls(), "a full hold refuses new calls");
    assert_eq!(spool.last_seq(), 1, "nothing written while full");
    // Freed, the writer writes the held records by itself within its retry
    // period, with no new record to prompt it.
    disk.set_full(false);
    let end = Instant::now() + Duration::from_secs(3);
    while spool.status().held_records > 0 {
        assert!(Instant::now() < end, "held records not written once freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(spool.last_seq(), 1 + held);
    let next = spool.append(&rec(5000)).wait().expect("space is back");
    assert_eq!(next, 2 + held, "the held records went first");
    let st = spool.status();
    assert_eq!((st.held_records, st.refusing_calls), (0, false), "{st:?}");
    drop(spool);
    let got = reboot_and_read(dir.path());
    let ids: Vec<String> = got.iter().map(|(_, r)| r.call_id().to_string()).collect();
    let want: Vec<String> = (0..=held)
        .chain([5000])
        .map(|i| rec(i).call_id().to_string())
        .collect();
    assert_eq!(ids, want, "every held record, in order");
}
