// SPDX-License-Identifier: GPL-2.0
/*
 * The generic netlink family "portowners": see uapi/portowners.h.
 *
 * Every change builds a whole new table, validates it and swaps it in, all
 * under po_mutex; on any error nothing changes. uids and gids cross this
 * boundary in the user namespace of the netlink socket's opener.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/mm.h>
#include <linux/netlink.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>
#include <net/genetlink.h>
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
};

static const struct nla_policy po_policy[PORTOWNERS_A_MAX + 1] = {
	[PORTOWNERS_A_RULE] = NLA_POLICY_NESTED(po_rule_policy),
	[PORTOWNERS_A_FLAGS] = NLA_POLICY_MASK(NLA_U32, PORTOWNERS_F_MORE),
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

static int po_parse_rule(const struct nlattr *attr, struct user_namespace *ns,
			 bool owned, struct po_rule *r,
			 struct netlink_ext_ack *extack)
{
	struct nlattr *tb[PORTOWNERS_RULE_A_MAX + 1];
	int err, proto;

	err = nla_parse_nested(tb, PORTOWNERS_RULE_A_MAX, attr, po_rule_policy,
			       extack);
	if (err)
		return err;
	if (!tb[PORTOWNERS_RULE_A_PROTO] || !tb[PORTOWNERS_RULE_A_PORT_LO]) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "rule needs a protocol and a port");
		return -EINVAL;
	}

	memset(r, 0, sizeof(*r));
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
			  bool owned, struct po_rule *out)
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

/*
 * Build and publish a table from rules. The rules from ours_at on came in
 * this request, rules[ours_at + i] as its i-th PORTOWNERS_A_RULE; the ones
 * before were in the table already (adding) or in earlier chunks.
 */
static int po_publish(struct po_net *pn, const struct po_rule *rules,
		      u32 count, u32 ours_at, bool adding,
		      struct genl_info *info)
{
	struct po_table *old, *t;
	u32 a, b;

	old = rcu_dereference_protected(pn->table, lockdep_is_held(&po_mutex));
	t = po_table_build(rules, count, old->generation + 1, &a, &b);
	if (IS_ERR(t)) {
		if (PTR_ERR(t) != -EEXIST)
			return PTR_ERR(t);
		if (b >= ours_at)
			NL_SET_BAD_ATTR(info->extack, po_nth_rule(info, b - ours_at));
		if (adding && a < ours_at)
			NL_SET_ERR_MSG(info->extack,
				       "rule overlaps a rule already in the table for the same protocol");
		else
			NL_SET_ERR_MSG(info->extack,
				       "rule overlaps another rule for the same protocol");
		return -EEXIST;
	}
	po_table_swap(pn, t);
	return 0;
}

void po_stage_free(struct po_net *pn)
{
	if (!pn->stage)
		return;
	kvfree(pn->stage->rules);
	kfree(pn->stage);
	pn->stage = NULL;
}

static int po_stage_grow(struct po_stage *st, u32 more)
{
	struct po_rule *rules;
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
	int err;

	if (info->attrs[PORTOWNERS_A_FLAGS])
		flags = nla_get_u32(info->attrs[PORTOWNERS_A_FLAGS]);
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
					    "replace chunk out of sequence: the first has offset 0");
			return -EINVAL;
		}
		st = kzalloc(sizeof(*st), GFP_KERNEL_ACCOUNT);
		if (!st)
			return -ENOMEM;
		st->portid = info->snd_portid;
		pn->stage = st;
	} else if (offset != st->count) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[PORTOWNERS_A_OFFSET],
				    "replace chunk out of sequence: offset is not the number of rules sent");
		err = -EINVAL;
		goto drop;
	}

	if (n > PORTOWNERS_MAX_RULES - st->count) {
		NL_SET_ERR_MSG(info->extack, "too many rules for one table");
		err = -E2BIG;
		goto drop;
	}
	err = po_stage_grow(st, n);
	if (err)
		goto drop;
	err = po_parse_rules(skb, info, true, st->rules + st->count);
	if (err)
		goto drop;
	st->count += n;
	if (flags & PORTOWNERS_F_MORE)
		return 0;

	err = po_publish(pn, st->rules, st->count, st->count - n, false, info);
drop:
	po_stage_free(pn);
	return err;
}

static int po_replace(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	int err;

	mutex_lock(&po_mutex);
	err = po_replace_locked(skb, info, pn);
	mutex_unlock(&po_mutex);
	return err;
}

static int po_add(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	u32 n = po_count_rules(info);
	const struct po_table *old;
	struct po_rule *rules;
	int err;

	if (!n) {
		NL_SET_ERR_MSG(info->extack, "no rules to add");
		return -EINVAL;
	}
	mutex_lock(&po_mutex);
	old = rcu_dereference_protected(pn->table, lockdep_is_held(&po_mutex));
	err = -E2BIG;
	if (n > PORTOWNERS_MAX_RULES - old->count) {
		NL_SET_ERR_MSG(info->extack, "too many rules for one table");
		goto out;
	}
	err = -ENOMEM;
	rules = kvmalloc_array(old->count + n, sizeof(*rules), GFP_KERNEL);
	if (!rules)
		goto out;
	memcpy(rules, old->rules, old->count * sizeof(*rules));
	err = po_parse_rules(skb, info, true, rules + old->count);
	if (!err)
		err = po_publish(pn, rules, old->count + n, old->count, true,
				 info);
	kvfree(rules);
out:
	mutex_unlock(&po_mutex);
	return err;
}

static int po_del(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	u32 n = po_count_rules(info), count;
	struct po_rule *del, *rules = NULL;
	const struct po_table *old;
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

	mutex_lock(&po_mutex);
	old = rcu_dereference_protected(pn->table, lockdep_is_held(&po_mutex));
	err = -ENOMEM;
	rules = kvmalloc_array(old->count + n, sizeof(*rules), GFP_KERNEL);
	if (rules) {
		count = po_table_release(old, rules, del, n);
		err = po_publish(pn, rules, count, count, false, info);
	}
	mutex_unlock(&po_mutex);
out:
	kvfree(rules);
	kvfree(del);
	return err;
}

static int po_flush(struct sk_buff *skb, struct genl_info *info)
{
	struct po_net *pn = po_net(genl_info_net(info));
	int err;

	mutex_lock(&po_mutex);
	err = po_publish(pn, NULL, 0, 0, false, info);
	mutex_unlock(&po_mutex);
	return err;
}

static int po_put_rule(struct sk_buff *skb, const struct po_rule *r,
		       struct user_namespace *ns)
{
	struct nlattr *nest = nla_nest_start(skb, PORTOWNERS_A_RULE);

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
	     nla_put_flag(skb, PORTOWNERS_RULE_A_ANY))) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

/*
 * cb->args[0]: index of the next rule, cb->args[1]: generation of the table
 * the dump started on, plus one, so that 0 means "not started". A table
 * swapped during the dump marks the next message NLM_F_DUMP_INTR, and every
 * message carries the generation, so a reader can tell and start again.
 */
static int po_get_rules_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct po_net *pn = po_net(sock_net(skb->sk));
	struct user_namespace *ns = po_skb_userns(cb->skb);
	const struct po_table *t;
	u32 i = cb->args[0];
	void *hdr;
	int err = 0;

	rcu_read_lock();
	t = rcu_dereference(pn->table);
	if (cb->args[1] && i >= t->count)
		goto out;
	if (!cb->args[1])
		cb->args[1] = t->generation + 1;
	cb->seq = t->generation + 1;

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
	for (; i < t->count; i++)
		if (po_put_rule(skb, &t->rules[i], ns))
			break;
	genlmsg_end(skb, hdr);
	cb->args[0] = i;
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
	    nla_put_u8(msg, PORTOWNERS_A_ROOT_EXEMPT, READ_ONCE(po_root_exempt))) {
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
	struct po_rule rule;
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
			    nla_get_u16(info->attrs[PORTOWNERS_A_PORT]), &who,
			    &match);
	if (match)
		rule = *match;
	rcu_read_unlock();
	put_group_info(gi);

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	err = -EMSGSIZE;
	hdr = genlmsg_put_reply(msg, info, &po_family, 0, PORTOWNERS_CMD_CHECK);
	if (!hdr || nla_put_u8(msg, PORTOWNERS_A_VERDICT, verdict) ||
	    (match && po_put_rule(msg, &rule, ns))) {
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

static struct genl_family po_family __ro_after_init = {
	.name = PORTOWNERS_GENL_NAME,
	.version = PORTOWNERS_GENL_VERSION,
	.maxattr = PORTOWNERS_A_MAX,
	.policy = po_policy,
	.netnsok = true,
	.module = THIS_MODULE,
	.small_ops = po_ops,
	.n_small_ops = ARRAY_SIZE(po_ops),
	.resv_start_op = PORTOWNERS_CMD_CHECK + 1,
};

/* A multi-chunk REPLACE dies with the socket that started it. */
static int po_netlink_notify(struct notifier_block *nb, unsigned long event,
			     void *ptr)
{
	struct netlink_notify *n = ptr;
	struct po_net *pn;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC)
		return NOTIFY_DONE;
	pn = po_net(n->net);
	mutex_lock(&po_mutex);
	if (pn->stage && pn->stage->portid == n->portid)
		po_stage_free(pn);
	mutex_unlock(&po_mutex);
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
