"""Shared fixtures: the real test media and the model files.

Media are read from ``$BLAZEPOSE_EDGE_MEDIA`` or ``../shared/media`` beside the project. Tests that
need them are skipped when they are missing on a developer's machine, and fail in CI (``CI`` set),
so a CI run can never pass without having looked at real images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def _installed_models_dir() -> Path:
    """Where ``install.sh`` put the models (before the tests hide derived ones, below)."""
    from edge.pose import models

    return models.models_dir()


INSTALLED_MODELS = _installed_models_dir()


def _media_dir() -> Path:
    from edge.service.media import media_dir

    return media_dir()


@pytest.fixture(scope="session", autouse=True)
def _hermetic(tmp_path_factory):
    """Keep ``variant auto``'s cache (and anything else cached) out of the user's ~/.cache, and
    show the tests only the manifest's models: an int8 estimator a developer built with
    ``install.sh --int8`` must not change what ``auto`` picks under test (tests that need a
    derived model build their own models directory)."""
    from edge.pose import models

    source = INSTALLED_MODELS
    only_manifest = tmp_path_factory.mktemp("models")
    names = [spec.file for spec in models.specs().values()]
    for name in names:
        if (source / name).exists():
            (only_manifest / name).symlink_to((source / name).resolve())
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CACHE_DIRECTORY", raising=False)
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        # the state folder (the generated MQTT client id): not the user's ~/.local/state
        mp.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))
        mp.setenv(models.ENV_MODELS_DIR, str(only_manifest))
        yield


@pytest.fixture(scope="session")
def media() -> Path:
    path = _media_dir()
    if not (path / "images").is_dir():
        message = (
            f"test media not found at {path}: set BLAZEPOSE_EDGE_MEDIA or put the shared media "
            "folder at ../shared/media"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def models_ready() -> None:
    """The detector and the default landmark model (full) are fetched and verify."""
    from edge.pose import models

    try:
        for name in (models.DETECTOR, models.estimator_name(models.DEFAULT_MODEL)):
            models.locate(name)
    except models.ModelError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def need_model(models_ready):
    """``need_model("heavy")``: skip the test unless that landmark model was fetched (CI fetches
    all three: absent there is a failure)."""
    from edge.pose import models

    def need(model: str) -> None:
        try:
            models.locate(models.estimator_name(model))
        except models.ModelError as exc:
            message = f"the {model} landmark model is not fetched here: {exc}"
            if os.environ.get("CI"):
                pytest.fail(f"CI fetches every landmark model (.ci/run): {message}")
            pytest.skip(message)

    return need


@pytest.fixture
def float_dir(tmp_path, models_ready):
    """A models directory with the two float models (copies)."""
    import shutil

    from edge.pose import models

    directory = tmp_path / "models"
    directory.mkdir()
    for name in (models.DETECTOR, models.estimator_name(models.DEFAULT_MODEL)):
        shutil.copy(models.locate(name), directory)
    return directory


@pytest.fixture(scope="session")
def built_int8() -> Path:
    """The models directory holding the int8 estimators ``./install.sh --int8`` installed (full's,
    and every one the checkout carries prebuilt in models/int8/). CI runs it: when the checkout
    carries them, absent is a failure there; with none (no recipe has passed the gate on held-out
    sources) and on a developer's machine the tests that need them are skipped."""
    from edge.pose import models

    prebuilt = ROOT / "models" / "int8"
    names = {"pose_landmark_full_int8"} | {p.stem for p in prebuilt.glob("*_int8.tflite")}
    try:
        for name in sorted(names):
            models.verify_derived(name, INSTALLED_MODELS)
    except models.ModelError as exc:
        if os.environ.get("CI") and prebuilt.is_dir():
            pytest.fail(f"CI builds the int8 estimator (./install.sh --int8): {exc}")
        pytest.skip(str(exc))
    return INSTALLED_MODELS


@pytest.fixture(scope="session")
def static_estimator(models_ready):
    from edge import PoseEstimator

    return PoseEstimator(tracking=False)


@pytest.fixture(scope="session")
def reference_images() -> dict:
    return json.loads((DATA / "mediapipe_reference.json").read_text())


@pytest.fixture(scope="session")
def reference_video() -> dict:
    return json.loads((DATA / "mediapipe_reference_video.json").read_text())


@pytest.fixture
def broker_factory(tmp_path):
    """Start Mosquitto brokers for a test (own config and free port); all stopped afterwards."""
    from .broker import Broker

    started = []

    def make(name: str = "broker", **kwargs) -> Broker:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        broker = Broker(folder, **kwargs).start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()
