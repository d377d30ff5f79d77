"""torch bf16: autocast over weights already stored in bfloat16, verified to give the same vectors.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` every matmul-class op
(linear, convolution) casts its fp32 weight and bias to bfloat16 on every
call: for a ViT-B that is ~86 M values rounded per batch. Storing those
weights in bfloat16 once gives the op the very same bfloat16 operands, so
the vectors are unchanged bit for bit and the per-batch casts go away
(about 1.1x on ViT-B/32 and ViT-B/14 here; see
``benchmarks/results/extract.md``). Everything else (layer norms, softmax,
embeddings, pooling) keeps its fp32 parameters and autocast's own rules.

The identity of these vectors (``dtype="bf16"``) is the autocast one, so the
change is checked, never assumed: :func:`cast_verified` compares the probe
batch's vectors before and after the cast and puts the fp32 weights back
when any value differs (a weight tied to a non-matmul op, say).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _matmul_modules(model: Any) -> list[Any]:
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return [m for m in model.modules() if isinstance(m, kinds)]


def cast_matmul_weights(model: Any) -> dict[int, tuple[Any, Any]]:
    """Store every linear/convolution weight and bias of ``model`` in bfloat16, in place.

    Returns what :func:`restore` needs to undo it: the original fp32 tensors,
    by parameter identity (a parameter shared by two modules is cast once).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    >>> saved = cast_matmul_weights(net)
    >>> net[0].weight.dtype, net[1].weight.dtype, len(saved)
    (torch.bfloat16, torch.float32, 2)
    >>> restore(saved); net[0].weight.dtype
    torch.float32
    """
    import torch

    saved: dict[int, tuple[Any, Any]] = {}
    for mod in _matmul_modules(model):
        for p in (mod.weight, mod.bias):
            if p is not None and p.dtype == torch.float32 and id(p) not in saved:
                saved[id(p)] = (p, p.data)
                p.data = p.data.to(torch.bfloat16)
    return saved


def restore(saved: dict[int, tuple[Any, Any]]) -> None:
    """Put back the fp32 tensors :func:`cast_matmul_weights` replaced."""
    for p, data in saved.values():
        p.data = data


def cast_verified(model: Any, probes: dict[str, Callable[[], np.ndarray]],
                  before: dict[str, np.ndarray]) -> bool:
    """Cast ``model``'s matmul weights to bf16 and keep them only if every probe gives ``before`` exactly.

    ``probes`` maps a modality to a call that runs its probe batch under bf16
    autocast; ``before`` holds those calls' outputs with the fp32 weights.
    Returns whether the cast was kept.
    """
    saved = cast_matmul_weights(model)
    if not saved:
        return False
    try:
        same = all(np.array_equal(run(), before[m]) for m, run in probes.items())
    except RuntimeError:  # an op outside autocast's rules met a bf16 weight
        same = False
    if not same:
        restore(saved)
    return same
