"""A two-cluster Hyper-V estate behind the transport double, and a manager on it.

alpha: HV01, HV02 on C:\\ClusterStorage\\Volume1; beta: HV03, HV04 on Volume2;
one domain, Kerberos everywhere, delegation granted between the clusters'
nodes, one migration network 10.10.20.0/24.  The fixtures ``estate`` and ``hv`` are in
conftest.py.
"""

from __future__ import annotations

from tests.conftest import Api
from tests.hyperv_double.estate import HyperVEstate

NODES = {"alpha": ("HV01", "HV02"), "beta": ("HV03", "HV04")}
CSV = {"alpha": "C:\\ClusterStorage\\Volume1", "beta": "C:\\ClusterStorage\\Volume2"}


def build(ps51: bool = False, domain: str = "corp.example", grant_all: bool = True) -> HyperVEstate:
    return HyperVEstate.two_clusters(domain, ps51, grant_all)


def register(api: Api, estate: HyperVEstate) -> None:
    """alpha and beta in Whimbrel, with their nodes."""
    for cluster, nodes in NODES.items():
        shared = [CSV[cluster].replace("\\", "/")]
        api.ok("POST", "/clusters", {"name": cluster, "shared_paths": shared})
        for n in nodes:
            api.ok("POST", "/hosts", {"name": n.lower(), "uri": estate.uri(n), "cluster": cluster})


def new_vm(api: Api, name: str, host: str, ha: bool = True, **kw: object) -> None:
    body = {
        "name": name,
        "host": host,
        "memory_mib": 4096,
        "vcpus": 2,
        "disks": [{"size_mib": 40960, "pool": "Volume1"}],
        "networks": ["Prod"],
        **kw,
    }
    api.ok("POST", "/vms", body)
    if ha:
        api.ok("POST", f"/vms/{name}/ha", {"enabled": True, "priority": 3})
