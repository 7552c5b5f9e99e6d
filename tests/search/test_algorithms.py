import pytest
import torch
import torch.nn.functional as F

from raynas.search.algorithms import ALGORITHMS, StepContext, create_algorithm
from raynas.search.config import SearchConfig
from raynas.space.config import PRESETS
from raynas.space.supernet import create_supernet


def _setup(algo, **kw):
    cfg = SearchConfig(dataset="digits", algo=algo, preset="tiny", **kw)
    alg = create_algorithm(cfg)
    space = alg.configure_space(PRESETS.get("tiny").space(channels=8))
    model = create_supernet(space, seed=0)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=alg.a_lr(), betas=(0.5, 0.999), weight_decay=1e-3)
    torch.manual_seed(0)
    x = torch.randn(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    return alg, model, StepContext(model, w_opt, a_opt, cfg, 0.025), (x, y), (x.flip(0), y.flip(0))


def test_registry_has_the_four_algorithms():
    assert set(ALGORITHMS.names()) == {"darts", "darts2", "drnas", "pcdarts"}


@pytest.mark.parametrize("algo", ["darts", "darts2", "drnas", "pcdarts"])
def test_arch_step_moves_alphas_and_leaves_weights(algo):
    alg, model, ctx, train, val = _setup(algo)
    alphas = [p.detach().clone() for p in model.arch_parameters()]
    weights = [p.detach().clone() for p in model.weight_parameters()]
    loss = alg.arch_step(ctx, train, val)
    assert loss > 0
    assert any(not torch.equal(a, p) for a, p in zip(alphas, model.arch_parameters()))
    assert all(torch.equal(w, p) for w, p in zip(weights, model.weight_parameters()))


def test_space_adjustments():
    assert _setup("pcdarts")[1].space.partial_channels == 4 and _setup("pcdarts")[1].space.edge_norm
    assert _setup("drnas")[1].space.mixing == "dirichlet"
    assert _setup("darts")[1].space.partial_channels == 1


def test_second_order_with_zero_lr_equals_first_order_gradient():
    """With lr = 0 the virtual step is the identity and the Hessian term vanishes."""
    _, model, ctx, train, val = _setup("darts2")
    ctx.lr = 0.0
    captured = {}
    ctx.a_optimizer.step = lambda: captured.update(g=[p.grad.clone() for p in model.arch_parameters()])
    create_algorithm(ctx.config.replace(algo="darts2")).arch_step(ctx, train, val)
    model.zero_grad()
    F.cross_entropy(model(val[0]), val[1]).backward()
    for g2, p in zip(captured["g"], model.arch_parameters()):
        torch.testing.assert_close(g2, p.grad, atol=1e-6, rtol=1e-4)


def test_second_order_hessian_term_changes_the_gradient():
    _, model, ctx, train, val = _setup("darts2")
    ctx.lr = 0.5
    captured = {}
    ctx.a_optimizer.step = lambda: captured.update(g=[p.grad.clone() for p in model.arch_parameters()])
    create_algorithm(ctx.config).arch_step(ctx, train, val)
    model.zero_grad()
    F.cross_entropy(model(val[0]), val[1]).backward()
    assert any(not torch.allclose(g2, p.grad, atol=1e-7) for g2, p in zip(captured["g"], model.arch_parameters()))


def test_drnas_adds_a_kl_regulariser_that_vanishes_at_the_uniform_prior():
    alg, model, *_ = _setup("drnas")
    with torch.no_grad():
        for a in model.arch_parameters():
            a.zero_()  # ELU(0) + 1 = 1: exactly the Dirichlet(1) prior
    assert float(alg.kl_regulariser(model).detach()) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        model.alphas_normal[:, 0] = 3.0
    assert float(alg.kl_regulariser(model).detach()) > 0


def test_warmup_defaults():
    assert create_algorithm(SearchConfig("digits", algo="darts", epochs=10)).warmup_epochs() == 0
    assert create_algorithm(SearchConfig("digits", algo="pcdarts", epochs=10)).warmup_epochs() == 3
    assert create_algorithm(SearchConfig("digits", algo="drnas", epochs=10, warmup_epochs=1)).warmup_epochs() == 1
