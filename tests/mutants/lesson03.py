"""Implementations of the lesson 03 exercises, right and wrong, written independently."""

import torch
import torch.nn.functional as F

from tests.mutants import correct, wrong

# ---- batch_norm


@correct("batch_norm")
def batch_norm_flatten_float64(x, gamma, beta, eps=1e-5):
    C = x.shape[-1]
    flat = x.reshape(-1, C).double()  # (N, C)
    mu = flat.sum(0) / flat.shape[0]
    var = ((flat - mu) ** 2).sum(0) / flat.shape[0]
    y = (flat - mu) * torch.rsqrt(var + eps) * gamma.double() + beta.double()
    return y.reshape(x.shape).to(x.dtype)


@correct("batch_norm")
def batch_norm_via_torch(x, gamma, beta, eps=1e-5):
    C = x.shape[-1]
    y = F.batch_norm(x.reshape(-1, C), None, None, gamma, beta, training=True, eps=eps)
    return y.reshape(x.shape)


@correct("batch_norm")
def batch_norm_var_mean(x, gamma, beta, eps=1e-5):
    dims = list(range(x.dim() - 1))
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    return torch.addcmul(beta, (x - mean) / (var + eps).sqrt(), gamma)


@correct("batch_norm")
def batch_norm_one_pass_float32(x, gamma, beta, eps=1e-5):
    """Var = E[x²] - E[x]² in float32: correct, and the least accurate way to write it."""
    dims = tuple(range(x.dim() - 1))
    mean = x.mean(dims)
    var = (x * x).mean(dims) - mean * mean
    return (x - mean) * (var + eps).rsqrt() * gamma + beta


@correct("batch_norm")
def batch_norm_welford_loop(x, gamma, beta, eps=1e-5):
    """Running mean and variance, one sample at a time (Welford), in float32."""
    rows = x.reshape(-1, x.shape[-1])
    mean = torch.zeros(x.shape[-1])
    m2 = torch.zeros(x.shape[-1])
    for n, r in enumerate(rows, start=1):
        delta = r - mean
        mean = mean + delta / n
        m2 = m2 + delta * (r - mean)
    var = m2 / rows.shape[0]
    return ((rows - mean) / torch.sqrt(var + eps) * gamma + beta).reshape(x.shape)


def _stats(x, dims, unbiased=False):
    mean = x.mean(dim=dims, keepdim=True)
    n = 1
    for d in dims:
        n *= x.shape[d]
    var = ((x - mean) ** 2).sum(dim=dims, keepdim=True) / (n - 1 if unbiased else n)
    return mean, var


@wrong("batch_norm", "unbiased")
def batch_norm_unbiased(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    return (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, keepdim=True) + eps) * gamma + beta


@wrong("batch_norm", "two mistakes at once")
def batch_norm_unbiased_and_eps_outside(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    sd = x.std(dims, keepdim=True)  # unbiased by default
    return (x - x.mean(dims, keepdim=True)) / (sd + eps) * gamma + beta


@wrong("batch_norm", "outside the square root")
def batch_norm_eps_outside(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean, var = _stats(x, dims)
    return (x - mean) / (var.sqrt() + eps) * gamma + beta


@wrong("batch_norm", "that is layer norm")
def batch_norm_over_features(x, gamma, beta, eps=1e-5):
    mean, var = _stats(x, (x.dim() - 1,))
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


@wrong("batch_norm", "batch axis only")
def batch_norm_dim0(x, gamma, beta, eps=1e-5):
    mean, var = _stats(x, (0,))
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


@wrong("batch_norm", "batch axis only")
def batch_norm_nn_batchnorm1d_wrong_layout(x, gamma, beta, eps=1e-5):
    # statistics per (t, c) over the batch: what nn.BatchNorm1d would do on a flattened (B, T*C) input
    B = x.shape[0]
    y = F.batch_norm(x.reshape(B, -1), None, None, None, None, training=True, eps=eps)
    return y.reshape(x.shape) * gamma + beta


@wrong("batch_norm", "every axis, channels included")
def batch_norm_global(x, gamma, beta, eps=1e-5):
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) * gamma + beta


@wrong("batch_norm", "swapped")
def batch_norm_swapped(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean, var = _stats(x, dims)
    return beta * (x - mean) / torch.sqrt(var + eps) + gamma


@wrong("batch_norm", "gamma and beta are missing")
def batch_norm_no_affine(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean, var = _stats(x, dims)
    return (x - mean) / torch.sqrt(var + eps)


@wrong("batch_norm", "beta is missing")
def batch_norm_no_beta(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean, var = _stats(x, dims)
    return gamma * (x - mean) / torch.sqrt(var + eps)


@wrong("batch_norm", "eps argument is ignored")
def batch_norm_hardcoded_eps(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean, var = _stats(x, dims)
    return (x - mean) / torch.sqrt(var + 1e-5) * gamma + beta


@wrong("batch_norm", "changed one of its inputs in place")
def batch_norm_in_place(x, gamma, beta, eps=1e-5):
    dims = tuple(range(x.dim() - 1))
    mean, var = _stats(x, dims)
    x.sub_(mean).div_(torch.sqrt(var + eps))
    return x * gamma + beta


@wrong("batch_norm", "calling it raised")
def batch_norm_only_2d(x, gamma, beta, eps=1e-5):
    if x.dim() != 2:
        raise ValueError("only (B, C) supported")
    return batch_norm_via_torch(x, gamma, beta, eps)


# ---- layer_norm


@correct("layer_norm")
def layer_norm_via_torch(x, gamma, beta, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)


@correct("layer_norm")
def layer_norm_float64_manual(x, gamma, beta, eps=1e-5):
    z = x.double()
    D = z.shape[-1]
    mu = z.sum(-1, keepdim=True) / D
    var = ((z - mu) ** 2).sum(-1, keepdim=True) / D
    return ((z - mu) / (var + eps) ** 0.5 * gamma.double() + beta.double()).to(x.dtype)


@correct("layer_norm")
def layer_norm_loop(x, gamma, beta, eps=1e-5):
    rows = x.reshape(-1, x.shape[-1])
    out = torch.empty_like(rows)
    for i, r in enumerate(rows):
        var, mean = torch.var_mean(r, correction=0)
        out[i] = (r - mean) / torch.sqrt(var + eps) * gamma + beta
    return out.reshape(x.shape)


@correct("layer_norm")
def layer_norm_one_pass_float32(x, gamma, beta, eps=1e-5):
    """Var = E[x²] - E[x]² over the features, in float32."""
    mean = x.mean(-1, keepdim=True)
    var = x.pow(2).mean(-1, keepdim=True) - mean.pow(2)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def _ln_core(x, dims, eps, unbiased=False):
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=unbiased, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


@wrong("layer_norm", "two mistakes at once")
def layer_norm_unbiased_and_eps_outside(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + eps) + beta


@wrong("layer_norm", "unbiased")
def layer_norm_unbiased(x, gamma, beta, eps=1e-5):
    return _ln_core(x, -1, eps, unbiased=True) * gamma + beta


@wrong("layer_norm", "outside the square root")
def layer_norm_eps_outside(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, unbiased=False, keepdim=True)
    return (x - mean) / (std + eps) * gamma + beta


@wrong("layer_norm", "over the batch axis")
def layer_norm_over_batch(x, gamma, beta, eps=1e-5):
    return _ln_core(x, 0, eps) * gamma + beta


@wrong("layer_norm", "batch norm's axes")
def layer_norm_bn_axes(x, gamma, beta, eps=1e-5):
    return _ln_core(x, tuple(range(x.dim() - 1)), eps) * gamma + beta


@wrong("layer_norm", "sequence/time axis")
def layer_norm_over_time(x, gamma, beta, eps=1e-5):
    return _ln_core(x, -2, eps) * gamma + beta


@wrong("layer_norm", "whole sequence")
def layer_norm_whole_sample(x, gamma, beta, eps=1e-5):
    return _ln_core(x, tuple(range(1, x.dim())), eps) * gamma + beta


@wrong("layer_norm", "swapped")
def layer_norm_swapped(x, gamma, beta, eps=1e-5):
    return _ln_core(x, -1, eps) * beta + gamma


@wrong("layer_norm", "gamma and beta are missing")
def layer_norm_no_affine(x, gamma, beta, eps=1e-5):
    return _ln_core(x, -1, eps)


@wrong("layer_norm", "gamma is missing")
def layer_norm_no_gamma(x, gamma, beta, eps=1e-5):
    return _ln_core(x, -1, eps) + beta


@wrong("layer_norm", "eps argument is ignored")
def layer_norm_default_eps(x, gamma, beta, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], gamma, beta)


@wrong("layer_norm", "calling it raised")
def layer_norm_3d_only(x, gamma, beta, eps=1e-5):
    B, T, D = x.shape
    return F.layer_norm(x, (D,), gamma, beta, eps)
