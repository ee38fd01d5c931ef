"""params_from_torch / params_to_torch."""

import numpy as np
import pytest
import rnnlib
import torch

MODULES = [
    (lambda: torch.nn.RNN(3, 4), 1), (lambda: torch.nn.LSTM(3, 4), 4),
    (lambda: torch.nn.GRU(3, 4), 3), (lambda: torch.nn.RNNCell(3, 4), 1),
    (lambda: torch.nn.LSTMCell(3, 4), 4), (lambda: torch.nn.GRUCell(3, 4), 3),
]


@pytest.mark.parametrize("make, G", MODULES)
def test_round_trip(make, G):
    module = make()
    params = rnnlib.params_from_torch(module)
    assert params["W_ih"].shape == (G * 4, 3) and params["W_hh"].shape == (G * 4, 4)
    assert all(p.dtype == np.float64 for p in params.values())
    torch_values = [p.detach().numpy().copy() for p in module.parameters()]
    new = rnnlib.init_params({1: "rnn", 3: "gru", 4: "lstm"}[G], 3, 4,
                             np.random.default_rng(0))
    rnnlib.params_to_torch(new, module)
    back = rnnlib.params_from_torch(module)
    for name in new:
        # float32 module: equal up to float32 rounding
        np.testing.assert_allclose(back[name], new[name], rtol=1e-6)
        assert not np.shares_memory(back[name], params[name])
    assert not np.allclose(torch_values[0], next(module.parameters()).detach())
    assert all(p.grad is None and p.requires_grad for p in module.parameters())


def test_copies_are_independent():
    module = torch.nn.GRU(2, 3).double()
    params = rnnlib.params_from_torch(module)
    params["W_hh"][:] = 0
    assert module.weight_hh_l0.abs().sum() > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"num_layers": 2}, "num_layers=2"),
    ({"bidirectional": True}, "bidirectional"),
    ({"bias": False}, "bias=False"),
])
def test_unsupported_modules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnlib.params_from_torch(torch.nn.LSTM(3, 4, **kwargs))
    with pytest.raises(ValueError, match="proj_size=2"):
        rnnlib.params_from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="got Linear"):
        rnnlib.params_from_torch(torch.nn.Linear(3, 4))


def test_shape_mismatch():
    params = rnnlib.init_params("rnn", 3, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"W_ih has shape \(4, 3\); LSTM expects "
                                         r"\(16, 3\)"):
        rnnlib.params_to_torch(params, torch.nn.LSTM(3, 4))


def test_missing_parameter_is_named():
    """A params dict without b_hh is a ValueError naming it, not a KeyError."""
    params = rnnlib.init_params("rnn", 3, 4, np.random.default_rng(0))
    del params["b_hh"]
    with pytest.raises(ValueError, match="params is missing 'b_hh'"):
        rnnlib.params_to_torch(params, torch.nn.RNN(3, 4))


def test_a_transposed_weight_of_the_same_size_is_refused():
    """(3, 4) has as many entries as (4, 3) but is not the module's shape."""
    params = rnnlib.init_params("rnn", 3, 4, np.random.default_rng(0))
    params["W_ih"] = params["W_ih"].T
    module = torch.nn.RNN(3, 4)
    before = module.weight_ih_l0.detach().clone()
    with pytest.raises(ValueError, match=r"W_ih has shape \(3, 4\); RNN expects "
                                         r"\(4, 3\)"):
        rnnlib.params_to_torch(params, module)
    assert torch.equal(module.weight_ih_l0.detach(), before)  # nothing copied
