"""AdamW exactly as ssmax's spago engine applies it (finetune/optimizer.go,
fusedAdam, which is spago's Adam(W)): per group a time step t and

    g = g·factor                       (1/accumulation, times the clipping factor)
    m1 = m1·β1 + g·(1−β1)
    m2 = m2·β2 + (g·g)·(1−β2)
    d  = m1 / (√m2 + ε)  (+ w·λ with weight decay λ)
    w  = w − d·α,         α = lr·lr_scale·√(1−β2^t) / (1−β1^t)

in float32. This differs from torch.optim.AdamW (ε is not bias-corrected,
decay is scaled by α), so the two engines give the same losses only with
this update. Groups: "decay" (matrices, weight decay), "no_decay" (vectors),
"ssmax" (s and b, their own learning rate); a group's t counts the steps
since it got its first parameter.
"""
import math

import torch


class AdamW(torch.optim.Optimizer):
    def __init__(self, groups, beta1, beta2, eps):
        """groups: [{"name", "params", "lr_scale", "weight_decay", "step"}],
        at least one with parameters."""
        super().__init__(groups, dict(lr_scale=1.0, weight_decay=0.0, step=0, name=""))
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def group(self, name):
        for g in self.param_groups:
            if g["name"] == name:
                return g
        return None

    @torch.no_grad()
    def step(self, lr, factor=1.0):
        """One update; returns (parameter, its group's learning rate) of
        the first weight the update made non-finite, or None."""
        bad = None
        b1, b2, eps = self.beta1, self.beta2, self.eps
        for g in self.param_groups:
            g["step"] += 1
            t = g["step"]
            alpha = lr * g["lr_scale"] * math.sqrt(1.0 - math.pow(b2, t)) / (1.0 - math.pow(b1, t))
            wd = g["weight_decay"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                grad = p.grad if factor == 1.0 else p.grad * factor
                m1, m2 = st["exp_avg"], st["exp_avg_sq"]
                m1.mul_(b1).add_(grad * (1.0 - b1))
                m2.mul_(b2).add_((grad * grad) * (1.0 - b2))
                d = m1 / (m2.sqrt() + eps)
                if wd != 0.0:
                    d = d + p * wd
                p.sub_(d * alpha)
                if bad is None and not bool(torch.isfinite(p).all()):
                    bad = (p, lr * g["lr_scale"])
        return bad
