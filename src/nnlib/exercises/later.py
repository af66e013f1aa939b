"""The exercises of sections 5d to 5f and chapter 8: a layer norm and a
Vision Transformer's patches put back into images, a language model's loss and one generation
step with a key-value cache, a LoRA layer's output and one SGD step of
it, one Bellman backup and the REINFORCE loss of a batch of episodes,
checked against nnlib's own.

Each function here is the reference of the exercise of the same name; its
docstring is the exercise's contract (arguments, shapes, layouts, what to
return), in nnlib's and PyTorch's conventions: a sequence batch ``(N, T,
E)`` normalised over its last axis, images ``(N, C, H, W)`` cut into
patches numbered row by row and put back, logits ``(N, T, V)`` for windows of
``T + 1`` character ids, one head's cache ``(N, t, d)`` with the newest
position last, ``W: (d_out, d_in)``, ``A: (r, d_in)`` and ``B:
(d_out, r)`` for LoRA (as ``nnlib.LoRALinear`` and peft, the gradients
summed over all the rows of ``x``), a model of an MDP as arrays ``P[s, a,
s']`` and ``R[s, a, s']`` with ``V(s') = 0`` where ``s'`` ends the
episode, and a batch of episodes as one stream of steps cut by ``dones``
(True at each episode's last step), its REINFORCE weights standardised
together as ``nnlib.rl.reinforce_step`` does. Each is registered with random
cases (batch of 1, odd sizes, the edge cases that catch the usual
mistakes) and with the wrong answers the checker recognises.

========================  =====================  ======================
exercise                  chapter                returns
========================  =====================  ======================
``layer_norm_forward``    05d-transformer-block  ``y``
``unpatchify``            05d-transformer-block  ``images``
``causal_lm_loss``        05e-transformer-lm     ``loss``
``kv_cache_step``         05e-transformer-lm     ``(out, K, V)``
``lora_forward``          05f-lora               ``y``
``lora_sgd_step``         05f-lora               ``(A_new, B_new, dW)``
``bellman_backup``        08-rl                  ``(V_new, Q)``
``reinforce_loss_batch``  08-rl                  ``loss``
========================  =====================  ======================
"""
from __future__ import annotations

import numpy as np

from ..functional import attention as Fa
from ..functional import conv as Fc
from ..functional import norm as Fn
from ..functional.basic import log_softmax
from ..layers.linear import Linear
from ..layers.lora import LoRALinear
from ..losses import CrossEntropyLoss
from ..optim import SGD
from ..rl.reinforce import returns_to_go
from ._core import Case, Diagnoser, register

__all__ = ["layer_norm_forward", "unpatchify", "causal_lm_loss", "kv_cache_step",
           "lora_sgd_step", "lora_forward", "bellman_backup", "reinforce_loss_batch"]


def _nonfinite(i):
    """A test: output ``i`` of the learner holds NaN or infinity where the
    expected one is finite."""
    def test(args, got, expected):
        return (got[i] is not None and got[i].shape == expected[i].shape
                and np.all(np.isfinite(expected[i])) and not np.all(np.isfinite(got[i])))
    return test


SIGN = "wrong sign: the output has the right size but the opposite sign"


# --- section 5d: layer norm -------------------------------------------------
def _ln_cases(rng):
    # (shape, eps), note
    settings = [((2, 5, 6), 1e-5, ""),
                ((1, 4, 8), 1e-5, "batch of 1"),
                ((3, 7, 5), 1e-3, "odd sizes"),
                ((4, 6), 1e-5, "x of shape (N, E)"),
                ((2, 3, 4), 0.5, "large eps"),
                ((3, 4, 5), 1e-5, "a constant token"),
                ((2, 3, 1), 1e-5, "one feature (E = 1)"),
                ((2, 4, 6), 1e-5, "large offset")]
    out = []
    for shape, eps, note in settings:
        e = shape[-1]
        x = rng.standard_normal(shape) * 2.0 + rng.standard_normal(shape[:-1] + (1,))
        if note == "a constant token":
            x[1, 2, :] = 3.0
        if note == "large offset":
            x = x + 100.0
        gamma, beta = rng.standard_normal(e) + 1.0, rng.standard_normal(e)
        out.append(Case((x, gamma, beta, eps), note))
    return out


def _ln_variant(axes=(-1,), ddof=0, fn=None, ndim=None):
    """Layer norm with a known mistake: the statistics over ``axes`` (only
    for inputs of ``ndim`` axes when given), the variance with ``ddof``, or
    ``fn(x, mu, var, gamma, beta, eps)`` in place of the formula."""
    def variant(x, gamma, beta, eps):
        if ndim is not None and x.ndim != ndim:
            raise ValueError("this mistake needs another shape")
        mu = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, ddof=ddof, keepdims=True)
        if fn is not None:
            return fn(x, mu, var, gamma, beta, eps)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta
    return variant


@register("layer_norm_forward", chapter="05d-transformer-block",
          args=("x", "gamma", "beta", "eps"), outputs=("y",), cases=_ln_cases,
          diagnosers=[
              Diagnoser("normalised over the batch (axis 0), as batch norm "
                        "does: layer norm standardises each token over its own "
                        "E features, the last axis", variant=_ln_variant(axes=0)),
              Diagnoser("normalised each feature over the batch and the "
                        "positions (axes 0 and 1), as batch norm does: layer "
                        "norm standardises each token over its own E "
                        "features, the last axis",
                        variant=_ln_variant(axes=(0, 1), ndim=3)),
              Diagnoser("normalised each sequence as a whole (axes 1 and 2): "
                        "layer norm standardises each token (each position) "
                        "on its own, over the last axis only",
                        variant=_ln_variant(axes=(1, 2), ndim=3)),
              Diagnoser("used the unbiased variance (divided by E - 1); layer "
                        "norm divides by E, the biased variance, as nnlib and "
                        "PyTorch do", variant=_ln_variant(ddof=1)),
              Diagnoser("eps outside the square root: divide by sqrt(var + eps)",
                        variant=_ln_variant(fn=lambda x, mu, var, g, b, eps: g * (
                            x - mu) / (np.sqrt(var) + eps) + b)),
              Diagnoser("divided by sqrt(var) without eps: a token whose "
                        "features are all equal has variance 0",
                        test=_nonfinite(0)),
              Diagnoser("divided by sqrt(var) without eps: add eps to the "
                        "variance, inside the square root",
                        variant=_ln_variant(fn=lambda x, mu, var, g, b, eps: g * (
                            x - mu) / np.sqrt(var) + b)),
              Diagnoser("forgot the scale gamma and the shift beta",
                        variant=_ln_variant(fn=lambda x, mu, var, g, b, eps: (
                            x - mu) / np.sqrt(var + eps))),
              Diagnoser("forgot the shift beta: y = gamma xhat + beta",
                        variant=_ln_variant(fn=lambda x, mu, var, g, b, eps: g * (
                            x - mu) / np.sqrt(var + eps))),
              Diagnoser("forgot the scale gamma: y = gamma xhat + beta",
                        variant=_ln_variant(fn=lambda x, mu, var, g, b, eps: (
                            x - mu) / np.sqrt(var + eps) + b)),
              Diagnoser("swapped gamma and beta: y = gamma xhat + beta",
                        variant=_ln_variant(fn=lambda x, mu, var, g, b, eps: b * (
                            x - mu) / np.sqrt(var + eps) + g)),
              Diagnoser("divided by the variance, not by the standard deviation",
                        variant=_ln_variant(fn=lambda x, mu, var, g, b, eps: g * (
                            x - mu) / (var + eps) + b)),
          ])
def layer_norm_forward(x, gamma, beta, eps):
    """Exercise ``layer_norm_forward(x, gamma, beta, eps) -> y``: layer
    normalisation over the last axis, as ``nnlib.LayerNorm(E)`` and
    ``torch.nn.functional.layer_norm(x, (E,), gamma, beta, eps)``: ``x:
    (..., E)`` (a batch of sequences ``(N, T, E)``, or ``(N, E)``),
    ``gamma, beta: (E,)`` -> ``y`` of ``x``'s shape, ``y = gamma (x - mean)
    / sqrt(var + eps) + beta`` with each token's own mean and *biased*
    variance over its E features. Reference:
    ``nnlib.functional.layer_norm_forward(x, 1, gamma, beta, eps)``."""
    return Fn.layer_norm_forward(x, 1, gamma, beta, eps)[0]


# --- section 5d: putting an image back together from its patches (ViT) --------
def _unpatch_cases(rng):
    # (N, C, H, W, p), note
    settings = [((2, 3, 8, 8, 4), ""),
                ((1, 1, 6, 6, 2), "batch of 1 and one channel"),
                ((3, 3, 9, 6, 3), "odd sizes, H != W"),
                ((2, 2, 4, 10, 2), "a wide image (2 x 5 patches)"),
                ((2, 3, 4, 4, 1), "p = 1 (every pixel a token)"),
                ((2, 3, 6, 6, 6), "p = H = W (one patch per image)"),
                ((1, 5, 8, 4, 4), "five channels, a tall image")]
    out = []
    for (n, c, h, w, p), note in settings:
        patches = rng.standard_normal((n, (h // p) * (w // p), c * p * p))
        out.append(Case((patches, p, h, w), note))
    return out


def _cut(images, p):
    """The section's cutting, ``(N, C, H, W) -> (N, L, C p^2)``."""
    n, c, h, w = images.shape
    six = images.reshape(n, c, h // p, p, w // p, p)
    return six.transpose(0, 2, 4, 1, 3, 5).reshape(n, -1, c * p * p)


def _wrong_cut(kind):
    """A cutting with a known mistake, ``(N, C, H, W) -> (N, L, C p^2)``."""
    def cut(images, p):
        n, c, h, w = images.shape
        rows, cols = h // p, w // p
        if kind == "reshape":                     # no axes moved at all
            return images.reshape(n, -1, c * p * p)
        if kind == "channels last, reshape":      # NHWC, then no axes moved
            return images.transpose(0, 2, 3, 1).reshape(n, -1, c * p * p)
        if kind == "split wrong":                 # (rows, cols, p, p): not the pixel axes
            six = images.reshape(n, c, rows, cols, p, p)
            return six.transpose(0, 2, 3, 1, 4, 5).reshape(n, -1, c * p * p)
        if kind == "grid swapped":
            six = images.reshape(n, c, cols, p, rows, p)
            return six.transpose(0, 2, 4, 1, 3, 5).reshape(n, -1, c * p * p)
        order = {"channels last": (0, 2, 4, 3, 5, 1), "columns": (0, 4, 2, 1, 3, 5),
                 "patch transposed": (0, 2, 4, 1, 5, 3)}[kind]
        six = images.reshape(n, c, rows, p, cols, p)
        return six.transpose(order).reshape(n, -1, c * p * p)
    return cut


def _unpatch_variant(kind):
    """The inverse of a wrong cutting: where the wrong cutting put a pixel,
    this takes it back from (every wrong cutting is a permutation of the
    pixels, so it has an inverse)."""
    def variant(patches, p, h, w):
        n, length, cpp = patches.shape
        c = cpp // (p * p)
        where = _wrong_cut(kind)(np.arange(n * c * h * w).reshape(n, c, h, w), p)
        images = np.empty(n * c * h * w)
        images[where.ravel()] = patches.ravel()
        return images.reshape(n, c, h, w)
    return variant


@register("unpatchify", chapter="05d-transformer-block", args=("patches", "p", "H", "W"),
          outputs=("images",), cases=_unpatch_cases,
          diagnosers=[
              Diagnoser("put the image back with a plain reshape: that is the "
                        "inverse of cutting it by a plain reshape, whose tokens "
                        "are runs of consecutive numbers in memory (along the "
                        "rows of pixels, and on into the next channel), not p x "
                        "p patches; reshape to (N, H/p, W/p, C, p, p) and move "
                        "the axes back to (N, C, H/p, p, W/p, p)",
                        variant=_unpatch_variant("reshape")),
              Diagnoser("used the cutting's transpose (0, 2, 4, 1, 3, 5) again: "
                        "that permutation is not its own inverse; after "
                        "reshaping to (N, H/p, W/p, C, p, p), the axes go back "
                        "with (0, 3, 1, 4, 2, 5)", variant=lambda patches, p, h, w: (
                            patches.reshape(len(patches), h // p, w // p, -1, p, p)
                            .transpose(0, 2, 4, 1, 3, 5).reshape(len(patches), -1, h, w))),
              Diagnoser("moved the token axis last and reshaped: (N, C p^2, L) "
                        "is unfold's layout, in which a row holds one number of "
                        "every patch, not a row of pixels; split the token axis "
                        "into the patch grid and each token into (C, p, p) first",
                        variant=lambda patches, p, h, w: patches.transpose(0, 2, 1).reshape(
                            len(patches), -1, h, w)),
              Diagnoser("split the patches as (C, H/p, W/p, p, p), the channels "
                        "first: the token axis (the patch's place) comes before "
                        "each token's C p^2 numbers, so reshape to (N, H/p, W/p, "
                        "C, p, p)", variant=lambda patches, p, h, w: patches.reshape(
                            len(patches), -1, h // p, w // p, p, p).transpose(
                            0, 1, 2, 4, 3, 5).reshape(len(patches), -1, h, w)),
              Diagnoser("read each patch as (p, p, C), channels last: the "
                        "section flattens a patch as (C, p, p), the layout of a "
                        "Conv2d's weight (E, C, p, p)",
                        variant=_unpatch_variant("channels last")),
              Diagnoser("reshaped to (N, H, W, C) and moved the channels to the "
                        "front: that inverts cutting a channels-last image by a "
                        "plain reshape, whose tokens are not p x p patches; "
                        "reshape to (N, H/p, W/p, C, p, p) first",
                        variant=_unpatch_variant("channels last, reshape")),
              Diagnoser("split the patch axis as (H/p, W/p, p, p) in the wrong "
                        "places: a pixel's row is (patch row, row in the patch), "
                        "so the image is (N, C, H/p, p, W/p, p) before the last "
                        "reshape", variant=_unpatch_variant("split wrong")),
              Diagnoser("read the patches as numbered down the columns: the "
                        "section numbers them row by row, left to right and "
                        "then top to bottom, as a Conv2d's output (N, E, H/p, "
                        "W/p) flattens", variant=_unpatch_variant("columns")),
              Diagnoser("transposed each patch (its rows and columns swapped): "
                        "inside a patch the pixel rows come first, as in the "
                        "image", variant=_unpatch_variant("patch transposed")),
              Diagnoser("read the grid as W/p rows of H/p patches: an image "
                        "(C, H, W) has H/p rows of W/p patches",
                        variant=_unpatch_variant("grid swapped")),
          ])
def unpatchify(patches, p, H, W):
    """Exercise ``unpatchify(patches, p, H, W) -> images``: the inverse of
    section 5d's cutting of images into patches, as a masked autoencoder
    needs to turn its predicted patches back into pictures. ``patches: (N,
    L, C p^2)``, ``L = (H/p)(W/p)``, the patches of ``(N, C, H, W)`` images
    numbered row by row (left to right, then top to bottom), each flattened
    as ``(C, p, p)``, as ``torch.nn.functional.unfold(images, p,
    stride=p).transpose(1, 2)`` gives them -> ``images: (N, C, H, W)``, with
    ``C = patches.shape[-1] / p^2``. Reference: the gradient with respect
    to its input of ``nnlib.functional.conv2d_forward`` with stride p and
    the identity filters (one per number of a patch): the cutting only
    moves numbers, so its adjoint is its inverse."""
    n, length, cpp = patches.shape
    c = cpp // (p * p)
    eye = np.eye(cpp).reshape(cpp, c, p, p)
    _, cache = Fc.conv2d_forward(np.zeros((n, c, H, W)), eye, stride=p)
    dy = patches.transpose(0, 2, 1).reshape(n, cpp, H // p, W // p)
    return Fc.conv2d_backward(dy, cache)[0]


# --- section 5e: the loss of a language model ---------------------------------
LARGE = 500.0          # logits beyond this overflow exp (e^710 is inf)


def _lm_cases(rng):
    # (N, T, V, scale), note
    settings = [((2, 5, 7, 1.0), ""),
                ((1, 6, 5, 2.0), "batch of 1"),
                ((3, 1, 4, 1.0), "windows of one position (T = 1)"),
                ((4, 7, 3, 3.0), "odd sizes"),
                ((2, 4, 6, 300.0), "large scores"),
                ((3, 3, 96, 1.0), "a vocabulary of 96 (the chapter's)"),
                ((2, 8, 2, 1.0), "two characters")]
    out = []
    for (n, t, v, scale), note in settings:
        logits = rng.standard_normal((n, t, v)) * scale
        ids = rng.integers(0, v, size=(n, t + 1))
        if note == "large scores":
            logits = logits + 700.0
            ids[:, 1:] = logits.argmin(axis=-1)      # softmax underflows to 0
            ids[0, 1] = logits[0, 0].argmax()
        out.append(Case((logits, ids), note))
    return out


def _lm_variant(targets=lambda ids: ids[:, 1:], reduce=np.mean, axis=-1,
                sign=1.0, base=None, crop=False):
    """The loss with a known mistake: the wrong ``targets``, the per-position
    losses reduced by ``reduce``, the softmax over ``axis``, the ``sign``,
    logs to ``base``, or the last position's scores dropped (``crop``)."""
    def variant(logits, ids):
        if crop and logits.shape[1] < 2:
            raise ValueError("nothing left to compare")
        z = logits[:, :-1] if crop else logits
        y = ids[:, 1:-1] if crop else targets(ids)
        logp = log_softmax(z, axis=axis)
        per = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        if base is not None:
            per = per / np.log(base)
        return sign * reduce(per)
    return variant


def _large_lm(args) -> bool:
    return float(np.max(np.abs(args[0]))) > LARGE


def _capped_lm(args, got, expected):
    """The loss is finite but below the expected one on large scores, as
    when log(p + eps) or a clipped p caps -log p."""
    g, e = got[0], expected[0]
    return (_large_lm(args) and g is not None and g.shape == e.shape
            and bool(np.all(np.isfinite(g))) and float(np.sum(g)) < float(np.sum(e)))


@register("causal_lm_loss", chapter="05e-transformer-lm", args=("logits", "ids"),
          outputs=("loss",), scalar_outputs=("loss",), cases=_lm_cases,
          diagnosers=[
              Diagnoser("the targets are not shifted: the scores at position t "
                        "are for the next character, ids[:, t + 1]; ids[:, t] "
                        "is the one the model read there",
                        variant=_lm_variant(targets=lambda ids: ids[:, :-1])),
              Diagnoser("shifted the scores as well as the targets: logits "
                        "already has one row per input position, so the scores "
                        "at every position t, the last one included, are "
                        "compared with ids[:, t + 1]", variant=_lm_variant(crop=True)),
              Diagnoser("summed over all the predictions: the loss is their "
                        "mean over the N T positions (nats per character)",
                        variant=_lm_variant(reduce=np.sum)),
              Diagnoser("summed over the positions and averaged over the "
                        "sequences: the loss is the mean over all N T "
                        "predictions", variant=_lm_variant(
                            reduce=lambda per: per.sum() / len(per))),
              Diagnoser("averaged over the positions and summed over the "
                        "sequences: the loss is the mean over all N T "
                        "predictions", variant=_lm_variant(
                            reduce=lambda per: per.sum() / per.shape[1])),
              Diagnoser("returned one loss per sequence: the loss is one "
                        "number, the mean over all N T predictions",
                        variant=_lm_variant(reduce=lambda per: per.mean(axis=1))),
              Diagnoser("returned one loss per position: the loss is one "
                        "number, the mean over all N T predictions",
                        variant=_lm_variant(reduce=lambda per: per)),
              Diagnoser("the softmax is over the positions (axis 1): each "
                        "position's scores are a distribution over the V "
                        "characters, the last axis", variant=_lm_variant(axis=1)),
              Diagnoser("the cross-entropy is minus the log-probability of "
                        "the next character, so it is never negative: the "
                        "sign is wrong", variant=_lm_variant(sign=-1.0)),
              Diagnoser("used log base 2 (bits per character): the book's "
                        "loss is in nats, the natural log",
                        variant=_lm_variant(base=2.0)),
              Diagnoser("a probability underflowed to 0 (log 0 = -inf) or exp "
                        "overflowed on large scores: compute log p as z - max "
                        "- log(sum(exp(z - max))), not as the log of the "
                        "softmax (chapter 1)",
                        test=lambda a, g, e: _large_lm(a) and _nonfinite(0)(a, g, e)),
              Diagnoser("adding eps to p (log(p + eps)) or clipping p hides "
                        "the underflow: the loss comes out finite but wrong on "
                        "large scores, capped near -log(eps); use log-softmax, "
                        "log p = z - max - log(sum(exp(z - max)))",
                        test=_capped_lm),
          ])
def causal_lm_loss(logits, ids):
    """Exercise ``causal_lm_loss(logits, ids) -> loss``: the loss of a
    language model on windows of characters, as section 5e trains it.
    ``ids: (N, T + 1)`` integers in [0, V), N windows of T + 1 character
    ids; ``logits: (N, T, V)``, the scores the model gave at the first T
    positions, reading ``ids[:, :T]``: ``logits[n, t]`` are the scores for
    the character after position t, ``ids[n, t + 1]``. ``loss``, a number:
    the mean over all N T predictions of -log softmax(logits[n, t])[ids[n,
    t + 1]], in nats, finite for scores in the thousands. Reference:
    ``nnlib.CrossEntropyLoss()`` on ``logits.reshape(-1, V)`` and
    ``ids[:, 1:].reshape(-1)``, as the chapter's ``lm_step``."""
    v = logits.shape[-1]
    return CrossEntropyLoss()(logits.reshape(-1, v), ids[:, 1:].reshape(-1))


# --- section 5e: one generation step with a key-value cache --------------------
def _kv_cases(rng):
    # (N, t - 1 cached, d, d_v, score scale), note
    settings = [((2, 4, 8, 8, 1.0), ""),
                ((1, 3, 4, 4, 1.0), "batch of 1"),
                ((3, 0, 5, 5, 1.0), "the first step: an empty cache"),
                ((2, 1, 7, 3, 1.0), "one cached position, odd d, d_v != d"),
                ((2, 6, 1, 2, 1.0), "d = 1"),
                ((3, 9, 6, 4, 1.0), "a longer cache"),
                ((2, 5, 4, 3, 40.0), "large scores")]
    out = []
    for (n, t, d, dv, scale), note in settings:
        q = rng.standard_normal((n, d)) * scale
        k = rng.standard_normal((n, d)) * scale
        v = rng.standard_normal((n, dv))
        K = rng.standard_normal((n, t, d)) * scale
        V = rng.standard_normal((n, t, dv))
        if note == "large scores":           # each sequence's scores of another size
            q = q * np.array([1.0, 4.0])[:, None]
        out.append(Case((q, k, v, K, V), note))
    return out


def _kv_variant(keys="append", scale=lambda d, d_v, t: 1.0 / np.sqrt(d), axis=-1,
                stable=True, attend_cache_only=False):
    """One cached step with a known mistake: the new key and value put in
    front (``keys="front"``), the query appended in place of the key
    (``"query"``), the cache replaced by the new position (``"replace"``);
    the old cache returned (``"old"``); the scores scaled by ``scale(d,
    d_v, t)`` (of the sizes of a query and of a value and the number of
    positions); the softmax over ``axis``; without the max
    subtracted (``stable``); attending before appending
    (``attend_cache_only``)."""
    def variant(q, k, v, K_cache, V_cache):
        new_k, new_v = k[:, None], v[:, None]
        if keys == "front":
            K, V = np.concatenate([new_k, K_cache], 1), np.concatenate([new_v, V_cache], 1)
        elif keys == "query":
            K, V = np.concatenate([K_cache, q[:, None]], 1), np.concatenate([V_cache, new_v], 1)
        elif keys == "replace":
            K, V = new_k, new_v
        else:
            K, V = np.concatenate([K_cache, new_k], 1), np.concatenate([V_cache, new_v], 1)
        K_att, V_att = (K_cache, V_cache) if attend_cache_only else (K, V)
        if K_att.shape[1] == 0:
            raise ValueError("nothing to attend to")
        c = scale(q.shape[-1], v.shape[-1], K.shape[1])
        s = np.einsum("nd,ntd->nt", q, K_att) * c
        e = np.exp(s - s.max(axis=axis, keepdims=True) if stable else s)
        a = e / e.sum(axis=axis, keepdims=True)
        if keys == "old":
            K, V = K_cache, V_cache
        return np.einsum("nt,ntd->nd", a, V_att), K, V
    return variant


@register("kv_cache_step", chapter="05e-transformer-lm",
          args=("q", "k", "v", "K_cache", "V_cache"), outputs=("out", "K", "V"),
          cases=_kv_cases,
          diagnosers=[
              Diagnoser("attended before appending: the new position attends to "
                        "itself too (the causal mask lets position t see key t), "
                        "so append k and v to the cache first, then attend over "
                        "all t rows", variant=_kv_variant(attend_cache_only=True),
                        outputs=("out",)),
              Diagnoser("put the new key and value in front of the cache: the "
                        "cache keeps the positions in the order of the text, so "
                        "that row j is position j at every later step; append at "
                        "the end (attention itself does not depend on the order "
                        "of its keys)", variant=_kv_variant(keys="front"),
                        outputs=("K", "V")),
              Diagnoser("appended the query to the keys: the cache holds the "
                        "keys k of the positions so far (and their values v)",
                        variant=_kv_variant(keys="query")),
              Diagnoser("replaced the cache by the new position: the query "
                        "attends to every position so far, cached and new",
                        variant=_kv_variant(keys="replace")),
              Diagnoser("the scores are not scaled: divide q . k by sqrt(d), "
                        "d the size of a query and a key",
                        variant=_kv_variant(scale=lambda d, d_v, t: 1.0), outputs=("out",)),
              Diagnoser("the scores are divided by d: the scale is 1 / sqrt(d)",
                        variant=_kv_variant(scale=lambda d, d_v, t: 1.0 / d), outputs=("out",)),
              Diagnoser("the scores are scaled with the size of a value: the "
                        "scale is 1 / sqrt(d), d the size of a query and a key "
                        "(q.shape[-1])", variant=_kv_variant(
                            scale=lambda d, d_v, t: 1.0 / np.sqrt(d_v)),
                        outputs=("out",)),
              Diagnoser("the scores are scaled with the number of positions t: "
                        "the scale is 1 / sqrt(d), d the size of a query and a "
                        "key, the same at every step", variant=_kv_variant(
                            scale=lambda d, d_v, t: 1.0 / np.sqrt(t)),
                        outputs=("out",)),
              Diagnoser("returned the old cache: return K and V with the new "
                        "position appended, for the next step",
                        variant=_kv_variant(keys="old"), outputs=("K", "V")),
              Diagnoser("the softmax is over the batch (axis 0): each query's "
                        "weights are a distribution over its own t keys",
                        variant=_kv_variant(axis=0), outputs=("out",)),
              Diagnoser("exp overflowed, or underflowed to 0 / 0, on large "
                        "scores: subtract each sequence's own largest score "
                        "before exp (section 5c), not the largest of the whole "
                        "batch", test=lambda a, g, e: _nonfinite(0)(a, g, e),
                        outputs=("out",)),
          ])
def kv_cache_step(q, k, v, K_cache, V_cache):
    """Exercise ``kv_cache_step(q, k, v, K_cache, V_cache) -> (out, K, V)``:
    one generation step of one attention head with a key-value cache, as
    section 5e's generation does in every block. ``q, k: (N, d)`` and ``v:
    (N, d_v)``, the query, key and value of the new position t; ``K_cache:
    (N, t - 1, d)`` and ``V_cache: (N, t - 1, d_v)``, the keys and values
    of the t - 1 positions before it (none at the first position).
    Returns ``K: (N, t, d)`` and ``V: (N, t, d_v)``, the cache with the new
    position appended at the end, and ``out: (N, d_v)``, the new position's
    attention output ``softmax(q K^T / sqrt(d)) V`` over all t positions:
    the last row of causal attention over the whole sequence. Reference: the cache appended, then
    ``nnlib.functional.scaled_dot_product_attention_forward`` with one
    query."""
    K = np.concatenate([K_cache, k[:, None]], axis=1)
    V = np.concatenate([V_cache, v[:, None]], axis=1)
    out, _ = Fa.scaled_dot_product_attention_forward(q[:, None], K, V)
    return out[:, 0], K, V


# --- section 5f: one training step of a LoRA layer -----------------------------
def _lora_cases(rng):
    # (x's leading shape, d_in, d_out, r, alpha, lr), note
    settings = [((4,), 6, 6, 2, 5.0, 0.3, ""),   # alpha not in {1, r, d_in, d_out}
                ((1,), 5, 3, 1, 8.0, 0.1, "batch of 1 and r = 1"),
                ((3,), 7, 4, 3, 16.0, 0.05, "odd sizes"),
                ((2, 5), 8, 6, 4, 8.0, 0.2, "x of shape (N, T, d_in)"),
                ((4,), 4, 4, 4, 2.0, 0.5, "full rank (r = d_in = d_out)"),
                ((3,), 6, 5, 2, 4.0, 0.5, "B = 0 (as at the start)"),
                ((5,), 9, 2, 3, 1.0, 0.3, "d_out < r"),
                ((3,), 6, 6, 2, 2.0, 0.4, "alpha = r"),
                ((2, 3), 5, 7, 2, 6.0, 1.0, "a large step (lr = 1)")]
    out = []
    for lead, d_in, d_out, r, alpha, lr, note in settings:
        x = rng.standard_normal(lead + (d_in,))
        dy = rng.standard_normal(lead + (d_out,))
        A = rng.standard_normal((r, d_in)) / np.sqrt(d_in)
        B = rng.standard_normal((d_out, r))
        if note.startswith("B = 0"):
            B = np.zeros((d_out, r))
        out.append(Case((x, dy, A, B, alpha, r, lr), note))
    return out


def _lora_variant(scale=lambda alpha, r: alpha / r, grad_scale=True, merge_scale=True,
                  sequential=False, first_order=False, full=False, rows="sum",
                  ascent=False):
    """One SGD step of LoRA with a known mistake: the update scaled by
    ``scale(alpha, r)``; the scale left out of the gradients
    (``grad_scale``) or of the merged change (``merge_scale``); A's
    gradient from the updated B (``sequential``); the merged change to
    first order in lr; the full fine-tuning step ``-lr dy^T x`` as the
    change (``full``); the gradients averaged over the rows (``rows``);
    a step up the gradient (``ascent``)."""
    def variant(x, dy, A, B, alpha, r, lr):
        s = scale(alpha, r)
        X, G = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        if rows == "mean":
            G = G / len(G)
        g = s if grad_scale else 1.0
        step = -lr if not ascent else lr
        dB = g * G.T @ (X @ A.T)
        B_new = B + step * dB
        dA = g * (B_new if sequential else B).T @ G.T @ X
        A_new = A + step * dA
        m = s if merge_scale else 1.0
        if full:
            dW = step * G.T @ X
        elif first_order:
            dW = m * step * (dB @ A + B @ dA)
        else:
            dW = m * (B_new @ A_new - B @ A)
        return A_new, B_new, dW
    return variant


@register("lora_sgd_step", chapter="05f-lora",
          args=("x", "dy", "A", "B", "alpha", "r", "lr"),
          outputs=("A_new", "B_new", "dW"), cases=_lora_cases, diagnosers=[
              Diagnoser("scaled the update by alpha: the scale is alpha / r",
                        variant=_lora_variant(scale=lambda alpha, r: alpha)),
              Diagnoser("forgot the scale alpha / r in the gradients: y "
                        "depends on A and B through (alpha / r) x A^T B^T, so "
                        "their gradients carry the factor too",
                        variant=_lora_variant(grad_scale=False)),
              Diagnoser("forgot the scale alpha / r in the change of the "
                        "merged weight: the layer computes x (W + (alpha / r) "
                        "B A)^T", outputs=("dW",),
                        variant=_lora_variant(merge_scale=False)),
              Diagnoser("computed A's gradient from the updated B: both "
                        "gradients come from the same backward pass, at the "
                        "old A and B, and the step then moves both at once",
                        variant=_lora_variant(sequential=True)),
              Diagnoser("the change of the merged weight to first order in "
                        "lr only: B_new A_new - B A also holds the term "
                        "lr^2 dB dA", outputs=("dW",),
                        variant=_lora_variant(first_order=True)),
              Diagnoser("returned the step of full fine-tuning, -lr dy^T x "
                        "(the gradient of W): LoRA leaves W frozen, so the "
                        "merged weight W + (alpha / r) B A moves only "
                        "through A and B",
                        outputs=("dW",), variant=_lora_variant(full=True)),
              Diagnoser("averaged the gradients over the rows of x: dy is "
                        "already the gradient of the loss, so the gradients "
                        "of A and B sum over every row (every position of "
                        "every sequence)", variant=_lora_variant(rows="mean")),
              Diagnoser("stepped up the gradient: SGD subtracts lr times the "
                        "gradient", variant=_lora_variant(ascent=True)),
          ])
def lora_sgd_step(x, dy, A, B, alpha, r, lr):
    """Exercise ``lora_sgd_step(x, dy, A, B, alpha, r, lr) -> (A_new,
    B_new, dW)``: one plain SGD step on the two LoRA matrices of a layer
    ``y = x W^T + b + (alpha / r) x A^T B^T`` (``nnlib.LoRALinear``, peft),
    and what it does to the merged weight. ``x: (..., d_in)`` the layer's
    input (a batch, or a batch of sequences), ``dy: (..., d_out)`` the
    gradient of the loss with respect to its output, ``A: (r, d_in)``,
    ``B: (d_out, r)``, ``alpha``, the rank ``r`` (= ``A.shape[0]``) and the
    learning rate ``lr``. The frozen ``W`` and ``b`` are not needed.
    ``A_new = A - lr dL/dA`` and ``B_new = B - lr dL/dB``, both gradients
    at the old A and B, summed over all the rows of x; ``dW: (d_out,
    d_in)``, the change of the merged weight ``W + (alpha / r) B A``.
    Reference: ``nnlib.LoRALinear``'s ``backward`` (around a zero
    ``nnlib.Linear``), ``nnlib.SGD`` and ``merged_weight``."""
    d_out, d_in = B.shape[0], A.shape[1]
    base = Linear(d_in, d_out)
    base.weight.data[...] = 0.0
    base.bias.data[...] = 0.0
    layer = LoRALinear(base, r=int(r), alpha=alpha)
    layer.lora_A.data[...] = A
    layer.lora_B.data[...] = B
    before = layer.merged_weight()
    layer.forward(x)
    for p in (layer.lora_A, layer.lora_B):
        p.grad[...] = 0.0
    layer.backward(dy)
    SGD([layer.lora_A, layer.lora_B], lr=lr).step()
    return (layer.lora_A.data.copy(), layer.lora_B.data.copy(),
            layer.merged_weight() - before)


# --- section 5f: the forward pass of a LoRA layer --------------------------------
def _lora_fw_cases(rng):
    # (x's leading shape, d_in, d_out, r, alpha), note
    settings = [((4,), 6, 6, 2, 5.0, ""),   # square, alpha not in {1, r}
                ((1,), 5, 3, 1, 8.0, "batch of 1 and r = 1"),
                ((3,), 7, 4, 3, 16.0, "odd sizes"),
                ((2, 5), 8, 6, 4, 8.0, "x of shape (N, T, d_in)"),
                ((3,), 4, 4, 4, 2.0, "full rank (r = d_in = d_out)"),
                ((3,), 6, 5, 2, 4.0, "B = 0 (as at the start)"),
                ((5,), 9, 2, 3, 1.0, "d_out < r"),
                ((3,), 6, 7, 2, 2.0, "alpha = r")]
    out = []
    for lead, d_in, d_out, r, alpha, note in settings:
        x = rng.standard_normal(lead + (d_in,))
        W = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
        b = rng.standard_normal(d_out)
        A = rng.standard_normal((r, d_in)) / np.sqrt(d_in)
        B = np.zeros((d_out, r)) if note.startswith("B = 0") else rng.standard_normal((d_out, r))
        out.append(Case((x, W, b, A, B, alpha, r), note))
    return out


def _lora_fw_variant(scale=lambda alpha, r: alpha / r, base=True, bias=True,
                     scale_all=False, w_t=False, ba_t=False):
    """The LoRA output with a known mistake: the update scaled by
    ``scale(alpha, r)``; the frozen path left out (``base``) or its bias
    (``bias``); the whole output scaled (``scale_all``); ``x W`` for ``x
    W^T`` (``w_t``), ``x (B A)`` for ``x (B A)^T`` (``ba_t``)."""
    def variant(x, W, b, A, B, alpha, r):
        s = scale(alpha, r)
        y0 = (x @ W if w_t else x @ W.T) + (b if bias else 0.0)
        upd = x @ (B @ A) if ba_t else (x @ A.T) @ B.T
        if scale_all:
            return s * (y0 + upd)
        return (y0 if base else 0.0) + s * upd
    return variant


@register("lora_forward", chapter="05f-lora", args=("x", "W", "b", "A", "B", "alpha", "r"),
          outputs=("y",), cases=_lora_fw_cases,
          diagnosers=[
              Diagnoser("scaled the update by alpha: the scale is alpha / r",
                        variant=_lora_fw_variant(scale=lambda alpha, r: alpha)),
              Diagnoser("scaled the update by r / alpha: the scale is alpha / r",
                        variant=_lora_fw_variant(scale=lambda alpha, r: r / alpha)),
              Diagnoser("forgot the scale alpha / r of the update",
                        variant=_lora_fw_variant(scale=lambda alpha, r: 1.0)),
              Diagnoser("returned the update alone: LoRA adds it to the frozen "
                        "layer's output x W^T + b", variant=_lora_fw_variant(base=False)),
              Diagnoser("forgot the frozen bias b: y = x W^T + b + (alpha / r) "
                        "x A^T B^T", variant=_lora_fw_variant(bias=False)),
              Diagnoser("scaled the frozen layer's output too: alpha / r "
                        "multiplies the update only",
                        variant=_lora_fw_variant(scale_all=True)),
              Diagnoser("scaled the update by alpha // r, an integer "
                        "division: the scale is alpha / r",
                        variant=_lora_fw_variant(scale=lambda alpha, r: alpha // r)),
              Diagnoser("scaled the update by alpha / sqrt(r), rsLoRA's scale: "
                        "nnlib's LoRALinear, like the LoRA paper and peft's "
                        "default, uses alpha / r",
                        variant=_lora_fw_variant(scale=lambda alpha, r: alpha / np.sqrt(r))),
              Diagnoser("multiplied by W, not by its transpose: W has shape "
                        "(d_out, d_in), so a row x maps to x W^T",
                        variant=_lora_fw_variant(w_t=True)),
              Diagnoser("multiplied by B A, not by its transpose: B A has the "
                        "shape of W, (d_out, d_in), so its update of a row x "
                        "is x (B A)^T = (x A^T) B^T",
                        variant=_lora_fw_variant(ba_t=True)),
              Diagnoser("multiplied by the merged weight W + (alpha / r) B A, not "
                        "by its transpose: it has shape (d_out, d_in), so a row "
                        "x maps to x (W + (alpha / r) B A)^T",
                        variant=_lora_fw_variant(w_t=True, ba_t=True)),
          ])
def lora_forward(x, W, b, A, B, alpha, r):
    """Exercise ``lora_forward(x, W, b, A, B, alpha, r) -> y``: the output of
    a ``LoRALinear`` (section 5f), ``y = x W^T + b + (alpha / r) (x A^T)
    B^T``. ``x: (..., d_in)`` (a batch, or a batch of sequences), the
    frozen ``W: (d_out, d_in)`` and ``b: (d_out,)``, ``A: (r, d_in)``, ``B:
    (d_out, r)``, the scale ``alpha`` and the rank ``r`` -> ``y: (...,
    d_out)``. Reference: ``nnlib.LoRALinear`` around an ``nnlib.Linear``
    holding ``W`` and ``b``, with ``lora_A = A`` and ``lora_B = B``."""
    base = Linear(W.shape[1], W.shape[0])
    base.weight.data[...], base.bias.data[...] = W, b
    layer = LoRALinear(base, r=int(r), alpha=alpha)
    layer.lora_A.data[...], layer.lora_B.data[...] = A, B
    return layer(x)


# --- chapter 8: one Bellman backup ------------------------------------------------
def _gridworld_arrays():
    """The chapter's 4x3 world (slip 0.2) as arrays ``(P, R, terminal)``."""
    from ..rl.envs import GridWorld

    world = GridWorld(["...G", ".#.X", "S..."], step_reward=-0.04, slip=0.2)
    n, k = world.n_states, world.n_actions
    P, R, terminal = np.zeros((n, k, n)), np.zeros((n, k, n)), np.zeros(n, dtype=bool)
    for s in range(n):
        for a in range(k):
            for p, s2, r, done in world.P[s][a]:
                P[s, a, s2] += p
                R[s, a, s2] = r
                terminal[s2] |= done
    return P, R, terminal


def _mdp_cases(rng):
    # (S, A, gamma, kind, terminal states), note
    settings = [((5, 3, 0.9, "dense", 2), ""),
                ((4, 1, 0.9, "dense", 1), "one action (A = 1)"),
                ((6, 2, 0.5, "deterministic", 2), "deterministic moves"),
                ((None, None, 0.99, "gridworld", None), "the chapter's 4x3 world"),
                ((7, 4, 0.8, "sparse", 0), "no terminal state"),
                ((3, 5, 0.9, "dense", 1), "more actions than states"),
                ((5, 2, 0.0, "dense", 1), "gamma = 0"),
                ((4, 3, 1.0, "sparse", 1), "gamma = 1")]
    out = []
    for (n, k, gamma, kind, n_term), note in settings:
        if kind == "gridworld":
            P, R, terminal = _gridworld_arrays()
            V = rng.standard_normal(len(P))
            out.append(Case((V, P, R, terminal, gamma), note))
            continue
        if kind == "dense":
            P = rng.dirichlet(np.ones(n), size=(n, k))
        elif kind == "deterministic":
            P = np.eye(n)[rng.integers(0, n, size=(n, k))]
        else:                                   # two outcomes per pair
            P = np.zeros((n, k, n))
            for s in range(n):
                for a in range(k):
                    s2 = rng.choice(n, size=2, replace=False)
                    P[s, a, s2] = (0.7, 0.3)
        R = rng.standard_normal((n, k, n))
        terminal = np.zeros(n, dtype=bool)
        terminal[n - n_term:] = True
        for s in np.flatnonzero(terminal):      # absorbing, as in GridWorld
            P[s] = 0.0
            P[s, :, s] = 1.0
            R[s] = 0.0
        V = rng.standard_normal(n) * 2.0
        out.append(Case((V, P, R, terminal, gamma), note))
    return out


def _bellman(V, P, R, terminal, gamma, discount=True, mask="next", reward="weighted",
             value="next", best=np.max):
    """One backup with a known mistake: no ``discount``; ``mask``: the
    terminal states' values counted ("none") or the whole target of a step
    into one zeroed ("target"); ``reward`` not weighted by the probabilities
    ("sum"); the current state's ``value`` in place of the next's (the
    masked values broadcast along the wrong axis); the actions reduced by
    ``best``."""
    g = gamma if discount else 1.0
    kept = V * (1.0 if mask in ("none", "current") else ~terminal)
    nxt = np.broadcast_to(kept[None, None, :] if value == "next" else
                          kept[:, None, None], P.shape)
    if mask == "current":                     # V(s') zeroed where s is terminal
        nxt = nxt * ~terminal[:, None, None]
    if mask == "target":
        Q = (P * (R + g * V) * ~terminal).sum(axis=-1)
    elif reward == "sum":
        Q = R.sum(axis=-1) + g * (P * nxt).sum(axis=-1)
    else:
        Q = (P * (R + g * nxt)).sum(axis=-1)
    return best(Q, axis=1), Q


def _bellman_variant(**kw):
    def variant(V, P, R, terminal, gamma):
        return _bellman(V, P, R, terminal, gamma, **kw)
    return variant


@register("bellman_backup", chapter="08-rl",
          args=("V", "P", "R", "terminal", "gamma"), outputs=("V_new", "Q"),
          cases=_mdp_cases, diagnosers=[
              Diagnoser("forgot the discount: the next state's value is "
                        "multiplied by gamma", variant=_bellman_variant(discount=False)),
              Diagnoser("averaged over the actions: that backs up the policy "
                        "that picks its actions at random; value iteration "
                        "takes the best action, V_new(s) = max_a Q(s, a)",
                        outputs=("V_new",),
                        variant=_bellman_variant(best=np.mean)),
              Diagnoser("summed over the actions: value iteration takes the "
                        "best one, V_new(s) = max_a Q(s, a)", outputs=("V_new",),
                        variant=_bellman_variant(best=np.sum)),
              Diagnoser("bootstrapped from terminal states: an episode ends "
                        "when it enters one, so V(s') counts as 0 there (the "
                        "reward of the step into it still counts)",
                        variant=_bellman_variant(mask="none")),
              Diagnoser("applied the terminal mask to the current state s: "
                        "V(s') counts as 0 where the next state s' is "
                        "terminal, (1 - terminal[s'])",
                        variant=_bellman_variant(mask="current")),
              Diagnoser("dropped the reward of the step into a terminal state: "
                        "only V(s') counts as 0 there; the reward r of that "
                        "step is earned", variant=_bellman_variant(mask="target")),
              Diagnoser("the rewards are not weighted by the probabilities: "
                        "Q(s, a) = sum over s' of p(s' | s, a) (r + gamma "
                        "V(s'))", variant=_bellman_variant(reward="sum")),
              Diagnoser("used the value of the current state s where the next "
                        "state's V(s') belongs", variant=_bellman_variant(value="here")),
          ])
def bellman_backup(V, P, R, terminal, gamma):
    """Exercise ``bellman_backup(V, P, R, terminal, gamma) -> (V_new, Q)``:
    one sweep of value iteration, as ``nnlib.rl.value_iteration`` makes
    each of its sweeps, on a model given as arrays: ``V: (S,)`` the current
    values, ``P: (S, A, S)`` with ``P[s, a, s']`` the probability of moving
    from s to s' with action a, ``R: (S, A, S)`` the reward of that step,
    ``terminal: (S,)`` bool, True for the states that end an episode
    (absorbing, with reward 0: entering one ends it, so ``V(s')`` counts as
    0 there), ``gamma`` the discount -> ``Q: (S, A)``, ``Q[s, a] = sum_s'
    P[s, a, s'] (R[s, a, s'] + gamma V[s'] (1 - terminal[s']))``, and
    ``V_new: (S,)``, the best action's ``Q``. ``env.P[s][a]``'s outcomes
    ``(p, s', r, terminated)`` give these arrays. Reference: the formula of
    ``nnlib.rl.value_iteration``, in arrays (tests/test_checker_later.py
    checks it against ``value_iteration``)."""
    Q = (P * (R + gamma * np.where(terminal, 0.0, V))).sum(axis=-1)
    return Q.max(axis=1), Q


# --- chapter 8: the REINFORCE loss of a batch of episodes -------------------------
def _batch_cases(rng):
    # (episode lengths, rewards, gamma), note
    settings = [(((5, 3, 7), "normal", 0.9), ""),
                (((12, 4, 9), "ones", 0.99), "CartPole's reward of 1 per step"),
                (((7,), "normal", 0.8), "one episode"),
                (((4, 6), "normal", 1.0), "gamma = 1"),
                (((3, 5, 2), "normal", 0.0), "gamma = 0"),
                (((6, 1, 5), "normal", 0.5), "an episode of one step"),
                (((5, 8), "last", 0.9), "a reward at the last step only"),
                (((1, 1, 1), "ones", 0.9), "one-step episodes, equal returns"),
                (((30, 11, 23, 9), "ones", 0.99), "four longer episodes")]
    out = []
    for (lengths, kind, gamma), note in settings:
        t = sum(lengths)
        rewards = {"normal": lambda: rng.standard_normal(t),
                   "ones": lambda: np.ones(t),
                   "last": lambda: np.concatenate([np.eye(n)[-1] for n in lengths])}[kind]()
        dones = np.zeros(t, dtype=bool)
        dones[np.cumsum(lengths) - 1] = True
        log_probs = np.log(rng.uniform(0.05, 1.0, size=t))
        out.append(Case((log_probs, rewards, dones, gamma), note))
    return out


def _standardise(w, ddof=0, centre=True, scale=True, eps=1e-8):
    w = w - w.mean() if centre else w
    return w / (w.std(ddof=ddof) + eps) if scale else w


def _episodes(dones):
    """The index arrays of the episodes in a stream that ``dones`` cuts."""
    return np.split(np.arange(len(dones)), np.flatnonzero(dones)[:-1] + 1)


def _stream_returns(rewards, dones, gamma, kind="to go"):
    """Returns-to-go over a stream of episodes with a known mistake
    ``kind``: "across" (the dones ignored: the discounting runs into the
    next episode), "off by one" (the reset after the done step, as if dones
    marked first steps), "undiscounted", "from start" (discounted from each
    episode's first step, gamma^k)."""
    G, g = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        if kind == "off by one":
            g = rewards[t] + gamma * g
            G[t] = g
            g = 0.0 if dones[t] else g
            continue
        if dones[t] and kind != "across":
            g = 0.0
        g = rewards[t] + (1.0 if kind == "undiscounted" else gamma) * g
        G[t] = g
    if kind == "from start":
        for idx in _episodes(dones):
            k = np.arange(len(idx))
            G[idx] = np.cumsum((gamma ** k * rewards[idx])[::-1])[::-1]
    return G


def _batch_variant(kind="to go", sign=1.0, per_episode=False, mean_of_means=False,
                   **standardise):
    def variant(log_probs, rewards, dones, gamma):
        G = _stream_returns(rewards, dones, gamma, kind)
        if standardise.get("ddof") and len(G) < 2:
            raise ValueError("no sample standard deviation of one number")
        if per_episode:
            w = np.zeros_like(G)
            for idx in _episodes(dones):
                w[idx] = _standardise(G[idx], **standardise)
        else:
            w = _standardise(G, **standardise)
        if mean_of_means:
            return -sign * np.mean([np.mean(w[idx] * log_probs[idx])
                                    for idx in _episodes(dones)])
        return -sign * np.mean(w * log_probs)
    return variant


@register("reinforce_loss_batch", chapter="08-rl",
          args=("log_probs", "rewards", "dones", "gamma"),
          outputs=("loss",), scalar_outputs=("loss",), cases=_batch_cases,
          diagnosers=[
              Diagnoser("the return ran on across the end of an episode: "
                        "where dones[t] is True the episode ends, so nothing "
                        "after step t counts in G_t (the next episode's "
                        "rewards do not follow action a_t)",
                        variant=_batch_variant(kind="across")),
              Diagnoser("the reset is one step off: dones[t] is True at the "
                        "last step of an episode, so G_t = r_t there; the "
                        "return is reset before adding r_t, not after",
                        variant=_batch_variant(kind="off by one")),
              Diagnoser("standardised each episode on its own: "
                        "rl.reinforce_step standardises the returns of the "
                        "whole batch together, so an episode that went better "
                        "than the others gets larger weights",
                        variant=_batch_variant(per_episode=True)),
              Diagnoser("averaged each episode's loss, then the episodes: "
                        "the loss is the mean over all the steps of the batch, "
                        "so a long episode counts for more",
                        variant=_batch_variant(mean_of_means=True)),
              Diagnoser("standardised each episode on its own and averaged "
                        "the episodes' losses: the returns of the whole batch "
                        "are standardised together and the loss is the mean "
                        "over all its steps",
                        variant=_batch_variant(per_episode=True, mean_of_means=True)),
              Diagnoser("the returns are not discounted: G_t = r_t + gamma "
                        "r_(t+1) + gamma^2 r_(t+2) + ... up to the end of the "
                        "episode", variant=_batch_variant(kind="undiscounted")),
              Diagnoser("discounted from the start of the episode (gamma^k "
                        "for the reward at its step k): the return-to-go "
                        "discounts from step t, gamma^(k - t)",
                        variant=_batch_variant(kind="from start")),
              Diagnoser("wrong sign: the loss is minus the weighted "
                        "log-probabilities, so that gradient descent makes "
                        "the actions followed by high returns more likely",
                        variant=_batch_variant(sign=-1.0)),
              Diagnoser("the returns are not standardised: rl.reinforce_step "
                        "subtracts their mean and divides by their standard "
                        "deviation plus 1e-8",
                        variant=_batch_variant(centre=False, scale=False)),
              Diagnoser("subtracted the mean of the returns but did not divide "
                        "by their standard deviation (plus 1e-8)",
                        variant=_batch_variant(scale=False)),
              Diagnoser("standardised with the sample standard deviation "
                        "(ddof=1): rl.reinforce_step uses np.std, which "
                        "divides by the number of steps", variant=_batch_variant(ddof=1)),
              Diagnoser("divided by a standard deviation of 0: when every "
                        "return is the same, add 1e-8 to the standard "
                        "deviation, as rl.reinforce_step does",
                        test=_nonfinite(0)),
          ])
def reinforce_loss_batch(log_probs, rewards, dones, gamma):
    """Exercise ``reinforce_loss_batch(log_probs, rewards, dones, gamma) ->
    loss``: the loss ``nnlib.rl.reinforce_step`` computes for a batch of
    episodes, given as one stream of steps, the episodes one after another
    (as a rollout buffer holds them): ``log_probs: (T,)``, log pi(a_t |
    s_t) of the actions taken; ``rewards: (T,)``, the reward after each;
    ``dones: (T,)`` bool, True at the last step of each episode (so
    ``dones[-1]`` is True); ``gamma`` the discount. The weights are the
    discounted returns-to-go within each episode, ``G_t = r_t + gamma
    r_(t+1) + ...`` up to the episode's last step, standardised over the
    whole batch together, ``w = (G - mean(G)) / (std(G) + 1e-8)``
    (``np.std``, ddof 0); ``loss = -mean_t w_t log_probs[t]`` over all T
    steps, a number. Reference: the episodes cut at the dones,
    ``nnlib.rl.returns_to_go`` on each and ``reinforce_step``'s
    standardisation and loss (tests/test_checker_later.py checks it
    against ``reinforce_step``)."""
    G = np.concatenate([returns_to_go(rewards[idx], gamma) for idx in _episodes(dones)])
    w = (G - G.mean()) / (G.std() + 1e-8)
    return -float(np.mean(w * log_probs))
