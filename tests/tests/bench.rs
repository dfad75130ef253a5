//! `tollgate bench media` in its short form: Tollgate's XDP and socket
//! backends and rtpengine, each set up over NG and loaded with a few calls
//! for a couple of seconds, and the redirect-only XDP floor. Checks that the benchmark works and its results
//! are sane (every packet of a low load delivered, the report written), not
//! speed: speed is what the benchmark itself reports.

use std::process::Command;
use tollgate_tests::process::tollgate_bin;
use tollgate_tests::TempDir;

#[test]
fn bench_media_compare_short_form() {
    tollgate_tests::require_root();
    tollgate_tests::peers::require("rtpengine");
    let out = TempDir::new("tgbenchout");
    let run = Command::new(tollgate_bin())
        .args([
            "bench",
            "media",
            "--compare",
            "xdp,socket,rtpengine,ceiling",
            "--rounds",
            "1",
            "--calls",
            "10",
            "--duration",
            "2",
            "--out",
        ])
        .arg(&out.0)
        .output()
        .expect("run tollgate bench media");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("medians over 1 round(s)"), "{stdout}");

    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.0.join("report.json")).expect("report.json"),
    )
    .expect("JSON");
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
    // The floor forwards packets unchanged: none is delivered, its CPU is measured.
    assert_eq!(
        (
            floor[0]["traffic"]["sent"].as_u64(),
            floor[0]["traffic"]["received"].as_u64()
        ),
        (Some(2000), Some(0))
    );
    assert!(floor[0]["cpu_ns_per_packet"].as_f64().unwrap() > 0.0);
    assert!(
        stdout.contains("tollgate-xdp costs") && stdout.contains("redirect-only XDP floor"),
        "{stdout}"
    );
    for r in relays {
        let t = &r["traffic"];
        // 10 calls x 2 directions x 50 pps x 2 s.
        assert_eq!(t["sent"], 2000, "{r}");
        assert_eq!(
            t["received"], 2000,
            "every packet of a low load arrives: {r}"
        );
        assert_eq!(
            (t["duplicates"].as_u64(), t["foreign"].as_u64()),
            (Some(0), Some(0)),
            "{r}"
        );
        assert!(t["latency_us"]["p50"].as_u64().unwrap() > 0, "{r}");
        assert!(
            r["cpu_ns_per_packet"].as_f64().unwrap() > 0.0,
            "the relay's CPU was measured: {r}"
        );
    }
    assert_eq!(report["summary"].as_array().map(Vec::len), Some(4));
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 2);
    for f in ["capacity.svg", "capacity.png", "latency.svg", "latency.png"] {
        let len = std::fs::metadata(out.0.join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "{f} written ({len} bytes)");
    }
}
