use super::*;
use crate::envelope::Kek;
use crate::retrieve::fetch_audio;
use crate::store::StoreConfig;
use crate::synth::{tone_level, ToneRecording};
use chrono::TimeZone;

struct Node {
    _dir: tempfile::TempDir,
    spool: PathBuf,
    objects: PathBuf,
    db: String,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    Node {
        spool: dir.path().join("spool"),
        objects: dir.path().join("objects"),
        db: format!("sqlite://{}", dir.path().join("cdr.sqlite").display()),
        _dir: dir,
    }
}

fn keyring() -> Keyring {
    Keyring::new(vec![("k1".into(), Kek::new([3; 32]))], "k1").unwrap()
}

fn settings(n: &Node, watermark: usize) -> QueueSettings {
    QueueSettings {
        spool: n.spool.clone(),
        layout: Layout::PerLeg,
        retention: Retention::default(),
        watermark,
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
        poll: Duration::from_millis(10),
        concurrency: 3,
    }
}

fn uploader(n: &Node, store: &StoreConfig, watermark: usize) -> Uploader {
    let target = CatalogTarget {
        kind: SinkKind::Sqlite,
        url: n.db.clone(),
    };
    Uploader::new(
        settings(n, watermark),
        keyring(),
        Store::open(store).unwrap(),
        target,
        vec![],
    )
    .unwrap()
}

fn local(n: &Node) -> StoreConfig {
    StoreConfig::Local {
        path: n.objects.clone(),
    }
}

fn rec(id: &str) -> ToneRecording {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 20, 0, 0).unwrap();
    ToneRecording::two_legs(id, &format!("call-{id}@host"), t0, 2)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

const NEVER: fn() -> bool = || false;

#[tokio::test]
async fn recordings_are_sealed_stored_cataloged_and_leave_the_spool() {
    let n = node();
    rec("r1").write(&n.spool).unwrap();
    rec("r2").write(&n.spool).unwrap();
    let mut up = uploader(&n, &local(&n), 100);
    assert_eq!(up.pass(&NEVER).await, Duration::from_millis(10));
    let st = up.status().lock().unwrap().clone();
    assert_eq!(
        (st.archived, st.failed, st.last_error.clone()),
        (2, 0, None)
    );
    assert!(files_under(&n.spool.join("ready")).is_empty());
    assert_eq!(
        files_under(&n.objects).len(),
        6,
        "WAV, description and capture per recording"
    );
    assert_eq!(ArchiveStatus::read(&n.spool).unwrap().archived, 2);

    let catalog = Catalog::connect(SinkKind::Sqlite, &n.db).await.unwrap();
    let row = catalog.by_call("call-r1@host").await.unwrap().remove(0);
    assert_eq!(row.object_key, "_/2026/12/01/call-r1@host/r1/audio.wav.tge");
    let started = Utc.with_ymd_and_hms(2026, 12, 1, 20, 0, 0).unwrap();
    let url = crate::store::recording_url(&local(&n), None, "call-r1@host", "r1", started);
    assert_eq!(row.url, url, "the URL a CDR was given at call end");
    assert_eq!(
        (row.duration_ms, row.codec.as_deref(), row.key_id.as_deref()),
        (2000, Some("PCMA,PCMU"), Some("k1"))
    );
    assert_eq!(
        row.retention_until,
        row.started_at + chrono::Duration::days(90)
    );
    let stored = std::fs::read(n.objects.join(&row.object_key)).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&stored)), row.sha256);
    assert_eq!(stored.len() as i64, row.size);
    let store = Store::open(&local(&n)).unwrap();
    let wav = fetch_audio(&store, &keyring(), &row).await.unwrap();
    let mut r = hound::WavReader::new(&wav[..]).unwrap();
    let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = s.iter().step_by(2).copied().collect();
    assert!(tone_level(&left, 440.0) > 0.9);
}

#[tokio::test]
async fn a_crash_between_steps_resumes_without_storing_anything_twice() {
    let n = node();
    let dir = rec("r1").write(&n.spool).unwrap();
    let mut up = uploader(&n, &local(&n), 100);
    // Seal and store the first object by hand, as a killed run would have.
    let meta = RecordingMeta::read(&dir).unwrap();
    let step = seal(&dir, &meta, &keyring(), Layout::PerLeg)
        .await
        .ok()
        .unwrap();
    let mut j = Journal::open(&dir).unwrap();
    j.record(step.clone()).unwrap();
    let Step::Sealed { objects, .. } = &step else {
        panic!()
    };
    let prefix = "_/2026/12/01/call-r1@host/r1/";
    let uploads = Uploads {
        store: Store::open(&local(&n)).unwrap(),
        keyring: keyring(),
        layout: Layout::PerLeg,
    };
    uploads
        .upload(&dir, prefix, &objects[0])
        .await
        .ok()
        .unwrap();
    // ...and the second one stored, its journal line lost.
    uploads
        .upload(&dir, prefix, &objects[1])
        .await
        .ok()
        .unwrap();
    j.record(Step::Stored {
        name: objects[0].name.clone(),
    })
    .unwrap();
    let before = std::fs::metadata(n.objects.join(prefix).join(&objects[1].name))
        .unwrap()
        .modified()
        .unwrap();

    up.pass(&NEVER).await;
    assert_eq!(up.status().lock().unwrap().archived, 1);
    let stored = files_under(&n.objects);
    assert_eq!(stored.len(), 3);
    for o in objects {
        let bytes = std::fs::read(n.objects.join(prefix).join(&o.name)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            o.sha256,
            "{} is the sealed one",
            o.name
        );
    }
    let after = std::fs::metadata(n.objects.join(prefix).join(&objects[1].name))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        before, after,
        "an object already in the store is not put again"
    );
}

/// More recordings than the concurrency: each sealed, stored and
/// cataloged once, and the pass ends with the spool empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_stored_several_at_once_are_each_archived_once() {
    let n = node();
    let ids: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    for id in &ids {
        rec(id).write(&n.spool).unwrap();
    }
    let mut up = uploader(&n, &local(&n), 100);
    up.pass(&NEVER).await;
    let st = up.status().lock().unwrap().clone();
    assert_eq!((st.archived, st.failed, st.last_error), (8, 0, None));
    assert!(files_under(&n.spool.join("ready")).is_empty());
    assert_eq!(files_under(&n.objects).len(), 3 * ids.len());
    let catalog = Catalog::connect(SinkKind::Sqlite, &n.db).await.unwrap();
    for id in &ids {
        let rows = catalog.by_call(&format!("call-{id}@host")).await.unwrap();
        assert_eq!(rows.len(), 1, "{id}: one row");
        let stored = std::fs::read(n.objects.join(&rows[0].object_key)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&stored)), rows[0].sha256, "{id}");
    }
}

#[tokio::test]
async fn a_broken_recording_goes_to_failed_with_its_reason() {
    let n = node();
    let dir = rec("bad").write(&n.spool).unwrap();
    std::fs::write(dir.join("rtp.pcap"), b"garbage").unwrap();
    rec("good").write(&n.spool).unwrap();
    let mut up = uploader(&n, &local(&n), 100);
    up.pass(&NEVER).await;
    let st = up.status().lock().unwrap().clone();
    assert_eq!((st.archived, st.failed), (1, 1));
    let why = std::fs::read_to_string(n.spool.join("failed/bad/error.txt")).unwrap();
    assert!(why.contains("rtp.pcap") && why.contains("pcap"), "{why}");
    assert!(st.last_error.unwrap().contains("bad"));
}

#[tokio::test]
async fn an_unreachable_store_backs_off_flags_above_the_watermark_and_catches_up() {
    let n = node();
    for id in ["r1", "r2", "r3"] {
        rec(id).write(&n.spool).unwrap();
    }
    let down = StoreConfig::S3 {
        bucket: "b".into(),
        endpoint: Some("http://127.0.0.1:9".into()),
        region: "us-east-1".into(),
        access_key_id: Some("a".into()),
        secret_access_key: Some("s".into()),
        virtual_hosted: false,
    };
    let mut up = uploader(&n, &down, 2);
    let waits = [
        up.pass(&NEVER).await,
        up.pass(&NEVER).await,
        up.pass(&NEVER).await,
        up.pass(&NEVER).await,
    ];
    assert_eq!(waits.map(|w| w.as_millis()), [10, 20, 40, 40]);
    let st = up.status().lock().unwrap().clone();
    assert!(
        st.over_watermark && st.depth == 3 && st.flagged == 3 && st.archived == 0,
        "{st:?}"
    );
    assert!(st.last_error.unwrap().contains("127.0.0.1:9"));

    let mut up = uploader(&n, &local(&n), 2);
    up.pass(&NEVER).await;
    let st = up.status().lock().unwrap().clone();
    assert_eq!(
        (st.archived, st.flagged),
        (3, 0),
        "flags are journaled once, not again"
    );
    assert_eq!(files_under(&n.objects).len(), 9);
}

#[test]
fn backoff_doubles_up_to_its_ceiling() {
    let (a, b) = (Duration::from_secs(1), Duration::from_secs(60));
    let got: Vec<u64> = (1..=8).map(|f| backoff(a, b, f).as_secs()).collect();
    assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(backoff(a, b, u32::MAX), b);
}
