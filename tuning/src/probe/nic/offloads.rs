//! A NIC's offloads: those that must be off for a relay and XDP (LRO,
//! hardware GRO, UDP GRO forwarding), checksum offloads that should be on,
//! and the GRO/GSO/TSO state for the record.

use super::Nic;
use crate::model::{Change, Finding, Setting, Severity};
use crate::probe::{finding, with};

/// An offload that should be in one state for media: the kernel's
/// feature name, the ethtool CLI's, the state wanted, and why.
struct Offload {
    feature: &'static str,
    cli: &'static str,
    want: bool,
    severity: Severity,
    why: &'static str,
    /// What to do when the driver holds it in the wrong state; None: a
    /// device that cannot change it (no checksum offload) is not reported.
    fixed: Option<&'static str>,
}

const OFFLOADS: &[Offload] = &[
    Offload {
        feature: "rx-lro",
        cli: "lro",
        want: false,
        severity: Severity::Warning,
        why: "LRO merges packets in the NIC: a relay must forward them as sent, and native XDP will not attach \
              while it is on.",
        fixed: Some("the driver holds it on: turn LRO/RSC off in the NIC's firmware or driver module options"),
    },
    Offload {
        feature: "rx-gro-hw",
        cli: "rx-gro-hw",
        want: false,
        severity: Severity::Warning,
        why: "Hardware GRO merges packets before XDP sees them; drivers (bnxt_en, mlx5_core, qede, virtio_net) \
              refuse XDP while it is on.",
        fixed: Some("the driver holds it on: on virtio_net give the guest control of its offloads (QEMU: -device virtio-net-pci,ctrl_guest_offloads=on) or turn them off on the host (guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off)"),
    },
    Offload {
        feature: "rx-udp-gro-forwarding",
        cli: "rx-udp-gro-forwarding",
        want: false,
        severity: Severity::Advice,
        why: "Merging forwarded UDP into super-packets delays RTP until a batch is full and adds jitter.",
        fixed: None,
    },
    Offload {
        feature: "rx-checksum",
        cli: "rx",
        want: true,
        severity: Severity::Advice,
        why: "Without receive checksum offload the kernel sums every UDP packet on the socket path in software.",
        fixed: None,
    },
    Offload {
        feature: "tx-checksum-ip-generic",
        cli: "tx",
        want: true,
        severity: Severity::Advice,
        why: "Without transmit checksum offload every relayed packet is summed in software on the socket path.",
        fixed: None,
    },
];

const WHY_OFFLOADS: &str =
    "GRO, GSO and TSO do not merge or split RTP (small UDP datagrams); they help the \
                            node's TCP (SIP over TCP/TLS, databases) and are left as they are.";

pub(super) fn findings(nic: &Nic) -> Vec<Finding> {
    let dev = &nic.name;
    if nic.features.is_none() {
        let f = finding(
            format!("nic.offloads.{dev}"),
            Severity::Advice,
            format!("{dev}: offloads unknown"),
            WHY_OFFLOADS,
        );
        return vec![with(
            f,
            vec![format!("ETHTOOL_GFEATURES {dev}: not supported")],
            None,
            None,
        )];
    }
    let mut out: Vec<Finding> = OFFLOADS.iter().filter_map(|o| offload(nic, o)).collect();
    let state = |name: &str| {
        nic.feature(name)
            .map_or("unknown", |f| if f.active { "on" } else { "off" })
    };
    let summary = [
        "rx-gro",
        "rx-lro",
        "tx-generic-segmentation",
        "tx-tcp-segmentation",
        "rx-checksum",
        "tx-checksum-ip-generic",
    ]
    .iter()
    .map(|n| format!("{n} {}", state(n)))
    .collect::<Vec<_>>()
    .join(", ");
    let f = finding(
        format!("nic.offloads.{dev}"),
        Severity::Ok,
        format!(
            "{dev}: GRO {}, GSO {}, TSO {}",
            state("rx-gro"),
            state("tx-generic-segmentation"),
            state("tx-tcp-segmentation")
        ),
        WHY_OFFLOADS,
    );
    out.push(with(
        f,
        vec![format!("ETHTOOL_GFEATURES {dev}: {summary}")],
        Some(format!("ethtool -k {dev}")),
        None,
    ));
    out
}

fn offload(nic: &Nic, o: &Offload) -> Option<Finding> {
    let dev = &nic.name;
    let f = nic.feature(o.feature)?;
    if f.active == o.want || (!f.changeable && o.fixed.is_none()) {
        return None;
    }
    let word = |b: bool| if b { "on" } else { "off" };
    let evidence = vec![format!(
        "ETHTOOL_GFEATURES {dev}: {} {}{}",
        o.feature,
        word(f.active),
        if f.changeable { "" } else { " [fixed]" }
    )];
    let change = f.changeable.then(|| Change {
        setting: Setting::Feature {
            device: dev.clone(),
            feature: o.feature.to_string(),
        },
        value: word(o.want).to_string(),
    });
    let command = match o.fixed {
        Some(hint) if !f.changeable => hint.to_string(),
        _ => format!("ethtool -K {dev} {} {}", o.cli, word(o.want)),
    };
    let title = format!(
        "{dev}: {} is {}, should be {}",
        o.feature,
        word(f.active),
        word(o.want)
    );
    Some(with(
        finding(
            format!("nic.feature.{}.{dev}", o.feature),
            o.severity,
            title,
            o.why,
        ),
        evidence,
        Some(command),
        change,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethtool::Feature;

    fn nic_with(features: &[(&str, bool, bool)]) -> Nic {
        let features = features
            .iter()
            .map(|&(name, active, changeable)| Feature {
                name: name.into(),
                active,
                changeable,
            })
            .collect();
        Nic {
            name: "eth9".into(),
            driver: None,
            sysfs_driver: Some("virtio_net".into()),
            numa_node: None,
            speed_mbps: None,
            rx_queues: 1,
            tx_queues: 1,
            channels: None,
            rings: None,
            features: Some(features),
            udp4_hash: None,
            rss_indirection: None,
            irqs: Vec::new(),
            threaded: None,
        }
    }

    #[test]
    fn a_fixed_offload_gets_a_hint_not_a_change_and_a_missing_one_is_not_reported() {
        let nic = nic_with(&[
            ("rx-gro-hw", true, false),
            ("tx-checksum-ip-generic", false, false),
        ]);
        let f = findings(&nic);
        let gro = f
            .iter()
            .find(|f| f.id == "nic.feature.rx-gro-hw.eth9")
            .unwrap();
        assert!(gro.change.is_none());
        assert!(
            gro.command
                .as_deref()
                .unwrap()
                .contains("ctrl_guest_offloads=on"),
            "{gro:?}"
        );
        assert!(!f.iter().any(|f| f.id.contains("tx-checksum")), "{f:?}");
        let changeable = findings(&nic_with(&[("rx-gro-hw", true, true)]));
        assert_eq!(
            changeable[0].command.as_deref(),
            Some("ethtool -K eth9 rx-gro-hw off")
        );
    }
}
