"""RNN, LSTM and GRU (step and sequence) against torch and numerical gradients."""

import numpy as np
import pytest
import torch
from rnnlib_helpers import (
    LAYERS,
    SHAPES,
    numeric_check,
    random_params,
    run_torch,
    scaled_error,
)

IDS = [layer.name for layer in LAYERS]


def _case(layer, shape, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    N, T, D, H = shape
    inputs = layer.inputs(rng, N, T, D, H, dtype)
    params = random_params(rng, layer.G, D, H, dtype)
    return rng, inputs, params


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_matches_torch_float64(layer, shape):
    rng, inputs, params = _case(layer, shape, seed=sum(shape))
    outs, cache = layer.ours(inputs, params)
    douts = [rng.standard_normal(o.shape) for o in outs]
    grads = layer.back(douts, cache)
    torch_outs, torch_grads = run_torch(layer, inputs, params, douts)
    for k, (ours, theirs) in enumerate(zip(outs, torch_outs, strict=True)):
        assert scaled_error(ours, theirs) < 1e-10, f"output {k}"
    assert set(grads) == set(torch_grads)
    for name in torch_grads:
        assert scaled_error(grads[name], torch_grads[name]) < 1e-10, name


@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_matches_torch_float32_and_keeps_dtype(layer):
    rng, inputs, params = _case(layer, (3, 6, 4, 5), seed=7, dtype=np.float32)
    outs, cache = layer.ours(inputs, params)
    douts = [rng.standard_normal(o.shape).astype(np.float32) for o in outs]
    grads = layer.back(douts, cache)
    torch_outs, torch_grads = run_torch(layer, inputs, params, douts, torch.float32)
    for ours, theirs in zip(outs, torch_outs, strict=True):
        assert ours.dtype == np.float32
        assert scaled_error(ours, theirs) < 1e-5
    for name, g in grads.items():
        assert g.dtype == np.float32, name
        assert scaled_error(g, torch_grads[name]) < 1e-5, name


@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_gradients_match_centred_differences(layer):
    # Tiny sizes: the numerical gradient costs two forward passes per entry.
    rng, inputs, params = _case(layer, (2, 3, 3, 2), seed=11)
    errors = numeric_check(layer, inputs, params, rng)
    assert set(errors) == set(inputs) | set(params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-7, f"{worst}: {errors[worst]:.1e} (expect < 1e-7)"


@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_gradient_shapes_and_inputs_untouched(layer):
    rng, inputs, params = _case(layer, (2, 4, 3, 5), seed=3)
    before = {k: v.copy() for k, v in {**inputs, **params}.items()}
    outs, cache = layer.ours(inputs, params)
    douts = [rng.standard_normal(o.shape) for o in outs]
    douts_before = [d.copy() for d in douts]
    grads = layer.back(douts, cache)
    for name, value in {**inputs, **params}.items():
        assert grads[name].shape == value.shape, name
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    for d, d_before in zip(douts, douts_before, strict=True):
        np.testing.assert_array_equal(d, d_before)
    # A second backward pass from the same cache gives the same answer.
    again = layer.back(douts, cache)
    for name in grads:
        np.testing.assert_array_equal(grads[name], again[name], err_msg=name)


@pytest.mark.parametrize(
    "layer",
    [la for la in LAYERS if not la.step],
    ids=[la.name for la in LAYERS if not la.step],
)
def test_sequence_equals_repeated_steps(layer):
    """The sequence function is the step function applied T times."""
    step = next(
        la
        for la in LAYERS
        if la.step and la.G == layer.G and la.name.replace("_step", "") == layer.name
    )
    rng, inputs, params = _case(layer, (2, 4, 3, 3), seed=5)
    outs, _ = layer.ours(inputs, params)
    state = {
        new: inputs[old] for old, new in zip(layer.states, step.states, strict=True)
    }
    for t in range(inputs["x"].shape[1]):
        step_outs, _ = step.ours({"x_t": inputs["x"][:, t], **state}, params)
        for name, value in zip(step.states, step_outs, strict=True):
            state[name] = value
        np.testing.assert_allclose(outs[0][:, t], step_outs[0], rtol=1e-12, atol=1e-12)
