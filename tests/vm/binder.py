"""Try binds and print what happened, as JSON: run as the user under test.

Standard library only, so any user can run it with Debian's python3. Binds go
through libc's bind(2) with a hand-made sockaddr, so tests can also send the
malformed ones (short length, wrong family) the kernel must judge.

argv[1]: JSON list of {"sock": "tcp4", "port": 80, "addr": "...",
"family": N, "len": N, "repeat": N, "comm": "name"}; prints a JSON list with, for each
request, "OK" or an errno name, or with "repeat" a count of each outcome.
Before it, with argv[2] "pid", a line with this process's pid.
"""

import ctypes
import errno
import ipaddress
import json
import os
import socket
import struct
import sys

SOCKS = {
    "tcp": (socket.SOCK_STREAM, socket.IPPROTO_TCP),
    "udp": (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
    "udplite": (socket.SOCK_DGRAM, 136),
    "mptcp": (socket.SOCK_STREAM, 262),
    "sctp": (socket.SOCK_STREAM, 132),
    "raw": (socket.SOCK_RAW, socket.IPPROTO_TCP),
    # SMC over IPv4/IPv6 addresses: AF_SMC with SMCPROTO_SMC (0) or
    # SMCPROTO_SMC6 (1), and since 6.11 AF_INET/AF_INET6 with IPPROTO_SMC.
    "smc": (socket.SOCK_STREAM, 0),
    "ipsmc": (socket.SOCK_STREAM, 256),
}
AF_SMC = 43
libc = ctypes.CDLL(None, use_errno=True)


def sockaddr(family: int, addr: str, port: int) -> bytes:
    if family == socket.AF_INET6:
        packed = ipaddress.IPv6Address(addr).packed
        return struct.pack("=H", family) + struct.pack("!H", port) + b"\0" * 4 + packed + b"\0" * 4
    packed = ipaddress.IPv4Address(addr).packed
    return struct.pack("=H", family) + struct.pack("!H", port) + packed + b"\0" * 8


def try_bind(req: dict) -> str:
    kind, ver = req["sock"][:-1], req["sock"][-1]
    family = socket.AF_INET6 if ver == "6" else socket.AF_INET
    typ, proto = SOCKS[kind]
    sock_family = family
    if kind == "smc":
        sock_family, proto = AF_SMC, 1 if ver == "6" else 0
    try:
        s = socket.socket(sock_family, typ, proto)
    except OSError as e:
        return "socket:" + errno.errorcode[e.errno]
    sa_family = req.get("family", family)
    default = "::" if sa_family == socket.AF_INET6 else "0.0.0.0"
    if req.get("v6only") is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, req["v6only"])
    sa = sockaddr(sa_family, req.get("addr", default), req["port"])
    length = req.get("len", len(sa))
    buf = ctypes.create_string_buffer(sa, max(len(sa), length))
    rc = libc.bind(s.fileno(), buf, length)
    err = ctypes.get_errno()
    s.close()
    return "OK" if rc == 0 else errno.errorcode[err]


def run(req: dict) -> object:
    if "comm" in req:  # the task name the kernel log shows (PR_SET_NAME)
        libc.prctl(15, req["comm"].encode(), 0, 0, 0)
    if "repeat" not in req:
        return try_bind(req)
    counts: dict[str, int] = {}
    for _ in range(req["repeat"]):
        outcome = try_bind(req)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


if sys.argv[2:] == ["pid"]:
    print(os.getpid())
print(json.dumps([run(r) for r in json.loads(sys.argv[1])]))
