"""TFLite interpreter backends.

``ai-edge-litert`` (LiteRT) is the primary backend; ``tflite-runtime`` 2.14 is a fallback used only
when LiteRT is not installed (it has no Python 3.12+ wheels and needs numpy < 2). Both use XNNPACK
as their default CPU delegate. A model is only accepted once an interpreter has been built and its
tensors allocated: with tflite-runtime under numpy 2 the import works and the interpreter fails.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .models import ModelError

log = logging.getLogger(__name__)
BACKENDS = ("ai_edge_litert", "tflite_runtime")


def default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def interpreter_class(backend: str | None = None):
    """The ``Interpreter`` class of ``backend``, or of the first installed backend."""
    names = (backend,) if backend else BACKENDS
    errors = []
    for name in names:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
        try:
            module = importlib.import_module(f"{name}.interpreter")
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return name, module.Interpreter
    raise ModelError(
        "no TFLite interpreter found (" + "; ".join(errors) + "); install ai-edge-litert "
        "(pip install ai-edge-litert) or, on Python <= 3.11 with numpy < 2, tflite-runtime"
    )


@dataclass(frozen=True)
class TensorInfo:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype


class Model:
    """One loaded model: input written in place, outputs found by shape, ``invoke()`` to run.

    ``outputs`` maps each expected role to its output tensor, chosen by shape (the MediaPipe models
    name them ``Identity``, ``Identity_1``...; shapes are what identifies them reliably).
    """

    def __init__(
        self,
        path: Path,
        output_shapes: dict[str, Sequence[int]],
        num_threads: int | None = None,
        backend: str | None = None,
        prune_to: Sequence[str] | None = None,
    ):
        """``prune_to``: the output roles actually read; the graph is cut down to what they
        need where the backend allows (see ``graph.py``), else the full model runs."""
        self.path = Path(path)
        self.num_threads = num_threads or default_threads()
        self.backend, cls = interpreter_class(backend)
        self.pruned = False
        try:
            content = self._pruned(cls, output_shapes, prune_to) if prune_to else None
            if content is not None:
                self.interpreter = cls(model_content=content, num_threads=self.num_threads)
                output_shapes = {role: output_shapes[role] for role in prune_to}
                self.pruned = True
            else:
                self.interpreter = cls(model_path=str(self.path), num_threads=self.num_threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # the backends raise ValueError, RuntimeError, SystemError...
            raise ModelError(
                f"{self.backend} could not load {self.path}: {exc}. If this is tflite-runtime under "
                "numpy 2, install ai-edge-litert instead."
            ) from exc
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: expected one input tensor, found {len(inputs)}")
        self.input = _info(inputs[0])
        found = [_info(d) for d in self.interpreter.get_output_details()]
        self.outputs: dict[str, TensorInfo] = {}
        for role, shape in output_shapes.items():
            match = [t for t in found if t.shape == tuple(shape)]
            if len(match) != 1:
                raise ModelError(
                    f"{self.path}: expected one output of shape {tuple(shape)} for {role}, found "
                    f"{[t.shape for t in found]}; is this the right model file?"
                )
            self.outputs[role] = match[0]

    def _pruned(self, cls, output_shapes, prune_to) -> bytes | None:
        from . import graph

        if not graph.can_prune():
            log.info(
                "cannot prune %s with %s; running the full graph", self.path.name, self.backend
            )
            return None
        probe = cls(model_path=str(self.path), num_threads=1)
        outputs = [_info(d) for d in probe.get_output_details()]
        keep = []
        for role in prune_to:
            match = [t.index for t in outputs if t.shape == tuple(output_shapes[role])]
            if len(match) != 1:
                return None
            keep.append(match[0])
        return graph.prune_outputs(self.path.read_bytes(), keep)

    def input_view(self) -> np.ndarray:
        """A writable view of the input tensor (batch dimension dropped).

        Drop every reference to it before ``invoke()``: the interpreter refuses to run while a
        numpy view of its buffers is alive.
        """
        return self.interpreter.tensor(self.input.index)()[0]

    def invoke(self) -> None:
        self.interpreter.invoke()

    def output(self, role: str) -> np.ndarray:
        """A copy of output ``role`` with the batch dimension dropped."""
        return self.interpreter.get_tensor(self.outputs[role].index)[0]

    def output_view(self, role: str) -> np.ndarray:
        """Output ``role`` in place, without the copy ``output`` makes (the heatmap is 624 KB).
        Valid until the next ``invoke()``, which refuses to run while the view is alive: read
        it and drop it, as ``input_view``."""
        return self.interpreter.tensor(self.outputs[role].index)()[0]


def _info(detail: dict) -> TensorInfo:
    return TensorInfo(
        name=detail["name"],
        index=int(detail["index"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
    )
