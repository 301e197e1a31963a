/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every difference between the kernels portowners builds for, in one place:
 * Debian 12's 6.1 (and its PREEMPT_RT flavour), 6.12 and 7.2. Each entry
 * names the kernel change it follows: the version and what changed.
 */
#ifndef _PO_COMPAT_H
#define _PO_COMPAT_H

#include <linux/dcache.h>
#include <linux/fs.h>
#include <linux/ftrace.h>
#include <linux/objtool.h>
#include <linux/slab.h>
#include <linux/version.h>

/*
 * 6.12, "mm: kvmalloc: align kvrealloc() with krealloc()": kvrealloc() lost
 * its old-size argument, kvrealloc(p, size, flags); the allocator knows the
 * old size itself.
 */
#if KERNEL_VERSION(6, 12, 0) <= LINUX_VERSION_CODE
#define po_kvrealloc(p, oldsize, newsize, flags) kvrealloc(p, newsize, flags)
#else
#define po_kvrealloc(p, oldsize, newsize, flags) \
	kvrealloc(p, oldsize, newsize, flags)
#endif

/*
 * 6.15, "objtool: Generic annotation infrastructure": ANNOTATE_NOENDBR became
 * ASM_ANNOTATE(ANNOTYPE_NOENDBR), which no longer ends with a newline, so an
 * asm() string that goes on after it must end the line itself. An empty line
 * is harmless on the older kernels, so this needs no version test.
 */
#define PO_ANNOTATE_NOENDBR ANNOTATE_NOENDBR "\n"

/*
 * 6.15, the FineIBT-BHI rework of arch/x86/include/asm/ibt.h: is_endbr()
 * became an out-of-line is_endbr(u32 *) that reads the instruction itself,
 * and the test of a value it used to be is now the inline __is_endbr(u32).
 * Debian's 6.12 has the old one, its 7.2 the new (the version is upstream's,
 * read from its history, not checked on a 6.15 build).
 */
#if KERNEL_VERSION(6, 15, 0) <= LINUX_VERSION_CODE
#define po_is_endbr(insn) __is_endbr(insn)
#else
#define po_is_endbr(insn) is_endbr(insn)
#endif

/*
 * The saved registers of an ftrace_regs: its layout became private to the
 * architecture, behind arch_ftrace_regs(), in 6.13 ("ftrace: Consolidate
 * ftrace_regs accessor functions for archs using pt_regs"; Debian's 6.12
 * has it backported), so test for the accessor itself.
 */
#ifdef arch_ftrace_regs
#define po_fregs_regs(fregs) (&arch_ftrace_regs(fregs)->regs)
#else
#define po_fregs_regs(fregs) (&(fregs)->regs)
#endif

/*
 * 6.3, "fs: port ->setattr() to pass mnt_idmap" (and ->getattr(),
 * ->permission(), generic_permission(), generic_fillattr()): the inode
 * operations take a struct mnt_idmap where they took the mount's struct
 * user_namespace. portfs allows no idmapped mount, so it only passes it on.
 */
#if KERNEL_VERSION(6, 3, 0) <= LINUX_VERSION_CODE
#define PO_IDMAP struct mnt_idmap
#else
#define PO_IDMAP struct user_namespace
#endif

/*
 * 6.6, "fs: pass the request_mask to generic_fillattr": it gained the
 * statx request mask as its second argument.
 */
#if KERNEL_VERSION(6, 6, 0) <= LINUX_VERSION_CODE
#define po_generic_fillattr(idmap, mask, inode, stat) \
	generic_fillattr(idmap, mask, inode, stat)
#else
#define po_generic_fillattr(idmap, mask, inode, stat) \
	generic_fillattr(idmap, inode, stat)
#endif

/*
 * An inode's three times set to now. 6.6, "fs: add ctime accessors
 * infrastructure", hid i_ctime behind inode_set_ctime_current(); 6.7,
 * "fs: new accessor methods for atime and mtime", did so for the other two
 * and added simple_inode_init_ts() for the three at once.
 */
static inline void po_inode_init_ts(struct inode *inode)
{
#if KERNEL_VERSION(6, 7, 0) <= LINUX_VERSION_CODE
	simple_inode_init_ts(inode);
#elif KERNEL_VERSION(6, 6, 0) <= LINUX_VERSION_CODE
	inode->i_atime = inode_set_ctime_current(inode);
	inode->i_mtime = inode->i_atime;
#else
	inode->i_atime = current_time(inode);
	inode->i_mtime = inode->i_atime;
	inode->i_ctime = inode->i_atime;
#endif
}

/*
 * 6.17, "new helper: set_default_d_op()": a superblock's default dentry
 * operations are set through it; sb->s_d_op became private to the VFS.
 */
static inline void po_set_default_d_op(struct super_block *sb,
				       const struct dentry_operations *ops)
{
#if KERNEL_VERSION(6, 17, 0) <= LINUX_VERSION_CODE
	set_default_d_op(sb, ops);
#else
	sb->s_d_op = ops;
#endif
}

#endif /* _PO_COMPAT_H */
