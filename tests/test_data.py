import numpy as np
import pytest

import nnlib
from nnlib import data

pytestmark = pytest.mark.data


def test_digits_ship_with_scikit_learn():
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    Xi, _ = data.load_digits(images=True)
    assert Xi.shape == (1797, 1, 8, 8)


def test_split_is_stratified_and_disjoint():
    X, y = data.load_digits()
    s = data.train_val_test_split(np.arange(len(y)), y, val=0.2, test=0.2, seed=3)
    n_train, n_val, n_test = s.sizes()
    assert n_train + n_val + n_test == len(y)
    assert abs(n_test - 0.2 * len(y)) <= 1 and abs(n_val - 0.2 * len(y)) <= 2
    ids = np.concatenate([s.X_train, s.X_val, s.X_test])
    assert len(np.unique(ids)) == len(y)
    full = np.bincount(y) / len(y)
    for part in (s.y_train, s.y_val, s.y_test):
        assert np.abs(np.bincount(part, minlength=10) / len(part) - full).max() < 0.02
    with pytest.raises(ValueError, match="val=0.6, test=0.5"):
        data.train_val_test_split(X, y, val=0.6, test=0.5)


def test_batches_cover_every_row_once(rng):
    X, y = np.arange(23)[:, None].astype(float), np.arange(23)
    seen = [yb for _, yb in data.batches(X, y, 5, rng=rng)]
    assert [len(b) for b in seen] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate(seen)) == list(range(23))
    with pytest.raises(ValueError, match="positive integer batch_size, got 0"):
        next(data.batches(X, y, 0))
    with pytest.raises(ValueError, match="23 rows and 2 labels"):
        next(data.batches(X, y[:2], 4))


def test_toy_sets_are_seeded():
    for make in (data.make_moons, data.make_circles, data.make_spirals):
        a, b = make(seed=5), make(seed=5)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[0].shape[1] == 2
    X, y = data.make_spirals(n=90, classes=3)
    assert np.bincount(y).tolist() == [30, 30, 30]


def test_one_hot():
    np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        data.one_hot(np.array([3]), 3)


def test_fit_learns_digits_quickly():
    nnlib.manual_seed(0)
    X, y = data.load_digits()
    s = data.train_val_test_split(X, y, seed=0)
    model = nnlib.Sequential(nnlib.Linear(64, 32), nnlib.ReLU(), nnlib.Linear(32, 10))
    hist = nnlib.train.fit(model, nnlib.CrossEntropyLoss(), nnlib.Adam(model.parameters(), 1e-2),
                           s.X_train, s.y_train, epochs=5, X_val=s.X_val, y_val=s.y_val,
                           progress=False)
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] > 0.9


def test_progress_bar_obeys_tqdm_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert nnlib.train.progress_bar(range(3)).disable
    monkeypatch.setenv("TQDM_DISABLE", "")
    bar = nnlib.train.progress_bar(range(3))
    assert not bar.disable and list(bar) == [0, 1, 2]
    assert nnlib.train.progress_bar(range(3), enabled=False).disable
