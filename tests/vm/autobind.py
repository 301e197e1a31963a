"""Take ports the kernel picks itself (autobind), as the user under test,
until it has none left, and print them as JSON.

Standard library only: any user runs it with Debian's python3.
argv[1]: JSON {"sock": "tcp4", "how": "bind0" | "listen" | "connect" |
"connect_noport" | "sendto", "peer": port of a listener on loopback (connect),
"max": N}. Every socket stays open until the end, so each port is taken once.
Prints {"ports": [...], "error": errno name or null}.
"""

import errno
import json
import socket
import struct
import sys

TYPES = {
    "tcp": (socket.SOCK_STREAM, socket.IPPROTO_TCP),
    "udp": (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
    "sctp": (socket.SOCK_STREAM, 132),
    "mptcp": (socket.SOCK_STREAM, 262),
}
IP_BIND_ADDRESS_NO_PORT = 24


def main() -> None:
    spec = json.loads(sys.argv[1])
    kind, ver = spec["sock"][:-1], spec["sock"][-1]
    family, loopback = (socket.AF_INET6, "::1") if ver == "6" else (socket.AF_INET, "127.0.0.1")
    typ, proto = TYPES[kind]
    how = spec["how"]
    held, ports, error = [], [], None
    for _ in range(spec.get("max", 16)):
        s = socket.socket(family, typ, proto)
        held.append(s)
        try:
            if how == "bind0":
                s.bind((loopback, 0))
            elif how == "listen":
                s.listen()
            elif how in ("connect", "connect_noport"):
                # No TIME_WAIT left behind to hold the port: reset on close.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if how == "connect_noport":
                    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    s.bind((loopback, 0))
                s.connect((loopback, spec["peer"]))
            elif how == "sendto":
                s.sendto(b"x", (loopback, spec["peer"]))
            else:
                raise SystemExit(f"autobind.py: unknown way {how!r}")
        except OSError as e:
            error = errno.errorcode.get(e.errno or 0, str(e.errno))
            break
        ports.append(s.getsockname()[1])
    print(json.dumps({"ports": ports, "error": error}))


if __name__ == "__main__":
    main()
