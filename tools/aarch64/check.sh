#!/usr/bin/env bash
# The whole pipeline (Numba kernels included) on aarch64, under qemu-user, against this x86-64 run;
# and install.sh itself, run inside emulated Raspberry Pi OS-like userlands.
#
#   tools/aarch64/check.sh [IMAGE]
#
# Builds (once, cached) Debian Bookworm and Trixie arm64 userlands ~ Raspberry Pi OS Bookworm and
# Trixie, and aarch64 site-packages. For each configuration it either runs tools/aarch64/compare.py
# on IMAGE under qemu-aarch64-static with cached site-packages, or runs ./install.sh --no-broker
# in a chroot of the userland (a fresh copy of the project, the models fetched by install.sh) and
# then compare.py with the venv install.sh made; natively with the project's venv too, and compares
# the landmarks. Prints one PASS, FAIL or SKIPPED line per configuration and exits 1 on a mismatch
# beyond tolerance (or a failed install.sh, a crash or a time-out), 0 when everything matches, and
# 0 with a "SKIPPED: <reason>" line when qemu-user-static and debootstrap are missing and cannot be
# installed. See tools/aarch64/README.md.
#
# Environment:
#   BLAZEPOSE_EDGE_AARCH64_CACHE    cache folder (default ~/.cache/blazepose-edge/aarch64)
#   BLAZEPOSE_EDGE_AARCH64_IMAGE    image when none is given (default <media>/images/yoga.jpg)
#   BLAZEPOSE_EDGE_AARCH64_CONFIGS  which of "pip int8 rpios-litert rpios-tflite trixie" to run
#                                   (default: all); rpios-litert and trixie run install.sh in the
#                                   userland; int8 runs the prebuilt int8 estimator on aarch64,
#                                   judged against the x86-64 float run
#   BLAZEPOSE_EDGE_AARCH64_CPU      emulated core: cortex-a72 (Pi 4, default) or cortex-a76 (Pi 5)
#   BLAZEPOSE_EDGE_AARCH64_TIMEOUT  limit for the whole check in seconds (default 1500)
#   BLAZEPOSE_EDGE_AARCH64_FRESH    1: install.sh starts from scratch (no kept venv; see run_installed)
#   BLAZEPOSE_EDGE_AARCH64_MIRROR   Debian mirror for debootstrap (default: the one apt uses here)
#   BLAZEPOSE_EDGE_PYTHON           the x86-64 Python with the project installed (default .venv)
#   BLAZEPOSE_EDGE_MEDIA            test media folder (default ../shared/media)
#   BLAZEPOSE_EDGE_MODELS           verified models for the runs under -L and the native one (default
#                                   <cache>/models, fetched there by `blazepose-edge models fetch`);
#                                   install.sh fetches its own inside each userland
set -euo pipefail

PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$PROJECT/tools/aarch64"
START=$(date +%s)
TOTAL=${BLAZEPOSE_EDGE_AARCH64_TIMEOUT:-1500}
DEADLINE=$((START + TOTAL))
CACHE=${BLAZEPOSE_EDGE_AARCH64_CACHE:-${HOME:-/root}/.cache/blazepose-edge/aarch64}
MEDIA=${BLAZEPOSE_EDGE_MEDIA:-$PROJECT/../shared/media}
IMAGE=${1:-${BLAZEPOSE_EDGE_AARCH64_IMAGE:-$MEDIA/images/yoga.jpg}}
CONFIGS=${BLAZEPOSE_EDGE_AARCH64_CONFIGS:-pip int8 rpios-litert rpios-tflite trixie}
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
RECIPE=2
# The userlands: Debian 12 (Raspberry Pi OS Bookworm) and Debian 13 (Raspberry Pi OS Trixie), each
# with its Python, apt's numpy, python3-venv and CA certificates (install.sh's venv needs the last two).
deb_include() { # suite -> the packages debootstrap adds to minbase
  local pyv
  pyv=$(suite_python "$1")
  echo "python3,python3-minimal,libpython$pyv-stdlib,libstdc++6,libgomp1,python3-numpy,python3-venv,ca-certificates"
}
suite_python() { case $1 in bookworm) echo 3.11 ;; trixie) echo 3.13 ;; esac; }
config_suite() { case $1 in trixie) echo trixie ;; *) echo bookworm ;; esac; }
# "pip": what `pip install` gives on a Pi without apt's picamera2: the same pins as the x86 venv.
PIP_REQS="ai-edge-litert==2.3.0 numba==0.68.1 llvmlite==0.50.0 numpy==2.4.6 opencv-python-headless==5.0.0.93"
# "rpios-tflite": tflite-runtime with what install.sh gives on Raspberry Pi OS Bookworm with
# picamera2: the system numpy (apt's python3-numpy, 1.24.2) and, with numpy 1.x, OpenCV 4.11.0.86.
# ("rpios-litert" and "trixie" are whatever install.sh installs: nothing pinned here.)
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
  case $cfg in pip | int8 | rpios-litert | rpios-tflite | trixie) ;; *) die "unknown configuration $cfg" ;; esac
done

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "another check holds $CACHE/.lock"

# --- (b) the arm64 userlands ------------------------------------------------------------------
build_root() { # suite, target folder
  local suite=$1 dest=$2 tmp="$2.tmp" log="$CACHE/build-root-$1.log" t0 pyv
  t0=$(date +%s)
  pyv=$(suite_python "$suite")
  rm -rf "$tmp"
  [ -n "$MIRROR" ] || skip "no Debian archive in apt's sources here; set BLAZEPOSE_EDGE_AARCH64_MIRROR"
  say "building Debian $suite arm64 userland (debootstrap --foreign from $MIRROR)"
  if ! bounded 900 "${as_root[@]}" debootstrap --foreign --arch=arm64 --variant=minbase \
    --include="$(deb_include "$suite")" "$suite" "$tmp" "$MIRROR" >"$log" 2>&1; then
    show_log "$log"
    die "debootstrap $suite failed (log: $log)"
  fi
  # The foreign stage unpacks only the base; the included packages are just downloaded.
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do "${as_root[@]}" dpkg -x "$deb" "$tmp"; done
  # What update-alternatives would have made (numpy links libblas.so.3 and liblapack.so.3).
  "${as_root[@]}" ln -sf blas/libblas.so.3 "$tmp/usr/lib/aarch64-linux-gnu/libblas.so.3"
  "${as_root[@]}" ln -sf lapack/liblapack.so.3 "$tmp/usr/lib/aarch64-linux-gnu/liblapack.so.3"
  "${as_root[@]}" rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/usr/share/doc \
    "$tmp"/usr/share/man "$tmp"/usr/share/locale "$tmp"/usr/share/info "$tmp"/debootstrap
  [ -x "$tmp/usr/bin/python$pyv" ] || die "the $suite arm64 userland has no python$pyv"
  [ "$(id -u)" = 0 ] || "${as_root[@]}" chown -R "$(id -u):$(id -g)" "$tmp"
  mv "$tmp" "$dest"
  say "$suite userland ready in $(($(date +%s) - t0)) s"
}
ensure_root() { # suite -> ROOT, ROOT_KEY and SYSNP (its apt numpy version), built if missing
  local suite=$1 old d
  ROOT_KEY=$(key "$RECIPE $suite arm64 minbase $(deb_include "$suite")")
  ROOT="$CACHE/root-$suite-$ROOT_KEY"
  [ -x "$ROOT/usr/bin/python$(suite_python "$suite")" ] || build_root "$suite" "$ROOT"
  for old in "$CACHE/root-$suite-"* "$CACHE"/root-????????????; do  # and the unnamed ones of RECIPE=1
    if [ -e "$old" ] && [ "$old" != "$ROOT" ]; then rm -rf "$old"; fi
  done
  SYSNP=
  for d in "$ROOT"/usr/lib/python3/dist-packages/numpy-*-info; do  # numpy-1.24.2.egg-info
    SYSNP=$(basename "$d" | sed -n 's/^numpy-\([0-9.]*[0-9]\)[.-].*/\1/p')
  done
  [ -n "$SYSNP" ] || die "cannot read the $suite arm64 system numpy version"
}

# qemu-user shows the guest the host's /proc/cpuinfo (x86 text). LiteRT's bundled cpuinfo library
# finds no ARM core there and dereferences NULL in cpuinfo_arm_linux_init (from XNNPACK's init in
# allocate_tensors). With -L, qemu opens ROOT/proc/cpuinfo instead when it exists; in a chroot,
# chroot-run.sh binds a file over it: a Raspberry Pi's, one entry per host CPU (the cores sysfs
# reports). Written on every run.
write_cpuinfo() { # file
  local out=$1 n i features variant part rev model revision
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
  {
    for ((i = 0; i < n; i++)); do
      printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$features"
      printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$rev"
    done
    printf 'Hardware\t: BCM2835\nRevision\t: %s\nSerial\t\t: 100000000badc0de\nModel\t\t: %s\n' "$revision" "$model"
  } >"$out"
}

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

# --- (d) the two ways of running the pipeline on aarch64 ---------------------------------------
RUN="$CACHE/last-run"
rm -rf "$RUN"
mkdir -p "$RUN" "$CACHE/pip"
write_cpuinfo "$RUN/cpuinfo"
# Files a chroot run left owned by root, given back when the check runs through sudo.
own() { [ "$(id -u)" = 0 ] || "${as_root[@]}" chown -R "$(id -u):$(id -g)" "$@"; }

passed=0 failed=0 skipped=0
fail_run() { # configuration, exit status, log, what ran
  show_log "$3"
  if [ "$2" = 124 ]; then
    echo "FAIL: aarch64 [$1]: $4 timed out (log: $3)"
  else
    echo "FAIL: aarch64 [$1]: $4 exited with $2 (log: $3)"
  fi
  failed=$((failed + 1))
}
compare_run() { # configuration: its JSON against the x86-64 one
  if "$PY" "$HERE/compare.py" diff "$RUN/x86_64.json" "$RUN/aarch64-$1.json" |
    sed -e "s/^\(PASS\|FAIL\): /\1: [$1] /"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    return 1
  fi
}

# (1) "pip", "rpios-tflite", "int8": compare.py under qemu-aarch64-static -L ROOT with cached
# site-packages on PYTHONPATH (the project's code as it is in the work tree, not installed); "int8"
# is "pip" with the checkout's prebuilt int8 estimator, judged against the native float run as the
# int8 gate judges a frame (compare.py diff_int8).
run_emulated() { # configuration
  local cfg=$1 backend=ai_edge_litert variant=float t0 rc
  [ "$cfg" = rpios-tflite ] && backend=tflite_runtime
  if [ "$cfg" = int8 ]; then
    variant=int8
    if [ ! -f "$PREBUILT.tflite" ] || [ ! -f "$PREBUILT.json" ]; then
      echo "SKIPPED: aarch64 [$cfg]: the checkout carries no prebuilt int8 estimator"
      skipped=$((skipped + 1))
      return
    fi
  fi
  ensure_root bookworm
  mkdir -p "$ROOT/proc"
  cp "$RUN/cpuinfo" "$ROOT/proc/cpuinfo"
  if [ "$cfg" = int8 ]; then ensure_site pip; else ensure_site "$cfg"; fi
  t0=$(date +%s)
  # A clean environment (qemu passes the host's to the guest); a fresh Numba cache, so the kernels
  # are JIT-compiled in the emulated process itself; no .pyc written into the project.
  set +e
  bounded 420 env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONNOUSERSITE=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$PROJECT:$SITE" NUMBA_CACHE_DIR="$RUN/numba-$cfg" \
    BLAZEPOSE_EDGE_MODELS="$MODELS" "$QEMU" -cpu "$CPU" -L "$ROOT" "$ROOT/usr/bin/python3.11" \
    "$HERE/compare.py" run "$IMAGE" --backend "$backend" --variant "$variant" \
    --out "$RUN/aarch64-$cfg.json" >/dev/null 2>"$RUN/aarch64-$cfg.log"
  rc=$?
  set -e
  [ "$rc" = 0 ] || { fail_run "$cfg" "$rc" "$RUN/aarch64-$cfg.log" "compare.py under qemu"; return; }
  say "[$cfg] qemu run: $(($(date +%s) - t0)) s"
  compare_run "$cfg" || true
}

# (2) "rpios-litert", "trixie": ./install.sh --no-broker itself, as root in a chroot of the userland
# (chroot-run.sh: every aarch64 program under qemu through a private binfmt_misc), in a fresh copy
# of the project with no venv and no models, so it creates the venv, pip-installs from PyPI and
# fetches the models as on a Pi; then compare.py with the venv it made (the installed package).
#
# What a Pi has and a debootstrap --foreign userland lacks, written on every run (the host's may
# change): the resolver and hosts files; the CA bundle this host's pip trusts (it may add a local
# CA, e.g. behind a TLS-inspecting proxy), else the userland's own ca-certificates joined as
# update-ca-certificates would; and a stand-in picamera2 package (see below).
prepare_root() {
  local f ca=
  mkdir -p "$ROOT/etc/ssl/certs" "$ROOT/home/pi" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/tmp"
  for f in resolv.conf hosts; do
    rm -f "$ROOT/etc/$f"  # never write through a link out of the userland
    if [ -f "/etc/$f" ]; then cp -L "/etc/$f" "$ROOT/etc/$f"; fi
  done
  for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$f" ] && [ -f "$f" ]; then ca=$f && break; fi
  done
  rm -f "$ROOT/etc/ssl/certs/ca-certificates.crt"
  if [ -n "$ca" ]; then
    cp -L "$ca" "$ROOT/etc/ssl/certs/ca-certificates.crt"
  else
    cat "$ROOT"/usr/share/ca-certificates/*/*.crt >"$ROOT/etc/ssl/certs/ca-certificates.crt"
  fi
  # install.sh takes its Raspberry Pi OS path (a venv with --system-site-packages on
  # /usr/bin/python3, pip constrained to apt's numpy, OpenCV pinned with numpy 1.x) only when
  # /usr/bin/python3 can import picamera2. The real python3-picamera2 is in the Raspberry Pi archive,
  # not Debian's, and could not reach a camera here anyway: this stand-in only makes the import
  # succeed. Nothing in the static pipeline imports it.
  mkdir -p "$ROOT/usr/lib/python3/dist-packages/picamera2"
  printf '%s\n' '"""Stand-in for python3-picamera2 (tools/aarch64/check.sh): importable, nothing else."""' \
    >"$ROOT/usr/lib/python3/dist-packages/picamera2/__init__.py"
}
# The project as a user's clone has it: tracked and untracked files, not what .gitignore ignores
# (so no .venv and no fetched models); without git, the tree less the same.
copy_project() { # destination
  mkdir -p "$1"
  if git -C "$PROJECT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$PROJECT" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
      tar --null -T - -cf -) | tar -xf - -C "$1"
  else
    (cd "$PROJECT" && tar --exclude=./.venv --exclude=./.git --exclude='*/__pycache__' \
      --exclude=./models/.cache --exclude='./models/*.tflite' --exclude='*.egg-info' \
      --exclude=./out -cf - .) | tar -xf - -C "$1"
  fi
}
in_root() { # seconds, home folder, command...: as root in a chroot of ROOT
  local max=$1 home=$2 v pass=()
  shift 2
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!v:-}" ]; then pass+=("$v=${!v}"); fi
  done
  bounded "$max" "${as_root[@]}" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/pi LANG=C.UTF-8 QEMU_CPU="$CPU" PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    BLAZEPOSE_EDGE_MODELS=/home/pi/models NUMBA_CACHE_DIR=/home/pi/numba-cache "${pass[@]}" \
    unshare --user --map-root-user --mount --pid --fork --kill-child \
    "$HERE/chroot-run.sh" "$QEMU" "$ROOT" "$RUN/cpuinfo" "$home" "$CACHE/pip" "$@"
}
# install.sh's home (the project copy and its .venv) is kept between checks in
# <cache>/home-<configuration>-<key>, keyed by the userland, install.sh, pyproject.toml (what decides
# what install.sh installs) and the ISO week. A change to any of them, a failed install.sh, and
# BLAZEPOSE_EDGE_AARCH64_FRESH=1 start from scratch: a new venv, everything pip-installed from PyPI
# (so a new release that breaks the install shows within a week). Otherwise install.sh runs again
# on a fresh copy of the project in its kept venv, as a re-run on a Pi does ("dependencies up to
# date"); either way it fetches the models into an empty folder and runs its load check.
CHROOT_OK=
run_installed() { # configuration
  local cfg=$1 suite home img t0 rc venv_numpy k old how
  suite=$(config_suite "$cfg")
  ensure_root "$suite"
  prepare_root
  k=$(key "$RECIPE $ROOT_KEY $(cat "$PROJECT/install.sh" "$PROJECT/pyproject.toml" | sha256sum) $(date -u +%G-%V)")
  home="$CACHE/home-$cfg-$k"
  for old in "$CACHE/home-$cfg-"*; do
    if [ -e "$old" ] && [ "$old" != "$home" ]; then rm -rf "$old"; fi
  done
  if [ "${BLAZEPOSE_EDGE_AARCH64_FRESH:-0}" = 1 ] || [ ! -f "$home/.installed" ]; then
    rm -rf "$home"
    how="from scratch"
  else
    how="again in its kept venv"
  fi
  mkdir -p "$home/.cache/pip"
  if [ -z "$CHROOT_OK" ]; then
    set +e
    in_root 120 "$home" /bin/true 2>"$RUN/chroot-probe.log"
    rc=$?
    set -e
    if [ "$rc" = 0 ]; then CHROOT_OK=yes; else CHROOT_OK="$(tail -n 1 "$RUN/chroot-probe.log")"; fi
  fi
  if [ "$CHROOT_OK" != yes ]; then
    echo "SKIPPED: aarch64 [$cfg]: no chroot into an arm64 userland here: $CHROOT_OK"
    skipped=$((skipped + 1))
    return
  fi
  if [ -d "$home/blazepose-edge" ]; then  # a fresh copy of the project, install.sh's .venv kept
    find "$home/blazepose-edge" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
  fi
  rm -rf "$home/models" "$home/numba-cache" "$home/aarch64.json"
  copy_project "$home/blazepose-edge"
  img=$(basename "$IMAGE")
  cp "$IMAGE" "$home/$img"

  t0=$(date +%s)
  set +e
  in_root 900 "$home" /bin/bash -c 'cd ~/blazepose-edge && exec ./install.sh --no-broker' \
    </dev/null >"$RUN/install-$cfg.log" 2>&1
  rc=$?
  set -e
  own "$home"
  if [ "$rc" != 0 ]; then
    mv "$home" "$RUN/$cfg"  # kept for a look; the next check starts from scratch
    fail_run "$cfg" "$rc" "$RUN/install-$cfg.log" "install.sh ($how) in Debian $suite arm64"
    return
  fi
  touch "$home/.installed"
  say "[$cfg] install.sh ($how) in Debian $suite arm64: $(($(date +%s) - t0)) s"

  t0=$(date +%s)
  set +e
  in_root 420 "$home" /home/pi/blazepose-edge/.venv/bin/python \
    /home/pi/blazepose-edge/tools/aarch64/compare.py run "/home/pi/$img" \
    --backend ai_edge_litert --out /home/pi/aarch64.json >/dev/null 2>"$RUN/aarch64-$cfg.log"
  rc=$?
  set -e
  own "$home"
  [ "$rc" = 0 ] || { fail_run "$cfg" "$rc" "$RUN/aarch64-$cfg.log" "compare.py with install.sh's venv"; return; }
  cp "$home/aarch64.json" "$RUN/aarch64-$cfg.json"
  say "[$cfg] qemu run: $(($(date +%s) - t0)) s"
  # install.sh's Raspberry Pi OS path must leave apt's numpy in charge (picamera2's stack is built
  # against it): a numpy wheel in the venv is a failure even when the landmarks match.
  venv_numpy=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["numpy"])' \
    "$RUN/aarch64-$cfg.json")
  if [ "$venv_numpy" != "$SYSNP" ]; then
    echo "FAIL: aarch64 [$cfg]: install.sh's venv runs numpy $venv_numpy, not apt's $SYSNP"
    failed=$((failed + 1))
    return
  fi
  compare_run "$cfg" || true
}

# --- (e) run both sides and compare -----------------------------------------------------------
# The models for the native run and the runs under -L, verified (fetched once) by the CLI.
MODELS=${BLAZEPOSE_EDGE_MODELS:-$CACHE/models}
CLI="$(dirname "$PY")/blazepose-edge"
[ -x "$CLI" ] || die "no blazepose-edge command beside $PY: run ./install.sh first"
if ! bounded 300 env BLAZEPOSE_EDGE_MODELS="$MODELS" "$CLI" models fetch >"$RUN/models.log" 2>&1; then
  show_log "$RUN/models.log"
  die "could not fetch or verify the models into $MODELS"
fi
say "image $IMAGE; configurations: $CONFIGS; emulated core $CPU; cache $CACHE"

t0=$(date +%s)
if ! bounded 300 env NUMBA_CACHE_DIR="$RUN/numba-x86_64" BLAZEPOSE_EDGE_MODELS="$MODELS" "$PY" \
  "$HERE/compare.py" run "$IMAGE" --out "$RUN/x86_64.json" >/dev/null 2>"$RUN/x86_64.log"; then
  show_log "$RUN/x86_64.log"
  die "the native x86-64 run failed"
fi
say "x86-64 run: $(($(date +%s) - t0)) s"
# The int8 configuration: the checkout's prebuilt int8 estimator beside the float models (the
# loader verifies it against its record and the float model it was built from).
PREBUILT="$PROJECT/models/int8/pose_landmark_full_int8"
if [[ " $CONFIGS " == *" int8 "* ]] && [ -f "$PREBUILT.tflite" ] && [ -f "$PREBUILT.json" ]; then
  cp "$PREBUILT.tflite" "$PREBUILT.json" "$MODELS/"
fi

for cfg in $CONFIGS; do
  t0cfg=$(date +%s)
  case $cfg in
    pip | rpios-tflite | int8) run_emulated "$cfg" ;;
    rpios-litert | trixie) run_installed "$cfg" ;;
  esac
  say "[$cfg] done in $(($(date +%s) - t0cfg)) s"
done

size=$(du -sh "$CACHE" | cut -f1)
total=$((passed + failed))
extra=
[ "$skipped" = 0 ] || extra=", $skipped skipped"
if [ "$failed" -gt 0 ]; then
  echo "FAIL: aarch64 check: $failed of $total configuration(s) failed$extra ($(elapsed) s, cache $size; logs in $RUN)"
  exit 1
fi
echo "PASS: aarch64 check: $passed of $total configuration(s) match x86-64$extra ($(elapsed) s, cache $size in $CACHE)"
