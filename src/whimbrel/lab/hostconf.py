"""Configuration files of one lab host's libvirtd, virtlockd and QEMU driver."""

from __future__ import annotations

from pathlib import Path

from whimbrel.lab.topology import PKI_DIR, LabHost, shared_dir
from whimbrel.pki import allowed_dns


def _conf(values: dict[str, object]) -> str:
    lines = []
    for key, val in values.items():
        if isinstance(val, bool):
            val = int(val)
        if isinstance(val, int):
            lines.append(f"{key} = {val}")
        elif isinstance(val, list):
            lines.append(f"{key} = [ " + ", ".join(f'"{v}"' for v in val) + " ]")
        else:
            lines.append(f'{key} = "{val}"')
    return "\n".join(lines) + "\n"


def libvirtd_conf(host: LabHost) -> str:
    return _conf(
        {
            # TLS only: the manager and other hosts authenticate with certificates
            # from the Whimbrel CA; plain TCP is never opened.
            "listen_tls": 1,
            "listen_tcp": 0,
            "listen_addr": host.mgmt_ip,
            "key_file": f"{PKI_DIR}/serverkey.pem",
            "cert_file": f"{PKI_DIR}/servercert.pem",
            "ca_file": f"{PKI_DIR}/cacert.pem",
            "tls_no_verify_certificate": 0,
            # Clients: the manager and this host's cluster peers, nobody else the CA signed.
            "tls_allowed_dn_list": allowed_dns(host.lab.clusters[host.cluster]),
            "auth_tls": "none",
            "auth_unix_ro": "none",
            "auth_unix_rw": "none",
            "unix_sock_group": "root",
            "unix_sock_rw_perms": "0770",
            "host_uuid": host.host_uuid,
            "log_outputs": "3:file:/var/log/libvirt/libvirtd.log",
            "max_clients": 200,
            "keepalive_interval": 5,
            "keepalive_count": 3,
        }
    )


def qemu_conf(host: LabHost) -> str:
    return _conf(
        {
            # The lab runs QEMU as root without cgroups, namespaces or a security
            # driver: none of them exists inside a network namespace on a bare machine.
            "user": "root",
            "group": "root",
            "dynamic_ownership": 0,
            "remember_owner": 0,
            "security_driver": "none",
            "cgroup_controllers": [],
            "namespaces": [],
            "stdio_handler": "file",
            # Disk leases on the cluster's shared storage: a disk is never open in
            # two running VMs, wherever they run.
            "lock_manager": "lockd",
            "migration_address": host.migration_ip,
            "migration_host": host.migration_ip,
            "migration_port_min": 49152,
            "migration_port_max": 49215,
            "migrate_tls_x509_cert_dir": f"{PKI_DIR}/qemu",
            "migrate_tls_x509_verify": 1,
        }
    )


def lockd_conf(host: LabHost) -> str:
    return _conf(
        {
            "auto_disk_leases": 1,
            "require_lease_for_disks": 1,
            "file_lockspace_dir": f"{shared_dir(host.cluster)}/leases",
        }
    )


def virtlockd_conf() -> str:
    return _conf({"log_outputs": "3:file:/var/log/libvirt/virtlockd.log"})


def write_configs(host: LabHost, etc: Path) -> None:
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "qemu").mkdir(exist_ok=True)
    files = {
        "libvirtd.conf": libvirtd_conf(host),
        "qemu.conf": qemu_conf(host),
        "qemu-lockd.conf": lockd_conf(host),
        "virtlockd.conf": virtlockd_conf(),
        "libvirt.conf": "",
    }
    for name, text in files.items():
        (etc / name).write_text(text)


def passwd_files(host_dir: Path) -> tuple[Path, Path]:
    """/etc/passwd and /etc/group with the user libvirt's QEMU driver insists on.

    libvirt resolves its built-in 'libvirt-qemu' user before it reads qemu.conf;
    Debian creates it only with libvirt-daemon-system, which would replace init.
    """
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    if "\nlibvirt-qemu:" not in "\n" + passwd:
        passwd += "libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n"
    for g in ("libvirt-qemu:x:64055:", "kvm:x:64056:"):
        if "\n" + g.split(":")[0] + ":" not in "\n" + group:
            group += g + "\n"
    passwd_file, group_file = host_dir / "passwd", host_dir / "group"
    passwd_file.write_text(passwd)
    group_file.write_text(group)
    return passwd_file, group_file
