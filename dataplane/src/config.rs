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
}
