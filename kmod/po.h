/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _PO_H
#define _PO_H

#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/in6.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
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
	/* Not an owner: this rule is the one of a struct po_arule. */
	PO_RULE_ADDR = 1 << 3,
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
 * A rule on one local address. addr is an IPv6 address or an IPv4-mapped
 * one (::ffff:a.b.c.d), so one compare serves both families. Where a rule
 * is given (a request, a stage, the input of po_table_build()) the same
 * struct carries rules on every address too, with addr ::, which no rule on
 * an address may have. In a table, maxhi is the highest port of this and
 * every earlier address rule of its protocol.
 */
struct po_arule {
	struct po_rule r;
	struct in6_addr addr;
	u16 maxhi;
};

/*
 * An immutable table. rules[start[p]..start[p + 1]) are protocol p's rules
 * on every address, sorted by port and never overlapping, so a lookup is one
 * binary search. arules[astart[p]..astart[p + 1]) are its rules on one
 * address, sorted by first port: the same binary search finds the last one
 * starting at or below a port, and maxhi bounds the walk back over those
 * that might cover it. A table with no address rules is searched as it
 * always was. Replaced whole under RCU, never edited in place.
 */
struct po_table {
	struct rcu_head rcu;
	u64 generation;
	u32 count;			/* all rules, on every address or one */
	u32 start[PO_NPROTO + 1];
	u32 astart[PO_NPROTO + 1];
	struct po_arule *arules;	/* in the same allocation, after rules */
	struct po_hits *hits;		/* ... after arules: one per rule */
	struct po_rule rules[];
};

/*
 * A rule's counters: the one part of a table that changes after it is
 * published. hits[i] counts for po_table_rule(t, i).
 */
struct po_hits {
	atomic64_t granted;
	atomic64_t denied;
};

/* What a bind's address covers. */
enum po_where_kind {
	PO_AT_ADDR,	/* one address: where->addr */
	PO_AT_ANY4,	/* 0.0.0.0: every IPv4 address */
	PO_AT_ANY,	/* ::, every address of both families */
};

struct po_where {
	enum po_where_kind kind;
	struct in6_addr addr;	/* PO_AT_ADDR: IPv6, or IPv4-mapped */
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
	struct po_arule *rules;
};

/*
 * Denials are logged under a rate limit per namespace and, within it, per
 * bucket of uids: one user refused in a loop spends only his own bucket's
 * burst, not the log lines of everyone else's denials.
 */
#define PO_LOG_BUCKETS_BITS 3

/* The multicast groups, in the order of the family's mcgrps[]. */
enum po_mcgrp {
	PO_MCGRP_DENIALS,
	PO_MCGRP_GRANTS,
	PO_NMCGRPS
};

/* One bind a rule decided, as the bind hook saw it (events.c). */
struct po_event {
	u64 seq;
	kuid_t uid;
	kgid_t gid;
	pid_t pid;
	u16 port;
	u8 proto;			/* enum po_proto */
	u8 verdict;			/* enum portowners_verdict */
	u8 bucket;			/* of its uid, in po_events.queued */
	char comm[TASK_COMM_LEN];
	struct in6_addr addr;		/* of the bind: IPv6 or IPv4-mapped */
	struct po_arule rule;		/* that decided; addr set if on one */
};

/*
 * Events on their way from the bind hooks to the listeners: a ring the
 * hooks fill without allocating, emptied by po_net.event_work.
 */
#define PO_EVENTS_RING 256

/*
 * At most this many events of one bucket of uids (the log's buckets) wait
 * in the ring: one user binding in a loop fills a quarter of it, and the
 * others' events still find room.
 */
#define PO_EVENTS_PER_BUCKET (PO_EVENTS_RING / 4)

struct po_events {
	raw_spinlock_t lock;
	u32 head;			/* the oldest event */
	u32 len;
	u64 seq[PO_NMCGRPS];		/* the last number given, per group */
	u16 queued[1 << PO_LOG_BUCKETS_BITS];	/* waiting, per uid bucket */
	struct po_event ring[PO_EVENTS_RING];
};

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
	/*
	 * Allocated under lock before a table with rules is first published,
	 * then kept until the namespace goes: the hooks read it locklessly.
	 */
	struct po_events *events;
	struct work_struct event_work;
	atomic64_t events_dropped;
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
				  u16 port, const struct po_where *where,
				  const struct po_subject *who,
				  const struct po_rule **rule);
const struct in6_addr *po_rule_addr(const struct po_rule *r);
void po_where_set(struct po_where *where, const struct in6_addr *addr);
const struct po_rule *po_table_rule(const struct po_table *t, u32 i);
struct po_hits *po_rule_hits(const struct po_table *t,
			     const struct po_rule *r);
void po_table_get(const struct po_table *t, u32 i, struct po_arule *out);
struct po_table *po_table_build(const struct po_arule *rules, u32 count,
				u64 generation, u32 *bad_a, u32 *bad_b);
u32 po_table_release(const struct po_table *t, struct po_arule *out,
		     struct po_arule *del, u32 ndel);
void po_table_swap(struct po_net *pn, struct po_table *t);
int po_net_init_table(struct po_net *pn);
void po_net_free_table(struct po_net *pn);

/* netlink.c */
struct netlink_ext_ack;
int po_table_publish(struct po_net *pn, const struct po_arule *rules,
		     u32 count, struct netlink_ext_ack *extack, u32 *a, u32 *b);
bool po_event_listened(const struct net *net, enum po_mcgrp group);
void po_event_send(struct po_net *pn, const struct po_event *e);
void po_stage_free(struct po_net *pn);
void po_stage_timeout_work(struct work_struct *work);
int po_netlink_init(void);
void po_netlink_exit(void);

/* reserve.c */
int po_reserve_prepare(struct po_net *pn, const struct po_table *t);
void po_reserve_sync(struct po_net *pn, const struct po_table *t);
void po_reserve_drop(struct po_net *pn);

/* events.c */
void po_event_note(struct po_net *pn, enum portowners_verdict verdict,
		   int proto, u16 port, const struct po_where *where,
		   const struct po_subject *who, const struct po_rule *rule);
int po_events_prepare(struct po_net *pn);
void po_events_net_init(struct po_net *pn);
void po_events_net_exit(struct po_net *pn);
int po_events_init(void);
void po_events_exit(void);

/* hooks.c */
int po_hooks_init(void);
void po_hooks_exit(void);

/* portfs.c */
int po_fs_init(void);
void po_fs_exit(void);

#endif /* _PO_H */
