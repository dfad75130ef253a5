/* SPDX-License-Identifier: Apache-2.0 */
/* shim.c - exported bodies of the inline DPDK functions (see shim.h). */
#include "shim.h"

int tg_errno(void) { return rte_errno; }

unsigned tg_lcore_id(void) { return rte_lcore_id(); }

uint16_t tg_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t tg_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *tg_pktmbuf_alloc(struct rte_mempool *pool) { return rte_pktmbuf_alloc(pool); }

void tg_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

uint8_t *tg_mbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, uint8_t *); }

uint16_t tg_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }

uint32_t tg_mbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }

uint16_t tg_mbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

uint16_t tg_mbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

int tg_mbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	if (m->nb_segs != 1 || (uint32_t)m->data_off + len > m->buf_len)
		return -1;
	m->data_len = len;
	m->pkt_len = len;
	return 0;
}

void tg_mbuf_reset_tx(struct rte_mbuf *m)
{
	m->ol_flags &= RTE_MBUF_F_EXTERNAL | RTE_MBUF_F_INDIRECT;
}
