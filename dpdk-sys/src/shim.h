/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shim.h - the DPDK API Tollgate uses: the control-path headers bindgen reads,
 * and tg_* wrappers for what DPDK only has as static inline functions or
 * macros (bursts, mbuf allocation and data pointers, per-lcore errno).
 */
#ifndef TOLLGATE_DPDK_SHIM_H
#define TOLLGATE_DPDK_SHIM_H

#include <stdint.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* rte_errno of the calling thread. */
int tg_errno(void);
/* rte_lcore_id(): the caller's lcore, or UINT32_MAX for an unregistered thread. */
unsigned tg_lcore_id(void);

uint16_t tg_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t tg_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *tg_pktmbuf_alloc(struct rte_mempool *pool);
void tg_pktmbuf_free(struct rte_mbuf *m);

/* The first segment's data (rte_pktmbuf_mtod). */
uint8_t *tg_mbuf_data(struct rte_mbuf *m);
/* Bytes of the first segment. */
uint16_t tg_mbuf_data_len(const struct rte_mbuf *m);
/* Bytes of the whole packet. */
uint32_t tg_mbuf_pkt_len(const struct rte_mbuf *m);
uint16_t tg_mbuf_nb_segs(const struct rte_mbuf *m);
/* Room after the first segment's data. */
uint16_t tg_mbuf_tailroom(const struct rte_mbuf *m);
/* Sets the length of a one-segment packet; -1 if it does not fit the buffer. */
int tg_mbuf_set_len(struct rte_mbuf *m, uint16_t len);
/* Clears the offload flags of a packet about to be sent (no offload asked). */
void tg_mbuf_reset_tx(struct rte_mbuf *m);

#endif
