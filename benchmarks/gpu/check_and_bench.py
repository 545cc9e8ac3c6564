#!/usr/bin/env python3
"""bert4j CUDA kernels vs PyTorch on a GPU: correctness checks and a timing comparison.

Loads libbert4j_kernels_cuda_shared.so (the C ABI, native/include/bert4j_kernels.h) with
ctypes and hands it torch tensors' data_ptr()s and torch.cuda.current_stream().cuda_stream.

Checks (float64 references computed by PyTorch):
  * attention forward (out, lse) and backward (dq, dk, dv), fp32 and bf16, head_dim 32/64,
    [B,S,H,D] projection-style strided views, padding (key_lengths + additive mask),
    dropout (keep decisions from an independent numpy Philox-4x32-10, checked against the
    published known-answer vector), varlen (packed sequences);
    pass: fp32 error <= 1e-4 * max|ref|; bf16 error <= max(2 x PyTorch's own bf16 error on the
    same inputs, 4e-3 * max|ref|) (the project's "at most 2x same-precision libtorch" rule);
  * bias+GELU backward (dx, dbias) against autograd of gelu(x + b) in float64.
Benchmark: bf16, head_dim 64, no mask, bert4j vs PyTorch's flash SDPA
(torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)), forward and forward+backward,
CUDA events after warm-up. FLOPs: forward 4*B*H*Sq*Sk*D (two matmuls), backward 2.5x the
forward (five matmuls), so forward+backward = 3.5x.

Writes a markdown report (--out) and exits non-zero when a check fails.
"""
import argparse
import ctypes as C
import math
import os
import platform
import sys
import time

import numpy as np

# ---- Philox-4x32-10 in numpy (independent of the C++ one; KAT checked at start-up) ----------
_M32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Arrays of uint64 holding 32-bit words; returns the four output words."""
    M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    W0, W1 = 0x9E3779B9, 0xBB67AE85
    k0, k1 = int(k0), int(k1)
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & _M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & _M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0 = (k0 + W0) & 0xFFFFFFFF
        k1 = (k1 + W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def philox_bits(seed, offset, idx):
    idx = np.asarray(idx, dtype=np.uint64)
    block = idx >> np.uint64(2)
    z = np.zeros_like(block)
    r = philox4x32_10(block & _M32, block >> np.uint64(32), z + np.uint64(offset & 0xFFFFFFFF),
                      z + np.uint64(offset >> 32), seed & 0xFFFFFFFF, seed >> 32)
    lane = (idx & np.uint64(3)).astype(np.int64)
    return np.choose(lane, r)


def dropout_threshold(p):
    t = float(np.float32(p)) * 4294967296.0
    return 0xFFFFFFFF if t >= 4294967295.0 else int(t)


def keep_mask(seed, offset, idx, p):
    return philox_bits(seed, offset, idx) >= np.uint64(dropout_threshold(p))


def philox_selftest():
    # Random123 known-answer vectors for philox4x32-10.
    kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
           ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
           ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for ctr, key, want in kat:
        got = philox4x32_10(*[np.array([c], dtype=np.uint64) for c in ctr], *key)
        got = tuple(int(g[0]) for g in got)
        if got != want:
            raise SystemExit(f"numpy Philox known-answer test failed: {got!r} != {want!r}")


# ---- the library --------------------------------------------------------------------------
I64, F32, U64, VP, I32P, F32P = C.c_int64, C.c_float, C.c_uint64, C.c_void_p, C.c_void_p, C.c_void_p
S3 = C.POINTER(C.c_int64)
F32_DTYPE, BF16_DTYPE = 0, 1


def load(path):
    lib = C.CDLL(path)
    lib.bert4j_last_error.restype = C.c_char_p
    lib.bert4j_attention_forward_cuda.argtypes = [C.c_int, VP, VP, VP, VP, F32P, I64, I64, I64, I64, I64,
                                                  S3, S3, S3, S3, I32P, F32P, S3, F32, F32, U64, U64, VP]
    lib.bert4j_attention_backward_cuda.argtypes = [C.c_int, VP, VP, VP, VP, VP, F32P, VP, VP, VP, I64, I64,
                                                   I64, I64, I64, S3, S3, S3, S3, S3, S3, S3, S3, I32P,
                                                   F32P, S3, F32, F32, U64, U64, VP]
    lib.bert4j_attention_varlen_forward_cuda.argtypes = [C.c_int, VP, VP, VP, VP, F32P, I32P, I64, I64,
                                                         I64, I64, I64, S3, S3, S3, S3, F32, F32, U64,
                                                         U64, VP]
    lib.bert4j_attention_varlen_backward_cuda.argtypes = [C.c_int, VP, VP, VP, VP, VP, F32P, VP, VP, VP,
                                                          I32P, I64, I64, I64, I64, I64, S3, S3, S3, S3,
                                                          S3, S3, S3, S3, F32, F32, U64, U64, VP]
    lib.bert4j_bias_gelu_backward_f32_cuda.argtypes = [VP, VP, VP, VP, VP, I64, I64, I64, I64, I64,
                                                       C.c_int, VP]
    lib.bert4j_bias_gelu_backward_bf16_cuda.argtypes = lib.bert4j_bias_gelu_backward_f32_cuda.argtypes
    for f in ("bert4j_attention_forward_cuda", "bert4j_attention_backward_cuda",
              "bert4j_attention_varlen_forward_cuda", "bert4j_attention_varlen_backward_cuda",
              "bert4j_bias_gelu_backward_f32_cuda", "bert4j_bias_gelu_backward_bf16_cuda"):
        getattr(lib, f).restype = C.c_int
    return lib


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", required=True, help="path to libbert4j_kernels_cuda_shared.so")
    ap.add_argument("--out", required=True, help="markdown report to write")
    ap.add_argument("--quick", action="store_true", help="fewer timing iterations")
    ap.add_argument("--part", choices=("all", "check", "bench"), default="all",
                    help="run the checks, the benchmark or both (run.sh runs them as separate processes "
                         "so that a crash in one still gives the other's results)")
    args = ap.parse_args()
    philox_selftest()

    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to PyTorch")
    lib = load(args.lib)
    dev = torch.device("cuda")
    torch.manual_seed(20261128)
    # Reference matmuls in float64 must not use TF32 / reduced precision.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    def stream():
        return C.c_void_p(torch.cuda.current_stream().cuda_stream)

    def strides3(t, order):
        """int64[3] of tensor t's strides for the logical dims named in order (e.g. batch, head, seq)."""
        return (C.c_int64 * 3)(*[t.stride(d) for d in order] + [0] * (3 - len(order)))

    def call(name, *a):
        st = getattr(lib, name)(*a)
        if st != 0:
            raise RuntimeError(f"{name}: status {st}: {lib.bert4j_last_error().decode()}")

    def ptr(t):
        return C.c_void_p(t.data_ptr()) if t is not None else None

    rows = []
    failures = []
    prefix = [""]  # "generic " while the generic kernels are checked

    def record(case, errs, torch_errs, bf16):
        verdicts = []
        for name, e in errs.items():
            te = torch_errs.get(name)
            base = 4e-3 if bf16 else 1e-4
            limit = max(2 * te, base) if te is not None else base  # the "or 2x libtorch" rule
            ok = e <= limit and math.isfinite(e)
            verdicts.append(ok)
            if not ok:
                failures.append(f"{case}: {name} error {e:.3g} > limit {limit:.3g}")
        cells = " | ".join(f"{errs[n]:.2e}" + (f" ({torch_errs[n]:.1e})" if n in torch_errs else "")
                           for n in ("out", "lse", "dq", "dk", "dv") if n in errs)
        rows.append(f"| {case} | {cells} | {'pass' if all(verdicts) else '**FAIL**'} |")
        print(f"{case}: {cells} -> {'pass' if all(verdicts) else 'FAIL'}", flush=True)

    def rel(a, ref):
        """max |a - ref| / max |ref|, with max |ref| floored at 0.01: at seq 1 the true dQ and dK
        are exactly 0 and any rounding would otherwise read as an infinite relative error."""
        ref = ref.double()
        finite = torch.isfinite(ref)
        scale = max(ref[finite].abs().max().item() if finite.any() else 1.0, 1e-2)
        diff = (a.double() - ref).abs()
        diff = torch.where(finite, diff, torch.where(a.double() == ref, 0.0, float("inf")))
        return diff.max().item() / max(scale, 1e-30)

    # ---- dense attention checks -----------------------------------------------------------
    def dense_check(dtype, B, H, S, D, padded, p):
        bf16 = dtype == torch.bfloat16
        case = prefix[0] + f"dense {'bf16' if bf16 else 'fp32'} B{B} H{H} S{S} D{D}{' pad' if padded else ''}{f' p{p}' if p else ''}"
        # [B, S, H, D] storage, used through [B, H, S, D] views (as a projection output).
        mk = lambda: torch.randn(B, S, H, D, device=dev).to(dtype)
        q, k, v, go = mk(), mk(), mk(), mk()
        qv, kv, vv, gov = (t.transpose(1, 2) for t in (q, k, v, go))   # [B, H, S, D] views
        out = torch.empty_like(q)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        lse = torch.empty(B, H, S, device=dev, dtype=torch.float32)
        scale = 1.0 / math.sqrt(D)
        if padded:
            lens = torch.tensor([max(1, S - (S // 3) * (b % 3)) for b in range(B)], dtype=torch.int32, device=dev)
            add = torch.zeros(B, 1, 1, S, device=dev)
            add[..., 1::7] = -1.5        # finite additive values too
            add[:, :, :, 0] = 0.0
            for b in range(B):
                add[b, ..., int(lens[b]):] = float("-inf")  # same as key_lengths, in the torch mask
            mask_ptr, ms = add, (C.c_int64 * 3)(S, 0, 0)
            kl_ptr = lens
        else:
            add, mask_ptr, ms, kl_ptr = None, None, None, None
        seed, offset = 0xB0BACAFE + S, 12345
        st3 = strides3(q, (0, 2, 1))  # batch, head, seq of the [B,S,H,D] tensor
        dt = BF16_DTYPE if bf16 else F32_DTYPE
        call("bert4j_attention_forward_cuda", dt, ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), B, H, S, S, D,
             st3, st3, st3, st3, ptr(kl_ptr), ptr(mask_ptr), ms, scale, p, seed, offset, stream())
        call("bert4j_attention_backward_cuda", dt, ptr(q), ptr(k), ptr(v), ptr(out), ptr(go), ptr(lse),
             ptr(dq), ptr(dk), ptr(dv), B, H, S, S, D, st3, st3, st3, st3, st3, st3, st3, st3,
             ptr(kl_ptr), ptr(mask_ptr), ms, scale, p, seed, offset, stream())
        torch.cuda.synchronize()

        # float64 reference on the same (rounded) inputs
        q64, k64, v64 = (t.double().requires_grad_() for t in (qv, kv, vv))
        s = (q64 @ k64.transpose(-1, -2)) * scale
        if add is not None:
            s = s + add.double()
        lse_ref = torch.logsumexp(s, dim=-1)
        P = torch.softmax(s, dim=-1)
        if p > 0:
            bi, hi, ii, ji = np.meshgrid(np.arange(B), np.arange(H), np.arange(S), np.arange(S), indexing="ij")
            idx = (((bi * H + hi) * S + ii) * S + ji).astype(np.uint64)
            Z = torch.from_numpy(keep_mask(seed, offset, idx, p).astype(np.float64)).to(dev) / (1.0 - float(np.float32(p)))
            P = P * Z
        o64 = P @ v64
        g = torch.autograd.grad(o64, (q64, k64, v64), gov.double())
        errs = {"out": rel(out.transpose(1, 2), o64), "lse": rel(lse, lse_ref),
                "dq": rel(dq.transpose(1, 2), g[0]), "dk": rel(dk.transpose(1, 2), g[1]),
                "dv": rel(dv.transpose(1, 2), g[2])}
        # PyTorch at the same precision on the same inputs: its SDPA (default backend choice,
        # same mask) without dropout; with dropout (SDPA's own RNG cannot be given our mask)
        # the same formula in libtorch ops at that precision, with our keep mask.
        qt, kt, vt = (t.detach().clone().requires_grad_() for t in (qv, kv, vv))
        m = add.to(dtype) if add is not None else None
        if p == 0:
            ot = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=m, scale=scale)
        else:
            st_ = (qt @ kt.transpose(-1, -2)) * scale
            if m is not None:
                st_ = st_ + m
            ot = (torch.softmax(st_.float(), dim=-1) * Z.float()).to(dtype) @ vt
        gt = torch.autograd.grad(ot, (qt, kt, vt), gov)
        torch_errs = {"out": rel(ot, o64), "dq": rel(gt[0], g[0]), "dk": rel(gt[1], g[1]), "dv": rel(gt[2], g[2])}
        record(case, errs, torch_errs, bf16)

    # ---- varlen check -------------------------------------------------------------------------
    def varlen_check(dtype, lens, H, D, p):
        bf16 = dtype == torch.bfloat16
        case = prefix[0] + f"varlen {'bf16' if bf16 else 'fp32'} lens{lens} H{H} D{D}{f' p{p}' if p else ''}"
        total, maxlen = sum(lens), max(lens)
        cu = torch.tensor([0] + list(np.cumsum(lens)), dtype=torch.int32, device=dev)
        qkv = torch.randn(total, 3, H, D, device=dev).to(dtype)  # fused QKV buffer
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]                   # [total, H, D] views
        go = torch.randn(total, H, D, device=dev).to(dtype)
        out, dq, dk, dv = (torch.empty(total, H, D, device=dev, dtype=dtype) for _ in range(4))
        lse = torch.empty(H, total, device=dev)
        s2 = lambda t: (C.c_int64 * 3)(t.stride(0), t.stride(1), 0)
        scale = 1.0 / math.sqrt(D)
        seed, offset = 42, 7
        dt = BF16_DTYPE if bf16 else F32_DTYPE
        call("bert4j_attention_varlen_forward_cuda", dt, ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), ptr(cu),
             len(lens), total, maxlen, H, D, s2(q), s2(k), s2(v), s2(out), scale, p, seed, offset, stream())
        call("bert4j_attention_varlen_backward_cuda", dt, ptr(q), ptr(k), ptr(v), ptr(out), ptr(go), ptr(lse),
             ptr(dq), ptr(dk), ptr(dv), ptr(cu), len(lens), total, maxlen, H, D, s2(q), s2(k), s2(v),
             s2(out), s2(go), s2(dq), s2(dk), s2(dv), scale, p, seed, offset, stream())
        torch.cuda.synchronize()
        o_ref = torch.zeros(total, H, D, dtype=torch.float64, device=dev)
        g_ref = [torch.zeros(total, H, D, dtype=torch.float64, device=dev) for _ in range(3)]
        o_t = torch.zeros(total, H, D, dtype=dtype, device=dev)            # PyTorch, same precision
        g_t = [torch.zeros(total, H, D, dtype=dtype, device=dev) for _ in range(3)]
        lse_ref = torch.zeros(H, total, dtype=torch.float64, device=dev)
        start = 0
        for L in lens:
            if L == 0:
                continue
            sl = slice(start, start + L)
            q64, k64, v64 = (t[sl].transpose(0, 1).double().requires_grad_() for t in (q, k, v))  # [H, L, D]
            s = (q64 @ k64.transpose(-1, -2)) * scale
            lse_ref[:, sl] = torch.logsumexp(s, dim=-1).detach()
            P = torch.softmax(s, dim=-1)
            if p > 0:
                hi, ii, ji = np.meshgrid(np.arange(H), np.arange(L), np.arange(L), indexing="ij")
                idx = ((hi * total + start + ii) * maxlen + ji).astype(np.uint64)
                Z = torch.from_numpy(keep_mask(seed, offset, idx, p).astype(np.float64)).to(dev) / (1.0 - float(np.float32(p)))
                P = P * Z
            o64 = P @ v64
            gg = torch.autograd.grad(o64, (q64, k64, v64), go[sl].transpose(0, 1).double())
            o_ref[sl] = o64.detach().transpose(0, 1)
            for i in range(3):
                g_ref[i][sl] = gg[i].transpose(0, 1)
            qt, kt, vt = (t[sl].transpose(0, 1).detach().clone().requires_grad_() for t in (q, k, v))
            if p > 0:
                ot = (torch.softmax(((qt @ kt.transpose(-1, -2)) * scale).float(), dim=-1) * Z.float()).to(dtype) @ vt
            else:
                ot = F.scaled_dot_product_attention(qt, kt, vt, scale=scale)
            gt = torch.autograd.grad(ot, (qt, kt, vt), go[sl].transpose(0, 1))
            o_t[sl] = ot.detach().transpose(0, 1)
            for i in range(3):
                g_t[i][sl] = gt[i].transpose(0, 1)
            start += L
        errs = {"out": rel(out, o_ref), "lse": rel(lse, lse_ref), "dq": rel(dq, g_ref[0]),
                "dk": rel(dk, g_ref[1]), "dv": rel(dv, g_ref[2])}
        torch_errs = {"out": rel(o_t, o_ref), "dq": rel(g_t[0], g_ref[0]), "dk": rel(g_t[1], g_ref[1]),
                      "dv": rel(g_t[2], g_ref[2])}
        record(case, errs, torch_errs, bf16)

    # ---- bias + GELU backward ---------------------------------------------------------------
    gelu_rows = []

    def gelu_check(dtype, rows_, cols, approximate):
        bf16 = dtype == torch.bfloat16
        x = torch.randn(rows_, cols, device=dev).to(dtype)
        b = (0.5 * torch.randn(cols, device=dev)).to(dtype)
        dy = torch.randn(rows_, cols, device=dev).to(dtype)
        dx = torch.empty_like(x)
        db = torch.empty(cols, device=dev)
        fn = "bert4j_bias_gelu_backward_bf16_cuda" if bf16 else "bert4j_bias_gelu_backward_f32_cuda"
        call(fn, ptr(dy), ptr(x), ptr(b), ptr(dx), ptr(db), rows_, cols, cols, cols, cols, approximate, stream())
        torch.cuda.synchronize()
        h = (x.float() + b.float()).double().requires_grad_()  # the fp32 sum, as the kernel
        y = F.gelu(h, approximate="tanh" if approximate else "none")
        (gh,) = torch.autograd.grad(y, (h,), dy.double())
        e_dx, e_db = rel(dx, gh), rel(db, gh.sum(0))
        lim_dx, lim_db = (8e-3, 1e-4) if bf16 else (1e-5, 1e-5)
        ok = e_dx <= lim_dx and e_db <= lim_db
        if not ok:
            failures.append(f"bias_gelu_backward {dtype} {approximate}: dx {e_dx:.3g}, dbias {e_db:.3g}")
        gelu_rows.append(f"| {'bf16' if bf16 else 'fp32'} | {'tanh' if approximate else 'exact'} | {rows_}x{cols} | "
                         f"{e_dx:.2e} | {e_db:.2e} | {'pass' if ok else '**FAIL**'} |")
        print(gelu_rows[-1], flush=True)

    t0 = time.time()
    # bf16 runs on the tensor-core kernels by default and on the generic ones with
    # BERT4J_CUDA_ATTENTION=generic (read by the library at each call); fp32 always generic.
    runs = [("", torch.float32), ("", torch.bfloat16), ("mma16 ", torch.bfloat16), ("generic ", torch.bfloat16)]
    for impl, dtype in (runs if args.part != "bench" else ()):
        os.environ["BERT4J_CUDA_ATTENTION"] = impl.strip() or "default"
        prefix[0] = impl
        for D in (32, 64):
            for S in (1, 97, 128, 512):
                dense_check(dtype, 2, 3, S, D, padded=False, p=0.0)
            dense_check(dtype, 4, 3, 257, D, padded=True, p=0.0)
            dense_check(dtype, 2, 2, 128, D, padded=True, p=0.1)
            varlen_check(dtype, [5, 128, 1, 300, 64], 3, D, 0.0)
            varlen_check(dtype, [97, 33], 2, D, 0.1)
        if impl:
            continue
        for approximate in (0, 1):
            gelu_check(dtype, 4096, 3072, approximate)
            gelu_check(dtype, 7, 385, approximate)
    os.environ["BERT4J_CUDA_ATTENTION"] = "default"
    check_s = time.time() - t0

    # ---- benchmark ----------------------------------------------------------------------------
    from torch.nn.attention import SDPBackend, sdpa_kernel

    iters = 20 if args.quick else 100

    def timed(fn):
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / iters  # ms

    bench_rows = []
    # Batch 32 (the shapes; at seq 128 a call is a few microseconds of GPU work, so the
    # host-side cost of launching from Python shows) and 16,384 tokens per call (GPU-bound).
    shapes = ((32, 12, 128), (32, 12, 512), (128, 12, 128), (128, 12, 512), (128, 16, 128), (32, 16, 512))
    for (B, H, S) in (shapes if args.part != "check" else ()):
        D = 64
        q, k, v, go = (torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16) for _ in range(4))
        out, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
        lse = torch.empty(B, H, S, device=dev)
        st = strides3(q, (0, 1, 2))
        scale = 1.0 / math.sqrt(D)

        def ours_fwd():
            call("bert4j_attention_forward_cuda", BF16_DTYPE, ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), B, H, S,
                 S, D, st, st, st, st, None, None, None, scale, 0.0, 0, 0, stream())

        def ours_bwd():
            call("bert4j_attention_backward_cuda", BF16_DTYPE, ptr(q), ptr(k), ptr(v), ptr(out), ptr(go), ptr(lse),
                 ptr(dq), ptr(dk), ptr(dv), B, H, S, S, D, st, st, st, st, st, st, st, st, None, None, None,
                 scale, 0.0, 0, 0, stream())

        def ours_both():
            ours_fwd()
            ours_bwd()

        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))

        def torch_fwd():
            with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                F.scaled_dot_product_attention(q, k, v, scale=scale)

        def torch_both():
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                o = F.scaled_dot_product_attention(qg, kg, vg, scale=scale)
            torch.autograd.grad(o, (qg, kg, vg), go)

        # sanity: our forward equals flash's within bf16 rounding
        ours_fwd()
        with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            ref = F.scaled_dot_product_attention(q, k, v, scale=scale)
        torch.cuda.synchronize()
        agree = (out.float() - ref.float()).abs().max().item()

        # Host cost of one bert4j forward call (ctypes + validation + launch), measured without
        # waiting for the GPU: when it approaches the kernel time, the timings are launch-bound.
        torch.cuda.synchronize()
        h0 = time.perf_counter()
        for _ in range(20):
            ours_fwd()
        host_us = (time.perf_counter() - h0) / 20 * 1e6
        torch.cuda.synchronize()

        fl = 4.0 * B * H * S * S * D
        t_of, t_tf = timed(ours_fwd), timed(torch_fwd)
        t_ob, t_tb = timed(ours_both), timed(torch_both)
        os.environ["BERT4J_CUDA_ATTENTION"] = "mma16"
        t_mf, t_mb = timed(ours_fwd), timed(ours_both)
        os.environ["BERT4J_CUDA_ATTENTION"] = "generic"
        t_gf, t_gb = timed(ours_fwd), timed(ours_both)
        os.environ["BERT4J_CUDA_ATTENTION"] = "default"
        tf = lambda flops, ms: flops / (ms * 1e-3) / 1e12
        bench_rows.append(
            f"| {B}x{H}x{S}x{D} | {t_of:.3f} ({tf(fl, t_of):.1f}) | {t_tf:.3f} ({tf(fl, t_tf):.1f}) | {t_tf / t_of:.2f} | "
            f"{t_ob:.3f} ({tf(3.5 * fl, t_ob):.1f}) | {t_tb:.3f} ({tf(3.5 * fl, t_tb):.1f}) | {t_tb / t_ob:.2f} | "
            f"{t_mf:.3f} | {t_mb:.3f} | {t_gf:.3f} | {t_gb:.3f} | {agree:.1e} | {host_us:.0f} |")
        print(bench_rows[-1], flush=True)
        if (B, H, S) == (32, 12, 512):
            # Per-kernel split of bert4j's forward + backward and of flash's (printed only).
            try:
                from torch.profiler import ProfilerActivity, profile
                for name, fn in (("bert4j", ours_both), ("flash", torch_both)):
                    with profile(activities=[ProfilerActivity.CUDA]) as prof:
                        for _ in range(10):
                            fn()
                        torch.cuda.synchronize()
                    print(f"-- {name} kernels, 10 x forward+backward, 32x12x512x64:")
                    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=70))
            except Exception as e:  # the profiler is a diagnostic, never a failure
                print(f"profiler unavailable: {e}")

    props = torch.cuda.get_device_properties(0)
    with open(args.out, "w") as f:
        f.write("# bert4j CUDA kernels on GPU\n\n")
        f.write(f"- device: {props.name} ({props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor}); "
                f"torch {torch.__version__} (CUDA {torch.version.cuda}); python {platform.python_version()}\n")
        f.write(f"- library: `{os.path.basename(args.lib)}`; part: {args.part}; checks took {check_s:.1f} s\n")
        f.write(f"- result: {'all checks passed' if not failures else str(len(failures)) + ' check(s) FAILED'}\n\n")
        if args.part != "bench":
            f.write("## Attention correctness (max |err| / max |ref| vs float64; PyTorch same-precision error in parentheses)\n\n")
            f.write("Limits: max(2 x PyTorch's same-precision error, 1e-4 fp32 / 4e-3 bf16). lse error is absolute-relative to max |lse|.\n\n")
            f.write("| case | out | lse | dq | dk | dv | verdict |\n| --- | --- | --- | --- | --- | --- | --- |\n")
            f.write("\n".join(rows) + "\n\n")
            f.write("## bias + GELU backward (max |err| / max |ref| vs float64 autograd)\n\n")
            f.write("| dtype | GELU | shape | dx | dbias | verdict |\n| --- | --- | --- | --- | --- | --- |\n")
            f.write("\n".join(gelu_rows) + "\n\n")
        if args.part != "check":
            f.write("## Attention speed, bf16, no mask, [B, H, S, D] contiguous\n\n")
            f.write(f"ms per call (TFLOP/s); CUDA events over {iters} calls after 10 warm-up calls. FLOPs: forward "
                    "4·B·H·S²·D, backward 2.5x forward, so forward+backward 3.5x. Reference: PyTorch "
                    "`sdpa_kernel(SDPBackend.FLASH_ATTENTION)`; ratio = PyTorch time / bert4j time (> 1: bert4j faster). "
                    "bert4j forward+backward includes its rowsum, dQ and dK/dV passes and the scratch allocation. "
                    "bert4j runs its tensor-core kernels (32 query rows per warp in the forward and dQ kernels); "
                    "'mma16' columns: the same with 16 rows per warp (BERT4J_CUDA_ATTENTION=mma16); 'generic' columns: "
                    "its generic kernels (wmma through shared memory, BERT4J_CUDA_ATTENTION=generic); in ms.\n\n")
            f.write("| B x H x S x D | bert4j fwd | flash fwd | ratio | bert4j fwd+bwd | flash fwd+bwd | ratio | mma16 fwd | mma16 fwd+bwd | generic fwd | generic fwd+bwd | max abs(out - flash) | bert4j host µs/fwd call |\n")
            f.write("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
            f.write("\n".join(bench_rows) + "\n")
        if failures:
            f.write("\n## Failures\n\n" + "\n".join(f"- {x}" for x in failures) + "\n")
    print(f"\nwrote {args.out}")
    if failures:
        print("FAILED checks:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
