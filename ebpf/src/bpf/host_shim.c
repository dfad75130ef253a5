/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * host_shim.c - the shared headers compiled for the host, so Rust tests can
 * check the #[repr(C)] mirrors' layout, the XDP program's checksum code and
 * its RTP/RTCP quality tracking.
 */
#include <stddef.h>
#include "shared.h"
#include "csum.h"
#include "quality.h"

#define TG_HOST_LAYOUT_LEN 35

/* Sizes and offsets, in the order abi.rs's test expects them. */
void tg_host_layout(__u64 out[TG_HOST_LAYOUT_LEN])
{
	out[0] = sizeof(struct tg_flow_key);
	out[1] = offsetof(struct tg_flow_key, port);
	out[2] = offsetof(struct tg_flow_key, family);
	out[3] = sizeof(struct tg_flow_action);
	out[4] = offsetof(struct tg_flow_action, follow);
	out[5] = offsetof(struct tg_flow_action, src_port);
	out[6] = offsetof(struct tg_flow_action, flags);
	out[7] = offsetof(struct tg_flow_action, egress_ifindex);
	out[8] = offsetof(struct tg_flow_action, clock_rate);
	out[9] = sizeof(struct tg_learned);
	out[10] = offsetof(struct tg_learned, at_ns);
	out[11] = sizeof(struct tg_flow_stats);
	out[12] = offsetof(struct tg_flow_stats, dropped);
	out[13] = TG_C_MAX;
	out[14] = TG_ABI_VERSION;
	out[15] = offsetof(struct tg_flow_action, expect_port);
	out[16] = offsetof(struct tg_flow_action, slot);
	out[17] = sizeof(struct tg_xsk_meta);
	out[18] = offsetof(struct tg_xsk_meta, slot);
	out[19] = offsetof(struct tg_xsk_meta, egress_ifindex);
	out[20] = offsetof(struct tg_xsk_meta, ingress_ifindex);
	out[21] = TG_XSK_META_MAGIC;
	out[22] = TG_FLOW_PIPELINE;
	out[23] = sizeof(struct tg_flow_quality);
	out[24] = offsetof(struct tg_flow_quality, ssrc);
	out[25] = offsetof(struct tg_flow_quality, received);
	out[26] = offsetof(struct tg_flow_quality, jitter16_ns);
	out[27] = offsetof(struct tg_flow_quality, sr_ntp_mid);
	out[28] = offsetof(struct tg_flow_quality, rtt_ns);
	out[29] = offsetof(struct tg_flow_quality, pad);
	out[30] = offsetof(struct tg_flow_quality, rtcp_reports);
	out[31] = offsetof(struct tg_flow_quality, rtcp_seen_ns);
	out[32] = offsetof(struct tg_flow_quality, rtcp_type);
	out[33] = offsetof(struct tg_flow_quality, block_dlsr);
	out[34] = offsetof(struct tg_flow_quality, pad2);
}

/*
 * What the XDP program does with one payload of `len` bytes arriving at
 * `now_ns` on a flow of clock `rate` Hz: returns its enum tg_payload and
 * updates `q` as measure() does. `rev` is the reverse flow's entry, or NULL.
 */
int tg_host_measure(struct tg_flow_quality *q, const struct tg_flow_quality *rev,
		    const __u8 *p, __u32 len, __u64 now_ns, __u32 rate)
{
	const void *end = p + len;
	int kind = tg_payload_kind(p, end);
	if (kind == TG_PAYLOAD_RTP) {
		__u32 ssrc, ts;
		__u16 seq;
		tg_rtp_fields(p, &ssrc, &seq, &ts);
		tg_rtp_packet(q, now_ns, rate, ssrc, seq, ts);
	} else if (kind == TG_PAYLOAD_RTCP) {
		struct tg_rtcp_seen r;
		tg_rtcp_parse(p, end, len, &r);
		tg_rtcp_apply(q, &r, now_ns, rev ? rev->sr_ntp_mid : 0, rev ? rev->sr_seen_ns : 0);
	}
	return kind;
}

/* Apply the XDP program's update to `check` for `n` words changing from old to new. */
__u16 tg_host_csum_update(__u16 check, const __u16 *old, const __u16 *new_, __u32 n)
{
	__u32 sum = tg_csum_begin(check);
	for (__u32 i = 0; i < n; i++)
		sum = tg_csum_word(sum, old[i], new_[i]);
	return tg_csum_end(sum);
}
