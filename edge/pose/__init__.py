"""The pose library: arrays in, poses out. No threads, no I/O beyond the model files.

Public API: ``PoseEstimator`` (its options, properties and methods), ``Pose``, ``Poses`` (what
``process`` returns), ``FrameError``, ``ModelError``, ``draw_poses``; the names ``LANDMARK_MODELS``, ``DEFAULT_MODEL``,
``INT8_MODELS`` and ``VARIANT_CHOICES``; the modules ``models`` (where the model files live, ``fetch``, ``verify``)
and ``board`` (what this board is). Everything else here is internal to the library.
"""

from . import board, models
from .draw import draw_poses
from .models import DEFAULT_MODEL, INT8_MODELS, LANDMARK_MODELS, ModelError
from .pipeline import FrameError, Pose, PoseEstimator, Poses
from .variants import CHOICES as VARIANT_CHOICES

__all__ = [
    "DEFAULT_MODEL",
    "FrameError",
    "INT8_MODELS",
    "LANDMARK_MODELS",
    "ModelError",
    "Pose",
    "PoseEstimator",
    "Poses",
    "VARIANT_CHOICES",
    "board",
    "draw_poses",
    "models",
]
