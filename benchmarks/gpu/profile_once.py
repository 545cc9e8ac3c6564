#!/usr/bin/env python3
"""One bert4j attention forward + backward (bf16, 32x12x512x64) for a profiler to capture.

    ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats \
        -k regex:mma python3 benchmarks/gpu/profile_once.py --lib .../libbert4j_kernels_cuda_shared.so
"""
import argparse
import ctypes as C
import math
import sys

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from check_and_bench import BF16_DTYPE, load  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--shape", default="32,12,512,64", help="B,H,S,D")
args = ap.parse_args()
B, H, S, D = (int(x) for x in args.shape.split(","))
lib = load(args.lib)
q, k, v, go = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
out, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
lse = torch.empty(B, H, S, device="cuda")
st = (C.c_int64 * 3)(q.stride(0), q.stride(1), q.stride(2))
p = lambda t: C.c_void_p(t.data_ptr())
s = C.c_void_p(torch.cuda.current_stream().cuda_stream)
scale = 1.0 / math.sqrt(D)
rc = lib.bert4j_attention_forward_cuda(BF16_DTYPE, p(q), p(k), p(v), p(out), p(lse), B, H, S, S, D, st, st, st, st,
                                       None, None, None, scale, 0.0, 0, 0, s)
rc |= lib.bert4j_attention_backward_cuda(BF16_DTYPE, p(q), p(k), p(v), p(out), p(go), p(lse), p(dq), p(dk), p(dv),
                                         B, H, S, S, D, st, st, st, st, st, st, st, st, None, None, None,
                                         scale, 0.0, 0, 0, s)
torch.cuda.synchronize()
print("status", rc, lib.bert4j_last_error().decode())
sys.exit(1 if rc else 0)
