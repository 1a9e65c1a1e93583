#!/usr/bin/env python3
"""The peer for greta's matrix kernels: cuBLAS through PyTorch (`torch.matmul(x, w.t())`, the
y = x · Wᵀ greta computes, W stored N × K) at the given m,n,k shapes, timed the way
`greta bench kernels` times: CUDA events around each call after warm-up, the median of 100,
inputs rotating over enough sets to exceed the L2. The copy bandwidth is measured the same way
(a 256 MiB device-to-device copy, bytes read + written).

Usage (on the GPU machine): python3 scripts/peer-matmul.py [--dtype f16|bf16] M,N,K ...
Prints one line per shape: m,n,k, median µs, TFLOP/s, GB/s of the minimum bytes, % of copy."""
import statistics
import sys

import torch

ROTATE_BYTES = 128 << 20


def timed(fn, runs=100, warmup=10):
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    events = []
    for i in range(runs):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn(i)
        e.record()
        events.append((s, e))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events) * 1e-3


def main():
    args = sys.argv[1:]
    dtype = torch.float16
    if args[:1] == ["--dtype"]:
        dtype = {"f16": torch.float16, "bf16": torch.bfloat16}[args[1]]
        args = args[2:]
    dev = torch.device("cuda")
    a = torch.empty(64 << 20, dtype=torch.int32, device=dev)
    b = torch.empty_like(a)
    copy = 2 * a.numel() * 4 / timed(lambda i: b.copy_(a), runs=30, warmup=5)
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; "
          f"device-to-device copy: {copy / 1e9:.0f} GB/s")
    print(f"{'peer':<10} {'dtype':<5} {'shape':<16} {'median':>9} {'GB/s':>8} {'% copy':>7} {'TFLOP/s':>8}")
    for text in args:
        m, n, k = (int(d) for d in text.split(","))
        size = 2  # f16/bf16
        min_bytes = (m * k + n * k + m * n) * size
        sets = max(2, min(16, ROTATE_BYTES // min_bytes + 1))
        xs = [torch.empty(m, k, dtype=dtype, device=dev).uniform_(-1, 1) for _ in range(sets)]
        ws = [torch.empty(n, k, dtype=dtype, device=dev).uniform_(-1, 1) for _ in range(sets)]
        ys = [torch.empty(m, n, dtype=dtype, device=dev) for _ in range(sets)]

        def call(i):
            j = i % sets
            torch.matmul(xs[j], ws[j].t(), out=ys[j])

        t = timed(call)
        name = "cublas"
        print(f"{name:<10} {str(dtype).replace('torch.', ''):<5} {m}x{n}x{k:<8} {t * 1e6:>7.1f}us "
              f"{min_bytes / t / 1e9:>8.0f} {100 * min_bytes / t / copy:>6.1f}% "
              f"{2 * m * n * k / t / 1e12:>8.1f}")
        del xs, ws, ys
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
