//! The short fuzzing pass: every target's corpus, then a fixed number of
//! mutants of it, the same ones on every run (so CI is repeatable and a
//! failure reproduces). `TOLLGATE_FUZZ_CASES` scales the mutants per unit
//! of a target's weight and `TOLLGATE_FUZZ_SEED` draws other ones: the
//! long pass in docs/fuzzing.md.

use tollgate_fuzz::targets;

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn fuzz(name: &str) {
    let target = targets::find(name).unwrap_or_else(|| panic!("no target {name}"));
    let cases = env_or("TOLLGATE_FUZZ_CASES", 1000) as u32 * target.weight;
    tollgate_fuzz::run(target, cases, env_or("TOLLGATE_FUZZ_SEED", 18));
}

#[test]
fn every_target_has_a_test_here() {
    let source = include_str!("fuzz_parsers.rs");
    for t in targets::ALL {
        assert!(
            source.contains(&format!("fuzz(\"{}\")", t.name)),
            "target {} is not run by this file",
            t.name
        );
    }
}

#[test]
fn sip_message() {
    fuzz("sip_message");
}

#[test]
fn sip_digest() {
    fuzz("sip_digest");
}

#[test]
fn sdp() {
    fuzz("sdp");
}

#[test]
fn ng_bencode() {
    fuzz("ng_bencode");
}

#[test]
fn ng_json() {
    fuzz("ng_json");
}

#[test]
fn ng_message() {
    fuzz("ng_message");
}

#[test]
fn frame() {
    fuzz("frame");
}

#[test]
fn rtp() {
    fuzz("rtp");
}

#[test]
fn control() {
    fuzz("control");
}

#[test]
fn spool_segment() {
    fuzz("spool_segment");
}

#[test]
fn spool() {
    fuzz("spool");
}

#[test]
fn spool_cursor() {
    fuzz("spool_cursor");
}

#[test]
fn sdes_crypto() {
    fuzz("sdes_crypto");
}

#[test]
fn srtp() {
    fuzz("srtp");
}
