/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * quality.h - per-flow RTP receive quality and RTCP report reading for the
 * XDP program, on struct tg_flow_quality: RFC 3550 A.1 sequence tracking
 * (loss from sequence gaps, wraps, restarts, SSRC changes) and A.8
 * interarrival jitter, computed in nanoseconds so no step rounds to the
 * RTP clock; and from RTCP SR/RR the first report block (remote loss and
 * jitter) and a round trip from its LSR/DLSR against when the relay saw
 * the matching SR pass the other way; and the last report itself (header,
 * sender info, first block), for export.
 *
 * Pure functions over the state and bounds-checked payload bytes, no BPF
 * helpers: the caller holds the entry's lock, and the host shim compiles
 * the same code so tests check it against the data plane's Rust tracker.
 */
#ifndef TOLLGATE_QUALITY_H
#define TOLLGATE_QUALITY_H

#include "shared.h"

/* A jump of this many sequence numbers or more is a restart, not loss (A.1). */
#define TG_MAX_DROPOUT 3000
#define TG_MAX_MISORDER 100
/* A transit change this large is a sender's timeline jump, not jitter. */
#define TG_JITTER_MAX_D_NS 10000000000ull
#define TG_NS 1000000000ull

enum tg_payload {
	TG_PAYLOAD_OTHER = 0, /* STUN, DTLS, anything not RTP/RTCP: not measured */
	TG_PAYLOAD_RTP,
	TG_PAYLOAD_RTCP,
};

/* What an RTCP SR or RR said, read from the first packet of a compound. */
struct tg_rtcp_seen {
	__u32 is_report; /* an SR or RR of plain RTCP was read */
	__u32 is_sr;
	__u32 has_block;
	__u32 count;    /* report count (RC) */
	__u32 ssrc;     /* its sender's SSRC */
	__u32 ntp_msw;  /* SR: NTP timestamp, seconds */
	__u32 ntp_lsw;  /* SR: NTP timestamp, fraction */
	__u32 ntp_mid;  /* SR: NTP timestamp, middle 32 bits */
	__u32 rtp_ts;   /* SR: RTP timestamp */
	__u32 packets;  /* SR: sender's packet count */
	__u32 octets;   /* SR: sender's octet count */
	__u32 block_ssrc; /* block: the source it reports on */
	__u32 lost;     /* block: fraction lost << 24 | cumulative lost */
	__u32 ext_seq;  /* block: extended highest sequence number received */
	__u32 jitter;   /* block: interarrival jitter */
	__u32 lsr;      /* block: middle 32 bits of the last SR its sender got */
	__u32 dlsr;     /* block: delay since that SR, 1/65536 s */
};

TG_INLINE __u32 tg_be32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

/* RTP (version 2, not an RTCP type under RFC 5761 muxing), RTCP, or neither. */
TG_INLINE int tg_payload_kind(const __u8 *p, const void *end)
{
	if ((const void *)(p + 8) > end || p[0] >> 6 != 2)
		return TG_PAYLOAD_OTHER;
	if (p[1] >= 192 && p[1] <= 223)
		return TG_PAYLOAD_RTCP;
	__u8 pt = p[1] & 0x7f;
	if ((const void *)(p + 12) > end || (pt >= 72 && pt <= 76))
		return TG_PAYLOAD_OTHER;
	return TG_PAYLOAD_RTP;
}

TG_INLINE void tg_rtp_restart(struct tg_flow_quality *q, __u32 ssrc, __u16 seq)
{
	q->ssrc = ssrc;
	q->base_seq = seq;
	q->ext_max = seq;
	q->received = 0;
	q->jitter16_ns = 0;
}

/* A.1: the highest sequence number, its wraps, and restarts on big jumps. */
TG_INLINE void tg_rtp_sequence(struct tg_flow_quality *q, __u32 ssrc, __u16 seq)
{
	if (q->received == 0 || ssrc != q->ssrc) {
		if (q->received)
			q->ssrc_changes += 1;
		tg_rtp_restart(q, ssrc, seq);
		return;
	}
	__u16 max = q->ext_max & 0xffff;
	__u16 delta = seq - max;
	if (delta != 0 && delta < TG_MAX_DROPOUT) {
		if (seq < max)
			q->ext_max += 1u << 16;
		q->ext_max = (q->ext_max & 0xffff0000u) | seq;
	} else if (delta != 0 && delta <= 0xffff - TG_MAX_MISORDER) {
		tg_rtp_restart(q, ssrc, seq);
	}
	/* else a duplicate or a reordered packet: received only */
}

/* A.8 in nanoseconds: D = arrival gap - timestamp gap; J += (|D| - J) / 16. */
TG_INLINE void tg_rtp_jitter(struct tg_flow_quality *q, __u64 now_ns, __u32 rate, __u32 ts)
{
	__s32 dts = (__s32)(ts - q->prev_ts);
	__u64 mag = dts < 0 ? (__u64)(-(__s64)dts) : (__u64)dts;
	__u64 ts_ns = mag * TG_NS / (rate ? rate : 1);
	__s64 d = (__s64)(now_ns - q->prev_ns) - (dts < 0 ? -(__s64)ts_ns : (__s64)ts_ns);
	__u64 ad = d < 0 ? (__u64)(-d) : (__u64)d;
	if (ad < TG_JITTER_MAX_D_NS)
		q->jitter16_ns += ad - ((q->jitter16_ns + 8) >> 4);
}

/* One RTP packet that arrived at `now_ns` on a flow of clock `rate` Hz. */
TG_INLINE void tg_rtp_packet(struct tg_flow_quality *q, __u64 now_ns, __u32 rate,
			     __u32 ssrc, __u16 seq, __u32 ts)
{
	tg_rtp_sequence(q, ssrc, seq);
	q->received += 1;
	if (q->received > 1)
		tg_rtp_jitter(q, now_ns, rate, ts);
	q->prev_ns = now_ns;
	q->prev_ts = ts;
}

/* The RTP header fields the tracker needs; `p` holds at least 12 bytes. */
TG_INLINE void tg_rtp_fields(const __u8 *p, __u32 *ssrc, __u16 *seq, __u32 *ts)
{
	*seq = (__u16)(p[2] << 8 | p[3]);
	*ts = tg_be32(p + 4);
	*ssrc = tg_be32(p + 8);
}

/* Most packets of a compound walked to find its end. */
#define TG_RTCP_MAX_PARTS 4

/*
 * Plain RTCP: the compound's packets (at most TG_RTCP_MAX_PARTS) end exactly
 * at the end of the `len` bytes of payload. SRTCP appends an index and an
 * authentication tag and encrypts the reports, so it fails this and its
 * reports are not read.
 */
TG_INLINE int tg_rtcp_plain(const __u8 *p, const void *end, __u32 len)
{
	__u32 off = 0;
	for (int i = 0; i < TG_RTCP_MAX_PARTS; i++) {
		/* An opaque bound the compiler cannot drop, for the verifier. */
		asm volatile("" : "+r"(off));
		off &= 0x3fff;
		const __u8 *h = p + off;
		if ((const void *)(h + 4) > end || h[0] >> 6 != 2)
			return 0;
		off += ((__u32)(h[2] << 8 | h[3]) + 1) * 4;
		if (off == len)
			return 1;
		if (off > len || off > 0x3fff)
			return 0;
	}
	return 0;
}

/*
 * Reads an SR's NTP timestamp and the first report block of an SR or RR of
 * plain RTCP (`len` bytes of payload). Other RTCP types, SRTCP, and blocks
 * beyond the payload read as nothing.
 */
TG_INLINE void tg_rtcp_parse(const __u8 *p, const void *end, __u32 len, struct tg_rtcp_seen *r)
{
	__builtin_memset(r, 0, sizeof(*r));
	if (!tg_rtcp_plain(p, end, len))
		return;
	const __u8 *block;
	if (p[1] == 200) {
		if ((const void *)(p + 28) > end)
			return;
		r->is_sr = 1;
		r->ntp_msw = tg_be32(p + 8);
		r->ntp_lsw = tg_be32(p + 12);
		r->ntp_mid = tg_be32(p + 10);
		r->rtp_ts = tg_be32(p + 16);
		r->packets = tg_be32(p + 20);
		r->octets = tg_be32(p + 24);
		block = p + 28;
	} else if (p[1] == 201) {
		block = p + 8;
	} else {
		return;
	}
	if ((const void *)(p + 8) > end)
		return;
	r->is_report = 1;
	r->count = p[0] & 0x1f;
	r->ssrc = tg_be32(p + 4);
	if (r->count == 0 || (const void *)(block + 24) > end)
		return;
	r->has_block = 1;
	r->block_ssrc = tg_be32(block);
	r->lost = tg_be32(block + 4);
	r->ext_seq = tg_be32(block + 8);
	r->jitter = tg_be32(block + 12);
	r->lsr = tg_be32(block + 16);
	r->dlsr = tg_be32(block + 20);
}

/* Keeps the whole report (but blocks past the first) for export. */
TG_INLINE void tg_rtcp_keep(struct tg_flow_quality *q, const struct tg_rtcp_seen *r, __u64 now_ns)
{
	q->rtcp_reports += 1;
	q->rtcp_seen_ns = now_ns;
	q->rtcp_type = r->is_sr ? 200 : 201;
	q->rtcp_count = r->count;
	q->rtcp_block = r->has_block;
	q->rtcp_ssrc = r->ssrc;
	if (r->is_sr) {
		q->sr_ntp_msw = r->ntp_msw;
		q->sr_ntp_lsw = r->ntp_lsw;
		q->sr_rtp_ts = r->rtp_ts;
		q->sr_packets = r->packets;
		q->sr_octets = r->octets;
	}
	if (r->has_block) {
		q->block_ssrc = r->block_ssrc;
		q->block_ext_seq = r->ext_seq;
		q->block_lsr = r->lsr;
		q->block_dlsr = r->dlsr;
	}
}

/*
 * Records what an RTCP packet said. `rev_ntp_mid`/`rev_seen_ns` are the last
 * SR seen on the reverse flow (0 when unknown): a block whose LSR names it
 * gives the round trip from the relay to this flow's sender and back, less
 * the time the sender held the SR (DLSR).
 */
TG_INLINE void tg_rtcp_apply(struct tg_flow_quality *q, const struct tg_rtcp_seen *r,
			     __u64 now_ns, __u32 rev_ntp_mid, __u64 rev_seen_ns)
{
	q->rtcp_packets += 1;
	if (r->is_report)
		tg_rtcp_keep(q, r, now_ns);
	if (r->is_sr) {
		q->sr_ntp_mid = r->ntp_mid;
		q->sr_seen_ns = now_ns;
	}
	if (!r->has_block)
		return;
	q->reports += 1;
	q->remote_lost = r->lost;
	q->remote_jitter = r->jitter;
	if (r->lsr == 0 || r->lsr != rev_ntp_mid || rev_seen_ns == 0)
		return;
	__u64 held = ((__u64)r->dlsr * TG_NS) >> 16;
	__u64 elapsed = now_ns - rev_seen_ns;
	if (now_ns < rev_seen_ns || elapsed < held)
		return;
	q->rtt_ns = elapsed - held;
	q->rtt_samples += 1;
}

#endif
