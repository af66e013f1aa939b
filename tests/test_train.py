"""The training loop: early stopping, checkpoints, divergence, bad input."""
import numpy as np
import pytest

import nnlib
from nnlib import data
from nnlib.train import DivergenceError, fit

pytestmark = pytest.mark.train


def digits_split():
    X, y = data.load_digits()
    return data.train_val_test_split(X, y, seed=0)


def mlp(seed=0, hidden=32):
    nnlib.manual_seed(seed)
    return nnlib.Sequential(nnlib.Linear(64, hidden), nnlib.ReLU(), nnlib.Linear(hidden, 10))


def test_fit_learns_digits_quickly():
    s = digits_split()
    model = mlp()
    hist = fit(model, nnlib.CrossEntropyLoss(), nnlib.Adam(model.parameters(), 1e-2),
               s.X_train, s.y_train, epochs=5, X_val=s.X_val, y_val=s.y_val, progress=False)
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] > 0.9 and len(hist.val_loss) == 5


def test_early_stopping_restores_the_best_weights(tmp_path):
    s = digits_split()
    small = slice(0, 150)                       # a small training set overfits
    model = mlp(hidden=128)
    ckpt = tmp_path / "best.npz"
    loss = nnlib.CrossEntropyLoss()
    hist = fit(model, loss, nnlib.Adam(model.parameters(), 1e-2), s.X_train[small],
               s.y_train[small], epochs=200, X_val=s.X_val, y_val=s.y_val, patience=5,
               checkpoint=ckpt, progress=False)
    assert hist.stopped_early and hist.epochs < 200
    assert hist.best_epoch == int(np.argmin(hist.val_loss)) + 1
    assert hist.epochs == hist.best_epoch + 5
    # the model holds the best epoch's weights, and so does the checkpoint
    np.testing.assert_allclose(nnlib.train.evaluate_loss(model, loss, s.X_val, s.y_val),
                               min(hist.val_loss), rtol=1e-12)
    other = mlp(seed=1, hidden=128)
    other.load(ckpt)
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_save_load_round_trip(tmp_path, rng):
    a, b = mlp(0), mlp(1)
    a.save(tmp_path / "w")                      # np.savez adds .npz
    b.load(tmp_path / "w.npz")
    x = rng.standard_normal((4, 64))
    np.testing.assert_array_equal(a(x), b(x))
    wrong = nnlib.Sequential(nnlib.Linear(64, 8))
    with pytest.raises(KeyError, match="missing keys"):
        wrong.load(tmp_path / "w.npz")


def test_divergence_stops_with_the_step():
    s = digits_split()
    nnlib.manual_seed(0)
    model = nnlib.Sequential(nnlib.Linear(64, 10))   # least squares: diverges for lr > 2/L
    with pytest.raises(DivergenceError, match=r"diverged at epoch \d+, step \d+"):
        fit(model, nnlib.MSELoss(), nnlib.SGD(model.parameters(), lr=10.0),
            s.X_train, np.eye(10)[s.y_train], epochs=5, classification=False, progress=False)


def test_divergence_inside_a_network_is_reported_as_divergence():
    s = digits_split()
    X = nnlib.data.Standardizer().fit_transform(s.X_train)
    model = mlp(hidden=128)
    with pytest.raises(DivergenceError, match=r"diverged at epoch \d+, step \d+"):
        fit(model, nnlib.CrossEntropyLoss(), nnlib.SGD(model.parameters(), lr=10.0),
            X, s.y_train, epochs=20, rng=np.random.default_rng(0), progress=False)


def test_fit_rejects_nonsense():
    s = digits_split()
    model = mlp()
    loss, opt = nnlib.CrossEntropyLoss(), nnlib.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="at least one example, got an empty X"):
        fit(model, loss, opt, s.X_train[:0], s.y_train[:0], epochs=1)
    with pytest.raises(ValueError, match="1257 rows, got 10 labels"):
        fit(model, loss, opt, s.X_train, s.y_train[:10], epochs=1)
    with pytest.raises(ValueError, match=r"labels in \[0, 10\), got values from 3 to 12"):
        fit(model, loss, opt, s.X_train, s.y_train + 3, epochs=1, progress=False)
    bad = s.X_train.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"finite values in X.*NaN\) at index \(3, 5\)"):
        fit(model, loss, opt, bad, s.y_train, epochs=1)
    with pytest.raises(ValueError, match="epochs to be an integer >= 1, got 0"):
        fit(model, loss, opt, s.X_train, s.y_train, epochs=0)
    with pytest.raises(ValueError, match="needs an integer patience >= 1 and validation data"):
        fit(model, loss, opt, s.X_train, s.y_train, epochs=1, patience=3)
    with pytest.raises(ValueError, match="lr to be a finite number >= 0, got -0.1"):
        nnlib.SGD(model.parameters(), lr=-0.1)


def test_progress_bar_is_quiet_unless_interactive(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert nnlib.train.progress_bar(range(3)).disable
    monkeypatch.setenv("TQDM_DISABLE", "")
    bar = nnlib.train.progress_bar(range(3))     # pytest captures stderr: not a TTY
    assert bar.disable and list(bar) == [0, 1, 2]
    assert nnlib.train.progress_bar(range(3), enabled=False).disable
