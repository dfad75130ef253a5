//! The host settings `apply` and `revert` read and write, one value at a
//! time: [`Settings`] is the seam (tests put fixtures behind it), and
//! [`HostSettings`] is the host: /proc/sys and sysfs files under a root
//! directory standing for `/`, and ethtool ioctls for features, rings and
//! channels. Nothing here shells out.

use crate::ethtool::{Ethtool, EthtoolSet};
use crate::host::Host;
use crate::model::Setting;
use std::fmt;
use std::path::{Path, PathBuf};

/// Reads and writes settings as the strings the kernel shows (a read's
/// trailing newline removed).
pub trait Settings {
    fn read(&self, setting: &Setting) -> Result<String, String>;
    fn write(&mut self, setting: &Setting, value: &str) -> Result<(), String>;
}

/// Two values are the same setting when they differ only in white space
/// (`/proc/sys/net/ipv4/tcp_rmem` reads back with tabs).
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Sysctl { name } => write!(f, "sysctl {name}"),
            Setting::Feature { device, feature } => write!(f, "{device} feature {feature}"),
            Setting::Ring { device, ring } => write!(f, "{device} {ring} ring size"),
            Setting::Channels { device } => write!(f, "{device} combined channels"),
            Setting::ThreadedNapi { device } => write!(f, "{device} threaded NAPI"),
            Setting::IrqAffinity { irq } => write!(f, "IRQ {irq} affinity"),
        }
    }
}

/// The `host`'s files, with `ethtool` for device settings.
pub struct HostSettings<E> {
    host: Host,
    ethtool: E,
}

impl<E: Ethtool + EthtoolSet> HostSettings<E> {
    pub fn new(host: Host, ethtool: E) -> Self {
        HostSettings { host, ethtool }
    }

    /// The ethtool it writes through (a fixture's holds the writes).
    pub fn ethtool(&self) -> &E {
        &self.ethtool
    }

    /// The file holding `setting`, or None for the ethtool settings.
    fn file(&self, setting: &Setting) -> Result<Option<PathBuf>, String> {
        Ok(Some(match setting {
            Setting::Sysctl { name } => self.host.path("/proc/sys").join(sysctl_path(name)?),
            Setting::ThreadedNapi { device } => {
                let device = device_name(device)?;
                self.host.path(&format!("/sys/class/net/{device}/threaded"))
            }
            Setting::IrqAffinity { irq } => self
                .host
                .path(&format!("/proc/irq/{irq}/smp_affinity_list")),
            Setting::Feature { .. } | Setting::Ring { .. } | Setting::Channels { .. } => {
                return Ok(None)
            }
        }))
    }
}

fn io_why(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

impl<E: Ethtool + EthtoolSet> Settings for HostSettings<E> {
    fn read(&self, setting: &Setting) -> Result<String, String> {
        match self.file(setting)? {
            Some(path) => std::fs::read_to_string(&path)
                .map(|s| s.trim_end_matches('\n').to_string())
                .map_err(|e| io_why(&path, e)),
            None => read_device(&self.ethtool, setting),
        }
    }

    fn write(&mut self, setting: &Setting, value: &str) -> Result<(), String> {
        match self.file(setting)? {
            // One write(2) of the whole value, as the kernel wants for
            // /proc/sys and sysfs; the truncation only matters on fixtures.
            Some(path) => std::fs::write(&path, format!("{value}\n")).map_err(|e| io_why(&path, e)),
            None => write_device(&mut self.ethtool, setting, value),
        }
    }
}

/// `/proc/sys` path of a dotted sysctl name; as sysctl(8) spells it, a
/// `/` inside a component stands for a dot (`net.ipv4.conf.eth0/100.rp_filter`).
fn sysctl_path(name: &str) -> Result<PathBuf, String> {
    let parts: Vec<String> = name.split('.').map(|p| p.replace('/', ".")).collect();
    if parts.iter().any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(format!("{name:?} is not a sysctl name"));
    }
    Ok(parts.iter().collect())
}

fn device_name(device: &str) -> Result<&str, String> {
    if device.is_empty() || device.contains('/') || device == "." || device == ".." {
        return Err(format!("{device:?} is not a network device name"));
    }
    Ok(device)
}

fn number(setting: &Setting, value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number, as {setting} needs"))
}

fn on_off(setting: &Setting, value: &str) -> Result<bool, String> {
    match value.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!(
            "{value:?} is neither \"on\" nor \"off\", as {setting} needs"
        )),
    }
}

/// The kernel's name of an ethtool feature, for ethtool(8)'s long names.
fn kernel_feature(name: &str) -> &str {
    match name {
        "generic-receive-offload" => "rx-gro",
        "large-receive-offload" => "rx-lro",
        "generic-segmentation-offload" => "tx-generic-segmentation",
        "rx-checksumming" => "rx-checksum",
        other => other,
    }
}

fn unsupported(setting: &Setting) -> String {
    format!("the driver does not support reading {setting}")
}

fn read_device(ethtool: &impl Ethtool, setting: &Setting) -> Result<String, String> {
    let e = |e: crate::ethtool::EthtoolError| e.to_string();
    match setting {
        Setting::Feature { device, feature } => {
            let features = ethtool.features(device).map_err(e)?;
            let name = kernel_feature(feature);
            let f = features
                .ok_or_else(|| unsupported(setting))?
                .into_iter()
                .find(|f| f.name == name)
                .ok_or_else(|| format!("{device} has no feature {feature:?}"))?;
            Ok(if f.active { "on" } else { "off" }.to_string())
        }
        Setting::Ring { device, ring } => {
            let r = ethtool.rings(device).map_err(e)?;
            let r = r.ok_or_else(|| unsupported(setting))?;
            match ring.as_str() {
                "rx" => Ok(r.rx.to_string()),
                "tx" => Ok(r.tx.to_string()),
                _ => Err(format!("ring {ring:?} is neither \"rx\" nor \"tx\"")),
            }
        }
        Setting::Channels { device } => {
            let c = ethtool.channels(device).map_err(e)?;
            Ok(c.ok_or_else(|| unsupported(setting))?.combined.to_string())
        }
        _ => Err(format!("{setting} is a file, not an ethtool setting")),
    }
}

fn write_device(
    ethtool: &mut impl EthtoolSet,
    setting: &Setting,
    value: &str,
) -> Result<(), String> {
    let done = match setting {
        Setting::Feature { device, feature } => {
            ethtool.set_feature(device, kernel_feature(feature), on_off(setting, value)?)
        }
        Setting::Ring { device, ring } => ethtool.set_ring(device, ring, number(setting, value)?),
        Setting::Channels { device } => ethtool.set_combined(device, number(setting, value)?),
        _ => return Err(format!("{setting} is a file, not an ethtool setting")),
    };
    done.map_err(|e| e.to_string())
}

/// Settings in memory for unit tests: every write is recorded, and writes
/// of `refuse` fail as the kernel would refuse them.
#[cfg(test)]
pub(crate) mod memory {
    use super::Settings;
    use crate::model::Setting;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct Memory {
        pub values: HashMap<Setting, String>,
        pub writes: Vec<(Setting, String)>,
        pub refuse: Option<Setting>,
        /// Every write checks this file exists (the revert file comes first).
        pub must_exist: Option<std::path::PathBuf>,
    }

    impl Settings for Memory {
        fn read(&self, s: &Setting) -> Result<String, String> {
            self.values.get(s).cloned().ok_or_else(|| format!("no {s}"))
        }

        fn write(&mut self, s: &Setting, v: &str) -> Result<(), String> {
            if let Some(p) = &self.must_exist {
                assert!(
                    p.exists(),
                    "{s} written before the revert file {}",
                    p.display()
                );
            }
            self.writes.push((s.clone(), v.to_string()));
            if self.refuse.as_ref() == Some(s) {
                return Err("Invalid argument".into());
            }
            self.values.insert(s.clone(), v.to_string());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethtool::FixtureEthtool;

    #[test]
    fn sysctl_names_map_to_proc_sys_with_slashes_for_dots() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/100.rp_filter").unwrap(),
            PathBuf::from("net/ipv4/conf/eth0.100/rp_filter")
        );
        for bad in ["net..core", "net.//.x", ".net", "net.core."] {
            assert!(sysctl_path(bad).is_err(), "{bad}");
        }
        assert!(device_name("../x").is_err() && device_name("..").is_err());
    }

    #[test]
    fn files_are_read_without_their_newline_and_written_whole() {
        let root = std::env::temp_dir().join(format!("tgta-settings-{}", std::process::id()));
        let dir = root.join("proc/sys/net/core");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("somaxconn"), "4096\n").unwrap();
        let mut s = HostSettings::new(Host::at(&root), FixtureEthtool::default());
        let somaxconn = Setting::Sysctl {
            name: "net.core.somaxconn".into(),
        };
        assert_eq!(s.read(&somaxconn).unwrap(), "4096");
        s.write(&somaxconn, "65535").unwrap();
        assert_eq!(s.read(&somaxconn).unwrap(), "65535");
        let missing = Setting::ThreadedNapi {
            device: "eth9".into(),
        };
        let e = s.read(&missing).unwrap_err();
        assert!(e.contains("sys/class/net/eth9/threaded"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn device_settings_go_through_ethtool_by_the_kernel_or_ethtool_8_name() {
        use crate::ethtool::{Channels, Feature, FixtureDevice, Rings};
        let feature = |name: &str, changeable| Feature {
            name: name.into(),
            active: true,
            changeable,
        };
        let dev = FixtureDevice {
            features: Some(vec![feature("rx-gro", true), feature("rx-lro", false)]),
            rings: Some(Rings {
                rx: 512,
                rx_max: 4096,
                tx: 512,
                tx_max: 4096,
            }),
            channels: Some(Channels {
                rx: 0,
                rx_max: 0,
                tx: 0,
                tx_max: 0,
                combined: 2,
                combined_max: 4,
            }),
            ..FixtureDevice::default()
        };
        let mut ethtool = FixtureEthtool::default();
        ethtool.devices.insert("eth1".into(), dev);
        let mut s = HostSettings::new(Host::at("/nonexistent"), ethtool);
        let feat = |f: &str| Setting::Feature {
            device: "eth1".into(),
            feature: f.into(),
        };
        s.write(&feat("generic-receive-offload"), "off").unwrap();
        assert_eq!(s.read(&feat("rx-gro")).unwrap(), "off");
        let e = s.write(&feat("large-receive-offload"), "off").unwrap_err();
        assert_eq!(e, "eth1: rx-lro is fixed by the driver");
        let e = s.write(&feat("rx-gro"), "yes").unwrap_err();
        assert!(e.contains("neither \"on\" nor \"off\""), "{e}");
        let rx = Setting::Ring {
            device: "eth1".into(),
            ring: "rx".into(),
        };
        s.write(&rx, "4096").unwrap();
        assert_eq!(s.read(&rx).unwrap(), "4096");
        let channels = Setting::Channels {
            device: "eth1".into(),
        };
        assert!(s.write(&channels, "8").is_err());
        assert_eq!(s.read(&channels).unwrap(), "2");
    }

    #[test]
    fn values_differing_in_white_space_are_the_same() {
        assert!(same_value("4096\t131072\t6291456", "4096 131072 6291456"));
        assert!(!same_value("0-3", "0,1,2,3"));
    }
}
