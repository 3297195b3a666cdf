"""Compute floors (d3s_vot.tools.compute_floors): the counted work of the DCF optimisations is exactly the
products the algorithm runs, so floor = work / peak rate is a valid lower bound on their time."""
from __future__ import annotations

import torch

from d3s_vot.tools.compute_floors import counted_flops, dcf_floors, floor_ms, matmul_peak_gflops
from d3s_vot.tracker import dcf


def test_counted_flops_of_a_matrix_product():
    a, b = torch.ones(3, 5), torch.ones(5, 7)
    assert counted_flops(lambda: a @ b) == 2 * 3 * 5 * 7
    assert counted_flops(lambda: a.sum()) == 0          # element-wise work is not counted


def _joint_problem(n, c_in, size, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(n, c_in, size, size, generator=g, dtype=dtype)
    labels = torch.rand(n, 1, size, size, generator=g, dtype=dtype)
    return dcf.JointProblem(feats, labels, 1.0 / n, 0.1, 1e-4, 0.05)


def test_joint_gauss_newton_work():
    """gn projections (1x1 conv), 2 + 2 cg projected correlations per step, and, in the steps after the
    first (where the filter is non-zero), 1 + 2 cg correlations on the unprojected features plus
    as many merged-filter products. The bench's floor divides exactly this by the peak rate."""
    n, c_in, c, k, size, gn, cg = 3, 12, 4, 4, 6, 3, 2
    problem = _joint_problem(n, c_in, size)
    proj = torch.rand(c, c_in, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f = torch.zeros(1, c, k, k, dtype=torch.float64)
    flops = counted_flops(lambda: dcf.joint_gauss_newton(problem, f, proj, gn, cg))
    pixels = n * size * size
    expected = (gn * 2 * c_in * c * pixels
                + gn * (2 + 2 * cg) * 2 * k * k * c * pixels
                + (gn - 1) * (1 + 2 * cg) * (2 * c_in * k * k * pixels + 2 * c * c_in * k * k))
    assert flops == expected


def test_filter_cg_work():
    """A residual correlation, its adjoint, and one correlation + one adjoint per CG iteration over
    the active memory slots only."""
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(10, 8, 6, 6, generator=g, dtype=torch.float64)
    labels = torch.rand(10, 1, 6, 6, generator=g, dtype=torch.float64)
    weights = torch.full((10,), 0.1, dtype=torch.float64)
    f = torch.rand(1, 8, 4, 4, generator=g, dtype=torch.float64)
    flops = counted_flops(lambda: dcf.filter_gauss_newton_step(f, samples, labels, weights, 0.1, 0.05, 5, active=7))
    assert flops == (2 + 2 * 5) * 2 * 16 * 8 * 7 * 6 * 6


def test_matmul_peak_and_floors():
    calls = []

    def measure(fn):
        calls.append(fn().shape)
        return 4.0                                      # ms
    rate = matmul_peak_gflops(torch.float64, torch.device("cpu"), measure, sizes=(10, 20))
    assert calls == [(10, 10), (20, 20)]
    assert rate == 2 * 20 ** 3 / 4e6                    # the best of the sizes, GFLOP/s
    assert floor_ms(3e9, 1.5) == 2000.0
    assert dcf_floors({"pca": 2e9, "joint_gauss_newton": 2e9}, dcf_gflops=1.0, cov_gflops=4.0) == \
        {"pca": 500.0, "joint_gauss_newton": 2000.0}
