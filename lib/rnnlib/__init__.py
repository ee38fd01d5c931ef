"""rnnlib: the course's reference implementation of recurrent layers in NumPy.

Conventions: N batch, T time, D input features, H hidden units, V classes,
G gates (1 RNN, 3 GRU, 4 LSTM); batch first, x is (N, T, D); parameters in
PyTorch's layout, W_ih (G*H, D), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,).
Every layer is ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> grads``, a dict keyed like the forward's inputs
and parameters. Functions are pure; bad shapes, dtypes or NaN raise ValueError
naming the argument.

Where each piece is taught:

=========================================  ==================================
Chapter 1, Feedforward vs recurrent        data.one_hot, sliding_windows,
                                           remember_first
Chapter 2, An RNN cell in NumPy            rnn_step_forward, rnn_forward,
                                           affine_forward, softmax, sigmoid,
                                           params_to_torch, init_params
Chapter 3, Backpropagation through time    rnn_*_backward, affine_backward,
                                           softmax_cross_entropy, log_softmax,
                                           gradcheck, SGD, Adagrad, Adam,
                                           CharVocab, tbptt_batches
Chapter 4, Vanishing and exploding grads   clip_grad_norm, clip_grad_value,
                                           init_params, adding_problem,
                                           copy_task
Chapter 5, LSTM and GRU                    lstm_*, gru_*
Chapter 6, RNNs in PyTorch and Keras       params_from_torch
=========================================  ==================================

``rnnlib.grading`` (``swapped_in``, ``ReferenceWithheldError``) is course
infrastructure for exercise tests.
"""

from . import data, gradcheck, grading
from .activations import log_softmax, sigmoid, softmax
from .affine import affine_backward, affine_forward
from .clip import clip_grad_norm, clip_grad_value
from .data import CharVocab, one_hot
from .gradcheck import grad_check_all, numerical_gradient, rel_error
from .grading import ReferenceWithheldError, swapped_in
from .gru import gru_backward, gru_forward, gru_step_backward, gru_step_forward
from .initializers import init_params
from .losses import softmax_cross_entropy
from .lstm import lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
from .optim import SGD, Adagrad, Adam
from .rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .torch_bridge import params_from_torch, params_to_torch

__all__ = [
    "data", "gradcheck", "grading",
    "log_softmax", "sigmoid", "softmax",
    "affine_forward", "affine_backward",
    "clip_grad_norm", "clip_grad_value",
    "CharVocab", "one_hot",
    "grad_check_all", "numerical_gradient", "rel_error",
    "ReferenceWithheldError", "swapped_in",
    "softmax_cross_entropy",
    "SGD", "Adagrad", "Adam",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward",
    "params_from_torch", "params_to_torch", "init_params",
]
