//! The text report of the bare-metal fixture, compared line for line with
//! `tests/fixtures/metal.report.txt`. After a deliberate change to the
//! report, regenerate it with `UPDATE_SNAPSHOTS=1 cargo test -p
//! tollgate-tuning --test report_snapshot` and review the diff.

use std::path::Path;
use tollgate_tuning::ethtool::FixtureEthtool;
use tollgate_tuning::host::Host;
use tollgate_tuning::probe::NodeSpec;
use tollgate_tuning::report;

#[test]
fn metal_text_report_matches_the_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let host = Host::at(dir.join("metal"));
    let ethtool = FixtureEthtool::load(&host).unwrap();
    let spec = NodeSpec {
        interfaces: vec!["eth1".into()],
        worker_cores: None,
        media_ports: (30000, 40000),
    };
    let text = report::text(&report::build(&host, &ethtool, &spec).unwrap());
    let snapshot = dir.join("metal.report.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&snapshot)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", snapshot.display()));
    if text != expected {
        let first = text.lines().zip(expected.lines()).position(|(a, b)| a != b);
        panic!(
            "the report differs from {} (first differing line {first:?}; UPDATE_SNAPSHOTS=1 rewrites it after review):\n{text}",
            snapshot.display()
        );
    }
}
