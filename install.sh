#!/usr/bin/env bash
# Install blazepose-edge into ./.venv, fetch and verify the models, and say what to run next.
#
#   ./install.sh          runtime only
#   ./install.sh --dev    also the test and lint tools (pytest, ruff)
#
# Safe to re-run: it only installs what changed and re-checks the model files.
# On Raspberry Pi OS (apt python3-picamera2 present) the venv sees the system packages and pip is
# constrained to the system numpy, so picamera2 keeps working (see README, "Raspberry Pi OS").
set -euo pipefail
cd "$(dirname "$0")"

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

# --- pick the interpreter -------------------------------------------------------------------------
PICAMERA=0
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import picamera2' >/dev/null 2>&1; then
  PICAMERA=1
  PY=/usr/bin/python3  # libcamera's bindings are built for the system interpreter
else
  PY=${PYTHON:-python3}
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install.sh: Python >= 3.11 is needed ($PY is $("$PY" -V 2>&1)); set PYTHON=/path/to/python3.11+" >&2
  exit 1
fi
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "install.sh: $PY has no venv/ensurepip; on Debian or Raspberry Pi OS: sudo apt install python3-venv" >&2
  exit 1
fi

# --- the venv -------------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  if [ "$PICAMERA" = 1 ]; then
    say "creating .venv with --system-site-packages (picamera2 found)"
    "$PY" -m venv --system-site-packages .venv
  else
    say "creating .venv ($("$PY" -V))"
    "$PY" -m venv .venv
  fi
fi

CONSTRAINTS=.venv/constraints.txt
: > "$CONSTRAINTS"
if [ "$PICAMERA" = 1 ]; then
  # apt's picamera2 stack is built against the system numpy: never shadow it with another one.
  sysnp=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
  echo "numpy==$sysnp" >> "$CONSTRAINTS"
  case "$sysnp" in 1.*) echo "opencv-python-headless==4.11.0.86" >> "$CONSTRAINTS" ;; esac
fi

EXTRA=""
[ "$DEV" = 1 ] && EXTRA="[dev]"
stamp=".venv/.installed-$( (cat pyproject.toml "$CONSTRAINTS"; echo "$EXTRA") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing blazepose-edge$EXTRA and its dependencies"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c "$CONSTRAINTS" -e ".$EXTRA"
  rm -f .venv/.installed-*
  touch "$stamp"
else
  say "dependencies up to date"
fi

# --- models ---------------------------------------------------------------------------------------
say "fetching and verifying the models"
.venv/bin/blazepose-edge models fetch

# --- check that an interpreter really loads them ------------------------------------------------------
.venv/bin/python - <<'PY'
from edge import PoseEstimator
est = PoseEstimator()
print(f"==> models load: {est.estimator.model.backend}, {est.num_threads} threads")
PY

cat <<EOT

Done. Try it:
  .venv/bin/blazepose-edge infer --annotate out/ ../shared/media/images   # or any image/video path
  .venv/bin/blazepose-edge infer --json path/to/video.mp4
EOT
[ "$DEV" = 1 ] && echo "  .venv/bin/python -m pytest      # the tests"
exit 0
