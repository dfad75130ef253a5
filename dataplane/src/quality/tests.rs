use super::*;
use tollgate_ebpf::host;

const MS: u64 = 1_000_000;

fn rtp_packet(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend(seq.to_be_bytes());
    p.extend(ts.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend([0xd5; 160]);
    p
}

/// An RTCP SR (with `ntp`) or RR from `ssrc`, with one block when `block`.
fn rtcp_packet(ntp: Option<u64>, block: Option<(u32, u32, u32, u32)>) -> Vec<u8> {
    let count = u8::from(block.is_some());
    let words = if ntp.is_some() { 6 } else { 1 } + 6 * u16::from(count);
    let mut p = vec![0x80 | count, if ntp.is_some() { 200 } else { 201 }];
    p.extend(words.to_be_bytes());
    p.extend(0x5eu32.to_be_bytes());
    if let Some(ntp) = ntp {
        p.extend(ntp.to_be_bytes());
        p.extend([0; 12]);
    }
    if let Some((lost, jitter, lsr, dlsr)) = block {
        p.extend(7u32.to_be_bytes());
        p.extend(lost.to_be_bytes());
        p.extend(0u32.to_be_bytes());
        for w in [jitter, lsr, dlsr] {
            p.extend(w.to_be_bytes());
        }
    }
    p
}

fn feed(t: &mut RtpTracker, now: u64, seq: u16, ts: u32) {
    t.on_packet(now, 7, seq, ts);
}

#[test]
fn steady_stream_has_no_loss_and_no_jitter() {
    let mut t = RtpTracker::new(8000);
    for i in 0..500u32 {
        feed(
            &mut t,
            i as u64 * 20 * MS,
            65000u16.wrapping_add(i as u16),
            1000 + i * 160,
        );
    }
    let q = t.quality().unwrap();
    assert_eq!(
        (q.received, q.expected, q.lost, q.jitter, q.ssrc_changes),
        (500, 500, 0, 0, 0)
    );
}

#[test]
fn counts_gaps_across_wrap() {
    let mut t = RtpTracker::new(8000);
    for (i, seq) in [65533u16, 65534, 1, 2, 3].iter().enumerate() {
        feed(&mut t, i as u64 * 20 * MS, *seq, i as u32 * 160);
    }
    let q = t.quality().unwrap();
    // 65533..=3 is 7 numbers; 5 arrived.
    assert_eq!((q.expected, q.received, q.lost), (7, 5, 2));
}

#[test]
fn jitter_follows_rfc3550_estimator() {
    let mut t = RtpTracker::new(8000);
    // Alternate arrivals 10 ms early/late: |D| = 20 ms = 160 units each time.
    let mut j = 0f64;
    for i in 0..200u32 {
        let off = if i % 2 == 0 { 0 } else { 20 * MS };
        feed(&mut t, i as u64 * 40 * MS + off, i as u16, i * 320);
        if i > 0 {
            j += (160.0 - j) / 16.0;
        }
    }
    let q = t.quality().unwrap();
    assert!(
        (q.jitter as f64 - j).abs() <= 1.0,
        "jitter {}, estimator {j}",
        q.jitter
    );
    assert_eq!(q.jitter_us(8000), q.jitter as u64 * 125);
}

#[test]
fn ssrc_change_restarts_counts() {
    let mut t = RtpTracker::new(8000);
    for i in 0..10u16 {
        t.on_packet(i as u64 * 20 * MS, 1, i, i as u32 * 160);
    }
    for i in 0..5u16 {
        t.on_packet((10 + i) as u64 * 20 * MS, 2, 5000 + i, i as u32 * 160);
    }
    let q = t.quality().unwrap();
    assert_eq!((q.ssrc, q.received, q.lost, q.ssrc_changes), (2, 5, 0, 1));
}

#[test]
fn duplicates_and_reorder_are_not_loss() {
    let mut t = RtpTracker::new(8000);
    for (i, seq) in [1u16, 2, 4, 3, 4, 5].iter().enumerate() {
        feed(&mut t, i as u64 * 20 * MS, *seq, *seq as u32 * 160);
    }
    let q = t.quality().unwrap();
    assert_eq!((q.expected, q.lost), (5, 0));
}

#[test]
fn stun_dtls_and_rtcp_leave_the_rtp_figures_alone() {
    let mut t = RtpTracker::new(8000);
    let stun = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for i in 0..50u16 {
        let now = u64::from(i) * 20 * MS;
        let rtp = rtp_packet(7, i, u32::from(i) * 160);
        assert_eq!(t.on_payload(now, &rtp, || None), Measured::Rtp);
        assert_eq!(t.on_payload(now + MS, &stun, || None), Measured::Other);
        assert_eq!(t.on_payload(now + MS, &dtls, || None), Measured::Other);
        let rr = rtcp_packet(None, Some((0, 0, 0, 0)));
        assert_eq!(t.on_payload(now + 3 * MS, &rr, || None), Measured::Rtcp);
    }
    let q = t.quality().unwrap();
    assert_eq!((q.received, q.lost, q.jitter), (50, 0, 0));
    assert_eq!(t.state().rtcp_packets, 50);
}

#[test]
fn a_report_naming_the_reverse_sr_gives_the_round_trip() {
    // The SR passed towards the sender 300 ms ago; it held it 250 ms.
    let mut reverse = RtpTracker::new(8000);
    let ntp = 0x1111_3344_5566_0000u64;
    reverse.on_payload(1000 * MS, &rtcp_packet(Some(ntp), None), || None);
    let sr = (reverse.state().sr_ntp_mid, reverse.state().sr_seen_ns);
    assert_eq!(sr, (0x3344_5566, 1000 * MS));

    let mut t = RtpTracker::new(8000);
    // fraction 64/256, cumulative -2 (duplicates), jitter 80, DLSR 250 ms.
    let rr = rtcp_packet(None, Some((0x40ff_fffe, 80, sr.0, 0x4000)));
    t.on_payload(1300 * MS, &rr, || Some(sr));
    let r = t.remote().unwrap();
    assert_eq!(
        (
            r.reports,
            r.fraction_lost,
            r.cumulative_lost,
            r.jitter,
            r.rtt_us
        ),
        (1, 64, -2, 80, Some(50_000))
    );
    // SRTCP (index and tag after the report) is counted, its report not read.
    let mut srtcp = rtcp_packet(None, Some((0x0300_0009, 66, sr.0, 0)));
    srtcp.extend([0x80, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(t.on_payload(1350 * MS, &srtcp, || Some(sr)), Measured::Rtcp);
    assert_eq!((t.remote(), t.state().rtcp_packets), (Some(r), 2));
    // A block naming another SR, or none, keeps the last round trip.
    let other = rtcp_packet(None, Some((0, 8, 0x1234, 0)));
    t.on_payload(1400 * MS, &other, || Some(sr));
    let r = t.remote().unwrap();
    assert_eq!((r.reports, r.jitter, r.rtt_us), (2, 8, Some(50_000)));
    assert_eq!(t.state().rtcp_packets, 3);
    assert_eq!(t.state().rtt_samples, 1);
}

/// A deterministic stream with loss, reordering, duplicates, a wrap, an
/// SSRC change, a sequence restart, jitter, RTCP and STUN.
fn mixed_stream() -> Vec<(u64, Vec<u8>)> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut out = Vec::new();
    let mut seq = 65000u16;
    for i in 0..3000u64 {
        let ssrc = if i < 2000 { 7 } else { 9 };
        if i == 2500 {
            seq = seq.wrapping_add(20_000);
        }
        seq = seq.wrapping_add(1);
        let ts = (i * 160) as u32;
        let arrival = i * 20 * MS + rnd(30) * MS + rnd(1000) * 1000;
        match rnd(50) {
            0 => continue,
            1 => out.push((arrival, rtp_packet(ssrc, seq.wrapping_sub(2), ts - 320))),
            2 => out.push((arrival, rtp_packet(ssrc, seq, ts))),
            3 => out.push((
                arrival,
                vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0],
            )),
            4 => out.push((arrival, rtcp_packet(Some(i << 24), None))),
            5 => out.push((
                arrival,
                rtcp_packet(None, Some((0x0100_0003, 55, (i as u32) << 8, 99))),
            )),
            6 => {
                // SRTCP: an index and a tag after the (encrypted) report.
                let mut p = rtcp_packet(None, Some((0x0300_0009, 66, 0, 0)));
                p.extend([0x80, 0, 0, i as u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
                out.push((arrival, p));
            }
            _ => {}
        }
        out.push((arrival, rtp_packet(ssrc, seq, ts)));
    }
    out
}

#[test]
fn the_xdp_programs_tracking_agrees_with_this_one() {
    for rate in [8000, 48000, 90000] {
        let mut rust = RtpTracker::new(rate);
        let mut c = abi::FlowQuality::default();
        let mut reverse = RtpTracker::new(rate);
        let mut most_lost = 0;
        for (n, (now, mut p)) in mixed_stream().into_iter().enumerate() {
            // The reverse flow carries an SR now and then; a report names it.
            if n % 97 == 0 {
                let sr = rtcp_packet(Some(((n as u64) << 24) | 0x8000), None);
                reverse.on_payload(now, &sr, || None);
            }
            let rev = *reverse.state();
            if n % 97 == 50 {
                p = rtcp_packet(None, Some((0x0200_0001, 40, rev.sr_ntp_mid, 0x800)));
            }
            let kind = host::measure(&mut c, Some(&rev), &p, now, rate);
            let ours = rust.on_payload(now, &p, || Some((rev.sr_ntp_mid, rev.sr_seen_ns)));
            let kind = match kind {
                host::Measured::Rtp => Measured::Rtp,
                host::Measured::Rtcp => Measured::Rtcp,
                host::Measured::Other => Measured::Other,
            };
            assert_eq!(kind, ours, "packet {n}: {p:02x?}");
            assert_eq!(&c, rust.state(), "packet {n} at {now} ns, {rate} Hz");
            most_lost = most_lost.max(rust.quality().map_or(0, |q| q.lost));
        }
        let q = rust.quality().unwrap();
        assert_eq!((q.ssrc, q.ssrc_changes), (9, 1), "{q:?}");
        assert!(
            most_lost > 0 && q.jitter > 0,
            "{q:?}, lost at most {most_lost}"
        );
        let r = rust.remote().unwrap();
        assert!(r.reports > 0 && rust.state().rtt_samples > 0, "{r:?}");
    }
}

#[test]
fn the_last_sr_or_rr_is_kept_whole_for_export_in_c_and_rust_alike() {
    let mut t = RtpTracker::new(8000);
    let mut c = abi::FlowQuality::default();
    let mut both = |now: u64, p: &[u8]| {
        host::measure(&mut c, None, p, now, 8000);
        t.on_payload(now, p, || None);
        assert_eq!(&c, t.state(), "{p:02x?}");
        t.report()
    };
    assert_eq!(both(MS, &rtp_packet(7, 1, 160)), None, "RTP is no report");
    // An SR with sender info and one block (source 7, ext seq 0).
    let mut sr = rtcp_packet(
        Some(0x1111_2222_3333_4444),
        Some((0x0a00_0005, 40, 0x2222_3333, 0x8000)),
    );
    sr[20..28].copy_from_slice(&[0, 0, 0, 50, 0, 0, 0x1f, 0x40]);
    let r = both(2 * MS, &sr).expect("an SR is kept");
    assert_eq!(
        (r.seq, r.seen_ns, r.packet_type, r.ssrc, r.report_count),
        (1, 2 * MS, 200, 0x5e, 1)
    );
    let s = r.sender.expect("an SR's sender info");
    assert_eq!(
        (s.ntp_msw, s.ntp_lsw, s.packets, s.octets),
        (0x1111_2222, 0x3333_4444, 50, 8000)
    );
    let b = r.block.expect("its first block");
    assert_eq!(
        (
            b.ssrc,
            b.fraction_lost,
            b.packets_lost,
            b.jitter,
            b.lsr,
            b.dlsr
        ),
        (7, 10, 5, 40, 0x2222_3333, 0x8000)
    );
    // An RR without blocks: no sender info, no block; SRTCP and SDES leave it.
    let r = both(3 * MS, &rtcp_packet(None, None)).unwrap();
    assert_eq!(
        (r.seq, r.packet_type, r.sender, r.block),
        (2, 201, None, None)
    );
    let mut srtcp = rtcp_packet(None, Some((0, 1, 0, 0)));
    srtcp.extend([0x80, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(both(4 * MS, &srtcp).map(|r| r.seq), Some(2));
    let sdes = [0x81, 202, 0, 1, 0, 0, 0, 0x5e];
    assert_eq!(both(5 * MS, &sdes).map(|r| r.seq), Some(2));
}
