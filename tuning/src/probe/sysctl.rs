//! Kernel settings under /proc/sys: socket buffer limits, backlog, busy
//! polling, the BPF JIT, reserved ports over the media range, reverse-path
//! filtering and forwarding on the media interfaces.

use super::{finding, with, NodeSpec, ProbeError};
use crate::host::Host;
use crate::model::{Change, Finding, Setting, Severity};

/// The /proc/sys path of a dotted sysctl name; as in sysctl(8), a `/` in
/// the name stands for a `.` in a component (`net.ipv4.conf.eth0/100.rp_filter`).
pub fn sysctl_path(name: &str) -> String {
    let parts: Vec<String> = name.split('.').map(|p| p.replace('/', ".")).collect();
    format!("/proc/sys/{}", parts.join("/"))
}

/// The dotted name of a per-interface IPv4 setting.
pub fn conf_name(dev: &str, key: &str) -> String {
    format!("net.ipv4.conf.{}.{key}", dev.replace('.', "/"))
}

/// A setting that should be at least some value.
struct Minimum {
    name: &'static str,
    want: i64,
    severity: Severity,
    why: &'static str,
}

const MINIMUMS: &[Minimum] = &[
    Minimum {
        name: "net.core.rmem_max",
        want: 16 << 20,
        severity: Severity::Advice,
        why: "Caps the receive buffer a socket may ask for: the socket backend's and the SIP and NG servers' \
              buffers absorb a burst of every call's packets only if the cap allows it.",
    },
    Minimum {
        name: "net.core.wmem_max",
        want: 16 << 20,
        severity: Severity::Advice,
        why: "Caps the send buffer a socket may ask for: a burst of relayed packets that does not fit is dropped.",
    },
    Minimum {
        name: "net.core.netdev_max_backlog",
        want: 16384,
        severity: Severity::Advice,
        why: "Packets waiting for the stack per core beyond this are dropped: a 20 ms tick of thousands of calls \
              overflows the default 1000.",
    },
    Minimum {
        name: "net.core.busy_poll",
        want: 50,
        severity: Severity::Advice,
        why: "Busy polling (µs) lets the socket backend poll the queue instead of waiting for an interrupt, \
              cutting latency on cores dedicated to the data plane.",
    },
    Minimum {
        name: "net.core.busy_read",
        want: 50,
        severity: Severity::Advice,
        why: "Busy polling on reads (µs) for sockets that do not set SO_BUSY_POLL themselves.",
    },
    Minimum {
        name: "net.core.bpf_jit_enable",
        want: 1,
        severity: Severity::Critical,
        why: "Without the JIT the XDP program is interpreted, several times slower per packet.",
    },
];

pub fn findings(
    host: &Host,
    spec: &NodeSpec,
    interfaces: &[String],
) -> Result<Vec<Finding>, ProbeError> {
    let mut out = Vec::new();
    for m in MINIMUMS {
        out.extend(minimum(host, m)?);
    }
    out.push(reserved_ports(host, spec.media_ports)?);
    for dev in interfaces {
        out.extend(rp_filter(host, dev)?);
        out.extend(forwarding(host, dev)?);
    }
    Ok(out)
}

fn read(host: &Host, name: &str) -> Result<Option<String>, ProbeError> {
    Ok(host.read(&sysctl_path(name))?)
}

fn change(name: &str, value: impl ToString) -> Option<Change> {
    Some(Change {
        setting: Setting::Sysctl {
            name: name.to_string(),
        },
        value: value.to_string(),
    })
}

fn minimum(host: &Host, m: &Minimum) -> Result<Option<Finding>, ProbeError> {
    let id = format!("sysctl.{}", m.name);
    let Some(now) = host.read_i64(&sysctl_path(m.name))? else {
        return Ok(None);
    };
    let evidence = vec![format!("{}: {now}", sysctl_path(m.name))];
    if now >= m.want {
        return Ok(Some(with(
            finding(id, Severity::Ok, format!("{} = {now}", m.name), m.why),
            evidence,
            None,
            None,
        )));
    }
    let title = format!("{} = {now}, below {}", m.name, m.want);
    let cmd = format!("sysctl -w {}={}", m.name, m.want);
    Ok(Some(with(
        finding(id, m.severity, title, m.why),
        evidence,
        Some(cmd),
        change(m.name, m.want),
    )))
}

const RESERVED: &str = "net.ipv4.ip_local_reserved_ports";
const WHY_RESERVED: &str = "Outgoing connections (databases, SIP over TCP, DNS) take ephemeral ports: one that \
                            lands in the media range makes the relay fail to allocate that port, or steers \
                            the connection's packets into a flow.";

fn reserved_ports(host: &Host, (lo, hi): (u16, u16)) -> Result<Finding, ProbeError> {
    let id = format!("sysctl.{RESERVED}");
    let now = read(host, RESERVED)?.unwrap_or_default();
    let ranges = parse_port_ranges(&now).map_err(|what| crate::host::HostError::Invalid {
        path: host.path(&sysctl_path(RESERVED)),
        what,
    })?;
    let evidence = vec![format!(
        "{}: {:?}; media ports {lo}-{hi}",
        sysctl_path(RESERVED),
        now
    )];
    if covers(&ranges, lo, hi) {
        let f = finding(
            id,
            Severity::Ok,
            format!("the media ports {lo}-{hi} are reserved"),
            WHY_RESERVED,
        );
        return Ok(with(f, evidence, None, None));
    }
    let value = if now.is_empty() {
        format!("{lo}-{hi}")
    } else {
        format!("{now},{lo}-{hi}")
    };
    let title = format!("the media ports {lo}-{hi} are not all reserved");
    let cmd = format!("sysctl -w {RESERVED}={value}");
    Ok(with(
        finding(id, Severity::Warning, title, WHY_RESERVED),
        evidence,
        Some(cmd),
        change(RESERVED, value),
    ))
}

/// `8080,30000-40000` -> [(8080, 8080), (30000, 40000)].
fn parse_port_ranges(s: &str) -> Result<Vec<(u16, u16)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let bad = || format!("{p:?} is not a port or a port range");
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
        })
        .collect()
}

/// Whether the union of `ranges` contains every port in lo..=hi.
fn covers(ranges: &[(u16, u16)], lo: u16, hi: u16) -> bool {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut next = lo as u32;
    for (a, b) in sorted {
        if a as u32 <= next && b as u32 >= next {
            next = b as u32 + 1;
        }
    }
    next > hi as u32
}

const WHY_RP: &str = "Strict reverse-path filtering drops packets that arrive on an interface other than the \
                      route back to their source: media from a carrier reached by another path is dropped on \
                      the socket path. Loose mode (2) keeps the spoofing check without the drops.";

fn rp_filter(host: &Host, dev: &str) -> Result<Option<Finding>, ProbeError> {
    let name = conf_name(dev, "rp_filter");
    let all = host.read_i64(&sysctl_path("net.ipv4.conf.all.rp_filter"))?;
    let Some(mine) = host.read_i64(&sysctl_path(&name))? else {
        return Ok(None);
    };
    // The kernel uses the larger of the two.
    let effective = all.unwrap_or(0).max(mine);
    let id = format!("sysctl.{name}");
    let evidence = vec![
        format!("{}: {mine}", sysctl_path(&name)),
        format!(
            "{}: {}",
            sysctl_path("net.ipv4.conf.all.rp_filter"),
            all.map_or("unknown".into(), |a| a.to_string())
        ),
    ];
    if effective != 1 {
        return Ok(Some(with(
            finding(
                id,
                Severity::Ok,
                format!("{dev}: rp_filter {effective} (not strict)"),
                WHY_RP,
            ),
            evidence,
            None,
            None,
        )));
    }
    let title = format!("{dev}: strict reverse-path filtering (rp_filter 1)");
    let cmd = format!("sysctl -w {name}=2");
    Ok(Some(with(
        finding(id, Severity::Advice, title, WHY_RP),
        evidence,
        Some(cmd),
        change(&name, 2),
    )))
}

const WHY_FWD: &str = "XDP forwarding asks the kernel's FIB for the next hop, and the kernel answers only for \
                       interfaces with forwarding on: without it every relayed packet goes the slow path.";

fn forwarding(host: &Host, dev: &str) -> Result<Option<Finding>, ProbeError> {
    let name = conf_name(dev, "forwarding");
    let Some(now) = host.read_i64(&sysctl_path(&name))? else {
        return Ok(None);
    };
    let id = format!("sysctl.{name}");
    let evidence = vec![format!("{}: {now}", sysctl_path(&name))];
    if now == 1 {
        return Ok(Some(with(
            finding(id, Severity::Ok, format!("{dev}: forwarding on"), WHY_FWD),
            evidence,
            None,
            None,
        )));
    }
    let cmd = format!("sysctl -w {name}=1 (or [dataplane.xdp] set_forwarding = true)");
    Ok(Some(with(
        finding(
            id,
            Severity::Warning,
            format!("{dev}: forwarding off"),
            WHY_FWD,
        ),
        evidence,
        Some(cmd),
        change(&name, 1),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_paths_and_port_ranges_cover_exactly() {
        assert_eq!(
            sysctl_path("net.core.rmem_max"),
            "/proc/sys/net/core/rmem_max"
        );
        assert_eq!(
            sysctl_path(&conf_name("eth0.100", "rp_filter")),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
        );
        let r = parse_port_ranges("8080, 30000-35000,35001-40000").unwrap();
        assert!(covers(&r, 30000, 40000));
        assert!(!covers(&r, 30000, 40001));
        assert!(!covers(&r, 29999, 40000));
        assert!(parse_port_ranges("1-x").unwrap_err().contains("\"1-x\""));
    }

    #[test]
    fn rp_filter_is_the_larger_of_all_and_the_interface() {
        let dir = std::env::temp_dir().join(format!("tgtu-rp-{}", std::process::id()));
        let host = Host::at(&dir);
        let set = |name: &str, v: &str| {
            let path = host.path(&sysctl_path(name));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        };
        for (all, dev, strict) in [
            ("1", "0", true),
            ("2", "1", false),
            ("0", "1", true),
            ("0", "0", false),
        ] {
            set("net.ipv4.conf.all.rp_filter", all);
            set("net.ipv4.conf.x.rp_filter", dev);
            let f = rp_filter(&host, "x").unwrap().unwrap();
            assert_eq!(f.change.is_some(), strict, "all {all}, x {dev}: {f:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
