# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The public loss functions against independent references (eqs. 4-11)."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from modeling_mgcma import distribution_contrastive_loss, gaussian_wasserstein_distance, instance_contrastive_loss


def general_wasserstein(mu1, sigma1, mu2, sigma2):
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) with full matrices and scipy's matrix square root."""
    s1, s2 = np.diag(sigma1**2), np.diag(sigma2**2)
    root1 = scipy.linalg.sqrtm(s1)
    cross = scipy.linalg.sqrtm(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(cross)))


def info_nce_written_out(logits):
    """1/(2N) sum_i [-log softmax_row_i(i) - log softmax_col_i(i)], with explicit sums."""
    n = len(logits)
    total = 0.0
    for i in range(n):
        total += -(logits[i][i] - math.log(sum(math.exp(logits[i][j]) for j in range(n))))
        total += -(logits[i][i] - math.log(sum(math.exp(logits[j][i]) for j in range(n))))
    return total / (2 * n)


def random_gaussians(rng, n, d):
    return rng.standard_normal((n, d)), np.exp(0.5 * rng.standard_normal((n, d)))


def test_wasserstein_matches_general_formula():
    rng = np.random.default_rng(0)
    mu_a, sigma_a = random_gaussians(rng, 3, 5)
    mu_b, sigma_b = random_gaussians(rng, 4, 5)
    got = gaussian_wasserstein_distance(*(torch.tensor(x) for x in (mu_a, sigma_a, mu_b, sigma_b)))
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            expected = general_wasserstein(mu_a[i], sigma_a[i], mu_b[j], sigma_b[j])
            assert got[i, j].item() == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_wasserstein_is_zero_on_identical_and_symmetric():
    rng = np.random.default_rng(1)
    mu, sigma = (torch.tensor(x, dtype=torch.float32) for x in random_gaussians(rng, 4, 8))
    distance = gaussian_wasserstein_distance(mu, sigma, mu, sigma)
    assert torch.allclose(distance.diagonal(), torch.zeros(4), atol=1e-4)
    assert torch.allclose(distance, distance.T, atol=1e-4)
    assert (distance >= 0).all()


def test_distribution_contrastive_loss_matches_written_out_infonce():
    rng = np.random.default_rng(2)
    mu_s, sigma_s = random_gaussians(rng, 4, 6)
    mu_t, sigma_t = random_gaussians(rng, 4, 6)
    scale, shift, tau = 0.3, 4.0, 0.07
    logits = [
        [(-scale * general_wasserstein(mu_s[i], sigma_s[i], mu_t[j], sigma_t[j]) + shift) / tau for j in range(4)]
        for i in range(4)
    ]
    expected = info_nce_written_out(logits)
    got = distribution_contrastive_loss(
        *(torch.tensor(x) for x in (mu_s, sigma_s, mu_t, sigma_t)), scale=scale, shift=shift, temperature=tau
    )
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_shift_cancels_in_the_softmax():
    rng = np.random.default_rng(3)
    tensors = [torch.tensor(x) for x in (*random_gaussians(rng, 5, 4), *random_gaussians(rng, 5, 4))]
    a = distribution_contrastive_loss(*tensors, scale=0.1, shift=0.0, temperature=0.5)
    b = distribution_contrastive_loss(*tensors, scale=0.1, shift=7.0, temperature=0.5)
    assert a.item() == pytest.approx(b.item(), rel=1e-9)


def test_instance_contrastive_loss_matches_written_out_infonce():
    rng = np.random.default_rng(4)
    x_s, x_t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    tau = 0.5
    logits = [[float(x_s[i] @ x_t[j]) / tau for j in range(5)] for i in range(5)]
    got = instance_contrastive_loss(torch.tensor(x_s), torch.tensor(x_t), temperature=tau)
    assert got.item() == pytest.approx(info_nce_written_out(logits), rel=1e-6)


def test_losses_are_fp32_under_bf16_autocast():
    rng = np.random.default_rng(5)
    mu_s, sigma_s, mu_t, sigma_t = (
        torch.tensor(x, dtype=torch.bfloat16) for x in (*random_gaussians(rng, 4, 768), *random_gaussians(rng, 4, 768))
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        da = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, scale=1 / 200, shift=4.0, temperature=0.07)
        ia = instance_contrastive_loss(mu_s, mu_t, temperature=0.07)
    assert da.dtype == torch.float32 and ia.dtype == torch.float32
    assert torch.isfinite(da) and torch.isfinite(ia)


def test_loss_functions_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        gaussian_wasserstein_distance(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same D"):
        gaussian_wasserstein_distance(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="as many speech as text"):
        distribution_contrastive_loss(
            torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(3, 3), torch.ones(3, 3), scale=1, shift=0, temperature=1
        )
    with pytest.raises(ValueError, match="same shape"):
        instance_contrastive_loss(torch.zeros(2, 3), torch.zeros(3, 3), temperature=1)


def test_contrastive_logits_are_computed_in_fp32_under_autocast():
    """Under bf16 autocast the losses equal their fp32 values: the distance/logit matmuls must not run in bf16."""
    rng = np.random.default_rng(6)
    mu_s, sigma_s, mu_t, sigma_t = (
        torch.tensor(x, dtype=torch.float32) for x in (*random_gaussians(rng, 8, 768), *random_gaussians(rng, 8, 768))
    )
    reference_da = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, scale=1 / 200, shift=4.0, temperature=0.07)
    reference_ia = instance_contrastive_loss(mu_s, mu_t, temperature=0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        da = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, scale=1 / 200, shift=4.0, temperature=0.07)
        ia = instance_contrastive_loss(mu_s, mu_t, temperature=0.07)
    assert torch.allclose(da, reference_da, rtol=1e-6) and torch.allclose(ia, reference_ia, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# The per-dimension distance of L_DA (`distribution_distance="mean"`)
# ---------------------------------------------------------------------------------------------------------------------


def layer_normed_gaussians(n, d, seed):
    generator = torch.Generator().manual_seed(seed)
    mu = F.layer_norm(torch.randn(n, d, generator=generator), (d,))
    sigma = torch.exp(0.3 * torch.randn(n, d, generator=generator))
    return mu, sigma


def logit_span(d, distance, scale):
    """Mean over rows of max - min logit, for pairs that are nearly aligned (as after some training)."""
    mu_s, sigma_s = layer_normed_gaussians(8, d, 0)
    noise_mu, noise_sigma = layer_normed_gaussians(8, d, 1)
    mu_t, sigma_t = F.layer_norm(mu_s + 0.3 * noise_mu, (d,)), sigma_s * noise_sigma**0.1
    w = torch.cdist(torch.cat([mu_s, sigma_s], -1), torch.cat([mu_t, sigma_t], -1)).pow(2)
    w = w / d if distance == "mean" else w
    logits = -scale * w / 0.07
    return float((logits.amax(1) - logits.amin(1)).mean())


def test_mean_distance_makes_the_logit_span_independent_of_the_width():
    # the sum over dimensions grows ~linearly with D: 12x wider, ~12x larger logits (and gradients)
    assert logit_span(768, "sum", 1 / 200) / logit_span(64, "sum", 1 / 200) > 8
    ratio = logit_span(768, "mean", 0.32) / logit_span(64, "mean", 0.32)
    assert 0.5 < ratio < 2  # the per-dimension distance keeps the same scale at any width


def test_mean_distance_with_rescaled_p_reproduces_the_sum_at_768():
    mu_s, sigma_s = layer_normed_gaussians(6, 768, 2)
    mu_t, sigma_t = layer_normed_gaussians(6, 768, 3)
    literal = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 1 / 200, 4.0, 0.07, distance="sum")
    per_dim = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 768 / 200, 4.0, 0.07, distance="mean")
    assert torch.allclose(literal, per_dim, rtol=1e-5)
    other = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 1 / 200, 4.0, 0.07, distance="mean")
    assert not torch.allclose(literal, other, rtol=1e-2)
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 1.0, 0.0, 0.07, distance="max")
