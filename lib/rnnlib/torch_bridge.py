"""Move weights between rnnlib's params dicts and PyTorch's recurrent modules.

Our names and layout are PyTorch's, so the bridge is a rename: ``W_ih`` is
``weight_ih_l0`` in ``nn.RNN/LSTM/GRU`` and ``weight_ih`` in the Cell classes.
torch is imported only when these functions are called.
"""

import numpy as np

TORCH_NAMES = {"W_ih": "weight_ih", "W_hh": "weight_hh",
               "b_ih": "bias_ih", "b_hh": "bias_hh"}


def _torch_parameters(module):
    """The module's four parameters as {our name: torch Parameter}."""
    import torch

    kind = type(module).__name__
    if isinstance(module, torch.nn.RNNCellBase):
        suffix = ""
    elif isinstance(module, torch.nn.RNNBase):
        if module.num_layers != 1:
            raise ValueError(f"{kind} has num_layers={module.num_layers}; rnnlib "
                             "layers are single-layer (stack them yourself)")
        if module.bidirectional:
            raise ValueError(f"{kind} is bidirectional; rnnlib layers are not")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"{kind} has proj_size={module.proj_size}; "
                             "rnnlib's LSTM has no projection")
        suffix = "_l0"
    else:
        raise ValueError(f"expected torch.nn.RNN, LSTM, GRU or a Cell; got {kind}")
    if not module.bias:
        raise ValueError(f"{kind} has bias=False; rnnlib layers have b_ih and b_hh")
    return {ours: getattr(module, theirs + suffix)
            for ours, theirs in TORCH_NAMES.items()}


def params_from_torch(module):
    """Copy a PyTorch recurrent module's weights into a new params dict.

    Accepts single-layer, unidirectional ``nn.RNN``, ``nn.LSTM``, ``nn.GRU``
    with biases, and ``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``.

    Returns
    -------
    dict with float64 NumPy copies: W_ih (G*H, D), W_hh (G*H, H), b_ih (G*H,),
    b_hh (G*H,). (The RNN's nonlinearity is not a parameter; read
    ``module.nonlinearity``.)

    Taught in: Chapter 6 (RNNs in PyTorch and Keras).
    """
    return {name: p.detach().cpu().numpy().astype(np.float64, copy=True)
            for name, p in _torch_parameters(module).items()}


def params_to_torch(params, module):
    """Copy a params dict into a PyTorch recurrent module, in place.

    Shapes must match the module's (ValueError otherwise); values are cast to
    the module's dtype. The copy is not tracked by autograd. Returns module.

    Taught in: Chapter 2 (An RNN cell in NumPy).
    """
    import torch

    targets = _torch_parameters(module)
    for name, target in targets.items():
        if name not in params:
            raise ValueError(f"params is missing {name!r}")
        value = np.asarray(params[name])
        if value.shape != tuple(target.shape):
            raise ValueError(
                f"{name} has shape {value.shape}; {type(module).__name__} expects "
                f"{tuple(target.shape)}"
            )
    with torch.no_grad():
        for name, target in targets.items():
            source = torch.as_tensor(np.asarray(params[name]), dtype=target.dtype)
            target.copy_(source)
    return module
