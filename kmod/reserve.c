// SPDX-License-Identifier: GPL-2.0
/*
 * Owned ports are never handed out automatically. Every path that picks a
 * port for a socket (bind() to port 0, listen() or connect() on an unbound
 * socket, UDP's sendto(), SCTP's bind to port 0; TCP, UDP, SCTP, MPTCP, v4
 * and v6) skips the ports of the namespace's ip_local_reserved_ports bitmap
 * (inet_is_local_reserved_port()), and no bind hook sees the port it picks.
 * So each table swap adds the table's owned ports to that bitmap and takes
 * back the ones it added earlier and no longer owns.
 *
 * The administrator's own reserved ports are never taken back: pn->reserved
 * records the bits this module set, and the administrator's are the others.
 * A bit that is both (he reserved a port the table already kept) counts as
 * ours: that is also what a read-modify-write of the sysctl writes back. A
 * port owned by '*' (any user) is not reserved: it is not kept from anyone.
 * The bitmap has no protocol, so an owned tcp/N keeps udp/N out of autobind
 * too.
 */
#include <linux/bitmap.h>
#include <linux/slab.h>
#include <net/ip.h>

#include "po.h"

#define PO_NPORTS 65536

static unsigned long *po_kernel_reserved(struct po_net *pn)
{
#ifdef CONFIG_SYSCTL
	return pn->net->ipv4.sysctl_local_reserved_ports;
#else
	return NULL;
#endif
}

static bool po_rule_reserves(const struct po_rule *r)
{
	return !(r->owner & PO_OWNER_ANY);
}

/*
 * Before t is published: the two bitmaps a swap needs, the first time a
 * table reserves a port, so that the swap itself cannot fail.
 */
int po_reserve_prepare(struct po_net *pn, const struct po_table *t)
{
	u32 i;

	lockdep_assert_held(&pn->lock);
	if (pn->reserved || !po_kernel_reserved(pn))
		return 0;
	for (i = 0; i < t->count && !po_rule_reserves(po_table_rule(t, i)); i++)
		;
	if (i == t->count)
		return 0;
	pn->want = bitmap_zalloc(PO_NPORTS, GFP_KERNEL_ACCOUNT);
	pn->reserved = bitmap_zalloc(PO_NPORTS, GFP_KERNEL_ACCOUNT);
	if (!pn->want || !pn->reserved) {
		bitmap_free(pn->want);
		bitmap_free(pn->reserved);
		pn->want = NULL;
		pn->reserved = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * One word of the kernel's bitmap: the administrator's bits stay, ours
 * become mine. The sysctl writes the bitmap with plain stores and no lock:
 * a word it changed between our read and write is read again, not lost.
 */
static void po_reserve_word(unsigned long *kernel, unsigned long *ours,
			    unsigned long want)
{
	unsigned long k, admin, mine;

	do {
		k = READ_ONCE(*kernel);
		admin = k & ~*ours;
		mine = want & ~admin;
	} while (cmpxchg(kernel, k, admin | mine) != k);
	*ours = mine;
}

/* After t is published (under pn->lock): the kernel's bitmap follows it. */
void po_reserve_sync(struct po_net *pn, const struct po_table *t)
{
	unsigned long *kernel = po_kernel_reserved(pn);
	u32 i, w;

	lockdep_assert_held(&pn->lock);
	if (!pn->reserved || !kernel)
		return;
	bitmap_zero(pn->want, PO_NPORTS);
	for (i = 0; i < t->count; i++) {
		const struct po_rule *r = po_table_rule(t, i);

		if (po_rule_reserves(r))
			bitmap_set(pn->want, r->lo, r->hi - r->lo + 1);
	}
	for (w = 0; w < BITS_TO_LONGS(PO_NPORTS); w++)
		if (pn->want[w] | pn->reserved[w])
			po_reserve_word(&kernel[w], &pn->reserved[w],
					pn->want[w]);
}

/* Module unload or namespace exit: give back every port we reserved. */
void po_reserve_drop(struct po_net *pn)
{
	unsigned long *kernel = po_kernel_reserved(pn);
	u32 w;

	lockdep_assert_held(&pn->lock);
	if (pn->reserved && kernel)
		for (w = 0; w < BITS_TO_LONGS(PO_NPORTS); w++)
			if (pn->reserved[w])
				po_reserve_word(&kernel[w], &pn->reserved[w], 0);
	bitmap_free(pn->want);
	bitmap_free(pn->reserved);
	pn->want = NULL;
	pn->reserved = NULL;
}
