"""blazepose-edge: Google's BlazePose on edge CPUs.

Two layers: ``edge.pose``, the pose library (arrays in, poses out), and ``edge.service``, the
daemon, command line and benchmarks around it. The library's public API is re-exported here:

    from edge import PoseEstimator
    with PoseEstimator() as est:               # video mode: tracking + smoothing
        poses = est.process(frame_bgr)         # Poses, a list of Pose; Pose.landmarks is (33, 5) in pixels
"""

from .pose import FrameError, ModelError, Pose, PoseEstimator, Poses

__all__ = ["FrameError", "ModelError", "Pose", "PoseEstimator", "Poses"]
__version__ = "0.1.0"
