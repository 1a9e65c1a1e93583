#!/usr/bin/env python3
"""The peer for greta's attention kernels: PyTorch's scaled_dot_product_attention (the flash
backend on the H200), timed like `greta bench kernels`: CUDA events around each call after
warm-up, the median. Shapes as greta's attention problems, tokens,heads,kv_heads,head_dim,start:
causal prefill of `tokens` new tokens after `start` cached ones (FLOPs count only the unmasked
half: 4·D per query-key pair), and decode (tokens = 1), reported as bytes of K/V read per second
against the device copy bandwidth.

Usage (on the GPU machine): python3 scripts/peer-attention.py T,H,Hkv,D,START ..."""
import statistics
import sys

import torch
import torch.nn.functional as F


def timed(fn, runs=30, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    for _ in range(runs):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        events.append((s, e))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events) * 1e-3


def main():
    dev = torch.device("cuda")
    a = torch.empty(64 << 20, dtype=torch.int32, device=dev)
    b = torch.empty_like(a)
    copy = 2 * a.numel() * 4 / timed(lambda: b.copy_(a))
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; "
          f"device-to-device copy: {copy / 1e9:.0f} GB/s")
    for text in sys.argv[1:]:
        t, h, hkv, d, start = (int(x) for x in text.split(","))
        keys = start + t
        q = torch.randn(1, h, t, d, dtype=torch.float16, device=dev)
        k = torch.randn(1, hkv, keys, d, dtype=torch.float16, device=dev)
        v = torch.randn_like(k)
        if hkv != h:
            k, v = (x.repeat_interleave(h // hkv, dim=1) for x in (k, v))
        if t == 1:
            call = lambda: F.scaled_dot_product_attention(q, k, v)
        elif start == 0:
            call = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            mask = torch.ones(t, keys, dtype=torch.bool, device=dev).tril(start)
            call = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        sec = timed(call)
        pairs = h * sum(start + i + 1 for i in range(t))
        kv_bytes = 2 * hkv * keys * d * 2
        print(f"sdpa f16 {text:<22} {sec * 1e6:>10.1f}us {4 * pairs * d / sec / 1e12:>7.1f} TFLOP/s "
              f"{kv_bytes / sec / 1e9:>7.0f} GB/s of K/V ({100 * kv_bytes / sec / copy:.1f}% copy)")
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
