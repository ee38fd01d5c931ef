"""NumPy lstm_forward + lstm_backward vs torch.nn.LSTM forward + backward.

N=32, T=100, D=64, H=128, float32, median of several repeats, same number of
threads for both: torch.set_num_threads and the BLAS environment variables,
set before NumPy loads OpenBLAS (which reads them only then). Run:

    python benchmarks/bench_lstm.py [--threads 1] [--repeats 15]
"""

import argparse
import os
import sys
import time

THREADS_HELP = "threads for NumPy's BLAS and for torch (default 1: reproducible)"


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    parser.add_argument("--repeats", type=int, default=15)
    return parser.parse_args()


args = _parse()
# BLAS libraries read these once, when NumPy is first imported.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import rnnlib  # noqa: E402
import torch  # noqa: E402

N, T, D, H = 32, 100, 64, 128


def median_seconds(fns, repeats):
    """Median wall time of each function; runs alternate, so that a busy
    machine slows both sides alike and the ratio stays meaningful."""
    for fn in fns:
        fn()  # warm-up: first-call allocations, BLAS thread start
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            fn_times.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def main():
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    params = rnnlib.init_params("lstm", D, H, rng, dtype=np.float32)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0 = np.zeros((N, H), dtype=np.float32)
    dh_seq = rng.standard_normal((N, T, H)).astype(np.float32)

    def numpy_step():
        h_seq, _, cache = rnnlib.lstm_forward(x, h0, h0, params)
        rnnlib.lstm_backward(dh_seq, cache)

    lstm = rnnlib.params_to_torch(params, torch.nn.LSTM(D, H, batch_first=True))
    x_t = torch.tensor(x, requires_grad=True)
    dh_t = torch.tensor(dh_seq)

    def torch_step():
        lstm.zero_grad()
        x_t.grad = None
        h_seq, _ = lstm(x_t)
        h_seq.backward(dh_t)

    t_numpy, t_torch = median_seconds([numpy_step, torch_step], args.repeats)
    print(f"LSTM forward+backward, N={N} T={T} D={D} H={H}, float32, "
          f"{args.threads} thread(s), median of {args.repeats}")
    print(f"  python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"torch {torch.__version__}")
    print(f"  numpy (rnnlib): {1e3 * t_numpy:8.2f} ms")
    print(f"  torch.nn.LSTM : {1e3 * t_torch:8.2f} ms")
    print(f"  ratio numpy / torch: {t_numpy / t_torch:.2f}x")


if __name__ == "__main__":
    main()
