#!/usr/bin/python3
"""Test-only QEMU wrapper: the same QEMU with its own image locking switched off.

QEMU locks disk images itself (OFD locks), and it opens them before libvirt
takes its disk leases, so a second start is normally refused by QEMU first.
With this wrapper as a domain's <emulator>, only virtlockd's lease on the
cluster's shared storage stands between two writers.
"""

import json
import os
import sys

QEMU = "/usr/bin/qemu-system-x86_64"
args = sys.argv[1:]
for i in range(1, len(args)):
    if args[i - 1] == "-blockdev" and args[i].startswith("{"):
        node = json.loads(args[i])
        if node.get("driver") == "file":
            node["locking"] = "off"
            args[i] = json.dumps(node)
os.execv(QEMU, [QEMU, *args])
