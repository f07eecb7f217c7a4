"""Exact parameter counts (built on the meta device: no memory, no RNG use) and budget -> shape solving."""

from __future__ import annotations

import torch

from models.classifier import build_classifier
from models.registry import get_spec, resolve_hp


def count_params(name: str, n_features: int, input_size: int, **hp) -> int:
    """Parameters of the whole DirectionClassifier (feature projection + backbone + head)."""
    with torch.device("meta"):
        model = build_classifier(name, n_features, input_size, **hp)
    return sum(p.numel() for p in model.parameters())


def solve_budget(name: str, budget: int, style: str, n_features: int, input_size: int, **fixed_hp) -> dict:
    """The largest shape of `style` with at most `budget` parameters.

    The style fixes n_layers and derives n_heads from hidden_size; hidden_size is searched on the style's grid
    (count is increasing in it). Returns the backbone's full hp (defaults < fixed_hp < shape) plus `count`.
    """
    spec = get_spec(name)
    if style not in spec.styles:
        raise ValueError(f"unknown style {style!r}; known: {', '.join(spec.styles)}")
    clash = sorted({"hidden_size", "n_layers", "n_heads"} & set(fixed_hp))
    if clash:
        raise ValueError(f"style {style!r} decides {', '.join(clash)}; do not fix them")
    shape = spec.styles[style]
    grid = shape.hidden_grid()

    def count(i: int) -> int:
        return count_params(name, n_features, input_size, **fixed_hp, **shape.shape(grid[i]))

    smallest = count(0)
    if smallest > budget:
        raise ValueError(
            f"no {style} {name} fits {budget:,} parameters: the smallest has {smallest:,} "
            f"(hidden_size {grid[0]}, n_layers {shape.n_layers})"
        )
    # galloping then bisection on the grid index; invariant: count(lo) <= budget < count(hi + 1)
    lo, hi, fit = 0, len(grid) - 1, smallest
    probe = 1
    while probe <= hi:
        n = count(probe)
        if n > budget:
            hi = probe - 1
            break
        lo, fit, probe = probe, n, 2 * probe + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        n = count(mid)
        if n <= budget:
            lo, fit = mid, n
        else:
            hi = mid - 1
    return {**resolve_hp(name, **fixed_hp, **shape.shape(grid[lo])), "count": fit}
