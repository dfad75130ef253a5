//! AFL++ entry point: runs the target named by `TOLLGATE_FUZZ_TARGET` (one
//! of `tollgate_fuzz::targets::ALL`) on each input AFL++ hands over; a
//! broken property is a panic, which AFL++ records as a crash.

fn main() {
    let name = std::env::var("TOLLGATE_FUZZ_TARGET")
        .expect("set TOLLGATE_FUZZ_TARGET to a target name (fuzz/corpus/<name>)");
    let target = tollgate_fuzz::targets::find(&name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}; see fuzz/src/targets/mod.rs"));
    afl::fuzz!(|data: &[u8]| (target.run)(data));
}
