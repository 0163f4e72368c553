#!/usr/bin/env bash
# Install what Whimbrel and its lab need on a Debian 12 machine, as root:
# the Debian packages (QEMU, libvirt without systemd, busybox, a compiler) and
# the Python virtual environment with pinned dependencies.  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# libvirt-daemon-system is left out on purpose: on Debian 12 it pulls in
# systemd-sysv, which replaces init.  The lab starts libvirtd itself.
PACKAGES=(
  qemu-system-x86 qemu-utils busybox-static
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  pkg-config gcc libc6-dev iproute2 util-linux mount
  postgresql-15   # the tests prove the store on a real PostgreSQL server too
  chromium        # the web console's tests drive it headless (Playwright)
  xorriso         # ISO 9660 images for the tests of VMs with a CD-ROM
  # the lab's Active Directory (a Samba AD DC) for the Hyper-V delegation tests
  samba samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
stamp=/var/lib/apt/periodic/whimbrel-update-stamp
if [ ${#missing[@]} -gt 0 ] || ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
    apt-get update -q
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-upgrade "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f .venv/.deps-stamp ] || [ pyproject.toml -nt .venv/.deps-stamp ] || [ requirements.lock -nt .venv/.deps-stamp ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c requirements.lock -e '.[dev]'
  touch .venv/.deps-stamp
fi
