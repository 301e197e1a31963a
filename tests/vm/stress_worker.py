"""Bind and close in several threads, a fixed count each; print what happened.

Run by tests/vm/test_stress.py as the user under test (standard library
only, Debian's python3). argv[1]: JSON {"threads": N, "count": N, "binds":
[[sock, port], ...], "first": N}. Thread t binds 127.0.0.(first + t + 1)
(IPv4) or ::1 (IPv6),
with SO_REUSEADDR, so the threads never collide with each other: any errno
but the module's EACCES (or the kernel's own, for a low port) is a finding.
Prints {"sock/port": {"OK": n, "EACCES": n, ...}} over all threads.
"""

import errno
import json
import socket
import sys
import threading

KINDS = {
    "tcp": (socket.SOCK_STREAM, socket.IPPROTO_TCP),
    "udp": (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
    "sctp": (socket.SOCK_STREAM, 132),
}


def bind_once(sock: str, port: int, host: int) -> str:
    kind, ver = sock[:-1], sock[-1]
    family = socket.AF_INET6 if ver == "6" else socket.AF_INET
    typ, proto = KINDS[kind]
    s = socket.socket(family, typ, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        addr = "::1" if ver == "6" else f"127.0.0.{host}"
        s.bind((addr, port))
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    finally:
        s.close()


def main() -> None:
    spec = json.loads(sys.argv[1])
    binds = [(sock, int(port)) for sock, port in spec["binds"]]
    seen: dict[str, dict[str, int]] = {}
    lock = threading.Lock()

    def work(thread: int) -> None:
        mine: dict[str, dict[str, int]] = {}
        for i in range(spec["count"]):
            sock, port = binds[(i + thread) % len(binds)]
            key = f"{sock}/{port}"
            outcome = bind_once(sock, port, spec.get("first", 0) + thread + 1)
            mine.setdefault(key, {})
            mine[key][outcome] = mine[key].get(outcome, 0) + 1
        with lock:
            for key, outcomes in mine.items():
                for outcome, n in outcomes.items():
                    seen.setdefault(key, {})
                    seen[key][outcome] = seen[key].get(outcome, 0) + n

    threads = [threading.Thread(target=work, args=(t,)) for t in range(spec["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
