"""The case study's real path and its data parallelism.

The real path: ``scripts/vgg_finetune.py --imagenet --init FILE`` fine-tunes
torchvision-format ImageNet VGG16 weights. A file with exactly the keys and
shapes of torchvision's ``vgg16-397923af.pth`` (random values, saved in
PyTorch's legacy format as that 2017 file is) is written to a temporary
directory, and the script's own entry point runs a few steps at 32x32 on
CPU: the 1000-way head is replaced by a 10-way one, the pretrained tensors
are the file's before training, each moves at its group's learning rate,
and each freezing schedule (linear probe, LP-FT, full) trains what it says.

Data parallelism: the command chapter 9 prints runs as printed under
``torchrun`` (2 gloo processes, tiny settings appended), and with BatchNorm
2 processes with half the batch each take the same steps as 1 process with
the whole batch, because BatchNorm is synchronised; without the
synchronisation (the control) they do not.
"""
import hashlib
import importlib.util
import json
import math
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlib.torch import finetune, vgg

pytestmark = pytest.mark.vgg

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "vgg_finetune.py"

# torchvision's vgg16(): (index in ``features``, in, out channels) of the 13
# 3x3 convolutions, and (index in ``classifier``, in, out) of the 3 linear layers
TORCHVISION_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128),
                     (10, 128, 256), (12, 256, 256), (14, 256, 256),
                     (17, 256, 512), (19, 512, 512), (21, 512, 512),
                     (24, 512, 512), (26, 512, 512), (28, 512, 512)]
TORCHVISION_LINEAR = [(0, 512 * 7 * 7, 4096), (3, 4096, 4096), (6, 4096, 1000)]
HEAD = ("classifier.6.weight", "classifier.6.bias")
# the network after the head is replaced: 4096 x 1000 + 1000 out, 4096 x 10 + 10 in
FINETUNED_PARAMETERS = 138_357_544 - 4096 * 1000 - 1000 + 4096 * 10 + 10
LR, HEAD_LR = 1e-4, 1e-3


def torchvision_shapes() -> dict:
    """The keys and shapes of ``vgg16-397923af.pth``, in the file's order."""
    shapes = {}
    for i, a, b in TORCHVISION_CONVS:
        shapes[f"features.{i}.weight"], shapes[f"features.{i}.bias"] = (b, a, 3, 3), (b,)
    for i, a, b in TORCHVISION_LINEAR:
        shapes[f"classifier.{i}.weight"], shapes[f"classifier.{i}.bias"] = (b, a), (b,)
    return shapes


def load_script():
    spec = importlib.util.spec_from_file_location("vgg_finetune", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()


def write_stand_in(path):
    """A stand-in for ``vgg16-397923af.pth`` at ``path``: torchvision's keys
    and shapes, random values of a trainable scale (He-normal weights, small
    biases). Returns a digest of every tensor."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in torchvision_shapes().items():
        if key.endswith("weight"):
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(2 / fan_in)
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.01
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return {k: digest(v) for k, v in state.items()}


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """The stand-in file, and a digest of every tensor."""
    path = tmp_path_factory.mktemp("imagenet") / "vgg16-397923af.pth"
    return path, write_stand_in(path)


def args_for(path, *extra):
    """The real path at 32x32 with one step of 8 digits per epoch."""
    return ["--imagenet", "--init", str(path), "--side", "32", "--n-train", "8",
            "--batch-size", "8", "--n-eval", "8", "--epochs", "1", "--patience", "100",
            "--lr", str(LR), "--head-lr", str(HEAD_LR), "--no-progress", *map(str, extra)]


def max_moves(model, path) -> dict:
    """Per tensor, the largest change from the file (the head: from its start)."""
    start = torch.load(path, map_location="cpu", weights_only=True)
    return {k: float((v - start[k]).abs().max()) for k, v in model.state_dict().items()
            if k not in HEAD}


def test_the_stand_in_file_has_torchvisions_keys_and_shapes():
    """The keys and shapes written out above are nnlib's VGG16's, layer by layer
    (``vgg.layer_table``), 138,357,544 parameters in all."""
    shapes = torchvision_shapes()
    assert sum(math.prod(s) for s in shapes.values()) == vgg.IMAGENET_PARAMETERS \
        == 138_357_544
    model = vgg.vgg16()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == list(shapes.items())
    for name, kind, _, n in vgg.layer_table(model, (1, 3, 32, 32)):
        if kind in ("Conv2d", "Linear"):
            assert n == math.prod(shapes[name + ".weight"]) + math.prod(shapes[name + ".bias"])
        else:
            assert n == 0, name


def test_the_real_path_loads_the_file_and_replaces_the_head(imagenet_file):
    path, digests = imagenet_file
    script = load_script()
    model = script.build_model(script.parse(args_for(path)))
    assert isinstance(model, vgg.ImageNetVGG)
    head = model.classifier[-1]
    assert head.out_features == 10 and tuple(head.weight.shape) == (10, 4096)
    state = model.state_dict()
    assert list(state) == list(digests)            # torchvision's keys, in order
    for k, v in state.items():
        if k not in HEAD:
            assert digest(v) == digests[k], k       # the file's values, bit for bit
    assert sum(p.numel() for p in model.parameters()) == FINETUNED_PARAMETERS
    # grey digits in [0, 1] are replicated to RGB and normalised with ImageNet's
    # mean and standard deviation (torchvision's documented values)
    assert vgg.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert vgg.IMAGENET_STD == (0.229, 0.224, 0.225)
    x = torch.rand(2, 1, 32, 32)
    mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        model.eval()
        grey = model(x)
        rgb = vgg.VGG.forward(model, (x.repeat(1, 3, 1, 1) - mean) / std)
    assert grey.shape == (2, 10)
    torch.testing.assert_close(grey, rgb, rtol=1e-5, atol=1e-6)


def _run(script, path, *extra):
    """The script's entry point, and the head it started from."""
    args = script.parse(args_for(path, *extra))
    head0 = {k: v.clone() for k, v in script.build_model(args).state_dict().items()
             if k in HEAD}
    model, summary, result = script.run(args)
    return model, summary, result, head0


def test_full_fine_tuning_moves_each_group_at_its_rate(imagenet_file):
    """One Adam step moves every entry by lr |g| / (|g| + eps), at most lr: the
    pretrained tensors by at most 1e-4, the new head by up to 1e-3."""
    path, _ = imagenet_file
    script = load_script()
    model, summary, result, head0 = _run(script, path, "--trainable", "all")
    (phase,) = result.phases
    assert phase["trainable"] == "all" and phase["first_epoch"] == 1
    pre, head = phase["groups"]
    assert (pre["name"], pre["lr"], head["name"], head["lr"]) == \
        ("pretrained", LR, "head", HEAD_LR)
    assert head["tensors"] == list(HEAD) and head["parameters"] == 4096 * 10 + 10
    assert len(pre["tensors"]) == 30 and pre["parameters"] == FINETUNED_PARAMETERS - 40_970
    assert summary["trainable_parameters"] == FINETUNED_PARAMETERS
    moves = max_moves(model, path)
    assert all(m <= 1.01 * LR for m in moves.values()), moves
    assert moves["features.0.weight"] > 0.5 * LR
    head_move = float((model.classifier[-1].weight.detach() - head0[HEAD[0]]).abs().max())
    assert 0.5 * HEAD_LR < head_move <= 1.01 * HEAD_LR


def test_a_linear_probe_trains_only_the_head(imagenet_file):
    path, digests = imagenet_file
    script = load_script()
    model, summary, result, head0 = _run(script, path, "--trainable", "head")
    (phase,) = result.phases
    assert phase["trainable"] == "head"
    assert [(g["name"], g["lr"], g["tensors"]) for g in phase["groups"]] == \
        [("head", HEAD_LR, list(HEAD))]
    assert summary["trainable_parameters"] == 40_970
    for k, v in model.state_dict().items():
        if k not in HEAD:
            assert digest(v) == digests[k], k       # untouched, bit for bit
    head_move = float((model.classifier[-1].weight.detach() - head0[HEAD[0]]).abs().max())
    assert 0.5 * HEAD_LR < head_move <= 1.01 * HEAD_LR


def test_lp_ft_probes_then_unfreezes_with_a_fresh_optimizer(imagenet_file):
    """Epoch 1 trains the head alone, epoch 2 everything; the pretrained layers
    then take one step (a fresh Adam: at most 1e-4), the head two."""
    path, _ = imagenet_file
    script = load_script()
    model, summary, result, head0 = _run(script, path, "--probe-epochs", "1", "--epochs", "2",
                                         "--keep-last")
    probe, full = result.phases
    assert (probe["first_epoch"], probe["trainable"]) == (1, "head")
    assert [g["name"] for g in probe["groups"]] == ["head"]
    assert (full["first_epoch"], full["trainable"]) == (2, "all")
    assert [(g["name"], g["lr"]) for g in full["groups"]] == [("pretrained", LR),
                                                              ("head", HEAD_LR)]
    assert len(result.history) == 2 and summary["epochs_run"] == 2
    moves = max_moves(model, path)
    assert all(m <= 1.01 * LR for m in moves.values()), moves
    assert moves["features.0.weight"] > 0.5 * LR
    head_move = float((model.classifier[-1].weight.detach() - head0[HEAD[0]]).abs().max())
    assert 0.5 * HEAD_LR < head_move <= 2.02 * HEAD_LR


def test_the_real_path_needs_its_file_and_width_one(tmp_path, capsys):
    script = load_script()
    for argv, message in ((["--imagenet"], "expected --init PATH"),
                          (["--imagenet", "--width", "8", "--init", "x.pth"],
                           "weights have width 1, got --width 8")):
        with pytest.raises(SystemExit):
            script.parse(argv)
        assert message in capsys.readouterr().err
    args = script.parse(["--imagenet", "--init", str(tmp_path / "vgg16-397923af.pth")])
    assert (args.width, args.side, args.head_lr) == (1, 224, 10 * args.lr)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        script.build_model(args)


# --- data parallelism -----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(args, nproc=1, torchrun=None, timeout=300):
    """Run the script (under ``torchrun`` with ``nproc`` > 1) on localhost:
    its JSON summary. One torch thread per process."""
    if nproc > 1:
        launcher = torchrun or [str(Path(sys.executable).with_name("torchrun")),
                                f"--nproc_per_node={nproc}"]
    else:
        launcher = [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(free_port())}
    out = subprocess.run(launcher + args, capture_output=True, text=True, timeout=timeout,
                         env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def chapter_torchrun_command() -> str:
    import nbformat

    nb = nbformat.read(ROOT / "book" / "09-finetuning-vgg16.ipynb", as_version=4)
    for cell in nb.cells:
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", cell.source, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip().startswith("torchrun"):
                    return line.strip()
    raise AssertionError("chapter 9 prints no torchrun command")


def test_chapter_9s_torchrun_command_runs_as_printed():
    """The command exactly as chapter 9 prints it, run from the repository's
    root with the ``torchrun`` of this environment; tiny settings appended
    (argparse keeps the last value of a repeated flag)."""
    words = shlex.split(chapter_torchrun_command())
    assert words[0] == "torchrun" and "--nproc_per_node=2" in words
    script = next(i for i, w in enumerate(words) if w.endswith("vgg_finetune.py"))
    tiny = ["--no-progress", "--threads", "1", "--epochs", "1", "--n-train", "64",
            "--batch-size", "16", "--n-eval", "64"]
    torchrun = [str(Path(sys.executable).with_name("torchrun"))] + words[1:script]
    summary, stderr = run_script(words[script:] + tiny, nproc=2, torchrun=torchrun)
    assert summary["processes"] == 2 and summary["epochs_run"] == 1
    if "--batch-norm" in words:
        assert summary["sync_batchnorm"] is True


DDP = ["--width", "16", "--batch-norm", "--dropout", "0", "--n-train", "64",
       "--batch-size", "32", "--epochs", "3", "--probe-epochs", "1", "--optimizer", "sgd",
       "--lr", "0.05",
       "--keep-last", "--patience", "100", "--n-eval", "32", "--no-progress",
       "--threads", "1"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "one.pth"
    summary, _ = run_script([str(SCRIPT), *DDP, "--save", str(path)])
    return summary, torch.load(path, weights_only=True)


def _largest_difference(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a
               if a[k].is_floating_point())


def test_two_gloo_processes_with_batchnorm_take_one_process_steps(one_process, tmp_path):
    """2 processes with 16 of each global batch of 32, BatchNorm synchronised,
    6 SGD steps (LP-FT: 2 on the head, then 4 on everything): every weight and
    running statistic equals 1 process's with batches of 32 to float32
    rounding (1e-6)."""
    one, a = one_process
    two, _ = run_script([str(SCRIPT), *DDP, "--save", str(tmp_path / "two.pth")], nproc=2)
    assert (one["processes"], two["processes"]) == (1, 2) and two["sync_batchnorm"]
    b = torch.load(tmp_path / "two.pth", weights_only=True)
    assert list(a) == list(b)
    largest = _largest_difference(a, b)
    print(f"\n2 synchronised processes vs 1: largest difference {largest:.1e}")
    assert largest < 1e-6
    assert torch.equal(a["features.1.num_batches_tracked"], b["features.1.num_batches_tracked"])


def test_without_sync_batchnorm_two_processes_differ(one_process, tmp_path):
    """The control: each process normalising its 16 with their own statistics."""
    one, a = one_process
    two, _ = run_script([str(SCRIPT), *DDP, "--save", str(tmp_path / "local.pth"),
                         "--no-sync-batchnorm"], nproc=2)
    assert two["sync_batchnorm"] is False
    b = torch.load(tmp_path / "local.pth", weights_only=True)
    largest = _largest_difference(a, b)
    print(f"\n2 unsynchronised processes vs 1: largest difference {largest:.1e}")
    assert largest > 1e-4


def test_sync_batchnorm_is_batchnorm_on_one_process():
    """Outside a process group (or in eval mode) the CPU SyncBatchNorm is
    BatchNorm: same outputs, same running statistics, same gradients."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), bn)
    twin = finetune.convert_sync_batchnorm(
        torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4)))
    twin.load_state_dict(model.state_dict())
    assert isinstance(twin[1], finetune.SyncBatchNorm)
    x = torch.randn(6, 2, 8, 8)
    for m in (model, twin):
        m(x).square().sum().backward()
    for (k, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=k)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, twin.state_dict()[k], msg=k)
