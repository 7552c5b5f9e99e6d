"""DARTS (Liu et al., 2019): softmax-relaxed alphas, first- and second-order updates."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from raynas.search.algorithms.base import ALGORITHMS, SearchAlgorithm, StepContext


@ALGORITHMS.register("darts")
class DARTS(SearchAlgorithm):
    """First order: alphas follow the val-loss gradient at the current weights."""

    name = "darts"


@ALGORITHMS.register("darts2")
class DARTSSecondOrder(SearchAlgorithm):
    """Second order: the val loss is taken after one virtual SGD step of the weights,

    grad_alpha L_val(w', alpha) - lr * H v, with w' = w - lr * (momentum buffer + grad_w L_train + wd * w),
    v = grad_w' L_val(w', alpha), and the Hessian-vector product H v estimated by central
    finite differences of grad_alpha L_train at w +- r v (r = 0.01 / |v|), as in the paper.
    """

    name = "darts2"

    def arch_step(self, ctx: StepContext, train, val) -> float:
        model, cfg, lr = ctx.model, ctx.config, ctx.lr
        named_w = model.named_weight_parameters()
        names = [n for n, _ in named_w]
        weights = [p for _, p in named_w]
        alphas = model.arch_parameters()

        # virtual step w' on the train batch
        loss_train = F.cross_entropy(model(train[0]), train[1])
        grads = torch.autograd.grad(loss_train, weights)
        momentum = cfg.w_momentum
        w_prime = {}
        with torch.no_grad():
            for n, p, g in zip(names, weights, grads):
                buf = ctx.w_optimizer.state.get(p, {}).get("momentum_buffer")
                step = g + cfg.w_weight_decay * p + (momentum * buf if buf is not None else 0.0)
                w_prime[n] = p - lr * step

        # gradient of the val loss at w' with respect to alphas and w'
        for t in w_prime.values():
            t.requires_grad_(True)
        out = functional_call(model, w_prime, (val[0],), strict=False)
        loss_val = F.cross_entropy(out, val[1])
        grads = torch.autograd.grad(loss_val, alphas + list(w_prime.values()))
        d_alpha, v = grads[:len(alphas)], grads[len(alphas):]

        # finite-difference Hessian-vector product
        r = 0.01 / torch.sqrt(sum((g * g).sum() for g in v)).clamp_min(1e-12)
        hessian = []
        for sign in (1.0, -1.0):
            shifted = {n: (p + sign * r * g).detach() for n, p, g in zip(names, weights, v)}
            out = functional_call(model, shifted, (train[0],), strict=False)
            hessian.append(torch.autograd.grad(F.cross_entropy(out, train[1]), alphas))
        ctx.a_optimizer.zero_grad(set_to_none=True)
        for a, g, hp, hm in zip(alphas, d_alpha, *hessian):
            a.grad = g - lr * (hp - hm) / (2 * r)
        ctx.a_optimizer.step()
        return float(loss_val.detach())
