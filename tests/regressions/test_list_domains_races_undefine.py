"""A domain undefined between libvirt's listing and the look at it is simply gone.

Seen in bench/lifecycle.py: the inventory monitor's list_domains() raised a raw
'Domain not found' libvirtError when a VM was deleted while it listed.
"""

from __future__ import annotations

import uuid

from whimbrel.domain.vm import DomainSpec
from whimbrel.drivers.libvirt.driver import LibvirtHost


def test_list_domains_skips_a_domain_undefined_meanwhile() -> None:
    host = LibvirtHost.open("test:///default")  # libvirt's own in-memory test driver
    try:
        host.define(DomainSpec("ephemeral", str(uuid.uuid4()), 64, 1, "test", "pc"))
        stale = host.conn.listAllDomains(0)
        host.undefine("ephemeral")
        host.conn.listAllDomains = lambda _flags=0: stale  # replay the earlier listing
        names = [d.name for d in host.list_domains()]
        assert "ephemeral" not in names
        assert "test" in names  # the test driver's own domain is still reported
    finally:
        host.close()
