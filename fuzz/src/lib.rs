//! Fuzzing Tollgate's parsers: every format that arrives from the network
//! or is read back from disk has a target here ([`targets::ALL`]), a
//! function that feeds it arbitrary bytes and panics when a property
//! breaks: a parser panicked, or a value that parsed does not come back
//! the same after serialising and parsing again, or a repaired spool lost
//! a good record.
//!
//! Each target has a seed corpus in `fuzz/corpus/<name>/` (real messages,
//! and every input that once broke a property, kept as a regression).
//! [`run`] plays the corpus and then mutants of it ([`mutate`]) under
//! proptest: the short pass `cargo test -p tollgate-fuzz` runs, and the
//! long one docs/fuzzing.md describes. `fuzz/afl/` runs the same targets
//! under AFL++ for coverage-guided runs.

pub mod mutate;
pub mod targets;

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One parser under test.
pub struct Target {
    /// Also its corpus folder's name.
    pub name: &'static str,
    /// Keywords, separators and edge values of the format, for mutations.
    pub tokens: &'static [&'static [u8]],
    /// Feeds one input; panics when a property breaks.
    pub run: fn(&[u8]),
    /// Mutants for the short pass per unit of `TOLLGATE_FUZZ_CASES`
    /// (slow targets, those touching the disk, run fewer).
    pub weight: u32,
}

/// Longest one input may take (an unoptimised build on a loaded machine):
/// anything slower is a hang waiting for a bigger input.
pub const SLOW: Duration = Duration::from_secs(2);

pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// The target's seed inputs, sorted by file name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// Plays every corpus input, then `cases` mutants drawn from `rng_seed`
/// (the same seed gives the same cases). A mutant that breaks a property
/// is shrunk to the fewest mutations, written under
/// `target/fuzz-failures/<target>/` (to be kept in the corpus once fixed),
/// and reported.
pub fn run(t: &Target, cases: u32, rng_seed: u64) {
    let files = corpus(t.name);
    assert!(!files.is_empty(), "{}: empty corpus", t.name);
    for (name, bytes) in &files {
        timed(t, bytes).unwrap_or_else(|e| panic!("{}: corpus file {name}: {e}", t.name));
    }
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
    let pool = mutate::Pool {
        seeds: &seeds,
        tokens: t.tokens,
    };
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&rng_seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&mutate::case(seeds.len()), |(seed, ms)| {
        timed(t, &mutate::apply(&pool, seed, &ms)).map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (seed, ms))) => {
            let saved = save_failure(t.name, &mutate::apply(&pool, seed, &ms));
            panic!(
                "{}: {why}\nminimal input saved to {} (seed {seed}, mutations {ms:?})",
                t.name,
                saved.display()
            );
        }
        Err(e) => panic!("{}: {e}", t.name),
    }
}

/// Runs one input, catching a panic and a run slower than [`SLOW`].
pub fn timed(t: &Target, input: &[u8]) -> Result<(), String> {
    let start = Instant::now();
    let outcome = std::panic::catch_unwind(|| (t.run)(input));
    let took = start.elapsed();
    match outcome {
        Err(p) => Err(panic_text(&*p)),
        Ok(()) if took > SLOW => Err(format!(
            "{} bytes took {took:?}, more than {SLOW:?}",
            input.len()
        )),
        Ok(()) => Ok(()),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

fn save_failure(target: &str, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/fuzz-failures")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    let name = format!("{:016x}", fnv(input));
    let path = dir.join(name);
    let _ = std::fs::write(&path, input);
    path
}

/// FNV-1a: names a saved input by its content.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Shows an input in a property's failure message, cut to a readable size.
pub fn show(input: &[u8]) -> String {
    let s = String::from_utf8_lossy(&input[..input.len().min(400)]).into_owned();
    if input.len() > 400 {
        format!("{s:?}... ({} bytes)", input.len())
    } else {
        format!("{s:?}")
    }
}
