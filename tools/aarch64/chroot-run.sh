#!/usr/bin/env bash
# Run a command as root inside an arm64 userland, every aarch64 program under qemu-user.
#
#   unshare --user --map-root-user --mount --pid --fork --kill-child \
#     tools/aarch64/chroot-run.sh QEMU ROOT CPUINFO HOME PIPCACHE COMMAND...
#
# Called by check.sh in fresh user, mount and PID namespaces, so that nothing below outlives the
# command: binfmt_misc is mounted privately (Linux >= 6.7 gives each user namespace its own), with
# QEMU registered for aarch64 ELF files with the F flag (the kernel opens QEMU now, so the userland
# needs no copy of it); /proc, /sys, /dev and a fresh /tmp are mounted in ROOT; CPUINFO (a Raspberry Pi's
# /proc/cpuinfo, see README.md) is bound over ROOT/proc/cpuinfo; HOME is bound on ROOT/home/pi and
# PIPCACHE on its .cache/pip. Then chroot ROOT COMMAND. Where a private binfmt_misc cannot be had,
# a registration the host already has is used; failing that, exit 77 with the reason on stderr.
# QEMU_CPU in the environment picks the emulated core (qemu-user reads it).
set -euo pipefail
[ $# -ge 6 ] || { echo "usage: $0 QEMU ROOT CPUINFO HOME PIPCACHE COMMAND..." >&2; exit 2; }
qemu=$1 root=$2 cpuinfo=$3 home=$4 pipcache=$5
shift 5

binfmt=/proc/sys/fs/binfmt_misc
# The aarch64 ELF header (as Debian's qemu-user-static registers it); F: the interpreter is opened
# now, from this mount namespace, not looked up inside the chroot later.
magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
if mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null; then
  [ -e "$binfmt/qemu-aarch64" ] ||
    printf '%s' ":qemu-aarch64:M::$magic:$mask:$qemu:F" >"$binfmt/register" 2>/dev/null || true
fi

mount -t proc proc "$root/proc"
mount --bind "$cpuinfo" "$root/proc/cpuinfo"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"  # pip's scratch space, gone with the namespace
mount --bind "$home" "$root/home/pi"
mount --bind "$pipcache" "$root/home/pi/.cache/pip"

if ! chroot "$root" /bin/true 2>/dev/null; then
  echo "cannot run aarch64 programs in a chroot: no private binfmt_misc (needs Linux >= 6.7;" \
    "this is $(uname -r)) and no aarch64 registration with the F flag on the host" >&2
  exit 77
fi
exec chroot "$root" "$@"
