//! Real peers for the NG tests, from Debian's packages: Kamailio with its
//! rtpengine module (bench/peers/kamailio.cfg), SIPp as UAC and UAS, and
//! rtpengine itself; plus `tollgate run`. Each process is started in a
//! namespace (or this one), logs into the test's directory, and is stopped
//! when its guard drops.

use crate::netns::Topology;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started process, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Proc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        tollgate_bench::sut::terminate(&mut self.child, Duration::from_secs(3));
    }
}

use tollgate_bench::peers::command;

/// SIGKILLs a node started by [`tollgate_run`]: its supervisor and its
/// data plane, then reaps it.
pub fn kill(tg: &mut Proc) {
    let pid = tg.child.id() as i32;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    // SAFETY: signalling processes this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for c in children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
    {
        // SAFETY: as above, the node's data plane.
        unsafe { libc::kill(c, libc::SIGKILL) };
        wait_gone(c);
    }
    let _ = tg.child.wait();
}

/// Waits (at most 10 s) until process `pid`, not our child, has exited: its
/// files are closed once it is gone or a zombie.
fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat)
                if !stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z') =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return,
        }
    }
}

/// Spawns `cmd` with output to `dir/name.log`.
pub fn spawn(mut cmd: Command, dir: &Path, name: &'static str) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let f = std::fs::File::create(&log).expect("log file");
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("log"))
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting {name}: {e} (run scripts/setup.sh to install the peers)")
        });
    Proc { child, name, log }
}

pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run scripts/setup.sh (it installs the test peers)"
    );
}

/// `config` with a `[cdr]` section keeping the spool and the SQLite CDRs
/// under `dir`, unless it has one: tests must not share the node default.
pub fn with_own_cdrs(config: &str, dir: &Path) -> String {
    if config.contains("[cdr]") {
        return config.to_string();
    }
    format!(
        "{config}\n[cdr]\nspool_dir = \"{0}/spool\"\nsinks = [{{ kind = \"sqlite\", url = \"sqlite://{0}/cdr.sqlite\" }}]\n",
        dir.display()
    )
}

/// `config` with an `[archive]` section keeping the recording spool, the
/// local archive and its generated key under `dir`, unless it has one.
pub fn with_own_archive(config: &str, dir: &Path) -> String {
    if config.contains("[archive]") {
        return config.to_string();
    }
    format!(
        "{config}\n[archive]\nspool = \"{0}/recordings\"\n[archive.store]\nkind = \"local\"\npath = \"{0}/archive\"\n[archive.encryption]\ngenerated_key_file = \"{0}/archive-key.hex\"\n",
        dir.display()
    )
}

/// `config` with an `[http]` section on an ephemeral loopback port, unless
/// it has one: nodes of parallel tests must not share the default 8088.
pub fn with_own_http(config: &str) -> String {
    if config.contains("[http]") {
        return config.to_string();
    }
    format!("{config}\n[http]\nlisten = \"127.0.0.1:0\"\n")
}

/// The address a node's HTTP server listens on, from its log.
pub fn http_address(p: &Proc) -> Option<String> {
    let log = p.log_text();
    log.lines()
        .find(|l| l.contains("HTTP listening"))
        .and_then(|l| l.split("listen=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
}

/// `tollgate run` with `args`, waiting until NG answers `ping` at `ng`.
pub fn tollgate_run(
    netns: Option<&str>,
    dir: &Path,
    config: &str,
    args: &[&str],
    ng: SocketAddr,
) -> Proc {
    let cfg = dir.join("tollgate.toml");
    let config = with_own_archive(&with_own_http(&with_own_cdrs(config, dir)), dir);
    std::fs::write(&cfg, config).expect("write config");
    let mut cmd = command(
        netns,
        crate::process::tollgate_bin().to_str().expect("utf-8 path"),
    );
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .env("TOLLGATE_LOG", "info");
    let p = spawn(cmd, dir, "tollgate");
    wait_ng(netns, ng, &p);
    p
}

/// `tollgate run` on loopback with the socket backend: media on 127.0.0.1
/// with relay ports `ports`, NG at `ng`, plus `extra` arguments and
/// `sections` of config. Returns the process and the data plane's control
/// socket.
pub fn tollgate_loopback(
    dir: &Path,
    ng: &str,
    ports: (u16, u16),
    extra: &[&str],
    sections: &str,
) -> (Proc, PathBuf) {
    let ctl = dir.join("dp.sock");
    let config = format!(
        "[dataplane]\nbackend = \"socket\"\ncontrol_socket = \"{}\"\n{sections}",
        ctl.display()
    );
    let mut args = vec!["--interface".to_string(), "127.0.0.1".into()];
    args.extend(relay_args(ng, ports));
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = tollgate_run(None, dir, &config, &args, ng.parse().expect("NG address"));
    (p, ctl)
}

/// `tollgate run`'s arguments for a relay between the namespaces of
/// [`crate::netns::v4`]: interfaces `caller` and `callee` on the relay's two
/// addresses, deletes at once, NG at `ng`, relay ports `ports`.
pub fn namespace_relay_args(ng: &str, ports: (u16, u16)) -> Vec<String> {
    let n = crate::netns::v4();
    let mut args = vec![
        "--interface".to_string(),
        format!("caller/{}", n.relay_a),
        "--interface".into(),
        format!("callee/{}", n.relay_b),
        "--delete-delay".into(),
        "0".into(),
    ];
    args.extend(relay_args(ng, ports));
    args
}

/// `tollgate run`'s rtpengine-style arguments for NG at `ng` and relay
/// ports `ports`.
pub fn relay_args(ng: &str, ports: (u16, u16)) -> Vec<String> {
    [
        "--listen-ng",
        ng,
        "--port-min",
        &ports.0.to_string(),
        "--port-max",
        &ports.1.to_string(),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Waits (at most 20 s) until an NG relay answers `ping` at `ng`.
pub fn wait_ng(netns: Option<&str>, ng: SocketAddr, p: &Proc) {
    let ns = netns.map(str::to_string);
    let ok = move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut c) = tollgate_ng::client::NgClient::new(ng) {
                c.timeout = Duration::from_millis(200);
                c.attempts = 1;
                if c.command("ping", []).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    let up = match ns {
        Some(ns) => Topology::run_in(&ns, ok),
        None => ok(),
    };
    assert!(
        up,
        "{} did not answer NG ping at {ng}:\n{}",
        p.name,
        p.log_text()
    );
}

/// An NG client, created inside `netns` when given.
pub fn ng_client(netns: Option<&str>, ng: SocketAddr) -> tollgate_ng::client::NgClient {
    let make = move || tollgate_ng::client::NgClient::new(ng).expect("NG client");
    match netns {
        Some(ns) => Topology::run_in(ns, make),
        None => make(),
    }
}

/// Kamailio as a stateful proxy from `listen` to `uas`, using the NG relay at `ng`.
pub fn kamailio(
    netns: Option<&str>,
    dir: &Path,
    listen: SocketAddr,
    uas: SocketAddr,
    ng: SocketAddr,
    flags: &str,
) -> Proc {
    require("kamailio");
    let cmd = tollgate_bench::peers::kamailio(netns, dir, listen, uas, ng, flags);
    let p = spawn(cmd, dir, "kamailio");
    // Ready when it answers OPTIONS (the config replies 200 Keepalive).
    let probe = move || tollgate_bench::peers::answers_options(listen, Duration::from_secs(20));
    let up = match netns {
        Some(ns) => Topology::run_in(ns, probe),
        None => probe(),
    };
    assert!(
        up,
        "kamailio did not answer OPTIONS on {listen}:\n{}",
        p.log_text()
    );
    p
}

/// SIPp UAS answering with SDP (no 180), echoing RTP on `media_port`.
pub fn sipp_uas(netns: Option<&str>, dir: &Path, listen: SocketAddr, media_port: u16) -> Proc {
    let scenario = tollgate_bench::peers::UAS_NO180;
    sipp_uas_with(netns, dir, listen, media_port, &["-sf", scenario])
}

/// A SIPp UAS running `scenario` (`-sf FILE` or `-sn NAME`) on `listen`,
/// echoing RTP on `media_port`; its messages go to `uas_messages.log`.
pub fn sipp_uas_with(
    netns: Option<&str>,
    dir: &Path,
    listen: SocketAddr,
    media_port: u16,
    scenario: &[&str],
) -> Proc {
    let echo = [scenario, &["-rtp_echo"]].concat();
    sipp_uas_own_media(netns, dir, listen, media_port, &echo)
}

/// A SIPp UAS as [`sipp_uas_with`] that echoes nothing: its media port
/// sends only what the scenario plays (`play_pcap_audio`).
pub fn sipp_uas_own_media(
    netns: Option<&str>,
    dir: &Path,
    listen: SocketAddr,
    media_port: u16,
    scenario: &[&str],
) -> Proc {
    require("sipp");
    let mut cmd = command(netns, "sipp");
    cmd.args(scenario)
        .args([
            "-i",
            &listen.ip().to_string(),
            "-p",
            &listen.port().to_string(),
        ])
        .args([
            "-bind_local",
            "-nostdin",
            "-mi",
            &listen.ip().to_string(),
            "-mp",
            &media_port.to_string(),
        ])
        .args(["-trace_msg", "-message_file"])
        .arg(dir.join("uas_messages.log"));
    let mut p = spawn(cmd, dir, "sipp-uas");
    let ports = [listen.port(), media_port];
    let ready = crate::wait_until(Duration::from_secs(10), || {
        let exited = p.child.try_wait().ok().flatten();
        assert!(
            exited.is_none(),
            "sipp UAS exited: {exited:?}\n{}",
            p.log_text()
        );
        ports.iter().all(|port| bound(p.child.id(), *port))
    });
    assert!(
        ready,
        "sipp UAS not listening on {listen} and media port {media_port} within 10 s\n{}",
        p.log_text()
    );
    p
}

/// Whether process `pid` is `sipp` holding a socket bound to `port` (UDP,
/// or TCP listening), read from /proc: its file descriptors' socket inodes
/// against its network namespace's socket tables.
fn bound(pid: u32, port: u16) -> bool {
    // Until `ip netns exec` or `timeout` has exec'd SIPp, the tables are another namespace's.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim_end() != "sipp" {
        return false;
    }
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let port = format!(":{port:04X}");
    ["udp", "udp6", "tcp", "tcp6"].iter().any(|table| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, state (TCP: 0A is LISTEN), inode
            f.len() > 9
                && f[1].ends_with(&port)
                && (table.starts_with("udp") || f[3] == "0A")
                && inodes.contains(f[9])
        })
    })
}

/// Runs SIPp's `uac_pcap` scenario for one call (G.711 from a pcap, then
/// RFC 2833 DTMF, about 10 s) to `target`; returns (exit status, message log).
pub fn sipp_uac_pcap(
    netns: Option<&str>,
    dir: &Path,
    local: SocketAddr,
    media_port: u16,
    target: SocketAddr,
) -> (i32, String) {
    sipp_uac(netns, dir, local, media_port, target, &["-sn", "uac_pcap"])
}

/// Runs one call of a SIPp UAC `scenario` (`-sf FILE` or `-sn NAME`, plus
/// any arguments such as `-s NUMBER`) to `target`, bounded to 60 s;
/// returns (exit status, message log).
pub fn sipp_uac(
    netns: Option<&str>,
    dir: &Path,
    local: SocketAddr,
    media_port: u16,
    target: SocketAddr,
    scenario: &[&str],
) -> (i32, String) {
    require("sipp");
    let pcap = dir.join("pcap");
    if !pcap.exists() {
        std::os::unix::fs::symlink("/usr/share/sip-tester", &pcap).expect("pcap link");
    }
    let msgs = dir.join("uac_messages.log");
    let mut cmd = sipp_bounded(netns, 60, &target.to_string());
    cmd.args(scenario)
        .args([
            "-i",
            &local.ip().to_string(),
            "-p",
            &local.port().to_string(),
            "-bind_local",
            "-nostdin",
        ])
        .args([
            "-mi",
            &local.ip().to_string(),
            "-mp",
            &media_port.to_string(),
            "-m",
            "1",
            "-timeout",
            "45s",
        ])
        .args(["-trace_msg", "-message_file"])
        .arg(&msgs)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(dir.join("uac_errors.log"));
    let mut p = spawn(cmd, dir, "sipp-uac");
    let st = p.child.wait().expect("sipp uac");
    (
        st.code().unwrap_or(-1),
        std::fs::read_to_string(&msgs).unwrap_or_default(),
    )
}

/// SIPp (in `netns` when given) calling `target`, interrupted after
/// `secs` seconds (and killed 10 s later): add the scenario's arguments.
pub fn sipp_bounded(netns: Option<&str>, secs: u32, target: &str) -> Command {
    let mut cmd = command(netns, "timeout");
    let secs = secs.to_string();
    cmd.args(["-s", "INT", "-k", "10", &secs, "sipp", target]);
    cmd
}

/// Waits for a SIPp UAC to end and asserts that every call succeeded,
/// showing its `errors` file and the node's `log` when not.
pub fn wait_sipp_success(uac: &mut Proc, errors: &Path, log: impl FnOnce() -> String) {
    let st = uac.child.wait().expect("sipp uac");
    let errors = std::fs::read_to_string(errors).unwrap_or_default();
    assert!(
        st.success(),
        "SIPp saw calls fail ({st}):\n{}\n{}",
        &errors[..errors.len().min(3000)],
        log()
    );
}

/// UDP packets in the pcaps `uac_pcap` plays: what the UAC sends.
pub fn uac_pcap_packets() -> u64 {
    ["g711a.pcap", "dtmf_2833_1.pcap"]
        .iter()
        .map(|f| pcap_records(Path::new("/usr/share/sip-tester").join(f).as_path()))
        .sum()
}

/// Number of records in a classic pcap file.
fn pcap_records(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let le = b[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let rd = |at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let (mut at, mut n) = (24usize, 0u64);
    while at + 16 <= b.len() {
        at += 16 + rd(at + 8) as usize;
        n += 1;
    }
    n
}

/// rtpengine (userspace) on loopback with its NG socket at `ng`.
pub fn rtpengine(dir: &Path, ng: SocketAddr, ports: (u16, u16)) -> Proc {
    require("rtpengine");
    let cmd = tollgate_bench::peers::rtpengine(dir, ng, ports);
    let p = spawn(cmd, dir, "rtpengine");
    wait_ng(None, ng, &p);
    p
}

/// The SDP body of the first message in a SIPp message log that starts with `first_line`.
pub fn sdp_of(log: &str, first_line: &str) -> Option<String> {
    let at = log.find(first_line)?;
    let msg = &log[at..];
    let body_start = msg.find("\r\n\r\n").or_else(|| msg.find("\n\n"))?;
    let body = &msg[body_start..];
    let v = body.find("v=0")?;
    let end = body[v..]
        .find("\n\n")
        .or_else(|| body[v..].find("---"))
        .map(|e| v + e)
        .unwrap_or(body.len());
    Some(body[v..end].trim_end().to_string())
}

/// A one-line PCMU offer or answer for a party at `at`.
pub fn pcmu_sdp(at: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = at.ip(),
        port = at.port()
    )
}

/// Where the relay's SDP in an NG reply tells its party to send media.
pub fn relay_media(reply: &tollgate_ng::Value) -> SocketAddr {
    let text = reply
        .get("sdp")
        .and_then(tollgate_ng::Value::as_str)
        .expect("an SDP in the NG reply");
    let s = tollgate_sip::sdp::Sdp::parse(text).expect("the relay's SDP parses");
    SocketAddr::new(s.connection(0).expect("c="), s.media[0].port())
}
