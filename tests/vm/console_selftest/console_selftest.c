// SPDX-License-Identifier: GPL-2.0
/*
 * Loaded only by vm/console-selftest: puts one real kernel WARNING on the
 * console, to prove that vm/console-check catches what the kernel reports.
 * Refuses to stay loaded, so there is nothing to unload.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init po_console_selftest_init(void)
{
	WARN(1, "portowners console self-test: this WARNING is on purpose\n");
	return -ECANCELED;
}

module_init(po_console_selftest_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("A deliberate WARNING, for vm/console-selftest");
