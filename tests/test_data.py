import math
import pickle

import numpy as np
import pytest
import torch

from wgan.config import Config
from wgan.data import VectorDataset, load_dataset, read_vectors
from wgan.errors import DataError


def test_toy_geometry():
    ring = load_dataset(Config(data="ring8"))
    norms = ring.modes.centres.norm(dim=1)
    assert torch.allclose(norms, torch.ones(8)) and ring.modes.std == 0.01
    grid = load_dataset(Config(data="grid25"))
    assert sorted(set(grid.modes.centres[:, 0].tolist())) == [-4, -2, 0, 2, 4]
    assert len(grid.modes.centres) == 25 and grid.modes.std == 0.05
    tuning = load_dataset(Config(data="grid16-rotated"))  # the mixture recipes are searched on
    centres = tuning.modes.centres
    nearest = torch.cdist(centres, centres).add(torch.eye(16) * 1e9).min(dim=1).values
    assert len(centres) == 16 and torch.allclose(nearest, torch.full((16,), 2.0))
    angle = math.degrees(math.atan2(*(centres[1] - centres[0]).flip(0).tolist()))
    assert angle % 90 == pytest.approx(60) or angle % 90 == pytest.approx(30)  # not axis-aligned
    for mixture in (grid, tuning):
        x = mixture.to_data_units(mixture.sample(20000, torch.Generator().manual_seed(0)))
        distance = torch.cdist(x, mixture.modes.centres).min(dim=1).values
        # 2-D Gaussian: the radius follows a Rayleigh law, P(r > 3 sigma) = exp(-4.5) = 1.1%
        assert (distance <= 3 * 0.05).float().mean().item() == pytest.approx(
            1 - math.exp(-4.5), abs=0.005)
    roll_data = load_dataset(Config(data="swissroll"))
    roll = roll_data.to_data_units(roll_data.sample(5000, torch.Generator().manual_seed(0)))
    radius = roll.norm(dim=1)
    assert roll.shape == (5000, 2) and 0.4 < radius.median().item() < 1.6


def test_sampling_is_reproducible():
    grid = load_dataset(Config(data="grid25"))
    a = grid.sample(100, torch.Generator().manual_seed(3))
    b = grid.sample(100, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_vector_files_csv_with_header_and_npy(tmp_path):
    rows = np.random.default_rng(0).normal(size=(50, 3)) * [1, 10, 100] + [0, 5, -7]
    csv_path = tmp_path / "v.csv"
    csv_path.write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    npy_path = tmp_path / "v.npy"
    np.save(npy_path, rows)
    held = []
    for path in (csv_path, npy_path):
        data = VectorDataset(path)
        assert data.sample_shape == (3,)
        # standardised on the training rows; 10% of the rows (5) held out for evaluation
        assert len(data) == 45 and len(data.held_out) == 5
        assert torch.allclose(data.data.mean(0), torch.zeros(3), atol=1e-5)
        assert torch.allclose(data.data.std(0), torch.ones(3), atol=1e-5)
        back = data.to_data_units(torch.cat([data.data, data.held_out])).numpy()
        order = np.lexsort(back.T)
        assert np.allclose(back[order], rows[np.lexsort(rows.T)], rtol=1e-4, atol=1e-3)
        held.append(data.to_data_units(data.held_out))
    # the same rows are held out every time the file is read (resume, eval)
    assert torch.allclose(held[0], held[1], rtol=1e-5, atol=1e-4)
    reference, other = VectorDataset(npy_path).reference_samples(100, torch.Generator())
    assert len(reference) == len(other) == 5  # as many as the held-out rows
    assert torch.equal(reference.sort(0).values, VectorDataset(npy_path).held_out.sort(0).values)


@pytest.mark.parametrize("name,content,fragment", [
    ("empty.csv", "", "data file is empty"),
    ("words.csv", "1,2\n3,x\n", "non-numeric value 'x' at data row 2, column 2"),
    ("nan.csv", "1,2\n3,nan\n", "NaN at row 2, column 2"),
    ("inf.csv", "1,2\ninf,1\n", "infinite value at row 2, column 1"),
    ("ragged.csv", "1,2\n3\n", "row 2 of the data has 1 columns, expected 2"),
    ("header_only.csv", "a,b\n", "header but no data rows"),
    ("data.bin", "1,2", "unsupported data file type '.bin'"),
])
def test_bad_vector_files(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_vectors(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_missing_and_pickled_npy(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        read_vectors(tmp_path / "nope.npy")
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a numeric .npy array"):
        read_vectors(path)
    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps(Exploit(str(marker))))
    with pytest.raises(DataError):
        read_vectors(path)
    assert not marker.exists()


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
