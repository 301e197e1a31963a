/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _PO_H
#define _PO_H

#include <linux/cred.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/ratelimit.h>
#include <linux/rcupdate.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "uapi/portowners.h"

#define PO_VERSION "0.1.0"

/* Table slots, one per protocol that rules name. */
enum po_proto {
	PO_TCP,
	PO_UDP,
	PO_SCTP,
	PO_NPROTO
};

enum po_owner_flags {
	PO_OWNER_UID = 1 << 0,
	PO_OWNER_GID = 1 << 1,
	PO_OWNER_ANY = 1 << 2,
};

struct po_rule {
	u16 lo;
	u16 hi;
	u8 proto;		/* enum po_proto */
	u8 owner;		/* enum po_owner_flags */
	kuid_t uid;
	kgid_t gid;
};

/*
 * An immutable table: rules[start[p]..start[p + 1]) are protocol p's, sorted
 * by port and never overlapping, so a lookup is one binary search. Replaced
 * whole under RCU, never edited in place.
 */
struct po_table {
	struct rcu_head rcu;
	u64 generation;
	u32 count;
	u32 start[PO_NPROTO + 1];
	struct po_rule rules[];
};

/* Who asks to bind: a task's credentials, or the subject of a CHECK. */
struct po_subject {
	kuid_t euid;
	kgid_t egid;
	const struct group_info *groups;	/* sorted, as in struct cred */
};

struct po_stats {
	u64 granted;
	u64 denied;
};

/* A REPLACE that arrives in several messages, collected before the swap. */
struct po_stage {
	u32 portid;
	u32 count;
	u32 size;
	bool expect;			/* a chunk carried EXPECT_GENERATION */
	u64 generation;			/* ... and this was its value */
	unsigned long last;		/* jiffies of the last chunk */
	struct po_rule *rules;
};

/*
 * Denials are logged under a rate limit per namespace and, within it, per
 * bucket of uids: one user refused in a loop spends only his own bucket's
 * burst, not the log lines of everyone else's denials.
 */
#define PO_LOG_BUCKETS_BITS 3

struct po_net {
	struct net *net;
	struct po_table __rcu *table;	/* never NULL while the netns lives */
	struct mutex lock;		/* this namespace's writers and stage */
	/* Under lock; read locklessly only by the NETLINK_URELEASE notifier. */
	struct po_stage *stage;
	struct delayed_work stage_timeout;	/* drops an idle stage */
	bool userns_bound;		/* owned by a user namespace other than init's */
	struct po_stats __percpu *stats;
	struct ratelimit_state log_rs[1 << PO_LOG_BUCKETS_BITS];
	/*
	 * Under lock, NULL until a table first reserves a port (reserve.c):
	 * the ports this module added to ip_local_reserved_ports, and the
	 * table's owned ports (scratch space of a swap).
	 */
	unsigned long *reserved;
	unsigned long *want;
};

extern unsigned int po_net_id;
extern bool po_root_exempt;
extern unsigned int po_userns_max_rules;
extern unsigned int po_stage_timeout;
extern unsigned long po_rules_anywhere;

static inline struct po_net *po_net(const struct net *net)
{
	return net_generic(net, po_net_id);
}

/* table.c */
int po_proto_from_ipproto(int ipproto);
int po_proto_to_ipproto(int proto);
const struct po_rule *po_lookup(const struct po_table *t, int proto, u16 port);
enum portowners_verdict po_decide(const struct po_table *t, int proto,
				  u16 port, const struct po_subject *who,
				  const struct po_rule **rule);
struct po_table *po_table_build(const struct po_rule *rules, u32 count,
				u64 generation, u32 *bad_a, u32 *bad_b);
u32 po_table_release(const struct po_table *t, struct po_rule *out,
		     struct po_rule *del, u32 ndel);
void po_table_swap(struct po_net *pn, struct po_table *t);
int po_net_init_table(struct po_net *pn);
void po_net_free_table(struct po_net *pn);

/* netlink.c */
void po_stage_free(struct po_net *pn);
void po_stage_timeout_work(struct work_struct *work);
int po_netlink_init(void);
void po_netlink_exit(void);

/* reserve.c */
int po_reserve_prepare(struct po_net *pn, const struct po_table *t);
void po_reserve_sync(struct po_net *pn, const struct po_table *t);
void po_reserve_drop(struct po_net *pn);

/* hooks.c */
int po_hooks_init(void);
void po_hooks_exit(void);

#endif /* _PO_H */
