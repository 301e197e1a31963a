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
#include <net/ipv6.h>

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

static bool po_grants(const struct po_rule *r, const struct po_subject *who)
{
	if (r->owner & PO_OWNER_ANY)
		return true;
	if ((r->owner & PO_OWNER_UID) && uid_eq(who->euid, r->uid))
		return true;
	return (r->owner & PO_OWNER_GID) &&
	       (gid_eq(who->egid, r->gid) || po_groups_have(who->groups, r->gid));
}

static enum portowners_verdict po_verdict(const struct po_rule *r,
					  const struct po_subject *who,
					  const struct po_rule **rule)
{
	*rule = r;
	if (!r)
		return PORTOWNERS_VERDICT_PASS;
	return po_grants(r, who) ? PORTOWNERS_VERDICT_GRANT :
				   PORTOWNERS_VERDICT_DENY;
}

/* What a bind to addr (IPv6, or IPv4-mapped) covers. */
void po_where_set(struct po_where *where, const struct in6_addr *addr)
{
	if (ipv6_addr_any(addr))
		where->kind = PO_AT_ANY;
	else if (ipv6_addr_v4mapped(addr) && !addr->s6_addr32[3])
		where->kind = PO_AT_ANY4;
	else
		where->kind = PO_AT_ADDR;
	where->addr = *addr;
}

/* Does a bind to where cover address rule a's address? */
static bool po_where_covers(const struct po_where *where,
			    const struct po_arule *a)
{
	switch (where->kind) {
	case PO_AT_ADDR:
		return ipv6_addr_equal(&where->addr, &a->addr);
	case PO_AT_ANY4:
		return ipv6_addr_v4mapped(&a->addr);
	default:
		return true;
	}
}

/*
 * The one implementation of the ownership rules: the bind hooks and the
 * CHECK command both call it. A bind to one address is decided by the rule
 * on that address, else by the rule on every address. A wildcard bind takes
 * every address it covers, so every rule of the port in its scope must grant
 * it; *rule is then the first that refuses, or one that grants.
 */
enum portowners_verdict po_decide(const struct po_table *t, int proto,
				  u16 port, const struct po_where *where,
				  const struct po_subject *who,
				  const struct po_rule **rule)
{
	u32 first = t->astart[proto], lo = first, hi = t->astart[proto + 1];
	enum portowners_verdict verdict;
	const struct po_rule *wide;

	*rule = NULL;
	if (!port)
		return PORTOWNERS_VERDICT_PASS;
	wide = po_lookup(t, proto, port);
	/* No address rule of this protocol, or none reaches this port. */
	if (lo == hi || port < t->arules[lo].r.lo ||
	    port > t->arules[hi - 1].maxhi)
		return po_verdict(wide, who, rule);

	/* The last address rule starting at or below port, as po_lookup(). */
	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (t->arules[mid].r.lo <= port)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (where->kind == PO_AT_ADDR) {
		for (; lo > first && t->arules[lo - 1].maxhi >= port; lo--) {
			const struct po_arule *a = &t->arules[lo - 1];

			if (a->r.hi >= port && po_where_covers(where, a))
				return po_verdict(&a->r, who, rule);
		}
		return po_verdict(wide, who, rule);
	}

	verdict = po_verdict(wide, who, rule);
	if (verdict == PORTOWNERS_VERDICT_DENY)
		return verdict;
	for (; lo > first && t->arules[lo - 1].maxhi >= port; lo--) {
		const struct po_arule *a = &t->arules[lo - 1];

		if (a->r.hi < port || !po_where_covers(where, a))
			continue;
		if (!po_grants(&a->r, who)) {
			*rule = &a->r;
			return PORTOWNERS_VERDICT_DENY;
		}
		if (!*rule)
			*rule = &a->r;
		verdict = PORTOWNERS_VERDICT_GRANT;
	}
	return verdict;
}

/* The address a rule of a table holds on, or NULL: every address. */
const struct in6_addr *po_rule_addr(const struct po_rule *r)
{
	if (!(r->owner & PO_RULE_ADDR))
		return NULL;
	return &container_of(r, struct po_arule, r)->addr;
}

static u32 po_nwide(const struct po_table *t)
{
	return t->start[PO_NPROTO];
}

/* The i-th rule of t, i < t->count, those on every address first. */
const struct po_rule *po_table_rule(const struct po_table *t, u32 i)
{
	u32 nwide = po_nwide(t);

	return i < nwide ? &t->rules[i] : &t->arules[i - nwide].r;
}

/* The counters of r, a rule of t. */
struct po_hits *po_rule_hits(const struct po_table *t,
			     const struct po_rule *r)
{
	if (r->owner & PO_RULE_ADDR)
		return &t->hits[po_nwide(t) +
				(container_of(r, struct po_arule, r) - t->arules)];
	return &t->hits[r - t->rules];
}

/*
 * The i-th rule of t (those on every address first), i < t->count, as a
 * request gives it: addr :: for a rule on every address.
 */
void po_table_get(const struct po_table *t, u32 i, struct po_arule *out)
{
	u32 nwide = po_nwide(t);

	memset(out, 0, sizeof(*out));
	if (i < nwide) {
		out->r = t->rules[i];
	} else {
		*out = t->arules[i - nwide];
		out->r.owner &= ~PO_RULE_ADDR;
		out->maxhi = 0;
	}
}

static bool po_on_addr(const struct po_arule *a)
{
	return !ipv6_addr_any(&a->addr);
}

/* Orders of rules: by protocol and first port, or by address before port. */
enum po_order { PO_BY_PORT, PO_BY_ADDR };

struct po_sort {
	const struct po_arule *rules;
	enum po_order order;
};

static int po_arule_cmp(const struct po_arule *a, const struct po_arule *b,
			enum po_order order)
{
	int c;

	if (a->r.proto != b->r.proto)
		return a->r.proto < b->r.proto ? -1 : 1;
	if (order == PO_BY_ADDR) {
		c = memcmp(&a->addr, &b->addr, sizeof(a->addr));
		if (c)
			return c;
	}
	if (a->r.lo != b->r.lo)
		return a->r.lo < b->r.lo ? -1 : 1;
	if (order == PO_BY_PORT)
		return memcmp(&a->addr, &b->addr, sizeof(a->addr));
	return 0;
}

static int po_index_cmp(const void *a, const void *b, const void *priv)
{
	const struct po_sort *s = priv;
	u32 ia = *(const u32 *)a, ib = *(const u32 *)b;
	int c = po_arule_cmp(&s->rules[ia], &s->rules[ib], s->order);

	/* Equal starts: keep the order they were given in. */
	if (!c)
		c = ia < ib ? -1 : (ia > ib);
	return c;
}

static void po_sort_indices(u32 *order, u32 n, const struct po_arule *rules,
			    enum po_order by)
{
	struct po_sort s = { .rules = rules, .order = by };

	sort_r(order, n, sizeof(*order), po_index_cmp, NULL, &s);
}

/*
 * Two rules of one protocol, in order[0..n) sorted PO_BY_ADDR, that overlap
 * on the same address (or both on every address): their indices, a < b.
 */
static bool po_find_overlap(const u32 *order, u32 n,
			    const struct po_arule *rules, u32 *bad_a,
			    u32 *bad_b)
{
	u32 i;

	for (i = 1; i < n; i++) {
		const struct po_arule *prev = &rules[order[i - 1]];
		const struct po_arule *cur = &rules[order[i]];

		if (prev->r.proto == cur->r.proto &&
		    ipv6_addr_equal(&prev->addr, &cur->addr) &&
		    cur->r.lo <= prev->r.hi) {
			*bad_a = min(order[i - 1], order[i]);
			*bad_b = max(order[i - 1], order[i]);
			return true;
		}
	}
	return false;
}

static struct po_table *po_table_alloc(u32 nwide, u32 naddr)
{
	size_t size = struct_size((struct po_table *)NULL, rules, nwide);
	size_t hits_at;
	struct po_table *t;

	size = size_add(size, array_size(naddr, sizeof(struct po_arule)));
	if (size == SIZE_MAX)
		return NULL;
	hits_at = ALIGN(size, __alignof__(struct po_hits));
	size = size_add(hits_at, array_size(size_add(nwide, naddr),
					    sizeof(struct po_hits)));
	/*
	 * Not kvzalloc(): kmalloc rounds a large table up to a power of two of
	 * contiguous pages (2 MiB for 65,536 rules); vmalloc takes whole pages.
	 */
	if (size <= PAGE_SIZE)
		t = kzalloc(size, GFP_KERNEL_ACCOUNT);
	else
		t = __vmalloc(size, GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	if (!t)
		return NULL;
	t->count = nwide + naddr;
	t->arules = (struct po_arule *)&t->rules[nwide];
	t->hits = (struct po_hits *)((char *)t + hits_at);
	return t;
}

/* Where each protocol's rules start in rules[0..n), sorted by protocol. */
static void po_starts(u32 *start, u32 n, const struct po_rule *rules,
		      size_t stride)
{
	u32 i = 0;
	int p;

	for (p = 0; p < PO_NPROTO; p++) {
		start[p] = i;
		while (i < n &&
		       ((const struct po_rule *)((const char *)rules +
						 i * stride))->proto == p)
			i++;
	}
	start[PO_NPROTO] = n;
}

/*
 * Build a table from rules in any order (addr :: for a rule on every
 * address). Returns ERR_PTR(-EEXIST) when two rules of one protocol overlap
 * on the same address, or both on every address, with their indices in
 * *bad_a < *bad_b.
 */
struct po_table *po_table_build(const struct po_arule *rules, u32 count,
				u64 generation, u32 *bad_a, u32 *bad_b)
{
	u32 *order, i, nwide = 0, naddr;
	struct po_table *t;
	int p;

	order = kvmalloc_array(count ? count : 1, sizeof(*order), GFP_KERNEL);
	if (!order)
		return ERR_PTR(-ENOMEM);
	/* Rules on every address first, then those on one. */
	for (i = 0; i < count; i++)
		if (!po_on_addr(&rules[i]))
			order[nwide++] = i;
	for (i = 0, naddr = 0; i < count; i++)
		if (po_on_addr(&rules[i]))
			order[nwide + naddr++] = i;

	po_sort_indices(order, nwide, rules, PO_BY_ADDR);
	po_sort_indices(order + nwide, naddr, rules, PO_BY_ADDR);
	if (po_find_overlap(order, nwide, rules, bad_a, bad_b) ||
	    po_find_overlap(order + nwide, naddr, rules, bad_a, bad_b)) {
		kvfree(order);
		return ERR_PTR(-EEXIST);
	}
	po_sort_indices(order + nwide, naddr, rules, PO_BY_PORT);

	t = po_table_alloc(nwide, naddr);
	if (!t) {
		kvfree(order);
		return ERR_PTR(-ENOMEM);
	}
	t->generation = generation;
	for (i = 0; i < nwide; i++)
		t->rules[i] = rules[order[i]].r;
	for (i = 0; i < naddr; i++) {
		struct po_arule *a = &t->arules[i];

		*a = rules[order[nwide + i]];
		a->r.owner |= PO_RULE_ADDR;
	}
	kvfree(order);

	po_starts(t->start, nwide, t->rules, sizeof(*t->rules));
	po_starts(t->astart, naddr, &t->arules->r, sizeof(*t->arules));
	for (p = 0; p < PO_NPROTO; p++) {
		u16 maxhi = 0;

		for (i = t->astart[p]; i < t->astart[p + 1]; i++) {
			maxhi = max(maxhi, t->arules[i].r.hi);
			t->arules[i].maxhi = maxhi;
		}
	}
	return t;
}

static int po_range_cmp(const void *a, const void *b)
{
	return po_arule_cmp(a, b, PO_BY_ADDR);
}

/* Sort ranges and merge the ones that touch; returns the new count. */
static u32 po_merge_ranges(struct po_arule *r, u32 n)
{
	u32 i, out = 0;

	sort(r, n, sizeof(*r), po_range_cmp, NULL);
	for (i = 0; i < n; i++) {
		if (out && r[out - 1].r.proto == r[i].r.proto &&
		    ipv6_addr_equal(&r[out - 1].addr, &r[i].addr) &&
		    (u32)r[i].r.lo <= (u32)r[out - 1].r.hi + 1) {
			r[out - 1].r.hi = max(r[out - 1].r.hi, r[i].r.hi);
			continue;
		}
		r[out++] = r[i];
	}
	return out;
}

/* del[i] comes before rule r: another protocol or address, or ends below. */
static bool po_del_before(const struct po_arule *d, const struct po_arule *r)
{
	int c;

	if (d->r.proto != r->r.proto)
		return d->r.proto < r->r.proto;
	c = memcmp(&d->addr, &r->addr, sizeof(d->addr));
	if (c)
		return c < 0;
	return d->r.hi < r->r.lo;
}

/*
 * Copy t's rules to out without the ports in del (sorted and merged here)
 * on the same address (or, for rules on every address, in del's rules on
 * every address), splitting a rule that a range cuts in two. out needs room
 * for t->count + ndel rules: each merged range splits at most one rule.
 */
u32 po_table_release(const struct po_table *t, struct po_arule *out,
		     struct po_arule *del, u32 ndel)
{
	struct po_arule r;
	u32 i, n = 0;

	ndel = po_merge_ranges(del, ndel);
	for (i = 0; i < t->count; i++) {
		u32 cur, lo = 0, hi = ndel;

		po_table_get(t, i, &r);
		cur = r.r.lo;

		/* First range of this protocol and address ending at or after r.lo. */
		while (lo < hi) {
			u32 mid = lo + (hi - lo) / 2;

			if (po_del_before(&del[mid], &r))
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < ndel; lo++) {
			const struct po_arule *d = &del[lo];

			if (d->r.proto != r.r.proto ||
			    !ipv6_addr_equal(&d->addr, &r.addr) ||
			    d->r.lo > r.r.hi)
				break;
			if (d->r.lo > cur) {
				out[n] = r;
				out[n].r.lo = cur;
				out[n++].r.hi = d->r.lo - 1;
			}
			cur = max_t(u32, cur, (u32)d->r.hi + 1);
		}
		if (cur <= r.r.hi) {
			out[n] = r;
			out[n++].r.lo = cur;
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

static bool po_same_rule(const struct po_rule *a, const struct po_rule *b)
{
	return a->proto == b->proto && a->lo == b->lo && a->hi == b->hi &&
	       a->owner == b->owner &&
	       (!(a->owner & PO_OWNER_UID) || uid_eq(a->uid, b->uid)) &&
	       (!(a->owner & PO_OWNER_GID) || gid_eq(a->gid, b->gid));
}

/* Which of a, b (each of its table's n-th array, same order) comes first. */
static int po_carry_cmp(const struct po_rule *a, const struct in6_addr *aa,
			const struct po_rule *b, const struct in6_addr *ba)
{
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return aa ? memcmp(aa, ba, sizeof(*aa)) : 0;
}

/*
 * Counters go on with the rules that a swap keeps as they were. Both tables
 * hold their rules on every address sorted by protocol and first port, and
 * those on one address by protocol, first port and address, with no two
 * alike: one walk through each array finds them. Copied before t is
 * published, so that a reader of t never sees a count go down; a bind that
 * the old table counts after the copy (until the swap, or in a read section
 * that began before it) is not carried.
 */
static void po_carry_hits(const struct po_table *old, struct po_table *t)
{
	u32 i = 0, j = 0, n = po_nwide(t), m = po_nwide(old);
	int c;

	while (i < n && j < m) {
		c = po_carry_cmp(&t->rules[i], NULL, &old->rules[j], NULL);
		if (!c && po_same_rule(&t->rules[i], &old->rules[j])) {
			atomic64_set(&t->hits[i].granted,
				     atomic64_read(&old->hits[j].granted));
			atomic64_set(&t->hits[i].denied,
				     atomic64_read(&old->hits[j].denied));
		}
		i += c <= 0;
		j += c >= 0;
	}
	for (i = 0, j = 0; i < t->count - n && j < old->count - m;) {
		const struct po_arule *a = &t->arules[i], *b = &old->arules[j];

		c = po_carry_cmp(&a->r, &a->addr, &b->r, &b->addr);
		if (!c && po_same_rule(&a->r, &b->r)) {
			atomic64_set(&t->hits[n + i].granted,
				     atomic64_read(&old->hits[m + j].granted));
			atomic64_set(&t->hits[n + i].denied,
				     atomic64_read(&old->hits[m + j].denied));
		}
		i += c <= 0;
		j += c >= 0;
	}
}

void po_table_swap(struct po_net *pn, struct po_table *t)
{
	struct po_table *old;

	old = rcu_dereference_protected(pn->table, lockdep_is_held(&pn->lock));
	if (t->count > old->count)
		po_rules_anywhere_add((long)t->count - old->count);
	po_carry_hits(old, t);
	rcu_assign_pointer(pn->table, t);
	po_reserve_sync(pn, t);
	if (t->count < old->count)
		po_rules_anywhere_add((long)t->count - old->count);
	kvfree_rcu(old, rcu);
}

int po_net_init_table(struct po_net *pn)
{
	struct po_table *t = po_table_alloc(0, 0);

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
