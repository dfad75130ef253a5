/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * tollgate.bpf.c - Tollgate's media relay in the XDP hook.
 *
 * For every UDP packet addressed to a local (address, port) that has a flow,
 * the program checks the source (symmetric-RTP learning, strict mode), rewrites
 * the IP source/destination and UDP ports to the flow's action, fixes the IPv4
 * header and UDP checksums incrementally, asks the kernel's FIB for the egress
 * interface and MAC addresses, counts, and redirects (XDP_TX when the egress is
 * the ingress interface, unless `hairpin_redirect` names it). Everything else
 * goes on to the kernel, counted.
 *
 * A flow with TG_FLOW_PIPELINE goes through all of the above but the last
 * step: its rewritten frame, with a struct tg_xsk_meta in front of it, goes
 * into the AF_XDP socket of its rx queue, where a worker runs the flow's
 * stages and transmits it. Learning and rewriting live here for both paths,
 * so a flow moves between them by a flag, keeping what it learned.
 *
 * Every flow's RTP and RTCP is measured here too (quality.h), on both paths,
 * so a call on the fast path reports loss, jitter and RTCP figures like one
 * through a worker.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TG_INLINE static __always_inline
#include "shared.h"
#include "maps.h"
#include "csum.h"
#include "parse.h"
#include "quality.h"

#define AF_INET 2
#define AF_INET6 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

TG_INLINE void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += 1;
}

TG_INLINE int same_addr(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

TG_INLINE void copy_addr(__u8 *dst, const void *src, int len)
{
	__builtin_memset(dst, 0, 16);
	__builtin_memcpy(dst, src, len);
}

/* Add the change of `len` bytes (even) from `from` to `to` to a checksum sum. */
TG_INLINE __u32 sum_change(__u32 sum, const void *from, const void *to, int len)
{
	const __u16 *f = from, *t = to;
#pragma unroll
	for (int i = 0; i < 8; i++)
		if (i * 2 < len)
			sum = tg_csum_word(sum, f[i], t[i]);
	return sum;
}

/* The flow's quality entry, created zeroed on its first measured packet. */
TG_INLINE struct tg_flow_quality *quality_of(const struct tg_flow_key *key)
{
	struct tg_flow_quality *q = bpf_map_lookup_elem(&flow_quality, key);
	if (q)
		return q;
	__u32 first = 0;
	const struct tg_quality_zero *zero = bpf_map_lookup_elem(&quality_zero, &first);
	if (!zero)
		return 0;
	bpf_map_update_elem(&flow_quality, key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&flow_quality, key);
}

/*
 * Measures a forwarded packet's payload: RTP into the sequence and jitter
 * state, RTCP SR/RR into the report figures. Helpers (map lookups) run
 * before the entry's lock is taken; only quality.h's arithmetic runs under it.
 */
TG_INLINE void measure(const struct tg_flow_key *key, const struct tg_flow_action *act,
		       const __u8 *payload, const void *end, __u32 len, __u64 now)
{
	int kind = tg_payload_kind(payload, end);
	if (kind == TG_PAYLOAD_OTHER)
		return;
	struct tg_flow_quality *q = quality_of(key);
	if (!q)
		return;
	if (kind == TG_PAYLOAD_RTP) {
		__u32 ssrc, ts, rate = act->clock_rate;
		__u16 seq;
		tg_rtp_fields(payload, &ssrc, &seq, &ts);
		bpf_spin_lock(&q->lock);
		tg_rtp_packet(q, now, rate, ssrc, seq, ts);
		bpf_spin_unlock(&q->lock);
		return;
	}
	struct tg_rtcp_seen r;
	tg_rtcp_parse(payload, end, len, &r);
	__u32 rev_mid = 0;
	__u64 rev_ns = 0;
	if (r.has_block && r.lsr && (act->flags & TG_FLOW_FOLLOW)) {
		/* Read without the reverse entry's lock (one lock at a time):
		 * an SR landing meanwhile costs at most one RTT sample. */
		struct tg_flow_quality *rev = bpf_map_lookup_elem(&flow_quality, &act->follow);
		if (rev) {
			rev_mid = rev->sr_ntp_mid;
			rev_ns = rev->sr_seen_ns;
		}
	}
	bpf_spin_lock(&q->lock);
	tg_rtcp_apply(q, &r, now, rev_mid, rev_ns);
	bpf_spin_unlock(&q->lock);
}

/*
 * Hands a rewritten pipeline frame to the AF_XDP socket of its rx queue, with
 * the metadata the worker needs in front. Without a socket there (no worker
 * on that queue yet, or any more) the frame is dropped, counted.
 */
TG_INLINE int to_worker(struct xdp_md *ctx, __u32 slot, __u32 egress)
{
	__u32 ingress = ctx->ingress_ifindex;
	__u32 *base = bpf_map_lookup_elem(&xsk_base, &ingress);
	if (!base) {
		count(TG_C_DROP_NO_WORKER);
		return XDP_DROP;
	}
	__u32 idx = *base + ctx->rx_queue_index;
	/* A driver without room for metadata cannot take pipeline flows. */
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct tg_xsk_meta)) != 0) {
		count(TG_C_DROP_NO_META);
		return XDP_DROP;
	}
	struct tg_xsk_meta *meta = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data) {
		count(TG_C_DROP_NO_META);
		return XDP_DROP;
	}
	meta->magic = TG_XSK_META_MAGIC;
	meta->slot = slot;
	meta->egress_ifindex = egress;
	meta->ingress_ifindex = ingress;
	if (bpf_redirect_map(&xsks, idx, XDP_DROP) != XDP_REDIRECT) {
		count(TG_C_DROP_NO_WORKER);
		return XDP_DROP;
	}
	count(TG_C_TO_WORKER);
	return XDP_REDIRECT;
}

SEC("xdp")
int tollgate_relay(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tg_headers h;

	count(TG_C_RX);
	switch (tg_parse(data, data_end, &h)) {
	case TG_PARSED_UDP:
		break;
	case TG_PARSE_NOT_IP:
		count(TG_C_PASS_NOT_IP);
		return XDP_PASS;
	case TG_PARSE_NOT_UDP:
		count(TG_C_PASS_NOT_UDP);
		return XDP_PASS;
	case TG_PARSE_FRAGMENT:
		count(TG_C_PASS_FRAGMENT);
		return XDP_PASS;
	default:
		count(TG_C_PASS_MALFORMED);
		return XDP_PASS;
	}

	struct udphdr *udp = h.udp;
	int v4 = h.family == TG_AF_INET;
	struct iphdr *ip4 = h.l3;
	struct ipv6hdr *ip6 = h.l3;
	struct tg_flow_key key = {};
	__u8 saddr[16];
	key.family = h.family;
	if (v4) {
		copy_addr(key.addr, &ip4->daddr, 4);
		copy_addr(saddr, &ip4->saddr, 4);
	} else {
		copy_addr(key.addr, &ip6->daddr, 16);
		copy_addr(saddr, &ip6->saddr, 16);
	}
	key.port = udp->dest;

	struct tg_flow_action *act = bpf_map_lookup_elem(&flows, &key);
	if (!act) {
		count(TG_C_PASS_NO_FLOW);
		return XDP_PASS;
	}

	struct tg_flow_stats *st = bpf_map_lookup_elem(&flow_stats, &key);
	if (!st) {
		struct tg_flow_stats zero = {};
		bpf_map_update_elem(&flow_stats, &key, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&flow_stats, &key);
		if (!st)
			return XDP_PASS;
	}

	/* Source: learn the first one, enforce the expected one. */
	__u16 flags = act->flags;
	__u32 slot = act->slot;
	struct tg_learned *seen = 0;
	if (flags & (TG_FLOW_LEARN | TG_FLOW_STRICT)) {
		seen = bpf_map_lookup_elem(&learned, &key);
		if (!seen && (flags & TG_FLOW_LEARN)) {
			struct tg_learned l = {};
			__builtin_memcpy(l.addr, saddr, 16);
			l.port = udp->source;
			l.at_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&learned, &key, &l, BPF_NOEXIST);
			seen = bpf_map_lookup_elem(&learned, &key);
		}
	}
	if (flags & TG_FLOW_STRICT) {
		int ok = 1;
		if (flags & TG_FLOW_EXPECT)
			ok = same_addr(act->expect_addr, saddr) && act->expect_port == udp->source;
		else if (seen)
			ok = same_addr(seen->addr, saddr) && seen->port == udp->source;
		if (!ok) {
			st->dropped += 1;
			count(TG_C_DROP_SOURCE);
			return XDP_DROP;
		}
	}

	/* Destination: the configured one, or where the followed flow's peer really is. */
	const __u8 *dst_addr = act->dst_addr;
	__be16 dst_port = act->dst_port;
	if (flags & TG_FLOW_FOLLOW) {
		struct tg_learned *peer = bpf_map_lookup_elem(&learned, &act->follow);
		if (peer) {
			dst_addr = peer->addr;
			dst_port = peer->port;
		}
	}

	/* Route and next hop from the kernel, so MACs follow the neighbour table. */
	struct bpf_fib_lookup fib = {};
	__u32 fib_flags = 0;
	fib.ifindex = ctx->ingress_ifindex;
	if (act->egress_ifindex) {
		fib.ifindex = act->egress_ifindex;
		fib_flags = BPF_FIB_LOOKUP_OUTPUT;
	}
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = act->src_port;
	fib.dport = dst_port;
	if (v4) {
		fib.family = AF_INET;
		fib.tot_len = bpf_ntohs(ip4->tot_len);
		__builtin_memcpy(&fib.ipv4_src, act->src_addr, 4);
		__builtin_memcpy(&fib.ipv4_dst, dst_addr, 4);
	} else {
		fib.family = AF_INET6;
		fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(struct ipv6hdr);
		__builtin_memcpy(fib.ipv6_src, act->src_addr, 16);
		__builtin_memcpy(fib.ipv6_dst, dst_addr, 16);
	}
	int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), fib_flags);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		count(TG_C_DROP_NO_NEIGH);
		return XDP_DROP;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(TG_C_DROP_NO_ROUTE);
		return XDP_DROP;
	}

	/* Rewrite addresses and ports; checksums follow incrementally. */
	__u32 usum = tg_csum_begin(udp->check);
	if (v4) {
		__u32 isum = tg_csum_begin(ip4->check);
		isum = sum_change(isum, &ip4->saddr, act->src_addr, 4);
		isum = sum_change(isum, &ip4->daddr, dst_addr, 4);
		usum = sum_change(usum, &ip4->saddr, act->src_addr, 4);
		usum = sum_change(usum, &ip4->daddr, dst_addr, 4);
		ip4->check = tg_csum_end(isum);
		__builtin_memcpy(&ip4->saddr, act->src_addr, 4);
		__builtin_memcpy(&ip4->daddr, dst_addr, 4);
	} else {
		usum = sum_change(usum, &ip6->saddr, act->src_addr, 16);
		usum = sum_change(usum, &ip6->daddr, dst_addr, 16);
		__builtin_memcpy(&ip6->saddr, act->src_addr, 16);
		__builtin_memcpy(&ip6->daddr, dst_addr, 16);
	}
	usum = tg_csum_word(usum, udp->source, act->src_port);
	usum = tg_csum_word(usum, udp->dest, dst_port);
	udp->source = act->src_port;
	udp->dest = dst_port;
	/* IPv4 UDP without a checksum stays without one. */
	if (udp->check || !v4)
		udp->check = tg_csum_udp_fixup(tg_csum_end(usum));

	__builtin_memcpy(h.eth->h_source, fib.smac, ETH_ALEN);
	__builtin_memcpy(h.eth->h_dest, fib.dmac, ETH_ALEN);

	__u64 now = bpf_ktime_get_ns();
	st->packets += 1;
	st->bytes += bpf_ntohs(udp->len) - sizeof(*udp); /* RTP bytes, as the socket path counts */
	st->last_seen_ns = now;
	/* Before to_worker: adjusting the metadata invalidates packet pointers. */
	measure(&key, act, (const __u8 *)(udp + 1), data_end, bpf_ntohs(udp->len) - sizeof(*udp), now);

	if (flags & TG_FLOW_PIPELINE)
		return to_worker(ctx, slot, fib.ifindex);

	int hairpin = fib.ifindex == ctx->ingress_ifindex;
	if (hairpin && !bpf_map_lookup_elem(&hairpin_redirect, &fib.ifindex)) {
		count(TG_C_TX);
		return XDP_TX;
	}
	if (bpf_redirect_map(&tx_ports, fib.ifindex, 0) != XDP_REDIRECT) {
		count(TG_C_DROP_NO_EGRESS);
		return XDP_DROP;
	}
	count(hairpin ? TG_C_TX : TG_C_FORWARDED);
	return XDP_REDIRECT;
}
