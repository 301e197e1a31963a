/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The architecture glue of the bind hooks, all of it: reading and changing
 * a probed function's arguments at its entry, and making it return at once.
 */
#ifndef _PO_ARCH_H
#define _PO_ARCH_H

#include <linux/kprobes.h>
#include <linux/ptrace.h>
#include <asm/ibt.h>

#include "compat.h"

#ifndef CONFIG_X86_64
#error "portowners: the bind hooks have glue for x86-64 only so far"
#endif

/* A function that only returns; a probe points the probed call at it. */
void po_just_return(void);

static inline unsigned long po_arg(struct pt_regs *regs, unsigned int n)
{
	return regs_get_kernel_argument(regs, n);
}

/* The fourth argument (flags of __inet_bind and __inet6_bind). */
static inline void po_set_arg4(struct pt_regs *regs, unsigned long val)
{
	regs->cx = val;
}

/*
 * Make the probed function return rc without running, as
 * bpf_override_return() does; the kprobe pre-handler then returns 1.
 */
static inline void po_override_return(struct pt_regs *regs, long rc)
{
	regs->ax = rc;
	instruction_pointer_set(regs, (unsigned long)po_just_return);
}

/*
 * Make the probed function's call run fn instead, with the same arguments
 * and return address, as a livepatch redirect does; the pre-handler then
 * returns 1. fn must have the probed function's prototype.
 */
static inline void po_redirect(struct pt_regs *regs, void *fn)
{
	instruction_pointer_set(regs, (unsigned long)fn);
}

/* The function a probe at its entry sits on (kprobes skips an ENDBR). */
static inline void *po_kprobe_function(const struct kprobe *kp)
{
	unsigned long addr = (unsigned long)kp->addr;

	if (IS_ENABLED(CONFIG_X86_KERNEL_IBT) &&
	    po_is_endbr(*(u32 *)(addr - ENDBR_INSN_SIZE)))
		addr -= ENDBR_INSN_SIZE;
	return (void *)addr;
}

#endif /* _PO_ARCH_H */
