//! The `[dataplane]` section of tollgate.toml: which backend, which cores,
//! where the control socket lives, idle detection, and per-backend settings.
//! Every option has a default that works on one host; [`DataplaneConfig::validate`]
//! names the key and what is wrong.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// `auto` (XDP on `xdp.interfaces`, or else on the devices holding the
    /// media addresses, when the kernel accepts it; else socket), `xdp` or
    /// `socket`.
    pub backend: BackendChoice,
    /// Cores for the packet workers; default: every core but 0 (core 0 on a
    /// one-core host).
    pub cores: Option<Vec<usize>>,
    /// Unix socket for `tollgate ctl` and the control plane.
    pub control_socket: PathBuf,
    /// A flow with no packet for this long is reported idle.
    pub idle_timeout_secs: u64,
    pub xdp: XdpConfig,
    pub socket: SocketConfig,
    /// The addresses of the node's media interfaces (`[media]`, or rtpengine's
    /// `--interface`). Not a key of this section: the node's config loader
    /// fills it in. `auto` without `xdp.interfaces` puts XDP on the devices
    /// holding them.
    #[serde(skip)]
    pub media_addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Auto,
    Xdp,
    Socket,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct XdpConfig {
    /// Interfaces the program is attached to; media arrives and leaves here.
    /// Empty (the default): with `backend = "auto"`, the devices holding the
    /// media addresses.
    pub interfaces: Vec<String>,
    /// `native` (driver hook) or `generic` (skb hook, slower, works everywhere).
    pub mode: XdpAttachMode,
    /// bpffs directory for pinned maps and links; mounted if it is not a bpffs.
    /// Under `ip netns exec` /sys is private to the process: use a bpffs
    /// mounted elsewhere beforehand for pins to outlive a restart.
    pub pin_dir: PathBuf,
    /// Turn on IP forwarding on the attached interfaces (the kernel's FIB
    /// lookup from XDP requires it).
    pub set_forwarding: bool,
    /// The AF_XDP workers that run the media pipeline for flows with stages.
    pub afxdp: AfXdpConfig,
}

/// `[dataplane.xdp.afxdp]`: one AF_XDP socket per (interface, rx queue),
/// on workers pinned to `dataplane.cores`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AfXdpConfig {
    /// Start the workers (flows with stages are refused without them).
    pub enabled: bool,
    /// `auto`: zero-copy where the driver supports it, else copy mode
    /// (veth); `off`: copy mode always.
    pub zero_copy: ZeroCopyChoice,
    /// Busy polling on the sockets (SO_PREFER_BUSY_POLL): lower latency,
    /// the worker core spins in the driver's poll.
    pub busy_poll: bool,
    pub busy_poll_usecs: u32,
    pub busy_poll_budget: u32,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// Frames per socket's UMEM (a power of two, 64-65536).
    pub frames: u32,
    /// Entries per ring (a power of two, 64 up to `frames`).
    pub ring_size: u32,
    /// Most frames a worker takes from one socket at a time (1-256).
    pub burst: u32,
    /// Microseconds an idle worker keeps polling before it sleeps, when
    /// packets come at least that close together (0-1000; 0: sleep at once).
    pub spin_us: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopyChoice {
    Auto,
    Off,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            enabled: true,
            zero_copy: ZeroCopyChoice::Auto,
            busy_poll: false,
            busy_poll_usecs: 20,
            busy_poll_budget: 64,
            frame_size: 2048,
            frames: 4096,
            ring_size: 2048,
            burst: 64,
            spin_us: 50,
        }
    }
}

impl AfXdpConfig {
    fn validate(&self, errs: &mut Vec<String>) {
        let k = "dataplane.xdp.afxdp";
        if self.frame_size != 2048 && self.frame_size != 4096 {
            errs.push(format!(
                "{k}.frame_size: {} must be 2048 or 4096",
                self.frame_size
            ));
        }
        if !(64..=65536).contains(&self.frames) || !self.frames.is_power_of_two() {
            errs.push(format!(
                "{k}.frames: {} must be a power of two from 64 to 65536",
                self.frames
            ));
        }
        if self.ring_size < 64 || self.ring_size > self.frames || !self.ring_size.is_power_of_two()
        {
            errs.push(format!(
                "{k}.ring_size: {} must be a power of two from 64 up to frames ({})",
                self.ring_size, self.frames
            ));
        }
        if !(1..=256).contains(&self.burst) {
            errs.push(format!("{k}.burst: {} is outside 1-256", self.burst));
        }
        if self.spin_us > 1000 {
            errs.push(format!("{k}.spin_us: {} is above 1000", self.spin_us));
        }
        if self.busy_poll && !(1..=1000).contains(&self.busy_poll_usecs) {
            errs.push(format!(
                "{k}.busy_poll_usecs: {} is outside 1-1000",
                self.busy_poll_usecs
            ));
        }
        if self.busy_poll && !(1..=1024).contains(&self.busy_poll_budget) {
            errs.push(format!(
                "{k}.busy_poll_budget: {} is outside 1-1024",
                self.busy_poll_budget
            ));
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    Native,
    Generic,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SocketConfig {
    /// Most completions a worker handles before it submits its sends.
    pub burst: u32,
    /// Receive buffers per worker (a power of two, 64-32768).
    pub buffers: u32,
    /// Size of each receive buffer in bytes (largest datagram plus 64).
    pub buffer_size: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            backend: BackendChoice::Auto,
            cores: None,
            control_socket: PathBuf::from("/run/tollgate/dataplane.sock"),
            idle_timeout_secs: 60,
            xdp: XdpConfig::default(),
            socket: SocketConfig::default(),
            media_addresses: Vec::new(),
        }
    }
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            interfaces: Vec::new(),
            mode: XdpAttachMode::Native,
            pin_dir: PathBuf::from("/sys/fs/bpf/tollgate"),
            set_forwarding: true,
            afxdp: AfXdpConfig::default(),
        }
    }
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            burst: 64,
            buffers: 4096,
            buffer_size: 2048,
        }
    }
}

impl DataplaneConfig {
    /// Problems with this section, each naming its key; empty when valid.
    /// `host_cores` is the number of cores on this host.
    pub fn validate(&self, host_cores: usize) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(cores) = &self.cores {
            if cores.is_empty() {
                errs.push("dataplane.cores: the list is empty; omit it for the default".into());
            }
            for (i, c) in cores.iter().enumerate() {
                if *c >= host_cores {
                    errs.push(format!(
                        "dataplane.cores[{i}]: core {c} does not exist (this host has cores 0-{})",
                        host_cores.saturating_sub(1)
                    ));
                }
                if cores[..i].contains(c) {
                    errs.push(format!("dataplane.cores[{i}]: core {c} is listed twice"));
                }
            }
        }
        if self.idle_timeout_secs == 0 {
            errs.push("dataplane.idle_timeout_secs: must be at least 1".into());
        }
        if self.backend == BackendChoice::Xdp && self.xdp.interfaces.is_empty() {
            errs.push(
                "dataplane.backend = \"xdp\" needs dataplane.xdp.interfaces (the interfaces media uses)".into(),
            );
        }
        for (i, name) in self.xdp.interfaces.iter().enumerate() {
            if name.is_empty()
                || name.len() > 15
                || name.contains('/')
                || name.contains(char::is_whitespace)
            {
                errs.push(format!(
                    "dataplane.xdp.interfaces[{i}]: {name:?} is not a valid interface name (1-15 characters, no '/' or spaces)"
                ));
            }
        }
        if !self.xdp.pin_dir.is_absolute() {
            errs.push(format!(
                "dataplane.xdp.pin_dir: {:?} must be an absolute path",
                self.xdp.pin_dir
            ));
        }
        self.xdp.afxdp.validate(&mut errs);
        let s = &self.socket;
        if !(1..=1024).contains(&s.burst) {
            errs.push(format!(
                "dataplane.socket.burst: {} is outside 1-1024",
                s.burst
            ));
        }
        if !(64..=32768).contains(&s.buffers) || !s.buffers.is_power_of_two() {
            errs.push(format!(
                "dataplane.socket.buffers: {} must be a power of two from 64 to 32768",
                s.buffers
            ));
        }
        if !(256..=65536).contains(&s.buffer_size) {
            errs.push(format!(
                "dataplane.socket.buffer_size: {} is outside 256-65536 bytes",
                s.buffer_size
            ));
        }
        errs
    }

    /// The cores packet workers run on.
    pub fn worker_cores(&self, host_cores: usize) -> Vec<usize> {
        match &self.cores {
            Some(c) => c.clone(),
            None if host_cores <= 1 => vec![0],
            None => (1..host_cores).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_spare_core_zero() {
        let c = DataplaneConfig::default();
        assert!(c.validate(2).is_empty());
        assert_eq!(c.worker_cores(2), vec![1]);
        assert_eq!(c.worker_cores(1), vec![0]);
        assert_eq!(c.worker_cores(4), vec![1, 2, 3]);
    }

    #[test]
    fn errors_name_keys() {
        let c = DataplaneConfig {
            backend: BackendChoice::Xdp,
            cores: Some(vec![1, 7, 1]),
            socket: SocketConfig {
                buffers: 100,
                ..Default::default()
            },
            ..Default::default()
        };
        let e = c.validate(2).join("\n");
        assert!(
            e.contains("dataplane.cores[1]: core 7 does not exist"),
            "{e}"
        );
        assert!(
            e.contains("dataplane.cores[2]: core 1 is listed twice"),
            "{e}"
        );
        assert!(e.contains("dataplane.xdp.interfaces"), "{e}");
        assert!(e.contains("dataplane.socket.buffers: 100"), "{e}");
    }

    #[test]
    fn afxdp_settings_are_checked() {
        let mut c = DataplaneConfig::default();
        c.xdp.afxdp.frame_size = 3000;
        c.xdp.afxdp.ring_size = 8192;
        let e = c.validate(2).join("\n");
        assert!(e.contains("dataplane.xdp.afxdp.frame_size: 3000"), "{e}");
        assert!(e.contains("dataplane.xdp.afxdp.ring_size: 8192"), "{e}");
        let parsed: DataplaneConfig =
            serde_json::from_str(r#"{"xdp": {"afxdp": {"zero_copy": "off", "busy_poll": true}}}"#)
                .unwrap();
        assert_eq!(parsed.xdp.afxdp.zero_copy, ZeroCopyChoice::Off);
        assert!(parsed.xdp.afxdp.busy_poll && parsed.validate(2).is_empty());
    }
}
