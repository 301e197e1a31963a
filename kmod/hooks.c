// SPDX-License-Identifier: GPL-2.0
/*
 * The bind hooks. Loadable modules cannot register LSM hooks, so two
 * kprobes do the work (docs/design.md says why these and not others):
 *
 * - DENY at security_socket_bind(), which every bind(2) passes: for a bind
 *   the table refuses, the probe makes the function return -EACCES at once.
 * - GRANT at __inet_bind() and __inet6_bind(): for a bind the table grants,
 *   the probe sets BIND_NO_CAP_NET_BIND_SERVICE in their flags, the switch a
 *   cgroup bind program flips, so no credentials are touched.
 *
 * Handlers run with preemption disabled: they take no lock, allocate
 * nothing, and decide under rcu_read_lock().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ftrace.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/kprobes.h>
#include <linux/net.h>
#include <linux/ratelimit.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <net/inet_common.h>
#include <net/inet_sock.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/l3mdev.h>
#include <net/route.h>
#include <net/sock.h>

#include "arch.h"
#include "po.h"

/* The grant hook reads the port without knowing the family. */
static_assert(offsetof(struct sockaddr_in, sin_port) ==
	      offsetof(struct sockaddr_in6, sin6_port));

/* The table slot of an inet socket, or -1 for sockets we never touch. */
static int po_sock_proto(const struct sock *sk)
{
	if (sk->sk_family != AF_INET && sk->sk_family != AF_INET6)
		return -1;
	if (sk->sk_type == SOCK_RAW)
		return -1;
	switch (sk->sk_protocol) {
	case IPPROTO_TCP:
	case IPPROTO_MPTCP:
		return PO_TCP;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
		return PO_UDP;
	case IPPROTO_SCTP:
		return PO_SCTP;
	}
	return -1;
}

/*
 * The port of a bind the kernel would go on to check, or 0. Malformed
 * addresses are left to the kernel, which fails them with the errno it
 * always gives (inet_bind(), inet6_bind(), sctp_bind()).
 */
static u16 po_bind_port(const struct sock *sk, const struct sockaddr *uaddr,
			int addrlen)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)uaddr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)uaddr;

	if (addrlen < (int)offsetofend(struct sockaddr, sa_family))
		return 0;
	if (sk->sk_protocol == IPPROTO_SCTP) {
		if (uaddr->sa_family == AF_INET &&
		    addrlen >= (int)sizeof(*sin))
			return ntohs(sin->sin_port);
		if (uaddr->sa_family == AF_INET6 && sk->sk_family == AF_INET6 &&
		    addrlen >= (int)sizeof(*sin6))
			return ntohs(sin6->sin6_port);
		return 0;
	}
	if (sk->sk_family == AF_INET) {
		if (addrlen < (int)sizeof(*sin))
			return 0;
		if (sin->sin_family != AF_INET &&
		    (sin->sin_family != AF_UNSPEC ||
		     sin->sin_addr.s_addr != htonl(INADDR_ANY)))
			return 0;
		return ntohs(sin->sin_port);
	}
	if (addrlen < SIN6_LEN_RFC2133 || sin6->sin6_family != AF_INET6)
		return 0;
	if ((ipv6_addr_type(&sin6->sin6_addr) & IPV6_ADDR_MULTICAST) &&
	    sk->sk_type == SOCK_STREAM)
		return 0;
	return ntohs(sin6->sin6_port);
}

/*
 * __inet_bind() fails a non-local IPv4 address with EADDRNOTAVAIL before it
 * looks at the port; a denial must not change that errno.
 */
static bool po_inet_addr_ok(struct sock *sk, const struct sockaddr *uaddr)
{
	__be32 addr = ((const struct sockaddr_in *)uaddr)->sin_addr.s_addr;
	struct net *net = sock_net(sk);
	u32 tb_id;

	if (sk->sk_family != AF_INET || sk->sk_protocol == IPPROTO_SCTP)
		return true;
	tb_id = l3mdev_fib_table_by_index(net, sk->sk_bound_dev_if) ? :
		RT_TABLE_LOCAL;
	return inet_addr_valid_or_nonlocal(net, inet_sk(sk), addr,
					   inet_addr_type_table(net, addr, tb_id));
}

static void po_current_subject(struct po_subject *who)
{
	const struct cred *cred = current_cred();

	who->euid = cred->euid;
	who->egid = cred->egid;
	who->groups = cred->group_info;
}

static const char *const po_proto_names[PO_NPROTO] = {
	[PO_TCP] = "tcp", [PO_UDP] = "udp", [PO_SCTP] = "sctp",
};

static DEFINE_RATELIMIT_STATE(po_log_rs, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

static void po_log_denial(const struct po_rule *r, u16 port)
{
	const struct cred *cred = current_cred();
	char owner[32] = "";
	int n = 0;

	if (!__ratelimit(&po_log_rs))
		return;
	if (r->owner & PO_OWNER_UID)
		n = scnprintf(owner, sizeof(owner), " uid %u",
			      from_kuid(&init_user_ns, r->uid));
	if (r->owner & PO_OWNER_GID)
		scnprintf(owner + n, sizeof(owner) - n, " gid %u",
			  from_kgid(&init_user_ns, r->gid));
	pr_notice("denied %s/%u to uid %u (%s[%d]): owned by%s\n",
		  po_proto_names[r->proto], port,
		  from_kuid(&init_user_ns, cred->euid), current->comm,
		  task_pid_nr(current), owner);
}

/* security_socket_bind(struct socket *sock, struct sockaddr *address, int addrlen) */
static int po_deny_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct socket *sock = (struct socket *)po_arg(regs, 0);
	struct sockaddr *uaddr = (struct sockaddr *)po_arg(regs, 1);
	int addrlen = (int)po_arg(regs, 2);
	enum portowners_verdict verdict;
	const struct po_rule *rule;
	struct po_subject who;
	const struct po_table *t;
	struct sock *sk = sock->sk;
	struct po_net *pn;
	int proto, ret = 0;
	u16 port;

	/*
	 * Not sk->sk_kern_sock: MPTCP binds its kernel-made subflow from the
	 * user's own context.
	 */
	if (!READ_ONCE(po_rules_anywhere) || current->flags & PF_KTHREAD || !sk)
		return 0;
	proto = po_sock_proto(sk);
	if (proto < 0)
		return 0;
	port = po_bind_port(sk, uaddr, addrlen);
	if (!port)
		return 0;

	pn = po_net(sock_net(sk));
	rcu_read_lock();
	t = rcu_dereference(pn->table);
	po_current_subject(&who);
	verdict = po_decide(t, proto, port, &who, &rule);
	if (verdict == PORTOWNERS_VERDICT_GRANT) {
		this_cpu_inc(pn->stats->granted);
	} else if (verdict == PORTOWNERS_VERDICT_DENY) {
		if (READ_ONCE(po_root_exempt) &&
		    ns_capable_noaudit(sock_net(sk)->user_ns,
				       CAP_NET_BIND_SERVICE))
			goto out;
		if (!po_inet_addr_ok(sk, uaddr))
			goto out;
		this_cpu_inc(pn->stats->denied);
		po_log_denial(rule, port);
		po_override_return(regs, -EACCES);
		ret = 1;
	}
out:
	rcu_read_unlock();
	return ret;
}

NOKPROBE_SYMBOL(po_deny_pre);

/* __inet_bind() and __inet6_bind(): (sk, uaddr, addr_len, u32 flags) */
static int po_grant_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)po_arg(regs, 0);
	struct sockaddr_in *sin = (struct sockaddr_in *)po_arg(regs, 1);
	u32 flags = (u32)po_arg(regs, 3);
	const struct po_rule *rule;
	struct po_subject who;
	struct po_net *pn;
	bool grant;
	int proto;
	u16 port;

	/* A BPF program's own bind() keeps the rules it was given. */
	if (!READ_ONCE(po_rules_anywhere) ||
	    flags & (BIND_FROM_BPF | BIND_NO_CAP_NET_BIND_SERVICE))
		return 0;
	if (current->flags & PF_KTHREAD)
		return 0;
	proto = po_sock_proto(sk);
	port = ntohs(sin->sin_port);
	if (proto < 0 || !port ||
	    !inet_port_requires_bind_service(sock_net(sk), port))
		return 0;

	pn = po_net(sock_net(sk));
	po_current_subject(&who);
	rcu_read_lock();
	grant = po_decide(rcu_dereference(pn->table), proto, port, &who,
			  &rule) == PORTOWNERS_VERDICT_GRANT;
	rcu_read_unlock();
	if (grant)
		po_set_arg4(regs, flags | BIND_NO_CAP_NET_BIND_SERVICE);
	return 0;
}

NOKPROBE_SYMBOL(po_grant_pre);

static struct kprobe po_probes[] = {
	{ .symbol_name = "security_socket_bind", .pre_handler = po_deny_pre },
	{ .symbol_name = "__inet_bind", .pre_handler = po_grant_pre },
	{ .symbol_name = "__inet6_bind", .pre_handler = po_grant_pre },
};

/*
 * The probes sit at function entries, so they run on ftrace, and
 * `sysctl kernel.ftrace_enabled=0` would switch them off: the hooks would
 * fail open. A permanent ftrace_ops, as livepatch registers, makes that
 * sysctl fail with EBUSY while the module is loaded. It traces only
 * po_ftrace_anchor(), which nothing calls, so it costs no bind anything.
 */
static noinline void __used po_ftrace_anchor(void)
{
	barrier();
}

static void po_ftrace_nop(unsigned long ip, unsigned long parent_ip,
			  struct ftrace_ops *op, struct ftrace_regs *fregs)
{
}

static struct ftrace_ops po_pin_ops = {
	.func = po_ftrace_nop,
	.flags = FTRACE_OPS_FL_PERMANENT,
};

static int __init po_pin_ftrace(void)
{
	int err;

	err = ftrace_set_filter_ip(&po_pin_ops, (unsigned long)po_ftrace_anchor,
				   0, 0);
	if (!err)
		err = register_ftrace_function(&po_pin_ops);
	if (err == -EBUSY)
		pr_err("kernel.ftrace_enabled is 0, so the bind hooks could not run: not loading\n");
	else if (err)
		pr_err("cannot pin ftrace on (error %d): not loading\n", err);
	if (err)
		ftrace_free_filter(&po_pin_ops);
	return err;
}

static void po_unpin_ftrace(void)
{
	unregister_ftrace_function(&po_pin_ops);
	ftrace_free_filter(&po_pin_ops);
}

int __init po_hooks_init(void)
{
	int i, err;

	err = po_pin_ftrace();
	if (err)
		return err;
	for (i = 0; i < ARRAY_SIZE(po_probes); i++) {
		err = register_kprobe(&po_probes[i]);
		if (err) {
			/* Fail closed: half the hooks would enforce half the rules. */
			pr_err("cannot probe %s (error %d): not loading\n",
			       po_probes[i].symbol_name, err);
			while (i--)
				unregister_kprobe(&po_probes[i]);
			synchronize_rcu_tasks();
			po_unpin_ftrace();
			return err;
		}
	}
	return 0;
}

void po_hooks_exit(void)
{
	struct kprobe *kps[ARRAY_SIZE(po_probes)];
	int i;

	for (i = 0; i < ARRAY_SIZE(po_probes); i++)
		kps[i] = &po_probes[i];
	unregister_kprobes(kps, ARRAY_SIZE(kps));
	/*
	 * A task sent to po_just_return() may be preempted before it runs it;
	 * wait until every task has passed a voluntary switch, as ftrace does
	 * before freeing a trampoline, so the module text can go.
	 */
	synchronize_rcu_tasks();
	po_unpin_ftrace();
}
