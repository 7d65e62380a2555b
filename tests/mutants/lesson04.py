"""Implementations of the lesson 04 exercise, right and wrong, written independently."""

import torch

from tests.mutants import correct, wrong

# ---- residual_sublayer


@correct("residual_sublayer")
def residual_if_else(x, sublayer, norm, norm_first=False):
    if norm_first:
        return x + sublayer(norm(x))
    return norm(x + sublayer(x))


@correct("residual_sublayer")
def residual_named_steps(x, sublayer, norm, norm_first=False):
    h = norm(x) if norm_first else x
    h = sublayer(h)
    y = torch.add(x, h)
    return y if norm_first else norm(y)


@wrong("residual_sublayer", "swapped")
def residual_swapped(x, sublayer, norm, norm_first=False):
    if not norm_first:
        return x + sublayer(norm(x))
    return norm(x + sublayer(x))


@wrong("residual_sublayer", "swapped")
def residual_default_pre(x, sublayer, norm, norm_first=True):
    if norm_first:
        return x + sublayer(norm(x))
    return norm(x + sublayer(x))


@wrong("residual_sublayer", "swapped")
def residual_always_post(x, sublayer, norm, norm_first=False):
    return norm(x + sublayer(x))


@wrong("residual_sublayer", "no residual connection")
def residual_missing(x, sublayer, norm, norm_first=False):
    if norm_first:
        return sublayer(norm(x))
    return norm(sublayer(x))


@wrong("residual_sublayer", "normalised* input is added")
def residual_adds_normed_pre(x, sublayer, norm, norm_first=False):
    if norm_first:
        h = norm(x)
        return h + sublayer(h)
    return norm(x + sublayer(x))


@wrong("residual_sublayer", "normalised* input is added")
def residual_adds_normed_post(x, sublayer, norm, norm_first=False):
    if norm_first:
        return x + sublayer(norm(x))
    return norm(x) + sublayer(x)


@wrong("residual_sublayer", "norm is never applied")
def residual_no_norm(x, sublayer, norm, norm_first=False):
    return x + sublayer(x)


@wrong("residual_sublayer", "sublayer output only")
def residual_norm_on_branch(x, sublayer, norm, norm_first=False):
    return x + norm(sublayer(x))


@wrong("residual_sublayer", "normalises the output as well")
def residual_pre_double_norm(x, sublayer, norm, norm_first=False):
    if norm_first:
        return norm(x + sublayer(norm(x)))
    return norm(x + sublayer(x))


@wrong("residual_sublayer", "changed x in place")
def residual_in_place(x, sublayer, norm, norm_first=False):
    if norm_first:
        x += sublayer(norm(x))
        return x
    return norm(x + sublayer(x))
