//! Neighbours, in user space: a port given to DPDK has no kernel behind it,
//! so the node answers ARP requests and IPv6 neighbour solicitations for its
//! own addresses, asks for the MAC address of each next hop, and holds the
//! packets waiting for an answer. Sans-IO: frames in, frames and decisions
//! out; the worker owns the buffers and the clock.
//!
//! - [`Interface`]: a port's MAC, its addresses with their prefixes, and its
//!   gateways; which next hop a destination needs.
//! - [`answer`]: turns an ARP request or a neighbour solicitation for one of
//!   our addresses into the reply, in place, and says what it learned.
//! - [`solicit`]: builds the ARP request or neighbour solicitation for a
//!   next hop.
//! - [`Table`]: MAC addresses learned on one port (the worker that polls the
//!   port writes it; the others read a published copy); an entry not
//!   confirmed for 30 s is asked for again, and forgotten 5 s later if its
//!   neighbour stays silent.
//! - [`Resolver`]: one worker's packets waiting for a next hop, with the
//!   retry and give-up timing.

use crate::wire::{arp, ethernet, ipv6, ndp};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};

pub const BROADCAST: [u8; 6] = [0xff; 6];
/// An unanswered request is sent again after this long...
pub const RETRY_NS: u64 = 250_000_000;
/// ...and this many times in all, then the packets waiting are dropped.
pub const TRIES: u32 = 4;
/// Packets one worker holds for all next hops together.
pub const HOLD_TOTAL: usize = 1024;
/// Packets held for one next hop (the newest are dropped beyond it): as
/// many as Linux queues per unresolved neighbour (`unres_qlen`), two
/// seconds of a 20 ms stream, or 100 ms of fifty.
pub const HOLD_PER_HOP: usize = 101;

/// A port as neighbour discovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub mac: [u8; 6],
    /// The node's addresses on the port with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
    /// At most one per family.
    pub gateways: Vec<IpAddr>,
}

fn same_prefix(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let m = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
            u32::from(a) & m == u32::from(b) & m
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let m = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
            u128::from(a) & m == u128::from(b) & m
        }
        _ => false,
    }
}

impl Interface {
    pub fn owns(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|(a, _)| *a == ip)
    }

    /// Whether `ip` is on one of the port's prefixes.
    pub fn on_link(&self, ip: IpAddr) -> bool {
        self.addresses
            .iter()
            .any(|(a, len)| same_prefix(*a, ip, *len))
    }

    /// The neighbour a packet to `dst` goes to: `dst` itself when on link,
    /// else the family's gateway; None when there is no route.
    pub fn next_hop(&self, dst: IpAddr) -> Option<IpAddr> {
        if self.on_link(dst) {
            return Some(dst);
        }
        self.gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == dst.is_ipv4())
    }

    /// Our address to ask `target` from: one on its prefix, else any of
    /// the family.
    pub fn source_for(&self, target: IpAddr) -> Option<IpAddr> {
        let fam = || {
            self.addresses
                .iter()
                .find(|(a, _)| a.is_ipv4() == target.is_ipv4())
        };
        self.addresses
            .iter()
            .find(|(a, len)| same_prefix(*a, target, *len))
            .or_else(fam)
            .map(|(a, _)| *a)
    }
}

/// What a received ARP or neighbour-discovery frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The frame was turned into the reply, `len` bytes, to send back out.
    Reply {
        len: usize,
        learned: Option<(IpAddr, [u8; 6])>,
    },
    /// Nothing to send; the sender's address was learned (a reply to us,
    /// a solicited advertisement).
    Learned(IpAddr, [u8; 6]),
    /// Nothing to send; a neighbour announced its address without our
    /// asking (a request for someone else, gratuitous ARP, an unsolicited
    /// advertisement): update its entry if there is one, create none
    /// (RFC 826's merge, RFC 4861 7.2.5).
    Refresh(IpAddr, [u8; 6]),
    /// Not for us, or not something we answer.
    Ignored,
    /// Not a well-formed ARP or NDP message.
    Malformed,
}

fn unicast_mac(m: [u8; 6]) -> bool {
    m[0] & 1 == 0 && m != [0; 6]
}

/// Room [`answer`] needs in its buffer for the largest reply it writes.
pub const ANSWER_ROOM: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndp::LEN_WITH_LLADDR;

/// Handles one ARP or ICMPv6 neighbour-discovery frame received on `iface`:
/// `buf` holds the frame in its first `len` bytes and has room after it
/// (at least [`ANSWER_ROOM`] in all, else the frame is ignored). A request
/// for one of our addresses becomes the reply in place.
pub fn answer(iface: &Interface, buf: &mut [u8], len: usize) -> Answer {
    if buf.len() < ANSWER_ROOM || len > buf.len() {
        return Answer::Ignored;
    }
    let Ok(eth) = ethernet::Frame::new_checked(&buf[..len]) else {
        return Answer::Malformed;
    };
    match eth.ethertype() {
        arp::ETHERTYPE => answer_arp(iface, buf, len),
        ethernet::ETHERTYPE_IPV6 => answer_ndp(iface, buf, len),
        _ => Answer::Ignored,
    }
}

fn answer_arp(iface: &Interface, buf: &mut [u8], len: usize) -> Answer {
    let Ok(p) = arp::Packet::new_checked(&buf[ethernet::HEADER_LEN..len]) else {
        return Answer::Malformed;
    };
    let r = arp::Repr::parse(&p);
    let sender = IpAddr::V4(r.sender_ip);
    // Learn only neighbours on our prefixes, from a unicast sender MAC.
    let learn =
        (unicast_mac(r.sender_mac) && !r.sender_ip.is_unspecified() && iface.on_link(sender))
            .then_some((sender, r.sender_mac));
    let for_us = iface.owns(IpAddr::V4(r.target_ip));
    match r.operation {
        arp::OP_REQUEST if for_us => {
            let reply = arp::Repr {
                operation: arp::OP_REPLY,
                sender_mac: iface.mac,
                sender_ip: r.target_ip,
                target_mac: r.sender_mac,
                target_ip: r.sender_ip,
            };
            let out = ethernet_header(buf, r.sender_mac, iface.mac, arp::ETHERTYPE);
            reply.emit(out);
            // Padded to the Ethernet minimum with zeros, not the request's bytes.
            out[arp::LEN..60 - ethernet::HEADER_LEN].fill(0);
            Answer::Reply {
                len: 60,
                learned: learn,
            }
        }
        arp::OP_REPLY | arp::OP_REQUEST => match learn {
            Some((ip, mac)) if r.operation == arp::OP_REPLY && for_us => Answer::Learned(ip, mac),
            Some((ip, mac)) => Answer::Refresh(ip, mac),
            None => Answer::Ignored,
        },
        _ => Answer::Ignored,
    }
}

/// Writes an Ethernet header at the start of `buf`; returns the rest.
fn ethernet_header(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) -> &mut [u8] {
    let mut f = ethernet::Frame::new_checked(&mut *buf).expect("room for a header");
    f.set_destination(dst);
    f.set_source(src);
    f.set_ethertype(ethertype);
    &mut buf[ethernet::HEADER_LEN..]
}

fn answer_ndp(iface: &Interface, buf: &mut [u8], len: usize) -> Answer {
    let Ok(ip) = ipv6::Packet::new_checked(&buf[ethernet::HEADER_LEN..len]) else {
        return Answer::Malformed;
    };
    if ip.next_header() != ndp::NEXT_HEADER_ICMPV6 {
        return Answer::Ignored;
    }
    let (src, dst) = (ip.source(), ip.destination());
    let icmp = ip.payload();
    if icmp
        .first()
        .is_none_or(|t| !matches!(*t, ndp::NEIGHBOR_SOLICIT | ndp::NEIGHBOR_ADVERT))
    {
        return Answer::Ignored;
    }
    // RFC 4861 7.1.1/7.1.2: hop limit 255, valid checksum.
    if ip.hop_limit() != 255
        || !crate::wire::checksum::icmpv6_verifies(src.into(), dst.into(), icmp)
    {
        return Answer::Malformed;
    }
    let Ok(m) = ndp::Message::new_checked(icmp) else {
        return Answer::Malformed;
    };
    let (kind, target, lladdr) = (m.msg_type(), m.target(), m.lladdr());
    match kind {
        ndp::NEIGHBOR_SOLICIT if iface.owns(IpAddr::V6(target)) => {
            // A solicitation from :: is duplicate address detection: not
            // answered (the kernel would defend; we only own static addresses).
            if src.is_unspecified() {
                return Answer::Ignored;
            }
            let learned = lladdr
                .filter(|m| unicast_mac(*m))
                .map(|m| (IpAddr::V6(src), m));
            let peer_mac = match lladdr {
                Some(m) => m,
                None => {
                    let f = ethernet::Frame::new_checked(&buf[..len]).expect("checked");
                    f.source()
                }
            };
            let out = ethernet_header(buf, peer_mac, iface.mac, ethernet::ETHERTYPE_IPV6);
            let n = ipv6_header(out, target, src, ndp::LEN_WITH_LLADDR);
            ndp::Repr::Advert {
                target,
                lladdr: iface.mac,
                solicited: true,
            }
            .emit(target, src, &mut out[n..]);
            Answer::Reply {
                len: ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndp::LEN_WITH_LLADDR,
                learned,
            }
        }
        ndp::NEIGHBOR_ADVERT => match lladdr {
            Some(mac) if unicast_mac(mac) && iface.on_link(IpAddr::V6(target)) => {
                if m.solicited() {
                    Answer::Learned(IpAddr::V6(target), mac)
                } else {
                    Answer::Refresh(IpAddr::V6(target), mac)
                }
            }
            _ => Answer::Ignored,
        },
        _ => Answer::Ignored,
    }
}

/// Writes an IPv6 header for an NDP message of `payload` bytes; returns its length.
fn ipv6_header(out: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, payload: usize) -> usize {
    let h = &mut out[..ipv6::HEADER_LEN];
    h.fill(0);
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    h[6] = ndp::NEXT_HEADER_ICMPV6;
    h[7] = 255;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    ipv6::HEADER_LEN
}

/// Builds, at the start of `out`, the ARP request or neighbour solicitation
/// asking for `target` on `iface`; returns its length, or None when the port
/// has no address of the family to ask from.
pub fn solicit(iface: &Interface, target: IpAddr, out: &mut [u8]) -> Option<usize> {
    let from = iface.source_for(target)?;
    match (from, target) {
        (IpAddr::V4(from), IpAddr::V4(target)) => {
            let body = ethernet_header(out, BROADCAST, iface.mac, arp::ETHERTYPE);
            arp::Repr {
                operation: arp::OP_REQUEST,
                sender_mac: iface.mac,
                sender_ip: from,
                target_mac: [0; 6],
                target_ip: target,
            }
            .emit(body);
            let len = ethernet::HEADER_LEN + arp::LEN;
            out[len..60].fill(0); // pad to the Ethernet minimum
            Some(60)
        }
        (IpAddr::V6(from), IpAddr::V6(target)) => {
            let group = ndp::solicited_node(target);
            let body = ethernet_header(
                out,
                ndp::multicast_mac(group),
                iface.mac,
                ethernet::ETHERTYPE_IPV6,
            );
            let n = ipv6_header(body, from, group, ndp::LEN_WITH_LLADDR);
            ndp::Repr::Solicit {
                target,
                lladdr: iface.mac,
            }
            .emit(from, group, &mut body[n..]);
            Some(ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndp::LEN_WITH_LLADDR)
        }
        _ => None,
    }
}

/// An entry confirmed longer ago than this is asked for again (its
/// traffic keeps using it meanwhile)...
pub const STALE_NS: u64 = 30_000_000_000;
/// ...once a second...
pub const PROBE_EVERY_NS: u64 = 1_000_000_000;
/// ...and forgotten when no answer came for this long after it went stale.
pub const FORGET_AFTER_STALE_NS: u64 = 5_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    mac: [u8; 6],
    confirmed_ns: u64,
    probed_ns: u64,
}

/// MAC addresses learned on one port, with when each was last confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    entries: HashMap<IpAddr, Entry>,
}

impl Table {
    /// Records `ip` at `mac`, confirmed now; true when its MAC changed
    /// (or it is new).
    pub fn learn(&mut self, ip: IpAddr, mac: [u8; 6], now_ns: u64) -> bool {
        let e = Entry {
            mac,
            confirmed_ns: now_ns,
            probed_ns: 0,
        };
        self.entries.insert(ip, e).map(|old| old.mac) != Some(mac)
    }
    /// Updates `ip`'s entry if there is one; true when its MAC changed.
    pub fn refresh(&mut self, ip: IpAddr, mac: [u8; 6], now_ns: u64) -> bool {
        match self.entries.get_mut(&ip) {
            Some(e) => {
                let changed = e.mac != mac;
                *e = Entry {
                    mac,
                    confirmed_ns: now_ns,
                    probed_ns: 0,
                };
                changed
            }
            None => false,
        }
    }
    pub fn get(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.entries.get(&ip).map(|e| e.mac)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Calls `probe` for each stale entry due a request, and forgets those
    /// that stayed unanswered; true when an entry was forgotten.
    pub fn age(&mut self, now_ns: u64, mut probe: impl FnMut(IpAddr)) -> bool {
        let before = self.entries.len();
        self.entries.retain(|ip, e| {
            let stale_for = now_ns.saturating_sub(e.confirmed_ns + STALE_NS);
            if now_ns < e.confirmed_ns + STALE_NS {
                return true;
            }
            if stale_for >= FORGET_AFTER_STALE_NS {
                return false;
            }
            if e.probed_ns == 0 || now_ns.saturating_sub(e.probed_ns) >= PROBE_EVERY_NS {
                e.probed_ns = now_ns;
                probe(*ip);
            }
            true
        });
        self.entries.len() != before
    }
}

/// A packet held for a next hop.
struct Held<T> {
    port: u16,
    hop: IpAddr,
    packet: T,
}

struct Asking {
    sent_ns: u64,
    tries: u32,
}

/// What holding a packet did.
#[derive(Debug, PartialEq, Eq)]
pub enum Hold<T> {
    /// Held; `ask`: send a request for the hop now (the first for it).
    Held { ask: bool },
    /// No room: the caller drops the packet.
    Full(T),
}

/// What [`Resolver::poll`] wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// The hop answered: send the packet to `mac`.
    Send { port: u16, mac: [u8; 6], packet: T },
    /// Ask for the hop again.
    Ask { port: u16, hop: IpAddr },
    /// The hop never answered: drop the packet.
    GiveUp(T),
}

/// One worker's packets waiting for next hops.
pub struct Resolver<T> {
    held: VecDeque<Held<T>>,
    asking: HashMap<(u16, IpAddr), Asking>,
}

impl<T> Default for Resolver<T> {
    fn default() -> Self {
        Resolver {
            held: VecDeque::with_capacity(HOLD_TOTAL),
            asking: HashMap::new(),
        }
    }
}

impl<T> Resolver<T> {
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && self.asking.is_empty()
    }

    /// Holds `packet` until `hop` on `port` is resolved.
    pub fn hold(&mut self, now_ns: u64, port: u16, hop: IpAddr, packet: T) -> Hold<T> {
        let for_hop = self
            .held
            .iter()
            .filter(|h| h.port == port && h.hop == hop)
            .count();
        if self.held.len() >= HOLD_TOTAL || for_hop >= HOLD_PER_HOP {
            return Hold::Full(packet);
        }
        self.held.push_back(Held { port, hop, packet });
        let ask = !self.asking.contains_key(&(port, hop));
        if ask {
            self.asking.insert(
                (port, hop),
                Asking {
                    sent_ns: now_ns,
                    tries: 1,
                },
            );
        }
        Hold::Held { ask }
    }

    /// Releases what `lookup` now resolves, asks again for hops due a
    /// retry, and gives up on hops that never answered.
    pub fn poll(
        &mut self,
        now_ns: u64,
        lookup: impl Fn(u16, IpAddr) -> Option<[u8; 6]>,
        mut step: impl FnMut(Step<T>),
    ) {
        let mut gave_up: Vec<(u16, IpAddr)> = Vec::new();
        let mut answered = false;
        self.asking.retain(|&(port, hop), a| {
            if lookup(port, hop).is_some() {
                answered = true;
                return false;
            }
            if now_ns.saturating_sub(a.sent_ns) < RETRY_NS {
                return true;
            }
            if a.tries >= TRIES {
                gave_up.push((port, hop));
                return false;
            }
            a.tries += 1;
            a.sent_ns = now_ns;
            step(Step::Ask { port, hop });
            true
        });
        // Every held packet's hop is being asked for until it answers or
        // is given up: with neither, no packet can move.
        if !answered && gave_up.is_empty() {
            return;
        }
        for _ in 0..self.held.len() {
            let h = self.held.pop_front().expect("counted");
            if let Some(mac) = lookup(h.port, h.hop) {
                step(Step::Send {
                    port: h.port,
                    mac,
                    packet: h.packet,
                });
            } else if gave_up.contains(&(h.port, h.hop))
                || !self.asking.contains_key(&(h.port, h.hop))
            {
                step(Step::GiveUp(h.packet));
            } else {
                self.held.push_back(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn iface() -> Interface {
        Interface {
            mac: OURS,
            addresses: vec![
                ("10.0.1.1".parse().unwrap(), 24),
                ("fd00:1::1".parse().unwrap(), 64),
            ],
            gateways: vec!["10.0.1.254".parse().unwrap()],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn next_hops_and_sources() {
        let i = iface();
        assert_eq!(i.next_hop(ip("10.0.1.7")), Some(ip("10.0.1.7")));
        assert_eq!(i.next_hop(ip("192.0.2.1")), Some(ip("10.0.1.254")));
        assert_eq!(i.next_hop(ip("fd00:1::9")), Some(ip("fd00:1::9")));
        assert_eq!(i.next_hop(ip("2001:db8::1")), None, "no IPv6 gateway");
        assert_eq!(i.source_for(ip("10.0.1.254")), Some(ip("10.0.1.1")));
        assert!(i.owns(ip("10.0.1.1")) && !i.owns(ip("10.0.1.2")));
        let any = Interface {
            addresses: vec![(ip("0.0.0.0"), 0)],
            ..iface()
        };
        assert!(any.on_link(ip("198.51.100.1")), "a /0 covers everything");
    }

    /// A request from a peer, as the peer's kernel sends it.
    fn arp_request(target: &str) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        let body = ethernet_header(&mut b, BROADCAST, PEER, arp::ETHERTYPE);
        arp::Repr {
            operation: arp::OP_REQUEST,
            sender_mac: PEER,
            sender_ip: "10.0.1.2".parse().unwrap(),
            target_mac: [0; 6],
            target_ip: target.parse().unwrap(),
        }
        .emit(body);
        b
    }

    #[test]
    fn answers_arp_for_our_address_only() {
        let mut b = arp_request("10.0.1.1");
        let a = answer(&iface(), &mut b, 60);
        assert_eq!(
            a,
            Answer::Reply {
                len: 60,
                learned: Some((ip("10.0.1.2"), PEER))
            }
        );
        let f = ethernet::Frame::new_checked(&b[..60]).unwrap();
        assert_eq!((f.destination(), f.source()), (PEER, OURS));
        let r = arp::Repr::parse(&arp::Packet::new_checked(f.payload()).unwrap());
        assert_eq!(r.operation, arp::OP_REPLY);
        assert_eq!(
            (r.sender_mac, r.sender_ip, r.target_mac, r.target_ip),
            (
                OURS,
                "10.0.1.1".parse().unwrap(),
                PEER,
                "10.0.1.2".parse().unwrap()
            )
        );
        // A request for someone else only refreshes what we know of its sender.
        let mut other = arp_request("10.0.1.9");
        assert_eq!(
            answer(&iface(), &mut other, 60),
            Answer::Refresh(ip("10.0.1.2"), PEER)
        );
        let mut short = arp_request("10.0.1.1");
        assert_eq!(answer(&iface(), &mut short, 30), Answer::Malformed);
    }

    #[test]
    fn learns_from_arp_replies_on_link_only() {
        let mut b = vec![0u8; 128];
        let body = ethernet_header(&mut b, OURS, PEER, arp::ETHERTYPE);
        let mut reply = arp::Repr {
            operation: arp::OP_REPLY,
            sender_mac: PEER,
            sender_ip: "10.0.1.254".parse().unwrap(),
            target_mac: OURS,
            target_ip: "10.0.1.1".parse().unwrap(),
        };
        reply.emit(body);
        assert_eq!(
            answer(&iface(), &mut b, 60),
            Answer::Learned(ip("10.0.1.254"), PEER)
        );
        reply.sender_ip = "192.0.2.1".parse().unwrap();
        reply.emit(&mut b[14..]);
        assert_eq!(answer(&iface(), &mut b, 60), Answer::Ignored, "off link");
    }

    fn ns_from_peer(target: Ipv6Addr, src: Ipv6Addr) -> Vec<u8> {
        let mut b = vec![0u8; 256];
        let group = ndp::solicited_node(target);
        let body = ethernet_header(
            &mut b,
            ndp::multicast_mac(group),
            PEER,
            ethernet::ETHERTYPE_IPV6,
        );
        let n = ipv6_header(body, src, group, ndp::LEN_WITH_LLADDR);
        ndp::Repr::Solicit {
            target,
            lladdr: PEER,
        }
        .emit(src, group, &mut body[n..]);
        b
    }

    const NS_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndp::LEN_WITH_LLADDR;

    #[test]
    fn answers_neighbour_solicitations_with_a_valid_advertisement() {
        let (ours, peer): (Ipv6Addr, Ipv6Addr) =
            ("fd00:1::1".parse().unwrap(), "fd00:1::2".parse().unwrap());
        let mut b = ns_from_peer(ours, peer);
        let a = answer(&iface(), &mut b, NS_LEN);
        assert_eq!(
            a,
            Answer::Reply {
                len: NS_LEN,
                learned: Some((IpAddr::V6(peer), PEER))
            }
        );
        let f = ethernet::Frame::new_checked(&b[..NS_LEN]).unwrap();
        assert_eq!((f.destination(), f.source()), (PEER, OURS));
        let p = ipv6::Packet::new_checked(f.payload()).unwrap();
        assert_eq!(
            (p.source(), p.destination(), p.hop_limit()),
            (ours, peer, 255)
        );
        assert!(checksum::icmpv6_verifies(
            ours.into(),
            peer.into(),
            p.payload()
        ));
        let m = ndp::Message::new_checked(p.payload()).unwrap();
        assert_eq!(
            (m.msg_type(), m.target(), m.solicited(), m.lladdr()),
            (ndp::NEIGHBOR_ADVERT, ours, true, Some(OURS))
        );

        let mut other = ns_from_peer("fd00:1::7".parse().unwrap(), peer);
        assert_eq!(answer(&iface(), &mut other, NS_LEN), Answer::Ignored);
        let mut dad = ns_from_peer(ours, Ipv6Addr::UNSPECIFIED);
        assert_eq!(answer(&iface(), &mut dad, NS_LEN), Answer::Ignored);
        let mut bad = ns_from_peer(ours, peer);
        bad[NS_LEN - 1] ^= 0xff; // checksum no longer verifies
        assert_eq!(answer(&iface(), &mut bad, NS_LEN), Answer::Malformed);
        let mut hops = ns_from_peer(ours, peer);
        hops[14 + 7] = 64; // not from the link
        assert_eq!(answer(&iface(), &mut hops, NS_LEN), Answer::Malformed);
    }

    #[test]
    fn solicitations_we_send_are_what_we_answer() {
        // Our own request, seen by a node that owns the target, is answered.
        let mut b = vec![0u8; 256];
        let n = solicit(&iface(), ip("10.0.1.2"), &mut b).unwrap();
        let peer = Interface {
            mac: PEER,
            addresses: vec![(ip("10.0.1.2"), 24), (ip("fd00:1::2"), 64)],
            gateways: vec![],
        };
        assert!(matches!(
            answer(&peer, &mut b, n),
            Answer::Reply { learned: Some((a, OURS)), .. } if a == ip("10.0.1.1")
        ));
        let n = solicit(&iface(), ip("fd00:1::2"), &mut b).unwrap();
        assert!(matches!(
            answer(&peer, &mut b, n),
            Answer::Reply { learned: Some((a, OURS)), .. } if a == ip("fd00:1::1")
        ));
        // The advertisement that came back teaches us the peer.
        assert_eq!(
            answer(&iface(), &mut b, n),
            Answer::Learned(ip("fd00:1::2"), PEER)
        );
        let v4_only = Interface {
            addresses: vec![(ip("10.0.1.1"), 24)],
            ..iface()
        };
        assert_eq!(solicit(&v4_only, ip("fd00:1::2"), &mut b), None);
    }

    proptest::proptest! {
        /// Whatever arrives, answering never panics and a reply fits.
        #[test]
        fn any_frame_is_answered_or_refused_without_panic(
            mut frame in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            kind in 0u8..3,
        ) {
            if frame.len() >= 14 {
                let t: u16 = [arp::ETHERTYPE, ethernet::ETHERTYPE_IPV6, 0x0800][kind as usize];
                frame[12..14].copy_from_slice(&t.to_be_bytes());
                if kind == 1 && frame.len() > 21 {
                    frame[14] = 0x60;
                    frame[20] = ndp::NEXT_HEADER_ICMPV6;
                }
            }
            let len = frame.len();
            frame.resize(len.max(ANSWER_ROOM), 0);
            if let Answer::Reply { len, .. } = answer(&iface(), &mut frame, len) {
                proptest::prop_assert!(len <= frame.len());
            }
            let mut small = vec![0u8; 20];
            answer(&iface(), &mut small, 20);
        }
    }

    #[test]
    fn table_reports_changes() {
        let mut t = Table::default();
        assert!(t.learn(ip("10.0.1.2"), PEER, 1));
        assert!(!t.learn(ip("10.0.1.2"), PEER, 2));
        assert!(t.learn(ip("10.0.1.2"), OURS, 3));
        assert_eq!(t.get(ip("10.0.1.2")), Some(OURS));
        assert_eq!(t.len(), 1);
        assert!(
            !t.refresh(ip("10.0.1.3"), PEER, 4),
            "refresh creates nothing"
        );
        assert!(t.refresh(ip("10.0.1.2"), PEER, 5));
        assert_eq!((t.get(ip("10.0.1.2")), t.len()), (Some(PEER), 1));
    }

    #[test]
    fn stale_entries_are_probed_then_forgotten_unless_confirmed() {
        let mut t = Table::default();
        let (a, b) = (ip("10.0.1.2"), ip("10.0.1.3"));
        t.learn(a, PEER, 0);
        t.learn(b, PEER, 0);
        let mut probed = Vec::new();
        assert!(!t.age(STALE_NS - 1, |i| probed.push(i)));
        assert!(probed.is_empty(), "fresh entries are left alone");
        let mut now = STALE_NS;
        t.age(now, |i| probed.push(i));
        probed.sort();
        assert_eq!(probed, [a, b], "stale: asked again");
        probed.clear();
        t.age(now + PROBE_EVERY_NS / 2, |i| probed.push(i));
        assert!(probed.is_empty(), "not more than once a second");
        // a answers; b never does.
        now += PROBE_EVERY_NS;
        t.refresh(a, PEER, now);
        t.age(now, |i| probed.push(i));
        assert_eq!(probed, [b]);
        assert!(t.age(STALE_NS + FORGET_AFTER_STALE_NS, |_| {}));
        assert_eq!((t.get(a), t.get(b)), (Some(PEER), None));
    }

    #[test]
    fn resolver_holds_asks_retries_releases_and_gives_up() {
        let mut r: Resolver<u32> = Resolver::default();
        let (a, b) = (ip("10.0.1.2"), ip("10.0.1.3"));
        assert_eq!(r.hold(0, 0, a, 1), Hold::Held { ask: true });
        assert_eq!(r.hold(1, 0, a, 2), Hold::Held { ask: false });
        assert_eq!(r.hold(2, 0, b, 3), Hold::Held { ask: true });
        let mut steps = Vec::new();
        let none = |_: u16, _: IpAddr| None;
        r.poll(RETRY_NS - 1, none, |s| steps.push(s));
        assert!(steps.is_empty(), "nothing due yet");
        // a answers; b is asked again.
        let only_a = |_: u16, h: IpAddr| (h == a).then_some(PEER);
        r.poll(RETRY_NS + 2, only_a, |s| steps.push(s));
        assert_eq!(
            steps,
            [
                Step::Ask { port: 0, hop: b },
                Step::Send {
                    port: 0,
                    mac: PEER,
                    packet: 1
                },
                Step::Send {
                    port: 0,
                    mac: PEER,
                    packet: 2
                },
            ]
        );
        steps.clear();
        let mut now = RETRY_NS + 2;
        for _ in 0..TRIES {
            now += RETRY_NS;
            r.poll(now, none, |s| steps.push(s));
        }
        assert_eq!(
            steps,
            [
                Step::Ask { port: 0, hop: b },
                Step::Ask { port: 0, hop: b },
                Step::GiveUp(3),
            ]
        );
        assert!(r.is_idle());
        for i in 0..HOLD_PER_HOP as u32 {
            assert!(matches!(r.hold(now, 1, a, i), Hold::Held { .. }));
        }
        assert_eq!(r.hold(now, 1, a, 99), Hold::Full(99));
    }
}
