/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * ceiling.bpf.c - the cheapest relay the host can run: every UDP packet that
 * arrives on one interface leaves, unchanged, through its partner interface
 * (no flow lookup, no rewrite, no checksum). `tollgate bench media` runs it
 * to measure what XDP forwarding itself costs on this host, and reports
 * Tollgate's cost as a ratio of it. Not used to relay calls.
 *
 * It counts what it did with every packet (`outcomes`), so the benchmark can
 * prove it redirected what was sent before calling its cost a floor.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TG_INLINE static __always_inline
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Set at load time only by the benchmark's own tests, to check that it
 * refuses a floor that does not forward: every packet is passed to the
 * kernel. At 0 the verifier prunes the branch, so it costs nothing.
 */
const volatile __u32 pass_all = 0;

/* Ingress ifindex -> partner interface. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} partner SEC(".maps");

/* What happened to each packet; indexes of `outcomes`. */
enum floor_outcome {
	FLOOR_REDIRECTED = 0,
	FLOOR_PASSED,     /* not UDP, or pass_all */
	FLOOR_NO_PARTNER, /* arrived on an interface without a partner */
	FLOOR_OUTCOMES,
};

/* Packets per outcome, per CPU; user space sums them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOOR_OUTCOMES);
	__type(key, __u32);
	__type(value, __u64);
} outcomes SEC(".maps");

TG_INLINE int counted(__u32 outcome, int action)
{
	__u64 *n = bpf_map_lookup_elem(&outcomes, &outcome);
	if (n)
		*n += 1;
	return action;
}

SEC("xdp")
int tollgate_ceiling(struct xdp_md *ctx)
{
	struct tg_headers h;
	if (pass_all ||
	    tg_parse((void *)(long)ctx->data, (void *)(long)ctx->data_end, &h) != TG_PARSED_UDP)
		return counted(FLOOR_PASSED, XDP_PASS);
	int action = bpf_redirect_map(&partner, ctx->ingress_ifindex, XDP_PASS);
	return counted(action == XDP_REDIRECT ? FLOOR_REDIRECTED : FLOOR_NO_PARTNER, action);
}
