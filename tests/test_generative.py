"""Autoencoder builder, printed-glyph rendering, and the GAN step against PyTorch."""
import numpy as np
import pytest
import torch

import nnlib
from nnlib import data, gan, models
from nnlib.testing import compare_with_torch, torch_twin

pytestmark = pytest.mark.generative


# ---------------------------------------------------------------- autoencoder

def test_autoencoder_shapes_names_and_torch_twin():
    rng = np.random.default_rng(0)
    ae = models.autoencoder(64, 3, hidden=(32, 16), rng=rng)
    x = rng.random((5, 64))
    assert ae[0](x).shape == (5, 3) and ae(x).shape == (5, 64)
    assert 0 < ae(x).min() and ae(x).max() < 1            # sigmoid output
    names = [n for n, _ in ae.named_parameters()]
    assert names[0] == "0.0.weight" and names[-1] == "1.4.bias"
    report = compare_with_torch(ae, x, rng=rng)
    assert report.ok(), str(report)


def test_linear_autoencoder_is_two_affine_maps():
    ae = models.autoencoder(10, 2, hidden=(), out_activation=None,
                            rng=np.random.default_rng(1))
    assert [type(m).__name__ for m in ae[0]] == ["Linear"]
    assert [type(m).__name__ for m in ae[1]] == ["Linear"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(code=0), "positive integer code, got 0"),
    (dict(n_in=2.5), "positive integer n_in"),
    (dict(out_activation="softmax"), "out_activation in"),
    (dict(activation="swish"), "activation in"),
])
def test_autoencoder_rejects_nonsense(kwargs, message):
    args = dict(n_in=8, code=2) | kwargs
    with pytest.raises(ValueError, match=message):
        models.autoencoder(**args)


# ---------------------------------------------------------------- glyphs

def test_render_glyphs_like_the_digits():
    X, y = data.render_glyphs("0123456789", n_per_char=2, rng=np.random.default_rng(0))
    assert X.shape == (20, 64) and X.dtype == np.float64
    assert list(y) == [c for c in range(10) for _ in range(2)]
    assert 0.0 <= X.min() and X.max() <= 1.0
    # ink in multiples of 1/16, as the digits' 4x4 block counts
    np.testing.assert_allclose(X * 16, np.round(X * 16), atol=1e-12)
    digits, _ = data.load_digits()
    assert abs(X.mean() - digits.mean()) < 0.1


def test_render_glyphs_keeps_holes_and_is_seeded():
    X, _ = data.render_glyphs("08", size=32)
    zero = X[0].reshape(32, 32)
    assert zero[16, 16] == 0 and zero[16].max() == 1       # the hole of 0 is empty
    a, _ = data.render_glyphs("AB", 3, jitter=1.0, rng=np.random.default_rng(5))
    b, _ = data.render_glyphs("AB", 3, jitter=1.0, rng=np.random.default_rng(5))
    c, _ = data.render_glyphs("AB", 3, jitter=1.0, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kwargs, message", [
    (dict(chars="ab "), "printable single characters"),
    (dict(chars=["ab"]), "printable single characters"),
    (dict(chars="a", size=2), "size >= 4, got 2"),
    (dict(chars="a", jitter=2.0), r"jitter in \[0, 1\], got 2.0"),
    (dict(chars="a", n_per_char=0), "n_per_char >= 1, got 0"),
])
def test_render_glyphs_rejects_nonsense(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.render_glyphs(**kwargs)


# ---------------------------------------------------------------- GAN

def _nets(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    G = nnlib.Sequential(nnlib.Linear(3, 16, rng=rng, dtype=dtype), nnlib.ReLU(),
                         nnlib.Linear(16, 2, rng=rng, dtype=dtype))
    D = nnlib.Sequential(nnlib.Linear(2, 16, rng=rng, dtype=dtype), nnlib.LeakyReLU(0.2),
                         nnlib.Linear(16, 1, rng=rng, dtype=dtype))
    return G, D


def _torch_step(tg, td, opt_g, opt_d, real, z, loss):
    bce = torch.nn.BCEWithLogitsLoss()
    n = len(real)
    fake = tg(z)
    opt_d.zero_grad()
    d_loss = bce(td(real), torch.ones(n, 1, dtype=real.dtype)) + \
        bce(td(fake.detach()), torch.zeros(n, 1, dtype=real.dtype))
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    p_logit = td(fake)
    if loss == "non-saturating":
        g_loss = bce(p_logit, torch.ones(n, 1, dtype=real.dtype))
    else:
        g_loss = -bce(p_logit, torch.zeros(n, 1, dtype=real.dtype))
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


@pytest.mark.parametrize("loss", gan.GAN_LOSSES)
def test_gan_step_matches_torch(loss):
    G, D = _nets(0)
    tg, td = torch_twin(G), torch_twin(D)
    opt_g, opt_d = nnlib.Adam(G.parameters(), lr=1e-2), nnlib.Adam(D.parameters(), lr=1e-2)
    topt_g = torch.optim.Adam(tg.parameters(), lr=1e-2)
    topt_d = torch.optim.Adam(td.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    for _ in range(3):
        real, z = rng.standard_normal((8, 2)), rng.standard_normal((8, 3))
        ours = gan.gan_step(G, D, opt_g, opt_d, real, z, loss)
        theirs = _torch_step(tg, td, topt_g, topt_d, torch.from_numpy(real),
                             torch.from_numpy(z), loss)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    for net, twin in ((G, tg), (D, td)):
        state = twin.state_dict()
        for name, p in net.named_parameters():
            np.testing.assert_allclose(p.data, state[name].numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=name)


def test_train_gan_keeps_snapshots_and_is_seeded():
    runs = []
    for _ in range(2):
        G, D = _nets(2)
        hist = gan.train_gan(G, D, nnlib.Adam(G.parameters(), lr=1e-3),
                             nnlib.Adam(D.parameters(), lr=1e-3),
                             lambda n, rng: rng.standard_normal((n, 2)) + 3, latent_dim=3,
                             steps=20, batch_size=16, snapshot_every=10, n_snapshot=5,
                             rng=np.random.default_rng(3), progress=None)
        runs.append(hist)
    assert [s for s, _ in runs[0].snapshots] == [0, 10, 20]
    assert runs[0].snapshots[-1][1].shape == (5, 2) and len(runs[0].d_loss) == 20
    np.testing.assert_array_equal(runs[0].g_loss, runs[1].g_loss)


def test_gan_step_rejects_misuse():
    G, D = _nets(0)
    opt_g, opt_d = nnlib.SGD(G.parameters(), lr=0.1), nnlib.SGD(D.parameters(), lr=0.1)
    real, z = np.zeros((4, 2)), np.zeros((4, 3))
    with pytest.raises(ValueError, match="loss in"):
        gan.gan_step(G, D, opt_g, opt_d, real, z, loss="wasserstein")
    with pytest.raises(ValueError, match=r"one latent vector per real example \(4\)"):
        gan.gan_step(G, D, opt_g, opt_d, real, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"G\(z\) of the real batch's shape \(4, 5\)"):
        gan.gan_step(G, D, opt_g, opt_d, np.zeros((4, 5)), z)
    wide_d = nnlib.Sequential(nnlib.Linear(2, 2))
    with pytest.raises(ValueError, match=r"scores of shape \(4, 1\), got \(4, 2\)"):
        gan.gan_step(G, wide_d, opt_g, nnlib.SGD(wide_d.parameters(), lr=0.1), real, z)
