// CPU fused attention (forward: out + lse; backward: dq, dk, dv) against a float64 reference
// that materialises the whole softmax, on seeded random inputs: both code paths (scalar,
// AVX2+FMA), sequence lengths 1/7/97/128/257/512, head dims 32/64 (and 1/8/40 for the tails),
// [B,H,S,D], [B,S,H,D], padded and fused-QKV [B,S,3,H,D] layouts, key lengths, additive masks
// (broadcast and full), fully masked rows, dropout, varlen packing, 1 vs N threads, every
// argument the entry points must reject, and Philox-4x32-10 known-answer vectors.
//
// Error measure: per tensor, max |got - ref| / max |ref| (relative to the tensor's magnitude;
// lse: absolute, lse is O(log seq)). Tolerance, per convention 1: the kernel passes when its
// error is <= 2x that of a plain fp32 implementation (the same materialised algorithm in
// float, run here on the same inputs) or <= 1e-5 (fp32 within ~1e-5 relative). The plain
// fp32 error is ~1e-7..1e-6 for out and 1e-7..3e-6 for the gradients (dS = P (dP - D) cancels);
// the measured maxima are printed at the end.

#include <cinttypes>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../src/common/philox.h"
#include "../src/cpu/attention.h"
#include "bert4j_kernels.h"
#include "test_util.h"

using bert4j::cpu::AttentionArgs;
using bert4j::cpu::Isa;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

// ---- Philox known answers (Random123 kat_vectors, philox4x32_10) ---------------------------

void test_philox_kat() {
    struct Kat {
        uint32_t ctr[4], key[2], out[4];
    } kats[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (const auto& k : kats) {
        bert4j::Philox4 c{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}};
        const bert4j::Philox4 r = bert4j::philox4x32_10(c, k.key[0], k.key[1]);
        for (int i = 0; i < 4; ++i)
            CHECK(r.x[i] == k.out[i], "philox KAT ctr %08x: word %d got %08x want %08x", k.ctr[0], i,
                  r.x[i], k.out[i]);
    }
    // bert4j_dropout_keep follows the header's formula exactly, and keeps ~(1 - p).
    const uint64_t seed = 0x0123456789abcdefULL, offset = 0xfedcba9876543210ULL;
    for (float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
        const uint32_t thr = static_cast<uint32_t>(std::min(4294967295.0, std::floor(p * 4294967296.0)));
        int64_t kept = 0;
        const int64_t n = 200000;
        int mismatches = 0;
        for (int64_t idx = 0; idx < n; ++idx) {
            const uint64_t block = static_cast<uint64_t>(idx) >> 2;
            bert4j::Philox4 c{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                               static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}};
            const uint32_t bits = bert4j::philox4x32_10(c, static_cast<uint32_t>(seed),
                                                        static_cast<uint32_t>(seed >> 32)).x[idx & 3];
            const int keep = bert4j_dropout_keep(seed, offset, idx, p);
            mismatches += keep != (bits >= thr ? 1 : 0);
            kept += keep;
        }
        CHECK(mismatches == 0, "dropout_keep p=%g: %d indices differ from the header formula", p, mismatches);
        const double rate = double(kept) / n;  // binomial sd <= 0.0012
        CHECK(std::fabs(rate - (1.0 - p)) < 0.006, "dropout_keep p=%g: keep rate %g", p, rate);
    }
    CHECK(bert4j_dropout_keep(1, 2, 3, 0.0f) == 1, "p = 0 must keep everything");
}

// ---- problem description and layouts ------------------------------------------------------

enum class Layout { BHSD, BSHD, Padded, FusedQKV };
const char* layout_name(Layout l) {
    switch (l) {
        case Layout::BHSD: return "BHSD";
        case Layout::BSHD: return "BSHD";
        case Layout::Padded: return "BHSD+pad";
        default: return "QKV";
    }
}
enum class MaskKind { None, Padding, Full };
const char* mask_name(MaskKind m) {
    return m == MaskKind::None ? "none" : (m == MaskKind::Padding ? "pad[B,1,1,Sk]" : "full");
}

// A strided [B, H, S, D] view into a buffer (the buffer may hold q, k and v together).
struct View {
    float* base;
    int64_t st[3];
    float& at(int64_t b, int64_t h, int64_t s, int64_t d) const {
        return base[b * st[0] + h * st[1] + s * st[2] + d];
    }
};

// Three [B,H,S,D] views (q/k/v or dq/dk/dv, or out/dout/unused) sharing one buffer.
struct Triple {
    std::vector<float> buf;
    View v[3];
};

Triple make_triple(Layout l, int64_t B, int64_t H, int64_t Sq, int64_t Sk, int64_t D) {
    Triple t;
    const int64_t S[3] = {Sq, Sk, Sk};
    if (l == Layout::FusedQKV) {  // [B, S, 3, H, D], Sq == Sk
        t.buf.assign(B * Sq * 3 * H * D + 1, 0.0f);
        for (int i = 0; i < 3; ++i)
            t.v[i] = View{nullptr, {Sq * 3 * H * D, D, 3 * H * D}};
        for (int i = 0; i < 3; ++i) t.v[i].base = t.buf.data() + i * H * D;
        return t;
    }
    int64_t offs[3], total = 0;
    int64_t st[3][3];
    for (int i = 0; i < 3; ++i) {
        if (l == Layout::BHSD) {
            st[i][0] = H * S[i] * D; st[i][1] = S[i] * D; st[i][2] = D;
        } else if (l == Layout::BSHD) {
            st[i][0] = S[i] * H * D; st[i][1] = D; st[i][2] = H * D;
        } else {  // rows padded to D + 5
            st[i][0] = H * S[i] * (D + 5); st[i][1] = S[i] * (D + 5); st[i][2] = D + 5;
        }
        offs[i] = total;
        total += B * st[i][0] + 1;
    }
    t.buf.assign(total, 0.0f);
    for (int i = 0; i < 3; ++i) t.v[i] = View{t.buf.data() + offs[i], {st[i][0], st[i][1], st[i][2]}};
    return t;
}

void fill(const View& x, int64_t B, int64_t H, int64_t S, int64_t D, std::mt19937& rng, float sd) {
    std::normal_distribution<float> n(0.0f, sd);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t s = 0; s < S; ++s)
                for (int64_t d = 0; d < D; ++d) x.at(b, h, s, d) = n(rng);
}

// ---- the materialising reference, one head, in T = double or float -------------------------

struct HeadIn {
    int64_t lq, lk, D;            // lk = visible keys
    std::function<double(int64_t, int64_t)> mask;   // additive, may return -inf; null = none
    std::function<double(int64_t, int64_t)> drop;   // keep factor (0 or 1/(1-p)); null = none
};

template <class T>
struct HeadRef {
    std::vector<T> out, dq, dk, dv, lse;
};

// q, k, v, dout: row-major [l x D] in T.
template <class T>
HeadRef<T> reference_head(const HeadIn& in, const std::vector<T>& q, const std::vector<T>& k,
                          const std::vector<T>& v, const std::vector<T>& dout, T scale) {
    const int64_t lq = in.lq, lk = in.lk, D = in.D;
    HeadRef<T> r;
    r.out.assign(lq * D, 0); r.dq.assign(lq * D, 0); r.dk.assign(lk * D, 0); r.dv.assign(lk * D, 0);
    r.lse.assign(lq, 0);
    std::vector<T> p(lk), f(lk), dp(lk);
    for (int64_t i = 0; i < lq; ++i) {
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < lk; ++j) {
            T s = 0;
            for (int64_t d = 0; d < D; ++d) s += q[i * D + d] * k[j * D + d];
            s = s * scale + (in.mask ? static_cast<T>(in.mask(i, j)) : T(0));
            p[j] = s;
            m = std::max(m, s);
        }
        if (m == -std::numeric_limits<T>::infinity()) {  // no visible key
            r.lse[i] = m;
            continue;
        }
        T sum = 0;
        for (int64_t j = 0; j < lk; ++j) sum += (p[j] = std::exp(p[j] - m));
        r.lse[i] = m + std::log(sum);
        for (int64_t j = 0; j < lk; ++j) {
            p[j] /= sum;
            f[j] = in.drop ? static_cast<T>(in.drop(i, j)) : T(1);
        }
        // out = (P o F) V;  dPd = dO Vᵀ;  dP = dPd o F;  dS = P o (dP - sum_j P dP)
        T dsum = 0;
        for (int64_t j = 0; j < lk; ++j) {
            T g = 0;
            for (int64_t d = 0; d < D; ++d) {
                r.out[i * D + d] += p[j] * f[j] * v[j * D + d];
                g += dout[i * D + d] * v[j * D + d];
                r.dv[j * D + d] += p[j] * f[j] * dout[i * D + d];
            }
            dp[j] = g * f[j];
            dsum += p[j] * dp[j];
        }
        for (int64_t j = 0; j < lk; ++j) {
            const T ds = p[j] * (dp[j] - dsum) * scale;
            for (int64_t d = 0; d < D; ++d) {
                r.dq[i * D + d] += ds * k[j * D + d];
                r.dk[j * D + d] += ds * q[i * D + d];
            }
        }
    }
    return r;
}

// ---- error bookkeeping ----------------------------------------------------------------------

struct Err {  // running max |got - ref| and max |ref| of one tensor
    double diff = 0, mag = 0;
    bool nan = false;
    void add(double got, double ref) {
        if (std::isnan(got)) nan = true;
        if (std::isinf(ref) || std::isinf(got)) {
            if (got != ref) diff = kInf;
            return;
        }
        diff = std::max(diff, std::fabs(got - ref));
        mag = std::max(mag, std::fabs(ref));
    }
    double rel() const { return nan ? kInf : (mag > 0 ? diff / mag : diff); }
};

struct Summary {
    double worst[5] = {0, 0, 0, 0, 0};       // out, lse, dq, dk, dv: kernel vs float64
    double worst_ratio[5] = {0, 0, 0, 0, 0};  // kernel error / plain fp32 error
};
Summary g_summary[3];  // by Isa (scalar, avx2, avx512)
const char* isa_str(Isa isa) {
    return isa == Isa::Scalar ? "scalar" : isa == Isa::Avx2Fma ? "avx2" : "avx512";
}
const char* kNames[5] = {"out", "lse", "dq", "dk", "dv"};

// ---- one dense case -------------------------------------------------------------------------

struct Case {
    int64_t B, H, Sq, Sk, D;
    Layout layout;
    bool key_lengths;
    MaskKind mask;
    float p;
    Isa isa;
    int threads;
    bool fully_masked_rows = false;  // force some rows with no visible key
};

struct Outputs {
    std::vector<float> out_buf, lse;
    Triple grads;
    View out;
};

AttentionArgs dense_args(const Case& c, const Triple& qkv, const View& out, float* lse,
                         const int32_t* kl, const float* mask, const int64_t* ms, float scale,
                         uint64_t seed, uint64_t offset) {
    AttentionArgs a;
    a.q = qkv.v[0].base; a.k = qkv.v[1].base; a.v = qkv.v[2].base;
    a.units = c.B; a.heads = c.H; a.seq_q = c.Sq; a.seq_k = c.Sk; a.head_dim = c.D;
    std::memcpy(a.qs, qkv.v[0].st, sizeof a.qs);
    std::memcpy(a.ks, qkv.v[1].st, sizeof a.ks);
    std::memcpy(a.vs, qkv.v[2].st, sizeof a.vs);
    std::memcpy(a.os, out.st, sizeof a.os);
    a.key_lengths = kl; a.mask = mask;
    if (ms) std::memcpy(a.ms, ms, sizeof a.ms);
    a.scale = scale; a.dropout_p = c.p; a.seed = seed; a.offset = offset;
    (void)lse;
    return a;
}

// Tolerance check of one tensor (see the header comment).
void judge(const Case& c, int which, const Err& e, const Err& plain) {
    const double err = e.rel(), perr = plain.rel();
    Summary& s = g_summary[static_cast<int>(c.isa)];
    s.worst[which] = std::max(s.worst[which], err);
    if (perr > 0) s.worst_ratio[which] = std::max(s.worst_ratio[which], err / perr);
    const bool ok = !e.nan && (err <= 1e-5 || err <= 2 * perr);
    CHECK(ok, "%s B%lld H%lld Sq%lld Sk%lld D%lld %s kl=%d mask=%s p=%g thr=%d: %s error %.3g "
              "(plain fp32 %.3g)%s",
          isa_str(c.isa), (long long)c.B, (long long)c.H,
          (long long)c.Sq, (long long)c.Sk, (long long)c.D, layout_name(c.layout), c.key_lengths,
          mask_name(c.mask), c.p, c.threads, kNames[which], err, perr, e.nan ? " NaN" : "");
}

struct DenseResult {
    std::vector<float> all;  // out, lse, dq, dk, dv flattened in logical order (for comparisons)
};

DenseResult run_dense(const Case& c, uint32_t seed_in) {
    std::mt19937 rng(seed_in);
    const int64_t B = c.B, H = c.H, Sq = c.Sq, Sk = c.Sk, D = c.D;
    Triple qkv = make_triple(c.layout, B, H, Sq, Sk, D);
    fill(qkv.v[0], B, H, Sq, D, rng, 1.0f);
    fill(qkv.v[1], B, H, Sk, D, rng, 1.0f);
    fill(qkv.v[2], B, H, Sk, D, rng, 1.0f);
    // out and dout: BSHD/padded like q (never the fused layout: out has no k/v neighbours)
    const Layout ol = c.layout == Layout::FusedQKV ? Layout::BSHD : c.layout;
    Triple od = make_triple(ol, B, H, Sq, Sq, D);  // v[0] = out, v[1] = dout
    fill(od.v[1], B, H, Sq, D, rng, 1.0f);
    Triple g = make_triple(c.layout, B, H, Sq, Sk, D);  // dq, dk, dv (fused: one dqkv buffer)
    for (auto& x : g.buf) x = 777.0f;  // must be overwritten (or left alone in padding)
    std::vector<float> lse(B * H * Sq, 555.0f);

    std::vector<int32_t> kl(B);
    std::uniform_int_distribution<int> len(0, static_cast<int>(Sk));
    for (int64_t b = 0; b < B; ++b)
        kl[b] = c.key_lengths ? (b == 0 ? static_cast<int32_t>(Sk) : len(rng)) : static_cast<int32_t>(Sk);
    if (c.fully_masked_rows && B > 1) kl[1] = 0;
    std::vector<float> mask;
    int64_t ms[3] = {0, 0, 0};
    if (c.mask == MaskKind::Padding) {  // [B, 1, 1, Sk]: 0 or -inf (a padding mask)
        mask.assign(B * Sk, 0.0f);
        ms[0] = Sk;
        for (int64_t b = 0; b < B; ++b) {
            const int64_t valid = b == 0 ? Sk : std::uniform_int_distribution<int64_t>(1, Sk)(rng);
            for (int64_t j = valid; j < Sk; ++j) mask[b * Sk + j] = -kInfF;
        }
    } else if (c.mask == MaskKind::Full) {  // [B, H, Sq, Sk] random, with some -inf
        mask.assign(B * H * Sq * Sk, 0.0f);
        ms[0] = H * Sq * Sk; ms[1] = Sq * Sk; ms[2] = Sk;
        std::normal_distribution<float> n(0.0f, 1.0f);
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        for (auto& x : mask) x = u(rng) < 0.1f ? -kInfF : n(rng);
        if (c.fully_masked_rows)  // query row 2 of (b 0, h 0) sees nothing
            for (int64_t j = 0; j < Sk && Sq > 2; ++j) mask[2 * Sk + j] = -kInfF;
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const uint64_t dseed = 0x9e3779b97f4a7c15ULL ^ seed_in, doff = 12345;

    AttentionArgs a = dense_args(c, qkv, od.v[0], lse.data(), c.key_lengths ? kl.data() : nullptr,
                                 mask.empty() ? nullptr : mask.data(), ms, scale, dseed, doff);
    if (c.fully_masked_rows && !c.key_lengths) a.key_lengths = kl.data();
    const int32_t* klp = a.key_lengths;
    a.out = od.v[0].base;
    a.lse = lse.data();
    bert4j::cpu::attention_forward_launch(a, c.isa, c.threads);
    AttentionArgs b = a;
    b.out = nullptr; b.lse = nullptr;
    b.out_in = od.v[0].base; b.dout = od.v[1].base; b.lse_in = lse.data();
    std::memcpy(b.dos, od.v[1].st, sizeof b.dos);
    b.dq = g.v[0].base; b.dk = g.v[1].base; b.dv = g.v[2].base;
    std::memcpy(b.dqs, g.v[0].st, sizeof b.dqs);
    std::memcpy(b.dks, g.v[1].st, sizeof b.dks);
    std::memcpy(b.dvs, g.v[2].st, sizeof b.dvs);
    bert4j::cpu::attention_backward_launch(b, c.isa, c.threads);

    Err e[5], pe[5];
    DenseResult res;
    for (int64_t bb = 0; bb < B; ++bb) {
        for (int64_t h = 0; h < H; ++h) {
            const int64_t lk = klp ? klp[bb] : Sk;
            HeadIn in{Sq, lk, D, nullptr, nullptr};
            if (!mask.empty())
                in.mask = [&, bb, h](int64_t i, int64_t j) {
                    return double(mask[bb * ms[0] + h * ms[1] + i * ms[2] + j]);
                };
            if (c.p > 0)
                in.drop = [&, bb, h](int64_t i, int64_t j) {
                    const uint64_t idx = ((uint64_t(bb) * H + h) * Sq + i) * Sk + j;
                    return bert4j_dropout_keep(dseed, doff, idx, c.p) ? 1.0 / (1.0 - double(c.p)) : 0.0;
                };
            std::vector<double> q(Sq * D), k(lk * D), v(lk * D), dout(Sq * D);
            std::vector<float> qf(Sq * D), kf(lk * D), vf(lk * D), doutf(Sq * D);
            for (int64_t i = 0; i < Sq; ++i)
                for (int64_t d = 0; d < D; ++d) {
                    qf[i * D + d] = qkv.v[0].at(bb, h, i, d);
                    doutf[i * D + d] = od.v[1].at(bb, h, i, d);
                }
            for (int64_t j = 0; j < lk; ++j)
                for (int64_t d = 0; d < D; ++d) {
                    kf[j * D + d] = qkv.v[1].at(bb, h, j, d);
                    vf[j * D + d] = qkv.v[2].at(bb, h, j, d);
                }
            q.assign(qf.begin(), qf.end()); k.assign(kf.begin(), kf.end());
            v.assign(vf.begin(), vf.end()); dout.assign(doutf.begin(), doutf.end());
            const HeadRef<double> r = reference_head<double>(in, q, k, v, dout, double(scale));
            const HeadRef<float> pf = reference_head<float>(in, qf, kf, vf, doutf, scale);
            for (int64_t i = 0; i < Sq; ++i) {
                const float lg = lse[(bb * H + h) * Sq + i];
                e[1].add(lg, r.lse[i]);
                pe[1].add(pf.lse[i], r.lse[i]);
                res.all.push_back(lg);
                for (int64_t d = 0; d < D; ++d) {
                    const float o = od.v[0].at(bb, h, i, d), gq = g.v[0].at(bb, h, i, d);
                    e[0].add(o, r.out[i * D + d]);
                    pe[0].add(pf.out[i * D + d], r.out[i * D + d]);
                    e[2].add(gq, r.dq[i * D + d]);
                    pe[2].add(pf.dq[i * D + d], r.dq[i * D + d]);
                    res.all.push_back(o);
                    res.all.push_back(gq);
                }
            }
            for (int64_t j = 0; j < Sk; ++j)
                for (int64_t d = 0; d < D; ++d) {
                    const float gk = g.v[1].at(bb, h, j, d), gv = g.v[2].at(bb, h, j, d);
                    const double rk = j < lk ? r.dk[j * D + d] : 0.0, rv = j < lk ? r.dv[j * D + d] : 0.0;
                    e[3].add(gk, rk);
                    e[4].add(gv, rv);
                    if (j < lk) {
                        pe[3].add(pf.dk[j * D + d], rk);
                        pe[4].add(pf.dv[j * D + d], rv);
                    }
                    res.all.push_back(gk);
                    res.all.push_back(gv);
                }
        }
    }
    for (int w = 0; w < 5; ++w) judge(c, w, e[w], pe[w]);
    // Padding of the padded layout must be untouched (the outputs wrote only D columns).
    if (c.layout == Layout::Padded) {
        int bad = 0;
        for (int64_t bb = 0; bb < B; ++bb)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t i = 0; i < Sq; ++i)
                    for (int64_t d = D; d < D + 5; ++d) bad += g.v[0].at(bb, h, i, d) != 777.0f;
        CHECK(bad == 0, "padded layout: %d padding elements of dq were written", bad);
    }
    return res;
}

// ---- varlen ---------------------------------------------------------------------------------

void run_varlen(const std::vector<int32_t>& lens, int64_t H, int64_t D, float p, Isa isa, int threads,
                uint32_t seed_in) {
    std::mt19937 rng(seed_in);
    std::vector<int32_t> cu(1, 0);
    int64_t maxlen = 0;
    for (int32_t l : lens) {
        cu.push_back(cu.back() + l);
        maxlen = std::max<int64_t>(maxlen, l);
    }
    maxlen += 3;  // max_seqlen may exceed the longest sequence; dropout indices use it
    const int64_t T = cu.back(), N = static_cast<int64_t>(lens.size());
    // q, k, v as a fused [T, 3, H, D] projection; out/dout/dq/dk/dv as [T, H, D]
    std::vector<float> qkv(T * 3 * H * D + 1), out(T * H * D + 1), dout(T * H * D + 1);
    std::vector<float> dq(T * H * D + 1, 777.0f), dk(T * H * D + 1, 777.0f), dv(T * H * D + 1, 777.0f);
    std::vector<float> lse(H * T + 1, 555.0f);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (auto& x : qkv) x = n(rng);
    for (auto& x : dout) x = n(rng);
    const int64_t qkv_st[2] = {3 * H * D, D}, st[2] = {H * D, D};
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const uint64_t dseed = 42 + seed_in, doff = 7;
    AttentionArgs a;
    a.q = qkv.data(); a.k = qkv.data() + H * D; a.v = qkv.data() + 2 * H * D;
    a.out = out.data(); a.lse = lse.data();
    a.cu_seqlens = cu.data(); a.total_tokens = T; a.units = N; a.heads = H;
    a.seq_q = a.seq_k = maxlen; a.head_dim = D;
    const int64_t q3[3] = {0, qkv_st[1], qkv_st[0]}, o3[3] = {0, st[1], st[0]};
    std::memcpy(a.qs, q3, sizeof q3); std::memcpy(a.ks, q3, sizeof q3); std::memcpy(a.vs, q3, sizeof q3);
    std::memcpy(a.os, o3, sizeof o3);
    a.scale = scale; a.dropout_p = p; a.seed = dseed; a.offset = doff;
    bert4j::cpu::attention_forward_launch(a, isa, threads);
    AttentionArgs b = a;
    b.out = nullptr; b.lse = nullptr; b.out_in = out.data(); b.dout = dout.data(); b.lse_in = lse.data();
    b.dq = dq.data(); b.dk = dk.data(); b.dv = dv.data();
    std::memcpy(b.dos, o3, sizeof o3); std::memcpy(b.dqs, o3, sizeof o3);
    std::memcpy(b.dks, o3, sizeof o3); std::memcpy(b.dvs, o3, sizeof o3);
    bert4j::cpu::attention_backward_launch(b, isa, threads);

    Err e[5], pe[5];
    for (int64_t s = 0; s < N; ++s) {
        const int64_t t0 = cu[s], L = lens[s];
        for (int64_t h = 0; h < H; ++h) {
            HeadIn in{L, L, D, nullptr, nullptr};
            if (p > 0)
                in.drop = [&, t0, h](int64_t i, int64_t j) {
                    const uint64_t idx = (uint64_t(h) * T + t0 + i) * maxlen + j;
                    return bert4j_dropout_keep(dseed, doff, idx, p) ? 1.0 / (1.0 - double(p)) : 0.0;
                };
            std::vector<float> qf(L * D), kf(L * D), vf(L * D), df(L * D);
            for (int64_t i = 0; i < L; ++i)
                for (int64_t d = 0; d < D; ++d) {
                    const int64_t row = (t0 + i) * 3 * H * D + h * D + d;
                    qf[i * D + d] = qkv[row];
                    kf[i * D + d] = qkv[row + H * D];
                    vf[i * D + d] = qkv[row + 2 * H * D];
                    df[i * D + d] = dout[(t0 + i) * H * D + h * D + d];
                }
            const std::vector<double> q(qf.begin(), qf.end()), k(kf.begin(), kf.end()),
                v(vf.begin(), vf.end()), d64(df.begin(), df.end());
            const HeadRef<double> r = reference_head<double>(in, q, k, v, d64, double(scale));
            const HeadRef<float> pf = reference_head<float>(in, qf, kf, vf, df, scale);
            for (int64_t i = 0; i < L; ++i) {
                e[1].add(lse[h * T + t0 + i], r.lse[i]);
                pe[1].add(pf.lse[i], r.lse[i]);
                for (int64_t d = 0; d < D; ++d) {
                    const int64_t at = (t0 + i) * H * D + h * D + d, x = i * D + d;
                    e[0].add(out[at], r.out[x]); pe[0].add(pf.out[x], r.out[x]);
                    e[2].add(dq[at], r.dq[x]); pe[2].add(pf.dq[x], r.dq[x]);
                    e[3].add(dk[at], r.dk[x]); pe[3].add(pf.dk[x], r.dk[x]);
                    e[4].add(dv[at], r.dv[x]); pe[4].add(pf.dv[x], r.dv[x]);
                }
            }
        }
    }
    Case c{N, H, maxlen, maxlen, D, Layout::BSHD, false, MaskKind::None, p, isa, threads};
    for (int w = 0; w < 5; ++w) judge(c, w, e[w], pe[w]);
    CHECK(dq[T * H * D] == 777.0f && dk[T * H * D] == 777.0f, "varlen wrote past the last token");
}

// ---- bad arguments through the public entry points ------------------------------------------

void expect_error(int status, int want, const char* needle, const char* what) {
    const std::string msg = bert4j_last_error();
    CHECK(status == want, "%s: status %d, want %d (%s)", what, status, want, msg.c_str());
    CHECK(msg.find(needle) != std::string::npos, "%s: message \"%s\" lacks \"%s\"", what,
          msg.c_str(), needle);
}

void test_bad_arguments() {
    const int64_t B = 2, H = 2, S = 5, D = 4;
    std::vector<float> q(B * H * S * D, 0.1f), k(q), v(q), out(q.size()), dout(q), dq(q.size()),
        dk(q.size()), dv(q.size()), lse(B * H * S), mask(B * S);
    const int64_t st[3] = {H * S * D, S * D, D};
    const int64_t ms[3] = {S, 0, 0};
    const int32_t kl[2] = {5, 3};
    const auto fwd = [&](const float* qq, float* o, int64_t b, int64_t h, int64_t sq, int64_t sk,
                         int64_t d, const int64_t* qs, const int64_t* os, const int32_t* kls,
                         const float* m, const int64_t* mst, float scale, float p) {
        return bert4j_attention_forward_f32(qq, k.data(), v.data(), o, lse.data(), b, h, sq, sk, d,
                                            qs, st, st, os, kls, m, mst, scale, p, 1, 2);
    };
    const float* Q = q.data();
    float* O = out.data();
    const auto F = "bert4j_attention_forward_f32";
    (void)F;
    expect_error(fwd(Q, O, -1, H, S, S, D, st, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "batch must be >= 0, got -1", "batch < 0");
    expect_error(fwd(Q, O, B, -2, S, S, D, st, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "heads must be >= 0", "heads < 0");
    expect_error(fwd(Q, O, B, H, -1, S, D, st, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "seq_q must be >= 0", "seq_q < 0");
    expect_error(fwd(Q, O, B, H, S, -1, D, st, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "seq_k must be >= 0", "seq_k < 0");
    expect_error(fwd(Q, O, B, H, S, S, -1, st, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "head_dim must be >= 0", "head_dim < 0");
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, kl, nullptr, nullptr, NAN, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "scale must be finite", "scale NaN");
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, kl, nullptr, nullptr, 1, 1.0f),
                 BERT4J_ERR_INVALID_ARGUMENT, "dropout_p must be in [0, 1), got 1", "p = 1");
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, kl, nullptr, nullptr, 1, -0.5f),
                 BERT4J_ERR_INVALID_ARGUMENT, "dropout_p must be in [0, 1)", "p < 0");
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, kl, nullptr, nullptr, 1, NAN),
                 BERT4J_ERR_INVALID_ARGUMENT, "dropout_p", "p NaN");
    expect_error(fwd(nullptr, O, B, H, S, S, D, st, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_NULL_POINTER, "q is NULL", "q NULL");
    expect_error(fwd(Q, nullptr, B, H, S, S, D, st, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_NULL_POINTER, "out is NULL", "out NULL");
    expect_error(fwd(Q, O, B, H, S, S, D, nullptr, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_NULL_POINTER, "q_strides is NULL (expected 3 strides: batch, head, seq)",
                 "q_strides NULL");
    const int64_t neg[3] = {H * S * D, -S * D, D};
    expect_error(fwd(Q, O, B, H, S, S, D, neg, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "q_strides[1] (batch, head, seq) must be >= 0", "negative stride");
    const int64_t overlap[3] = {H * S * D, S * D, D - 1};
    expect_error(fwd(Q, O, B, H, S, S, D, st, overlap, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "out is an output but its strides", "overlapping out");
    const int64_t bcast[3] = {H * S * D, 0, D};  // a broadcast input is fine, an output is not
    CHECK(fwd(Q, O, B, H, S, S, D, bcast, st, kl, nullptr, nullptr, 1, 0) == BERT4J_OK,
          "broadcast q: %s", bert4j_last_error());
    expect_error(fwd(Q, O, B, H, S, S, D, st, bcast, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "out is an output", "broadcast out");
    const int64_t huge[3] = {std::numeric_limits<int64_t>::max() - 10, S * D, D};
    expect_error(fwd(Q, O, B, H, S, S, D, huge, st, kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "q strides overflow int64", "stride overflow");
    const int32_t bad_kl[2] = {5, 6};
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, bad_kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "key_lengths[1] must be in [0, seq_k = 5], got 6", "key_len > seq_k");
    const int32_t neg_kl[2] = {-1, 3};
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, neg_kl, nullptr, nullptr, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "key_lengths[0]", "key_len < 0");
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, kl, mask.data(), nullptr, 1, 0),
                 BERT4J_ERR_NULL_POINTER, "mask_strides is NULL", "mask without strides");
    const int64_t mneg[3] = {S, -1, 0};
    expect_error(fwd(Q, O, B, H, S, S, D, st, st, kl, mask.data(), mneg, 1, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "mask_strides[1]", "mask stride < 0");
    CHECK(fwd(Q, O, B, H, S, S, D, st, st, kl, mask.data(), ms, 1, 0) == BERT4J_OK, "valid mask: %s",
          bert4j_last_error());
    CHECK(std::strcmp(bert4j_last_error(), "") == 0, "message not cleared after success");
    // empty problems are no-ops with NULL pointers
    CHECK(fwd(nullptr, nullptr, 0, H, S, S, D, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 0) == BERT4J_OK,
          "batch 0: %s", bert4j_last_error());
    CHECK(bert4j_attention_forward_f32(nullptr, nullptr, nullptr, nullptr, nullptr, B, H, 0, 0, D,
                                       nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                       1, 0, 0, 0) == BERT4J_OK,
          "seq 0: %s", bert4j_last_error());

    // head_dim 0: nothing but lse, which is log(visible keys) (all scores are 0)
    {
        std::vector<float> l0(B * H * S, 1.0f);
        CHECK(bert4j_attention_forward_f32(nullptr, nullptr, nullptr, nullptr, l0.data(), B, H, S, S, 0,
                                           nullptr, nullptr, nullptr, nullptr, kl, nullptr, nullptr, 1,
                                           0, 0, 0) == BERT4J_OK,
              "head_dim 0: %s", bert4j_last_error());
        CHECK(std::fabs(l0[0] - std::log(5.0f)) < 1e-6f && std::fabs(l0[H * S] - std::log(3.0f)) < 1e-6f,
              "head_dim 0: lse %g %g", l0[0], l0[H * S]);
        CHECK(bert4j_attention_backward_f32(nullptr, nullptr, nullptr, nullptr, nullptr, l0.data(), nullptr,
                                            nullptr, nullptr, B, H, S, S, 0, nullptr, nullptr, nullptr,
                                            nullptr, nullptr, nullptr, nullptr, nullptr, kl, nullptr,
                                            nullptr, 1, 0, 0, 0) == BERT4J_OK,
              "head_dim 0 backward: %s", bert4j_last_error());
    }

    // backward
    const auto bwd = [&](const float* l, float* gq, const int64_t* dqs, const int64_t* dks) {
        return bert4j_attention_backward_f32(q.data(), k.data(), v.data(), out.data(), dout.data(), l,
                                             gq, dk.data(), dv.data(), B, H, S, S, D, st, st, st, st,
                                             st, dqs, dks, st, kl, nullptr, nullptr, 0.5f, 0.0f, 1, 2);
    };
    expect_error(bwd(nullptr, dq.data(), st, st), BERT4J_ERR_NULL_POINTER, "lse is NULL", "bwd lse NULL");
    expect_error(bwd(lse.data(), nullptr, st, st), BERT4J_ERR_NULL_POINTER, "dq is NULL", "bwd dq NULL");
    expect_error(bwd(lse.data(), dq.data(), st, nullptr), BERT4J_ERR_NULL_POINTER, "dk_strides is NULL",
                 "bwd dk_strides NULL");
    expect_error(bwd(lse.data(), dq.data(), st, bcast), BERT4J_ERR_INVALID_ARGUMENT,
                 "dk is an output", "bwd dk broadcast");
    expect_error(bert4j_attention_backward_f32(q.data(), k.data(), v.data(), nullptr, dout.data(),
                                               lse.data(), dq.data(), dk.data(), dv.data(), B, H, S, S,
                                               D, st, st, st, st, st, st, st, st, nullptr, nullptr,
                                               nullptr, 0.5f, 0.0f, 1, 2),
                 BERT4J_ERR_NULL_POINTER, "out is NULL", "bwd out NULL");
    expect_error(bert4j_attention_backward_f32(q.data(), k.data(), v.data(), out.data(), nullptr,
                                               lse.data(), dq.data(), dk.data(), dv.data(), B, H, S, S,
                                               D, st, st, st, st, st, st, st, st, nullptr, nullptr,
                                               nullptr, 0.5f, 0.0f, 1, 2),
                 BERT4J_ERR_NULL_POINTER, "dout is NULL", "bwd dout NULL");
    expect_error(bert4j_attention_backward_f32(q.data(), k.data(), v.data(), out.data(), dout.data(),
                                               lse.data(), dq.data(), dk.data(), dv.data(), B, H, S, S,
                                               D, st, st, st, st, st, st, st, st, nullptr, nullptr,
                                               nullptr, 0.5f, 2.0f, 1, 2),
                 BERT4J_ERR_INVALID_ARGUMENT, "bert4j_attention_backward_f32: dropout_p", "bwd p = 2");

    // varlen
    const int64_t T = 7, vst[2] = {H * D, D};
    std::vector<float> vq(T * H * D, 0.1f), vo(T * H * D), vl(H * T);
    const auto vf = [&](const int32_t* cu, int64_t ns, int64_t tot, int64_t maxl, const int64_t* qs,
                        float* o) {
        return bert4j_attention_varlen_forward_f32(vq.data(), vq.data(), vq.data(), o, vl.data(), cu,
                                                   ns, tot, maxl, H, D, qs, vst, vst, vst, 0.5f, 0.0f,
                                                   0, 0);
    };
    const int32_t cu_ok[3] = {0, 3, 7};
    CHECK(vf(cu_ok, 2, 7, 4, vst, vo.data()) == BERT4J_OK, "varlen ok: %s", bert4j_last_error());
    expect_error(vf(nullptr, 2, 7, 4, vst, vo.data()), BERT4J_ERR_NULL_POINTER, "cu_seqlens is NULL", "cu NULL");
    const int32_t cu_0[3] = {1, 3, 7};
    expect_error(vf(cu_0, 2, 7, 4, vst, vo.data()), BERT4J_ERR_INVALID_ARGUMENT, "cu_seqlens[0] must be 0", "cu[0]");
    const int32_t cu_dec[3] = {0, 5, 4};
    expect_error(vf(cu_dec, 2, 4, 5, vst, vo.data()), BERT4J_ERR_INVALID_ARGUMENT, "non-decreasing", "cu decreasing");
    expect_error(vf(cu_ok, 2, 7, 3, vst, vo.data()), BERT4J_ERR_INVALID_ARGUMENT,
                 "sequence 1 has length 4 > max_seqlen = 3", "len > max_seqlen");
    expect_error(vf(cu_ok, 2, 8, 4, vst, vo.data()), BERT4J_ERR_INVALID_ARGUMENT,
                 "cu_seqlens[num_seqs = 2] must equal total_tokens = 8, got 7", "cu last");
    expect_error(vf(cu_ok, -1, 7, 4, vst, vo.data()), BERT4J_ERR_INVALID_ARGUMENT, "num_seqs must be >= 0", "num_seqs");
    expect_error(vf(cu_ok, 2, 7, 4, nullptr, vo.data()), BERT4J_ERR_NULL_POINTER,
                 "q_strides is NULL (expected 2 strides: token, head)", "varlen strides NULL");
    expect_error(vf(cu_ok, 2, 7, 4, vst, nullptr), BERT4J_ERR_NULL_POINTER, "out is NULL", "varlen out NULL");
    const int64_t vover[2] = {D, D};  // tokens and heads on top of each other
    expect_error(bert4j_attention_varlen_forward_f32(vq.data(), vq.data(), vq.data(), vo.data(), vl.data(),
                                                     cu_ok, 2, 7, 4, H, D, vst, vst, vst, vover, 0.5f,
                                                     0.0f, 0, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "out is an output", "varlen overlapping out");
    std::vector<float> vdq(T * H * D);
    expect_error(bert4j_attention_varlen_backward_f32(vq.data(), vq.data(), vq.data(), vo.data(), vo.data(),
                                                      nullptr, vdq.data(), vdq.data(), vdq.data(), cu_ok,
                                                      2, 7, 4, H, D, vst, vst, vst, vst, vst, vst, vst,
                                                      vst, 0.5f, 0.0f, 0, 0),
                 BERT4J_ERR_NULL_POINTER, "bert4j_attention_varlen_backward_f32: lse is NULL", "varlen bwd lse");
    expect_error(bert4j_attention_varlen_backward_f32(vq.data(), vq.data(), vq.data(), vo.data(), vo.data(),
                                                      vl.data(), vdq.data(), vdq.data(), vdq.data(), cu_ok,
                                                      2, 7, 4, H, D, vst, vst, vst, vst, vst, vst, vst,
                                                      vst, 0.5f, -1.0f, 0, 0),
                 BERT4J_ERR_INVALID_ARGUMENT, "dropout_p", "varlen bwd p");
    CHECK(bert4j_attention_varlen_forward_f32(nullptr, nullptr, nullptr, nullptr, nullptr, cu_ok, 0, 0, 0, H,
                                              D, nullptr, nullptr, nullptr, nullptr, 0.5f, 0.0f, 0, 0) == BERT4J_OK,
          "varlen empty: %s", bert4j_last_error());
}

// The public entry points give exactly what the launcher gives with best_isa / num_threads.
void test_entry_point_matches_launcher() {
    const int64_t B = 2, H = 3, S = 37, D = 32;
    std::mt19937 rng(5);
    std::normal_distribution<float> n(0.0f, 1.0f);
    std::vector<float> q(B * H * S * D), k(q.size()), v(q.size()), dout(q.size());
    for (auto* x : {&q, &k, &v, &dout})
        for (auto& e : *x) e = n(rng);
    const int64_t st[3] = {H * S * D, S * D, D};
    const int32_t kl[2] = {37, 20};
    std::vector<float> o1(q.size()), o2(q.size()), l1(B * H * S), l2(B * H * S);
    std::vector<float> g1(3 * q.size()), g2(3 * q.size());
    CHECK(bert4j_attention_forward_f32(q.data(), k.data(), v.data(), o1.data(), l1.data(), B, H, S, S, D,
                                       st, st, st, st, kl, nullptr, nullptr, 0.2f, 0.1f, 3, 4) == BERT4J_OK,
          "fwd: %s", bert4j_last_error());
    CHECK(bert4j_attention_backward_f32(q.data(), k.data(), v.data(), o1.data(), dout.data(), l1.data(),
                                        g1.data(), g1.data() + q.size(), g1.data() + 2 * q.size(), B, H, S,
                                        S, D, st, st, st, st, st, st, st, st, kl, nullptr, nullptr, 0.2f,
                                        0.1f, 3, 4) == BERT4J_OK,
          "bwd: %s", bert4j_last_error());
    AttentionArgs a;
    a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = o2.data(); a.lse = l2.data();
    a.units = B; a.heads = H; a.seq_q = a.seq_k = S; a.head_dim = D;
    for (auto* s : {a.qs, a.ks, a.vs, a.os, a.dos, a.dqs, a.dks, a.dvs}) std::memcpy(s, st, sizeof st);
    a.key_lengths = kl; a.scale = 0.2f; a.dropout_p = 0.1f; a.seed = 3; a.offset = 4;
    bert4j::cpu::attention_forward_launch(a, bert4j::cpu::best_isa(), bert4j_get_num_threads());
    a.out = nullptr; a.lse = nullptr; a.out_in = o2.data(); a.dout = dout.data(); a.lse_in = l2.data();
    a.dq = g2.data(); a.dk = g2.data() + q.size(); a.dv = g2.data() + 2 * q.size();
    bert4j::cpu::attention_backward_launch(a, bert4j::cpu::best_isa(), bert4j_get_num_threads());
    CHECK(o1 == o2 && l1 == l2 && g1 == g2, "entry point and launcher differ");
}

}  // namespace

int main() {
    test_philox_kat();
    test_bad_arguments();
    test_entry_point_matches_launcher();

    std::vector<Isa> isas{Isa::Scalar};
    if (bert4j::cpu::isa_supported(Isa::Avx2Fma)) isas.push_back(Isa::Avx2Fma);
    else std::printf("AVX2+FMA not supported here: only the scalar path is tested\n");
    if (bert4j::cpu::isa_supported(Isa::Avx512)) isas.push_back(Isa::Avx512);
    else std::printf("AVX-512 not supported here: its path is not tested\n");

    uint32_t seed = 1;
    for (Isa isa : isas) {
        // Size sweep, everything on (key lengths, padding mask, dropout) and everything off.
        for (int64_t s : {1, 7, 97, 128, 257})
            for (int64_t d : {32, 64}) {
                run_dense({2, 2, s, s, d, Layout::BSHD, true, MaskKind::Padding, 0.1f, isa, 2}, seed++);
                run_dense({2, 2, s, s, d, Layout::BHSD, false, MaskKind::None, 0.0f, isa, 2}, seed++);
            }
        // seq 512, one plain and one masked case
        run_dense({1, 2, 512, 512, 64, Layout::FusedQKV, false, MaskKind::None, 0.0f, isa, 2}, seed++);
        run_dense({2, 1, 512, 512, 32, Layout::BSHD, true, MaskKind::Full, 0.1f, isa, 2}, seed++);
        // Feature cross at seq 97 (and seq_q != seq_k)
        for (Layout l : {Layout::BHSD, Layout::BSHD, Layout::Padded, Layout::FusedQKV})
            for (bool kl : {false, true})
                for (MaskKind m : {MaskKind::None, MaskKind::Padding, MaskKind::Full})
                    for (float p : {0.0f, 0.25f}) {
                        const int64_t sk = l == Layout::FusedQKV ? 97 : 61;
                        run_dense({2, 3, 97, sk, seed % 2 ? 32 : 64, l, kl, m, p, isa, 2}, seed++);
                    }
        // Awkward head dims (scalar tails, 8-wide panels) and tiny shapes
        for (int64_t d : {1, 3, 8, 40, 72})
            run_dense({2, 2, 19, 23, d, Layout::Padded, true, MaskKind::Full, 0.1f, isa, 2}, seed++);
        run_dense({3, 2, 1, 1, 32, Layout::BHSD, true, MaskKind::None, 0.0f, isa, 1}, seed++);
        // Fully masked rows: key length 0 for batch 1, an all -inf mask row in batch 0
        run_dense({3, 2, 9, 13, 32, Layout::BHSD, false, MaskKind::Full, 0.0f, isa, 2, true}, seed++);
        run_dense({3, 2, 9, 13, 64, Layout::BSHD, true, MaskKind::Full, 0.2f, isa, 2, true}, seed++);
        // Varlen: empty and length-1 sequences among longer ones
        run_varlen({7, 1, 97, 0, 128, 33}, 3, 64, 0.0f, isa, 2, seed++);
        run_varlen({257, 5, 64}, 2, 32, 0.1f, isa, 2, seed++);
        run_varlen({512}, 1, 64, 0.0f, isa, 2, seed++);  // one head: key blocks split over threads
    }

    // AVX2 vs scalar, and 1 vs N threads (same head count: bitwise; fewer heads than threads:
    // key chunks split, dQ summed in another order: within tolerance of each other).
    for (size_t vi = 1; vi < isas.size(); ++vi) {
        const Case c1{2, 2, 97, 97, 64, Layout::BSHD, true, MaskKind::Padding, 0.1f, Isa::Scalar, 1};
        Case c2 = c1;
        c2.isa = isas[vi];
        const auto r1 = run_dense(c1, 999), r2 = run_dense(c2, 999);
        double diff = 0, mag = 0;
        for (size_t i = 0; i < r1.all.size(); ++i) {
            if (std::isinf(r1.all[i])) continue;
            diff = std::max(diff, double(std::fabs(r1.all[i] - r2.all[i])));
            mag = std::max(mag, double(std::fabs(r1.all[i])));
        }
        std::printf("%s vs scalar: max |diff| %.3g (max |value| %.3g)\n", isa_str(isas[vi]), diff, mag);
        CHECK(diff <= 1e-5 * mag, "%s vs scalar differ by %.3g", isa_str(isas[vi]), diff);
    }
    for (Isa isa : isas) {
        Case c{2, 3, 130, 130, 32, Layout::BHSD, true, MaskKind::Full, 0.1f, isa, 1};
        const auto r1 = run_dense(c, 4242);
        c.threads = 2;
        const auto r2 = run_dense(c, 4242);
        CHECK(r1.all == r2.all, "%s: 1 and 2 threads differ (not bitwise)", isa_str(isa));
        Case one{1, 1, 200, 200, 32, Layout::BHSD, false, MaskKind::None, 0.0f, isa, 1};
        const auto s1 = run_dense(one, 77);
        one.threads = 4;  // 4 key chunks of one head
        const auto s4 = run_dense(one, 77);
        double diff = 0;
        for (size_t i = 0; i < s1.all.size(); ++i) diff = std::max(diff, double(std::fabs(s1.all[i] - s4.all[i])));
        CHECK(diff < 1e-5, "one head, 1 vs 4 threads: %.3g", diff);
    }

    for (Isa isa : isas) {
        const int i = static_cast<int>(isa);
        std::printf("%s: max error vs float64 (relative to max |ref|; lse absolute) / max ratio to plain fp32\n",
                    isa_str(isa));
        for (int w = 0; w < 5; ++w)
            std::printf("  %-4s %.3g  (x%.2f)\n", kNames[w], g_summary[i].worst[w], g_summary[i].worst_ratio[w]);
    }
    std::printf("%d failure(s)\n", bert4j::test::g_failures);
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
