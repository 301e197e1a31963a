"""Listen to portowners events and print them, one JSON object a line.

Run by tests/vm/test_events.py in other namespaces and as other users (so
standard library only, Debian's python3). Joins the groups named in argv[1]
("denials" or "denials,grants"), prints {"ready": true} once joined, then
every event until none came for argv[2] seconds after the first (for the
first: argv[3] seconds, 60 by default), then {"overruns": N}.
Joining without the right prints {"error": "EPERM"} and exits 1.
"""

import errno
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rawnl import Listener


def main() -> int:
    groups = tuple(sys.argv[1].split(","))
    try:
        listener = Listener(groups)
    except PermissionError as e:
        print(json.dumps({"error": errno.errorcode[e.errno or 0]}), flush=True)
        return 1
    with listener:
        print(json.dumps({"ready": True}), flush=True)
        first = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
        for event in listener.events(float(sys.argv[2]), first=first):
            print(json.dumps(event), flush=True)
        print(json.dumps({"overruns": listener.overruns}), flush=True)
    return 0


sys.exit(main())
