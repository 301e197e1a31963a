// SPDX-License-Identifier: GPL-2.0
/*
 * portfs: a network namespace's port table as files (docs/portfs.md).
 *
 *	mount -t portfs none /dev/ports		(any source name)
 *	chown named /dev/ports/udp/53	# as: portctl chown named udp/53
 *
 * Nothing is stored here. A file is made when its name is looked up and
 * reads the live table each time it is asked (getattr), and a change builds
 * a new table and publishes it the way netlink does (po_table_publish(),
 * under pn->lock): the files and netlink are two views of one table, and a
 * change through either is seen through the other at once.
 *
 * The mode bits are authbind's: x for user, group, other means "may bind";
 * st_uid and st_gid are the rule's owners. What a rule cannot hold (r, w,
 * s, t bits, u+x with no user named, "any" beside an owner) is refused with
 * EINVAL rather than stored as something the bind hook would not enforce.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/inet.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/stat.h>
#include <linux/string.h>
#include <linux/user_namespace.h>
#include <net/ipv6.h>

#include "compat.h"
#include "po.h"

#define PO_FS_MAGIC 0x706f7274		/* "port" */

/* The mode bits that mean something: may bind, for user, group, other. */
#define PO_FS_XUSR 0100
#define PO_FS_XGRP 0010
#define PO_FS_XOTH 0001

/*
 * The longest name a lookup takes. The longest canonical one is 53 bytes:
 * [ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65534-65535.
 */
#define PO_FS_NAME_MAX 64

/*
 * readdir positions in a protocol's directory: 0 and 1 are . and ..; a rule
 * on every address is at 2 + its first port (3..65537), so a listing goes
 * on from the right place across a table swap; the i-th rule on one address
 * of the protocol is at PO_FS_POS_ADDR + i (a swap while a listing is
 * between two reads may skip or repeat one of those, as a directory changed
 * under a reader may).
 */
#define PO_FS_POS_ADDR (2 + 65536)

/* Inode numbers of the directories; every port's is above 65535. */
#define PO_FS_INO_ROOT 1
#define PO_FS_INO_PROTO 2	/* + enum po_proto */

static const char *const po_fs_protos[PO_NPROTO] = {
	[PO_TCP] = "tcp",
	[PO_UDP] = "udp",
	[PO_SCTP] = "sctp",
};

enum po_fs_kind {
	PO_FS_ROOT,
	PO_FS_PROTO,	/* tcp/, udp/, sctp/ */
	PO_FS_PORTS,	/* a file: one port, or a range */
};

/* What a file names: ports lo..hi of a protocol, on every address or one. */
struct po_fs_ports {
	u8 proto;		/* enum po_proto */
	bool on_addr;
	u16 lo;
	u16 hi;
	struct in6_addr addr;	/* on_addr: IPv6, or IPv4-mapped; else :: */
};

struct po_fs_inode {
	enum po_fs_kind kind;
	struct po_fs_ports ports;	/* proto for PO_FS_PROTO too */
	struct inode vfs;
};

/* The owners the table gives a file's ports; owner 0: none. */
struct po_fs_state {
	u8 owner;		/* PO_OWNER_UID | PO_OWNER_GID, or PO_OWNER_ANY */
	kuid_t uid;
	kgid_t gid;
};

static struct po_fs_inode *PO_FS_I(struct inode *inode)
{
	return container_of(inode, struct po_fs_inode, vfs);
}

/* The mount is the namespace's: its superblock holds a reference on it. */
static struct net *po_fs_net(const struct super_block *sb)
{
	return sb->s_fs_info;
}

static struct po_net *po_fs_pn(const struct super_block *sb)
{
	return po_net(po_fs_net(sb));
}

/*
 * "No owner" shows as the namespace's root, which is also the id that
 * takes an owner away: a container's root there, root outside.
 */
static kuid_t po_fs_root_uid(const struct super_block *sb)
{
	kuid_t uid = make_kuid(sb->s_user_ns, 0);

	return uid_valid(uid) ? uid : GLOBAL_ROOT_UID;
}

static kgid_t po_fs_root_gid(const struct super_block *sb)
{
	kgid_t gid = make_kgid(sb->s_user_ns, 0);

	return gid_valid(gid) ? gid : GLOBAL_ROOT_GID;
}

/*
 * An IPv6 address as portctl writes it (Python's ipaddress: RFC 5952, the
 * first longest run of two or more zero groups as ::). Not %pI6c: that
 * writes the last 32 bits of an ISATAP address as IPv4, so one address
 * would have two names. buf has room for 40 bytes.
 */
static int po_fs_ip6(char *buf, const struct in6_addr *a)
{
	int i, run = 0, best = -1, bestlen = 1, n = 0;

	for (i = 0; i < 8; i++) {
		run = a->s6_addr16[i] ? 0 : run + 1;
		if (run > bestlen) {
			bestlen = run;
			best = i - run + 1;
		}
	}
	for (i = 0; i < 8; i++) {
		if (i == best) {
			buf[n++] = ':';
			buf[n++] = ':';
			i += bestlen - 1;
			continue;
		}
		if (n && buf[n - 1] != ':')
			buf[n++] = ':';
		n += scnprintf(buf + n, 40 - n, "%x", ntohs(a->s6_addr16[i]));
	}
	buf[n] = '\0';
	return n;
}

/*
 * A file's name, as portctl names the rule: 80, 8000-8099, 127.0.0.1:53,
 * [::1]:53. buf has room for PO_FS_NAME_MAX + 1 bytes; returns the length.
 */
static int po_fs_name(const struct po_fs_ports *f, char *buf)
{
	const size_t size = PO_FS_NAME_MAX + 1;
	int n = 0;

	if (f->on_addr && ipv6_addr_v4mapped(&f->addr)) {
		n = scnprintf(buf, size, "%pI4:", &f->addr.s6_addr32[3]);
	} else if (f->on_addr) {
		buf[n++] = '[';
		n += po_fs_ip6(buf + n, &f->addr);
		n += scnprintf(buf + n, size - n, "]:");
	}
	if (f->lo == f->hi)
		n += scnprintf(buf + n, size - n, "%u", f->lo);
	else
		n += scnprintf(buf + n, size - n, "%u-%u", f->lo, f->hi);
	return n;
}

/*
 * The ports a name gives, or false when it is no canonical name: a lookup
 * finds only the names portctl prints, so one port has one file (080, +80,
 * 80-80, [::0:1]:53 or [::ffff:127.0.0.1]:53 name none), and no name means
 * 0.0.0.0 or :: (a rule on every address has no address).
 */
static bool po_fs_parse(u8 proto, const char *name, unsigned int len,
			struct po_fs_ports *f)
{
	char buf[PO_FS_NAME_MAX + 1], canon[PO_FS_NAME_MAX + 1];
	const char *ports = name, *end, *sep;
	struct po_where where;
	unsigned int plen;
	char *dash;
	__be32 v4;

	memset(f, 0, sizeof(*f));
	f->proto = proto;
	if (!len || len > PO_FS_NAME_MAX)
		return false;
	if (name[0] == '[') {
		sep = strnchr(name, len, ']');
		if (!sep || sep + 1 == name + len || sep[1] != ':' ||
		    !in6_pton(name + 1, sep - name - 1, f->addr.s6_addr, -1,
			      &end) || end != sep)
			return false;
		ports = sep + 2;
		f->on_addr = true;
	} else {
		sep = strnchr(name, len, ':');
		if (sep) {
			if (!in4_pton(name, sep - name, (u8 *)&v4, -1, &end) ||
			    end != sep)
				return false;
			ipv6_addr_set_v4mapped(v4, &f->addr);
			ports = sep + 1;
			f->on_addr = true;
		}
	}
	if (f->on_addr) {
		po_where_set(&where, &f->addr);
		if (where.kind != PO_AT_ADDR)
			return false;
	}

	plen = name + len - ports;
	if (!plen)
		return false;
	memcpy(buf, ports, plen);
	buf[plen] = '\0';
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	if (kstrtou16(buf, 10, &f->lo) || !f->lo)
		return false;
	f->hi = f->lo;
	if (dash && (kstrtou16(dash + 1, 10, &f->hi) || f->hi <= f->lo))
		return false;
	return po_fs_name(f, canon) == len && !memcmp(canon, name, len);
}

/*
 * The inode number of a file: stable for its name, from the protocol, the
 * ports, whether it is on an address and a hash of that address.
 * bits 0-15: first port, 16-31: last port (>= 1, so above the directories),
 * 32-33: protocol, 34: on an address, 35-58: the address's hash.
 */
static unsigned long po_fs_ino(const struct po_fs_ports *f)
{
	u64 ino = (u64)f->hi << 16 | f->lo | (u64)f->proto << 32;

	if (f->on_addr)
		ino |= BIT_ULL(34) |
		       (u64)(ipv6_addr_hash(&f->addr) & 0xffffff) << 35;
	return ino;
}

/* Index of the first rule of t's [lo, hi) that starts above port. */
static u32 po_fs_after(const struct po_table *t, bool on_addr, u32 lo, u32 hi,
		       u32 port)
{
	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;
		u16 first = on_addr ? t->arules[mid].r.lo : t->rules[mid].lo;

		if (first <= port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void po_fs_set_state(struct po_fs_state *st, const struct po_rule *r)
{
	st->owner = r ? r->owner & (PO_OWNER_UID | PO_OWNER_GID | PO_OWNER_ANY) : 0;
	st->uid = r ? r->uid : INVALID_UID;
	st->gid = r ? r->gid : INVALID_GID;
}

/*
 * What t says of a file's ports: the rule on its address (or on every
 * address) that holds them all, or none where no rule holds any of them.
 * Ports of a range file that are not all one rule's have no one state:
 * -ESTALE (the name was looked up before the table changed so).
 */
static int po_fs_state(const struct po_table *t, const struct po_fs_ports *f,
		       struct po_fs_state *st)
{
	u32 first, i;

	if (!f->on_addr) {
		/*
		 * Rules on every address never overlap: if the last one
		 * starting at or below hi ends before lo, so do all the
		 * others; if it does not, it is the one state only if it
		 * holds all of lo..hi.
		 */
		first = t->start[f->proto];
		i = po_fs_after(t, false, first, t->start[f->proto + 1], f->hi);
		if (i == first || t->rules[i - 1].hi < f->lo) {
			po_fs_set_state(st, NULL);
			return 0;
		}
		if (t->rules[i - 1].lo > f->lo || t->rules[i - 1].hi < f->hi)
			return -ESTALE;
		po_fs_set_state(st, &t->rules[i - 1]);
		return 0;
	}

	/* As po_decide(): maxhi bounds the walk back. */
	first = t->astart[f->proto];
	i = po_fs_after(t, true, first, t->astart[f->proto + 1], f->hi);
	for (; i > first && t->arules[i - 1].maxhi >= f->lo; i--) {
		const struct po_arule *a = &t->arules[i - 1];

		if (a->r.hi < f->lo || !ipv6_addr_equal(&a->addr, &f->addr))
			continue;
		/* Rules on one address never overlap: this is the only one. */
		if (a->r.lo > f->lo || a->r.hi < f->hi)
			return -ESTALE;
		po_fs_set_state(st, &a->r);
		return 0;
	}
	po_fs_set_state(st, NULL);
	return 0;
}

static int po_fs_read_state(const struct super_block *sb,
			    const struct po_fs_ports *f, struct po_fs_state *st)
{
	int err;

	rcu_read_lock();
	err = po_fs_state(rcu_dereference(po_fs_pn(sb)->table), f, st);
	rcu_read_unlock();
	return err;
}

static umode_t po_fs_mode(const struct po_fs_state *st)
{
	return (st->owner & PO_OWNER_UID ? PO_FS_XUSR : 0) |
	       (st->owner & PO_OWNER_GID ? PO_FS_XGRP : 0) |
	       (st->owner & PO_OWNER_ANY ? PO_FS_XOTH : 0);
}

/* The inode's own fields follow the table for permission checks on open. */
static void po_fs_inode_set(struct inode *inode, const struct po_fs_state *st)
{
	const struct super_block *sb = inode->i_sb;

	inode->i_mode = S_IFREG | po_fs_mode(st);
	inode->i_uid = st->owner & PO_OWNER_UID ? st->uid : po_fs_root_uid(sb);
	inode->i_gid = st->owner & PO_OWNER_GID ? st->gid : po_fs_root_gid(sb);
}

static bool po_fs_same(const struct po_fs_state *a, const struct po_fs_state *b)
{
	return a->owner == b->owner &&
	       (!(a->owner & PO_OWNER_UID) || uid_eq(a->uid, b->uid)) &&
	       (!(a->owner & PO_OWNER_GID) || gid_eq(a->gid, b->gid));
}

/*
 * A chown, chgrp or chmod of a file whose ports the table gives to cur:
 * the owners it asks for, or -EINVAL for what no rule can hold.
 *   chown to an id other than root: that owner, and no longer "any";
 *   chown to root: no user owner (likewise chgrp and the group).
 *   chmod: only x bits; u+x needs a user owner, g+x a group owner, o+x
 *   ("any user") stands alone; chmod 0 leaves no owner.
 */
static int po_fs_apply(const struct super_block *sb, const struct iattr *ia,
		       const struct po_fs_state *cur, struct po_fs_state *st)
{
	umode_t mode;

	*st = *cur;
	if (ia->ia_valid & ATTR_UID) {
		if (uid_eq(ia->ia_uid, po_fs_root_uid(sb))) {
			st->owner &= ~PO_OWNER_UID;
		} else {
			st->owner = (st->owner | PO_OWNER_UID) & ~PO_OWNER_ANY;
			st->uid = ia->ia_uid;
		}
	}
	if (ia->ia_valid & ATTR_GID) {
		if (gid_eq(ia->ia_gid, po_fs_root_gid(sb))) {
			st->owner &= ~PO_OWNER_GID;
		} else {
			st->owner = (st->owner | PO_OWNER_GID) & ~PO_OWNER_ANY;
			st->gid = ia->ia_gid;
		}
	}
	if (!(ia->ia_valid & ATTR_MODE))
		return 0;

	mode = ia->ia_mode & S_IALLUGO;
	if (mode & ~(PO_FS_XUSR | PO_FS_XGRP | PO_FS_XOTH))
		return -EINVAL;
	if ((mode & PO_FS_XOTH) && (mode & (PO_FS_XUSR | PO_FS_XGRP)))
		return -EINVAL;
	if (((mode & PO_FS_XUSR) && !(st->owner & PO_OWNER_UID)) ||
	    ((mode & PO_FS_XGRP) && !(st->owner & PO_OWNER_GID)))
		return -EINVAL;
	st->owner = (mode & PO_FS_XUSR ? PO_OWNER_UID : 0) |
		    (mode & PO_FS_XGRP ? PO_OWNER_GID : 0) |
		    (mode & PO_FS_XOTH ? PO_OWNER_ANY : 0);
	return 0;
}

/*
 * Give a file's ports to st (no owner: release them), as one new table
 * published the way netlink publishes one. A rule that holds more ports
 * keeps the others (it is split). Under pn->lock.
 */
static int po_fs_publish(struct po_net *pn, const struct po_fs_ports *f,
			 const struct po_fs_state *st)
{
	const struct po_table *old;
	struct po_arule *rules, del = {};
	u32 n, a, b;
	int err;

	old = rcu_dereference_protected(pn->table, lockdep_is_held(&pn->lock));
	/* po_table_release() needs room for one more rule, and st one. */
	rules = kvmalloc_array((size_t)old->count + 2, sizeof(*rules),
			       GFP_KERNEL_ACCOUNT);
	if (!rules)
		return -ENOMEM;
	del.r.proto = f->proto;
	del.r.lo = f->lo;
	del.r.hi = f->hi;
	del.addr = f->addr;
	n = po_table_release(old, rules, &del, 1);
	if (st->owner) {
		memset(&rules[n], 0, sizeof(rules[n]));
		rules[n].r = del.r;
		rules[n].r.owner = st->owner;
		rules[n].r.uid = st->owner & PO_OWNER_UID ? st->uid : INVALID_UID;
		rules[n].r.gid = st->owner & PO_OWNER_GID ? st->gid : INVALID_GID;
		rules[n].addr = f->addr;
		n++;
	}
	err = po_table_publish(pn, rules, n, NULL, &a, &b);
	kvfree(rules);
	return err;
}

/*
 * Changing the table is for administrators of the namespace, whoever owns
 * the file: a port's owner may bind it, not give it away.
 */
static int po_fs_may_change(const struct super_block *sb)
{
	return ns_capable(po_fs_net(sb)->user_ns, CAP_NET_ADMIN) ? 0 : -EPERM;
}

/*
 * What a setattr may carry: owners, mode, and what the VFS adds to them
 * (ctime, the kill-suid bits of a chown, ATTR_FORCE, ATTR_FILE). A port has
 * no size and no times to set.
 */
#define PO_FS_ATTR_OK (ATTR_UID | ATTR_GID | ATTR_MODE | ATTR_CTIME | \
		       ATTR_KILL_SUID | ATTR_KILL_SGID | ATTR_KILL_PRIV | \
		       ATTR_FORCE | ATTR_FILE)

static int po_fs_setattr(PO_IDMAP *idmap, struct dentry *dentry,
			 struct iattr *ia)
{
	struct inode *inode = d_inode(dentry);
	const struct po_fs_ports *f = &PO_FS_I(inode)->ports;
	struct po_net *pn = po_fs_pn(inode->i_sb);
	struct po_fs_state cur, st;
	int err;

	err = po_fs_may_change(inode->i_sb);
	if (err)
		return err;
	if (ia->ia_valid & ~PO_FS_ATTR_OK)
		return -EPERM;

	mutex_lock(&pn->lock);
	err = po_fs_state(rcu_dereference_protected(pn->table,
						    lockdep_is_held(&pn->lock)),
			  f, &cur);
	if (!err)
		err = po_fs_apply(inode->i_sb, ia, &cur, &st);
	/* Nothing changes: nothing is published, no generation spent. */
	if (!err && !po_fs_same(&cur, &st))
		err = po_fs_publish(pn, f, &st);
	mutex_unlock(&pn->lock);
	if (!err)
		po_fs_inode_set(inode, &st);
	return err;
}

/* Directories are fixed: tcp/, udp/ and sctp/, owned by the namespace. */
static int po_fs_dir_setattr(PO_IDMAP *idmap, struct dentry *dentry,
			     struct iattr *ia)
{
	return -EPERM;
}

static int po_fs_getattr(PO_IDMAP *idmap, const struct path *path,
			 struct kstat *stat, u32 request_mask,
			 unsigned int query_flags)
{
	struct inode *inode = d_inode(path->dentry);
	const struct super_block *sb = inode->i_sb;
	struct po_fs_state st;
	int err;

	/* Read live: a change through netlink shows at once. */
	err = po_fs_read_state(sb, &PO_FS_I(inode)->ports, &st);
	if (err)
		return err;
	po_generic_fillattr(idmap, request_mask, inode, stat);
	stat->mode = S_IFREG | po_fs_mode(&st);
	stat->uid = st.owner & PO_OWNER_UID ? st.uid : po_fs_root_uid(sb);
	stat->gid = st.owner & PO_OWNER_GID ? st.gid : po_fs_root_gid(sb);
	return 0;
}

/* rm: release the ports, whatever owns them (all of a range's). */
static int po_fs_unlink(struct inode *dir, struct dentry *dentry)
{
	const struct po_fs_ports *f = &PO_FS_I(d_inode(dentry))->ports;
	struct po_net *pn = po_fs_pn(dir->i_sb);
	struct po_fs_state cur, none = {};
	int err;

	err = po_fs_may_change(dir->i_sb);
	if (err)
		return err;
	mutex_lock(&pn->lock);
	err = po_fs_state(rcu_dereference_protected(pn->table,
						    lockdep_is_held(&pn->lock)),
			  f, &cur);
	if (err || cur.owner)
		err = po_fs_publish(pn, f, &none);
	mutex_unlock(&pn->lock);
	if (!err)
		po_fs_inode_set(d_inode(dentry), &none);
	return err;
}

/*
 * rm needs write on the directory before ->unlink() is asked: let it
 * through, so that the one check of a change is po_fs_may_change() (EPERM,
 * CAP_NET_ADMIN), not the directory's mode. No other change of a directory
 * has an operation here.
 */
static int po_fs_dir_permission(PO_IDMAP *idmap, struct inode *inode, int mask)
{
	if (mask & MAY_WRITE)
		return 0;
	return generic_permission(idmap, inode, mask);
}

static const struct file_operations po_fs_file_fops = {
	.llseek = noop_llseek,
};

static const struct inode_operations po_fs_file_iops = {
	.setattr = po_fs_setattr,
	.getattr = po_fs_getattr,
};

static struct inode *po_fs_new_inode(struct super_block *sb,
				     enum po_fs_kind kind, unsigned long ino)
{
	struct inode *inode = new_inode(sb);

	if (!inode)
		return NULL;
	PO_FS_I(inode)->kind = kind;
	inode->i_ino = ino;
	po_inode_init_ts(inode);
	return inode;
}

static struct inode *po_fs_file_inode(struct super_block *sb,
				      const struct po_fs_ports *f)
{
	struct inode *inode = po_fs_new_inode(sb, PO_FS_PORTS, po_fs_ino(f));
	struct po_fs_state st;

	if (!inode)
		return NULL;
	PO_FS_I(inode)->ports = *f;
	/* Ports not all one rule's: no owner here, and getattr says -ESTALE. */
	if (po_fs_read_state(sb, f, &st))
		po_fs_set_state(&st, NULL);
	po_fs_inode_set(inode, &st);
	inode->i_op = &po_fs_file_iops;
	inode->i_fop = &po_fs_file_fops;
	return inode;
}

static struct inode *po_fs_dir_inode(struct super_block *sb,
				     enum po_fs_kind kind, int proto);

/* Every port can be named, owned or not; readdir lists only the rules. */
static struct dentry *po_fs_lookup(struct inode *dir, struct dentry *dentry,
				   unsigned int flags)
{
	struct po_fs_inode *di = PO_FS_I(dir);
	struct inode *inode = NULL;
	struct po_fs_ports f;
	int p;

	if (dentry->d_name.len > PO_FS_NAME_MAX)
		return ERR_PTR(-ENAMETOOLONG);
	if (di->kind == PO_FS_ROOT) {
		for (p = 0; p < PO_NPROTO; p++)
			if (!strcmp(dentry->d_name.name, po_fs_protos[p]))
				break;
		if (p == PO_NPROTO)
			goto none;
		inode = po_fs_dir_inode(dir->i_sb, PO_FS_PROTO, p);
	} else if (po_fs_parse(di->ports.proto, dentry->d_name.name,
			       dentry->d_name.len, &f)) {
		inode = po_fs_file_inode(dir->i_sb, &f);
	} else {
		goto none;
	}
	if (!inode)
		return ERR_PTR(-ENOMEM);
	return d_splice_alias(inode, dentry);
none:
	/* ENOENT; the negative dentry is not kept either (po_fs_dops). */
	d_add(dentry, NULL);
	return NULL;
}

/* The entry of a protocol's directory at pos or after; false: none. */
static bool po_fs_entry(const struct po_table *t, u8 proto, loff_t pos,
			struct po_fs_ports *f, loff_t *at)
{
	u32 i, first;

	memset(f, 0, sizeof(*f));
	f->proto = proto;
	if (pos < PO_FS_POS_ADDR) {
		first = t->start[proto];
		/* The first rule starting at pos - 2 or above. */
		i = pos > 2 ? po_fs_after(t, false, first, t->start[proto + 1],
					  pos - 3) : first;
		if (i < t->start[proto + 1]) {
			f->lo = t->rules[i].lo;
			f->hi = t->rules[i].hi;
			*at = 2 + f->lo;
			return true;
		}
		pos = PO_FS_POS_ADDR;
	}
	if (pos - PO_FS_POS_ADDR >= t->astart[proto + 1] - t->astart[proto])
		return false;
	i = t->astart[proto] + (pos - PO_FS_POS_ADDR);
	f->on_addr = true;
	f->addr = t->arules[i].addr;
	f->lo = t->arules[i].r.lo;
	f->hi = t->arules[i].r.hi;
	*at = pos;
	return true;
}

static int po_fs_readdir(struct file *file, struct dir_context *ctx)
{
	struct inode *dir = file_inode(file);
	struct po_fs_inode *di = PO_FS_I(dir);
	struct po_net *pn = po_fs_pn(dir->i_sb);
	char name[PO_FS_NAME_MAX + 1];
	struct po_fs_ports f;
	loff_t at;
	bool found;
	int p;

	if (!dir_emit_dots(file, ctx))
		return 0;
	if (di->kind == PO_FS_ROOT) {
		/* Compared as loff_t: a seek may have put pos anywhere. */
		for (; ctx->pos < 2 + PO_NPROTO; ctx->pos++) {
			p = ctx->pos - 2;
			if (!dir_emit(ctx, po_fs_protos[p],
				      strlen(po_fs_protos[p]),
				      PO_FS_INO_PROTO + p, DT_DIR))
				break;
		}
		return 0;
	}
	for (;;) {
		/* The name is made under RCU, emitted (which may fault) after. */
		rcu_read_lock();
		found = po_fs_entry(rcu_dereference(pn->table),
				    di->ports.proto, ctx->pos, &f, &at);
		rcu_read_unlock();
		if (!found)
			return 0;
		ctx->pos = at;
		if (!dir_emit(ctx, name, po_fs_name(&f, name), po_fs_ino(&f),
			      DT_REG))
			return 0;
		ctx->pos = at + 1;
	}
}

static const struct file_operations po_fs_dir_fops = {
	.read = generic_read_dir,
	.iterate_shared = po_fs_readdir,
	.llseek = generic_file_llseek,
};

static const struct inode_operations po_fs_root_iops = {
	.lookup = po_fs_lookup,
	.setattr = po_fs_dir_setattr,
};

static const struct inode_operations po_fs_proto_iops = {
	.lookup = po_fs_lookup,
	.unlink = po_fs_unlink,
	.permission = po_fs_dir_permission,
	.setattr = po_fs_dir_setattr,
};

static struct inode *po_fs_dir_inode(struct super_block *sb,
				     enum po_fs_kind kind, int proto)
{
	bool root = kind == PO_FS_ROOT;
	struct inode *inode;

	inode = po_fs_new_inode(sb, kind, root ? PO_FS_INO_ROOT :
					     PO_FS_INO_PROTO + proto);
	if (!inode)
		return NULL;
	PO_FS_I(inode)->ports.proto = proto;
	inode->i_mode = S_IFDIR | 0755;
	inode->i_uid = po_fs_root_uid(sb);
	inode->i_gid = po_fs_root_gid(sb);
	set_nlink(inode, root ? 2 + PO_NPROTO : 2);
	inode->i_op = root ? &po_fs_root_iops : &po_fs_proto_iops;
	inode->i_fop = &po_fs_dir_fops;
	return inode;
}

/* Charged to the memcg of whoever looks a name up. */
static struct inode *po_fs_alloc_inode(struct super_block *sb)
{
	struct po_fs_inode *pi = kzalloc(sizeof(*pi), GFP_KERNEL_ACCOUNT);

	if (!pi)
		return NULL;
	inode_init_once(&pi->vfs);
	return &pi->vfs;
}

/* Called after an RCU grace period: po_fs_exit() waits for the last. */
static void po_fs_free_inode(struct inode *inode)
{
	kfree(PO_FS_I(inode));
}

static const struct super_operations po_fs_sops = {
	.alloc_inode = po_fs_alloc_inode,
	.free_inode = po_fs_free_inode,
	.statfs = simple_statfs,
};

/* No dentry is kept: every lookup asks the table again. */
static const struct dentry_operations po_fs_dops = {
	.d_delete = always_delete_dentry,
};

static int po_fs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct inode *root;

	/*
	 * First, before anything can fail: po_fs_kill_sb() puts it, and runs
	 * for a superblock whose fill failed too.
	 */
	get_net(po_fs_net(sb));
	sb->s_magic = PO_FS_MAGIC;
	sb->s_op = &po_fs_sops;
	sb->s_time_gran = 1;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_iflags |= SB_I_NOEXEC | SB_I_NODEV;
	po_set_default_d_op(sb, &po_fs_dops);
	root = po_fs_dir_inode(sb, PO_FS_ROOT, 0);
	if (!root)
		return -ENOMEM;
	sb->s_root = d_make_root(root);
	return sb->s_root ? 0 : -ENOMEM;
}

/* One superblock per network namespace: the mounter's. */
static int po_fs_get_tree(struct fs_context *fc)
{
	return get_tree_keyed(fc, po_fs_fill_super, fc->net_ns);
}

static const struct fs_context_operations po_fs_context_ops = {
	.get_tree = po_fs_get_tree,
};

/*
 * Mounting needs CAP_SYS_ADMIN over the user namespace that owns the
 * network namespace (FS_USERNS_MOUNT): a container's root mounts his own,
 * and ids in the files are seen from there.
 */
static int po_fs_init_fs_context(struct fs_context *fc)
{
	put_user_ns(fc->user_ns);
	fc->user_ns = get_user_ns(fc->net_ns->user_ns);
	fc->ops = &po_fs_context_ops;
	return 0;
}

static void po_fs_kill_sb(struct super_block *sb)
{
	struct net *net = po_fs_net(sb);

	/* Off the list of superblocks first: no mount finds it by net. */
	kill_anon_super(sb);
	put_net(net);
}

static struct file_system_type po_fs_type = {
	.owner = THIS_MODULE,
	.name = "portfs",
	.init_fs_context = po_fs_init_fs_context,
	.kill_sb = po_fs_kill_sb,
	.fs_flags = FS_USERNS_MOUNT,
};

int __init po_fs_init(void)
{
	return register_filesystem(&po_fs_type);
}

void po_fs_exit(void)
{
	unregister_filesystem(&po_fs_type);
	/* Inodes are freed after a grace period, by this module's code. */
	rcu_barrier();
}
