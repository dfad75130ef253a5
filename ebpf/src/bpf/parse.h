/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * parse.h - bounds-checked header parsing for the XDP program: Ethernet, then
 * IPv4 (no options, no fragments) or IPv6 (no extension headers), then UDP.
 * Anything else is reported so the caller can pass it to the kernel.
 */
#ifndef TOLLGATE_PARSE_H
#define TOLLGATE_PARSE_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "shared.h"

enum tg_parse {
	TG_PARSED_UDP = 0,
	TG_PARSE_NOT_IP,
	TG_PARSE_NOT_UDP,
	TG_PARSE_MALFORMED,
	TG_PARSE_FRAGMENT,
};

struct tg_headers {
	struct ethhdr *eth;
	void *l3;      /* struct iphdr or struct ipv6hdr, by family */
	__u8 family;   /* TG_AF_INET or TG_AF_INET6 */
	struct udphdr *udp;
};

TG_INLINE int tg_parse(void *data, void *data_end, struct tg_headers *h)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return TG_PARSE_MALFORMED;
	h->eth = eth;

	void *l4;
	__u16 l4_len;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return TG_PARSE_MALFORMED;
		if (ip->version != 4 || ip->ihl < 5)
			return TG_PARSE_MALFORMED;
		if (ip->protocol != IPPROTO_UDP)
			return TG_PARSE_NOT_UDP;
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return TG_PARSE_FRAGMENT;
		__u16 tot = bpf_ntohs(ip->tot_len);
		if (tot < sizeof(*ip) + sizeof(struct udphdr) || (void *)ip + tot > data_end)
			return TG_PARSE_MALFORMED;
		h->l3 = ip;
		h->family = TG_AF_INET;
		l4 = ip + 1;
		l4_len = tot - sizeof(*ip);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return TG_PARSE_MALFORMED;
		if (ip6->version != 6)
			return TG_PARSE_MALFORMED;
		if (ip6->nexthdr != IPPROTO_UDP)
			return ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_ICMPV6
				       ? TG_PARSE_NOT_UDP
				       : TG_PARSE_FRAGMENT;
		__u16 plen = bpf_ntohs(ip6->payload_len);
		if (plen < sizeof(struct udphdr) || (void *)(ip6 + 1) + plen > data_end)
			return TG_PARSE_MALFORMED;
		h->l3 = ip6;
		h->family = TG_AF_INET6;
		l4 = ip6 + 1;
		l4_len = plen;
	} else {
		return TG_PARSE_NOT_IP;
	}

	struct udphdr *udp = l4;
	if ((void *)(udp + 1) > data_end)
		return TG_PARSE_MALFORMED;
	if (bpf_ntohs(udp->len) != l4_len)
		return TG_PARSE_MALFORMED;
	h->udp = udp;
	return TG_PARSED_UDP;
}

#endif
