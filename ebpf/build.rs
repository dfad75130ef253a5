//! Compiles the XDP program with clang for the `bpf` target, and the same
//! headers for the host (a small shim the tests use to check struct layouts
//! and the checksum arithmetic against Rust).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let src = PathBuf::from("src/bpf");
    for f in [
        "tollgate.bpf.c",
        "shared.h",
        "maps.h",
        "csum.h",
        "parse.h",
        "host_shim.c",
    ] {
        println!("cargo:rerun-if-changed=src/bpf/{f}");
    }
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let multiarch = format!("/usr/include/{}-linux-gnu", env::consts::ARCH);
    let obj = out.join("tollgate.bpf.o");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg(format!("-I{multiarch}"))
        .arg("-c")
        .arg(src.join("tollgate.bpf.c"))
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{clang}` to build the XDP program ({e}); install clang (see README)"
            )
        });
    assert!(
        status.success(),
        "clang failed to compile src/bpf/tollgate.bpf.c"
    );

    cc::Build::new()
        .file(src.join("host_shim.c"))
        .warnings(true)
        .compile("tollgate_host_shim");
}
