/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The architecture glue of the bind hooks, all of it: reading and changing
 * a hooked function's arguments at its entry, and making it return at once.
 * The registers are those ftrace saves at a function's entry without
 * FTRACE_OPS_FL_SAVE_REGS (x86-64 has DYNAMIC_FTRACE_WITH_ARGS): the
 * argument registers, %rax, the instruction pointer and the stack pointer,
 * all of which ftrace_caller restores from them, as livepatch relies on.
 */
#ifndef _PO_ARCH_H
#define _PO_ARCH_H

#include <linux/ftrace.h>
#include <linux/ptrace.h>
#include <asm/ibt.h>

#include "compat.h"

#ifndef CONFIG_X86_64
#error "portowners: the bind hooks have glue for x86-64 only so far"
#endif
#ifndef CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS
#error "portowners: the bind hooks need DYNAMIC_FTRACE_WITH_ARGS (x86-64 has it since 5.11)"
#endif

/* No FTRACE_OPS_FL_SAVE_REGS: po_fregs_regs() has all the hooks use. */
#define PO_FTRACE_FL_REGS 0

/* A function that only returns; a denial points the hooked call at it. */
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
 * Make the hooked function return rc without running, as
 * bpf_override_return() does.
 */
static inline void po_override_return(struct pt_regs *regs, long rc)
{
	regs->ax = rc;
	instruction_pointer_set(regs, (unsigned long)po_just_return);
}

/*
 * Make the hooked function's call run fn instead, with the same arguments
 * and return address, as a livepatch redirect does. fn must have the
 * hooked function's prototype.
 */
static inline void po_redirect(struct pt_regs *regs, void *fn)
{
	instruction_pointer_set(regs, (unsigned long)fn);
}

/*
 * The start of the function whose ftrace site is at ip: on IBT kernels the
 * site follows an ENDBR64, which an indirect call must land on.
 */
static inline void *po_function_start(unsigned long ip)
{
	if (IS_ENABLED(CONFIG_X86_KERNEL_IBT) &&
	    po_is_endbr(*(u32 *)(ip - ENDBR_INSN_SIZE)))
		ip -= ENDBR_INSN_SIZE;
	return (void *)ip;
}

#endif /* _PO_ARCH_H */
