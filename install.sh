#!/usr/bin/env bash
# Install blazepose-edge into ./.venv, fetch and verify the models, and say what to run next.
#
#   ./install.sh              runtime, plus Mosquitto from apt if no MQTT broker answers locally
#   ./install.sh --dev        also the test and lint tools (pytest, ruff, jsonschema, jinja2)
#   ./install.sh --no-broker  never install Mosquitto
#   ./install.sh --models=lite,full,heavy
#                             the landmark models to fetch (default lite,full; heavy is 28 MB); the
#                             detector is always fetched
#   ./install.sh --int8       also install the int8 estimators (full; lite too when fetched): the
#                             prebuilt models/int8/ ones the checkout carries (verified, nothing
#                             else needed); without them, build full's
#                             (models/quantize.py: calibrate on the licence-clean test media, gate on
#                             the other sources; installed only if it passes). Building needs the
#                             project's test media ($BLAZEPOSE_EDGE_MEDIA or ../shared/media) and a
#                             quantizer venv in ~/.cache (about 310 MB); a few minutes on a 2-core server.
#   ./install.sh --int8-footage=PATH
#                             the same, calibrated and gated on your own videos/photos (a file or a
#                             folder; say a minute of your camera's view) instead of the test media
#   ./install.sh --service    (root) also install the systemd service: a copy in /opt/blazepose-edge,
#                             user blazepose-edge (group video), /etc/blazepose-edge/config.toml
#   ./install.sh --uninstall  (root) remove the service, its user, /opt/blazepose-edge and its spool,
#                             and its Home Assistant device (the config in /etc/blazepose-edge is kept)
#
# Safe to re-run: it only installs what changed and re-checks the model files. The models go to
# $BLAZEPOSE_EDGE_MODELS, else ~/.local/share/blazepose-edge/models (the service's: /var/lib/...).
# On Raspberry Pi OS (apt python3-picamera2 present) the venv sees the system packages and pip is
# constrained to the system numpy, so picamera2 keeps working (see README.md, "Installing on a Raspberry Pi").
set -euo pipefail
CALLER_DIR=$PWD  # relative paths given on the command line are the caller's
cd "$(dirname "$0")"

DEV=0
INT8=0
FOOTAGE=
BROKER=1
SERVICE=0
UNINSTALL=0
MODELS=
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --models=*) MODELS="${arg#*=}" ;;
    --no-broker) BROKER=0 ;;
    --int8) INT8=1 ;;
    --int8-footage=*)
      INT8=1
      FOOTAGE="${arg#*=}"
      case "$FOOTAGE" in \~/*) FOOTAGE="$HOME/${FOOTAGE#\~/}" ;; esac  # no shell expands ~ after =
      case "$FOOTAGE" in /*) ;; *) FOOTAGE="$CALLER_DIR/$FOOTAGE" ;; esac
      ;;
    --service) SERVICE=1 ;;
    --uninstall) UNINSTALL=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

PREBUILT=models/int8  # a prebuilt int8 estimator and its record, when the checkout carries one
INT8_NAME=pose_landmark_full_int8
if [ "$INT8" = 1 ] && [ -z "$FOOTAGE" ] && [ ! -f "$PREBUILT/$INT8_NAME.tflite" ]; then
  # the same lookup as edge/service/media.py, checked here before anything is installed
  media=${BLAZEPOSE_EDGE_MEDIA:-$(cd .. && pwd)/shared/media}
  if [ ! -d "$media/images" ] && [ ! -d "$media/video" ]; then
    echo "install.sh --int8: the int8 estimator is calibrated on the project's test media, which" >&2
    echo "  are not here ($media; set BLAZEPOSE_EDGE_MEDIA). Calibrate on your own camera's view" >&2
    echo "  instead: ./install.sh --int8-footage=PATH (a video or a folder; a minute is enough)." >&2
    exit 2
  fi
fi
if [ -n "$FOOTAGE" ] && [ ! -e "$FOOTAGE" ]; then
  echo "install.sh --int8-footage: $FOOTAGE does not exist" >&2
  exit 2
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

SVC_USER=blazepose-edge
SVC_HOME=/opt/blazepose-edge
UNIT=/etc/systemd/system/blazepose-edge.service
have_systemd() { [ -d /run/systemd/system ]; }

if [ "$UNINSTALL" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "install.sh --uninstall: run as root (sudo)" >&2; exit 1; }
  if have_systemd; then systemctl disable --now blazepose-edge.service 2>/dev/null || true; fi
  if [ -x "$SVC_HOME/.venv/bin/blazepose-edge" ]; then
    # the device leaves Home Assistant with the service (the password read as the service does)
    creds=; [ -f /etc/blazepose-edge/mqtt_password ] && creds=/etc/blazepose-edge
    conf=(); [ -f /etc/blazepose-edge/config.toml ] && conf=(--config /etc/blazepose-edge/config.toml)
    CREDENTIALS_DIRECTORY=$creds "$SVC_HOME/.venv/bin/blazepose-edge" ha remove "${conf[@]}" \
      || say "the Home Assistant device could not be removed from the broker; delete it in Home Assistant"
  fi
  rm -f "$UNIT"
  have_systemd && systemctl daemon-reload
  rm -rf "$SVC_HOME" /var/cache/blazepose-edge /var/lib/blazepose-edge
  id "$SVC_USER" >/dev/null 2>&1 && userdel "$SVC_USER"
  say "service removed (config kept in /etc/blazepose-edge)"
  exit 0
fi

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
if [ "$PICAMERA" = 1 ] && [ -x .venv/bin/python ] \
   && ! .venv/bin/python -c 'import picamera2' >/dev/null 2>&1; then
  # made before python3-picamera2 was installed (isolated, or another interpreter): it would
  # never see the camera stack, and the default source would quietly be /dev/video0
  say "python3-picamera2 is now installed: recreating .venv so that it sees it"
  rm -rf .venv
fi
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
  # PYTHONWARNINGS: setuptools' editable-install warning box is for package authors, not users
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet --upgrade pip
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet -c "$CONSTRAINTS" -e ".$EXTRA"
  rm -f .venv/.installed-*
  touch "$stamp"
else
  say "dependencies up to date"
fi

# --- models ---------------------------------------------------------------------------------------
if [ "$SERVICE" = 1 ] && [ "$(pwd -P)" = "$SVC_HOME" ]; then
  export BLAZEPOSE_EDGE_MODELS=/var/lib/blazepose-edge/models  # the service's StateDirectory
fi
say "fetching and verifying the models"
FETCH=()
for m in ${MODELS//,/ }; do FETCH+=(--model "$m"); done
.venv/bin/blazepose-edge models fetch "${FETCH[@]}"

if [ "$INT8" = 1 ] && [ -z "$FOOTAGE" ] && [ -f "$PREBUILT/$INT8_NAME.tflite" ]; then
  # The checkout's prebuilt int8 estimator: verified against its record and the float model, then
  # copied into the models folder (no test media, no quantizer). One built on your footage stays.
  say "installing the prebuilt int8 estimators ($PREBUILT)"
  .venv/bin/python - "$PREBUILT" <<'PY'
import sys
from pathlib import Path

from edge.pose import models

source = Path(sys.argv[1])
for name in sorted(p.stem for p in source.glob("*_int8.tflite")):
    try:
        models.locate(models.DERIVED[name])  # the float model it comes from, fetched
    except models.ModelError:
        print(f"==> {name} left out: {models.DERIVED[name]} is not fetched (--models)")
        continue
    try:
        record = models.verify_derived(name)
        if record["gate"].get("held_out") == models.YOUR_FOOTAGE:
            print(f"==> kept the int8 estimator built on your footage in {models.models_dir()}")
            continue
        if record == models.verify_derived(name, source):  # the same file and the same gate
            print(f"==> {models.models_dir() / name}.tflite is there and verified")
            continue
    except models.ModelError:
        pass
    record = models.install_derived(name, source)
    gate = record["gate"]
    print(f"==> installed {models.models_dir() / name}.tflite (sha256 {record['sha256'][:12]}..., "
          f"mean {gate['mean_vs_float']:.2%} / worst {gate['worst_vs_float']:.2%} of the torso on "
          f"{gate['held_out']})")
PY
elif [ "$INT8" = 1 ]; then
  # The quantizer and torch live in their own venv: the daemon never imports them.
  QVENV="${XDG_CACHE_HOME:-$HOME/.cache}/blazepose-edge/quantizer-venv"
  qstamp="$QVENV/.installed-quantizer-0.10.0-litert-2.3.0"
  if [ ! -f "$qstamp" ]; then
    say "creating the quantizer venv in $QVENV (ai-edge-quantizer; once)"
    "$PY" -m venv "$QVENV"
    PYTHONWARNINGS=ignore "$QVENV/bin/pip" install -q --upgrade pip
    PYTHONWARNINGS=ignore "$QVENV/bin/pip" install -q ai-edge-quantizer==0.10.0 ai-edge-litert==2.3.0
    touch "$qstamp"
  fi
  say "building the int8 estimator (cached once it passes its accuracy gate)"
  set +e
  # the quantizer's progress bars and debug warnings are for its developers, not for this log
  export TQDM_DISABLE=1 PYTHONWARNINGS=ignore
  if [ -n "$FOOTAGE" ]; then
    .venv/bin/python models/quantize.py --if-missing --quantizer-python "$QVENV/bin/python" \
      --footage "$FOOTAGE"
  else
    .venv/bin/python models/quantize.py --if-missing --quantizer-python "$QVENV/bin/python"
  fi
  rc=$?
  unset TQDM_DISABLE PYTHONWARNINGS
  set -e
  case $rc in
    0) ;;
    1) say "the int8 estimator did not pass its accuracy gate: not installed, the float model is used" ;;
    *) say "could not build the int8 estimator (exit $rc, see above): the float model is used" ;;
  esac
fi

# --- check that the models load and find the person in the demo clip --------------------------------
# (this also compiles the Numba kernels into their cache, so the first real run starts at once)
say "checking the pipeline on the demo clip (compiles the kernels once: up to a minute on a Pi)"
.venv/bin/python - <<'PY'
import sys

import cv2

from edge import PoseEstimator
from edge.service.logs import native_stderr_to_log
from edge.service.media import demo_clip

ok, frame = cv2.VideoCapture(str(demo_clip())).read()
with native_stderr_to_log(), PoseEstimator() as est:
    poses = est.process(frame)
print(f"==> pipeline ok: {len(poses)} pose in the demo clip's first frame ({est.backend}, "
      f"{est.variant}, {est.num_threads} threads)")
sys.exit(0 if ok and len(poses) == 1 else 1)
PY

# --- a broker to publish to ----------------------------------------------------------------------
broker_answers() {
  .venv/bin/python -c 'import socket; socket.create_connection(("127.0.0.1", 1883), 1).close()' 2>/dev/null
}
if [ "$BROKER" = 1 ] && ! broker_answers; then
  if ! command -v mosquitto >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
      say "no MQTT broker on localhost:1883: installing Mosquitto from apt (skip with --no-broker)"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto
    else
      say "no MQTT broker on localhost:1883 and no apt/sudo here: install one, or run with --mqtt-host none"
    fi
  fi
  if command -v mosquitto >/dev/null 2>&1 && ! broker_answers; then
    if have_systemd; then
      as_root systemctl enable --now mosquitto
    else
      say "starting mosquitto in the background (no systemd here)"
      as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || as_root mosquitto -d
    fi
  fi
fi

# --- the systemd service ---------------------------------------------------------------------------
if [ "$SERVICE" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "install.sh --service: run as root (sudo ./install.sh --service)" >&2; exit 1; }
  if [ "$(pwd -P)" != "$SVC_HOME" ]; then
    say "installing a copy in $SVC_HOME for the service"
    mkdir -p "$SVC_HOME"
    tar --exclude=./.venv --exclude=./.git --exclude='*/__pycache__' --exclude=./models/.cache \
      --exclude='*.egg-info' --exclude=./out -cf - . | tar -xf - -C "$SVC_HOME"
    # The service user must be able to run the interpreter: prefer the system's Python over one
    # installed under a home directory (pyenv, conda).
    svc_py=$PY
    if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      svc_py=/usr/bin/python3
    fi
    # the service's models live in its StateDirectory (edge.pose.models.models_dir); with --int8
    # the prebuilt int8 estimators go there too (one built on your footage: see deployment.md)
    svc_int8=
    if [ "$INT8" = 1 ] && [ -z "$FOOTAGE" ] && [ -f "$PREBUILT/$INT8_NAME.tflite" ]; then svc_int8=--int8; fi
    (cd "$SVC_HOME" && PYTHON=$svc_py BLAZEPOSE_EDGE_MODELS=/var/lib/blazepose-edge/models \
      ./install.sh --no-broker ${MODELS:+--models=$MODELS} $svc_int8)
  fi
  id "$SVC_USER" >/dev/null 2>&1 || useradd --system --home-dir "$SVC_HOME" --no-create-home --shell /usr/sbin/nologin --user-group "$SVC_USER"
  getent group video >/dev/null && usermod -aG video "$SVC_USER"
  chmod -R a+rX "$SVC_HOME" /var/lib/blazepose-edge/models
  install -d -m 0755 /etc/blazepose-edge
  if [ ! -f /etc/blazepose-edge/config.toml ]; then
    "$SVC_HOME/.venv/bin/python" -c "from edge.service.config import Config, to_toml; print(to_toml(Config()), end='')" > /etc/blazepose-edge/config.toml
    chmod 0644 /etc/blazepose-edge/config.toml
    say "wrote the default /etc/blazepose-edge/config.toml (edit the [source] and [mqtt] sections)"
  fi
  sed "s|@PREFIX@|$SVC_HOME|g" systemd/blazepose-edge.service > "$UNIT"
  if have_systemd; then
    systemctl daemon-reload
    systemctl enable blazepose-edge.service
    say "service installed: sudo systemctl start blazepose-edge; journalctl -u blazepose-edge -f"
  else
    say "unit written to $UNIT (no systemd running here to enable it)"
  fi
fi

cat <<EOT

Done. Try it:
  .venv/bin/blazepose-edge run --source demo --max-frames 200   # a shipped clip -> MQTT on localhost
  .venv/bin/blazepose-edge infer --annotate out/ photo.jpg video.mp4   # skeletons drawn into out/
  .venv/bin/blazepose-edge bench                                # how fast this board is
  .venv/bin/blazepose-edge run --help                           # cameras, streams, MQTT options
EOT
[ "$DEV" = 1 ] && echo "  .venv/bin/python -m pytest      # the tests"
exit 0
