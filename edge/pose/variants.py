"""Model variants, and the ``auto`` choice between them.

A variant is a (detector, estimator) pair of model names for one landmark model (lite, full or
heavy); the table names the float detector, which ``choose_detector`` (below) may swap for the
int8 one. ``float`` uses the landmark model as published; ``int8`` swaps in the int8 estimator (for
lite and full: ``models.DERIVED``; the checkout's prebuilt one, or one ``models/quantize.py`` built), which
is used only when its record verifies and its accuracy gate passed (``models.verify_derived``),
and hands the frames whose pose flag is near the threshold to the float model
(``landmarks.FallbackLandmarkModel``); ``fp16`` the landmark model marked for fp16
inference (``fp16.py``; derived on first use), which XNNPACK runs in fp16 on cores with fp16
arithmetic and in fp32 elsewhere. ``auto`` considers fp16 only on such cores
(``board.has_fp16_arithmetic``: ARMv8.2 FP16, e.g. the Pi 5's Cortex-A76; never on x86).

``auto`` takes the variants whose files are present and verify and, for a derived model, whose
accuracy gate was judged on sources its calibration never saw (``models.AUTO_GATES``; a model
built on your own footage is used only when asked for by name). With one, it is used. With more,
the first start measures each estimator's invoke for a few seconds (interleaved rounds on a fixed
synthetic crop, the configured thread count), takes the fastest (float unless another is at least
``MARGIN`` faster, so noise does not decide) and caches the choice in
``variant.json`` in the cache directory, keyed by the board (CPU model and instruction set,
device-tree model, machine, thread count, runtime, landmark model and the candidates' SHA-256s):
later starts on the same board reuse it.

The detector is chosen the same way, on its own (``choose_detector``): the float MediaPipe detector,
or the int8 detector (``models.INT8_DETECTOR``) for ``int8`` and ``auto`` when its record verifies
and its gate (the same people as float, boxes within IoU 0.9, static-mode landmarks within the
estimator's budget) was passed on sources its calibration never saw; ``auto`` measures the two
detectors once per board and takes int8 only if it is ``MARGIN`` faster. It matters where the
detector runs often: static images, re-detection with several people, an empty room.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import models
from .board import board_model, cpu_isa, cpu_model, has_fp16_arithmetic
from .models import ModelError
from .runtime import default_threads, interpreter_class

log = logging.getLogger(__name__)


def variants(model: str = models.DEFAULT_MODEL) -> dict[str, tuple[str, str]]:
    """{variant: (detector, estimator)} for landmark model ``model``: ``float`` always, ``int8``
    where a derived int8 estimator exists for it."""
    table = {"float": (models.DETECTOR, models.estimator_name(model))}
    int8 = models.int8_name(model)
    if int8:
        table["int8"] = (models.DETECTOR, int8)
    table["fp16"] = (models.DETECTOR, f"{models.estimator_name(model)}_fp16")  # models.FP16
    return table


VARIANTS = variants()  # full's
CHOICES = ("auto", "float", "int8", "fp16")
MEASURE_SECONDS = 3.0  # measuring window of ``auto`` at first start
ROUND_INVOKES = 10  # invokes per candidate per round; rounds alternate the candidates' order
MIN_ROUNDS = 2
MARGIN = 0.05  # another variant must be this much faster than float to be chosen
CACHE_NAME = "variant.json"
CACHE_VERSION = 1


@dataclass
class Choice:
    variant: str
    model: Any  # the loaded estimator (``LandmarkModel``) of ``variant``
    reason: str


def cache_dir() -> Path | None:
    """$CACHE_DIRECTORY (systemd's CacheDirectory=), else $XDG_CACHE_HOME/blazepose-edge, else
    ~/.cache/blazepose-edge; None if there is no home to put it in."""
    if os.environ.get("CACHE_DIRECTORY"):
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "blazepose-edge"
    try:
        return Path.home() / ".cache" / "blazepose-edge"
    except RuntimeError:  # no $HOME and no passwd entry
        return None


def candidates(
    directory: Path, model: str = models.DEFAULT_MODEL
) -> tuple[dict[str, tuple[Path, str]], dict[str, str]]:
    """The variants of landmark model ``model`` whose estimator is present and verifies,
    {variant: (path, sha256)}, and why the others are left out, {variant: "absent" | "unusable"
    | "not gated on held-out sources" | "none for <model>" | "no fp16 arithmetic on this CPU"}.
    A broken float model raises ``ModelError``; an int8 model that is present but does not verify
    is left out with a warning; the fp16 model is derived here on first use."""
    found: dict[str, tuple[Path, str]] = {}
    left_out: dict[str, str] = {}
    table = variants(model)
    for variant in CHOICES[1:]:
        if variant not in table:
            left_out[variant] = f"none for {model}"
    for variant, (_, name) in table.items():
        if name in models.FP16 and not has_fp16_arithmetic():
            left_out[variant] = "no fp16 arithmetic on this CPU"
            continue
        if name in models.FP16:
            try:
                models.locate(name, directory)  # derived from the float model on first use
            except ModelError as exc:
                log.warning("variant %s left out of auto: %s", variant, exc)
                left_out[variant] = "unusable"
                continue
        if name in models.DERIVED:
            if not models.derived_present(name, directory):
                left_out[variant] = "absent"
                continue
            try:
                record = models.verify_derived(name, directory)
            except ModelError as exc:
                log.warning("variant %s left out of auto: %s", variant, exc)
                left_out[variant] = "unusable"
                continue
            held_out = record["gate"].get("held_out")
            if held_out not in models.AUTO_GATES:
                log.info(
                    "variant %s left out of auto: its gate was %s, not %s (use it by name: "
                    "--variant %s)",
                    variant, held_out or "of an older kind", models.HELD_OUT_SOURCES, variant,
                )  # fmt: skip
                left_out[variant] = "not gated on held-out sources"
                continue
            found[variant] = (models.locate(name, directory, check=False), record["sha256"])
        else:
            path = models.locate(name, directory)
            found[variant] = (path, models.specs()[name].sha256)
    return found, left_out


def _runtime(backend: str | None) -> str:
    name, _ = interpreter_class(backend)
    try:
        from importlib.metadata import version

        return f"{name} {version(name.replace('_', '-'))}"
    except Exception:  # version metadata missing: the name alone
        return name


def board_key(
    threads: int,
    runtime: str,
    segmentation: bool,
    shas: dict[str, str],
    model: str = models.DEFAULT_MODEL,
) -> dict:
    """What the fastest variant depends on."""
    return {
        "model": model,
        "cpu": cpu_model(),
        "isa": cpu_isa(),
        "board": board_model(),
        "machine": platform.machine(),
        "threads": threads,
        "runtime": runtime,
        "segmentation": segmentation,
        "models": dict(sorted(shas.items())),
    }


def _key_id(board: dict) -> str:
    return hashlib.sha256(json.dumps(board, sort_keys=True).encode()).hexdigest()[:32]


def read_cache(board: dict) -> dict | None:
    """The cached entry for ``board`` ({"variant", "invoke_ms", "measured_utc", ...}) or None."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        data = json.loads((directory / CACHE_NAME).read_text())
        entry = data["choices"][_key_id(board)]
        return entry if data.get("version") == CACHE_VERSION and entry["board"] == board else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_cache(board: dict, variant: str, invoke_ms: dict[str, float]) -> Path | None:
    """Store the choice for ``board``; the path written, or None (logged) if it cannot be."""
    directory = cache_dir()
    if directory is None:
        log.warning("no cache directory; variant auto will measure again at the next start")
        return None
    path = directory / CACHE_NAME
    try:
        data = json.loads(path.read_text())
        if data.get("version") != CACHE_VERSION or not isinstance(data.get("choices"), dict):
            raise ValueError("other format")
    except (OSError, ValueError):
        data = {"version": CACHE_VERSION, "choices": {}}
    data["choices"][_key_id(board)] = {
        "variant": variant,
        "invoke_ms": invoke_ms,
        "measured_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "board": board,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{CACHE_NAME}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning(
            "cannot cache the variant choice in %s (%s); variant auto will measure again at the "
            "next start",
            path, exc,
        )  # fmt: skip
        return None
    return path


def measure(estimators: dict[str, Any], seconds: float) -> dict[str, float]:
    """Median invoke time (ms) of each ``runtime.Model`` in ``estimators`` on the same fixed
    synthetic crop, in interleaved rounds for at least ``seconds``."""
    for model in estimators.values():
        view = model.input_view()
        view[...] = np.random.default_rng(0).random(view.shape, dtype=np.float32)  # same seed
        del view  # the interpreter refuses to run while a view of its buffers is alive
        for _ in range(3):  # warm-up: first invokes allocate and pack weights
            model.invoke()
    samples: dict[str, list[float]] = {name: [] for name in estimators}
    order = list(estimators)
    clock = time.perf_counter
    start = clock()
    rounds = 0
    while rounds < MIN_ROUNDS or clock() - start < seconds:
        for name in order if rounds % 2 == 0 else order[::-1]:
            model, times = estimators[name], samples[name]
            for _ in range(ROUND_INVOKES):
                t0 = clock()
                model.invoke()
                times.append(clock() - t0)
        rounds += 1
    return {name: round(statistics.median(t) * 1000.0, 3) for name, t in samples.items()}


def _ms(invoke_ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.2f} ms" for name, ms in sorted(invoke_ms.items()))


def choose(
    directory: Path,
    num_threads: int | None,
    backend: str | None,
    segmentation: bool,
    load: Callable[[Path], Any],
    model: str = models.DEFAULT_MODEL,
) -> Choice:
    """Pick the variant of landmark model ``model`` for ``auto`` and load its estimator with
    ``load(path)``."""
    found, left_out = candidates(directory, model)
    if len(found) == 1:
        variant, (path, _) = next(iter(found.items()))
        others = ", ".join(f"{v}: {why}" for v, why in left_out.items())
        choice = Choice(variant, load(path), f"the only verified variant ({others})")
        log.info("variant auto: %s, %s (model %s)", choice.variant, choice.reason, model)
        return choice

    threads = num_threads or default_threads()
    board = board_key(
        threads, _runtime(backend), segmentation, {v: sha for v, (_, sha) in found.items()}, model
    )
    cached = read_cache(board)
    if cached is not None and cached.get("variant") in found:
        variant = cached["variant"]
        choice = Choice(
            variant,
            load(found[variant][0]),
            f"cached for this board in {cache_dir() / CACHE_NAME} (measured "
            f"{cached.get('measured_utc')}: estimator invoke {_ms(cached.get('invoke_ms', {}))})",
        )
        log.info("variant auto: %s, %s (model %s)", choice.variant, choice.reason, model)
        return choice

    loaded = {}
    for variant, (path, _) in found.items():
        try:
            loaded[variant] = load(path)
        except ModelError as exc:
            if variant == "float":  # a float model that does not load is fatal, as ever
                raise
            log.warning("variant %s left out of auto: %s", variant, exc)
    if len(loaded) == 1:
        variant, estimator = next(iter(loaded.items()))
        choice = Choice(variant, estimator, "the only variant that loads")
        log.info("variant auto: %s, %s (model %s)", choice.variant, choice.reason, model)
        return choice

    log.info(
        "variant auto: measuring %s for %.1f s (%d threads, model %s)",
        ", ".join(loaded), MEASURE_SECONDS, threads, model,
    )  # fmt: skip
    invoke_ms = measure({v: m.model for v, m in loaded.items()}, MEASURE_SECONDS)
    best = min(loaded, key=lambda v: invoke_ms[v])
    if best != "float" and invoke_ms[best] > invoke_ms["float"] * (1.0 - MARGIN):
        best = "float"  # within measuring noise: keep the reference models
    where = write_cache(board, best, invoke_ms)
    reason = f"fastest measured: estimator invoke median {_ms(invoke_ms)} with {threads} threads"
    reason += f"; choice cached in {where}" if where else "; not cached"
    log.info("variant auto: %s, %s (model %s)", best, reason, model)
    return Choice(best, loaded[best], reason)


def detector_candidate(directory: Path) -> tuple[tuple[Path, str] | None, str]:
    """The int8 detector as a candidate, ``(path, sha256)``, or None and why not ("absent",
    "unusable", "not gated on held-out sources")."""
    name = models.INT8_DETECTOR
    if not models.derived_present(name, directory):
        return None, "absent"
    try:
        record = models.verify_derived(name, directory)
    except ModelError as exc:
        log.warning("int8 detector left out: %s", exc)
        return None, "unusable"
    held_out = record["gate"].get("held_out")
    if held_out not in models.AUTO_GATES:
        log.warning(
            "int8 detector left out: its gate was %s, not %s", held_out, models.HELD_OUT_SOURCES
        )
        return None, "not gated on held-out sources"
    return (models.locate(name, directory, check=False), record["sha256"]), "gated"


def choose_detector(
    directory: Path,
    variant: str,
    num_threads: int | None,
    backend: str | None,
    load: Callable[[Path], Any],
) -> Choice:
    """The detector for ``variant`` (float, int8 or auto), loaded with ``load(path)``: float for
    ``float`` and whenever the int8 detector is absent, unusable or not gated on held-out
    sources; for ``int8`` the int8 detector when it is; for ``auto`` the faster of the two,
    measured once per board and cached (int8 only if ``MARGIN`` faster)."""
    float_path = models.locate(models.DETECTOR, directory)
    if variant == "float":
        return Choice("float", load(float_path), "requested")
    found, why = detector_candidate(directory)
    if found is None:
        return Choice("float", load(float_path), f"int8 detector {why}")
    int8_path, int8_sha = found
    if variant == "int8":
        return Choice("int8", load(int8_path), "int8 detector gated on held-out sources")
    threads = num_threads or default_threads()
    shas = {"float": models.specs()[models.DETECTOR].sha256, "int8": int8_sha}
    board = board_key(threads, _runtime(backend), False, shas, "detector")
    cached = read_cache(board)
    if cached is not None and cached.get("variant") in shas:
        chosen = cached["variant"]
        path = int8_path if chosen == "int8" else float_path
        reason = (f"cached for this board (measured {cached.get('measured_utc')}: detector "
                  f"invoke {_ms(cached.get('invoke_ms', {}))})")  # fmt: skip
        log.info("detector auto: %s, %s", chosen, reason)
        return Choice(chosen, load(path), reason)
    loaded = {"float": load(float_path)}
    try:
        loaded["int8"] = load(int8_path)
    except ModelError as exc:
        log.warning("int8 detector left out: %s", exc)
        return Choice("float", loaded["float"], "int8 detector does not load")
    invoke_ms = measure({v: d.model for v, d in loaded.items()}, MEASURE_SECONDS)
    best = "int8" if invoke_ms["int8"] <= invoke_ms["float"] * (1.0 - MARGIN) else "float"
    where = write_cache(board, best, invoke_ms)
    reason = f"fastest measured: detector invoke median {_ms(invoke_ms)} with {threads} threads"
    reason += f"; choice cached in {where}" if where else "; not cached"
    log.info("detector auto: %s, %s", best, reason)
    return Choice(best, loaded[best], reason)
