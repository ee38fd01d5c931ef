"""Three optimisers over a dict of parameters, with torch.optim's equations.

Each optimiser keeps its own state (momentum buffers, running averages) keyed
by parameter name, and ``step(params, grads)`` returns a NEW params dict: the
arrays you pass in are never modified, so an old copy of the weights stays
valid (handy in a notebook that compares runs). Hyper-parameters are Python
floats, so float32 parameters stay float32.
"""

import math

import numpy as np


class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum.

    As ``torch.optim.SGD`` (dampening 0, no Nesterov, no weight decay)::

        b = momentum * b + g        (b = g at the first step)
        p = p - lr * b

    Taught in: Chapter 3 (Backpropagation through time).
    """

    def __init__(self, lr, momentum=0.0):
        self.lr, self.momentum = lr, momentum
        self.buffers = {}

    def step(self, params, grads):
        new_params = {}
        for name, p in params.items():
            g = grads[name]
            if self.momentum:
                b = self.buffers.get(name)
                b = g.copy() if b is None else self.momentum * b + g
                self.buffers[name] = b
                g = b
            new_params[name] = p - self.lr * g
        return new_params


class Adagrad:
    """Adagrad (Duchi et al., 2011): per-parameter steps shrink with history.

    As ``torch.optim.Adagrad`` (no lr decay, no weight decay)::

        s = s + g**2
        p = p - lr * g / (sqrt(s) + eps)

    Taught in: Chapter 3 (Backpropagation through time).
    """

    def __init__(self, lr=1e-2, eps=1e-10):
        self.lr, self.eps = lr, eps
        self.sums = {}

    def step(self, params, grads):
        new_params = {}
        for name, p in params.items():
            g = grads[name]
            s = self.sums.get(name, np.zeros_like(g)) + g * g
            self.sums[name] = s
            new_params[name] = p - self.lr * g / (np.sqrt(s) + self.eps)
        return new_params


class Adam:
    """Adam (Kingma & Ba, 2015): momentum plus per-parameter scaling.

    As ``torch.optim.Adam`` (no weight decay, no amsgrad), at step t = 1, 2, ...::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Used from Chapter 1 on, and in Chapter 3's training loop; no chapter derives
    it: the three lines above are its whole definition.
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v, self.t = {}, {}, 0

    def step(self, params, grads):
        beta1, beta2 = self.betas
        self.t += 1
        new_params = {}
        for name, p in params.items():
            g = grads[name]
            m = beta1 * self.m.get(name, np.zeros_like(g)) + (1 - beta1) * g
            v = beta2 * self.v.get(name, np.zeros_like(g)) + (1 - beta2) * g * g
            self.m[name], self.v[name] = m, v
            # Bias correction: m and v start at 0, so early averages are too small.
            step_size = self.lr / (1 - beta1**self.t)
            denom = np.sqrt(v) / math.sqrt(1 - beta2**self.t) + self.eps
            new_params[name] = p - step_size * m / denom
        return new_params
