// SPDX-License-Identifier: GPL-2.0
/*
 * Port-owner tables: building, validating and searching them.
 *
 * A table is immutable once published. Writers build a new one aside,
 * validate it whole and swap the pointer under RCU, so a bind sees either
 * the old table or the new one and never a table half written.
 */
#include <linux/in.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/spinlock.h>
#include <linux/vmalloc.h>

#include "po.h"

static const u8 po_ipprotos[PO_NPROTO] = {
	[PO_TCP] = IPPROTO_TCP,
	[PO_UDP] = IPPROTO_UDP,
	[PO_SCTP] = IPPROTO_SCTP,
};

int po_proto_from_ipproto(int ipproto)
{
	int p;

	for (p = 0; p < PO_NPROTO; p++)
		if (po_ipprotos[p] == ipproto)
			return p;
	return -1;
}

int po_proto_to_ipproto(int proto)
{
	return po_ipprotos[proto];
}

const struct po_rule *po_lookup(const struct po_table *t, int proto, u16 port)
{
	u32 lo = t->start[proto], hi = t->start[proto + 1];

	/* Find the last rule starting at or below port. */
	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (t->rules[mid].lo <= port)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == t->start[proto] || t->rules[lo - 1].hi < port)
		return NULL;
	return &t->rules[lo - 1];
}

/* groups_search() is not exported; the array is sorted, as in a cred. */
static bool po_groups_have(const struct group_info *gi, kgid_t gid)
{
	unsigned int lo = 0, hi;

	if (!gi)
		return false;
	hi = gi->ngroups;
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (gid_gt(gid, gi->gid[mid]))
			lo = mid + 1;
		else if (gid_lt(gid, gi->gid[mid]))
			hi = mid;
		else
			return true;
	}
	return false;
}

/*
 * The one implementation of the ownership rules: the bind hooks and the
 * CHECK command both call it.
 */
enum portowners_verdict po_decide(const struct po_table *t, int proto,
				  u16 port, const struct po_subject *who,
				  const struct po_rule **rule)
{
	const struct po_rule *r;

	*rule = NULL;
	if (!port)
		return PORTOWNERS_VERDICT_PASS;
	r = po_lookup(t, proto, port);
	if (!r)
		return PORTOWNERS_VERDICT_PASS;
	*rule = r;
	if (r->owner & PO_OWNER_ANY)
		return PORTOWNERS_VERDICT_GRANT;
	if ((r->owner & PO_OWNER_UID) && uid_eq(who->euid, r->uid))
		return PORTOWNERS_VERDICT_GRANT;
	if ((r->owner & PO_OWNER_GID) &&
	    (gid_eq(who->egid, r->gid) || po_groups_have(who->groups, r->gid)))
		return PORTOWNERS_VERDICT_GRANT;
	return PORTOWNERS_VERDICT_DENY;
}

static int po_rule_cmp(const struct po_rule *a, const struct po_rule *b)
{
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return 0;
}

static int po_index_cmp(const void *a, const void *b, const void *priv)
{
	const struct po_rule *rules = priv;
	u32 ia = *(const u32 *)a, ib = *(const u32 *)b;
	int c = po_rule_cmp(&rules[ia], &rules[ib]);

	/* Equal starts: keep the order they were given in. */
	if (!c)
		c = ia < ib ? -1 : (ia > ib);
	return c;
}

static struct po_table *po_table_alloc(u32 count)
{
	struct po_table *t;
	size_t size = struct_size(t, rules, count);

	/*
	 * Not kvzalloc(): kmalloc rounds a large table up to a power of two of
	 * contiguous pages (2 MiB for 65,536 rules); vmalloc takes whole pages.
	 */
	if (size <= PAGE_SIZE)
		t = kzalloc(size, GFP_KERNEL_ACCOUNT);
	else
		t = __vmalloc(size, GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	if (t)
		t->count = count;
	return t;
}

/*
 * Build a table from rules in any order. Returns ERR_PTR(-EEXIST) when two
 * rules of one protocol overlap, with their indices in *bad_a < *bad_b.
 */
struct po_table *po_table_build(const struct po_rule *rules, u32 count,
				u64 generation, u32 *bad_a, u32 *bad_b)
{
	struct po_table *t;
	u32 *order, i;
	int p;

	order = kvmalloc_array(count ? count : 1, sizeof(*order), GFP_KERNEL);
	if (!order)
		return ERR_PTR(-ENOMEM);
	for (i = 0; i < count; i++)
		order[i] = i;
	sort_r(order, count, sizeof(*order), po_index_cmp, NULL, rules);

	for (i = 1; i < count; i++) {
		const struct po_rule *prev = &rules[order[i - 1]];
		const struct po_rule *cur = &rules[order[i]];

		if (prev->proto == cur->proto && cur->lo <= prev->hi) {
			*bad_a = min(order[i - 1], order[i]);
			*bad_b = max(order[i - 1], order[i]);
			kvfree(order);
			return ERR_PTR(-EEXIST);
		}
	}

	t = po_table_alloc(count);
	if (!t) {
		kvfree(order);
		return ERR_PTR(-ENOMEM);
	}
	t->generation = generation;
	for (i = 0; i < count; i++)
		t->rules[i] = rules[order[i]];
	kvfree(order);

	for (p = 0, i = 0; p < PO_NPROTO; p++) {
		t->start[p] = i;
		while (i < count && t->rules[i].proto == p)
			i++;
	}
	t->start[PO_NPROTO] = count;
	return t;
}

static int po_range_cmp(const void *a, const void *b)
{
	return po_rule_cmp(a, b);
}

/* Sort ranges and merge the ones that touch; returns the new count. */
static u32 po_merge_ranges(struct po_rule *r, u32 n)
{
	u32 i, out = 0;

	sort(r, n, sizeof(*r), po_range_cmp, NULL);
	for (i = 0; i < n; i++) {
		if (out && r[out - 1].proto == r[i].proto &&
		    (u32)r[i].lo <= (u32)r[out - 1].hi + 1) {
			r[out - 1].hi = max(r[out - 1].hi, r[i].hi);
			continue;
		}
		r[out++] = r[i];
	}
	return out;
}

/*
 * Copy t's rules to out without the ports in del (sorted and merged here),
 * splitting a rule that a range cuts in two. out needs room for
 * t->count + ndel rules: each merged range splits at most one rule.
 */
u32 po_table_release(const struct po_table *t, struct po_rule *out,
		     struct po_rule *del, u32 ndel)
{
	u32 i, n = 0;

	ndel = po_merge_ranges(del, ndel);
	for (i = 0; i < t->count; i++) {
		const struct po_rule *r = &t->rules[i];
		u32 cur = r->lo, lo = 0, hi = ndel;

		/* First range of this protocol that ends at or after r->lo. */
		while (lo < hi) {
			u32 mid = lo + (hi - lo) / 2;

			if (del[mid].proto < r->proto ||
			    (del[mid].proto == r->proto && del[mid].hi < r->lo))
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < ndel; lo++) {
			const struct po_rule *d = &del[lo];

			if (d->proto != r->proto || d->lo > r->hi)
				break;
			if (d->lo > cur) {
				out[n] = *r;
				out[n].lo = cur;
				out[n++].hi = d->lo - 1;
			}
			cur = max_t(u32, cur, (u32)d->hi + 1);
		}
		if (cur <= r->hi) {
			out[n] = *r;
			out[n++].lo = cur;
		}
	}
	return n;
}

/*
 * Rules in all namespaces' tables together, so that the hooks can return at
 * once while no table has any. It grows before a table is published and
 * shrinks after: a bind that reads it stale meets the table it replaces.
 * Namespaces have their own locks, so several may update it at once: the
 * updates are serialized by po_rules_anywhere_lock (readers only load it).
 */
unsigned long po_rules_anywhere;
static DEFINE_SPINLOCK(po_rules_anywhere_lock);

static void po_rules_anywhere_add(long delta)
{
	spin_lock(&po_rules_anywhere_lock);
	WRITE_ONCE(po_rules_anywhere, po_rules_anywhere + delta);
	spin_unlock(&po_rules_anywhere_lock);
}

void po_table_swap(struct po_net *pn, struct po_table *t)
{
	struct po_table *old;

	old = rcu_dereference_protected(pn->table, lockdep_is_held(&pn->lock));
	if (t->count > old->count)
		po_rules_anywhere_add((long)t->count - old->count);
	rcu_assign_pointer(pn->table, t);
	po_reserve_sync(pn, t);
	if (t->count < old->count)
		po_rules_anywhere_add((long)t->count - old->count);
	kvfree_rcu(old, rcu);
}

int po_net_init_table(struct po_net *pn)
{
	struct po_table *t = po_table_alloc(0);

	if (!t)
		return -ENOMEM;
	RCU_INIT_POINTER(pn->table, t);
	return 0;
}

void po_net_free_table(struct po_net *pn)
{
	/* The netns is gone: nothing can bind in it or ask about it. */
	struct po_table *t = rcu_dereference_protected(pn->table,
						       lockdep_is_held(&pn->lock));

	po_rules_anywhere_add(-(long)t->count);
	RCU_INIT_POINTER(pn->table, NULL);
	kvfree_rcu(t, rcu);
}
