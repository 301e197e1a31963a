"""Take inet ports by routes other than a plain bind(2): run as the user under test.

Standard library only, as tests/vm/binder.py. argv[1]: a JSON list of
requests, each {"op": ..., ...}; prints a JSON list of outcomes: "OK" or an
errno name, or for some ops a small dict.

ops:
  smc     {"v6": bool, "port": N}: socket(AF_SMC), bind, listen. "OK" only if
          /proc/net/tcp* then shows a socket on the port (the port is really
          taken), else "OK-but-port-free".
  rxrpc   {"v6": bool, "port": N, "service": N}: socket(AF_RXRPC) bound to
          transport udp/N; "OK" only if udp/N is then taken, as above.
  bindx   {"v6": bool, "addrs": [[addr, port], ...], "prebind": [addr, port],
          "drop_to": uid}: setsockopt(SCTP_SOCKOPT_BINDX_ADD) with the list
          (after an optional bind(2), and dropping root to uid in between).
  sctp_caps {"v6": bool, "port": N, "then": N}: bind an SCTP socket to port,
          then report the task's effective capabilities and the outcome of a
          second SCTP bind to "then", in the same process.
  uring_bind {"v6": bool, "port": N, "mode": "inline" | "async" | "sqpoll"}:
          a TCP socket bound by io_uring's IORING_OP_BIND (6.11+), submitted
          inline, with IOSQE_ASYNC (an io-wq worker binds it) or on an
          IORING_SETUP_SQPOLL ring (the ring's kernel thread binds it).
  freebind_race {"port": N, "addr": A, "tries": N}: one process binds a TCP
          socket to the non-local address A while a forked process flips
          IP_FREEBIND on the same socket; counts each outcome, stops at the
          first successful bind.
"""

import ctypes
import errno
import ipaddress
import json
import os
import signal
import socket
import struct
import sys

AF_SMC = 43
SMCPROTO_SMC6 = 1
AF_RXRPC = 33
SOL_SCTP = 132
SCTP_SOCKOPT_BINDX_ADD = 100
IP_FREEBIND = 15
libc = ctypes.CDLL(None, use_errno=True)


def sockaddr(addr: str, port: int) -> bytes:
    ip = ipaddress.ip_address(addr)
    if ip.version == 6:
        head = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0)
        return head + ip.packed + b"\0" * 4
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + ip.packed + b"\0" * 8


def raw_bind(s: socket.socket, sa: bytes) -> str:
    buf = ctypes.create_string_buffer(sa, len(sa))
    if libc.bind(s.fileno(), buf, len(sa)) == 0:
        return "OK"
    return errno.errorcode[ctypes.get_errno()]


def port_taken(proto: str, port: int) -> bool:
    """Whether a socket of proto ("tcp", "udp") holds port, by /proc/net (not by binding)."""
    for table in (proto, proto + "6"):
        with open(f"/proc/net/{table}") as f:
            for line in f.readlines()[1:]:
                if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def smc(req: dict) -> str:
    v6 = req["v6"]
    try:
        s = socket.socket(AF_SMC, socket.SOCK_STREAM, SMCPROTO_SMC6 if v6 else 0)
    except OSError as e:
        return "socket:" + errno.errorcode[e.errno]
    with s:
        rc = raw_bind(s, sockaddr("::" if v6 else "0.0.0.0", req["port"]))
        if rc != "OK":
            return rc
        s.listen()
        return "OK" if port_taken("tcp", req["port"]) else "OK-but-port-free"


def rxrpc(req: dict) -> str:
    v6 = req["v6"]
    family = socket.AF_INET6 if v6 else socket.AF_INET
    try:
        s = socket.socket(AF_RXRPC, socket.SOCK_DGRAM, family)
    except OSError as e:
        return "socket:" + errno.errorcode[e.errno]
    transport = sockaddr("::" if v6 else "0.0.0.0", req["port"])
    # struct sockaddr_rxrpc (include/uapi/linux/rxrpc.h): family, service,
    # transport_type, transport_len, then the transport address (28 bytes).
    srx = struct.pack("=HHHH", AF_RXRPC, req["service"], socket.SOCK_DGRAM, len(transport))
    srx += transport.ljust(28, b"\0")
    with s:
        rc = raw_bind(s, srx)
        if rc != "OK":
            return rc
        return "OK" if port_taken("udp", req["port"]) else "OK-but-port-free"


def bindx(req: dict) -> str:
    family = socket.AF_INET6 if req["v6"] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP) as s:
        if "prebind" in req:
            rc = raw_bind(s, sockaddr(*req["prebind"]))
            if rc != "OK":
                return "prebind:" + rc
        if "drop_to" in req:
            os.setgroups([])
            os.setresgid(req["drop_to"], req["drop_to"], req["drop_to"])
            os.setresuid(req["drop_to"], req["drop_to"], req["drop_to"])
        packed = b"".join(sockaddr(a, p) for a, p in req["addrs"])
        try:
            s.setsockopt(SOL_SCTP, SCTP_SOCKOPT_BINDX_ADD, packed)
        except OSError as e:
            return errno.errorcode[e.errno]
        return "OK"


def cap_eff() -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return line.split()[1]
    return "?"


def sctp_caps(req: dict) -> dict:
    family = socket.AF_INET6 if req["v6"] else socket.AF_INET
    addr = "::" if req["v6"] else "0.0.0.0"
    out = {"before": cap_eff()}
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP) as s:
        out["bind"] = raw_bind(s, sockaddr(addr, req["port"]))
        out["after"] = cap_eff()
        with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP) as t:
            out["then"] = raw_bind(t, sockaddr(addr, req["then"]))
    return out


def freebind_race(req: dict) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_IP, IP_FREEBIND, 0)
    sa = sockaddr(req["addr"], req["port"])
    child = os.fork()
    if child == 0:  # the racer: flip IP_FREEBIND on the shared socket, forever
        while True:
            s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            s.setsockopt(socket.SOL_IP, IP_FREEBIND, 0)
    counts: dict = {}
    try:
        for _ in range(req["tries"]):
            rc = raw_bind(s, sa)
            counts[rc] = counts.get(rc, 0) + 1
            if rc == "OK":
                break
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        s.close()
    return counts


# io_uring by hand (no liburing in the guest): include/uapi/linux/io_uring.h.
NR_IO_URING_SETUP, NR_IO_URING_ENTER = 425, 426
IORING_OP_BIND = 56
IOSQE_ASYNC = 1 << 4
IORING_SETUP_SQPOLL = 1 << 1
IORING_ENTER_GETEVENTS, IORING_ENTER_SQ_WAKEUP = 1, 2
IORING_SQ_NEED_WAKEUP = 1
IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES = 0, 0x8000000, 0x10000000


def uring_bind(req: dict) -> str:
    import mmap

    family = socket.AF_INET6 if req["v6"] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    sa = sockaddr("::" if req["v6"] else "0.0.0.0", req["port"])
    addr = ctypes.create_string_buffer(sa, len(sa))
    params = ctypes.create_string_buffer(120)
    sqpoll = req["mode"] == "sqpoll"
    if sqpoll:
        struct.pack_into("=I", params, 8, IORING_SETUP_SQPOLL)
        struct.pack_into("=I", params, 16, 2000)  # sq_thread_idle, ms
    fd = libc.syscall(NR_IO_URING_SETUP, ctypes.c_uint(4), params)
    if fd < 0:
        return "setup:" + errno.errorcode[ctypes.get_errno()]
    sq_entries, cq_entries = struct.unpack_from("=II", params, 0)
    _, sq_tail, sq_mask, _, sq_flags, _, sq_array = struct.unpack_from("=7I", params, 40)
    cq_head, cq_tail, cq_mask, _, _, cq_cqes = struct.unpack_from("=6I", params, 80)
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    sq = mmap.mmap(fd, sq_array + 4 * sq_entries, mmap.MAP_SHARED, prot, offset=IORING_OFF_SQ_RING)
    cq = mmap.mmap(fd, cq_cqes + 16 * cq_entries, mmap.MAP_SHARED, prot, offset=IORING_OFF_CQ_RING)
    sqes = mmap.mmap(fd, 64 * sq_entries, mmap.MAP_SHARED, prot, offset=IORING_OFF_SQES)
    tail = struct.unpack_from("=I", sq, sq_tail)[0]
    i = tail & struct.unpack_from("=I", sq, sq_mask)[0]
    flags = IOSQE_ASYNC if req["mode"] == "async" else 0
    # opcode, flags, ioprio, fd, addr2 (addrlen), addr, len, op flags, user_data, ...
    sqe = (IORING_OP_BIND, flags, 0, s.fileno(), len(sa), ctypes.addressof(addr), 0, 0, 7)
    struct.pack_into("=BBHiQQIIQHHiQQ", sqes, 64 * i, *sqe, 0, 0, 0, 0, 0)
    struct.pack_into("=I", sq, sq_array + 4 * i, i)
    struct.pack_into("=I", sq, sq_tail, tail + 1)
    enter = libc.syscall
    if sqpoll:
        if struct.unpack_from("=I", sq, sq_flags)[0] & IORING_SQ_NEED_WAKEUP:
            enter(NR_IO_URING_ENTER, fd, 0, 0, IORING_ENTER_SQ_WAKEUP, None, 0)
        rc = enter(NR_IO_URING_ENTER, fd, 0, 1, IORING_ENTER_GETEVENTS, None, 0)
    else:
        rc = enter(NR_IO_URING_ENTER, fd, 1, 1, IORING_ENTER_GETEVENTS, None, 0)
    if rc < 0:
        return "enter:" + errno.errorcode[ctypes.get_errno()]
    head = struct.unpack_from("=I", cq, cq_head)[0]
    if head == struct.unpack_from("=I", cq, cq_tail)[0]:
        return "no completion"
    j = head & struct.unpack_from("=I", cq, cq_mask)[0]
    user_data, res, _ = struct.unpack_from("=QiI", cq, cq_cqes + 16 * j)
    assert user_data == 7
    for m in (sq, cq, sqes):
        m.close()
    os.close(fd)
    s.close()
    return "OK" if res == 0 else errno.errorcode[-res]


OPS = {
    "smc": smc,
    "rxrpc": rxrpc,
    "bindx": bindx,
    "sctp_caps": sctp_caps,
    "freebind_race": freebind_race,
    "uring_bind": uring_bind,
}
print(json.dumps([OPS[r["op"]](r) for r in json.loads(sys.argv[1])]))
