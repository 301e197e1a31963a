// SPDX-License-Identifier: GPL-2.0
/*
 * bench/nullprobe: empty handlers on the functions portowners hooks, for the
 * benchmark only. What it costs a bind is the floor of each mechanism that
 * can both deny (change the return) and grant (change an argument) there,
 * apart from anything portowners decides:
 *
 *   insmod nullprobe.ko mode=kprobe   kprobes on __inet_bind and
 *                                     __inet6_bind (ftrace-based, full
 *                                     pt_regs), as portowners uses
 *   insmod nullprobe.ko mode=ftrace   one ftrace_ops with IPMODIFY on both,
 *                                     arguments only (no SAVE_REGS), as
 *                                     livepatch registers on x86-64
 */
#include <linux/ftrace.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/string.h>

static char *mode = "kprobe";
module_param(mode, charp, 0444);

static int null_pre(struct kprobe *p, struct pt_regs *regs)
{
	return 0;
}
NOKPROBE_SYMBOL(null_pre);

static struct kprobe kps[] = {
	{ .symbol_name = "__inet_bind", .pre_handler = null_pre },
	{ .symbol_name = "__inet6_bind", .pre_handler = null_pre },
};
static struct kprobe *kpp[] = { &kps[0], &kps[1] };

static void null_ftrace(unsigned long ip, unsigned long parent_ip,
			struct ftrace_ops *op, struct ftrace_regs *fregs)
{
}

static struct ftrace_ops null_ops = {
	.func = null_ftrace,
	.flags = FTRACE_OPS_FL_IPMODIFY,
};

static bool use_ftrace;

static int __init nullprobe_init(void)
{
	int err;

	if (!strcmp(mode, "kprobe"))
		return register_kprobes(kpp, ARRAY_SIZE(kpp));
	if (strcmp(mode, "ftrace"))
		return -EINVAL;
	use_ftrace = true;
	err = ftrace_set_filter(&null_ops, "__inet_bind", strlen("__inet_bind"), 0);
	if (!err)
		err = ftrace_set_filter(&null_ops, "__inet6_bind",
					strlen("__inet6_bind"), 0);
	if (!err)
		err = register_ftrace_function(&null_ops);
	if (err)
		ftrace_free_filter(&null_ops);
	return err;
}

static void __exit nullprobe_exit(void)
{
	if (use_ftrace) {
		unregister_ftrace_function(&null_ops);
		ftrace_free_filter(&null_ops);
	} else {
		unregister_kprobes(kpp, ARRAY_SIZE(kpp));
	}
	synchronize_rcu_tasks();
}

module_init(nullprobe_init);
module_exit(nullprobe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("portowners benchmark: empty kprobe or ftrace handlers");
