#!/usr/bin/env bash
# Sets a machine up for netemu: Debian packages, then a venv with netemu installed (editable).
# The one list of packages: the host (scripts/setup), the Vagrant lab and the CI lab VM all run
# this script. Idempotent; apt only runs when a package is missing.
#   scripts/provision.sh [--venv DIR] [--no-venv]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="${NETEMU_VENV:-$here/.venv}"
make_venv=1
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv="$2"; shift 2 ;;
    --no-venv) make_venv=0; shift ;;
    *) echo "provision.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Kernel-facing tools, Mininet (a Debian module: the venv sees it through system site-packages),
# the nftables binding, etcd for the etcd store backend, kubectl-free: kubectl comes from the user.
PACKAGES=(
  iproute2 iptables nftables conntrack ipset ethtool bridge-utils net-tools iputils-ping procps psmisc kmod
  mininet python3 python3-venv python3-pip python3-nftables
  etcd-server etcd-client
  ca-certificates
)
if [ "${NETEMU_LABVM_PACKAGES:-0}" = 1 ]; then   # full-kernel extras (the lab VM and Vagrant)
  PACKAGES+=(ipvsadm openvswitch-switch openvswitch-testcontroller)
fi
if [ "${NETEMU_HOST_PACKAGES:-0}" = 1 ]; then    # what the host needs to boot the lab VM
  PACKAGES+=(qemu-system-x86 qemu-utils debootstrap e2fsprogs)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "provision: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$make_venv" = 1 ]; then
  if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  stamp="$venv/.netemu-installed"
  if [ ! -f "$stamp" ] || [ "$here/setup.cfg" -nt "$stamp" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
    touch "$stamp"
  fi
fi
