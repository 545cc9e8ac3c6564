// Same-process A/B of two builds of bert4j's CPU kernels (or of one build's fp32 and int8
// encoder layers): six MiniLM-shaped encoder layers (hidden 384, 12 heads, intermediate 1536,
// random weights) run through A and B alternately, call by call, so both see the same machine
// moment; prints the medians and the median of the per-call ratios A/B, and the largest
// difference between the two outputs. See run-layer-ab.sh.
//
//   layer_ab A.so B.so SHAPE ITERS [THREADS] [int8|bf16]
//   SHAPE: 1x128 (one padded sequence of 128 tokens) or N (N packed sequences of 5-35 tokens)
//   int8: B runs bert4j_encoder_layer_int8_forward_f32 (weights packed by bert4j_linear_int8_pack)
//   bf16: B runs bert4j_encoder_layer_bf16_forward_f32 (weights packed by bert4j_linear_bf16_pack)
#include <dlfcn.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <random>
#include <algorithm>
#include <cstdint>
#include <new>
typedef int (*PackFn)(const float*, int64_t, int64_t, int64_t, float*);
typedef int (*SizeFn)(int64_t, int64_t, int64_t*);
typedef int (*LayerFn)(float*, const float* const*, float*, int64_t, int64_t, int64_t, int64_t, float, int, const int32_t*, int64_t, int64_t, int64_t, int64_t, const float*);
typedef int (*ThrFn)(int);
typedef int (*Pack8Fn)(const float*, int64_t, int64_t, int64_t, uint8_t*);
typedef int (*Layer8Fn)(float*, const void* const*, float*, int64_t, int64_t, int64_t, int64_t, float, int, const int32_t*, int64_t, int64_t, int64_t, int64_t, const float*);
typedef int (*Pack16Fn)(const float*, int64_t, int64_t, int64_t, uint16_t*);
struct Lib { PackFn pack; SizeFn size; LayerFn layer; ThrFn thr; Pack8Fn pack8; SizeFn size8; Layer8Fn layer8; Pack16Fn pack16; SizeFn size16; Layer8Fn layer16; };
Lib load(const char* p) { void* h = dlopen(p, RTLD_NOW | RTLD_LOCAL); if (!h) { printf("%s\n", dlerror()); exit(1);} Lib l;
  l.pack=(PackFn)dlsym(h,"bert4j_linear_pack_f32"); l.size=(SizeFn)dlsym(h,"bert4j_linear_packed_size_f32"); l.layer=(LayerFn)dlsym(h,"bert4j_encoder_layer_forward_f32"); l.thr=(ThrFn)dlsym(h,"bert4j_set_num_threads"); l.pack8=(Pack8Fn)dlsym(h,"bert4j_linear_int8_pack"); l.size8=(SizeFn)dlsym(h,"bert4j_linear_int8_packed_size"); l.layer8=(Layer8Fn)dlsym(h,"bert4j_encoder_layer_int8_forward_f32");
  l.pack16=(Pack16Fn)dlsym(h,"bert4j_linear_bf16_pack"); l.size16=(SizeFn)dlsym(h,"bert4j_linear_bf16_packed_size"); l.layer16=(Layer8Fn)dlsym(h,"bert4j_encoder_layer_bf16_forward_f32"); return l; }
double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
const int64_t H=384, NH=12, I=1536;
// 64-byte aligned like the JVM's buffers (libtorch's CPU allocator), so the harness runs the
// kernels on the same layout as the library does (with malloc's 16-byte alignment every 64-byte
// weight load straddles two cache lines; a same-binary check, packed weights at offset 0 vs 16
// bytes, measured no difference on this host: 87% vs 86% and 64% vs 64% of the FMA rate).
template <class T> struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U> Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64); if (!p) throw std::bad_alloc(); return static_cast<T*>(p); }
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U> bool operator==(const Aligned64<U>&) const { return true; }
  template <class U> bool operator!=(const Aligned64<U>&) const { return false; }
};
using Buf = std::vector<float, Aligned64<float>>;
struct Layer { Buf w[12]; };
int main(int argc, char** argv) {
  Lib a = load(argv[1]), b = load(argv[2]);
  const char* mode = argv[3]; int iters = atoi(argv[4]); int threads = argc > 5 ? atoi(argv[5]) : 2; bool int8b = argc > 6 && !strcmp(argv[6], "int8"), bf16b = argc > 6 && !strcmp(argv[6], "bf16");
  if (bf16b && !b.layer16) { printf("B has no bf16 layer\n"); return 1; }
  a.thr(threads); b.thr(threads);
  std::mt19937 rng(7); std::normal_distribution<float> nd(0.f, 0.05f);
  // shapes
  std::vector<int32_t> cu{0}; int64_t rows, batch=0, seq=0, maxlen=0;
  if (!strcmp(mode,"1x128")) { rows=128; batch=1; seq=128; }
  else { int n = atoi(mode); std::uniform_int_distribution<int> ld(5, 35); for (int i=0;i<n;i++){int L=ld(rng); cu.push_back(cu.back()+L); maxlen=std::max<int64_t>(maxlen,L);} rows=cu.back(); }
  int64_t dims[4][2] = {{3*H,H},{H,H},{I,H},{H,I}};
  int wi[4] = {0,2,6,8};
  std::vector<Layer> LA(6), LB(6);
  for (int l=0;l<6;l++) {
    for (int j=0;j<4;j++) { int64_t n=dims[j][0],k=dims[j][1]; std::vector<float> w(n*k); for(auto&x:w)x=nd(rng); int64_t fl; a.size(n,k,&fl);
      LA[l].w[wi[j]].resize(fl); a.pack(w.data(),n,k,k,LA[l].w[wi[j]].data()); if (int8b) { int64_t by; b.size8(n,k,&by); LB[l].w[wi[j]].resize(by/4+16); b.pack8(w.data(),n,k,k,(uint8_t*)LB[l].w[wi[j]].data()); }
      else if (bf16b) { int64_t el; b.size16(n,k,&el); LB[l].w[wi[j]].resize(el/2+16); b.pack16(w.data(),n,k,k,(uint16_t*)LB[l].w[wi[j]].data()); }
      else { LB[l].w[wi[j]].resize(fl); b.pack(w.data(),n,k,k,LB[l].w[wi[j]].data()); } }
    int64_t vec[8][2] = {{1,3*H},{3,H},{4,H},{5,H},{7,I},{9,H},{10,H},{11,H}};
    for (auto& v: vec) { Buf x(v[1]); for(auto&y:x) y = (v[0]==4||v[0]==10) ? 1.f+nd(rng) : nd(rng); LA[l].w[v[0]]=x; LB[l].w[v[0]]=x; }
  }
  Buf h0(rows*H); for(auto&x:h0)x=nd(rng)*20;
  Buf ha(h0), hb(h0), ws((rows*(5*H+I))+64), mask(std::max<int64_t>(seq,1), 0.f);
  auto run = [&](Lib& L, std::vector<Layer>& W, Buf& h) {
    bool q8 = (int8b || bf16b) && &L == &b;
    Layer8Fn lf = bf16b ? L.layer16 : L.layer8;
    h = h0; double t0=now();
    for (int l=0;l<6;l++) { const float* p[12]; for(int j=0;j<12;j++) p[j]=W[l].w[j].data();
      int st = q8 ? (batch ? lf(h.data(), (const void* const*)p, ws.data(), rows, H, NH, I, 1e-12f, 0, nullptr, 0, 0, batch, seq, mask.data())
                     : lf(h.data(), (const void* const*)p, ws.data(), rows, H, NH, I, 1e-12f, 0, cu.data(), (int64_t)cu.size()-1, maxlen, 0, 0, nullptr)) :
               batch ? L.layer(h.data(), p, ws.data(), rows, H, NH, I, 1e-12f, 0, nullptr, 0, 0, batch, seq, mask.data())
                     : L.layer(h.data(), p, ws.data(), rows, H, NH, I, 1e-12f, 0, cu.data(), (int64_t)cu.size()-1, maxlen, 0, 0, nullptr);
      if (st) { printf("error %d\n", st); exit(1);} }
    return now()-t0; };
  std::vector<double> ta, tb, r;
  for (int i=0;i<iters;i++) { double x = run(a, LA, ha), y = run(b, LB, hb); if (i>=2){ta.push_back(x); tb.push_back(y); r.push_back(x/y);} }
  std::sort(ta.begin(),ta.end()); std::sort(tb.begin(),tb.end()); std::sort(r.begin(),r.end());
  double md=0; for (int64_t i=0;i<rows*H;i++) md=std::max(md,(double)fabsf(ha[i]-hb[i]));
  double gf = 2.0*rows*H*(3*H+H+I+I)*6/1e9;
  printf("%s rows=%ld: A median %.2f ms (%.0f GF/s)  B median %.2f ms (%.0f GF/s)  A/B median ratio %.3f  max|diff| %.3g\n", mode, rows, ta[ta.size()/2]*1e3, gf/ta[ta.size()/2], tb[tb.size()/2]*1e3, gf/tb[tb.size()/2], r[r.size()/2], md);
}
