"""Generative adversarial networks: one training step, and a training loop.

The discriminator ``D`` outputs one raw score (logit) per example, so that
``sigmoid(D(x))`` is its probability that ``x`` is real, and its losses are
``BCEWithLogitsLoss``. With ``p = sigmoid(D(G(z)))``:

* the discriminator minimises ``-log sigmoid(D(x)) - log(1 - p)``;
* the generator minimises ``log(1 - p)`` (``loss="minimax"``, the game as first
  written) or ``-log p`` (``loss="non-saturating"``, what everyone uses: its
  gradient does not vanish when the discriminator rejects the fakes).

``gan_step`` follows PyTorch's DCGAN example: one discriminator update on a real
batch and a batch ``G(z)``, then one generator update on the same ``z`` scored
by the updated discriminator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_float_array
from .losses import BCEWithLogitsLoss
from .module import Module, no_grad
from .random import get_rng

__all__ = ["GAN_LOSSES", "gan_step", "GANHistory", "train_gan"]

GAN_LOSSES = ("non-saturating", "minimax")


def _check_scores(scores, n, where):
    if scores.shape != (n, 1):
        raise ValueError(f"{where}: expected the discriminator to return scores of shape "
                         f"({n}, 1), got {scores.shape}")


def gan_step(G: Module, D: Module, opt_g, opt_d, real, z, loss: str = "non-saturating"):
    """One discriminator update, then one generator update. Returns
    ``(d_loss, g_loss)`` as floats, each measured before its own update.

    ``real``: ``(N, ...)`` a batch of data; ``z``: ``(N, k)`` latent vectors;
    ``G(z)`` must have the shape of ``real`` and ``D`` must return ``(N, 1)``.
    ``opt_g`` holds only G's parameters and ``opt_d`` only D's.
    """
    if loss not in GAN_LOSSES:
        raise ValueError(f"gan_step: expected loss in {GAN_LOSSES}, got {loss!r}")
    real = as_float_array(real, "gan_step", "real", min_ndim=2)
    z = as_float_array(z, "gan_step", "z", ndim=2)
    n = len(real)
    if len(z) != n:
        raise ValueError(f"gan_step: expected one latent vector per real example "
                         f"({n}), got z of shape {z.shape}")
    bce, bce_fake = BCEWithLogitsLoss(), BCEWithLogitsLoss()
    ones = np.ones((n, 1), dtype=real.dtype)
    zeros = np.zeros((n, 1), dtype=real.dtype)

    # discriminator: real -> 1, fake -> 0; G is not updated here. D scores both
    # batches first; its stack of caches then takes the two backward passes in
    # reverse order, each at its own input.
    with no_grad():                               # G's output is data for this step
        fake = G(z)
    if fake.shape != real.shape:
        raise ValueError(f"gan_step: expected G(z) of the real batch's shape {real.shape}, "
                         f"got {fake.shape}")
    D.zero_grad()
    scores = D(real)
    _check_scores(scores, n, "gan_step")
    scores_fake = D(fake)
    d_loss = bce(scores, ones) + bce_fake(scores_fake, zeros)
    D.backward(bce_fake.backward())
    D.backward(bce.backward())
    opt_d.step()

    # generator: scored by the updated discriminator
    G.zero_grad()
    fake = G(z)
    scores = D(fake)
    if loss == "non-saturating":
        g_loss = bce(scores, ones)                # -log p
        grad_scores = bce.backward()
    else:
        g_loss = -bce(scores, zeros)              # log(1 - p)
        grad_scores = -bce.backward()
    G.backward(D.backward(grad_scores))           # D's gradients here are discarded
    opt_g.step()
    return float(d_loss), float(g_loss)


@dataclass
class GANHistory:
    """What ``train_gan`` returns: per-step losses, and ``(step, G(z_fixed))``
    snapshots of what the generator makes from the same latent vectors."""
    d_loss: list = field(default_factory=list)
    g_loss: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)


def train_gan(G: Module, D: Module, opt_g, opt_d, sample_real, latent_dim: int, steps: int,
              batch_size: int = 64, loss: str = "non-saturating", snapshot_every: int = 0,
              n_snapshot: int = 256, rng=None, progress: str | None = "GAN") -> GANHistory:
    """Run ``steps`` calls of ``gan_step``; ``sample_real(n, rng)`` returns a real
    batch; latent vectors are standard normal. With ``snapshot_every > 0`` the
    history keeps ``G`` applied to ``n_snapshot`` fixed latent vectors at step 0
    and every ``snapshot_every`` steps.
    """
    from .train import progress_bar

    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"train_gan: expected steps >= 1, got {steps!r}")
    rng = get_rng(rng)
    dtype = G.parameters()[0].data.dtype
    fixed = rng.standard_normal((n_snapshot, latent_dim)).astype(dtype)
    history = GANHistory()

    def snapshot(step):
        history.snapshots.append((step, G(fixed).copy()))

    if snapshot_every:
        snapshot(0)
    steps_iter = range(1, steps + 1)
    if progress:
        steps_iter = progress_bar(steps_iter, progress)
    for step in steps_iter:
        real = sample_real(batch_size, rng)
        z = rng.standard_normal((batch_size, latent_dim)).astype(dtype)
        d, g = gan_step(G, D, opt_g, opt_d, real, z, loss)
        history.d_loss.append(d)
        history.g_loss.append(g)
        if snapshot_every and step % snapshot_every == 0:
            snapshot(step)
    return history
