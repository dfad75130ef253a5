//! Compiles the XDP programs (the relay, and the benchmark's redirect-only
//! ceiling) with clang for the `bpf` target, and the same
//! headers for the host (a small shim the tests use to check struct layouts
//! and the checksum arithmetic against Rust).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let src = PathBuf::from("src/bpf");
    // The whole directory: cargo rescans it, so an edit to any program
    // (the ceiling included), header or the host shim, or a new file,
    // rebuilds the objects.
    println!("cargo:rerun-if-changed={}", src.display());
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let multiarch = format!("/usr/include/{}-linux-gnu", env::consts::ARCH);
    for name in ["tollgate", "ceiling"] {
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-I{multiarch}"))
            .arg("-c")
            .arg(src.join(format!("{name}.bpf.c")))
            .arg("-o")
            .arg(out.join(format!("{name}.bpf.o")))
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run `{clang}` to build the XDP programs ({e}); install clang (see README)")
            });
        assert!(
            status.success(),
            "clang failed to compile src/bpf/{name}.bpf.c"
        );
    }

    cc::Build::new()
        .file(src.join("host_shim.c"))
        .warnings(true)
        .compile("tollgate_host_shim");
}
