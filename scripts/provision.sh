#!/usr/bin/env bash
# Sets a machine up for netemu: Debian packages, then a venv with netemu installed (editable).
# The one list of packages: the host (scripts/test, scripts/demo), the Vagrant lab (Vagrantfile)
# and the CI lab VM image (scripts/labvm, run in its chroot) all run this script. Idempotent; apt
# only runs when a package is missing, pip only when setup.cfg is newer than the venv.
#   scripts/provision.sh [--venv DIR] [--no-venv] [--deps-only] [--image]
#     --deps-only  install netemu's dependencies (setup.cfg: install_requires + test extras) but
#                  not netemu itself: the lab VM image, whose checkout is mounted at run time
#     --image      we are building a root file system in a chroot: write the boot-time kernel
#                  configuration but never load modules or set sysctls (that would be the host's kernel)
# Environment: NETEMU_LABVM_PACKAGES=1 adds the full-kernel extras (IPVS, Open vSwitch) and the
# boot-time modules and sysctls; NETEMU_HOST_PACKAGES=1 adds what a host needs to boot the lab VM.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="${NETEMU_VENV:-$here/.venv}"
make_venv=1
deps_only=0
image=0
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv="$2"; shift 2 ;;
    --no-venv) make_venv=0; shift ;;
    --deps-only) deps_only=1; shift ;;
    --image) image=1; shift ;;
    *) echo "provision.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Kernel-facing tools, Mininet (a Debian module: the venv sees it through system site-packages),
# the nftables binding, etcd for the etcd store backend, kubectl-free: kubectl comes from the user.
PACKAGES=(
  iproute2 iptables nftables conntrack ipset ethtool bridge-utils net-tools iputils-ping procps psmisc kmod
  tcpdump wrk
  bind9-dnsutils curl wget   # userland images' tools in pods: nslookup/dig (busybox, jessie-dnsutils), curl, wget
  mininet python3 python3-venv python3-pip python3-nftables
  etcd-server etcd-client
  ca-certificates
  chromium   # the experiments' report.html is rendered headless in the tests (every image loaded)
)
if [ "${NETEMU_LABVM_PACKAGES:-0}" = 1 ]; then   # full-kernel extras (the lab VM and Vagrant)
  PACKAGES+=(ipvsadm openvswitch-switch openvswitch-testcontroller)
fi
if [ "${NETEMU_HOST_PACKAGES:-0}" = 1 ]; then    # what the host needs to boot the lab VM
  PACKAGES+=(qemu-system-x86 qemu-utils debootstrap debian-archive-keyring e2fsprogs)
fi

# What kube-proxy (iptables and IPVS modes), Mininet's OVS switch and TCLink need from the kernel,
# loaded at every boot of a lab machine (systemd-modules-load; scripts/labvm's init reads it too).
LAB_MODULES=(ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter openvswitch sch_netem dummy veth)
# Routing between pods and nodes, bridged pod traffic through netfilter (upstream kube-proxy's
# requirement), IPVS NAT replies tracked by conntrack (kube-proxy's IPVS mode sets the same).
LAB_SYSCTLS=(
  net.ipv4.ip_forward=1
  net.bridge.bridge-nf-call-iptables=1
  net.bridge.bridge-nf-call-ip6tables=1
  net.ipv4.vs.conntrack=1
)

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "provision: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

configure_lab_kernel() {   # only for lab machines (NETEMU_LABVM_PACKAGES=1), never the host
  mkdir -p /etc/modules-load.d /etc/modprobe.d /etc/sysctl.d
  printf '# netemu lab (scripts/provision.sh)\n' > /etc/modules-load.d/netemu.conf
  printf '%s\n' "${LAB_MODULES[@]}" >> /etc/modules-load.d/netemu.conf
  # no stray dummy0 when the module loads: kube-proxy (and the tests) make the dummies they need
  printf '# netemu lab (scripts/provision.sh)\noptions dummy numdummies=0\n' > /etc/modprobe.d/netemu.conf
  printf '# netemu lab (scripts/provision.sh)\n' > /etc/sysctl.d/90-netemu.conf
  printf '%s\n' "${LAB_SYSCTLS[@]/=/ = }" >> /etc/sysctl.d/90-netemu.conf
  if [ "$image" = 0 ]; then   # a running lab machine: apply now, no reboot needed
    modprobe -a "${LAB_MODULES[@]}"
    sysctl -q -p /etc/sysctl.d/90-netemu.conf
  fi
}

python_requirements() {   # install_requires + the test extras, one per line, read from setup.cfg
  /usr/bin/python3 - "$here/setup.cfg" <<'PY'
import configparser, sys
cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])
text = cfg["options"]["install_requires"] + "\n" + cfg["options.extras_require"]["test"]
print("\n".join(line.strip() for line in text.splitlines() if line.strip()))
PY
}

make_the_venv() {
  if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  local stamp="$venv/.netemu-installed"
  if [ -f "$stamp" ] && [ ! "$here/setup.cfg" -nt "$stamp" ]; then
    return
  fi
  if [ "$deps_only" = 1 ]; then
    local reqs
    mapfile -t reqs < <(python_requirements)
    "$venv/bin/pip" install -q --disable-pip-version-check "${reqs[@]}"
  else
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
  fi
  touch "$stamp"
}

install_packages
if [ "${NETEMU_LABVM_PACKAGES:-0}" = 1 ]; then
  configure_lab_kernel
fi
if [ "$make_venv" = 1 ]; then
  make_the_venv
fi
