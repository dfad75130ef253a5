//! The `tollgate` command line: config validation with messages that name
//! the key, and usage errors.

use std::process::Command;

fn tollgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("run tollgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../tollgate.example.toml");
    let (code, out, err) = tollgate(&["check-config", example]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("valid") && out.contains("[dataplane]"),
        "{out}"
    );
}

#[test]
fn check_config_names_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("tg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[dataplane]\ncores = [0, 99]\n[dataplane.socket]\nbuffers = 1000\n",
    )
    .unwrap();
    let (code, _, err) = tollgate(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("dataplane.cores[1]: core 99 does not exist"),
        "{err}"
    );
    assert!(err.contains("dataplane.socket.buffers: 1000"), "{err}");
    std::fs::write(&bad, "[dataplane\n").unwrap();
    let (code, _, err) = tollgate(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml") && err.contains("line 1"), "{err}");
    let (code, _, err) = tollgate(&["check-config", "/nonexistent/tollgate.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read config file /nonexistent/tollgate.toml"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ctl_without_a_data_plane_says_so() {
    let (code, _, err) = tollgate(&["ctl", "--socket", "/nonexistent/ctl.sock", "flows"]);
    assert_eq!(code, 1);
    assert!(err.contains("is the data plane running?"), "{err}");
}
