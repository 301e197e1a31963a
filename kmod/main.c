// SPDX-License-Identifier: GPL-2.0
/*
 * portowners: give a port to a user or group, as chown gives a file.
 *
 * Module setup: per network namespace state, parameters, and the order in
 * which the pieces come up and go down. The bind hooks are armed after the
 * tables and disarmed before, so they never see a namespace without its
 * table. portfs comes up last and goes first: a mount is a way in to every
 * other piece, and while one exists the module cannot go (its owner).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/user_namespace.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>

#include "po.h"

unsigned int po_net_id __read_mostly;

bool po_root_exempt __read_mostly = true;
module_param_named(root_exempt, po_root_exempt, bool, 0644);
MODULE_PARM_DESC(root_exempt,
		 "Tasks with CAP_NET_BIND_SERVICE may bind owned ports (default: Y)");

/*
 * Any user may make a user namespace and a network namespace in it, and be
 * CAP_NET_ADMIN there: what such a namespace's table (and a REPLACE staged
 * in it) may hold is bounded, so that nobody pins megabytes per namespace.
 */
unsigned int po_userns_max_rules __read_mostly = 4096;
module_param_named(userns_max_rules, po_userns_max_rules, uint, 0644);
MODULE_PARM_DESC(userns_max_rules,
		 "Most rules a network namespace not owned by the initial user namespace may hold (default: 4096)");

unsigned int po_stage_timeout __read_mostly = 30;
module_param_named(stage_timeout, po_stage_timeout, uint, 0644);
MODULE_PARM_DESC(stage_timeout,
		 "Seconds an unfinished multi-chunk REPLACE may wait for its next chunk; 0: no limit (default: 30)");

static int __net_init po_net_init(struct net *net)
{
	struct po_net *pn = po_net(net);
	int err, i;

	pn->net = net;
	mutex_init(&pn->lock);
	for (i = 0; i < ARRAY_SIZE(pn->log_rs); i++)
		ratelimit_state_init(&pn->log_rs[i], DEFAULT_RATELIMIT_INTERVAL,
				     DEFAULT_RATELIMIT_BURST);
	INIT_DELAYED_WORK(&pn->stage_timeout, po_stage_timeout_work);
	po_events_net_init(pn);
	pn->userns_bound = net->user_ns != &init_user_ns;
	pn->stats = alloc_percpu(struct po_stats);
	if (!pn->stats)
		return -ENOMEM;
	err = po_net_init_table(pn);
	if (err)
		free_percpu(pn->stats);
	return err;
}

static void __net_exit po_net_exit(struct net *net)
{
	struct po_net *pn = po_net(net);

	/*
	 * No socket of this namespace is left, so no request can stage or
	 * queue the timeout again: once cancelled, it stays so.
	 */
	cancel_delayed_work_sync(&pn->stage_timeout);
	po_events_net_exit(pn);
	mutex_lock(&pn->lock);
	po_stage_free(pn);
	po_reserve_drop(pn);
	po_net_free_table(pn);
	mutex_unlock(&pn->lock);
	mutex_destroy(&pn->lock);
	free_percpu(pn->stats);
}

static struct pernet_operations po_net_ops = {
	.init = po_net_init,
	.exit = po_net_exit,
	.id = &po_net_id,
	.size = sizeof(struct po_net),
};

static int __init po_init(void)
{
	int err;

	err = register_pernet_subsys(&po_net_ops);
	if (err)
		return err;
	err = po_netlink_init();
	if (err)
		goto err_pernet;
	err = po_events_init();
	if (err)
		goto err_netlink;
	err = po_hooks_init();
	if (err)
		goto err_events;
	err = po_fs_init();
	if (err)
		goto err_hooks;
	pr_info("version %s loaded, root_exempt=%d\n", PO_VERSION,
		po_root_exempt);
	return 0;

err_hooks:
	po_hooks_exit();
err_events:
	po_events_exit();
err_netlink:
	po_netlink_exit();
err_pernet:
	unregister_pernet_subsys(&po_net_ops);
	return err;
}

static void __exit po_exit(void)
{
	po_fs_exit();
	po_hooks_exit();
	po_events_exit();
	po_netlink_exit();
	unregister_pernet_subsys(&po_net_ops);
	pr_info("unloaded\n");
}

module_init(po_init);
module_exit(po_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Give ports to users and groups, as chown gives files");
MODULE_AUTHOR("The portowners developers");
MODULE_VERSION(PO_VERSION);
MODULE_ALIAS_GENL_FAMILY(PORTOWNERS_GENL_NAME);
MODULE_ALIAS_FS("portfs");
