// SPDX-License-Identifier: GPL-2.0
/*
 * bench/nullprobe: kprobes with empty handlers on the functions portowners
 * probes, for the benchmark only. What it costs a bind is the price of the
 * kprobe mechanism itself, apart from anything portowners decides.
 *
 *   insmod nullprobe.ko probes=N   (1: security_socket_bind only;
 *                                   3: also __inet_bind and __inet6_bind)
 */
#include <linux/kprobes.h>
#include <linux/module.h>

static int probes = 3;
module_param(probes, int, 0444);

static int null_pre(struct kprobe *p, struct pt_regs *regs)
{
	return 0;
}
NOKPROBE_SYMBOL(null_pre);

static struct kprobe kps[] = {
	{ .symbol_name = "security_socket_bind", .pre_handler = null_pre },
	{ .symbol_name = "__inet_bind", .pre_handler = null_pre },
	{ .symbol_name = "__inet6_bind", .pre_handler = null_pre },
};
static struct kprobe *kpp[ARRAY_SIZE(kps)];

static int __init nullprobe_init(void)
{
	int i;

	if (probes < 1 || probes > ARRAY_SIZE(kps))
		return -EINVAL;
	for (i = 0; i < probes; i++)
		kpp[i] = &kps[i];
	return register_kprobes(kpp, probes);
}

static void __exit nullprobe_exit(void)
{
	unregister_kprobes(kpp, probes);
	synchronize_rcu_tasks();
}

module_init(nullprobe_init);
module_exit(nullprobe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("portowners benchmark: kprobes that do nothing");
