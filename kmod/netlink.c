// SPDX-License-Identifier: GPL-2.0
/*
 * The generic netlink family "portowners": see uapi/portowners.h.
 *
 * Every change builds a whole new table, validates it and swaps it in, all
 * under the namespace's lock (struct po_net.lock); on any error nothing
 * changes. uids and gids cross this boundary in the user namespace of the
 * netlink socket's opener.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/netlink.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>
#include <net/ipv6.h>
#include <net/netlink.h>
#include <net/sock.h>

#include "compat.h"
#include "po.h"

static struct genl_family po_family;

static const struct nla_policy po_rule_policy[PORTOWNERS_RULE_A_MAX + 1] = {
	[PORTOWNERS_RULE_A_PROTO] = { .type = NLA_U8 },
	[PORTOWNERS_RULE_A_PORT_LO] = NLA_POLICY_MIN(NLA_U16, 1),
	[PORTOWNERS_RULE_A_PORT_HI] = NLA_POLICY_MIN(NLA_U16, 1),
	[PORTOWNERS_RULE_A_UID] = { .type = NLA_U32 },
	[PORTOWNERS_RULE_A_GID] = { .type = NLA_U32 },
	[PORTOWNERS_RULE_A_ANY] = { .type = NLA_FLAG },
	/* 4 or 16 bytes: po_parse_addr() says which is wrong, in words. */
	[PORTOWNERS_RULE_A_ADDR] = { .type = NLA_BINARY,
				     .len = sizeof(struct in6_addr) },
	[PORTOWNERS_RULE_A_GRANTED] = { .type = NLA_REJECT },
	[PORTOWNERS_RULE_A_DENIED] = { .type = NLA_REJECT },
};

static const struct nla_policy po_policy[PORTOWNERS_A_MAX + 1] = {
	[PORTOWNERS_A_RULE] = NLA_POLICY_NESTED(po_rule_policy),
	[PORTOWNERS_A_FLAGS] = NLA_POLICY_MASK(NLA_U32, PORTOWNERS_F_MORE |
						  PORTOWNERS_F_STATS),
	[PORTOWNERS_A_OFFSET] = { .type = NLA_U32 },
	[PORTOWNERS_A_GENERATION] = { .type = NLA_REJECT },
	[PORTOWNERS_A_RULE_COUNT] = { .type = NLA_REJECT },
	[PORTOWNERS_A_GRANTED] = { .type = NLA_REJECT },
	[PORTOWNERS_A_DENIED] = { .type = NLA_REJECT },
	[PORTOWNERS_A_ROOT_EXEMPT] = { .type = NLA_REJECT },
	[PORTOWNERS_A_VERSION] = { .type = NLA_REJECT },
	[PORTOWNERS_A_UID] = { .type = NLA_U32 },
	[PORTOWNERS_A_GID] = { .type = NLA_U32 },
	[PORTOWNERS_A_GROUP] = { .type = NLA_U32 },
	[PORTOWNERS_A_PROTO] = { .type = NLA_U8 },
	[PORTOWNERS_A_PORT] = NLA_POLICY_MIN(NLA_U16, 1),
	[PORTOWNERS_A_VERDICT] = { .type = NLA_REJECT },
	[PORTOWNERS_A_EXPECT_GENERATION] = { .type = NLA_U64 },
	[PORTOWNERS_A_ADDR] = { .type = NLA_BINARY,
				.len = sizeof(struct in6_addr) },
	[PORTOWNERS_A_SEQ] = { .type = NLA_REJECT },
	[PORTOWNERS_A_NETNS] = { .type = NLA_REJECT },
	[PORTOWNERS_A_PID] = { .type = NLA_REJECT },
	[PORTOWNERS_A_COMM] = { .type = NLA_REJECT },
	[PORTOWNERS_A_EVENTS_DROPPED] = { .type = NLA_REJECT },
};

static struct user_namespace *po_skb_userns(const struct sk_buff *skb)
{
	return sk_user_ns(NETLINK_CB(skb).sk);
}

static u32 po_count_rules(const struct genl_info *info)
{
	const struct nlattr *attr;
	u32 n = 0;
	int rem;

	nlmsg_for_each_attr(attr, info->nlhdr, GENL_HDRLEN, rem)
		n += nla_type(attr) == PORTOWNERS_A_RULE;
	return n;
}

/* The n-th PORTOWNERS_A_RULE of the request, to point an error at. */
static const struct nlattr *po_nth_rule(const struct genl_info *info, u32 n)
{
	const struct nlattr *attr;
	int rem;

	nlmsg_for_each_attr(attr, info->nlhdr, GENL_HDRLEN, rem)
		if (nla_type(attr) == PORTOWNERS_A_RULE && !n--)
			return attr;
	return NULL;
}

/* An address attribute, IPv4 (4 bytes) or IPv6 (16), as IPv6: v4 mapped. */
static int po_parse_addr(const struct nlattr *attr, struct in6_addr *addr,
			 struct netlink_ext_ack *extack)
{
	switch (nla_len(attr)) {
	case sizeof(struct in_addr):
		ipv6_addr_set_v4mapped(nla_get_in_addr(attr), addr);
		return 0;
	case sizeof(struct in6_addr):
		*addr = nla_get_in6_addr(attr);
		return 0;
	}
	NL_SET_ERR_MSG_ATTR(extack, attr,
			    "an address is 4 bytes (IPv4) or 16 bytes (IPv6)");
	return -EINVAL;
}

static int po_parse_rule(const struct nlattr *attr, struct user_namespace *ns,
			 bool owned, struct po_arule *a,
			 struct netlink_ext_ack *extack)
{
	struct nlattr *tb[PORTOWNERS_RULE_A_MAX + 1];
	struct po_rule *r = &a->r;
	struct po_where where;
	int err, proto;

	err = nla_parse_nested(tb, PORTOWNERS_RULE_A_MAX, attr, po_rule_policy,
			       extack);
	if (err)
		return err;
	if (!tb[PORTOWNERS_RULE_A_PROTO] || !tb[PORTOWNERS_RULE_A_PORT_LO]) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "rule needs a protocol and a port");
		return -EINVAL;
	}

	memset(a, 0, sizeof(*a));
	if (tb[PORTOWNERS_RULE_A_ADDR]) {
		err = po_parse_addr(tb[PORTOWNERS_RULE_A_ADDR], &a->addr,
				    extack);
		if (err)
			return err;
		po_where_set(&where, &a->addr);
		if (where.kind != PO_AT_ADDR) {
			NL_SET_ERR_MSG_ATTR(extack, tb[PORTOWNERS_RULE_A_ADDR],
					    "a rule's address is one address, not 0.0.0.0 or :: (a rule on every address has none)");
			return -EINVAL;
		}
	}
	proto = po_proto_from_ipproto(nla_get_u8(tb[PORTOWNERS_RULE_A_PROTO]));
	if (proto < 0) {
		NL_SET_ERR_MSG_ATTR(extack, tb[PORTOWNERS_RULE_A_PROTO],
				    "protocol must be tcp (6), udp (17) or sctp (132)");
		return -EINVAL;
	}
	r->proto = proto;
	r->lo = nla_get_u16(tb[PORTOWNERS_RULE_A_PORT_LO]);
	r->hi = tb[PORTOWNERS_RULE_A_PORT_HI] ?
		nla_get_u16(tb[PORTOWNERS_RULE_A_PORT_HI]) : r->lo;
	if (r->hi < r->lo) {
		NL_SET_ERR_MSG_ATTR(extack, tb[PORTOWNERS_RULE_A_PORT_HI],
				    "port range ends before it starts");
		return -EINVAL;
	}

	if (!owned) {
		if (tb[PORTOWNERS_RULE_A_UID] || tb[PORTOWNERS_RULE_A_GID] ||
		    tb[PORTOWNERS_RULE_A_ANY]) {
			NL_SET_ERR_MSG_ATTR(extack, attr,
					    "releasing ports takes a protocol and ports, not an owner");
			return -EINVAL;
		}
		return 0;
	}

	if (tb[PORTOWNERS_RULE_A_ANY]) {
		if (tb[PORTOWNERS_RULE_A_UID] || tb[PORTOWNERS_RULE_A_GID]) {
			NL_SET_ERR_MSG_ATTR(extack, attr,
					    "a rule for any user names no uid or gid");
			return -EINVAL;
		}
		r->owner = PO_OWNER_ANY;
		return 0;
	}
	if (tb[PORTOWNERS_RULE_A_UID]) {
		r->uid = make_kuid(ns, nla_get_u32(tb[PORTOWNERS_RULE_A_UID]));
		if (!uid_valid(r->uid)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[PORTOWNERS_RULE_A_UID],
					    "uid is not mapped in your user namespace");
			return -EINVAL;
		}
		r->owner |= PO_OWNER_UID;
	}
	if (tb[PORTOWNERS_RULE_A_GID]) {
		r->gid = make_kgid(ns, nla_get_u32(tb[PORTOWNERS_RULE_A_GID]));
		if (!gid_valid(r->gid)) {
			NL_SET_ERR_MSG_ATTR(extack, tb[PORTOWNERS_RULE_A_GID],
					    "gid is not mapped in your user namespace");
			return -EINVAL;
		}
		r->owner |= PO_OWNER_GID;
	}
	if (!r->owner) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "rule has no owner: give a uid, a gid or any");
		return -EINVAL;
	}
	return 0;
}

/* Parse every rule of the request into out, which has room for them. */
static int po_parse_rules(struct sk_buff *skb, struct genl_info *info,
			  bool owned, struct po_arule *out)
{
	struct user_namespace *ns = po_skb_userns(skb);
	const struct nlattr *attr;
	int rem, err;

	nlmsg_for_each_attr(attr, info->nlhdr, GENL_HDRLEN, rem) {
		if (nla_type(attr) != PORTOWNERS_A_RULE)
			continue;
		err = po_parse_rule(attr, ns, owned, out++, info->extack);
		if (err)
			return err;
	}
	return 0;
}

/* Most rules this namespace's table may hold (and a REPLACE may stage). */
static u32 po_max_rules(const struct po_net *pn)
{
	if (!pn->userns_bound)
		return PORTOWNERS_MAX_RULES;
	return min_t(u32, READ_ONCE(po_userns_max_rules), PORTOWNERS_MAX_RULES);
}

/* Refuse a table (or stage) of count rules that this namespace may not hold. */
static int po_check_size(const struct po_net *pn, u64 count,
			 struct netlink_ext_ack *extack)
{
	if (count <= po_max_rules(pn))
		return 0;
	if (count > PORTOWNERS_MAX_RULES) {
		NL_SET_ERR_MSG(extack, "too many rules for one table");
		return -E2BIG;
	}
	/* A quota on kernel memory, as the keyring's per-user one (EDQUOT). */
	NL_SET_ERR_MSG(extack,
		       "too many rules for a namespace outside the initial user namespace (module parameter userns_max_rules)");
	return -EDQUOT;
}

static u64 po_generation(struct po_net *pn)
{
	return rcu_dereference_protected(pn->table,
					 lockdep_is_held(&pn->lock))->generation;
}

/*
 * A conditional change (PORTOWNERS_A_EXPECT_GENERATION) of a table that has
 * moved on since the writer read it: ESTALE, which nothing else here returns,
 * so a writer can tell "read again and retry" from every other refusal.
 */
static int po_check_generation(struct po_net *pn, u64 expected,
			       struct netlink_ext_ack *extack)
{
	if (po_generation(pn) == expected)
		return 0;
	NL_SET_ERR_MSG(extack,
		       "the table changed since this writer read it (generation differs): read it again");
	return -ESTALE;
}

/*
 * Build and publish a table from rules: the one way a table changes, for
 * netlink and portfs alike. Under pn->lock; the caller has checked any
 * condition on the generation under the same hold. On -EEXIST, *a < *b
 * are the indices of two rules that overlap.
 */
int po_table_publish(struct po_net *pn, const struct po_arule *rules,
		     u32 count, struct netlink_ext_ack *extack, u32 *a, u32 *b)
{
	struct po_table *old, *t;
	int err;

	old = rcu_dereference_protected(pn->table, lockdep_is_held(&pn->lock));
	/* A change may shrink a table over a lowered limit, never grow it. */
	if (count > old->count) {
		err = po_check_size(pn, count, extack);
		if (err)
			return err;
	}
	t = po_table_build(rules, count, old->generation + 1, a, b);
	if (IS_ERR(t))
		return PTR_ERR(t);
	err = count ? po_events_prepare(pn) : 0;
	if (!err)
		err = po_reserve_prepare(pn, t);
	if (err) {
		kvfree(t);
		return err;
	}
	po_table_swap(pn, t);
	return 0;
}

/*
 * Publish a table from a request's rules. The rules from ours_at on came in
 * this request, rules[ours_at + i] as its i-th PORTOWNERS_A_RULE; the ones
 * before were in the table already (adding) or in earlier chunks. With
 * expect, only if the table is still at generation *expect.
 */
static int po_publish(struct po_net *pn, const struct po_arule *rules,
		      u32 count, u32 ours_at, bool adding, const u64 *expect,
		      struct genl_info *info)
{
	u32 a, b;
	int err;

	if (expect) {
		err = po_check_generation(pn, *expect, info->extack);
		if (err)
			return err;
	}
	err = po_table_publish(pn, rules, count, info->extack, &a, &b);
	if (err != -EEXIST)
		return err;
	if (b >= ours_at)
		NL_SET_BAD_ATTR(info->extack, po_nth_rule(info, b - ours_at));
	if (adding && a < ours_at)
		NL_SET_ERR_MSG(info->extack,
			       "rule overlaps a rule already in the table for the same protocol and address");
	else
		NL_SET_ERR_MSG(info->extack,
			       "rule overlaps another rule for the same protocol and address");
	return -EEXIST;
}

/* The request's PORTOWNERS_A_EXPECT_GENERATION, or NULL. */
static const u64 *po_expect(const struct genl_info *info, u64 *buf)
{
	const struct nlattr *attr = info->attrs[PORTOWNERS_A_EXPECT_GENERATION];

	if (!attr)
		return NULL;
	*buf = nla_get_u64(attr);
	return buf;
}

void po_stage_free(struct po_net *pn)
{
	struct po_stage *st = pn->stage;

	lockdep_assert_held(&pn->lock);
	if (!st)
		return;
	/* Paired with the lockless READ_ONCE() in po_netlink_notify(). */
	WRITE_ONCE(pn->stage, NULL);
	kvfree(st->rules);
	kfree(st);
}

/* Arm (or push back) the drop of an idle stage; under pn->lock. */
static void po_stage_touch(struct po_net *pn)
{
	unsigned long secs = READ_ONCE(po_stage_timeout);

	pn->stage->last = jiffies;
	if (secs)
		mod_delayed_work(system_wq, &pn->stage_timeout, secs * HZ);
}

/*
 * A stage whose socket sent no chunk for stage_timeout seconds is dropped:
 * an open socket could otherwise hold it (and block other replaces) for
 * ever. A chunk racing this work pushed ->last forward, so it is kept.
 */
void po_stage_timeout_work(struct work_struct *work)
{
	struct po_net *pn = container_of(to_delayed_work(work), struct po_net,
					 stage_timeout);
	unsigned long secs = READ_ONCE(po_stage_timeout), due;

	mutex_lock(&pn->lock);
	if (pn->stage && secs) {
		due = pn->stage->last + secs * HZ;
		if (time_after_eq(jiffies, due))
			po_stage_free(pn);
		else
			mod_delayed_work(system_wq, &pn->stage_timeout,
					 due - jiffies);
	}
	mutex_unlock(&pn->lock);
}

static int po_stage_grow(struct po_stage *st, u32 more)
{
	struct po_arule *rules;
	u32 size = st->count + more;

	if (size <= st->size)
		return 0;
	size = max(size, 2 * st->size);
	size = min_t(u32, size, PORTOWNERS_MAX_RULES);
	rules = po_kvrealloc(st->rules, st->size * sizeof(*rules),
			     size * sizeof(*rules), GFP_KERNEL_ACCOUNT);
	if (!rules)
		return -ENOMEM;
	st->rules = rules;
	st->size = size;
	return 0;
}

static int po_replace_locked(struct sk_buff *skb, struct genl_info *info,
			     struct po_net *pn)
{
	u32 flags = 0, offset = 0, n = po_count_rules(info);
	struct po_stage *st = pn->stage;
	const u64 *expect;
	u64 expect_buf;
	int err;

	if (info->attrs[PORTOWNERS_A_FLAGS])
		flags = nla_get_u32(info->attrs[PORTOWNERS_A_FLAGS]);
	if (flags & PORTOWNERS_F_STATS) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[PORTOWNERS_A_FLAGS],
				    "PORTOWNERS_F_STATS is a flag of GET_RULES, not REPLACE");
		return -EINVAL;
	}
	if (info->attrs[PORTOWNERS_A_OFFSET])
		offset = nla_get_u32(info->attrs[PORTOWNERS_A_OFFSET]);

	if (st && st->portid != info->snd_portid) {
		NL_SET_ERR_MSG(info->extack,
			       "another replace of this table is in progress");
		return -EBUSY;
	}
	if (!st) {
		if (offset) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    info->attrs[PORTOWNERS_A_OFFSET],
					    "replace chunk out of sequence: the first has offset 0 (or the replace was dropped: a chunk refused, or none for stage_timeout seconds)");
			return -EINVAL;
		}
		st = kzalloc(sizeof(*st), GFP_KERNEL_ACCOUNT);
		if (!st)
			return -ENOMEM;
		st->portid = info->snd_portid;
		WRITE_ONCE(pn->stage, st);
	} else if (offset != st->count) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[PORTOWNERS_A_OFFSET],
				    "replace chunk out of sequence: offset is not the number of rules sent");
		err = -EINVAL;
		goto drop;
	}

	/*
	 * Conditional: checked when the chunk carrying it arrives, remembered,
	 * and checked again at the swap (ADD, DEL or FLUSH may swap between).
	 */
	expect = po_expect(info, &expect_buf);
	if (expect) {
		err = po_check_generation(pn, *expect, info->extack);
		if (err)
			goto drop;
		if (!st->expect) {
			st->expect = true;
			st->generation = *expect;
		}
	}

	err = po_check_size(pn, (u64)st->count + n, info->extack);
	if (err)
		goto drop;
	err = po_stage_grow(st, n);
	if (err)
		goto drop;
	err = po_parse_rules(skb, info, true, st->rules + st->count);
	if (err)
		goto drop;
	st->count += n;
	if (flags & PORTOWNERS_F_MORE) {
		po_stage_touch(pn);
		return 0;
	}

	err = po_publish(pn, st->rules, st->count, st->count - n, false,
			 st->expect ? &st->generation : NULL, info);
drop:
	po_stage_free(pn);
	return err;
}

static int po_replace(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	int err;

	mutex_lock(&pn->lock);
	err = po_replace_locked(skb, info, pn);
	mutex_unlock(&pn->lock);
	return err;
}

static int po_add(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	u32 n = po_count_rules(info);
	const struct po_table *old;
	struct po_arule *rules;
	u64 expect_buf;
	u32 i;
	int err;

	if (!n) {
		NL_SET_ERR_MSG(info->extack, "no rules to add");
		return -EINVAL;
	}
	mutex_lock(&pn->lock);
	old = rcu_dereference_protected(pn->table, lockdep_is_held(&pn->lock));
	err = po_check_size(pn, (u64)old->count + n, info->extack);
	if (err)
		goto out;
	err = -ENOMEM;
	rules = kvmalloc_array(old->count + n, sizeof(*rules), GFP_KERNEL);
	if (!rules)
		goto out;
	for (i = 0; i < old->count; i++)
		po_table_get(old, i, &rules[i]);
	err = po_parse_rules(skb, info, true, rules + old->count);
	if (!err)
		err = po_publish(pn, rules, old->count + n, old->count, true,
				 po_expect(info, &expect_buf), info);
	kvfree(rules);
out:
	mutex_unlock(&pn->lock);
	return err;
}

static int po_del(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	u32 n = po_count_rules(info), count;
	struct po_arule *del, *rules = NULL;
	const struct po_table *old;
	u64 expect_buf;
	int err;

	if (!n) {
		NL_SET_ERR_MSG(info->extack, "no ports to release");
		return -EINVAL;
	}
	del = kvmalloc_array(n, sizeof(*del), GFP_KERNEL);
	if (!del)
		return -ENOMEM;
	err = po_parse_rules(skb, info, false, del);
	if (err)
		goto out;

	mutex_lock(&pn->lock);
	old = rcu_dereference_protected(pn->table, lockdep_is_held(&pn->lock));
	err = -ENOMEM;
	rules = kvmalloc_array(old->count + n, sizeof(*rules), GFP_KERNEL);
	if (rules) {
		count = po_table_release(old, rules, del, n);
		err = po_publish(pn, rules, count, count, false,
				 po_expect(info, &expect_buf), info);
	}
	mutex_unlock(&pn->lock);
out:
	kvfree(rules);
	kvfree(del);
	return err;
}

static int po_flush(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	u64 expect_buf;
	int err;

	mutex_lock(&pn->lock);
	err = po_publish(pn, NULL, 0, 0, false, po_expect(info, &expect_buf),
			 info);
	mutex_unlock(&pn->lock);
	return err;
}

static int po_put_addr(struct sk_buff *skb, int type,
		       const struct in6_addr *addr)
{
	if (ipv6_addr_v4mapped(addr))
		return nla_put_in_addr(skb, type, addr->s6_addr32[3]);
	return nla_put_in6_addr(skb, type, addr);
}

/* A rule as dumps, replies and events carry it; with its counters if hits. */
static int po_put_rule(struct sk_buff *skb, const struct po_rule *r,
		       struct user_namespace *ns, const struct po_hits *hits)
{
	struct nlattr *nest = nla_nest_start(skb, PORTOWNERS_A_RULE);
	const struct in6_addr *addr = po_rule_addr(r);

	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u8(skb, PORTOWNERS_RULE_A_PROTO,
		       po_proto_to_ipproto(r->proto)) ||
	    nla_put_u16(skb, PORTOWNERS_RULE_A_PORT_LO, r->lo) ||
	    nla_put_u16(skb, PORTOWNERS_RULE_A_PORT_HI, r->hi) ||
	    ((r->owner & PO_OWNER_UID) &&
	     nla_put_u32(skb, PORTOWNERS_RULE_A_UID,
			 from_kuid_munged(ns, r->uid))) ||
	    ((r->owner & PO_OWNER_GID) &&
	     nla_put_u32(skb, PORTOWNERS_RULE_A_GID,
			 from_kgid_munged(ns, r->gid))) ||
	    ((r->owner & PO_OWNER_ANY) &&
	     nla_put_flag(skb, PORTOWNERS_RULE_A_ANY)) ||
	    (addr && po_put_addr(skb, PORTOWNERS_RULE_A_ADDR, addr)) ||
	    (hits &&
	     (nla_put_u64_64bit(skb, PORTOWNERS_RULE_A_GRANTED,
				atomic64_read(&hits->granted),
				PORTOWNERS_RULE_A_PAD) ||
	      nla_put_u64_64bit(skb, PORTOWNERS_RULE_A_DENIED,
				atomic64_read(&hits->denied),
				PORTOWNERS_RULE_A_PAD)))) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* Where a GET_RULES dump is, between calls (in cb->ctx). */
struct po_dump_ctx {
	u64 generation;		/* of the table the dump started on */
	u32 next;		/* index of the next rule */
	bool started;
	bool stats;		/* PORTOWNERS_F_STATS: with each rule's counters */
	bool ended;		/* the last message is out: only NLMSG_DONE is left */
};

/*
 * The PORTOWNERS_A_FLAGS of a dump request (validated against po_policy,
 * as every request), the last one if repeated, as a parse would take it.
 */
static u32 po_dump_flags(const struct netlink_callback *cb)
{
	const struct nlattr *attr;
	u32 flags = 0;
	int rem;

	nlmsg_for_each_attr(attr, cb->nlh, GENL_HDRLEN, rem)
		if (nla_type(attr) == PORTOWNERS_A_FLAGS)
			flags = nla_get_u32(attr);
	return flags;
}

/* A dump asked for in version 1 of the ABI, which has no addresses. */
static bool po_dump_blind(const struct netlink_callback *cb,
			  const struct po_table *t)
{
	const struct genlmsghdr *hdr = nlmsg_data(cb->nlh);

	return hdr->version < 2 && t->astart[PO_NPROTO];
}

/*
 * Every message carries the generation of the table it was read from. The
 * dump reads the table afresh on every call; when it finds another
 * generation than the one it started on, it sends one last message, with
 * no rule and the new generation, and ends. cb->seq says whether the table
 * is still the one the dump started on (1) or not (2), set before any
 * message of a call, so nl_dump_check_consistent() marks that message and
 * NLMSG_DONE (netlink_dump_done() checks it too) NLM_F_DUMP_INTR: a table
 * that shrinks under the dump never passes for a whole one. (1 and 2, not
 * the generation: cb->seq is 32 bits, and 0 means "unset".)
 */
static int po_get_rules_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct po_dump_ctx *ctx = (struct po_dump_ctx *)cb->ctx;
	struct po_net *pn = po_net(sock_net(skb->sk));
	struct user_namespace *ns = po_skb_userns(cb->skb);
	const struct po_table *t;
	bool first, changed;
	void *hdr;
	u32 i;
	int err = 0;

	BUILD_BUG_ON(sizeof(*ctx) > sizeof(cb->ctx));
	rcu_read_lock();
	t = rcu_dereference(pn->table);
	if (po_dump_blind(cb, t)) {
		NL_SET_ERR_MSG(cb->extack,
			       "the table has rules on one address, which a reader of version 1 would take for rules on every address: update portctl");
		err = -EOPNOTSUPP;
		goto out;
	}
	first = !ctx->started;
	if (first) {
		ctx->stats = po_dump_flags(cb) & PORTOWNERS_F_STATS;
		/*
		 * How often a user's daemon binds is an administrator's to
		 * know, as the events are.
		 */
		if (ctx->stats &&
		    !netlink_ns_capable(cb->skb, sock_net(skb->sk)->user_ns,
					CAP_NET_ADMIN)) {
			NL_SET_ERR_MSG(cb->extack,
				       "the rules' counters need CAP_NET_ADMIN");
			err = -EPERM;
			goto out;
		}
		ctx->started = true;
		ctx->generation = t->generation;
	}
	changed = t->generation != ctx->generation;
	cb->seq = changed ? 2 : 1;
	/* The first message goes out even for an empty table: its generation. */
	if (ctx->ended || (!first && !changed && ctx->next >= t->count))
		goto out;

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &po_family, NLM_F_MULTI, PORTOWNERS_CMD_GET_RULES);
	if (!hdr) {
		err = -EMSGSIZE;
		goto out;
	}
	genl_dump_check_consistent(cb, hdr);
	if (nla_put_u64_64bit(skb, PORTOWNERS_A_GENERATION, t->generation,
			      PORTOWNERS_A_PAD)) {
		genlmsg_cancel(skb, hdr);
		err = -EMSGSIZE;
		goto out;
	}
	i = ctx->next;
	if (changed)
		ctx->ended = true;
	else
		for (; i < t->count; i++)
			if (po_put_rule(skb, po_table_rule(t, i), ns,
					ctx->stats ? &t->hits[i] : NULL))
				break;
	genlmsg_end(skb, hdr);
	ctx->next = i;
	err = skb->len;
out:
	rcu_read_unlock();
	return err;
}

static int po_get_status(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	u64 granted = 0, denied = 0, generation;
	const struct po_table *t;
	struct sk_buff *msg;
	u32 count;
	void *hdr;
	int cpu;

	for_each_possible_cpu(cpu) {
		const struct po_stats *s = per_cpu_ptr(pn->stats, cpu);

		granted += READ_ONCE(s->granted);
		denied += READ_ONCE(s->denied);
	}
	rcu_read_lock();
	t = rcu_dereference(pn->table);
	generation = t->generation;
	count = t->count;
	rcu_read_unlock();

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &po_family, 0,
				PORTOWNERS_CMD_GET_STATUS);
	if (!hdr ||
	    nla_put_string(msg, PORTOWNERS_A_VERSION, PO_VERSION) ||
	    nla_put_u64_64bit(msg, PORTOWNERS_A_GENERATION, generation,
			      PORTOWNERS_A_PAD) ||
	    nla_put_u32(msg, PORTOWNERS_A_RULE_COUNT, count) ||
	    nla_put_u64_64bit(msg, PORTOWNERS_A_GRANTED, granted,
			      PORTOWNERS_A_PAD) ||
	    nla_put_u64_64bit(msg, PORTOWNERS_A_DENIED, denied,
			      PORTOWNERS_A_PAD) ||
	    nla_put_u8(msg, PORTOWNERS_A_ROOT_EXEMPT, READ_ONCE(po_root_exempt)) ||
	    nla_put_u64_64bit(msg, PORTOWNERS_A_EVENTS_DROPPED,
			      atomic64_read(&pn->events_dropped),
			      PORTOWNERS_A_PAD)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static struct group_info *po_parse_groups(struct genl_info *info,
					  struct user_namespace *ns)
{
	const struct nlattr *attr;
	struct group_info *gi;
	int rem, n = 0;

	nlmsg_for_each_attr(attr, info->nlhdr, GENL_HDRLEN, rem)
		n += nla_type(attr) == PORTOWNERS_A_GROUP;
	if (n > NGROUPS_MAX) {
		NL_SET_ERR_MSG(info->extack, "more groups than NGROUPS_MAX");
		return ERR_PTR(-E2BIG);
	}
	gi = groups_alloc(n);
	if (!gi)
		return ERR_PTR(-ENOMEM);
	n = 0;
	nlmsg_for_each_attr(attr, info->nlhdr, GENL_HDRLEN, rem) {
		kgid_t gid;

		if (nla_type(attr) != PORTOWNERS_A_GROUP)
			continue;
		gid = make_kgid(ns, nla_get_u32(attr));
		if (gid_valid(gid))
			gi->gid[n++] = gid;
	}
	gi->ngroups = n;
	groups_sort(gi);
	return gi;
}

static int po_check(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	struct user_namespace *ns = po_skb_userns(skb);
	enum portowners_verdict verdict;
	const struct po_rule *match;
	struct po_subject who = {};
	struct po_where where = { .kind = PO_AT_ANY };
	struct po_arule rule;
	struct in6_addr addr;
	struct group_info *gi;
	struct sk_buff *msg;
	int proto, err;
	void *hdr;

	if (!info->attrs[PORTOWNERS_A_UID] || !info->attrs[PORTOWNERS_A_PROTO] ||
	    !info->attrs[PORTOWNERS_A_PORT]) {
		NL_SET_ERR_MSG(info->extack, "check needs a uid, a protocol and a port");
		return -EINVAL;
	}
	proto = po_proto_from_ipproto(nla_get_u8(info->attrs[PORTOWNERS_A_PROTO]));
	if (proto < 0) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[PORTOWNERS_A_PROTO],
				    "protocol must be tcp (6), udp (17) or sctp (132)");
		return -EINVAL;
	}
	if (info->attrs[PORTOWNERS_A_ADDR]) {
		err = po_parse_addr(info->attrs[PORTOWNERS_A_ADDR], &addr,
				    info->extack);
		if (err)
			return err;
		po_where_set(&where, &addr);
	}
	who.euid = make_kuid(ns, nla_get_u32(info->attrs[PORTOWNERS_A_UID]));
	who.egid = INVALID_GID;
	if (info->attrs[PORTOWNERS_A_GID])
		who.egid = make_kgid(ns, nla_get_u32(info->attrs[PORTOWNERS_A_GID]));
	gi = po_parse_groups(info, ns);
	if (IS_ERR(gi))
		return PTR_ERR(gi);
	who.groups = gi;

	rcu_read_lock();
	verdict = po_decide(rcu_dereference(pn->table), proto,
			    nla_get_u16(info->attrs[PORTOWNERS_A_PORT]), &where,
			    &who, &match);
	/* A copy outlives the table; an address rule's with its address. */
	if (match) {
		const struct in6_addr *addr = po_rule_addr(match);

		rule.r = *match;
		if (addr)
			rule.addr = *addr;
	}
	rcu_read_unlock();
	put_group_info(gi);

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	err = -EMSGSIZE;
	hdr = genlmsg_put_reply(msg, info, &po_family, 0, PORTOWNERS_CMD_CHECK);
	if (!hdr || nla_put_u8(msg, PORTOWNERS_A_VERDICT, verdict) ||
	    (match && po_put_rule(msg, &rule.r, ns, NULL))) {
		nlmsg_free(msg);
		return err;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static const struct genl_small_ops po_ops[] = {
	{
		.cmd = PORTOWNERS_CMD_GET_RULES,
		.dumpit = po_get_rules_dump,
	},
	{
		.cmd = PORTOWNERS_CMD_REPLACE,
		.doit = po_replace,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PORTOWNERS_CMD_ADD_RULES,
		.doit = po_add,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PORTOWNERS_CMD_DEL_RULES,
		.doit = po_del,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PORTOWNERS_CMD_FLUSH,
		.doit = po_flush,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = PORTOWNERS_CMD_GET_STATUS,
		.doit = po_get_status,
	},
	{
		.cmd = PORTOWNERS_CMD_CHECK,
		.doit = po_check,
	},
};

/*
 * Who bound what says which uid runs which program: only an administrator
 * of the namespace may listen (GENL_MCAST_CAP_NET_ADMIN, checked against
 * the user namespace that owns it when a socket joins).
 */
static const struct genl_multicast_group po_mcgrps[] = {
	[PO_MCGRP_DENIALS] = { .name = PORTOWNERS_MCGRP_DENIALS,
			       .flags = GENL_MCAST_CAP_NET_ADMIN },
	[PO_MCGRP_GRANTS] = { .name = PORTOWNERS_MCGRP_GRANTS,
			      .flags = GENL_MCAST_CAP_NET_ADMIN },
};

static struct genl_family po_family __ro_after_init = {
	.name = PORTOWNERS_GENL_NAME,
	.version = PORTOWNERS_GENL_VERSION,
	.maxattr = PORTOWNERS_A_MAX,
	.policy = po_policy,
	.netnsok = true,
	.module = THIS_MODULE,
	.small_ops = po_ops,
	.n_small_ops = ARRAY_SIZE(po_ops),
	.mcgrps = po_mcgrps,
	.n_mcgrps = ARRAY_SIZE(po_mcgrps),
	.resv_start_op = PORTOWNERS_CMD_CHECK + 1,
};

/* Has some socket, in any namespace, joined the group? One bit test. */
bool po_event_listened(const struct net *net, enum po_mcgrp group)
{
	return genl_has_listeners(&po_family, (struct net *)net, group) > 0;
}

/* The most a rule nest without counters takes, and an event message. */
static size_t po_event_size(void)
{
	size_t rule = nla_total_size(0) + nla_total_size(sizeof(u8)) +
		      2 * nla_total_size(sizeof(u16)) +
		      2 * nla_total_size(sizeof(u32)) + nla_total_size(0) +
		      nla_total_size(sizeof(struct in6_addr));

	return nla_total_size_64bit(sizeof(u64)) +	/* SEQ */
	       4 * nla_total_size(sizeof(u32)) +	/* NETNS, UID, GID, PID */
	       nla_total_size(TASK_COMM_LEN) +		/* COMM */
	       2 * nla_total_size(sizeof(u8)) +		/* PROTO, VERDICT */
	       nla_total_size(sizeof(struct in6_addr)) +	/* ADDR */
	       nla_total_size(sizeof(u16)) + rule;	/* PORT, RULE */
}

/*
 * Send one event to the namespace's listeners (events.c's work item). The
 * ids are the namespace owner's: the one message goes to every listener.
 * What netlink_broadcast() returns says nothing certain of a loss (a full
 * listener makes -ESRCH, or nothing if another got it, unless it set
 * NETLINK_BROADCAST_ERROR): a listener sees its own losses, by ENOBUFS and
 * the gap in the sequence numbers. Only the kernel's own are counted.
 */
void po_event_send(struct po_net *pn, const struct po_event *e)
{
	struct user_namespace *ns = pn->net->user_ns;
	enum po_mcgrp group = e->verdict == PORTOWNERS_VERDICT_GRANT ?
			      PO_MCGRP_GRANTS : PO_MCGRP_DENIALS;
	struct sk_buff *skb;
	void *hdr;

	/* Small: a listener's buffer is charged the whole allocation. */
	skb = genlmsg_new(po_event_size(), GFP_KERNEL);
	if (!skb)
		goto lost;
	hdr = genlmsg_put(skb, 0, 0, &po_family, 0, PORTOWNERS_CMD_EVENT);
	if (!hdr ||
	    nla_put_u64_64bit(skb, PORTOWNERS_A_SEQ, e->seq, PORTOWNERS_A_PAD) ||
	    nla_put_u32(skb, PORTOWNERS_A_NETNS, pn->net->ns.inum) ||
	    nla_put_u32(skb, PORTOWNERS_A_UID, from_kuid_munged(ns, e->uid)) ||
	    nla_put_u32(skb, PORTOWNERS_A_GID, from_kgid_munged(ns, e->gid)) ||
	    nla_put_u32(skb, PORTOWNERS_A_PID, e->pid) ||
	    nla_put_string(skb, PORTOWNERS_A_COMM, e->comm) ||
	    nla_put_u8(skb, PORTOWNERS_A_PROTO, po_proto_to_ipproto(e->proto)) ||
	    po_put_addr(skb, PORTOWNERS_A_ADDR, &e->addr) ||
	    nla_put_u16(skb, PORTOWNERS_A_PORT, e->port) ||
	    nla_put_u8(skb, PORTOWNERS_A_VERDICT, e->verdict) ||
	    po_put_rule(skb, &e->rule.r, ns, NULL)) {
		nlmsg_free(skb);
		goto lost;
	}
	genlmsg_end(skb, hdr);
	genlmsg_multicast_netns(&po_family, pn->net, skb, 0, group, GFP_KERNEL);
	return;
lost:
	atomic64_inc(&pn->events_dropped);
}

/*
 * A multi-chunk REPLACE dies with the socket that started it. This runs on
 * the close of every generic netlink socket of the machine, so it takes no
 * lock unless the socket's namespace has a stage. The lockless test is
 * enough: only a request on socket n->portid itself stages for it, under
 * pn->lock, and that request returned before the socket could be released
 * (the file reference the send held orders the two), so a stage of this
 * socket is seen here. A stage seen but not this socket's (or freed
 * meanwhile) is sorted out under the lock.
 */
static int po_netlink_notify(struct notifier_block *nb, unsigned long event,
			     void *ptr)
{
	struct netlink_notify *n = ptr;
	struct po_net *pn;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC)
		return NOTIFY_DONE;
	pn = po_net(n->net);
	if (!READ_ONCE(pn->stage))
		return NOTIFY_DONE;
	mutex_lock(&pn->lock);
	if (pn->stage && pn->stage->portid == n->portid)
		po_stage_free(pn);
	mutex_unlock(&pn->lock);
	return NOTIFY_DONE;
}

static struct notifier_block po_netlink_nb = {
	.notifier_call = po_netlink_notify,
};

int __init po_netlink_init(void)
{
	int err;

	err = netlink_register_notifier(&po_netlink_nb);
	if (err)
		return err;
	err = genl_register_family(&po_family);
	if (err)
		netlink_unregister_notifier(&po_netlink_nb);
	return err;
}

void po_netlink_exit(void)
{
	genl_unregister_family(&po_family);
	netlink_unregister_notifier(&po_netlink_nb);
}
