#!/usr/bin/env bash
# The guest kernel of the QEMU handoff tests: Debian's linux-image cloud
# package (vmlinuz + modules, unsigned content unpacked with dpkg-deb) in
# $GDP_HANDOFF_KERNEL_DIR (default /var/cache/gdp/handoff-kernel). Needs apt
# sources; does nothing when the kernel is already there.
set -euo pipefail
dir=${GDP_HANDOFF_KERNEL_DIR:-/var/cache/gdp/handoff-kernel}
if ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then exit 0; fi
pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-cloud-amd64$' | awk '{print $1}' | sort -V | tail -1)
if [ -z "$pkg" ]; then echo "handoff-kernel: no linux-image-*-cloud-amd64 in the apt sources (apt-get update?)" >&2; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1)
mkdir -p "$dir"
dpkg-deb -x "$tmp"/*.deb "$dir"
echo "handoff-kernel: $pkg in $dir"
