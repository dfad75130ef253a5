//! What only the SIOCETHTOOL ioctl tells about a device: driver and
//! firmware, offload features, ring sizes, channels, RSS hashing and
//! indirection. [`Ethtool`] is the seam: [`SysEthtool`] asks the kernel,
//! [`FixtureEthtool`] reads `ethtool.json` at the root of a fixture tree.
//! "Not supported by this driver" is `None`, not an error. Feature names
//! are the kernel's ETH_SS_FEATURES strings (`rx-gro`, `rx-lro`,
//! `rx-gro-hw`, `rx-checksum`), not the ethtool CLI's aliases (`gro`).

use crate::host::Host;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// An ethtool query failed for a reason other than "not supported".
#[derive(Debug, thiserror::Error)]
pub enum EthtoolError {
    #[error("ethtool {op} on {device}: {source}")]
    Ioctl {
        device: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("{device:?} is not a valid interface name (at most 15 bytes, no NUL)")]
    BadName { device: String },
    #[error("cannot open a socket for ethtool: {0}")]
    Socket(io::Error),
    #[error("ethtool fixture {path}: {what}")]
    Fixture { path: PathBuf, what: String },
    #[error("{device}: {what}")]
    Refused { device: String, what: String },
}

/// ETHTOOL_GDRVINFO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverInfo {
    pub driver: String,
    pub version: String,
    pub firmware: String,
    pub bus_info: String,
}

/// One offload feature (ETHTOOL_GFEATURES, named by ETH_SS_FEATURES strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub active: bool,
    /// The driver lets it be turned on and off (it is in `available`).
    pub changeable: bool,
}

/// ETHTOOL_GRINGPARAM: current and maximum descriptors per ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rings {
    pub rx: u32,
    pub rx_max: u32,
    pub tx: u32,
    pub tx_max: u32,
}

/// ETHTOOL_GCHANNELS: current and maximum queues by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    pub rx: u32,
    pub rx_max: u32,
    pub tx: u32,
    pub tx_max: u32,
    pub combined: u32,
    pub combined_max: u32,
}

/// ETHTOOL_GRXFH for UDP over IPv4: which header fields RSS hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpHash {
    pub ip_src: bool,
    pub ip_dst: bool,
    pub port_src: bool,
    pub port_dst: bool,
}

impl UdpHash {
    /// Addresses and ports: calls from one peer spread over the queues.
    pub fn four_tuple(&self) -> bool {
        self.ip_src && self.ip_dst && self.port_src && self.port_dst
    }
}

/// The read side of ethtool, per device.
pub trait Ethtool {
    fn driver_info(&self, device: &str) -> Result<Option<DriverInfo>, EthtoolError>;
    fn features(&self, device: &str) -> Result<Option<Vec<Feature>>, EthtoolError>;
    fn rings(&self, device: &str) -> Result<Option<Rings>, EthtoolError>;
    fn channels(&self, device: &str) -> Result<Option<Channels>, EthtoolError>;
    fn udp4_hash(&self, device: &str) -> Result<Option<UdpHash>, EthtoolError>;
    /// The RSS indirection table: entry i names the rx queue of hash bucket i.
    fn rss_indirection(&self, device: &str) -> Result<Option<Vec<u32>>, EthtoolError>;
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GRINGPARAM: u32 = 0x10;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GRXFH: u32 = 0x29;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GRXFHINDIR: u32 = 0x38;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETHTOOL_SRINGPARAM: u32 = 0x11;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETHTOOL_SCHANNELS: u32 = 0x3d;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;
const UDP_V4_FLOW: u32 = 0x02;
const RXH_IP_SRC: u64 = 1 << 4;
const RXH_IP_DST: u64 = 1 << 5;
const RXH_L4_B_0_1: u64 = 1 << 6;
const RXH_L4_B_2_3: u64 = 1 << 7;

/// `struct ifreq` with `ifr_data`.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct DrvInfoRaw {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
#[derive(Default)]
struct SsetInfoRaw {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    count: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct RxfhRaw {
    cmd: u32,
    flow_type: u32,
    data: u64,
}

/// Ethtool through the kernel, in the network namespace the calling thread
/// was in when [`SysEthtool::new`] ran.
pub struct SysEthtool {
    fd: OwnedFd,
}

impl SysEthtool {
    pub fn new() -> Result<SysEthtool, EthtoolError> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(EthtoolError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(SysEthtool {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Runs one SIOCETHTOOL command whose buffer starts with its `cmd`.
    /// Ok(false) when the driver does not support it.
    ///
    /// # Safety
    /// `data` must point to a buffer laid out as the kernel expects for
    /// the command in its first word, valid for reads and writes.
    pub(crate) unsafe fn ioctl(
        &self,
        device: &str,
        op: &'static str,
        data: *mut libc::c_void,
    ) -> Result<bool, EthtoolError> {
        let bytes = device.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(EthtoolError::BadName {
                device: device.to_string(),
            });
        }
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data,
            _pad: [0; 16],
        };
        req.name[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: req is a valid ifreq; data is valid per the caller.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc >= 0 {
            return Ok(true);
        }
        let source = io::Error::last_os_error();
        match source.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(EthtoolError::Ioctl {
                device: device.to_string(),
                op,
                source,
            }),
        }
    }

    /// ETHTOOL_GSTRINGS of the feature set: the names of the feature bits.
    fn feature_names(&self, device: &str) -> Result<Option<Vec<String>>, EthtoolError> {
        let mut info = SsetInfoRaw {
            cmd: ETHTOOL_GSSET_INFO,
            sset_mask: 1 << ETH_SS_FEATURES,
            ..Default::default()
        };
        // SAFETY: info is a struct ethtool_sset_info with room for one count.
        if !unsafe {
            self.ioctl(
                device,
                "ETHTOOL_GSSET_INFO",
                (&mut info as *mut SsetInfoRaw).cast(),
            )?
        } {
            return Ok(None);
        }
        if info.sset_mask & (1 << ETH_SS_FEATURES) == 0 {
            return Ok(None);
        }
        let n = info.count as usize;
        // struct ethtool_gstrings: cmd, string_set, len, then n * 32 bytes.
        let mut buf = vec![0u32; 3 + n * ETH_GSTRING_LEN / 4];
        buf[0] = ETHTOOL_GSTRINGS;
        buf[1] = ETH_SS_FEATURES;
        buf[2] = n as u32;
        // SAFETY: buf is a struct ethtool_gstrings with room for n strings.
        if !unsafe { self.ioctl(device, "ETHTOOL_GSTRINGS", buf.as_mut_ptr().cast())? } {
            return Ok(None);
        }
        // SAFETY: reading the u32 buffer's own bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(buf[3..].as_ptr().cast::<u8>(), n * ETH_GSTRING_LEN)
        };
        Ok(Some(bytes.chunks(ETH_GSTRING_LEN).map(c_str).collect()))
    }
}

impl SysEthtool {
    /// A command on a struct of nine u32s (cmd first): ethtool_ringparam
    /// and ethtool_channels, read or written whole. None when unsupported.
    fn nine_words(
        &self,
        device: &str,
        cmd: u32,
        op: &'static str,
    ) -> Result<Option<[u32; 9]>, EthtoolError> {
        self.put_nine_words(device, cmd, op, [cmd, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    fn put_nine_words(
        &self,
        device: &str,
        cmd: u32,
        op: &'static str,
        mut raw: [u32; 9],
    ) -> Result<Option<[u32; 9]>, EthtoolError> {
        raw[0] = cmd;
        // SAFETY: raw is a struct ethtool_ringparam / ethtool_channels, as
        // `cmd` expects.
        Ok(unsafe { self.ioctl(device, op, raw.as_mut_ptr().cast())? }.then_some(raw))
    }

    /// Gets the nine-word struct with `get`, sets word `index` to `value`
    /// and writes it back with `set`.
    fn set_word(
        &self,
        device: &str,
        (get, set): ((u32, &'static str), (u32, &'static str)),
        index: usize,
        value: u32,
    ) -> Result<(), EthtoolError> {
        let refused = |what: String| EthtoolError::Refused {
            device: device.to_string(),
            what,
        };
        let mut raw = self
            .nine_words(device, get.0, get.1)?
            .ok_or_else(|| refused(format!("the driver does not support {}", get.1)))?;
        raw[index] = value;
        self.put_nine_words(device, set.0, set.1, raw)?
            .map(|_| ())
            .ok_or_else(|| refused(format!("the driver does not support {}", set.1)))
    }
}

/// The set side of ethtool: what `tune apply` and `tune revert` change.
pub trait EthtoolSet {
    /// Turns a feature (by its kernel name, `rx-gro`) on or off; an error
    /// when it is fixed or the kernel keeps it as it was.
    fn set_feature(&mut self, device: &str, feature: &str, on: bool) -> Result<(), EthtoolError>;
    /// Sets the `rx` or `tx` ring size.
    fn set_ring(&mut self, device: &str, ring: &str, size: u32) -> Result<(), EthtoolError>;
    /// Sets the number of combined channels.
    fn set_combined(&mut self, device: &str, count: u32) -> Result<(), EthtoolError>;
}

impl EthtoolSet for SysEthtool {
    fn set_feature(&mut self, device: &str, feature: &str, on: bool) -> Result<(), EthtoolError> {
        let refused = |what: String| EthtoolError::Refused {
            device: device.to_string(),
            what,
        };
        let names = self
            .feature_names(device)?
            .ok_or_else(|| refused("the driver reports no features".into()))?;
        let index = names
            .iter()
            .position(|n| n == feature)
            .ok_or_else(|| refused(format!("no feature {feature:?}")))?;
        let state = |on: bool| if on { "on" } else { "off" };
        let current = self.features(device)?.unwrap_or_default();
        if current.iter().any(|f| f.name == feature && !f.changeable) {
            return Err(refused(format!("{feature} is fixed by the driver")));
        }
        // struct ethtool_sfeatures: cmd, size, then per block valid, requested.
        let blocks = names.len().div_ceil(32);
        let mut buf = vec![0u32; 2 + 2 * blocks];
        buf[0] = ETHTOOL_SFEATURES;
        buf[1] = blocks as u32;
        let bit = 1u32 << (index % 32);
        buf[2 + 2 * (index / 32)] = bit;
        buf[3 + 2 * (index / 32)] = if on { bit } else { 0 };
        // SAFETY: buf is a struct ethtool_sfeatures with `blocks` blocks.
        if !unsafe { self.ioctl(device, "ETHTOOL_SFEATURES", buf.as_mut_ptr().cast())? } {
            return Err(refused(
                "the driver does not support ETHTOOL_SFEATURES".into(),
            ));
        }
        let now = self.features(device)?.unwrap_or_default();
        match now.iter().find(|f| f.name == feature) {
            Some(f) if f.active == on => Ok(()),
            _ => Err(refused(format!(
                "the kernel kept {feature} {} (another setting holds it)",
                state(!on)
            ))),
        }
    }

    fn set_ring(&mut self, device: &str, ring: &str, size: u32) -> Result<(), EthtoolError> {
        // Pending counts: rx is word 5, tx word 8.
        let index = match ring {
            "rx" => 5,
            "tx" => 8,
            _ => {
                return Err(EthtoolError::Refused {
                    device: device.to_string(),
                    what: format!("ring {ring:?} is neither \"rx\" nor \"tx\""),
                })
            }
        };
        let ops = (
            (ETHTOOL_GRINGPARAM, "ETHTOOL_GRINGPARAM"),
            (ETHTOOL_SRINGPARAM, "ETHTOOL_SRINGPARAM"),
        );
        self.set_word(device, ops, index, size)
    }

    fn set_combined(&mut self, device: &str, count: u32) -> Result<(), EthtoolError> {
        let ops = (
            (ETHTOOL_GCHANNELS, "ETHTOOL_GCHANNELS"),
            (ETHTOOL_SCHANNELS, "ETHTOOL_SCHANNELS"),
        );
        // combined_count is word 8.
        self.set_word(device, ops, 8, count)
    }
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Ethtool for SysEthtool {
    fn driver_info(&self, device: &str) -> Result<Option<DriverInfo>, EthtoolError> {
        let mut raw = DrvInfoRaw {
            cmd: ETHTOOL_GDRVINFO,
            ..Default::default()
        };
        // SAFETY: raw is a struct ethtool_drvinfo.
        if !unsafe {
            self.ioctl(
                device,
                "ETHTOOL_GDRVINFO",
                (&mut raw as *mut DrvInfoRaw).cast(),
            )?
        } {
            return Ok(None);
        }
        Ok(Some(DriverInfo {
            driver: c_str(&raw.driver),
            version: c_str(&raw.version),
            firmware: c_str(&raw.fw_version),
            bus_info: c_str(&raw.bus_info),
        }))
    }

    fn features(&self, device: &str) -> Result<Option<Vec<Feature>>, EthtoolError> {
        let Some(names) = self.feature_names(device)? else {
            return Ok(None);
        };
        let blocks = names.len().div_ceil(32);
        // struct ethtool_gfeatures: cmd, size, then per block available,
        // requested, active, never_changed.
        let mut buf = vec![0u32; 2 + 4 * blocks];
        buf[0] = ETHTOOL_GFEATURES;
        buf[1] = blocks as u32;
        // SAFETY: buf is a struct ethtool_gfeatures with `blocks` blocks.
        if !unsafe { self.ioctl(device, "ETHTOOL_GFEATURES", buf.as_mut_ptr().cast())? } {
            return Ok(None);
        }
        let features = names
            .into_iter()
            .enumerate()
            .filter(|(_, name)| !name.is_empty())
            .map(|(i, name)| {
                let block = &buf[2 + 4 * (i / 32)..][..4];
                let bit = 1u32 << (i % 32);
                Feature {
                    name,
                    active: block[2] & bit != 0,
                    changeable: block[0] & bit != 0 && block[3] & bit == 0,
                }
            })
            .collect();
        Ok(Some(features))
    }

    fn rings(&self, device: &str) -> Result<Option<Rings>, EthtoolError> {
        // struct ethtool_ringparam: cmd, rx/rx_mini/rx_jumbo/tx max, then
        // rx/rx_mini/rx_jumbo/tx pending.
        let Some(raw) = self.nine_words(device, ETHTOOL_GRINGPARAM, "ETHTOOL_GRINGPARAM")? else {
            return Ok(None);
        };
        Ok(Some(Rings {
            rx_max: raw[1],
            tx_max: raw[4],
            rx: raw[5],
            tx: raw[8],
        }))
    }

    fn channels(&self, device: &str) -> Result<Option<Channels>, EthtoolError> {
        // struct ethtool_channels: cmd, max rx/tx/other/combined, then counts.
        let Some(raw) = self.nine_words(device, ETHTOOL_GCHANNELS, "ETHTOOL_GCHANNELS")? else {
            return Ok(None);
        };
        Ok(Some(Channels {
            rx_max: raw[1],
            tx_max: raw[2],
            combined_max: raw[4],
            rx: raw[5],
            tx: raw[6],
            combined: raw[8],
        }))
    }

    fn udp4_hash(&self, device: &str) -> Result<Option<UdpHash>, EthtoolError> {
        // ETHTOOL_GRXFH reads and writes only cmd, flow_type and data.
        let mut raw = RxfhRaw {
            cmd: ETHTOOL_GRXFH,
            flow_type: UDP_V4_FLOW,
            data: 0,
        };
        // SAFETY: raw is the head of a struct ethtool_rxnfc, all GRXFH uses.
        if !unsafe { self.ioctl(device, "ETHTOOL_GRXFH", (&mut raw as *mut RxfhRaw).cast())? } {
            return Ok(None);
        }
        Ok(Some(UdpHash {
            ip_src: raw.data & RXH_IP_SRC != 0,
            ip_dst: raw.data & RXH_IP_DST != 0,
            port_src: raw.data & RXH_L4_B_0_1 != 0,
            port_dst: raw.data & RXH_L4_B_2_3 != 0,
        }))
    }

    fn rss_indirection(&self, device: &str) -> Result<Option<Vec<u32>>, EthtoolError> {
        // struct ethtool_rxfh_indir: cmd, size, ring_index[size]; size 0
        // asks for the size.
        let mut head = [ETHTOOL_GRXFHINDIR, 0];
        // SAFETY: head is a struct ethtool_rxfh_indir with no entries.
        if !unsafe { self.ioctl(device, "ETHTOOL_GRXFHINDIR", head.as_mut_ptr().cast())? } {
            return Ok(None);
        }
        let size = head[1] as usize;
        if size == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u32; 2 + size];
        buf[0] = ETHTOOL_GRXFHINDIR;
        buf[1] = size as u32;
        // SAFETY: buf is a struct ethtool_rxfh_indir with `size` entries.
        if !unsafe { self.ioctl(device, "ETHTOOL_GRXFHINDIR", buf.as_mut_ptr().cast())? } {
            return Ok(None);
        }
        Ok(Some(buf.split_off(2)))
    }
}

/// One device in `ethtool.json`; a missing part is "not supported".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureDevice {
    pub driver: Option<DriverInfo>,
    pub features: Option<Vec<Feature>>,
    pub rings: Option<Rings>,
    pub channels: Option<Channels>,
    pub udp4_hash: Option<UdpHash>,
    pub rss_indirection: Option<Vec<u32>>,
}

/// Ethtool answers read from `ethtool.json` at a fixture tree's root:
/// `{ "eth1": { "driver": {...}, "features": [...], ... } }`.
#[derive(Debug, Clone, Default)]
pub struct FixtureEthtool {
    pub path: PathBuf,
    pub devices: BTreeMap<String, FixtureDevice>,
}

impl FixtureEthtool {
    pub fn load(host: &Host) -> Result<FixtureEthtool, EthtoolError> {
        let path = host.path("/ethtool.json");
        let fail = |what: String| EthtoolError::Fixture {
            path: path.clone(),
            what,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
        let devices = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        Ok(FixtureEthtool { path, devices })
    }

    fn device(&self, device: &str) -> Result<&FixtureDevice, EthtoolError> {
        self.devices
            .get(device)
            .ok_or_else(|| no_fixture_device(device))
    }
}

impl Ethtool for FixtureEthtool {
    fn driver_info(&self, device: &str) -> Result<Option<DriverInfo>, EthtoolError> {
        Ok(self.device(device)?.driver.clone())
    }
    fn features(&self, device: &str) -> Result<Option<Vec<Feature>>, EthtoolError> {
        Ok(self.device(device)?.features.clone())
    }
    fn rings(&self, device: &str) -> Result<Option<Rings>, EthtoolError> {
        Ok(self.device(device)?.rings)
    }
    fn channels(&self, device: &str) -> Result<Option<Channels>, EthtoolError> {
        Ok(self.device(device)?.channels)
    }
    fn udp4_hash(&self, device: &str) -> Result<Option<UdpHash>, EthtoolError> {
        Ok(self.device(device)?.udp4_hash)
    }
    fn rss_indirection(&self, device: &str) -> Result<Option<Vec<u32>>, EthtoolError> {
        Ok(self.device(device)?.rss_indirection.clone())
    }
}

/// Writes change the fixture in memory, so apply and revert run on fixture
/// trees; a feature the fixture marks fixed is refused as the kernel does.
impl EthtoolSet for FixtureEthtool {
    fn set_feature(&mut self, device: &str, feature: &str, on: bool) -> Result<(), EthtoolError> {
        let refused = |what: String| EthtoolError::Refused {
            device: device.to_string(),
            what,
        };
        let f = self
            .device_mut(device)?
            .features
            .iter_mut()
            .flatten()
            .find(|f| f.name == feature)
            .ok_or_else(|| refused(format!("no feature {feature:?}")))?;
        if !f.changeable {
            return Err(refused(format!("{feature} is fixed by the driver")));
        }
        f.active = on;
        Ok(())
    }

    fn set_ring(&mut self, device: &str, ring: &str, size: u32) -> Result<(), EthtoolError> {
        let r = self.device_mut(device)?.rings.as_mut();
        match (r, ring) {
            (Some(r), "rx") => r.rx = size,
            (Some(r), "tx") => r.tx = size,
            _ => return Err(fixture_refuses(device, &format!("{ring} ring"))),
        }
        Ok(())
    }

    fn set_combined(&mut self, device: &str, count: u32) -> Result<(), EthtoolError> {
        match self.device_mut(device)?.channels.as_mut() {
            Some(c) if count <= c.combined_max => c.combined = count,
            _ => {
                return Err(fixture_refuses(
                    device,
                    &format!("{count} combined channels"),
                ))
            }
        }
        Ok(())
    }
}

impl FixtureEthtool {
    fn device_mut(&mut self, device: &str) -> Result<&mut FixtureDevice, EthtoolError> {
        self.devices
            .get_mut(device)
            .ok_or_else(|| no_fixture_device(device))
    }
}

/// A device the fixture does not have, as the kernel says it (ENODEV).
fn no_fixture_device(device: &str) -> EthtoolError {
    EthtoolError::Ioctl {
        device: device.to_string(),
        op: "(fixture)",
        source: io::Error::from_raw_os_error(libc::ENODEV),
    }
}

fn fixture_refuses(device: &str, what: &str) -> EthtoolError {
    EthtoolError::Refused {
        device: device.to_string(),
        what: format!("the fixture does not support {what}"),
    }
}
