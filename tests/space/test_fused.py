"""The fused cell computes exactly what the straightforward per-edge cell computes."""

import pytest
import torch
import torch.nn.functional as F

from raynas.space.config import PRESETS, SpaceConfig
from raynas.space.fused import reference_to_fused
from raynas.space.supernet import create_supernet

TINY = PRESETS.get("tiny")

CASES = {
    "darts": TINY.space(),
    "four-nodes-rgb": TINY.space(nodes=4, in_channels=3, num_classes=5),
    "pcdarts-k2": TINY.space(channels=8, partial_channels=2, edge_norm=True),
    "pcdarts-k4": TINY.space(channels=8, partial_channels=4, edge_norm=True),
    "drnas": TINY.space(mixing="dirichlet"),
    "few-ops": TINY.space(ops=("none", "skip_connect", "sep_conv_3x3")),
    "convs-only": TINY.space(ops=("sep_conv_5x5", "dil_conv_3x3")),
    "two-nodes-16px": TINY.space(nodes=2, image_size=16),
    "odd-3px-last-cell": TINY.space(image_size=12, cells=4),  # dilated convs of an odd size skip the phase split
}


def _forward_backward(model, x, y):
    model.zero_grad()
    torch.manual_seed(123)  # the same Dirichlet sample for both implementations
    out = model(x)
    F.cross_entropy(out, y).backward()
    return out


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.fixture
def exact_cuda_math():
    """On a GPU, full float32 (no TF32) so both implementations are compared at CPU precision."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
def test_fused_matches_reference_outputs_and_gradients(name, device, exact_cuda_math):
    space: SpaceConfig = CASES[name]
    ref = create_supernet(space, "reference", seed=0)
    fused = create_supernet(space, "fused", seed=1)
    fused.load_state_dict(reference_to_fused(ref.state_dict(), fused.cells))
    ref, fused = ref.to(device), fused.to(device)
    x = torch.randn(6, space.in_channels, space.image_size, space.image_size).to(device)
    y = torch.randint(0, space.num_classes, (6,)).to(device)

    out_ref, out_fused = _forward_backward(ref, x, y), _forward_backward(fused, x, y)
    torch.testing.assert_close(out_fused, out_ref, atol=1e-5, rtol=1e-4)

    ref_grads = reference_to_fused({n: p.grad for n, p in ref.named_parameters()}, fused.cells)
    for n, p in fused.named_parameters():
        assert p.grad is not None, n
        torch.testing.assert_close(p.grad, ref_grads[n], atol=1e-5, rtol=1e-4, msg=n)


def test_fused_parameters_equal_reference_parameters_in_number():
    space = CASES["darts"]
    ref, fused = create_supernet(space, "reference"), create_supernet(space, "fused")
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in fused.parameters())


@pytest.mark.parametrize("name", ["darts", "pcdarts-k2"])
def test_alphas_live_in_state_dict_and_are_split_from_weights(name):
    model = create_supernet(CASES[name])
    state = model.state_dict()
    assert "alphas_normal" in state and "alphas_reduce" in state
    assert ("betas_normal" in state) == CASES[name].edge_norm
    arch = {id(p) for p in model.arch_parameters()}
    weights = {id(p) for p in model.weight_parameters()}
    assert not arch & weights
    assert arch | weights == {id(p) for p in model.parameters()}


def test_same_seed_same_initial_supernet():
    a, b = create_supernet(CASES["darts"], seed=3), create_supernet(CASES["darts"], seed=3)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n


def test_dirichlet_mixing_samples_in_training_and_uses_the_mean_in_eval():
    model = create_supernet(CASES["drnas"], seed=0)
    model.train()
    w1, w2 = model.op_weights("normal"), model.op_weights("normal")
    assert not torch.equal(w1, w2)
    torch.testing.assert_close(w1.sum(-1), torch.ones(w1.shape[0]))
    model.eval()
    torch.testing.assert_close(model.op_weights("normal"), model.op_probabilities("normal"))


def test_pcdarts_backward_survives_one_thread():
    """torch 2.14's CPU backward of a 1x1 stride-2 conv on channels-last input corrupted the heap
    with one thread (as in a one-CPU Tune trial); reductions avoid that kernel. In a subprocess,
    since a heap corruption may kill the process."""
    import os
    import subprocess
    import sys

    code = ("import torch, torch.nn.functional as F\n"
            "from raynas.space.config import PRESETS\n"
            "from raynas.space.supernet import create_supernet\n"
            "space = PRESETS.get('tiny').space(channels=8, partial_channels=4, edge_norm=True)\n"
            "for impl in ('fused', 'reference'):\n"
            "    for seed in range(3):\n"
            "        model = create_supernet(space, impl, seed=seed)\n"
            "        x = torch.randn(6, 1, 8, 8)\n"
            "        F.cross_entropy(model(x), torch.randint(0, 10, (6,))).backward()\n"
            "print('ok')\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
