//! Records what the binary is built from, for the benchmark reports' stamp
//! (`src/stamp.rs`): the commit, whether the tree the binary's crates come
//! from differed from it, and the cargo profile. Reruns when a file of a
//! crate linked into the binary changes, not when only HEAD moves: a
//! commit of the very sources a binary was built from leaves that binary
//! stamped with the commit before and `dirty`, which stays true, and
//! rebuilding every binary at every commit would serve no one.

use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The workspace members built into the binary (all but `tests`).
fn members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members"))
        .map(|l| {
            l.split('"')
                .skip(1)
                .step_by(2)
                .filter(|m| *m != "tests")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let root = Path::new(&manifest_dir)
        .parent()
        .expect("bench is in the workspace");
    let mut paths: Vec<String> = members(root);
    paths.extend(["Cargo.toml".into(), "Cargo.lock".into()]);
    for p in &paths {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let commit = git(root, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    status.extend(paths.iter().map(String::as_str));
    let dirty = match git(root, &status) {
        Some(s) => (!s.is_empty()).to_string(),
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=TOLLGATE_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=TOLLGATE_BUILD_DIRTY={dirty}");
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let opt = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=TOLLGATE_BUILD_PROFILE={profile} (opt-level {opt})");
}
