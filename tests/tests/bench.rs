//! `tollgate bench media` in its short form: Tollgate's XDP and socket
//! backends and rtpengine, each set up over NG and loaded with a few calls
//! for a couple of seconds, and the redirect-only XDP floor. Checks that the
//! benchmark works and that its accounting holds (the NAPI threads counted,
//! the relay core's busy time not below what was counted, costs per packet
//! within plausible bounds, the floor shown forwarding, every report
//! stamped), not speed: speed is what the benchmark itself reports. And that
//! it refuses, with the reason and no figure, when a precondition of its
//! accounting is broken on purpose: threaded NAPI off, a floor that passes
//! every packet to the kernel instead of forwarding it.

use serde_json::Value;
use std::process::{Command, Output};
use std::sync::Mutex;
use tollgate_tests::process::tollgate_bin;
use tollgate_tests::TempDir;

/// One benchmark at a time: they all pin their relays to the same core.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `tollgate bench media ARGS --out DIR`; returns the output, its
/// stdout and the report it wrote (if any).
fn bench_media(args: &[&str], out: &TempDir) -> (Output, String, Option<Value>) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run = Command::new(tollgate_bin())
        .args(["bench", "media"])
        .args(args)
        .arg("--out")
        .arg(&out.0)
        .output()
        .expect("run tollgate bench media");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let report = std::fs::read_to_string(out.0.join("report.json"))
        .ok()
        .map(|s| serde_json::from_str(&s).expect("report.json is JSON"));
    (run, stdout, report)
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number, got {v}"))
}

/// The stamp every report carries: the code, build and machine measured.
fn assert_stamped(report: &Value, stdout: &str) {
    let s = &report["stamp"];
    let commit = s["commit"].as_str().expect("commit");
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{s}"
    );
    assert!(s["dirty"].is_boolean(), "{s}");
    assert!(s["profile"].as_str().unwrap().contains("opt-level"), "{s}");
    assert!(!s["kernel"].as_str().unwrap().is_empty(), "{s}");
    assert!(!s["cpu_model"].as_str().unwrap().is_empty(), "{s}");
    let pinning = s["pinning"].as_str().unwrap();
    assert!(
        pinning.contains("relay cores") && pinning.contains("generator cores"),
        "{s}"
    );
    assert!(
        stdout.starts_with(&format!("commit {}", &commit[..12])),
        "{stdout}"
    );
}

/// The accounting of a run that stands: checks that fail when the wrong
/// tasks are counted, NAPI work is missed, or counted work ran elsewhere.
fn assert_accounted(r: &Value, relayed: u64) {
    assert_eq!(r["refused"], serde_json::json!([]), "{r}");
    let relay_core = r["relay_cores"][0].as_u64().unwrap().to_string();
    let ra = r["counted"]["napi_threads"]
        .as_array()
        .expect("napi_threads");
    // One NAPI thread per relay interface, pinned to the relay core.
    assert_eq!(ra.len(), 2, "{r}");
    for t in ra {
        assert!(t["name"].as_str().unwrap().starts_with("napi/"), "{t}");
        assert_eq!(t["cores"].as_str(), Some(relay_core.as_str()), "{t}");
    }
    for p in r["counted"]["processes"].as_array().unwrap() {
        assert_eq!(p["cores"].as_str(), Some(relay_core.as_str()), "{p}");
    }
    // The end hosts' receive work is theirs: on the generator's core.
    let generator_core = r["generator_cores"][0].as_u64().unwrap().to_string();
    let ends = r["end_host_napi_threads"].as_array().expect("end hosts");
    assert_eq!(ends.len(), 2, "{r}");
    for t in ends {
        assert_eq!(t["cores"].as_str(), Some(generator_core.as_str()), "{t}");
    }
    // The NAPI threads carry every relayed packet's receive path: at
    // least a few hundred ns each on veth, nothing if they were not the ones.
    let napi_per_packet = f64_of(&r["relay_napi_cpu_ns"]) / relayed as f64;
    assert!(
        napi_per_packet > 300.0,
        "NAPI {napi_per_packet} ns/packet: {r}"
    );
    let per_packet = f64_of(&r["cpu_ns_per_packet"]);
    assert!(
        (300.0..200_000.0).contains(&per_packet),
        "{per_packet} ns/packet is implausible at this load: {r}"
    );
    // The cross-check is consistent with what was counted (where the work
    // ran is checked by the tasks' cores above: /proc/stat's tick-sampled
    // busy time may under-count a core woken for every packet).
    let x = &r["cross_check"];
    let (busy, counted, tolerance) = (
        x["cores_busy_ns"].as_i64().unwrap(),
        x["counted_ns"].as_i64().unwrap(),
        x["tolerance_ns"].as_i64().unwrap(),
    );
    assert_eq!(
        counted,
        r["relay_process_cpu_ns"].as_i64().unwrap() + r["relay_napi_cpu_ns"].as_i64().unwrap()
    );
    assert_eq!(x["uncounted_ns"].as_i64(), Some(busy - counted), "{x}");
    assert!(
        tolerance < 1_000_000_000,
        "a tolerance that explains anything: {x}"
    );
    // The generator achieved the offered rate.
    assert!(
        f64_of(&r["traffic"]["achieved_pps"]) >= 0.99 * f64_of(&r["offered_pps"]),
        "{r}"
    );
}

#[test]
fn bench_media_compare_short_form() {
    tollgate_tests::require_root();
    tollgate_tests::peers::require("rtpengine");
    let out = TempDir::new("tgbenchout");
    let args = "--compare xdp,socket,rtpengine,ceiling --rounds 1 --calls 10 --duration 2";
    let (run, stdout, report) = bench_media(&args.split(' ').collect::<Vec<_>>(), &out);
    assert!(
        run.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("medians (min-max) over 1 round(s)"),
        "{stdout}"
    );
    let report = report.expect("report.json");
    assert_stamped(&report, &stdout);

    let runs = report["runs"].as_array().expect("runs");
    let systems: Vec<&str> = runs.iter().map(|r| r["system"].as_str().unwrap()).collect();
    assert_eq!(
        systems,
        [
            "tollgate-xdp",
            "tollgate-socket",
            "rtpengine",
            "xdp-ceiling"
        ]
    );
    let (relays, floor) = runs.split_at(3);
    // 10 calls x 2 directions x 50 pps x 2 s.
    let sent = 2000;
    // The floor forwards packets unchanged: none reaches the generator, but
    // its own count and the far side's show every one forwarded.
    let f = &floor[0];
    assert_eq!(
        (
            f["traffic"]["sent"].as_u64(),
            f["traffic"]["received"].as_u64()
        ),
        (Some(sent), Some(0))
    );
    assert_eq!(f["floor"]["redirected"], sent, "{f}");
    let far = f["floor"]["far_side_rx"].as_u64().unwrap();
    assert!((sent..sent + 50).contains(&far), "{f}");
    assert!(f["counted"]["processes"].as_array().unwrap().is_empty());
    assert_accounted(f, sent);
    assert!(
        stdout.contains("tollgate-xdp costs") && stdout.contains("redirect-only XDP floor"),
        "{stdout}"
    );
    for (r, process) in relays.iter().zip(["tollgate", "tollgate", "rtpengine"]) {
        let t = &r["traffic"];
        assert_eq!(t["sent"], sent, "{r}");
        assert_eq!(
            t["received"], sent,
            "every packet of a low load arrives: {r}"
        );
        assert_eq!(
            (t["duplicates"].as_u64(), t["foreign"].as_u64()),
            (Some(0), Some(0)),
            "{r}"
        );
        assert!(t["latency_us"]["p50"].as_u64().unwrap() > 0, "{r}");
        let procs = r["counted"]["processes"].as_array().unwrap();
        // tollgate run and its data plane; rtpengine alone.
        assert_eq!(
            procs.len(),
            if process == "tollgate" { 2 } else { 1 },
            "{r}"
        );
        assert!(procs.iter().all(|p| p["name"] == process), "{r}");
        assert_accounted(r, sent);
    }
    let summary = report["summary"].as_array().expect("summary");
    assert_eq!(summary.len(), 4);
    for s in summary {
        let c = &s["cpu_ns_per_packet"];
        assert!(
            f64_of(&c["min"]) <= f64_of(&c["median"]) && f64_of(&c["median"]) <= f64_of(&c["max"]),
            "{s}"
        );
        assert_eq!(
            (s["runs"].as_u64(), s["refused_runs"].as_u64()),
            (Some(1), Some(0))
        );
    }
    for f in ["capacity.svg", "capacity.png", "latency.svg", "latency.png"] {
        let len = std::fs::metadata(out.0.join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "{f} written ({len} bytes)");
    }
}

/// A refused run: the command fails naming `reason`, the run is in the
/// report with its reasons and without figures, and no figure is printed.
fn assert_refused(run: &Output, stdout: &str, r: &Value, reason: &str) {
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success(),
        "a refused run fails the command:\n{stdout}"
    );
    assert!(stderr.contains(reason), "{stderr}");
    let reasons = r["refused"].as_array().expect("refused");
    assert!(
        reasons.iter().any(|x| x.as_str().unwrap().contains(reason)),
        "{r}"
    );
    assert!(
        r["cpu_ns_per_packet"].is_null() && r["relay_cpu_pct"].is_null(),
        "{r}"
    );
    let name = r["system"].as_str().unwrap();
    let row = stdout
        .lines()
        .find(|l| l.starts_with(name) && l.contains(" REFUSED: "))
        .unwrap_or_else(|| panic!("a REFUSED row for {name}:\n{stdout}"));
    assert!(row.contains(reason), "{row}");
}

#[test]
fn bench_media_refuses_a_run_without_threaded_napi() {
    tollgate_tests::require_root();
    let out = TempDir::new("tgbenchnonapi");
    let (run, stdout, report) = bench_media(
        &[
            "--backend",
            "xdp",
            "--calls",
            "10",
            "--duration",
            "1",
            "--break-threaded-napi",
        ],
        &out,
    );
    let report = report.expect("the report is written, with the refusal");
    assert_stamped(&report, &stdout);
    let r = &report["runs"][0];
    assert_refused(
        &run,
        &stdout,
        r,
        "no threaded-NAPI thread found for relay interface",
    );
    assert!(
        r["counted"]["napi_threads"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert_eq!(
        report["summary"],
        serde_json::json!([]),
        "no figure: {report}"
    );
}

#[test]
fn bench_media_refuses_a_floor_that_does_not_forward() {
    tollgate_tests::require_root();
    let out = TempDir::new("tgbenchpassall");
    let (run, stdout, report) = bench_media(
        &[
            "--compare",
            "xdp,ceiling",
            "--rounds",
            "1",
            "--calls",
            "10",
            "--duration",
            "1",
            "--break-floor",
        ],
        &out,
    );
    let report = report.expect("the report is written, with the refusal");
    let (xdp, floor) = (&report["runs"][0], &report["runs"][1]);
    assert_refused(
        &run,
        &stdout,
        floor,
        "the redirect-only floor redirected 0 of 1000",
    );
    assert_eq!(floor["floor"]["redirected"], 0, "{floor}");
    assert!(
        floor["floor"]["passed"].as_u64().unwrap() >= 1000,
        "{floor}"
    );
    // Tollgate's own run stands; only the ratio to the floor is refused.
    assert_accounted(xdp, 1000);
    let systems: Vec<&str> = report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["tollgate-xdp"]);
    assert!(
        !stdout.contains("costs"),
        "no ratio to a refused floor:\n{stdout}"
    );
}
