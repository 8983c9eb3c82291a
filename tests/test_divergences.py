import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, wasserstein_distance

from wgan.divergences import (
    earth_mover_running_cost,
    js_divergence,
    kl_divergence,
    sinkhorn_distance,
    sliced_wasserstein,
    wasserstein_1d,
    wasserstein_discrete,
    wasserstein_empirical,
)


@pytest.mark.parametrize("seed", range(5))
def test_against_scipy_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.random(7), rng.random(7)
    assert kl_divergence(p, q) == pytest.approx(entropy(p, q), rel=1e-10)
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9)
    u, v = rng.normal(size=50), rng.normal(0.5, 2, size=80)
    uw, vw = rng.random(50), rng.random(80)
    assert wasserstein_1d(u, v) == pytest.approx(wasserstein_distance(u, v), rel=1e-10)
    assert wasserstein_1d(u, v, uw, vw) == pytest.approx(wasserstein_distance(u, v, uw, vw),
                                                         rel=1e-10)
    x, y = rng.normal(size=(60, 1)), rng.normal(size=(60, 1))
    assert wasserstein_empirical(x, y) == pytest.approx(wasserstein_distance(x[:, 0], y[:, 0]),
                                                        rel=1e-8)


def test_support_mismatch_and_bounds():
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(math.log(2), abs=1e-12)
    assert js_divergence([3, 1], [6, 2]) == pytest.approx(0.0, abs=1e-15)  # histograms


def test_earth_mover_example_with_unnormalised_mass():
    running, work = earth_mover_running_cost([3, 2, 1, 4], [1, 2, 4, 3])
    assert running.tolist() == [0, 2, 2, -1, 0] and work == 5
    assert wasserstein_discrete([3, 2, 1, 4], [1, 2, 4, 3]) == pytest.approx(5.0)
    cost = np.abs(np.subtract.outer(np.arange(4.0), np.arange(4.0))) * 2
    assert wasserstein_discrete([3, 2, 1, 4], [1, 2, 4, 3], cost=cost) == pytest.approx(10.0)


def test_approximations_bracket_the_exact_value():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(300, 3)) + [2.0, 0, 0]
    exact = wasserstein_empirical(x, y)
    assert sinkhorn_distance(x, y, reg=0.01) >= exact - 1e-9
    assert sinkhorn_distance(x, y, reg=0.01) == pytest.approx(exact, rel=0.05)
    assert sliced_wasserstein(x, y) <= exact + 1e-9


@pytest.mark.parametrize("call,fragment", [
    (lambda: kl_divergence([0.5, -0.5], [0.5, 0.5]), "p has negative mass at index 1"),
    (lambda: js_divergence([0.5, 0.5], [1.0]), "p and q differ in length: 2 vs 1"),
    (lambda: kl_divergence([], []), "p is empty"),
    (lambda: wasserstein_1d([], [1.0]), "u must be a non-empty 1-D array"),
    (lambda: wasserstein_discrete([1, 2], [1, 1]), "equal total mass"),
    (lambda: wasserstein_empirical(np.ones((3, 2)), np.ones((3, 3))), "differ in dimension"),
    (lambda: js_divergence([np.nan, 1], [1, 1]), "NaN or infinite"),
])
def test_invalid_input(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_cli_divergence_and_bad_input():
    from conftest import assert_one_line_error, run_cli

    assert run_cli("divergence", "w1", "3,2,1,4", "1,2,4,3", check=True).stdout.strip() == "5"
    assert float(run_cli("divergence", "js", "1,0", "0,1", check=True).stdout) == pytest.approx(
        math.log(2))
    assert run_cli("divergence", "kl", "1,1", "1,0", check=True).stdout.strip() == "inf"
    assert_one_line_error(run_cli("divergence", "kl", "1,-1", "1,1"), "p has negative mass")
    assert_one_line_error(run_cli("divergence", "js", "1,1", "1"), "differ in length")
    assert_one_line_error(run_cli("divergence", "w1", "1,x", "1,1"), "P: expected comma-separated")
