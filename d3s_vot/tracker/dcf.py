"""The GEM's discriminative correlation filter: labels, projection, the sample memory and the
two optimisers (joint filter+projection Gauss-Newton at initialisation, filter-only CG after).

Notation: training samples ``x`` are projected features (N x C x k x k maps of size 16x16), the
filter ``f`` is 1 x C x 4 x 4, scores are the cross-correlation of ``x`` with ``f`` (padding 2,
last row and column dropped because the kernel is even), passed through the 'mlu' activation in
the loss. Gauss-Newton products J^T J p are formed with one forward linearisation and one
adjoint, both as matrix products (no autograd).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .transfers import gpu_code_path, host_side, read_values, upload


def mlu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """elu(leaky_relu(x, 1/alpha), alpha): identity for x >= 0, alpha*(exp(x/alpha) - 1) below."""
    return F.elu(F.leaky_relu(x, 1.0 / alpha), alpha)


def mlu_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Derivative of :func:`mlu` (exp(x/alpha) below zero, 1 at and above)."""
    return torch.where(x > 0, torch.ones_like(x), torch.exp(x / alpha))


def correlate(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """'same' cross-correlation of N x C x H x W samples with a 1 x C x k x k filter."""
    out = F.conv2d(x, f, padding=(f.shape[-2] // 2, f.shape[-1] // 2))
    return out[..., : x.shape[-2], : x.shape[-1]]


def project(x: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, projection)


def gaussian_label(size: int, sigma: float, centre_yx: Sequence[float], dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """size x size Gaussian with peak 1 at ``centre_yx`` (cell offsets from the map middle)."""
    k = torch.arange(-(size - 1) / 2, (size + 1) / 2, dtype=torch.float32, device=device).to(dtype)
    gy = torch.exp(-1.0 / (2 * sigma ** 2) * (k - centre_yx[0]) ** 2)
    gx = torch.exp(-1.0 / (2 * sigma ** 2) * (k - centre_yx[1]) ** 2)
    return gy.view(-1, 1) * gx.view(1, -1)


def pca_projection(features: torch.Tensor, dim: int, cov_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """dim x C x 1 x 1 projection onto the leading principal directions of N x C x H x W features.

    The original took left singular vectors of the (centred) covariance; those are its
    eigenvectors, so a symmetric eigensolver gives the same subspace (signs are irrelevant: the
    joint optimisation is symmetric under flipping a projection row with its filter channel).
    ``cov_dtype`` (default: the features' dtype) is the precision of the covariance product: a
    float32 tracker's features carry float32 precision anyway, and only seed the joint
    optimisation, so float32 halves the cost without moving its trajectory.
    """
    c = features.shape[1]
    mat = features.transpose(0, 1).reshape(c, -1)
    mat = mat - mat.mean(dim=1, keepdim=True)
    if cov_dtype is not None and cov_dtype != mat.dtype:
        low = mat.to(cov_dtype)
        cov = (low @ low.t()).to(mat.dtype)
    else:
        cov = mat @ mat.t()
    # float64 solver: LAPACK's float32 symmetric eigensolver is ~10x slower here, and less accurate
    _, vecs = torch.linalg.eigh(cov.double())
    return vecs[:, -dim:].flip(-1).t().reshape(dim, c, 1, 1).to(features.dtype).contiguous()


# ------------------------------------------------------------------------------------------------
# Joint (filter + projection) Gauss-Newton, used once at initialisation
# ------------------------------------------------------------------------------------------------

@dataclass
class JointProblem:
    samples: torch.Tensor          # N x C_in x H x W (unprojected)
    labels: torch.Tensor           # N x 1 x H x W
    sample_weight: float           # the same weight for every init sample (1/N)
    filter_reg: float
    projection_reg: float
    alpha: float                   # mlu parameter


class Correlator:
    """:func:`correlate` and its adjoint for a fixed set of samples, as matrix products.

    With one output channel the 'same' correlation is a sum of k*k shifted maps, each a linear
    combination of the input channels: one (k*k x C) @ (C x N*H*W) product and a few slice adds.
    The adjoint (gradient with respect to the filter) is the transposed product. Both are much
    faster than convolution kernels for 1 x C x 4 x 4 filters on CPU.

    The shifted maps are added (and gathered) over their valid windows only, in the same order as
    a zero-padded sum, so the results are those of the padded formulation bit for bit: on the CPU
    with k*k slice operations, on the GPU code path with one ``fold`` / ``unfold`` each (the same
    numbers, see tests/test_sync_count.py).
    """

    def __init__(self, samples: torch.Tensor, kernel_size: int):
        n, c, h, w = samples.shape
        self.shape = (n, c, h, w)
        self.k = kernel_size
        self.pad = kernel_size // 2
        self.mat = samples.transpose(0, 1).reshape(c, n * h * w)       # C x (N*H*W)
        # on a GPU one fold / unfold beats k*k small kernels; on the CPU the slice loops are 4-10x faster
        self.batched = gpu_code_path(samples.device)

    def _window(self, size: int, offset: int) -> Tuple[slice, slice]:
        """Target and source slices of ``target[i] += source[i + offset]`` inside [0, size)."""
        lo, hi = max(0, -offset), min(size, size - offset)
        return slice(lo, hi), slice(lo + offset, hi + offset)

    def _shift_add(self, taps: torch.Tensor) -> torch.Tensor:
        """out[n, i, j] = sum over taps of taps[tap, n, i + ky - pad, j + kx - pad] (zero outside)."""
        if self.batched:
            return self._shift_add_fold(taps)
        _, n, h, w = taps.shape
        out = taps.new_zeros(n, h, w)
        for ky in range(self.k):
            ty, sy = self._window(h, ky - self.pad)
            for kx in range(self.k):
                tx, sx = self._window(w, kx - self.pad)
                out[:, ty, tx] += taps[ky * self.k + kx, :, sy, sx]
        return out

    def _shift_add_fold(self, taps: torch.Tensor) -> torch.Tensor:
        """:meth:`_shift_add` as one ``fold`` (col2im) of the spatially flipped taps: it adds the taps in
        tap order, from zero, skipping the cells outside the map, so the sums are those of the k*k
        slice adds bit for bit (the zero padding only adds +0.0)."""
        k2, n, h, w = taps.shape
        p = self.k - 1                      # fold padding: its column map has (h + k - 1) rows
        left = p - self.pad
        right = self.k - 1 - left
        cols = F.pad(taps.flip((-2, -1)), (left, right, left, right)).permute(1, 0, 2, 3).reshape(n, k2, -1)
        return F.fold(cols, (h, w), self.k, padding=p)[:, 0].flip((-2, -1))

    def _gather_shifts(self, v: torch.Tensor) -> torch.Tensor:
        """(k*k) x N x H x W stack: shifts[tap, n, i, j] = v[n, i + pad - ky, j + pad - kx] (zero outside)."""
        n, h, w = v.shape
        if self.batched:
            # one unfold (im2col) of the zero-padded map; it lists the taps in reverse order
            lead = self.k - 1 - self.pad
            padded = F.pad(v[:, None], (lead, self.pad, lead, self.pad))
            return F.unfold(padded, self.k).flip(1).view(n, self.k * self.k, h, w).permute(1, 0, 2, 3)
        shifts = v.new_zeros(self.k * self.k, n, h, w)
        for ky in range(self.k):
            ty, sy = self._window(h, self.pad - ky)
            for kx in range(self.k):
                tx, sx = self._window(w, self.pad - kx)
                shifts[ky * self.k + kx, :, ty, tx] = v[:, sy, sx]
        return shifts

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        n, c, h, w = self.shape
        k2 = self.k * self.k
        taps = (f.reshape(c, k2).t() @ self.mat).view(k2, n, h, w)
        return self._shift_add(taps).unsqueeze(1)

    def adjoint(self, v: torch.Tensor) -> torch.Tensor:
        n, c, h, w = self.shape
        k2 = self.k * self.k
        shifts = self._gather_shifts(v[:, 0])
        return (self.mat @ shifts.reshape(k2, n * h * w).t()).reshape(1, c, self.k, self.k)


def _merged_filter(f: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Projection and filter folded into one filter on the unprojected features:
    correlate(project(x, P), f) == correlate(x, _merged_filter(f, P))."""
    return torch.einsum("cd,ckl->dkl", P[:, :, 0, 0], f[0]).unsqueeze(0)


def joint_gauss_newton(problem: JointProblem, f: torch.Tensor, P: torch.Tensor, gn_iters: int,
                       cg_iters: int, zero_start: Optional[bool] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``gn_iters`` Gauss-Newton steps, each solved with ``cg_iters`` preconditioned CG
    iterations (Fletcher-Reeves, beta clamped at 0, fresh CG state per step).

    Because the projection is linear, J p and J^T v are computed on the unprojected features with
    a merged filter, one correlation and one correlation adjoint per CG iteration.
    ``zero_start``: whether ``f`` is all zeros (the tracker's start); None: look (a host
    synchronisation on CUDA). Later steps always run the projection's products: should a step leave
    the filter at zero (all-zero features), they only add zeros.
    """
    corr = Correlator(problem.samples, f.shape[-1])
    sw = math.sqrt(problem.sample_weight)
    if zero_start is None:
        zero_start = not bool(read_values(f.ne(0).any().view(1))[0])
    for step in range(gn_iters):
        # the residual and the filter part of J^T use the projected samples, as the original does
        # (this keeps the rounding close to the original's); the projection part uses the merged filter
        proj = Correlator(project(problem.samples, P), f.shape[-1])
        s = proj.forward(f)
        dact = sw * mlu_grad(s, problem.alpha)                  # d residual / d scores
        residual = sw * (mlu(s, problem.alpha) - problem.labels)

        # with a zero filter (the first step) the projection's Jacobian is zero: skip its products
        f_is_zero = zero_start and step == 0

        def jt(v: torch.Tensor, f=f, proj=proj, f_is_zero=f_is_zero) -> Tuple[torch.Tensor, torch.Tensor]:
            w = dact * v
            if f_is_zero:
                return proj.adjoint(w), torch.zeros_like(P)
            G = corr.adjoint(w)[0]                                  # C_in x k x k
            gP = torch.einsum("ckl,dkl->cd", f[0], G)[:, :, None, None]
            return proj.adjoint(w), gP

        def jtj(pf: torch.Tensor, pP: torch.Tensor, f=f, proj=proj, jt=jt, f_is_zero=f_is_zero
                ) -> Tuple[torch.Tensor, torch.Tensor]:
            ds = proj.forward(pf)
            if not f_is_zero:
                ds = ds + corr.forward(_merged_filter(f, pP))
            gf, gP = jt(dact * ds)
            return gf + problem.filter_reg * pf, gP + problem.projection_reg * pP

        gf, gP = jt(residual)
        bf = -(gf + problem.filter_reg * f)
        bP = -(gP + problem.projection_reg * P)
        df, dP = _cg(lambda a: jtj(*a), (bf, bP), cg_iters, precond=(problem.filter_reg, problem.projection_reg),
                     fletcher_reeves=True)
        f = f + df
        P = P + dP
    return f, P


# ------------------------------------------------------------------------------------------------
# Filter-only problem over the sample memory
# ------------------------------------------------------------------------------------------------

def filter_gauss_newton_step(f: torch.Tensor, samples: torch.Tensor, labels: torch.Tensor,
                             weights: torch.Tensor, filter_reg: float, alpha: float, cg_iters: int,
                             active: Optional[int] = None) -> torch.Tensor:
    """One Gauss-Newton step of the filter with ``cg_iters`` unpreconditioned Polak-Ribiere CG
    iterations. Memory slots beyond ``active`` have weight 0 and are skipped."""
    if cg_iters <= 0:
        return f
    if active is not None:
        samples, labels, weights = samples[:active], labels[:active], weights[:active]
    corr = Correlator(samples, f.shape[-1])
    sw = weights.sqrt().view(-1, 1, 1, 1)
    s = corr.forward(f)
    dact = sw * mlu_grad(s, alpha)
    residual = sw * (mlu(s, alpha) - labels)

    def jt(v: torch.Tensor) -> torch.Tensor:
        return corr.adjoint(dact * v)

    def jtj(p):
        (pf,) = p
        return (jt(dact * corr.forward(pf)) + filter_reg * pf,)

    b = -(jt(residual) + filter_reg * f)
    (df,) = _cg(jtj, (b,), cg_iters, precond=None, fletcher_reeves=False)
    return f + df


def _cg(apply_a, b: Tuple[torch.Tensor, ...], iters: int, precond: Optional[Tuple[float, ...]],
        fletcher_reeves: bool) -> Tuple[torch.Tensor, ...]:
    """Conjugate gradient on a tuple of tensors from x0 = 0, as in the original optimiser
    (standard alpha, beta clamped at 0; Polak-Ribiere uses the previous residual).

    The original stops when rho = <r, z> is exactly zero. Here that test stays on the device (no
    host synchronisation per iteration): every iteration runs, and from the first zero rho on the
    iterate is frozen with ``torch.where`` (a selection, so the results are bit for bit those of the
    early stop)."""

    def ip(a, c):
        return sum((u * v).sum() for u, v in zip(a, c))

    r = tuple(t.clone() for t in b)
    x = None
    p = None
    rho = None
    r_prev = None
    stopped = None                      # 0-dim bool on the device: a zero rho was met
    for it in range(iters):
        z = r if precond is None else tuple(t / m for t, m in zip(r, precond))
        rho1 = rho
        rho = ip(r, z)
        stopped = rho == 0 if stopped is None else stopped | (rho == 0)
        if p is None:
            p = tuple(t.clone() for t in z)
        else:
            if fletcher_reeves:
                beta = rho / rho1
            else:
                beta = (rho - ip(r_prev, z)) / rho1
            beta = beta.clamp(min=0)
            p = tuple(zt + pt * beta for zt, pt in zip(z, p))
        q = apply_a(p)
        alpha = rho / ip(p, q)
        if not fletcher_reeves:
            r_prev = tuple(t.clone() for t in r)
        if x is None:
            x = tuple(torch.where(stopped, torch.zeros_like(pt), alpha * pt) for pt in p)
        else:
            x = tuple(torch.where(stopped, xt, xt + alpha * pt) for xt, pt in zip(x, p))
        if it < iters - 1:
            r = tuple(rt - alpha * qt for rt, qt in zip(r, q))
    if x is None:
        x = tuple(torch.zeros_like(t) for t in b)
    return x


# ------------------------------------------------------------------------------------------------
# Sample memory
# ------------------------------------------------------------------------------------------------

class SampleMemory:
    """Fixed-size memory of projected samples, their labels and weights (ATOM weighting).

    The weights live on the host (``weights``, a CPU tensor: the slot choice needs their argmin
    in Python every frame) and are uploaded to the device after each change (``device_weights``,
    without a host synchronisation); on the CPU both are the same tensor."""

    def __init__(self, size: int, channels: int, feat_size: int, dtype: torch.dtype, device: torch.device):
        self.samples = torch.zeros(size, channels, feat_size, feat_size, dtype=dtype, device=device)
        self.labels = torch.zeros(size, 1, feat_size, feat_size, dtype=dtype, device=device)
        with host_side():
            self.weights = torch.zeros(size, dtype=dtype)
        self.device = device
        self.device_weights = upload(self.weights, device)
        self.num_stored = 0
        self.previous_slot: Optional[int] = None

    def init(self, samples: torch.Tensor, labels: torch.Tensor) -> None:
        n = samples.shape[0]
        self.samples[:n] = samples
        self.labels[:n] = labels
        with host_side():
            self.weights[:n] = 1.0 / n
        self.num_stored = n
        self.device_weights = upload(self.weights, self.device)

    def insert(self, sample: torch.Tensor, label: torch.Tensor, learning_rate: float) -> int:
        """Replace the lowest-weight slot; returns the slot index."""
        with host_side():
            slot = self._update_weights(learning_rate)
        self.device_weights = upload(self.weights, self.device)
        self.previous_slot = slot
        self.samples[slot:slot + 1] = sample
        self.labels[slot:slot + 1] = label
        self.num_stored += 1
        return slot

    def _update_weights(self, learning_rate: float) -> int:
        """The host weights after a new sample (in place); returns its slot."""
        w = self.weights
        if self.num_stored == 0 or learning_rate == 1:
            w.zero_()
            w[0] = 1
            slot = 0
        else:
            slot = int(torch.argmin(w).item())
            if self.previous_slot is None:
                w /= 1 - learning_rate
                w[slot] = learning_rate
            else:
                w[slot] = w[self.previous_slot] / (1 - learning_rate)
        w /= w.sum()
        return slot

    @property
    def active(self) -> int:
        """Number of leading slots that can hold a sample (the rest have weight 0)."""
        return min(self.num_stored, self.samples.shape[0])
