// SPDX-License-Identifier: GPL-2.0
/*
 * Events: one generic netlink message for each bind a rule decided, to the
 * listeners of the namespace's "denials" (and, if any, "grants") group.
 *
 * The bind hooks run with preemption disabled, so they may neither sleep
 * nor, on PREEMPT_RT, allocate: they copy the event into a fixed ring of
 * the namespace, under a raw spinlock, and queue the namespace's work item,
 * which builds and sends the messages in process context. A full ring, or
 * a bucket of uids with its share of it waiting, drops the event and
 * counts it; the sequence number it was given is skipped, so a listener
 * sees the gap. Nothing here can fail or delay a bind.
 */
#include <linux/hash.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#include "po.h"

/* Sends at most this many events per run, so namespaces take turns. */
#define PO_EVENTS_BATCH 64

static struct workqueue_struct *po_events_wq;

/*
 * Called by the bind hooks, under rcu_read_lock(), for a bind a rule
 * decided: queue its event if some listener wants it. has_listeners is one
 * bit test; it tells whether a socket of any namespace joined the group,
 * so a namespace without listeners may queue events that nobody receives.
 */
void po_event_note(struct po_net *pn, enum portowners_verdict verdict,
		   int proto, u16 port, const struct po_where *where,
		   const struct po_subject *who, const struct po_rule *rule)
{
	enum po_mcgrp group = verdict == PORTOWNERS_VERDICT_GRANT ?
			      PO_MCGRP_GRANTS : PO_MCGRP_DENIALS;
	/* Pairs with po_events_prepare(), before the first table it serves. */
	struct po_events *ev = smp_load_acquire(&pn->events);
	const struct in6_addr *addr = po_rule_addr(rule);
	struct po_event *e;
	u32 bucket;
	u64 seq;

	if (!ev || !po_event_listened(pn->net, group))
		return;
	bucket = hash_32(from_kuid(&init_user_ns, who->euid),
			 PO_LOG_BUCKETS_BITS);
	raw_spin_lock(&ev->lock);
	seq = ++ev->seq[group];
	if (ev->len == PO_EVENTS_RING ||
	    ev->queued[bucket] == PO_EVENTS_PER_BUCKET) {
		raw_spin_unlock(&ev->lock);
		atomic64_inc(&pn->events_dropped);
		return;
	}
	ev->queued[bucket]++;
	e = &ev->ring[(ev->head + ev->len++) % PO_EVENTS_RING];
	e->seq = seq;
	e->uid = who->euid;
	e->gid = who->egid;
	e->pid = task_tgid_nr(current);
	e->port = port;
	e->proto = proto;
	e->verdict = verdict;
	e->bucket = bucket;
	/* Not get_task_comm(): its task_lock() may sleep on PREEMPT_RT. */
	strscpy(e->comm, current->comm, sizeof(e->comm));
	e->addr = where->addr;
	e->rule.r = *rule;
	e->rule.addr = addr ? *addr : in6addr_any;
	raw_spin_unlock(&ev->lock);
	queue_work(po_events_wq, &pn->event_work);
}

static void po_events_work(struct work_struct *work)
{
	struct po_net *pn = container_of(work, struct po_net, event_work);
	struct po_events *ev = pn->events;
	struct po_event e;
	int n;

	for (n = 0; n < PO_EVENTS_BATCH; n++) {
		raw_spin_lock(&ev->lock);
		if (!ev->len) {
			raw_spin_unlock(&ev->lock);
			return;
		}
		e = ev->ring[ev->head];
		ev->head = (ev->head + 1) % PO_EVENTS_RING;
		ev->len--;
		ev->queued[e.bucket]--;
		raw_spin_unlock(&ev->lock);
		po_event_send(pn, &e);
	}
	queue_work(po_events_wq, work);
}

/*
 * Before a table with rules is first published (under pn->lock): the ring
 * its decisions will need. Kept until the namespace goes, as a namespace
 * that had rules once is likely to have them again.
 */
int po_events_prepare(struct po_net *pn)
{
	struct po_events *ev;

	lockdep_assert_held(&pn->lock);
	if (pn->events)
		return 0;
	ev = kvzalloc(sizeof(*ev), GFP_KERNEL_ACCOUNT);
	if (!ev)
		return -ENOMEM;
	raw_spin_lock_init(&ev->lock);
	/* Pairs with po_event_note(): a hook sees the ring initialized. */
	smp_store_release(&pn->events, ev);
	return 0;
}

void po_events_net_init(struct po_net *pn)
{
	INIT_WORK(&pn->event_work, po_events_work);
	atomic64_set(&pn->events_dropped, 0);
}

/*
 * The namespace is gone: no bind can queue an event any more. When the
 * module goes, po_events_exit() has already run every work item.
 */
void po_events_net_exit(struct po_net *pn)
{
	if (READ_ONCE(po_events_wq))
		cancel_work_sync(&pn->event_work);
	kvfree(pn->events);
	pn->events = NULL;
}

int __init po_events_init(void)
{
	po_events_wq = alloc_workqueue("portowners_events", WQ_UNBOUND, 0);
	return po_events_wq ? 0 : -ENOMEM;
}

/*
 * After the hooks are gone and before the family is: sends what is queued
 * (a work item that queues itself again included) and stops.
 */
void po_events_exit(void)
{
	destroy_workqueue(po_events_wq);
	WRITE_ONCE(po_events_wq, NULL);
}
