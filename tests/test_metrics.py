import math

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.stats import wasserstein_distance

from wgan.metrics import mode_coverage, w1_exact


def test_w1_exact_matches_scipy_in_one_dimension():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=300), rng.normal(1.0, 2.0, size=300)
    assert w1_exact(x[:, None], y[:, None]) == pytest.approx(wasserstein_distance(x, y), rel=1e-9)


def test_w1_exact_translation_and_identity():
    # float64 and a fixed seed: in float32, rounding x + shift moves W1 off 5 by ~1e-9.
    x = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
    assert w1_exact(x, x) == pytest.approx(0.0, abs=1e-6)
    assert w1_exact(x, x + shift) == pytest.approx(5.0, rel=1e-9)


def test_mode_coverage_counts():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    samples = torch.cat([torch.zeros(30, 2) + 0.01, torch.tensor([[10.0, 0.1]] * 5),
                         torch.tensor([[5.0, 5.0]] * 15)])  # 15 far from every mode
    cov = mode_coverage(samples, centres, std=0.1)
    assert cov.modes_captured == 2 and cov.modes_total == 3 and cov.modes_with_20 == 1
    assert cov.high_quality_fraction == pytest.approx(35 / 50)
    # Reverse KL over the modes, from the high-quality samples only (30 and 5 of them, none at
    # the third mode) against the equal weights, computed independently by scipy.
    assert cov.reverse_kl == pytest.approx(scipy.stats.entropy([30, 5, 0], [1, 1, 1]), rel=1e-9)
    weighted = mode_coverage(samples, centres, std=0.1, weights=torch.tensor([6.0, 1.0, 1.0]))
    assert weighted.reverse_kl == pytest.approx(scipy.stats.entropy([30, 5, 0], [6, 1, 1]))
    # Half the modes of an equal mixture, evenly: log 2; no high-quality sample: undefined.
    half = mode_coverage(torch.tensor([[0.0, 0.0], [10.0, 0.0]]).repeat(10, 1),
                         torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]), 0.1)
    assert half.reverse_kl == pytest.approx(math.log(2))
    assert mode_coverage(torch.full((5, 2), 5.0), centres, std=0.1).reverse_kl is None


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_mode_spread_is_one_for_the_mixture_and_zero_at_the_centres(dim):
    # Samples of the mixture itself score 1: this fails if the 3-std truncation is not corrected
    # for (2-D: 0.974; 5-D: 0.916) or the rms is not per coordinate (sqrt(dim)). Samples piled
    # on the centres, all high quality, score 0.
    g = torch.Generator().manual_seed(dim)
    centres = torch.randn(4, dim, generator=g) * 50
    std, n = 0.3, 40000
    which = torch.randint(4, (n,), generator=g)
    real = centres[which] + std * torch.randn(n, dim, generator=g)
    assert mode_coverage(real, centres, std).mode_spread == pytest.approx(1.0, abs=0.015)
    piled = mode_coverage(centres[which], centres, std)
    assert piled.high_quality_fraction == 1.0 and piled.mode_spread == pytest.approx(0.0, abs=1e-4)
    assert mode_coverage(torch.full((5, dim), 1e4), centres, std).mode_spread is None


@pytest.mark.parametrize("options, fragment", [
    ({"classifier": "clf.safetensors"}, "the MNIST classifier metrics need mnist"),
    ({"fid": True}, "Inception FID needs image data"),
])
def test_evaluate_refuses_a_metric_the_data_lacks_before_sampling(options, fragment):
    # A metric the data cannot have is refused before the generator is sampled or W1 solved
    # (on images those take minutes); the sampler here fails the test if it is touched.
    from wgan.config import Config
    from wgan.data import load_dataset
    from wgan.errors import ConfigError
    from wgan.evaluate import EvalOptions, evaluate

    class Untouchable:
        def sample(self, *args, **kwargs):
            raise AssertionError("sampled before the options were checked")

    data = load_dataset(Config(data="ring8"))
    with pytest.raises(ConfigError, match=fragment):
        evaluate(Untouchable(), data, options=EvalOptions(**options))
