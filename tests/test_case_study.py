"""Chapter 9's fair study (``nnlib.torch.case_study``, its second half,
``nnlib.torch.lora`` and ``scripts/vgg_fair_study.py``): the source task
shares no class with the target, the head is replaced and only features
transfer, LoRA starts as the network it wraps and trains only its updates,
a conv bias before BatchNorm does nothing (which biases BitFit really
trains), the validation labels come out of the label budget, the grid
search widens until its choice is inside, and the script runs end to end."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nnlib.torch import case_study as cs
from nnlib.torch import finetune, lora

pytestmark = pytest.mark.vgg

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def split():
    return cs.digits_split()


def test_the_source_task_has_no_digit_and_more_classes_than_the_target():
    assert len(set(cs.SYMBOLS)) == len(cs.SYMBOLS) > 10
    assert not any(c.isdigit() for c in cs.SYMBOLS)
    assert not set("OoIlSsZzBbgq") & set(cs.SYMBOLS)      # the digit look-alikes
    X, y = cs.printed_symbols(2, seed=0)
    assert X.shape == (2 * len(cs.SYMBOLS), 1, 32, 32) and X.dtype == np.float32
    assert sorted(np.bincount(y)) == [2] * len(cs.SYMBOLS)
    assert cs.symbols_vgg16().classifier[-1].out_features == len(cs.SYMBOLS)


def test_the_head_is_replaced_and_every_other_layer_transfers():
    source = cs.symbols_vgg16(seed=3).state_dict()
    assert not any(k.startswith("classifier.6.") for k in cs.transfer_state(source))
    model = cs.study_model("full", 0, source)
    assert model.classifier[-1].out_features == 10
    for k, v in model.state_dict().items():
        if not k.startswith("classifier.6."):
            assert torch.equal(v, source[k]), k
    # the head is the seed's fresh one, not the source's (which has 43 rows)
    assert torch.equal(model.classifier[-1].weight, cs.small_vgg16(0).classifier[-1].weight)
    scratch = cs.study_model("scratch", 0, source)
    assert not torch.equal(scratch.features[0].weight, source["features.0.weight"])
    with pytest.raises(ValueError, match="needs source_state"):
        cs.study_model("full", 0, None)


def test_lora_starts_as_the_network_it_wraps_and_trains_only_its_updates(split):
    torch.manual_seed(0)
    base = cs.small_vgg16(0).eval()
    x = torch.as_tensor(split.X_train[:8])
    before = base(x).detach()
    wrapped = lora.add_lora(cs.small_vgg16(0), r=2).eval()
    assert torch.allclose(wrapped(x), before, atol=0, rtol=0)      # B = 0 at the start
    n_lora = sum(isinstance(m, lora.LoRA) for m in wrapped.modules())
    assert n_lora == 13 + 2                                     # every layer but the head
    finetune.set_trainable(wrapped, "lora")
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert names and all(".lora_" in n or n.startswith("classifier.6.") for n in names)
    frozen = {n: p.detach().clone() for n, p in wrapped.named_parameters()
              if not p.requires_grad}
    opt = torch.optim.Adam([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2)
    wrapped.train()
    for _ in range(3):
        loss = nn.functional.cross_entropy(wrapped(x), torch.as_tensor(split.y_train[:8]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in wrapped.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    B = wrapped.features[0].lora_B.weight
    assert B.abs().max() > 0                                    # the update moved
    # the update of a wrapped convolution's kernel has rank r at most
    A = wrapped.features[3].lora_A.weight                       # (r, C_in, k, k)
    Bm = wrapped.features[3].lora_B.weight                      # (C_out, r, 1, 1)
    delta = Bm.detach().double().flatten(1) @ A.detach().double().flatten(1)
    assert torch.linalg.matrix_rank(delta) == 2


def test_lora_rejects_what_it_cannot_wrap():
    with pytest.raises(ValueError, match="rank r >= 1"):
        lora.LoRA(nn.Linear(3, 4), r=0)
    with pytest.raises(ValueError, match="groups=1"):
        lora.LoRA(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(TypeError, match="got ReLU"):
        lora.LoRA(nn.ReLU())


def test_a_conv_bias_before_batchnorm_gets_no_gradient_in_training_mode(split):
    """BatchNorm subtracts each channel's batch mean, so a constant added
    before it (the convolution's bias) cancels: its gradient is zero up to
    rounding, and BitFit's biases that matter are BatchNorm's shifts and
    the dense layers' biases. The control: a dense bias gets a real one."""
    model = cs.small_vgg16(0).double().train()
    x = torch.as_tensor(split.X_train[:16]).double()
    loss = nn.functional.cross_entropy(model(x), torch.as_tensor(split.y_train[:16]))
    loss.backward()
    conv_bias = max(m.bias.grad.abs().max().item() for m in model.features
                    if isinstance(m, nn.Conv2d))
    bn_shift = min(m.bias.grad.abs().max().item() for m in model.features
                   if isinstance(m, nn.BatchNorm2d))
    dense = model.classifier[0].bias.grad.abs().max().item()
    assert conv_bias < 1e-12 < 1e-6 < min(bn_shift, dense), (conv_bias, bn_shift, dense)


def test_the_validation_labels_come_out_of_the_budget(split):
    (Xt, yt), (Xv, yv) = cs.budget_split(split, 10, 0, "inside")
    assert np.bincount(yt).tolist() == [8] * 10 and np.bincount(yv).tolist() == [2] * 10
    rows = {x.tobytes() for x in split.X_train}
    pick = [x.tobytes() for x in np.concatenate([Xt, Xv])]
    assert set(pick) <= rows and len(set(pick)) == 100          # disjoint, from train
    (Xo, yo), (Xv2, yv2) = cs.budget_split(split, 10, 0, "outside")
    assert len(yo) == 100 and len(yv2) == len(split.y_val) == 270
    assert {x.tobytes() for x in Xo} == set(pick)              # the same 100 labels
    with pytest.raises(ValueError, match="val_mode"):
        cs.budget_split(split, 10, 0, "both")
    with pytest.raises(ValueError, match="per_class >= 2"):
        cs.budget_split(split, 1, 0)


def test_every_method_gets_the_same_steps_and_a_patience_inside_them():
    for n in (8, 40, 80, 100, 400, 500):
        s = cs.study_schedule(n)
        per_epoch = n // s["batch_size"]
        assert cs.STEPS <= s["epochs"] * per_epoch < cs.STEPS + per_epoch
        assert s["patience"] * per_epoch >= cs.PATIENCE_STEPS
        assert s["patience"] < s["epochs"]
    configs = [cs.study_config(m, 1e-3, 80, 0) for m in cs.STUDY_METHODS if m != "probe"]
    assert len({(c.epochs, c.batch_size, c.patience) for c in configs}) == 1
    assert cs.study_config("full", 1e-3, 80, 0).head_lr == pytest.approx(1e-2)
    assert cs.study_config("lp-ft", 1e-3, 80, 0).probe_epochs > 0


def test_the_grid_widens_until_the_choice_is_inside():
    score = lambda v: -(math.log(v) - math.log(10)) ** 2     # best at 10
    best, grid, scores = cs._choose((1, 2, 3), score)
    assert best == 9 and grid == (1, 2, 3, 9, 27) and best not in (grid[0], grid[-1])
    best, grid, _ = cs._choose((1, 2, 3), score, max_widen=1)   # ran out: at the edge
    assert best == 9 == grid[-1]
    best, grid, _ = cs._choose((20, 30, 40), score)
    assert grid[0] < best < grid[-1] and best == pytest.approx(20 / 3)
    flat = lambda v: 0.5                                     # every value ties
    best, grid, scores = cs._choose((1, 2, 3), flat, max_widen=1)
    assert best == 2 and grid == (1 / 3, 1, 2, 3, 9) and cs.edge_tied(grid, scores)


def test_an_edge_that_ties_the_best_widens_the_grid():
    score = lambda v: min(v, 3)            # 3 and everything above tie
    best, grid, scores = cs._choose((1, 2, 3), score)
    assert grid == (1, 2, 3, 9, 27, 81) and best == 9   # lower middle of 3, 9, 27, 81
    assert cs.edge_tied(grid, scores)                      # ran out: recorded
    peak = lambda v: {1: 0.5, 2: 0.9, 3: 0.9, 9: 0.6}.get(v, 0.0)
    best, grid, scores = cs._choose((1, 2, 3), peak)
    assert grid == (1, 2, 3, 9) and best == 2 and not cs.edge_tied(grid, scores)


def test_refresh_batchnorm_sets_the_statistics_of_the_images(split):
    model = cs.small_vgg16(0)
    X = split.X_train[:40]
    first = model.features[1]                      # BatchNorm after conv 1
    assert isinstance(first, torch.nn.BatchNorm2d)
    with torch.no_grad():
        z = model.features[0](torch.as_tensor(X))
    cs.refresh_batchnorm(model, X)
    assert not model.training and first.momentum == 0.1     # put back
    np.testing.assert_allclose(first.running_mean, z.mean((0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(first.running_var, z.var((0, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="BatchNorm"):
        cs.refresh_batchnorm(torch.nn.Linear(2, 2), X)


def test_depth_features_shapes(split):
    model = cs.small_vgg16(0)
    X = split.X_train[:3]
    dims = {d: cs.depth_features(model, X, d).shape for d in cs.DEPTHS}
    assert dims == {"block3": (3, 32 * 4 * 4), "block4": (3, 64 * 2 * 2),
                    "block5": (3, 64), "fc1": (3, 512), "fc2": (3, 512)}
    with pytest.raises(ValueError, match="depth in"):
        cs.depth_features(model, X, "block9")


def test_the_study_script_runs_end_to_end(tmp_path):
    spec = importlib.util.spec_from_file_location("vgg_fair_study",
                                                  ROOT / "scripts" / "vgg_fair_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    study.main(["all", "--tiny", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "vgg_study.json").read_text())
    assert (tmp_path / "vgg16_symbols.pth").exists()
    assert saved["source"]["classes"] == len(cs.SYMBOLS)
    methods = {r["method"] for r in saved["runs"]}
    assert methods == set(cs.STUDY_METHODS)
    assert {r["val_mode"] for r in saved["runs"]} == {"inside", "outside"}
    for t in saved["tuning"]:
        assert t["lr"] in t["grid"] and len(t["grid"]) >= 2
    trained = [r for r in saved["runs"] if r["method"] != "probe"]
    assert all(r["lr"] is not None and r["cap"] >= r["best_epoch"] >= 1 for r in trained)
    probes = [r for r in saved["runs"] if r["method"] == "probe"]
    assert all(set(r["by_depth"]) == set(cs.DEPTHS) for r in probes)
    assert {p["start"] for p in saved["layers"]} == {"random", "random+adabn", "symbols",
                                                      "symbols+adabn"}
    long = saved["long_scratch"]
    assert long["steps"] == 3 * saved["steps"] and {r["method"] for r in long["runs"]} == {
        "scratch"}
    (other,) = saved["other_sources"]
    assert other["seed"] == 1 and {r["method"] for r in other["runs"]} == {"probe", "full",
                                                                         "lp-ft"}
    assert {p["depth"] for p in saved["layers"]} == set(cs.DEPTHS)
    own = saved["own_tuning"]["runs"]       # tuned on their own labels
    assert {r["method"] for r in own} == set(cs.STUDY_METHODS) - {"probe"}
    for r in own:
        t = next(t for t in saved["tuning"] if t["method"] == r["method"])
        assert set(r["val_by_lr"]) == {str(v) for v in t["grid"][:2]}   # tiny
        best = max(r["val_by_lr"].values())
        assert r["val"] == best and r["test"] == r["test_by_lr"][str(r["lr"])]
        same = next(x for x in saved["runs"] if x["method"] == r["method"]
                    and x["val_mode"] == "inside" and x["seed"] == r["seed"])
        if str(t["lr"]) in r["test_by_lr"]:                   # the table's row
            assert r["test_by_lr"][str(t["lr"])] == same["test"]
    probes = saved["source_probes"]["rows"]    # on printed symbols
    assert {(p["task"], p["start"], p["depth"]) for p in probes} == {
        (t, s, d) for t in ("symbols", "printed digits")
        for s in ("symbols", "random") for d in cs.DEPTHS}
    assert all(0 <= p["test"] <= 1 and p["n_test"] > 0 for p in probes)
