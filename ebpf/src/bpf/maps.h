/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * maps.h - the program's maps. All are pinned by name under the data plane's
 * pin directory so they outlive the process that loaded them.
 *
 * Ownership: user space is the only writer of `flows`, `tx_ports`,
 * `hairpin_redirect`, `xsks` and `xsk_base`; the XDP program writes `learned` (first source only),
 * `flow_stats`, `flow_quality` and `counters`. User space deletes a flow's
 * entries in all of them when it removes the flow.
 */
#ifndef TOLLGATE_MAPS_H
#define TOLLGATE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared.h"

#define TG_MAX_FLOWS 65536
#define TG_MAX_PORTS 64
#define TG_MAX_XSKS 1024

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_FLOWS);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_flow_action);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_FLOWS);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_learned);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} learned SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, TG_MAX_FLOWS);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_flow_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_stats SEC(".maps");

/* RTP/RTCP quality per flow: shared, under its lock (see shared.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_FLOWS);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_flow_quality);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_quality SEC(".maps");

/*
 * Zeroes that new flow_quality entries are copied from (an entry on the
 * stack would not fit in the program's 512 bytes). Plain bytes: the kernel
 * refuses to copy from a value it knows holds a bpf_spin_lock. Nobody
 * writes it.
 */
struct tg_quality_zero {
	__u8 bytes[sizeof(struct tg_flow_quality)];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_quality_zero);
} quality_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, TG_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_ports SEC(".maps");

/*
 * Interfaces on which a packet leaving where it came in is redirected through
 * `tx_ports` rather than sent with XDP_TX. veth needs it: its XDP_TX wakes the
 * peer's receive queue only when the peer has an XDP program, so without one
 * the frames wait until unrelated traffic arrives. Key ifindex, value unused.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hairpin_redirect SEC(".maps");

/*
 * AF_XDP sockets of the pipeline workers: the socket for (interface, rx
 * queue) is at xsk_base[ingress ifindex] + rx_queue_index. An interface
 * without an entry in xsk_base has no workers.
 */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, TG_MAX_XSKS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsk_base SEC(".maps");

#endif
