/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * portowners: generic netlink ABI.
 *
 * This header is the single definition of the ABI. portctl (Python) is
 * checked against it by tests/host/test_uapi.py, so the two cannot drift.
 *
 * A rule gives one port range of one protocol to an owner, on every local
 * address or, with PORTOWNERS_RULE_A_ADDR, on one. Ports are in host byte
 * order, addresses in network byte order. uids and gids are in the user
 * namespace of the netlink socket's opener; in events (one message for all
 * listeners), in the user namespace that owns the network namespace.
 *
 * Rules of one protocol on every address never overlap, nor do rules of one
 * protocol on the same address; a rule on an address may overlap a rule on
 * every address, and then decides for its address (docs/design.md).
 */
#ifndef _UAPI_LINUX_PORTOWNERS_H
#define _UAPI_LINUX_PORTOWNERS_H

#define PORTOWNERS_GENL_NAME		"portowners"
/*
 * 2: rules may carry PORTOWNERS_RULE_A_ADDR. A GET_RULES dump to a request of
 * version 1 fails with EOPNOTSUPP while the table has an address rule: a
 * reader that cannot see the address would take the rule for one on every
 * address (and write it back so).
 * 3: events on the multicast groups below; per-rule counters in GET_RULES
 * dumps asked for with PORTOWNERS_F_STATS; PORTOWNERS_A_EVENTS_DROPPED.
 */
#define PORTOWNERS_GENL_VERSION		3

/*
 * Multicast groups, joined by a listener with CAP_NET_ADMIN over the user
 * namespace that owns the network namespace (GENL_MCAST_CAP_NET_ADMIN): one
 * PORTOWNERS_CMD_EVENT for each bind a rule refused, or granted, sent in the
 * bind's network namespace (a listener there hears it; one elsewhere only
 * through NETLINK_LISTEN_ALL_NSID, with CAP_NET_BROADCAST over its owner).
 */
#define PORTOWNERS_MCGRP_DENIALS	"denials"
#define PORTOWNERS_MCGRP_GRANTS		"grants"

/* Most rules one table holds: every port of every protocol, one by one. */
#define PORTOWNERS_MAX_RULES		(3 * 65535)

enum portowners_cmd {
	PORTOWNERS_CMD_UNSPEC,
	/* Dump. Replies carry PORTOWNERS_A_GENERATION and PORTOWNERS_A_RULE*. */
	PORTOWNERS_CMD_GET_RULES,
	/*
	 * Admin. Replace the whole table with the PORTOWNERS_A_RULE* given.
	 * A large table is sent in chunks: every chunk but the last sets
	 * PORTOWNERS_F_MORE, and each carries PORTOWNERS_A_OFFSET, the number
	 * of rules sent before it. Nothing changes until the last chunk, and
	 * then the table is swapped whole.
	 *
	 * With PORTOWNERS_A_EXPECT_GENERATION (the generation the writer read)
	 * the replace is conditional: if the table is no longer at that
	 * generation, when the chunk carrying it arrives or at the final swap,
	 * nothing changes and the request fails with ESTALE. Without it the
	 * replace is unconditional.
	 */
	PORTOWNERS_CMD_REPLACE,
	/* Admin. Add the PORTOWNERS_A_RULE* given to the table. */
	PORTOWNERS_CMD_ADD_RULES,
	/*
	 * Admin. Release the ports of each PORTOWNERS_A_RULE* given (proto,
	 * range and address only): rules on the same address (or, without
	 * PORTOWNERS_RULE_A_ADDR, rules on every address) lose those ports; a
	 * rule partly covered keeps its other ports.
	 */
	PORTOWNERS_CMD_DEL_RULES,
	/* Admin. Empty the table. */
	PORTOWNERS_CMD_FLUSH,
	/* Module version, table size and generation, counters, settings. */
	PORTOWNERS_CMD_GET_STATUS,
	/*
	 * Evaluate the live table for PORTOWNERS_A_UID, PORTOWNERS_A_GID,
	 * PORTOWNERS_A_GROUP*, PORTOWNERS_A_PROTO, PORTOWNERS_A_PORT and
	 * PORTOWNERS_A_ADDR, as a bind to that address and port would be. The
	 * reply has PORTOWNERS_A_VERDICT and, when a rule decided (for a
	 * wildcard address: a rule that refused, or one that granted),
	 * PORTOWNERS_A_RULE.
	 */
	PORTOWNERS_CMD_CHECK,
	/*
	 * Never a request: the message of the multicast groups, one bind a
	 * rule decided. PORTOWNERS_A_SEQ, PORTOWNERS_A_NETNS, PORTOWNERS_A_UID,
	 * PORTOWNERS_A_GID, PORTOWNERS_A_PID, PORTOWNERS_A_COMM,
	 * PORTOWNERS_A_PROTO, PORTOWNERS_A_ADDR (the address asked for: 0.0.0.0
	 * or :: for a wildcard bind), PORTOWNERS_A_PORT, PORTOWNERS_A_VERDICT and
	 * the PORTOWNERS_A_RULE that decided.
	 */
	PORTOWNERS_CMD_EVENT,

	__PORTOWNERS_CMD_MAX,
	PORTOWNERS_CMD_MAX = __PORTOWNERS_CMD_MAX - 1
};

enum portowners_attr {
	PORTOWNERS_A_UNSPEC,
	PORTOWNERS_A_PAD,
	PORTOWNERS_A_RULE,		/* nest, PORTOWNERS_RULE_A_*; repeated */
	PORTOWNERS_A_FLAGS,		/* u32, PORTOWNERS_F_* */
	PORTOWNERS_A_OFFSET,		/* u32, rules sent in earlier chunks */
	PORTOWNERS_A_GENERATION,	/* u64, bumped by every table swap */
	PORTOWNERS_A_RULE_COUNT,	/* u32 */
	PORTOWNERS_A_GRANTED,		/* u64, binds allowed by a rule */
	PORTOWNERS_A_DENIED,		/* u64, binds refused by a rule */
	PORTOWNERS_A_ROOT_EXEMPT,	/* u8, module parameter root_exempt */
	PORTOWNERS_A_VERSION,		/* string */
	PORTOWNERS_A_UID,		/* u32 */
	PORTOWNERS_A_GID,		/* u32 */
	PORTOWNERS_A_GROUP,		/* u32, supplementary group; repeated */
	PORTOWNERS_A_PROTO,		/* u8, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
	PORTOWNERS_A_PORT,		/* u16 */
	PORTOWNERS_A_VERDICT,		/* u8, enum portowners_verdict */
	/*
	 * u64, in REPLACE, ADD_RULES, DEL_RULES, FLUSH: change the table only
	 * if it is still at this generation, else ESTALE.
	 */
	PORTOWNERS_A_EXPECT_GENERATION,
	/*
	 * binary, 4 (IPv4) or 16 (IPv6) bytes, in CHECK: the address of the
	 * bind asked about. 0.0.0.0 is an IPv4 socket's wildcard bind (every
	 * IPv4 address); :: (or no PORTOWNERS_A_ADDR) a wildcard bind on every
	 * address, IPv4 and IPv6.
	 */
	PORTOWNERS_A_ADDR,
	/*
	 * u64, in events: numbers this namespace's events of one group from 1
	 * (from its first table with rules; only while someone listens), those
	 * lost included, so a gap between two events received is the number
	 * lost (the kernel's queue was full, or the listener's socket buffer).
	 */
	PORTOWNERS_A_SEQ,
	/* u32, in events: the network namespace's inode number (ls -l /proc/PID/ns/net). */
	PORTOWNERS_A_NETNS,
	/* u32, in events: the binding process, as the initial pid namespace numbers it. */
	PORTOWNERS_A_PID,
	/* string, in events: its task name (comm), as the task set it: not escaped. */
	PORTOWNERS_A_COMM,
	/*
	 * u64, in GET_STATUS: events of this namespace the kernel dropped (its
	 * queue was full, or no memory to build the message). An event lost
	 * in a listener's full socket buffer only that listener can tell: it
	 * reads ENOBUFS, and a gap in PORTOWNERS_A_SEQ.
	 */
	PORTOWNERS_A_EVENTS_DROPPED,

	__PORTOWNERS_A_MAX,
	PORTOWNERS_A_MAX = __PORTOWNERS_A_MAX - 1
};

enum portowners_rule_attr {
	PORTOWNERS_RULE_A_UNSPEC,
	PORTOWNERS_RULE_A_PROTO,	/* u8, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
	PORTOWNERS_RULE_A_PORT_LO,	/* u16, 1..65535 */
	PORTOWNERS_RULE_A_PORT_HI,	/* u16, PORT_LO..65535 */
	PORTOWNERS_RULE_A_UID,		/* u32, owner uid */
	PORTOWNERS_RULE_A_GID,		/* u32, owner gid */
	PORTOWNERS_RULE_A_ANY,		/* flag, any user may bind */
	/*
	 * binary, 4 (IPv4) or 16 (IPv6) bytes: the rule holds on this local
	 * address only. Not 0.0.0.0 or :: (a rule on every address has no
	 * PORTOWNERS_RULE_A_ADDR); an IPv4-mapped IPv6 address is its IPv4
	 * address, and is dumped as 4 bytes.
	 */
	PORTOWNERS_RULE_A_ADDR,
	PORTOWNERS_RULE_A_PAD,
	/*
	 * u64, in GET_RULES dumps asked for with PORTOWNERS_F_STATS: binds this
	 * rule granted, refused. A rule keeps them across a table swap that
	 * keeps it the same (protocol, ports, address and owner).
	 */
	PORTOWNERS_RULE_A_GRANTED,
	PORTOWNERS_RULE_A_DENIED,

	__PORTOWNERS_RULE_A_MAX,
	PORTOWNERS_RULE_A_MAX = __PORTOWNERS_RULE_A_MAX - 1
};

enum portowners_flags {
	PORTOWNERS_F_MORE = 1 << 0,	/* REPLACE: more chunks follow */
	/* GET_RULES: each rule's counters too; needs CAP_NET_ADMIN (EPERM) */
	PORTOWNERS_F_STATS = 1 << 1,
};

enum portowners_verdict {
	PORTOWNERS_VERDICT_PASS,	/* no rule: the kernel decides as usual */
	PORTOWNERS_VERDICT_GRANT,	/* a rule names this user or group */
	PORTOWNERS_VERDICT_DENY,	/* owned by another: needs CAP_NET_BIND_SERVICE */
};

#endif /* _UAPI_LINUX_PORTOWNERS_H */
