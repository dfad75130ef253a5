/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * csum.h - incremental Internet checksum updates (RFC 1624, eqn. 3).
 *
 * Plain C with no BPF helpers, so the very same code is compiled for the host
 * and tested against a full recomputation (dataplane/src/wire/checksum.rs).
 * Words are summed as they lie in memory: the one's-complement sum does not
 * depend on byte order as long as reads and the write-back agree.
 */
#ifndef TOLLGATE_CSUM_H
#define TOLLGATE_CSUM_H

#include <linux/types.h>

#ifndef TG_INLINE
#define TG_INLINE static inline __attribute__((always_inline))
#endif

TG_INLINE __u16 tg_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Start an update of checksum `check`: returns the running sum ~HC. */
TG_INLINE __u32 tg_csum_begin(__u16 check)
{
	return (__u16)~check;
}

/* Account for one 16-bit word changing from `from` to `to`: adds ~m + m'. */
TG_INLINE __u32 tg_csum_word(__u32 sum, __u16 from, __u16 to)
{
	return sum + (__u16)~from + to;
}

/* Finish: HC' = ~(~HC + sum(~m + m')). */
TG_INLINE __u16 tg_csum_end(__u32 sum)
{
	return (__u16)~tg_csum_fold(sum);
}

/* UDP sends a computed checksum of zero as all ones (RFC 768); zero means "none" on IPv4. */
TG_INLINE __u16 tg_csum_udp_fixup(__u16 check)
{
	return check == 0 ? 0xffff : check;
}

#endif
