#!/usr/bin/env bash
# The whole pipeline (Numba kernels included) on aarch64, under qemu-user, against this x86-64 run.
#
#   tools/aarch64/check.sh [IMAGE]
#
# Builds (once, cached) a Debian Bookworm arm64 userland ~ Raspberry Pi OS Bookworm and aarch64
# site-packages, runs tools/aarch64/compare.py on IMAGE under qemu-aarch64-static for each
# configuration and natively with the project's venv, and compares the landmarks. Prints one PASS
# or FAIL line per configuration and exits 1 on a mismatch beyond tolerance (or a crash or time-out),
# 0 when everything matches, and 0 with a "SKIPPED: <reason>" line when qemu-user-static and
# debootstrap are missing and cannot be installed. See tools/aarch64/README.md.
#
# Environment:
#   BLAZEPOSE_EDGE_AARCH64_CACHE    cache folder (default ~/.cache/blazepose-edge/aarch64)
#   BLAZEPOSE_EDGE_AARCH64_IMAGE    image when none is given (default <media>/images/yoga.jpg)
#   BLAZEPOSE_EDGE_AARCH64_CONFIGS  which of "pip rpios-litert rpios-tflite" to run (default: all)
#   BLAZEPOSE_EDGE_AARCH64_CPU      emulated core: cortex-a72 (Pi 4, default) or cortex-a76 (Pi 5)
#   BLAZEPOSE_EDGE_AARCH64_TIMEOUT  limit for the whole check in seconds (default 1500)
#   BLAZEPOSE_EDGE_AARCH64_MIRROR   Debian mirror for debootstrap (default: the one apt uses here)
#   BLAZEPOSE_EDGE_PYTHON           the x86-64 Python with the project installed (default .venv)
#   BLAZEPOSE_EDGE_MEDIA            test media folder (default ../shared/media)
set -euo pipefail

PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$PROJECT/tools/aarch64"
START=$(date +%s)
TOTAL=${BLAZEPOSE_EDGE_AARCH64_TIMEOUT:-1500}
DEADLINE=$((START + TOTAL))
CACHE=${BLAZEPOSE_EDGE_AARCH64_CACHE:-${HOME:-/root}/.cache/blazepose-edge/aarch64}
MEDIA=${BLAZEPOSE_EDGE_MEDIA:-$PROJECT/../shared/media}
IMAGE=${1:-${BLAZEPOSE_EDGE_AARCH64_IMAGE:-$MEDIA/images/yoga.jpg}}
CONFIGS=${BLAZEPOSE_EDGE_AARCH64_CONFIGS:-pip rpios-litert rpios-tflite}
CPU=${BLAZEPOSE_EDGE_AARCH64_CPU:-cortex-a72}
# The Debian archive this machine's apt already uses (deb822 or one-line sources).
apt_mirror() {
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
  } | grep -v -e security -e updates | grep -m1 '/debian/\?$' || true
}
MIRROR=${BLAZEPOSE_EDGE_AARCH64_MIRROR:-$(apt_mirror)}
PY=${BLAZEPOSE_EDGE_PYTHON:-$PROJECT/.venv/bin/python}

# --- the pinned recipe: any change here gives new cache keys (old entries are pruned) -------------
RECIPE=1
SUITE=bookworm
DEB_INCLUDE=python3,python3-minimal,libpython3.11-stdlib,libstdc++6,libgomp1,python3-numpy
# "pip": what `pip install` gives on a Pi without apt's picamera2: the same pins as the x86 venv.
PIP_REQS="ai-edge-litert==2.3.0 numba==0.68.1 llvmlite==0.50.0 numpy==2.4.6 opencv-python-headless==5.0.0.93"
# "rpios": what install.sh gives on Raspberry Pi OS with picamera2: the system numpy (apt's
# python3-numpy, 1.24.2 in Bookworm) and, with numpy 1.x, OpenCV 4.11.0.86; tflite-runtime too.
RPIOS_REQS="ai-edge-litert==2.3.0 tflite-runtime==2.14.0 numba==0.68.1 llvmlite==0.50.0 opencv-python-headless"
RPIOS_OPENCV=4.11.0.86
PLATFORMS=()
for v in $(seq 36 -1 17); do PLATFORMS+=(--platform "manylinux_2_${v}_aarch64"); done  # glibc 2.36
PLATFORMS+=(--platform manylinux2014_aarch64)

say() { echo "aarch64: $*"; }
skip() { echo "SKIPPED: aarch64 check: $*"; exit 0; }
die() { echo "FAIL: aarch64 check: $*"; exit 1; }
elapsed() { echo $(($(date +%s) - START)); }
key() { printf '%s' "$*" | sha256sum | cut -c1-12; }

# Run "$@" with a time limit: at most $1 seconds, and never past the check's deadline.
bounded() {
  local max=$1 left
  shift
  left=$((DEADLINE - $(date +%s)))
  [ "$left" -gt 0 ] || die "out of time (limit ${TOTAL}s, BLAZEPOSE_EDGE_AARCH64_TIMEOUT)"
  [ "$left" -lt "$max" ] && max=$left
  timeout -k 10 "$max" "$@"
}

show_log() { grep -v "is ignored: it is neither" "$1" | tail -n "${2:-15}" | sed -e 's/^/    | /' || true; }

# --- (a) tools --------------------------------------------------------------------------------
[ "$(uname -m)" = x86_64 ] || skip "the host is $(uname -m), not x86-64 (on aarch64, run compare.py directly)"
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    skip "debootstrap needs root (or passwordless sudo)"
  fi
fi
if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || skip "qemu-user-static/debootstrap missing and no apt-get to install them"
  say "apt-get install qemu-user-static debootstrap"
  if ! { bounded 300 "${as_root[@]}" apt-get update -qq &&
    bounded 300 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      qemu-user-static debootstrap; } >/tmp/blazepose-edge-aarch64-apt.log 2>&1; then
    show_log /tmp/blazepose-edge-aarch64-apt.log 5
    skip "could not install qemu-user-static and debootstrap with apt-get"
  fi
  command -v qemu-aarch64-static >/dev/null 2>&1 || skip "qemu-aarch64-static not found after installing"
fi
QEMU=$(command -v qemu-aarch64-static)
[ -x "$PY" ] || die "no x86-64 Python at $PY: run ./install.sh first (or set BLAZEPOSE_EDGE_PYTHON)"
IMAGE=$(realpath -e "$IMAGE" 2>/dev/null) || die "image not found: ${1:-${BLAZEPOSE_EDGE_AARCH64_IMAGE:-$MEDIA/images/yoga.jpg}}"
for cfg in $CONFIGS; do
  case $cfg in pip | rpios-litert | rpios-tflite) ;; *) die "unknown configuration $cfg" ;; esac
done

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "another check holds $CACHE/.lock"

# --- (b) the arm64 userland -------------------------------------------------------------------
ROOT_KEY=$(key "$RECIPE $SUITE arm64 minbase $DEB_INCLUDE")
ROOT="$CACHE/root-$ROOT_KEY"
build_root() {
  local tmp="$ROOT.tmp" log="$CACHE/build-root.log" t0
  t0=$(date +%s)
  rm -rf "$tmp"
  [ -n "$MIRROR" ] || skip "no Debian archive in apt's sources here; set BLAZEPOSE_EDGE_AARCH64_MIRROR"
  say "building Debian $SUITE arm64 userland (debootstrap --foreign from $MIRROR)"
  if ! bounded 900 "${as_root[@]}" debootstrap --foreign --arch=arm64 --variant=minbase \
    --include="$DEB_INCLUDE" "$SUITE" "$tmp" "$MIRROR" >"$log" 2>&1; then
    show_log "$log"
    die "debootstrap failed (log: $log)"
  fi
  # The foreign stage unpacks only the base; the included packages are just downloaded.
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do "${as_root[@]}" dpkg -x "$deb" "$tmp"; done
  # What update-alternatives would have made (numpy links libblas.so.3 and liblapack.so.3).
  "${as_root[@]}" ln -sf blas/libblas.so.3 "$tmp/usr/lib/aarch64-linux-gnu/libblas.so.3"
  "${as_root[@]}" ln -sf lapack/liblapack.so.3 "$tmp/usr/lib/aarch64-linux-gnu/liblapack.so.3"
  "${as_root[@]}" rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/usr/share/doc \
    "$tmp"/usr/share/man "$tmp"/usr/share/locale "$tmp"/usr/share/info "$tmp"/debootstrap
  [ -x "$tmp/usr/bin/python3.11" ] || die "the arm64 userland has no python3.11"
  [ "$(id -u)" = 0 ] || "${as_root[@]}" chown -R "$(id -u):$(id -g)" "$tmp"
  mv "$tmp" "$ROOT"
  say "userland ready in $(($(date +%s) - t0)) s"
}
[ -x "$ROOT/usr/bin/python3.11" ] || build_root
for old in "$CACHE"/root-*; do
  if [ -e "$old" ] && [ "$old" != "$ROOT" ]; then rm -rf "$old"; fi
done
SYSNP=
for d in "$ROOT"/usr/lib/python3/dist-packages/numpy-*-info; do  # numpy-1.24.2.egg-info
  SYSNP=$(basename "$d" | sed -n 's/^numpy-\([0-9.]*[0-9]\)[.-].*/\1/p')
done
[ -n "$SYSNP" ] || die "cannot read the arm64 system numpy version"

# qemu-user shows the guest the host's /proc/cpuinfo (x86 text). LiteRT's bundled cpuinfo library
# finds no ARM core there and dereferences NULL in cpuinfo_arm_linux_init (from XNNPACK's init in
# allocate_tensors). With -L, qemu opens ROOT/proc/cpuinfo instead when it exists: give it a
# Raspberry Pi's, one entry per host CPU (the cores sysfs reports). Written on every run.
write_cpuinfo() {
  local n i features variant part rev model revision
  n=$(nproc --all)
  case $CPU in
    cortex-a72)
      features="fp asimd evtstrm crc32 cpuid" variant=0x0 part=0xd08 rev=3
      model="Raspberry Pi 4 Model B Rev 1.4" revision=c03114
      ;;
    cortex-a76)
      features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
      variant=0x4 part=0xd0b rev=1 model="Raspberry Pi 5 Model B Rev 1.0" revision=c04170
      ;;
    *) die "BLAZEPOSE_EDGE_AARCH64_CPU must be cortex-a72 or cortex-a76, not $CPU" ;;
  esac
  mkdir -p "$ROOT/proc"
  {
    for ((i = 0; i < n; i++)); do
      printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$features"
      printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$rev"
    done
    printf 'Hardware\t: BCM2835\nRevision\t: %s\nSerial\t\t: 100000000badc0de\nModel\t\t: %s\n' "$revision" "$model"
  } >"$ROOT/proc/cpuinfo"
}
write_cpuinfo

# --- (c) aarch64 site-packages -----------------------------------------------------------------
pip_target() { # dest, then pip arguments
  local dest=$1
  shift
  bounded 900 "$PY" -m pip install --quiet --disable-pip-version-check --target "$dest" \
    "${PLATFORMS[@]}" --only-binary=:all: --python-version 3.11 --implementation cp "$@"
}
ensure_site() { # configuration -> SITE, its site-packages folder (built if missing)
  local kind=${1%%-*} reqs k dest tmp log t0
  case $kind in
    pip) reqs="$PIP_REQS" ;;
    rpios) reqs="$RPIOS_REQS numpy==$SYSNP opencv==$RPIOS_OPENCV root=$ROOT_KEY" ;;
  esac
  k=$(key "$RECIPE ${PLATFORMS[*]} $reqs")
  dest="$CACHE/site-$kind-$k"
  if [ ! -f "$dest/.complete" ]; then
    tmp="$dest.tmp" log="$CACHE/build-site-$kind.log" t0=$(date +%s)
    rm -rf "$tmp" "$dest"
    say "installing aarch64 wheels for '$kind' into the cache"
    if [ "$kind" = pip ]; then
      # shellcheck disable=SC2086
      pip_target "$tmp" $PIP_REQS >"$log" 2>&1 || { show_log "$log"; die "pip failed (log: $log)"; }
    else
      printf 'numpy==%s\nopencv-python-headless==%s\n' "$SYSNP" "$RPIOS_OPENCV" >"$CACHE/rpios-constraints.txt"
      # shellcheck disable=SC2086
      pip_target "$tmp" -c "$CACHE/rpios-constraints.txt" $RPIOS_REQS >"$log" 2>&1 ||
        { show_log "$log"; die "pip failed (log: $log)"; }
      # As with --system-site-packages on the Pi: apt's numpy, not a wheel.
      rm -rf "$tmp"/numpy "$tmp"/numpy-*.dist-info "$tmp"/numpy.libs
    fi
    rm -rf "${tmp:?}/bin"
    touch "$tmp/.complete"
    mv "$tmp" "$dest"
    say "'$kind' wheels ready in $(($(date +%s) - t0)) s"
  fi
  for old in "$CACHE/site-$kind-"*; do
    if [ -e "$old" ] && [ "$old" != "$dest" ]; then rm -rf "$old"; fi
  done
  SITE=$dest
}

# --- (d) run both sides and compare -----------------------------------------------------------
MODELS=${BLAZEPOSE_EDGE_MODELS:-$PROJECT/models}
[ -f "$MODELS/pose_landmark_full.tflite" ] || die "models missing in $MODELS: run ./install.sh"
RUN="$CACHE/last-run"
rm -rf "$RUN"
mkdir -p "$RUN"
say "image $IMAGE; configurations: $CONFIGS; emulated core $CPU; cache $CACHE"

t0=$(date +%s)
if ! bounded 300 env NUMBA_CACHE_DIR="$RUN/numba-x86_64" BLAZEPOSE_EDGE_MODELS="$MODELS" "$PY" \
  "$HERE/compare.py" run "$IMAGE" --out "$RUN/x86_64.json" >/dev/null 2>"$RUN/x86_64.log"; then
  show_log "$RUN/x86_64.log"
  die "the native x86-64 run failed"
fi
say "x86-64 run: $(($(date +%s) - t0)) s"

passed=0 failed=0
for cfg in $CONFIGS; do
  ensure_site "$cfg"
  case $cfg in
    rpios-tflite) backend=tflite_runtime ;;
    *) backend=ai_edge_litert ;;
  esac
  t0=$(date +%s)
  # A clean environment (qemu passes the host's to the guest); a fresh Numba cache, so the kernels
  # are JIT-compiled in the emulated process itself; no .pyc written into the project.
  set +e
  bounded 420 env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONNOUSERSITE=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$PROJECT:$SITE" NUMBA_CACHE_DIR="$RUN/numba-$cfg" \
    BLAZEPOSE_EDGE_MODELS="$MODELS" "$QEMU" -cpu "$CPU" -L "$ROOT" "$ROOT/usr/bin/python3.11" \
    "$HERE/compare.py" run "$IMAGE" --backend "$backend" --out "$RUN/aarch64-$cfg.json" \
    >/dev/null 2>"$RUN/aarch64-$cfg.log"
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    show_log "$RUN/aarch64-$cfg.log"
    [ "$rc" = 124 ] && echo "FAIL: aarch64 [$cfg]: timed out" || echo "FAIL: aarch64 [$cfg]: exit $rc"
    failed=$((failed + 1))
    continue
  fi
  say "[$cfg] qemu run: $(($(date +%s) - t0)) s"
  if "$PY" "$HERE/compare.py" diff "$RUN/x86_64.json" "$RUN/aarch64-$cfg.json" |
    sed -e "s/^\(PASS\|FAIL\): /\1: [$cfg] /"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done

size=$(du -sh "$CACHE" | cut -f1)
total=$((passed + failed))
if [ "$failed" -gt 0 ]; then
  echo "FAIL: aarch64 check: $failed of $total configuration(s) failed ($(elapsed) s, cache $size; logs in $RUN)"
  exit 1
fi
echo "PASS: aarch64 check: $passed of $total configuration(s) match x86-64 ($(elapsed) s, cache $size in $CACHE)"
