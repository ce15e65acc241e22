#!/usr/bin/env bash
# make handoff-data: a realistic base/modified pair for the VM handoff
# benchmark (BenchmarkHandoffDataset), in $GDP_HANDOFF_DATA (default
# /var/tmp/gdpnet-handoff-data):
#
#   disk-base.img  a debootstrap'd Debian (minbase) in a 1 GiB ext4 image
#   disk-mod.img   the same image, loop-mounted, after `apt-get install`
#                  of more packages in a chroot (maintainer scripts run,
#                  apt's downloads cleaned) and files written (a source tree,
#                  a log, a user's config)
#   mem-base.img   the RAM of a booted guest (Debian's cloud kernel, busybox
#                  initramfs, disk-mod.img mounted read-only) before its workload
#   mem-mod.img    the same guest's RAM after the workload (copies, decompresses
#                  and tars files from the disk, runs the disk's Python)
#   info.txt       what was built, with sizes and the package list
#
# Idempotent: each file is built only when missing (delete it to rebuild),
# and written under a temporary name first. Needs root (debootstrap, loop
# mount, chroot), network access to a Debian mirror, qemu-system-x86,
# busybox-static and the guest kernel (scripts/handoff-kernel.sh).
# Knobs: GDP_HANDOFF_SUITE (bookworm), GDP_HANDOFF_MIRROR
# (http://deb.debian.org/debian), GDP_HANDOFF_DISK_MIB (1024),
# GDP_HANDOFF_MEM_MIB (256), GDP_HANDOFF_PACKAGES ("python3 git").
set -euo pipefail
out=${GDP_HANDOFF_DATA:-/var/tmp/gdpnet-handoff-data}
suite=${GDP_HANDOFF_SUITE:-bookworm}
mirror=${GDP_HANDOFF_MIRROR:-http://deb.debian.org/debian}
disk_mib=${GDP_HANDOFF_DISK_MIB:-1024}
mem_mib=${GDP_HANDOFF_MEM_MIB:-256}
packages=${GDP_HANDOFF_PACKAGES:-python3 git}
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

if [ "$(id -u)" != 0 ]; then echo "handoff-data: needs root (debootstrap, loop mount, chroot)" >&2; exit 1; fi
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
  apt-get install -y -qq "${need[@]}" || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }
fi
mkdir -p "$out/debs"
work="$out/work"
mnt="$work/mnt"
cleanup() {
  for m in "$mnt/proc" "$mnt/sys" "$mnt/dev" "$mnt"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true; done
}
trap cleanup EXIT

# 1. The base: debootstrap --variant=minbase into a tree, then mkfs.ext4 -d.
if [ ! -f "$out/disk-base.img" ]; then
  rm -rf "$work/root"
  mkdir -p "$work"
  echo "handoff-data: debootstrap $suite (minbase) from $mirror"
  debootstrap --variant=minbase --cache-dir="$out/debs" "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -f "$out/disk-base.tmp"
  truncate -s "${disk_mib}M" "$out/disk-base.tmp"
  # A fixed UUID and hash seed: the same tree gives the same layout.
  mkfs.ext4 -q -F -b 4096 -L gdp-base -U 6f0b6c1e-9d3a-4c1b-8a57-2b1f0e6d4c3a \
    -E hash_seed=2c8e4b7a-1f6d-4e2a-9b3c-5d7e8f901a2b,lazy_itable_init=0,lazy_journal_init=0 \
    -d "$work/root" "$out/disk-base.tmp"
  e2fsck -fn "$out/disk-base.tmp" >/dev/null
  mv "$out/disk-base.tmp" "$out/disk-base.img"
  rm -rf "$work/root"
fi

# 2. The modified image: a copy, loop-mounted; packages installed with apt
# in a chroot; files written.
if [ ! -f "$out/disk-mod.img" ]; then
  mkdir -p "$mnt"
  cp --sparse=always "$out/disk-base.img" "$out/disk-mod.tmp"
  mount -o loop "$out/disk-mod.tmp" "$mnt"
  mount -t proc proc "$mnt/proc"
  mount -t sysfs sys "$mnt/sys"
  mount --bind /dev "$mnt/dev"
  cp /etc/resolv.conf "$mnt/etc/resolv.conf" 2>/dev/null || true
  echo "handoff-data: apt-get install $packages (chroot)"
  chroot "$mnt" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages && apt-get clean" >"$work/apt.log" 2>&1 ||
    { tail -20 "$work/apt.log" >&2; exit 1; }
  # Files written by a user: a source tree, a git repository of it, a log.
  mkdir -p "$mnt/home/dev/src"
  cp -a /usr/local/go/src/net "$mnt/home/dev/src/" 2>/dev/null || cp -a /usr/share/doc "$mnt/home/dev/src/"
  chroot "$mnt" sh -c 'cd /home/dev/src && git init -q && git add -A && git -c user.name=dev -c user.email=dev@example.org commit -qm import' >>"$work/apt.log" 2>&1 || true
  seq 1 200000 | sed 's/^/2026-12-05T12:00:00Z cloudlet-a handoffd: request /' >"$mnt/var/log/app.log"
  printf 'alias ll="ls -l"\nexport EDITOR=vi\n' >"$mnt/root/.bashrc.local"
  umount "$mnt/dev" "$mnt/sys" "$mnt/proc"
  umount "$mnt"
  e2fsck -fn "$out/disk-mod.tmp" >/dev/null
  mv "$out/disk-mod.tmp" "$out/disk-mod.img"
fi

# 3. Memory before and after a workload, from a real guest (Go: QEMU over
# QMP), then info.txt with the changed-block counts.
if [ ! -f "$out/mem-base.img" ] || [ ! -f "$out/mem-mod.img" ]; then "$here/scripts/handoff-kernel.sh"; fi
(cd "$here" && go run ./handoffd/mkdata -out "$out" -mem-mib "$mem_mib" -note "suite $suite, mirror $mirror, packages added: $packages")
cat "$out/info.txt"
