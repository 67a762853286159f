# Sourced by scripts/run and scripts/test: installs the Debian packages Kiln runs VMs with.
# QEMU comes from bookworm-backports (10.x): a plain `apt-get install qemu-system-x86` would pull
# bookworm's 7.2 and remove the backported qemu-utils these machines ship.

apt_as_root() {
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  else
    echo "kiln: missing $*; install it (as root) and retry" >&2
    exit 1
  fi
}

ensure_backports_source() {
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/kiln-bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
}

# Tools for volumes (qemu-img, qemu-nbd), boot files (debugfs), VMs (qemu-system-x86_64) and
# their networking (ip, nft).
install_vm_packages() {
  local missing=()
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nft >/dev/null || missing+=(nftables)
  command -v debugfs >/dev/null || missing+=(e2fsprogs)
  local need_qemu=0
  command -v qemu-img >/dev/null || need_qemu=1
  command -v qemu-system-x86_64 >/dev/null || need_qemu=1
  if [ ${#missing[@]} -eq 0 ] && [ $need_qemu -eq 0 ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "kiln: missing ${missing[*]} ${need_qemu:+qemu-system-x86/qemu-utils}; install them as root" >&2
    return 0
  fi
  if [ $need_qemu -eq 1 ] && grep -qs bookworm /etc/os-release; then
    ensure_backports_source
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -t bookworm-backports qemu-system-x86 qemu-utils
  elif [ $need_qemu -eq 1 ]; then
    apt-get update -qq
    apt_as_root qemu-system-x86 qemu-utils
  fi
  [ ${#missing[@]} -eq 0 ] || { apt-get update -qq; apt_as_root "${missing[@]}"; }
}
