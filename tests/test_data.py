import numpy as np
import pytest

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


def test_xor_and_make_toy():
    X, y = data.make_xor(n=400, seed=1)
    assert X.shape == (400, 2) and set(np.unique(y)) == {0, 1}
    assert np.mean((np.sign(X[:, 0]) != np.sign(X[:, 1])) == y) > 0.9
    for name in data.TOY_SETS:
        Xn, yn = data.make_toy(name, n=60)
        assert Xn.shape == (60, 2) and len(yn) == 60
    with pytest.raises(ValueError, match="expected one of .*got 'swirl'"):
        data.make_toy("swirl")


def test_standardizer_uses_training_statistics_only(rng):
    X_train = rng.normal(3.0, 2.0, (500, 3))
    X_train[:, 2] = 1.0                                   # a constant feature
    s = data.Standardizer().fit(X_train)
    Z = s.transform(X_train)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1, rtol=1e-12)
    assert np.all(Z[:, 2] == 0)                           # centred, not divided by 0
    X_test = rng.normal(3.0, 2.0, (7, 3))
    np.testing.assert_allclose(s.transform(X_test)[:, 0], (X_test[:, 0] - s.mean[0]) / s.std[0])
    with pytest.raises(RuntimeError, match="fit"):
        data.Standardizer().transform(X_test)
    with pytest.raises(ValueError, match=r"expected \(N, 3\), got \(7, 2\)"):
        s.transform(X_test[:, :2])
    X_bad = X_test.copy()
    X_bad[4, 1] = np.nan                  # StandardScaler alone would skip NaN
    with pytest.raises(ValueError, match=r"finite values in X.*\(4, 1\)"):
        data.Standardizer().fit(X_bad)
    with pytest.raises(ValueError, match="finite values in X"):
        s.transform(X_bad)


def test_shift_images_moves_pixels_without_changing_ink(rng):
    X, _ = data.load_digits()
    shifted = data.shift_images(X[:50], max_shift=1, rng=rng)
    assert shifted.shape == (50, 64)
    moved = np.any(shifted != X[:50], axis=1).mean()
    assert moved > 0.6                                     # most images moved (8/9 expected)
    # a shift only moves pixels: ink can fall off the edge, never appear
    assert np.all(shifted.sum(axis=1) <= X[:50].sum(axis=1) + 1e-12)
    one = np.zeros((1, 3, 3))
    one[0, 1, 1] = 1.0
    out = data.shift_images(one, rng=np.random.default_rng(0))
    assert out.sum() == 1.0 and out.max() == 1.0


def test_load_text_and_char_vocab():
    text = data.load_text()
    assert 100_000 < len(text) < 130_000 and text.isascii()
    assert not text.startswith("#")                       # the licence header is dropped
    vocab = data.CharVocab(text)
    assert len(vocab) == 96 and vocab.chars == sorted(vocab.chars)
    ids = vocab.encode("Return a list.")
    assert ids.dtype == np.int64 and vocab.decode(ids) == "Return a list."
    with pytest.raises(ValueError, match="one of"):
        data.load_text("shakespeare")
    with pytest.raises(ValueError, match="from the vocabulary"):
        vocab.encode("naïve")
    with pytest.raises(ValueError, match=r"ids in \[0, 96\)"):
        vocab.decode([0, 96])
    with pytest.raises(ValueError, match="non-empty string"):
        data.CharVocab("")


def test_load_text_stdlib_code_is_code_in_the_first_texts_characters():
    code, docs = data.load_text("stdlib_code"), data.load_text()
    assert 40_000 < len(code) < 70_000 and not code.startswith("# Source")
    assert set(code) <= set(docs)           # the first vocabulary covers it
    assert "def " in code and '"""' not in code      # docstrings removed
    ids = data.CharVocab(docs).encode(code)
    assert ids.shape == (len(code),)


def test_text_batches_targets_are_the_next_characters(rng):
    ids = np.arange(50)
    x, y = data.text_batches(ids, batch_size=4, seq_len=10, rng=rng)
    assert x.shape == y.shape == (4, 10)
    np.testing.assert_array_equal(y, x + 1)              # consecutive ids: next = +1
    assert x.min() >= 0 and y.max() <= 49
    with pytest.raises(ValueError, match="longer than seq_len"):
        data.text_batches(np.arange(5), 2, 10)


# --- MNIST's IDX format, on tiny files the test writes -------------------------

def _write_idx(path, array, code=0x08):
    import gzip
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels)
    X, y = data.load_mnist(tmp_path, "test")
    assert X.shape == (5, 784) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X.reshape(5, 28, 28) * 255, images)
    np.testing.assert_array_equal(y, labels)
    Xi, _ = data.load_mnist(tmp_path, "test", images=True)
    assert Xi.shape == (5, 1, 28, 28)


def test_read_idx_other_types_and_errors(tmp_path):
    a = np.arange(6, dtype=">i4").reshape(2, 3) - 3
    _write_idx(tmp_path / "ints", a, code=0x0C)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "ints"), a)
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "junk")
    _write_idx(tmp_path / "short", np.zeros((4, 2, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"13 bytes of data, expected 16 .*truncated"):
        data.read_idx(tmp_path / "short")


def test_load_mnist_errors_name_what_is_missing_or_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte or "
                                                 "train-images-idx3-ubyte.gz.*nothing is downloaded"):
        data.load_mnist(tmp_path)
    with pytest.raises(ValueError, match="split 'train' or 'test'"):
        data.load_mnist(tmp_path, "val")
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="holds 3 images but train-labels-idx1-ubyte 2 labels"):
        data.load_mnist(tmp_path)
