"""blazepose-edge: Google's BlazePose on edge CPUs.

from edge import PoseEstimator
est = PoseEstimator()                  # video mode: tracking + smoothing
poses = est.process(frame_bgr)         # list[Pose]; Pose.landmarks is (33, 5) in pixels
"""

from .models import ModelError
from .pipeline import FrameError, Pose, PoseEstimator

__all__ = ["FrameError", "ModelError", "Pose", "PoseEstimator"]
__version__ = "0.1.0"
