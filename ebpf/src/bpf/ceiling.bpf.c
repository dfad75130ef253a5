/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * ceiling.bpf.c - the cheapest relay the host can run: every UDP packet that
 * arrives on one interface leaves, unchanged, through its partner interface
 * (no flow lookup, no rewrite, no checksum). `tollgate bench media` runs it
 * to measure what XDP forwarding itself costs on this host, and reports
 * Tollgate's cost as a ratio of it. Not used to relay calls.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TG_INLINE static __always_inline
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Ingress ifindex -> partner interface. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} partner SEC(".maps");

SEC("xdp")
int tollgate_ceiling(struct xdp_md *ctx)
{
	struct tg_headers h;
	if (tg_parse((void *)(long)ctx->data, (void *)(long)ctx->data_end, &h) != TG_PARSED_UDP)
		return XDP_PASS;
	return bpf_redirect_map(&partner, ctx->ingress_ifindex, XDP_PASS);
}
