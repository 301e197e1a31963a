// SPDX-License-Identifier: GPL-2.0
/* As arch/x86/lib/error-inject.c, whose just_return_func is not exported. */
#include <linux/linkage.h>
#include <linux/objtool.h>

#include "arch.h"
#include "compat.h"

asm(".text\n"
	".type po_just_return, @function\n"
	".globl po_just_return\n"
	"po_just_return:\n"
		PO_ANNOTATE_NOENDBR
		ASM_RET
	".size po_just_return, .-po_just_return\n"
);
