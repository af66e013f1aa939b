"""The fine-tuning engine and the case study's script: what trains in each
mode, label subsets, checkpoints that survive a kill and resume to the same
weights, clear errors for bad checkpoints, and 2-process data parallelism (gloo
on CPU) that matches one process with the same global batch."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlib.errors import CheckpointError
from nnlib.torch import case_study, finetune, vgg

pytestmark = pytest.mark.vgg

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "vgg_finetune.py"
SMALL = ["--width", "16", "--no-progress", "--threads", "1", "--patience", "100"]


def run_script(*args, nproc=1, timeout=240):
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    out = subprocess.run(cmd + [str(SCRIPT), *SMALL, *map(str, args)], capture_output=True,
                         text=True, timeout=timeout, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_trainable_modes_count_what_they_should():
    model = vgg.vgg16(num_classes=10, width=8, in_channels=1, pool=1)
    total = sum(p.numel() for p in model.parameters())
    assert finetune.count_trainable(finetune.set_trainable(model, "all")) == total
    assert finetune.count_trainable(finetune.set_trainable(model, "head")) == 512 * 10 + 10
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias"))
    assert finetune.count_trainable(finetune.set_trainable(model, "bias")) == biases + 512 * 10
    with pytest.raises(ValueError, match=r"mode in \('all', 'head', 'bias', 'lora'\), "
                                         r"got 'adapters'"):
        finetune.set_trainable(model, "adapters")


def test_per_class_subset_and_upsample():
    y = np.repeat(np.arange(3), 5)
    idx = case_study.per_class_subset(y, 2, seed=0)
    assert np.bincount(y[idx]).tolist() == [2, 2, 2]
    assert (case_study.per_class_subset(y, None) == np.arange(15)).all()
    with pytest.raises(ValueError, match="class 0 has 5 examples, fewer than the 6"):
        case_study.per_class_subset(y, 6)
    X = np.random.default_rng(0).random((4, 64))
    up = case_study.upsample(X, 32)
    assert up.shape == (4, 1, 32, 32) and up.dtype == np.float32
    np.testing.assert_allclose(up.mean(axis=(1, 2, 3)), X.mean(1), atol=0.02)
    with pytest.raises(ValueError, match="square images"):
        case_study.upsample(np.zeros((2, 10)))


def _tiny_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    X = rng.random((n, 1, 32, 32)).astype(np.float32) * 0.2
    X[np.arange(n), 0, 3 * y, 3 * y] = 1.0          # a learnable mark per class
    return X, y


def test_fit_resumes_to_the_same_weights(tmp_path):
    X, y = _tiny_data()
    config = finetune.TrainConfig(epochs=4, lr=1e-3, batch_size=32, patience=None, shift=1)

    def fresh():
        torch.manual_seed(0)
        return vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=1)

    whole = fresh()
    r_whole = finetune.fit(whole, (X, y), (X, y), config, progress=False)
    ck = tmp_path / "run.pt"
    part = fresh()
    finetune.fit(part, (X, y), (X, y), finetune.TrainConfig(**{**config.__dict__, "epochs": 2}),
                 checkpoint=ck, progress=False)
    assert finetune.load_checkpoint(ck)["epoch"] == 2
    resumed = fresh()
    r = finetune.fit(resumed, (X, y), (X, y), config, checkpoint=ck, progress=False)
    assert r.resumed_from == 2 and len(r.history) == 4
    assert [h["loss"] for h in r.history] == [h["loss"] for h in r_whole.history]
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_bad_checkpoints_are_named(tmp_path):
    X, y = _tiny_data()
    model = vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=1)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    config = finetune.TrainConfig(epochs=1, batch_size=32)
    assert finetune.CheckpointError is CheckpointError         # one exception family
    with pytest.raises(finetune.CheckpointError, match=r"bad.pt cannot be read.*delete it"):
        finetune.fit(model, (X, y), (X, y), config, checkpoint=bad, progress=False)
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(finetune.CheckpointError,
                       match="not written by nnlib.torch.finetune.fit"):
        finetune.load_checkpoint(bad)
    good = tmp_path / "good.pt"
    finetune.fit(model, (X, y), (X, y), config, checkpoint=good, progress=False)
    other = finetune.TrainConfig(epochs=2, batch_size=32, lr=0.01)
    with pytest.raises(finetune.CheckpointError,
                       match=r"different run \(lr: 0.001 in the checkpoint, 0.01 now\)"):
        finetune.fit(model, (X, y), (X, y), other, checkpoint=good, progress=False)


def test_fit_rejects_bad_data():
    model = vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=1)
    X, y = _tiny_data()
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\), labels \(N,\)"):
        finetune.fit(model, (X[:, 0], y), (X, y), finetune.TrainConfig(), progress=False)
    with pytest.raises(ValueError, match="at least one batch of 64 training examples, got 10"):
        finetune.fit(model, (X[:10], y[:10]), (X, y), finetune.TrainConfig(), progress=False)


def test_script_survives_a_kill_and_resumes(tmp_path):
    args = ["--n-train", "640", "--epochs", "8", "--batch-size", "64"]
    straight = run_script(*args, "--save", tmp_path / "straight.pth")
    ck = tmp_path / "ck.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *SMALL, *args, "--checkpoint",
                             str(ck)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ck.exists() and finetune.load_checkpoint(ck)["epoch"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = finetune.load_checkpoint(ck)["epoch"]
    assert 2 <= stopped_at < 8, f"the run was not interrupted (epoch {stopped_at})"
    resumed = run_script(*args, "--checkpoint", ck, "--save", tmp_path / "resumed.pth")
    assert resumed["resumed_from"] == stopped_at and resumed["epochs_run"] == 8
    a = torch.load(tmp_path / "straight.pth", weights_only=True)
    b = torch.load(tmp_path / "resumed.pth", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed["test_accuracy"] == straight["test_accuracy"]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    args = ["--n-train", "256", "--epochs", "2", "--batch-size", "64", "--dropout", "0"]
    one = run_script(*args, "--save", tmp_path / "one.pth")
    two = run_script(*args, "--save", tmp_path / "two.pth", nproc=2)
    assert two["processes"] == 2 and one["processes"] == 1
    a = torch.load(tmp_path / "one.pth", weights_only=True)
    b = torch.load(tmp_path / "two.pth", weights_only=True)
    for k in a:       # float32 sums in a different order: equal to rounding
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=k)


def test_script_benchmark_mode_reports_speed_and_memory():
    out = run_script("--benchmark", "2", "--side", "64", "--batch-size", "8")
    assert out["images_per_second"] > 0 and out["peak_memory_mb"] > 0
    assert out["side"] == 64 and out["device"] == "cpu"


def test_script_names_a_missing_weights_file(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--init", str(tmp_path / "none.pth")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and "nothing is downloaded" in out.stderr


def test_a_probe_is_a_logistic_regression_on_standardized_frozen_features():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    X, y = _tiny_data(120)
    model = case_study.small_vgg16(0)
    train, val, test = (X[:80], y[:80]), (X[80:100], y[80:100]), (X[100:], y[100:])
    out = case_study.probe_run(model, train, val, test, "block4")
    F = case_study.depth_features(model, X, "block4")
    scaler = StandardScaler().fit(F[:80])
    clf = LogisticRegression(C=out["C"], max_iter=1000, random_state=0)
    clf.fit(scaler.transform(F[:80]), y[:80])
    assert out["test"] == clf.score(scaler.transform(F[100:]), y[100:])
    assert out["val"] == clf.score(scaler.transform(F[80:100]), y[80:100])
    assert out["depth"] == "block4"


def test_study_run_needs_its_weights_a_rate_and_a_known_method():
    from nnlib import data
    X, y = _tiny_data(200)
    split = data.Split(X[:120], y[:120], X[120:160], y[120:160], X[160:], y[160:])
    with pytest.raises(ValueError, match="needs source_state"):
        case_study.study_run("full", split, 5, 0, lr=1e-3)
    with pytest.raises(ValueError, match="needs ssl_state"):
        case_study.study_run("ssl", split, 5, 0, lr=1e-3)
    with pytest.raises(ValueError, match="needs a learning rate"):
        case_study.study_run("scratch", split, 5, 0)
    with pytest.raises(ValueError, match=r"method in \('scratch'"):
        case_study.study_run("adapters", split, 5, 0, lr=1e-3)


def test_ssl_pretraining_lowers_the_reconstruction_error():
    X, _ = _tiny_data(128)
    model = case_study.small_vgg16(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = case_study.ssl_pretrain(model, X, epochs=4, progress=False)
    assert losses[-1] < losses[0]
    assert torch.equal(before["classifier.6.weight"], model.state_dict()["classifier.6.weight"])
    assert not torch.equal(before["features.0.weight"], model.state_dict()["features.0.weight"])


def printed_commands():
    """Every shell command in a ```bash block of the book's pages, continuation
    lines joined: (page, command)."""
    import re

    import nbformat

    out = []
    for page in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in nbformat.read(page, as_version=4).cells:
            if cell.cell_type == "markdown":
                for block in re.findall(r"```(?:bash|sh)\n(.*?)```", cell.source, re.S):
                    out += [(page.name, c.strip()) for c in
                            block.replace("\\\n", " ").splitlines() if c.strip()]
    return out


# tiny settings appended to each script's printed command (argparse keeps the last)
TINY = {"scripts/vgg_finetune.py": SMALL + ["--epochs", "1", "--n-train", "64",
                                            "--batch-size", "16"]}


@pytest.mark.parametrize("page,command", printed_commands(), ids=lambda v: str(v)[:40])
def test_every_printed_command_runs(page, command, tmp_path):
    """The commands a reader copies from the book run as written (with tiny settings
    appended); GPU commands run under make gpu-check, not here."""
    import shlex

    words = shlex.split(command)
    if "cuda" in words and not torch.cuda.is_available():
        pytest.skip("a GPU command (make gpu-check runs it)")
    script = next(w for w in words if w.startswith("scripts/"))
    assert script in TINY, f"{page} prints a command for {script}, which this test " \
                           "does not know how to shrink; add it to TINY"
    if words[0] == "torchrun":
        nproc = next(w.split("=")[1] for w in words if w.startswith("--nproc_per_node"))
        prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                  f"--nproc_per_node={nproc}"]
        rest = words[words.index(script):]
    else:
        assert words[0] == "python", command
        prefix, rest = [sys.executable], words[1:]
    extra = list(TINY[script])
    if "--init" in rest or "--imagenet" in rest:   # the weights fix the width
        i = extra.index("--width")
        del extra[i:i + 2]
    if "--imagenet" in rest:        # torchvision's file: a stand-in, at 32x32
        from test_real_path import write_stand_in
        stand_in = tmp_path / "vgg16-397923af.pth"
        write_stand_in(stand_in)
        if "--init" in rest:
            rest[rest.index("--init") + 1] = str(stand_in)
        extra += ["--side", "32", "--n-eval", "8"]
    if "--checkpoint" in rest:
        extra += ["--checkpoint", str(tmp_path / "run.pt")]
    if "--benchmark" in rest:
        extra += ["--benchmark", "1", "--warmup", "0", "--side", "32"]
        extra += [] if "--imagenet" in rest else ["--width", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    out = subprocess.run(prefix + rest + extra, capture_output=True, text=True,
                         timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, f"{page}: `{command}` failed:\n{out.stderr[-3000:]}"
    json.loads(out.stdout.strip().splitlines()[-1])        # its summary line
