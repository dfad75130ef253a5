//! Which network devices hold the media addresses: with `backend = "auto"`
//! and no `[dataplane.xdp] interfaces`, XDP goes on those devices, so a node
//! started with rtpengine's `--interface NAME/ADDRESS` gets the fast path
//! without naming its NICs a second time.
//!
//! [`assigned`] reads the addresses with libc's getifaddrs(3): the data plane
//! has no netlink crate, and one read-only dump of (device, flags, address)
//! is all this needs; adopting a netlink crate's typed API, or hand-writing
//! an RTM_GETADDR dump next to `neighbour`, would be more code for the same
//! three fields. [`select`] makes the decision and is pure, so it is tested
//! without a host.
//!
//! The decision: every media address must sit on a device that is not a
//! loopback. XDP on `lo` relays nothing useful, so a loopback-only node keeps
//! the socket backend; and so does a node with one media address on loopback
//! (or on no device at all) next to real ones, because XDP on the real
//! devices alone would leave that interface's media unrelayed, where the
//! socket backend relays all of them.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address the kernel has on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub device: String,
    pub address: IpAddr,
    /// The device is a loopback (`IFF_LOOPBACK`).
    pub loopback: bool,
}

/// What `auto` does with the media addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// XDP on these devices: each once, in the order of the media addresses.
    Xdp(Vec<String>),
    /// The socket backend, for the reason given (a sentence naming the
    /// addresses concerned).
    Socket(String),
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Picks the XDP devices for `media` (the media interfaces' addresses) from
/// the addresses `assigned` to this namespace's devices.
pub fn select(media: &[IpAddr], assigned: &[Assigned]) -> Selection {
    if media.is_empty() {
        return Selection::Socket("no media addresses are configured".into());
    }
    let (mut devices, mut on_loopback, mut nowhere) = (Vec::<String>::new(), vec![], vec![]);
    for &addr in media {
        let holders: Vec<&Assigned> = assigned.iter().filter(|a| a.address == addr).collect();
        let real: Vec<&str> = holders
            .iter()
            .filter(|a| !a.loopback)
            .map(|a| a.device.as_str())
            .collect();
        if !real.is_empty() {
            for d in real {
                if !devices.iter().any(|have| have == d) {
                    devices.push(d.to_string());
                }
            }
        } else if !holders.is_empty() || addr.is_loopback() {
            on_loopback.push(addr);
        } else {
            nowhere.push(addr);
        }
    }
    if !nowhere.is_empty() {
        return Selection::Socket(format!(
            "media address {} is not assigned to any device in this network namespace",
            list(&nowhere)
        ));
    }
    if devices.is_empty() {
        return Selection::Socket(format!(
            "media address {} is on loopback only, where XDP is not used",
            list(&on_loopback)
        ));
    }
    if !on_loopback.is_empty() {
        return Selection::Socket(format!(
            "media address {} is on loopback, where XDP is not used, and XDP on {} alone would leave its media unrelayed",
            list(&on_loopback),
            devices.join(", ")
        ));
    }
    Selection::Xdp(devices)
}

/// The addresses of every device in this network namespace (getifaddrs).
/// An IPv4 address with a label (`eth0:1`) is reported on its device (`eth0`).
pub fn assigned() -> io::Result<Vec<Assigned>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        // SAFETY: ifa_addr is null or points to a sockaddr of its family.
        if let Some(address) = unsafe { ip_of(ifa.ifa_addr) } {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
            let device = name.split(':').next().unwrap_or_default().to_string();
            out.push(Assigned {
                device,
                address,
                loopback: ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0,
            });
        }
        p = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IP address in `sa`, if it is an IPv4 or IPv6 one.
///
/// # Safety
/// `sa` is null or points to a valid sockaddr of the size its family implies.
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let v4 = &*(sa as *const libc::sockaddr_in);
            Some(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            let v6 = &*(sa as *const libc::sockaddr_in6);
            Some(Ipv6Addr::from(v6.sin6_addr.s6_addr).into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(device: &str, address: &str, loopback: bool) -> Assigned {
        Assigned {
            device: device.into(),
            address: address.parse().unwrap(),
            loopback,
        }
    }

    fn host() -> Vec<Assigned> {
        vec![
            on("lo", "127.0.0.1", true),
            on("lo", "::1", true),
            on("lo", "192.0.2.53", true), // a service address on loopback
            on("eth1", "10.0.1.1", false),
            on("eth1", "fd00:1::1", false),
            on("eth2", "10.0.2.1", false),
            on("bond0", "203.0.113.5", false),
            on("bond0.7", "203.0.113.5", false),
        ]
    }

    fn ips(s: &[&str]) -> Vec<IpAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn each_address_picks_the_device_holding_it_once_in_order() {
        let s = select(&ips(&["10.0.2.1", "10.0.1.1", "fd00:1::1"]), &host());
        assert_eq!(s, Selection::Xdp(vec!["eth2".into(), "eth1".into()]));
    }

    #[test]
    fn an_address_on_two_devices_takes_both_and_loopback_copies_are_skipped() {
        let mut h = host();
        h.push(on("lo", "10.0.1.1", true));
        let s = select(&ips(&["203.0.113.5", "10.0.1.1"]), &h);
        assert_eq!(
            s,
            Selection::Xdp(vec!["bond0".into(), "bond0.7".into(), "eth1".into()])
        );
    }

    #[test]
    fn loopback_only_keeps_the_socket_backend() {
        for media in [&["127.0.0.1"][..], &["::1", "192.0.2.53"], &["127.0.0.2"]] {
            match select(&ips(media), &host()) {
                Selection::Socket(why) => assert!(
                    why.contains("on loopback only") && why.contains(media[0]),
                    "{why}"
                ),
                other => panic!("{media:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn loopback_next_to_real_devices_keeps_the_socket_backend() {
        let Selection::Socket(why) = select(&ips(&["10.0.1.1", "127.0.0.1"]), &host()) else {
            panic!("mixed loopback and eth1 must not take XDP");
        };
        assert!(
            why.contains("127.0.0.1 is on loopback") && why.contains("XDP on eth1 alone"),
            "{why}"
        );
    }

    #[test]
    fn an_address_on_no_device_is_named() {
        let Selection::Socket(why) = select(&ips(&["10.0.1.1", "198.51.100.9"]), &host()) else {
            panic!("an unassigned address must not take XDP");
        };
        assert_eq!(
            why,
            "media address 198.51.100.9 is not assigned to any device in this network namespace"
        );
        assert!(matches!(select(&[], &host()), Selection::Socket(w) if w.contains("no media")));
    }

    #[test]
    fn this_host_has_loopback_addresses_on_a_loopback_device() {
        let all = assigned().expect("getifaddrs");
        let lo: Vec<&Assigned> = all
            .iter()
            .filter(|a| a.address == IpAddr::from([127, 0, 0, 1]))
            .collect();
        assert!(!lo.is_empty(), "127.0.0.1 is on some device: {all:?}");
        assert!(lo.iter().all(|a| a.loopback), "{lo:?}");
        assert!(all.iter().all(|a| !a.device.contains(':')), "{all:?}");
    }
}
