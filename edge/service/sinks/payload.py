"""Pose messages: the JSON document and the compact binary layout.

JSON (``mqtt.encoding = "json"``, the default), one per processed frame::

    {"v": 1, "device": ID, "frame": N, "ts": 1732400000.123, "width": W, "height": H,
     "poses": [{"id": I, "score": S, "landmarks": [[x, y, z, visibility, presence] x 33],
                "world_landmarks": [[x, y, z] x 33]}]}

x and y are fractions of the frame's width and height (MediaPipe's convention), z is on x's
scale; world landmarks are metres with the origin between the hips. ``poses`` is empty when
nobody is in view. A frame that was not looked at (``pipeline.idle_detect_hz``: nobody was
tracked and no scan was due) has empty ``poses`` and ``"scanned": false``; the key is absent
from every other message. ``id`` is the person's id: the same from frame to frame while they are
tracked, not reused; poses are ordered by id. The schema is
``edge/service/schema/pose.schema.json``.

Binary (``mqtt.encoding = "binary"``), little-endian, the same values::

    offset size type        field
    0      4    char[4]     magic "BPE2" (layout version 2; version 1, "BPE1", had no id)
    4      4    uint32      frame
    8      8    float64     ts, epoch seconds
    16     2    uint16      width
    18     2    uint16      height
    20     1    uint8       P, the number of poses
    21     3    -           zero
    24     1064 x P         per pose: uint32 id (modulo 2**32), float32 score,
                            float32[33][5] landmarks, float32[33][3] world landmarks

The binary layout has no room for ``scanned``: a frame that was not looked at is a message with
no poses (P = 0), as a frame looked at with nobody in view.
"""

from __future__ import annotations

import json
import struct

import numpy as np

SCHEMA_VERSION = 1
MAGIC = b"BPE2"
MAGIC_V1 = b"BPE1"
HEADER = struct.Struct("<4sIdHHB3x")
POSE_V2 = np.dtype(
    [("id", "<u4"), ("score", "<f4"), ("landmarks", "<f4", (33, 5)), ("world", "<f4", (33, 3))]
)
POSE_V1 = np.dtype([("score", "<f4"), ("landmarks", "<f4", (33, 5)), ("world", "<f4", (33, 3))])


def normalised(pose, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(33, 5) landmarks with x, y, z divided by the frame size; (33, 3) world landmarks."""
    lm = pose.landmarks.astype(np.float64)
    lm[:, 0] /= width
    lm[:, 1] /= height
    lm[:, 2] /= width
    return lm, pose.world_landmarks.astype(np.float64)


def pose_json(
    device: str, frame: int, ts: float, width: int, height: int, poses, scanned: bool = True
) -> bytes:
    items = []
    for pose in poses:
        lm, world = normalised(pose, width, height)
        lm[:, :3] = np.round(lm[:, :3], 5)
        lm[:, 3:] = np.round(lm[:, 3:], 4)
        items.append(
            {
                "id": int(pose.id),
                "score": round(float(pose.score), 4),
                "landmarks": lm.tolist(),
                "world_landmarks": np.round(world, 4).tolist(),
            }
        )
    doc = {
        "v": SCHEMA_VERSION,
        "device": device,
        "frame": frame,
        "ts": round(ts, 6),
        "width": width,
        "height": height,
        "poses": items,
    }
    if not scanned:
        doc["scanned"] = False
    return json.dumps(doc, separators=(",", ":")).encode()


def pose_binary(frame: int, ts: float, width: int, height: int, poses) -> bytes:
    block = np.zeros(len(poses), POSE_V2)
    for row, pose in zip(block, poses, strict=True):
        row["id"] = int(pose.id) & 0xFFFFFFFF
        row["score"] = pose.score
        row["landmarks"], row["world"] = normalised(pose, width, height)
    return HEADER.pack(MAGIC, frame, ts, width, height, len(poses)) + block.tobytes()


def decode_binary(data: bytes) -> dict:
    """Inverse of ``pose_binary`` (for consumers and tests); reads layout versions 2 and 1 (in
    version 1 messages, which have no id, each pose's id is its index)."""
    magic, frame, ts, width, height, count = HEADER.unpack_from(data)
    if magic not in (MAGIC, MAGIC_V1):
        raise ValueError("not a blazepose-edge binary pose message")
    layout = POSE_V2 if magic == MAGIC else POSE_V1
    body = np.frombuffer(data, layout, count=count, offset=HEADER.size)
    poses = [
        {
            "id": int(row["id"]) if magic == MAGIC else i,
            "score": float(row["score"]),
            "landmarks": row["landmarks"],
            "world_landmarks": row["world"],
        }
        for i, row in enumerate(body)
    ]
    return {"frame": frame, "ts": ts, "width": width, "height": height, "poses": poses}


def encode(result, encoding: str, device: str) -> bytes:
    """A ``FrameResult`` as a pose message in ``encoding`` ("json" or "binary")."""
    if encoding == "binary":
        return pose_binary(result.index, result.ts, result.width, result.height, result.poses)
    return pose_json(
        device, result.index, result.ts, result.width, result.height, result.poses,
        scanned=result.scanned,
    )  # fmt: skip
