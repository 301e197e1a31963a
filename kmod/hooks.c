// SPDX-License-Identifier: GPL-2.0
/*
 * The bind hooks. Loadable modules cannot register LSM hooks, so ftrace does
 * the work, as livepatch uses it: an ftrace_ops with IPMODIFY at the entry of
 * each function below (docs/design.md says why these and why not kprobes),
 * one decision per bind, in one handler that both denies and grants:
 *
 * - __inet_bind() and __inet6_bind(), which every TCP, MPTCP, UDP and
 *   UDP-Lite bind reaches, from bind(2) or kernel_bind(): a denial makes the
 *   function return -EACCES at once; a grant sets BIND_NO_CAP_NET_BIND_SERVICE
 *   in its flags, the switch a cgroup bind program flips.
 * - sctp_do_bind() in sctp.ko, which bind(2) and each address of sctp_bindx()
 *   reach: a denial as above; a grant below ip_unprivileged_port_start runs
 *   the call with the capability raised in this task's credentials only.
 *
 * Handlers run with preemption disabled (ftrace's recursion guard): they
 * take no lock, allocate nothing, and decide under rcu_read_lock().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ftrace.h>
#include <linux/hash.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/net.h>
#include <linux/ratelimit.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <net/inet_common.h>
#include <net/inet_sock.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/sctp/structs.h>
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

/*
 * "portowners: denied tcp/8080 to uid 1001 (nginx[812]) in net:[4026531840]:
 * owned by uid 1000", or "...: owned on 127.0.0.1 by uid 1000" when a rule
 * on one address refused. The task name is the user's to choose
 * (PR_SET_NAME): it is escaped, so a newline in it cannot forge a line of
 * its own. The namespace is named as ls -l /proc/PID/ns/net names it.
 */
static void po_log_denial(struct po_net *pn, const struct net *net,
			  const struct po_rule *r, u16 port)
{
	const struct in6_addr *addr = po_rule_addr(r);
	const struct cred *cred = current_cred();
	uid_t uid = from_kuid(&init_user_ns, cred->euid);
	char comm[TASK_COMM_LEN];
	char owner[32] = "";
	char on[56] = "";
	int n = 0;

	if (!__ratelimit(&pn->log_rs[hash_32(uid, PO_LOG_BUCKETS_BITS)]))
		return;
	/* Not get_task_comm(): its task_lock() may sleep on PREEMPT_RT. */
	strscpy(comm, current->comm, sizeof(comm));
	if (r->owner & PO_OWNER_UID)
		n = scnprintf(owner, sizeof(owner), " uid %u",
			      from_kuid(&init_user_ns, r->uid));
	if (r->owner & PO_OWNER_GID)
		scnprintf(owner + n, sizeof(owner) - n, " gid %u",
			  from_kgid(&init_user_ns, r->gid));
	if (addr && ipv6_addr_v4mapped(addr))
		snprintf(on, sizeof(on), " on %pI4", &addr->s6_addr32[3]);
	else if (addr)
		snprintf(on, sizeof(on), " on %pI6c", addr);
	pr_notice("denied %s/%u to uid %u (%*pE[%d]) in net:[%u]: owned%s by%s\n",
		  po_proto_names[r->proto], port, uid, (int)strlen(comm), comm,
		  task_pid_nr(current), net->ns.inum, on, owner);
}

/*
 * Count a decided bind, for the namespace and for the rule, and tell the
 * listeners.
 */
static void po_account(struct po_net *pn, const struct po_table *t,
		       enum portowners_verdict verdict, int proto, u16 port,
		       const struct po_where *where,
		       const struct po_subject *who, const struct po_rule *rule)
{
	struct po_hits *hits = po_rule_hits(t, rule);

	if (verdict == PORTOWNERS_VERDICT_GRANT) {
		this_cpu_inc(pn->stats->granted);
		atomic64_inc(&hits->granted);
	} else {
		this_cpu_inc(pn->stats->denied);
		atomic64_inc(&hits->denied);
	}
	po_event_note(pn, verdict, proto, port, where, who, rule);
}

/*
 * The one decision for a bind of port on sk by the current task. It is
 * counted, told and (a denial) logged here, but for a grant that is not
 * final: the SCTP hook then calls the function again, and that call, which
 * meets the hook again, counts it.
 */
static enum portowners_verdict po_judge(struct sock *sk, int proto, u16 port,
					const struct po_where *where,
					bool final_grant)
{
	struct net *net = sock_net(sk);
	enum portowners_verdict verdict;
	const struct po_rule *rule;
	struct po_subject who;
	struct po_net *pn = po_net(net);
	const struct po_table *t;

	rcu_read_lock();
	t = rcu_dereference(pn->table);
	/*
	 * This namespace's own fast exit: po_rules_anywhere only says that
	 * some namespace has rules.
	 */
	if (!t->count) {
		rcu_read_unlock();
		return PORTOWNERS_VERDICT_PASS;
	}
	po_current_subject(&who);
	verdict = po_decide(t, proto, port, where, &who, &rule);
	if (verdict == PORTOWNERS_VERDICT_DENY) {
		if (READ_ONCE(po_root_exempt) &&
		    ns_capable_noaudit(net->user_ns, CAP_NET_BIND_SERVICE)) {
			verdict = PORTOWNERS_VERDICT_PASS;
		} else {
			po_account(pn, t, verdict, proto, port, where, &who,
				   rule);
			po_log_denial(pn, net, rule, port);
		}
	} else if (verdict == PORTOWNERS_VERDICT_GRANT && final_grant) {
		po_account(pn, t, verdict, proto, port, where, &who, rule);
	}
	rcu_read_unlock();
	return verdict;
}

/*
 * What a bind to this address covers. An IPv6 socket's :: is taken for both
 * families whatever IPV6_V6ONLY says now: another thread may flip it until
 * the bind locks the socket, after this decision.
 */
static void po_where_v4(struct po_where *where, __be32 addr)
{
	struct in6_addr mapped;

	ipv6_addr_set_v4mapped(addr, &mapped);
	po_where_set(where, &mapped);
}

/*
 * The port of a well-formed IPv4 or IPv6 bind, or 0, and the address in
 * *where. On entry to __inet_bind() and __inet6_bind() the caller
 * (inet_bind(), inet6_bind(), bpf_bind()) has checked the length; what they
 * check next from the address alone (the family, a multicast address on a
 * stream socket) is left to them, so those errnos stay the kernel's. The
 * address is the caller's own copy, which no other thread can change.
 */
static u16 po_inet_port(const struct sock *sk, const struct sockaddr *uaddr,
			int addrlen, struct po_where *where)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)uaddr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)uaddr;

	if (sk->sk_family == AF_INET) {
		if (addrlen < (int)sizeof(*sin))
			return 0;
		if (sin->sin_family != AF_INET &&
		    (sin->sin_family != AF_UNSPEC ||
		     sin->sin_addr.s_addr != htonl(INADDR_ANY)))
			return 0;
		po_where_v4(where, sin->sin_addr.s_addr);
		return ntohs(sin->sin_port);
	}
	if (addrlen < SIN6_LEN_RFC2133 || sin6->sin6_family != AF_INET6)
		return 0;
	if ((ipv6_addr_type(&sin6->sin6_addr) & IPV6_ADDR_MULTICAST) &&
	    sk->sk_type == SOCK_STREAM)
		return 0;
	po_where_set(where, &sin6->sin6_addr);
	return ntohs(sin6->sin6_port);
}

/*
 * __inet_bind() and __inet6_bind(): (sk, uaddr, addr_len, u32 flags). Every
 * bind of a TCP, MPTCP, UDP or UDP-Lite port comes here: bind(2), and
 * kernel_bind() on the sockets that SMC, RXRPC, MPTCP and others make. One
 * handler decides both ways, before the kernel checks anything that another
 * thread can change (IP_FREEBIND, the socket's state): a denial makes the
 * function return -EACCES at once; a grant sets the switch a cgroup bind
 * program sets, BIND_NO_CAP_NET_BIND_SERVICE, so no credentials are touched.
 */
static void notrace po_inet_bind_hook(unsigned long ip, unsigned long parent_ip,
				      struct ftrace_ops *op,
				      struct ftrace_regs *fregs)
{
	struct pt_regs *regs = po_fregs_regs(fregs);
	struct sock *sk = (struct sock *)po_arg(regs, 0);
	struct sockaddr *uaddr = (struct sockaddr *)po_arg(regs, 1);
	int addrlen = (int)po_arg(regs, 2);
	u32 flags = (u32)po_arg(regs, 3);
	struct po_where where;
	int proto;
	u16 port;

	/*
	 * Not sk->sk_kern_sock: SMC, RXRPC and MPTCP bind sockets they made
	 * from the user's own context. A BPF program's own bind() keeps the
	 * rules it was given (docs/design.md).
	 */
	if (!READ_ONCE(po_rules_anywhere) || current->flags & PF_KTHREAD ||
	    flags & BIND_FROM_BPF)
		return;
	proto = po_sock_proto(sk);
	if (proto < 0)
		return;
	port = po_inet_port(sk, uaddr, addrlen, &where);
	if (!port)
		return;

	switch (po_judge(sk, proto, port, &where, true)) {
	case PORTOWNERS_VERDICT_DENY:
		po_override_return(regs, -EACCES);
		break;
	case PORTOWNERS_VERDICT_GRANT:
		po_set_arg4(regs, flags | BIND_NO_CAP_NET_BIND_SERVICE);
		break;
	default:
		break;
	}
}

/*
 * SCTP. bind(2) and sctp_bindx() (SCTP_SOCKOPT_BINDX_ADD), for each address
 * of its list, both go through sctp_do_bind(sk, addr, len), with the socket
 * locked by the caller: everything read here from the socket is stable.
 */
static int (*po_sctp_do_bind)(struct sock *sk, union sctp_addr *addr, int len);

/*
 * The port sctp_do_bind() would check, or 0 where it fails first on the
 * address alone (sctp_sockaddr_af(): EINVAL) or on a port other than the one
 * the socket has (EINVAL). Port 0 on a bound socket means its own port.
 */
static u16 po_sctp_port(struct sock *sk, const union sctp_addr *addr, int len,
			struct po_where *where)
{
	u16 bound = sctp_sk(sk)->ep->base.bind_addr.port;
	u16 snum;

	if (len < (int)sizeof(struct sockaddr))
		return 0;
	switch (addr->sa.sa_family) {
	case AF_INET:
		if (len < (int)sizeof(struct sockaddr_in) ||
		    (sk->sk_family == AF_INET6 && ipv6_only_sock(sk)))
			return 0;
		po_where_v4(where, addr->v4.sin_addr.s_addr);
		break;
	case AF_INET6:
		if (sk->sk_family != AF_INET6 ||
		    len < (int)sizeof(struct sockaddr_in6) ||
		    (ipv6_addr_v4mapped(&addr->v6.sin6_addr) &&
		     ipv6_only_sock(sk)))
			return 0;
		po_where_set(where, &addr->v6.sin6_addr);
		break;
	default:
		return 0;
	}
	snum = ntohs(addr->v4.sin_port);
	if (bound && snum && snum != bound)
		return 0;
	return snum ? snum : bound;
}

/*
 * A bind of an SCTP port the table grants, below ip_unprivileged_port_start,
 * by a task without CAP_NET_BIND_SERVICE: sctp_do_bind() checks the
 * capability itself, with no flag to set. Its hook sends the call here
 * instead, in the task's own context (sleeping allowed, the socket still
 * locked by the caller), and this runs the real sctp_do_bind() with the
 * capability raised in an override of this task's credentials only, then
 * reverts it and the PF_SUPERPRIV mark the passing check sets: nothing is
 * left changed after the call. The nested call meets
 * the hook again, which lets it through because the capability is now
 * raised, so this never recurses.
 */
static int po_sctp_bind_granted(struct sock *sk, union sctp_addr *addr,
				int len)
{
	int (*do_bind)(struct sock *sk, union sctp_addr *addr, int len);
	unsigned int superpriv;
	const struct cred *old;
	struct cred *cred;
	int err;

	/*
	 * Until try_module_get(), module text runs here without a reference:
	 * unloading waits for RCU-tasks (po_hooks_exit()), and nothing before
	 * it sleeps. While the module goes, the owner is refused, as the
	 * kernel alone would refuse it.
	 */
	do_bind = READ_ONCE(po_sctp_do_bind);
	if (!do_bind || !try_module_get(THIS_MODULE))
		return -EACCES;
	cred = prepare_creds();
	if (!cred) {
		err = -ENOMEM;
		goto out;
	}
	cap_raise(cred->cap_effective, CAP_NET_BIND_SERVICE);
	/* A capability check that passes marks the task (process accounting). */
	superpriv = current->flags & PF_SUPERPRIV;
	old = override_creds(cred);
	err = do_bind(sk, addr, len);
	revert_creds(old);
	put_cred(cred);
	current->flags = (current->flags & ~PF_SUPERPRIV) | superpriv;
out:
	module_put(THIS_MODULE);
	return err;
}

/* sctp_do_bind(struct sock *sk, union sctp_addr *addr, int len) */
static void notrace po_sctp_bind_hook(unsigned long ip, unsigned long parent_ip,
				      struct ftrace_ops *op,
				      struct ftrace_regs *fregs)
{
	struct pt_regs *regs = po_fregs_regs(fregs);
	struct sock *sk = (struct sock *)po_arg(regs, 0);
	const union sctp_addr *addr = (const union sctp_addr *)po_arg(regs, 1);
	int len = (int)po_arg(regs, 2);
	struct po_where where;
	bool raise;
	u16 port;

	if (!READ_ONCE(po_rules_anywhere) || current->flags & PF_KTHREAD)
		return;
	port = po_sctp_port(sk, addr, len, &where);
	if (!port)
		return;
	/* A grant needs the call run again with the capability raised. */
	raise = inet_port_requires_bind_service(sock_net(sk), port) &&
		!cap_raised(current_cred()->cap_effective, CAP_NET_BIND_SERVICE);

	switch (po_judge(sk, PO_SCTP, port, &where, !raise)) {
	case PORTOWNERS_VERDICT_DENY:
		po_override_return(regs, -EACCES);
		break;
	case PORTOWNERS_VERDICT_GRANT:
		if (raise) {
			/*
			 * Counted by the nested call, which calls the
			 * function from its start (ip is past an ENDBR64).
			 * Set here, while the hook is surely registered: it
			 * is cleared only after the hook is gone.
			 */
			WRITE_ONCE(po_sctp_do_bind, po_function_start(ip));
			po_redirect(regs, po_sctp_bind_granted);
		}
		break;
	default:
		break;
	}
}

/*
 * IPMODIFY: the handlers change where the function goes on (a denial, an
 * SCTP grant), and at most one ftrace_ops per function may, so no other
 * one (a livepatch of the function, say) can silently undo them: it is
 * refused instead. PERMANENT: `sysctl kernel.ftrace_enabled=0` would switch
 * the hooks off, failing open; while they are registered it fails with
 * EBUSY, and the module does not load while it is 0. Without
 * FTRACE_OPS_FL_RECURSION, ftrace guards the handlers against recursion,
 * with preemption disabled.
 */
#define PO_FTRACE_FLAGS \
	(FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT | PO_FTRACE_FL_REGS)

static struct ftrace_ops po_inet_ops = {
	.func = po_inet_bind_hook,
	.flags = PO_FTRACE_FLAGS,
};

static const char *const po_inet_functions[] = { "__inet_bind", "__inet6_bind" };

/*
 * sctp_do_bind() is in sctp.ko, which may load after this module and unload
 * before it: its hook is armed when sctp comes and disarmed when it goes,
 * under po_sctp_lock. If it cannot be armed, sctp does not load (fail
 * closed), as this module does not load when sctp is there and cannot be
 * hooked.
 */
static DEFINE_MUTEX(po_sctp_lock);
static bool po_sctp_armed;

static struct ftrace_ops po_sctp_ops = {
	.func = po_sctp_bind_hook,
	.flags = PO_FTRACE_FLAGS,
};

/* ftrace_set_filter() takes a writable name. */
static int po_set_filter(struct ftrace_ops *ops, const char *function)
{
	char name[KSYM_NAME_LEN];

	strscpy(name, function, sizeof(name));
	return ftrace_set_filter(ops, name, strlen(name), 0);
}

/* -EINVAL: no function of that name (sctp is not there). */
static int po_sctp_arm(void)
{
	int err;

	lockdep_assert_held(&po_sctp_lock);
	if (po_sctp_armed)
		return 0;
	err = po_set_filter(&po_sctp_ops, "sctp_do_bind");
	if (!err)
		err = register_ftrace_function(&po_sctp_ops);
	if (err) {
		ftrace_free_filter(&po_sctp_ops);
		return err;
	}
	po_sctp_armed = true;
	return 0;
}

static void po_sctp_disarm(void)
{
	lockdep_assert_held(&po_sctp_lock);
	if (!po_sctp_armed)
		return;
	/* Waits for running handlers; a redirected task holds a reference. */
	unregister_ftrace_function(&po_sctp_ops);
	ftrace_free_filter(&po_sctp_ops);
	WRITE_ONCE(po_sctp_do_bind, NULL);
	po_sctp_armed = false;
}

static int po_module_notify(struct notifier_block *nb, unsigned long action,
			    void *data)
{
	struct module *mod = data;
	int err = 0;

	if (strcmp(mod->name, "sctp"))
		return NOTIFY_DONE;
	mutex_lock(&po_sctp_lock);
	if (action == MODULE_STATE_COMING) {
		err = po_sctp_arm();
		if (err)
			pr_err("cannot hook sctp_do_bind (error %d): refusing to let sctp load\n",
			       err);
	} else if (action == MODULE_STATE_GOING) {
		po_sctp_disarm();
	}
	mutex_unlock(&po_sctp_lock);
	return notifier_from_errno(err);
}

static struct notifier_block po_module_nb = {
	.notifier_call = po_module_notify,
};

/* Arm now if sctp is already there; else the notifier arms it later. */
static int __init po_sctp_init(void)
{
	void *live;
	int err;

	err = register_module_notifier(&po_module_nb);
	if (err)
		return err;
	mutex_lock(&po_sctp_lock);
	err = po_sctp_arm();
	mutex_unlock(&po_sctp_lock);
	if (err == -EINVAL) {
		/* No sctp_do_bind: fine unless sctp itself is live. */
		live = __symbol_get("sctp_do_peeloff");
		if (!live)
			return 0;
		__symbol_put("sctp_do_peeloff");
	}
	if (err) {
		pr_err("cannot hook sctp_do_bind (error %d): not loading\n",
		       err);
		unregister_module_notifier(&po_module_nb);
	}
	return err;
}

static void po_sctp_exit(void)
{
	unregister_module_notifier(&po_module_nb);
	mutex_lock(&po_sctp_lock);
	po_sctp_disarm();
	mutex_unlock(&po_sctp_lock);
}

int __init po_hooks_init(void)
{
	int i, err;

	for (i = 0; i < ARRAY_SIZE(po_inet_functions); i++) {
		err = po_set_filter(&po_inet_ops, po_inet_functions[i]);
		if (err) {
			/* Fail closed: half the hooks would enforce half the rules. */
			pr_err("cannot hook %s (error %d): not loading\n",
			       po_inet_functions[i], err);
			goto free_filter;
		}
	}
	err = register_ftrace_function(&po_inet_ops);
	if (err) {
		if (err == -EBUSY)
			pr_err("kernel.ftrace_enabled is 0, so the bind hooks could not run: not loading\n");
		else
			pr_err("cannot hook the bind functions (error %d): not loading\n",
			       err);
		goto free_filter;
	}
	err = po_sctp_init();
	if (!err)
		return 0;
	unregister_ftrace_function(&po_inet_ops);
	synchronize_rcu_tasks();
free_filter:
	ftrace_free_filter(&po_inet_ops);
	return err;
}

void po_hooks_exit(void)
{
	po_sctp_exit();
	unregister_ftrace_function(&po_inet_ops);
	ftrace_free_filter(&po_inet_ops);
	/*
	 * A task sent to po_just_return() or po_sctp_bind_granted() may be
	 * preempted before it runs it; wait until every task has passed a
	 * voluntary switch, as ftrace does before freeing a trampoline, so
	 * the module text can go. (po_sctp_bind_granted() takes a module
	 * reference before anything in it can sleep.)
	 */
	synchronize_rcu_tasks();
}
