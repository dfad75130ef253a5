/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * shared.h - structs shared between the XDP program and user space.
 *
 * Every struct here has a #[repr(C)] mirror in ebpf/src/abi.rs; a test compiles
 * this header for the host and checks sizes and offsets against the mirrors.
 * Change both together and bump TG_ABI_VERSION.
 */
#ifndef TOLLGATE_SHARED_H
#define TOLLGATE_SHARED_H

#include <linux/types.h>
#include <linux/bpf.h>

#define TG_ABI_VERSION 4

/* Address family of a flow key/action (both ends of a flow share one family). */
#define TG_AF_INET 4
#define TG_AF_INET6 6

/* A flow is matched by the local address and UDP port a packet is sent to.
 * IPv4 addresses are stored in the first 4 bytes of `addr`, the rest zero. */
struct tg_flow_key {
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 pad;
};

/* tg_flow_action.flags */
#define TG_FLOW_LEARN        (1u << 0) /* record the first packet's source in `learned` */
#define TG_FLOW_STRICT       (1u << 1) /* drop packets whose source is not the expected one */
#define TG_FLOW_EXPECT       (1u << 2) /* expect_addr/expect_port are set */
#define TG_FLOW_FOLLOW       (1u << 3) /* send to the source learned on `follow` when known */
#define TG_FLOW_PIPELINE     (1u << 4) /* after the rewrite, hand the frame to an AF_XDP worker */

/* What to do with a packet that matched: rewrite it to come from src and go to dst. */
struct tg_flow_action {
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__u8 expect_addr[16];
	struct tg_flow_key follow;
	__be16 src_port;
	__be16 dst_port;
	__be16 expect_port;
	__u16 flags;
	__u32 egress_ifindex; /* 0: the routing table decides */
	__u32 clock_rate;     /* RTP clock rate, kept for user space (adoption after restart) */
	__u32 slot;           /* TG_FLOW_PIPELINE: the workers' index of the flow's stages */
};

/*
 * Metadata the program puts in front of a pipeline flow's frame
 * (bpf_xdp_adjust_meta) before redirecting it into `xsks`; the AF_XDP worker
 * reads it just before the frame's data. The frame itself is already
 * rewritten (addresses, ports, checksums, MACs) for `egress_ifindex`.
 * Its size must stay a multiple of 4 and at most 32 bytes.
 */
#define TG_XSK_META_MAGIC 0x7467786du /* "tgxm" */
struct tg_xsk_meta {
	__u32 magic;          /* TG_XSK_META_MAGIC: the program wrote this */
	__u32 slot;           /* tg_flow_action.slot */
	__u32 egress_ifindex; /* where the FIB sends the frame */
	__u32 ingress_ifindex;
};

/* A source address learned from the first packet of a flow (symmetric RTP). */
struct tg_learned {
	__u8 addr[16];
	__be16 port;
	__u16 pad;
	__u32 pad2;
	__u64 at_ns; /* bpf_ktime_get_ns() of the packet */
};

/* Per-flow, per-CPU counters. Written only by the XDP program. */
struct tg_flow_stats {
	__u64 packets;
	__u64 bytes;
	__u64 last_seen_ns; /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u64 dropped;      /* source did not match under TG_FLOW_STRICT */
};

/*
 * Per-flow receive quality of the RTP arriving on a flow (RFC 3550 A.1
 * sequence tracking, A.8 interarrival jitter) and what the flow's RTCP said.
 * Written only by the XDP program, under `lock`; user space reads it (the
 * kernel leaves the lock out of what it copies) and derives the figures.
 *
 * Shared, not per-CPU: sequence and jitter state depend on packet order and
 * cannot be summed per CPU. A flow's packets normally arrive on one rx
 * queue (RSS hashes the 5-tuple), so the lock is uncontended and the entry
 * stays in that core's cache; where they do not (veth runs the program on
 * the sender's CPU, an RSS rehash) the lock keeps the figures exact.
 */
struct tg_flow_quality {
	struct bpf_spin_lock lock;
	__u32 ssrc;           /* SSRC of the stream being tracked */
	__u32 base_seq;       /* its first sequence number */
	__u32 ext_max;        /* highest sequence number, wrap count in the high 16 bits */
	__u32 prev_ts;        /* RTP timestamp of the previous packet */
	__u32 ssrc_changes;   /* times the SSRC changed after the first */
	__u64 received;       /* RTP packets since the stream (re)started */
	__u64 prev_ns;        /* arrival of the previous RTP packet */
	__u64 jitter16_ns;    /* interarrival jitter in ns, times 16 (A.8) */
	/* RTCP sender and receiver reports seen on the flow. */
	__u64 rtcp_packets;
	__u64 sr_seen_ns;     /* when the last SR passed */
	__u32 sr_ntp_mid;     /* its NTP timestamp's middle 32 bits: what an LSR names */
	__u32 reports;        /* report blocks read */
	__u32 remote_lost;    /* last block: fraction lost << 24 | cumulative lost (24 bits) */
	__u32 remote_jitter;  /* last block: jitter, RTP units of the reported stream */
	__u64 rtt_ns;         /* last round trip to this flow's sender (LSR/DLSR) */
	__u32 rtt_samples;
	/*
	 * The last plain SR or RR read, whole but for blocks past the first,
	 * for export (HEP): `rtcp_reports` moves with each, so a reader that
	 * polls sees a new one by its count. Written with the rest under the lock.
	 */
	__u32 rtcp_reports;   /* SRs and RRs read */
	__u64 rtcp_seen_ns;   /* when the last one passed */
	__u8 rtcp_type;       /* 200 (SR) or 201 (RR) */
	__u8 rtcp_count;      /* its report count (RC) */
	__u8 rtcp_block;      /* 1: its first block was read (remote_lost, remote_jitter, block_*) */
	__u8 pad;
	__u32 rtcp_ssrc;      /* its sender's SSRC */
	__u32 sr_ntp_msw;     /* SR sender info: NTP timestamp, seconds */
	__u32 sr_ntp_lsw;     /*   and fraction */
	__u32 sr_rtp_ts;      /*   RTP timestamp */
	__u32 sr_packets;     /*   sender's packet count */
	__u32 sr_octets;      /*   sender's octet count */
	__u32 block_ssrc;     /* first block: the source it reports on */
	__u32 block_ext_seq;  /* extended highest sequence number received */
	__u32 block_lsr;      /* last SR (LSR) */
	__u32 block_dlsr;     /* delay since last SR (DLSR), 1/65536 s */
	__u32 pad2;
};

/* Indexes of the global per-CPU counter array. */
enum tg_counter {
	TG_C_RX = 0,          /* every packet the program saw */
	TG_C_FORWARDED,       /* redirected to another interface */
	TG_C_TX,              /* sent back out of the interface it came in on */
	TG_C_PASS_NOT_IP,     /* not IPv4/IPv6 (ARP, ...): to the kernel */
	TG_C_PASS_NOT_UDP,    /* IP but not UDP: to the kernel */
	TG_C_PASS_NO_FLOW,    /* UDP to an address/port with no flow: to the kernel */
	TG_C_PASS_MALFORMED,  /* truncated or inconsistent headers: to the kernel */
	TG_C_PASS_FRAGMENT,   /* IPv4 fragment or IPv4 options / IPv6 extension headers */
	TG_C_DROP_SOURCE,     /* strict flow, unexpected source */
	TG_C_DROP_NO_ROUTE,   /* no route to the destination */
	TG_C_DROP_NO_NEIGH,   /* next hop's MAC address unknown */
	TG_C_DROP_NO_EGRESS,  /* egress interface not in tx_ports */
	TG_C_TO_WORKER,       /* pipeline flow: redirected into an AF_XDP socket */
	TG_C_DROP_NO_WORKER,  /* pipeline flow, but no AF_XDP socket on the rx queue */
	TG_C_DROP_NO_META,    /* pipeline flow, but the driver has no room for metadata */
	TG_C_MAX,
};

#endif
