"""Prune a TFLite model to the outputs the pipeline reads.

The estimator computes a 256x256 segmentation mask on every frame whether or not anyone uses it.
Keeping only the operators that feed the wanted outputs gives the same values for those outputs
(bit for bit: the remaining operators and their inputs are untouched) for less work. This runs
in memory at load time on the verified model file; nothing is written or downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

log = logging.getLogger(__name__)


def needed(subgraph, keep: Iterable[int]) -> tuple[set[int], set[int]]:
    """The operators and tensors (indices) of ``subgraph`` (a SubGraphT) that the output
    tensors ``keep`` depend on."""
    keep = [int(t) for t in keep]
    producer = {int(t): i for i, op in enumerate(subgraph.operators) for t in op.outputs}
    tensors, ops, stack = set(keep), set(), list(keep)
    while stack:
        op = producer.get(stack.pop())
        if op is None or op in ops:
            continue
        ops.add(op)
        for t in subgraph.operators[op].inputs:
            if t >= 0 and int(t) not in tensors:
                tensors.add(int(t))
                stack.append(int(t))
    return ops, tensors


def prune_outputs(model: bytes, keep: Iterable[int]) -> bytes:
    """``model`` with only the operators needed for the output tensors ``keep`` (indices)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    if len(m.subgraphs) != 1:
        raise ValueError("only single-subgraph models can be pruned")
    sg = m.subgraphs[0]
    keep = [int(t) for t in keep]
    needed_ops, _ = needed(sg, keep)
    sg.operators = [op for i, op in enumerate(sg.operators) if i in needed_ops]
    sg.outputs = np.array(keep, dtype=np.int32)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def can_prune() -> bool:
    try:
        import flatbuffers  # noqa: F401
        from ai_edge_litert import schema_py_generated  # noqa: F401
    except ImportError:
        return False
    return True
