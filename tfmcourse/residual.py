"""Residual connections (잔차 연결), post-LN and pre-LN (lesson 04).

A residual sub-layer adds its input back to what the sub-layer computes, so
every layer is "the identity plus a correction":

- post-LN (the 2017 paper, ``norm_first=False``): ``norm(x + sublayer(x))``
- pre-LN (``norm_first=True``):                 ``x + sublayer(norm(x))``
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def residual_sublayer(
    x: Tensor,
    sublayer: Callable[[Tensor], Tensor],
    norm: Callable[[Tensor], Tensor],
    norm_first: bool = False,
) -> Tensor:
    """One residual sub-layer with layer norm, post-LN (default) or pre-LN.

    Shape:
        x ``(..., D)``; ``sublayer`` and ``norm`` map ``(..., D)`` → ``(..., D)``;
        returns the shape of ``x``.
    """
    branch = sublayer(norm(x) if norm_first else x)  # (..., D)
    if branch.shape != x.shape:
        raise ValueError(
            f"residual_sublayer: the sub-layer changed the shape {tuple(x.shape)} → "
            f"{tuple(branch.shape)}; x + sublayer(...) needs the same shape"
        )
    if norm_first:
        return x + branch  # pre-LN: the identity path is never normalised
    return norm(x + branch)  # post-LN: normalise after the sum
