//! The IVR's menus from the binary: `tollgate ivr` reading tables shaped
//! as the seeds shape them (with their own `id` and `created_at` columns)
//! from real PostgreSQL and MariaDB, a bad row left out and named, an
//! edit seen on the next read, and a walk through a two-level menu with
//! the real engine; and the demo menus a fresh SQLite file is seeded with.
//! Then calls into the IVR: a real SIPp caller answered by the node itself,
//! hearing cached prompts (captured here, their tones checked by
//! Goertzel), walking two menus with an RFC 2833 digit from Debian
//! sip-tester's captures and a SIP INFO, and hung up by the IVR's BYE with
//! one CDR naming the walk; an edit of the menus heard by the next caller
//! without a restart; and a transfer bridged to a SIPp callee without a
//! re-INVITE.

use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_codec::Law;
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;
use tollgate_tests::peers;
use tollgate_tests::process::tollgate_bin;
use tollgate_tests::services::{self, Service};
use tollgate_tests::tone::goertzel;
use tollgate_tests::TempDir;

/// `tollgate ivr ARGS` with `[ivr] url = url`; its stdout.
fn ivr(dir: &TempDir, url: &str, args: &[&str]) -> String {
    let cfg = dir.0.join("tollgate.toml");
    std::fs::write(&cfg, format!("[ivr]\nurl = \"{url}\"\n")).unwrap();
    let out = Command::new(tollgate_bin())
        .arg("ivr")
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .output()
        .expect("run tollgate ivr");
    assert!(
        out.status.success(),
        "tollgate ivr {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn menus(dir: &TempDir, url: &str) -> Value {
    serde_json::from_str(&ivr(dir, url, &["menus", "--json"])).unwrap()
}

/// Two levels: main (1 sales, 2 a SIP URI, 5 a bad action), sales (1 the
/// sales queue, 9 back).
const ROWS: &[&str] = &[
    "INSERT INTO ivr_menus (menu_id, name, welcome_message) VALUES \
     ('main', 'Main', 'prompt:7'), ('sales', 'Sales', 'Sales. Press 1 to wait for an agent.')",
    "INSERT INTO ivr_menu_options (menu_id, digit, action_type, action_value) VALUES \
     ('main', '1', 'menu', 'sales'), ('main', '2', 'transfer', 'sip:desk@192.0.2.9:5060'), \
     ('main', '5', 'dance', 'tango'), ('sales', '1', 'queue', 'sales'), ('sales', '9', 'menu', 'main')",
];

/// The seeds' tables created anew by `create`, filled, read, edited, read
/// again, and walked.
async fn check_server(url: &str, create: [&str; 2]) {
    let dir = TempDir::new("ivr-db");
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for stmt in [
        "DROP TABLE IF EXISTS ivr_menu_options",
        "DROP TABLE IF EXISTS ivr_menus",
    ]
    .iter()
    .chain(&create)
    .chain(ROWS)
    {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    let m = menus(&dir, url);
    assert_eq!(
        m["left_out"],
        serde_json::json!([
            "ivr_menu_options \"main\" digit \"5\": action_type \"dance\": expected menu, transfer, queue, play or hangup"
        ])
    );
    // Not seeded: the tables had rows.
    let ids: Vec<&str> = m["menus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["main", "sales"]);
    assert_eq!(m["menus"][0]["welcome"], "prompt:7");
    assert_eq!(
        m["menus"][0]["options"]["2"],
        "transfer sip:desk@192.0.2.9:5060"
    );
    sqlx::query(
        "UPDATE ivr_menu_options SET action_type = 'hangup' WHERE menu_id = 'main' AND digit = '5'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let m = menus(&dir, url);
    assert_eq!(m["left_out"], serde_json::json!([]));
    assert_eq!(m["menus"][0]["options"]["5"], "hangup");
    let walk = ivr(&dir, url, &["walk", "main", "19711"]);
    assert!(
        walk.ends_with("then: queue sales\nmenus: main > sales > main > sales\n"),
        "{walk}"
    );
    assert!(
        walk.contains("presses: 7\nplays: Sorry, that is not a valid choice.\n"),
        "{walk}"
    );
}

#[tokio::test]
async fn menus_from_postgres() {
    sqlx::any::install_default_drivers();
    check_server(
        &services::url(Service::Postgres),
        [
            "CREATE TABLE ivr_menus (id SERIAL PRIMARY KEY, menu_id VARCHAR(50) UNIQUE NOT NULL, \
             name VARCHAR(100), welcome_message TEXT NOT NULL, created_at TIMESTAMP DEFAULT NOW())",
            "CREATE TABLE ivr_menu_options (id SERIAL PRIMARY KEY, \
             menu_id VARCHAR(50) REFERENCES ivr_menus(menu_id), digit VARCHAR(1) NOT NULL, \
             action_type VARCHAR(20) NOT NULL, action_value TEXT, created_at TIMESTAMP DEFAULT NOW())",
        ],
    )
    .await;
}

#[tokio::test]
async fn menus_from_mariadb() {
    sqlx::any::install_default_drivers();
    check_server(
        &services::url(Service::Mariadb),
        [
            "CREATE TABLE ivr_menus (id INT AUTO_INCREMENT PRIMARY KEY, menu_id VARCHAR(50) UNIQUE NOT NULL, \
             name VARCHAR(100), welcome_message TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)",
            "CREATE TABLE ivr_menu_options (id INT AUTO_INCREMENT PRIMARY KEY, \
             menu_id VARCHAR(50), digit VARCHAR(1) NOT NULL, action_type VARCHAR(20) NOT NULL, \
             action_value TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, \
             FOREIGN KEY (menu_id) REFERENCES ivr_menus(menu_id))",
        ],
    )
    .await;
}

#[test]
fn fresh_sqlite_gets_the_demo_menus() {
    let dir = TempDir::new("ivr-lite");
    let url = format!("sqlite://{}/ivr.sqlite", dir.0.display());
    let m = menus(&dir, &url);
    assert_eq!(m["left_out"], serde_json::json!([]));
    assert_eq!(m["menus"][1]["id"], "main");
    assert_eq!(m["menus"][1]["options"]["1"], "transfer 6000");
    let walk = ivr(&dir, &url, &["walk", "main", "3 1 9 t 0"]);
    assert!(
        walk.contains("plays: Your balance is zero.\n")
            && walk.contains("waits 5000 ms\nplays: Sorry, I did not hear a choice.\n")
            && walk.ends_with("then: transfer agent\nmenus: main > billing > main\n"),
        "{walk}"
    );
}

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/ivr");

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A 1 s sine of `hz` as an 8 kHz mono 16-bit WAV in `dir`.
fn tone_wav(dir: &TempDir, hz: f64) -> std::path::PathBuf {
    let path = dir.0.join(format!("tone-{hz}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create the prompt");
    for i in 0..8000 {
        let t = f64::from(i) / 8000.0;
        let v = 12000.0 * (2.0 * std::f64::consts::PI * hz * t).sin();
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().expect("write the prompt");
    path
}

/// Two menus with cached prompts: `walk` (prompt 7, 440 Hz) whose 1 leads
/// to `second` (prompt 8, 1 kHz), whose 5 hangs up; `walk`'s 2 transfers
/// to 6000 at `callee`.
async fn walk_menus(url: &str, callee: SocketAddr) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let schema: String = include_str!("../../controlplane/src/ivr/schema.sql")
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect();
    for stmt in schema.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    for stmt in [
        "INSERT INTO ivr_menus (menu_id, name, welcome_message) VALUES \
         ('walk', 'Walk', 'prompt:7'), ('second', 'Second', 'prompt:8')",
        "INSERT INTO ivr_menu_options (menu_id, digit, action_type, action_value) VALUES \
         ('walk', '1', 'menu', 'second'), ('second', '5', 'hangup', NULL)",
    ] {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    sqlx::query(&format!(
        "INSERT INTO ivr_menu_options (menu_id, digit, action_type, action_value) VALUES \
         ('walk', '2', 'transfer', 'sip:6000@{callee}')"
    ))
    .execute(&pool)
    .await
    .unwrap();
}

/// What reached `sock` until `done` is set, bounded to 30 s and 2,000 packets.
fn capture(sock: UdpSocket, done: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut got, end) = (Vec::new(), Instant::now() + Duration::from_secs(30));
    let mut buf = [0u8; 2048];
    while !done.load(std::sync::atomic::Ordering::Relaxed)
        && Instant::now() < end
        && got.len() < 2000
    {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

/// The CDRs in `path` once exactly `want` are there and no more came for 1.5 s.
fn ended_cdrs(path: &std::path::Path, want: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(20);
    let read = || -> Vec<Value> {
        tollgate_tests::cdrs::jsonl(path)
            .into_iter()
            .filter(|r| r["event"] == "call.ended")
            .collect()
    };
    while read().len() < want && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let got = read();
    assert_eq!(got.len(), want, "{got:?}");
    got
}

/// A node on SIP port `base` (57000 or 57050; NG 22560 or 22561, relay
/// ports from 57100 or 57200) whose 8000 is the IVR's `walk`, with
/// prompts 7 and 8 loaded. The caller's SIP is at `base` + 1, its media
/// `base` + 10, its audio captured at `base` + 30; a transfer's callee is
/// at `base` + 2, media `base` + 20.
struct IvrNode {
    dir: TempDir,
    tollgate: peers::Proc,
    sip: SocketAddr,
    base: u16,
    url: String,
}

impl IvrNode {
    fn start(base: u16) -> IvrNode {
        peers::require("sipp");
        let capture = "/usr/share/sip-tester/dtmf_2833_1.pcap";
        assert!(
            std::path::Path::new(capture).exists(),
            "{capture} is missing: install sip-tester (scripts/setup.sh does)"
        );
        let dir = TempDir::new("ivr-call");
        let url = format!("sqlite://{}/ivr.sqlite?mode=rwc", dir.0.display());
        sqlx::any::install_default_drivers();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(walk_menus(&url, addr(base + 2)));
        let (sip, n) = (addr(base), (base - 57000) / 50);
        let sections = format!(
            "[sip]\nlisten = \"{sip}\"\n[[sip.routes]]\nmatch = \"8000\"\ntarget = \"ivr:walk\"\n\
             [ivr]\nurl = \"{url}\"\nseed_demo = false\nreload_secs = 1\n\
             [cdr]\nspool_dir = \"{d}/spool\"\nsinks = [{{ kind = \"jsonl\", path = \"{d}/cdr.jsonl\" }}]\n",
            d = dir.0.display()
        );
        let ng = addr(22560 + n).to_string();
        let first = 57100 + n * 100;
        let (tollgate, ctl) =
            peers::tollgate_loopback(&dir.0, &ng, (first, first + 99), &[], &sections);
        let mut c = ControlClient::connect(&ctl).expect("the data plane's control socket");
        for (id, hz) in [(7, 440.0), (8, 1000.0)] {
            let path = tone_wav(&dir, hz);
            let r = c.request_typed(&Request::PromptLoad { id, path }).unwrap();
            assert!(r.is_ok(), "prompt_load {id}: {r:?}");
        }
        IvrNode {
            dir,
            tollgate,
            sip,
            base,
            url,
        }
    }

    /// SIPp calls 8000 with `scenario`, its audio at `base` + 30 captured
    /// here: its message log and the datagrams that reached that port.
    fn call(&self, scenario: &str) -> (String, Vec<Vec<u8>>) {
        let listen = addr(self.base + 30);
        let sock = UdpSocket::bind(listen).expect("bind the caller's audio port");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let capturing = {
            let done = done.clone();
            std::thread::spawn(move || capture(sock, done))
        };
        let scenario = format!("{SCENARIOS}/{scenario}");
        let port = listen.port().to_string();
        let args = ["-sf", &scenario, "-s", "8000", "-key", "listen_port", &port];
        let started = Instant::now();
        let (uac, uac_media) = (addr(self.base + 1), self.base + 10);
        let (rc, log) = peers::sipp_uac(None, &self.dir.0, uac, uac_media, self.sip, &args);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let heard = capturing.join().unwrap();
        assert_eq!(
            rc,
            0,
            "{scenario} failed (sipp exit {rc});\nuac errors: {}\nuac log: {log}\ntollgate: {}",
            std::fs::read_to_string(self.dir.0.join("uac_errors.log")).unwrap_or_default(),
            self.tollgate.log_text()
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{log}");
        (log, heard)
    }

    /// The last of `want` CDRs.
    fn cdr(&self, want: usize) -> Value {
        ended_cdrs(&self.dir.0.join("cdr.jsonl"), want).remove(want - 1)
    }

    /// Runs `sql` on the IVR's database.
    fn edit(&self, sql: &str) {
        let run = async {
            let pool = sqlx::AnyPool::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        };
        tokio::runtime::Runtime::new().unwrap().block_on(run);
    }
}

/// The tone of each loud PCMU packet in `heard`: `4` 440 Hz, `k` 1 kHz,
/// `?` neither.
fn tones(heard: &[Vec<u8>]) -> String {
    let audio: Vec<Vec<f64>> = heard
        .iter()
        .filter(|p| p.len() == 172 && p[1] & 0x7f == 0)
        .map(|p| {
            p[12..]
                .iter()
                .map(|&c| f64::from(Law::Pcmu.decode(c)))
                .collect()
        })
        .collect();
    let loud = |p: &&Vec<f64>| p.iter().map(|v| v * v).sum::<f64>() / 160.0 > 1e5;
    let tone_of = |p: &Vec<f64>| match (goertzel(p, 440.0), goertzel(p, 1000.0)) {
        (a, b) if a > 0.5 && b < 0.05 => '4',
        (a, b) if b > 0.5 && a < 0.05 => 'k',
        _ => '?',
    };
    audio.iter().filter(loud).map(tone_of).collect()
}

#[test]
fn a_caller_walks_the_ivr_by_rfc2833_and_info_and_the_ivr_hangs_up() {
    let n = IvrNode::start(57000);
    let (log, heard) = n.call("uac_menu_walk.xml");
    assert!(log.contains("BYE sip:"), "the IVR sent the BYE: {log}");
    // What the caller heard: the first menu's 440 Hz prompt, then the
    // second menu's 1 kHz one, a second (50 packets) of each.
    let tones = tones(&heard);
    let first = tones.find('k').unwrap_or(tones.len());
    assert!(
        (48..=51).contains(&tones[..first].matches('4').count())
            && (48..=51).contains(&tones[first..].matches('k').count())
            && !tones.contains('?'),
        "a second of 440 Hz, then a second of 1 kHz: {tones}"
    );
    let cdr = n.cdr(1);
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["trunk"], "ivr:walk", "{cdr}");
    assert_eq!(cdr["hangup_by"], "relay", "{cdr}");
    assert_eq!(
        cdr["sip_reason"], "IVR hangup; menus walk>second; digits 15",
        "{cdr}"
    );
    let node_log = n.tollgate.log_text();
    assert!(node_log.contains("call answered by the IVR"), "{node_log}");

    // An edit of the tables reaches the running node (`reload_secs = 1`):
    // the next caller hears the 1 kHz prompt in both menus.
    n.edit("UPDATE ivr_menus SET welcome_message = 'prompt:8' WHERE menu_id = 'walk'");
    std::thread::sleep(Duration::from_millis(2500));
    let (_, heard) = n.call("uac_menu_walk.xml");
    let edited = self::tones(&heard);
    assert!(
        (96..=102).contains(&edited.matches('k').count()) && !edited.contains(['4', '?']),
        "two seconds of 1 kHz: {edited}"
    );
    assert_eq!(n.cdr(2)["sip_reason"], cdr["sip_reason"]);
}

#[test]
fn the_ivr_transfers_a_caller_to_a_callee_without_a_reinvite() {
    let n = IvrNode::start(57050);
    let callee = addr(n.base + 2);
    let _uas = peers::sipp_uas(None, &n.dir.0, callee, n.base + 20);
    let (log, heard) = n.call("uac_transfer.xml");
    assert_eq!(log.matches("INVITE sip:").count(), 1, "no re-INVITE: {log}");
    // The first menu's prompt, then (once bridged) the caller's own
    // RFC 2833 capture echoed by the callee: 10 telephone-events.
    let tones = tones(&heard);
    assert!((48..=51).contains(&tones.matches('4').count()), "{tones}");
    let echoed = heard
        .iter()
        .filter(|p| p.len() > 12 && p[1] & 0x7f == 101)
        .count();
    assert_eq!(
        echoed, 10,
        "the capture's 10 packets came back through the bridge"
    );
    let uas_log = std::fs::read_to_string(n.dir.0.join("uas_messages.log")).unwrap_or_default();
    assert!(
        uas_log.contains("BYE sip:"),
        "the callee got our BYE: {uas_log}"
    );
    let cdr = n.cdr(1);
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["hangup_by"], "caller", "{cdr}");
    assert_eq!(
        cdr["sip_reason"],
        format!("IVR transfer to sip:6000@{callee}, caller hung up; menus walk; digits 2"),
        "{cdr}"
    );
    assert_eq!(cdr["legs"].as_array().map(Vec::len), Some(2), "{cdr}");
}
