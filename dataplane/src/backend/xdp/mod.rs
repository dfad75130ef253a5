//! The XDP backend: loads Tollgate's XDP program, attaches it to the media
//! interfaces, and keeps its flow map in step with the flow table.
//!
//! Everything is pinned under `<pin_dir>/v<ABI>/`: maps in `maps/`, one link
//! per interface in `links/`. A process that starts and finds pins adopts
//! them: it loads its program against the pinned maps and swaps it into the
//! pinned links atomically (`bpf_link_update`), so packets keep flowing while
//! the process is gone and while it comes back. Leaving the process does not
//! detach anything; [`detach`] does, on purpose. [`devices`] finds the
//! devices that hold the media addresses, for `backend = "auto"`.
//!
//! Flows with stages run the media pipeline on [`afxdp`] workers: the
//! program rewrites their frames as for any flow and hands them to the
//! AF_XDP socket of their rx queue ([`xsk`] is the ring layer). A flow
//! moves between the fast path and a worker by one map write: stages are
//! installed on every worker (and acknowledged) before the entry gains
//! `FLOW_PIPELINE`; a flow losing them loses the flag first and its slot
//! is removed from the workers only later ([`RETIRE_AFTER`]), so frames
//! already in the rx rings are still handled: nothing lost, nothing twice.
//! Stages do not survive a restart of the process (the map keeps no
//! stages): adopted pipeline flows go back to the fast path until the
//! control plane sends them again.

pub mod afxdp;
pub mod devices;
mod neighbour;
pub mod xsk;

use super::{ifindex, Backend, BackendError, FlowCounters, WorkerReport};
use crate::config::{XdpAttachMode, XdpConfig};
use crate::flow::{self, Flow};
use crate::pipeline::{Event, PipelineFlow, Slot};
use crate::quality::{Quality, RemoteReport, RtcpReport};
/// `bpf_map_lookup_elem_flags`: copy a value holding a `bpf_spin_lock` under it.
const BPF_F_LOCK: u64 = 4;
use afxdp::{Interface, Route, Workers};
use aya::maps::{DevMapHash, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, XskMap};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tollgate_ebpf::abi::{self, FlowAction, FlowKey, FlowQuality, FlowStats, Learned};
use tollgate_ebpf::maps as names;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How long a slot whose flow left the pipeline stays on the workers, for
/// frames already steered to them.
pub const RETIRE_AFTER: Duration = Duration::from_millis(200);

/// Pipeline slots by flow, with the free ones and those retiring.
#[derive(Default)]
struct Slots {
    by_local: std::collections::HashMap<SocketAddr, Slot>,
    free: Vec<Slot>,
    next: Slot,
    retiring: Vec<(Slot, Instant)>,
}

impl Slots {
    fn get_or_alloc(&mut self, local: SocketAddr) -> Slot {
        if let Some(s) = self.by_local.get(&local) {
            return *s;
        }
        let s = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        self.by_local.insert(local, s);
        s
    }

    /// The flow at `local` leaves the pipeline: its slot retires.
    fn retire(&mut self, local: SocketAddr) {
        if let Some(s) = self.by_local.remove(&local) {
            self.retiring.push((s, Instant::now()));
        }
    }

    /// Slots retired long enough ago, now free again.
    fn reap(&mut self, workers: &mut Option<Workers>) {
        let now = Instant::now();
        let free = &mut self.free;
        self.retiring.retain(|(s, at)| {
            if now.duration_since(*at) < RETIRE_AFTER {
                return true;
            }
            if let Some(w) = workers.as_mut() {
                w.remove(*s);
            }
            free.push(*s);
            false
        });
    }
}

pub struct XdpBackend {
    flows: HashMap<MapData, FlowKey, FlowAction>,
    learned: HashMap<MapData, FlowKey, Learned>,
    stats: PerCpuHashMap<MapData, FlowKey, FlowStats>,
    quality: HashMap<MapData, FlowKey, FlowQuality>,
    counters: PerCpuArray<MapData, u64>,
    adopted: Vec<Flow>,
    /// `drop_no_neighbour` at the last housekeeping, to notice new drops.
    no_neigh_seen: u64,
    /// The AF_XDP pipeline workers, unless disabled or refused by the kernel.
    workers: Option<Workers>,
    slots: Slots,
    /// Holds the XSKMAP the workers' sockets are in.
    _xsks: Option<XskMap<MapData>>,
    /// Keeps the program loaded; the links hold it attached.
    _ebpf: Ebpf,
    _links: Vec<FdLink>,
}

fn err(detail: impl std::fmt::Display) -> BackendError {
    BackendError::Other(detail.to_string())
}

/// `e` and its sources: aya's syscall errors keep the errno (what the kernel
/// said) in the source, not in their message.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s += &format!(": {cause}");
        next = cause.source();
    }
    s
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> BackendError {
    move |e| BackendError::Map {
        map,
        detail: e.to_string(),
    }
}

fn versioned(pin_dir: &Path) -> PathBuf {
    pin_dir.join(format!("v{}", abi::ABI_VERSION))
}

fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The kernel driver behind interface `name` (`ethtool -i`), if it says.
fn driver(name: &str) -> Option<String> {
    const ETHTOOL_GDRVINFO: u32 = 3;
    // struct ethtool_drvinfo: cmd, then driver[32], then fields we skip.
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 192],
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 192],
    };
    // SAFETY: an all-zero ifreq is valid; we fill the name and data pointer.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
    // SAFETY: a datagram socket only used for this ioctl, closed by OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is ours from here on.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: SIOCETHTOOL with GDRVINFO writes at most sizeof(drvinfo) into `info`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } != 0 {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Mounts a bpffs at `dir` unless one is already there.
fn ensure_bpffs(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let c = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: statfs fills the struct for a valid path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    let fs = CString::new("bpf").expect("no NUL");
    // SAFETY: mount(2) with valid strings and no data.
    if unsafe { libc::mount(fs.as_ptr(), c.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    tracing::info!(dir = %dir.display(), "mounted a bpffs for pinned maps and links");
    Ok(())
}

fn set_forwarding(ifname: &str) {
    for fam in ["ipv4", "ipv6"] {
        let p = format!("/proc/sys/net/{fam}/conf/{ifname}/forwarding");
        if let Err(e) = std::fs::write(&p, "1") {
            tracing::warn!(path = %p, error = %e, "could not enable forwarding; FIB lookups from XDP may fail");
        }
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, BackendError> {
    ebpf.program_mut(tollgate_ebpf::PROGRAM)
        .ok_or_else(|| err("the XDP object has no program `tollgate_relay`"))?
        .try_into()
        .map_err(err)
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, BackendError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let m = ebpf
        .take_map(name)
        .ok_or_else(|| err(format!("the XDP object has no map `{name}`")))?;
    T::try_from(m).map_err(map_err(name))
}

impl XdpBackend {
    /// Attaches the program to `cfg.interfaces` and starts the AF_XDP
    /// workers on `cores` (see [`afxdp`]).
    pub fn start(cfg: &XdpConfig, cores: &[usize]) -> Result<Self, BackendError> {
        if cfg.interfaces.is_empty() {
            return Err(err(
                "dataplane.xdp.interfaces is empty: name the interfaces media uses",
            ));
        }
        let mut indexes = Vec::new();
        for name in &cfg.interfaces {
            let i = ifindex(name).ok_or_else(|| {
                err(format!(
                    "dataplane.xdp.interfaces: interface `{name}` does not exist"
                ))
            })?;
            indexes.push(i);
        }
        ensure_bpffs(&cfg.pin_dir)
            .map_err(|e| err(format!("bpffs at {}: {e}", cfg.pin_dir.display())))?;
        let root = versioned(&cfg.pin_dir);
        let (maps_dir, links_dir) = (root.join("maps"), root.join("links"));
        for d in [&maps_dir, &links_dir] {
            std::fs::create_dir_all(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
        }
        let adopting = maps_dir.join(names::FLOWS).exists();

        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps_dir)
            .load(tollgate_ebpf::OBJECT)
            .map_err(|e| err(format!("loading the XDP object: {e}")))?;
        let prog = program(&mut ebpf)?;
        prog.load().map_err(|e| {
            err(format!(
                "the kernel refused the XDP program: {}",
                with_sources(&e)
            ))
        })?;

        let mut links = Vec::new();
        for name in &cfg.interfaces {
            if cfg.set_forwarding {
                set_forwarding(name);
            }
            links.push(attach(prog, name, cfg.mode, &links_dir.join(name))?);
        }
        // Links pinned for interfaces no longer configured are detached.
        if let Ok(dir) = std::fs::read_dir(&links_dir) {
            for e in dir.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !cfg.interfaces.contains(&n) {
                    tracing::info!(interface = %n, "detaching from an interface no longer configured");
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }

        set_ports(&mut ebpf, cfg, &indexes)?;
        let mut flows: HashMap<MapData, FlowKey, FlowAction> = take(&mut ebpf, names::FLOWS)?;
        let adopted = adopt(&mut flows)?;
        if adopting {
            tracing::info!(flows = adopted.len(), dir = %root.display(), "adopted pinned XDP state");
        }
        let (workers, xsks) = if cfg.afxdp.enabled {
            match start_workers(&mut ebpf, cfg, &indexes, cores) {
                Ok((w, m)) => (Some(w), Some(m)),
                Err(e) => {
                    tracing::warn!(error = %e, "no AF_XDP workers: flows with stages will be refused");
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        Ok(XdpBackend {
            flows,
            learned: take(&mut ebpf, names::LEARNED)?,
            stats: take(&mut ebpf, names::FLOW_STATS)?,
            quality: take(&mut ebpf, names::FLOW_QUALITY)?,
            counters: take(&mut ebpf, names::COUNTERS)?,
            adopted,
            no_neigh_seen: 0,
            workers,
            slots: Slots::default(),
            _xsks: xsks,
            _ebpf: ebpf,
            _links: links,
        })
    }

    fn egress_index(flow: &Flow) -> Result<u32, BackendError> {
        match &flow.egress {
            None => Ok(0),
            Some(name) => ifindex(name).ok_or_else(|| {
                BackendError::Flow(flow::FlowError::NoSuchInterface {
                    local: flow.local,
                    name: name.clone(),
                })
            }),
        }
    }
}

/// Starts the AF_XDP workers and puts their sockets in the XSKMAP: the
/// interface at position i gets base `sum of the queues before it`.
fn start_workers(
    ebpf: &mut Ebpf,
    cfg: &XdpConfig,
    indexes: &[u32],
    cores: &[usize],
) -> Result<(Workers, XskMap<MapData>), BackendError> {
    let mut xsks: XskMap<MapData> = take(ebpf, names::XSKS)?;
    let mut base_map: HashMap<MapData, u32, u32> = take(ebpf, names::XSK_BASE)?;
    let interfaces: Vec<Interface> = cfg
        .interfaces
        .iter()
        .zip(indexes)
        .map(|(name, &ifindex)| Interface {
            name: name.clone(),
            ifindex,
            queues: afxdp::rx_queues(name),
        })
        .collect();
    let mut bases = Vec::new();
    let mut next = 0u32;
    for itf in &interfaces {
        bases.push(next);
        next += itf.queues;
    }
    if next > xsks.len() {
        return Err(err(format!(
            "{next} rx queues on the media interfaces, more than the {} AF_XDP sockets the program has room for",
            xsks.len()
        )));
    }
    let (workers, placed) = Workers::start(&cfg.afxdp, &interfaces, &bases, cores)?;
    for p in &placed {
        // SAFETY: the worker keeps this descriptor open for as long as it runs.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(p.fd) };
        xsks.set(p.key, fd, 0).map_err(map_err(names::XSKS))?;
    }
    let old: Vec<u32> = base_map.keys().filter_map(Result::ok).collect();
    for k in old {
        let _ = base_map.remove(&k);
    }
    for (itf, base) in interfaces.iter().zip(&bases) {
        base_map
            .insert(itf.ifindex, *base, 0)
            .map_err(map_err(names::XSK_BASE))?;
    }
    Ok((workers, xsks))
}

/// Fills `tx_ports` with the configured interfaces (and only them) and
/// `hairpin_redirect` with those that are veths.
fn set_ports(ebpf: &mut Ebpf, cfg: &XdpConfig, indexes: &[u32]) -> Result<(), BackendError> {
    let mut ports: DevMapHash<MapData> = take(ebpf, names::TX_PORTS)?;
    let stale: Vec<u32> = ports
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !indexes.contains(k))
        .collect();
    for k in stale {
        let _ = ports.remove(k);
    }
    for &i in indexes {
        ports.insert(i, i, None, 0).map_err(|e| BackendError::Map {
            map: names::TX_PORTS,
            detail: e.to_string(),
        })?;
    }

    let mut hairpin: HashMap<MapData, u32, u8> = take(ebpf, names::HAIRPIN_REDIRECT)?;
    let old: Vec<u32> = hairpin.keys().filter_map(Result::ok).collect();
    for k in old {
        let _ = hairpin.remove(&k);
    }
    for (name, &i) in cfg.interfaces.iter().zip(indexes) {
        if driver(name).as_deref() == Some("veth") {
            hairpin.insert(i, 1, 0).map_err(|e| BackendError::Map {
                map: names::HAIRPIN_REDIRECT,
                detail: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// The flows pinned maps hold, as flows; pipeline flows among them (their
/// stages died with the process that ran them) go back to the fast path.
fn adopt(flows: &mut HashMap<MapData, FlowKey, FlowAction>) -> Result<Vec<Flow>, BackendError> {
    // Stages died with the process that ran them: back to the fast path.
    let orphans: Vec<(FlowKey, FlowAction)> = flows
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, a)| a.flags & abi::FLOW_PIPELINE != 0)
        .collect();
    for (k, mut a) in orphans {
        a.flags &= !abi::FLOW_PIPELINE;
        a.slot = 0;
        tracing::warn!(local = %flow::addr_of(&k), "adopted a pipeline flow without its stages; it is relayed by XDP until they are sent again");
        flows.insert(k, a, 0).map_err(map_err(names::FLOWS))?;
    }
    Ok(flows
        .iter()
        .filter_map(Result::ok)
        .map(|(k, a)| {
            let egress = (a.egress_ifindex != 0)
                .then(|| ifname(a.egress_ifindex))
                .flatten();
            Flow::from_abi(&k, &a, egress)
        })
        .collect())
}

/// Attaches `prog` to `ifname` through the link pinned at `pin`, replacing
/// the program in it atomically if it exists, else through a new pinned link.
fn attach(
    prog: &mut Xdp,
    ifname: &str,
    mode: XdpAttachMode,
    pin: &Path,
) -> Result<FdLink, BackendError> {
    if pin.exists() {
        let replaced = PinnedLink::from_pin(pin)
            .map_err(err)
            .and_then(|p| aya::programs::xdp::XdpLink::try_from(FdLink::from(p)).map_err(err))
            .and_then(|l| prog.attach_to_link(l).map_err(err));
        match replaced {
            Ok(id) => {
                let link = prog.take_link(id).map_err(err)?;
                tracing::info!(interface = ifname, "took over the pinned XDP link");
                return FdLink::try_from(link).map_err(err);
            }
            Err(e) => {
                // The interface was recreated, or the link is otherwise dead.
                tracing::warn!(interface = ifname, error = %e, "pinned XDP link unusable; attaching anew");
                let _ = std::fs::remove_file(pin);
            }
        }
    }
    let flags = match mode {
        XdpAttachMode::Native => XdpMode::Driver,
        XdpAttachMode::Generic => XdpMode::Skb,
    };
    let id = prog.attach(ifname, flags).map_err(|e| {
        err(format!(
            "attaching XDP to `{ifname}` ({mode:?} mode): {}",
            with_sources(&e)
        ))
    })?;
    let link = FdLink::try_from(prog.take_link(id).map_err(err)?).map_err(|e| {
        err(format!(
            "`{ifname}`: the kernel gave no BPF link to pin ({e})"
        ))
    })?;
    let pinned = link
        .pin(pin)
        .map_err(|e| err(format!("pinning the link at {}: {e}", pin.display())))?;
    Ok(FdLink::from(pinned))
}

/// Detaches the program from every interface and removes the pinned maps:
/// forwarding stops. For operators and tests; a normal stop keeps forwarding.
/// Whether an earlier run left pinned links or maps under `pin_dir`.
pub fn has_pinned_state(cfg: &XdpConfig) -> bool {
    std::fs::read_dir(versioned(&cfg.pin_dir)).is_ok_and(|mut d| d.next().is_some())
}

pub fn detach(cfg: &XdpConfig) -> io::Result<()> {
    let root = versioned(&cfg.pin_dir);
    if let Ok(dir) = std::fs::read_dir(root.join("links")) {
        for e in dir.flatten() {
            // Detach explicitly: a running data plane may still hold the link.
            force_detach(&e.path())?;
        }
    }
    match std::fs::remove_dir_all(&root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Detaches the link pinned at `pin` whatever else holds it open
/// (BPF_OBJ_GET, then BPF_LINK_DETACH; aya 0.14 keeps both private, hence
/// the raw syscalls).
fn force_detach(pin: &Path) -> io::Result<()> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    let path = CString::new(pin.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let mut attr = [0u8; 16];
    attr[..8].copy_from_slice(&(path.as_ptr() as u64).to_ne_bytes());
    // SAFETY: bpf(2) reads `pathname` (a valid C string) from a zeroed attr.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we now own.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    let mut attr = [0u8; 16];
    attr[..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    // SAFETY: bpf(2) reads `link_detach.link_fd` from a zeroed attr.
    if unsafe { libc::syscall(libc::SYS_bpf, BPF_LINK_DETACH, attr.as_ptr(), attr.len()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A clean stop hands the pipeline flows to the fast path before the
/// workers go: their map entries lose `FLOW_PIPELINE`, the workers get
/// [`RETIRE_AFTER`] to finish what is in their rings, and XDP forwards the
/// flows (without their stages) until a new process gets them back. A
/// killed process cannot do this; its flows' packets are dropped, counted
/// (`drop_no_worker`), until the next one adopts them.
impl Drop for XdpBackend {
    fn drop(&mut self) {
        if self.workers.is_none() || self.slots.by_local.is_empty() {
            return;
        }
        for local in self.slots.by_local.keys() {
            let key = flow::key_of(*local);
            if let Ok(mut a) = self.flows.get(&key, 0) {
                a.flags &= !abi::FLOW_PIPELINE;
                a.slot = 0;
                if let Err(e) = self.flows.insert(key, a, 0) {
                    tracing::warn!(%local, error = %e, "could not hand a pipeline flow to the fast path");
                }
            }
        }
        tracing::info!(
            flows = self.slots.by_local.len(),
            "pipeline flows handed to the XDP fast path for the restart"
        );
        std::thread::sleep(RETIRE_AFTER);
    }
}

impl Backend for XdpBackend {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn put(&mut self, flow: &Flow, previous: Option<&Flow>) -> Result<(), BackendError> {
        self.slots.reap(&mut self.workers);
        let (key, mut action) = flow.to_abi(Self::egress_index(flow)?);
        if !flow.stages.is_empty() {
            let Some(workers) = self.workers.as_mut() else {
                return Err(err(format!(
                    "flow {}: it has stages, but no AF_XDP workers run (see the data plane's log at start)",
                    flow.local
                )));
            };
            // Every worker holds the stages before a frame can reach it.
            let slot = self.slots.get_or_alloc(flow.local);
            let route = Route {
                source: flow.source,
                destination: flow.destination,
            };
            if !workers.install(slot, || PipelineFlow::new(flow), route) {
                self.slots.retire(flow.local);
                return Err(err(format!(
                    "flow {}: the AF_XDP workers did not take its stages within 1 s",
                    flow.local
                )));
            }
            action.flags |= abi::FLOW_PIPELINE;
            action.slot = slot;
        }
        self.flows
            .insert(key, action, 0)
            .map_err(map_err(names::FLOWS))?;
        if flow.stages.is_empty() {
            // Off the pipeline (if it was on): the slot goes later.
            self.slots.retire(flow.local);
        }
        let moved_only = previous.is_some_and(|p| {
            let strip = |f: &Flow| Flow {
                stages: Vec::new(),
                ..f.clone()
            };
            strip(p) == strip(flow)
        });
        if previous.is_some() && !moved_only {
            // A changed flow learns its peer again (a re-INVITE may move it);
            // one only gaining or losing stages keeps what it learned.
            let _ = self.learned.remove(&key);
        }
        if let Err(e) = neighbour::prime(flow.destination.ip(), action.egress_ifindex) {
            tracing::warn!(destination = %flow.destination, error = %e, "could not resolve the next hop yet");
        }
        Ok(())
    }

    fn remove(&mut self, flow: &Flow) -> Result<(), BackendError> {
        let key = flow::key_of(flow.local);
        self.flows.remove(&key).map_err(map_err(names::FLOWS))?;
        let _ = self.learned.remove(&key);
        let _ = self.stats.remove(&key);
        let _ = self.quality.remove(&key);
        self.slots.retire(flow.local);
        self.slots.reap(&mut self.workers);
        Ok(())
    }

    fn flow_counters(&self, flow: &Flow) -> FlowCounters {
        let key = flow::key_of(flow.local);
        let mut c = FlowCounters::default();
        if let Ok(per_cpu) = self.stats.get(&key, 0) {
            let per_cpu: &PerCpuValues<FlowStats> = &per_cpu;
            for s in per_cpu.iter() {
                c.packets += s.packets;
                c.bytes += s.bytes;
                c.dropped_source += s.dropped;
                if s.last_seen_ns != 0 {
                    c.last_seen_ns = Some(c.last_seen_ns.unwrap_or(0).max(s.last_seen_ns));
                }
            }
        }
        if let Ok(l) = self.learned.get(&key, 0) {
            c.learned = Some(flow::sock(key.family, &l.addr, l.port));
        }
        // BPF_F_LOCK: copied under the entry's lock, so a report is never torn.
        if let Ok(q) = self.quality.get(&key, BPF_F_LOCK) {
            c.rtp = Quality::of(&q, flow.clock_rate);
            c.rtcp_packets = Some(q.rtcp_packets);
            c.remote = RemoteReport::of(&q);
            c.rtcp = RtcpReport::of(&q);
        }
        c
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let mut c: Vec<(String, u64)> = abi::COUNTER_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let v = self
                    .counters
                    .get(&(i as u32), 0)
                    .map(|pc| pc.iter().sum())
                    .unwrap_or(0);
                (name.to_string(), v)
            })
            .collect();
        if let Some(w) = &self.workers {
            c.extend(w.totals());
        }
        c
    }

    fn adopted(&self) -> Vec<Flow> {
        self.adopted.clone()
    }

    fn workers(&self) -> Vec<WorkerReport> {
        self.workers
            .as_ref()
            .map(Workers::reports)
            .unwrap_or_default()
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.workers
            .as_mut()
            .map(Workers::take_events)
            .unwrap_or_default()
    }

    /// When packets were dropped for want of a next-hop MAC (the peer was
    /// down when the flow was installed, or its entry expired and failed),
    /// asks the kernel to resolve every current destination again.
    fn maintain(&mut self) {
        self.slots.reap(&mut self.workers);
        let idx = abi::COUNTER_NAMES
            .iter()
            .position(|n| *n == "drop_no_neighbour")
            .expect("counter exists") as u32;
        let now: u64 = self
            .counters
            .get(&idx, 0)
            .map(|pc| pc.iter().sum())
            .unwrap_or(0);
        if now == self.no_neigh_seen {
            return;
        }
        self.no_neigh_seen = now;
        let mut targets = std::collections::BTreeSet::new();
        for (key, action) in self.flows.iter().filter_map(Result::ok) {
            targets.insert((
                flow::sock(key.family, &action.dst_addr, 0).ip(),
                action.egress_ifindex,
            ));
        }
        for (key, l) in self.learned.iter().filter_map(Result::ok) {
            targets.insert((flow::sock(key.family, &l.addr, 0).ip(), 0));
        }
        for (ip, oif) in targets {
            if let Err(e) = neighbour::prime(ip, oif) {
                tracing::debug!(%ip, error = %e, "next hop still unresolved");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow keeps its slot while it stays in the pipeline; one leaving it
    /// frees its slot only after RETIRE_AFTER, and a retiring slot is not
    /// handed out again before that.
    #[test]
    fn slots_are_kept_retired_and_reused() {
        let mut s = Slots::default();
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:30000".parse().unwrap(),
            "10.0.0.1:30002".parse().unwrap(),
        );
        assert_eq!(s.get_or_alloc(a), 0);
        assert_eq!(s.get_or_alloc(a), 0, "same flow, same slot");
        assert_eq!(s.get_or_alloc(b), 1);
        s.retire(a);
        s.retire(a); // twice is harmless
        let mut none = None;
        s.reap(&mut none);
        assert_eq!(s.retiring.len(), 1, "still retiring");
        assert_eq!(s.get_or_alloc(a), 2, "the retiring slot is not reused yet");
        s.retiring[0].1 -= RETIRE_AFTER;
        s.reap(&mut none);
        assert!(s.retiring.is_empty());
        assert_eq!(s.free, [0]);
        let c: SocketAddr = "10.0.0.1:30004".parse().unwrap();
        assert_eq!(s.get_or_alloc(c), 0, "freed, then reused");
    }
}
