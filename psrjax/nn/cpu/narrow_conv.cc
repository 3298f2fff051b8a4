// Convolutions with few output channels (an RGB output layer): forward pass and kernel gradient.
//
// oneDNN vectorises over output channels, so with 3 of them 13 of every 16 lanes idle (PSR-Net's
// 7x7x7, 64 -> 3 output convolution runs at ~17 GFLOP/s). These kernels vectorise over input
// channels instead and keep a few output positions' sums in registers. Layout: x NDHWC (already
// padded), kernel DHWIO, y NDHWC; stride 1, no padding; float32; C a multiple of 16; O <= 4.
#include "narrow_conv.h"

#include <immintrin.h>

#include <cstring>
#include <vector>

namespace psrjax {
namespace {

constexpr int kLanes = 16;

// kernel DHWIO [tap][C][O] -> [tap][O][C].
std::vector<float> KernelByOutput(const float* kernel, int64_t taps, int64_t c, int64_t o) {
  std::vector<float> out(taps * o * c);
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t i = 0; i < c; ++i)
      for (int64_t j = 0; j < o; ++j) out[(t * o + j) * c + i] = kernel[(t * c + i) * o + j];
  return out;
}

// y[w0 .. w0 + P) of one output row: sums over taps and input channels, P positions at once.
template <int O, int P>
__attribute__((target("avx512f"))) void ForwardPositions(const NarrowConvShape& s,
                                                         const float* x_row0, const float* wt,
                                                         float* y, int64_t w0) {
  __m512 acc[P][O];
  #pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
    #pragma GCC unroll 16
    for (int o = 0; o < O; ++o) acc[p][o] = _mm512_setzero_ps();
  const int64_t row = s.w * s.c, plane = s.h * row;
  for (int64_t kd = 0; kd < s.kd; ++kd)
    for (int64_t kh = 0; kh < s.kh; ++kh)
      for (int64_t kw = 0; kw < s.kw; ++kw) {
        const float* xp = x_row0 + kd * plane + kh * row + (w0 + kw) * s.c;
        const float* wp = wt + ((kd * s.kh + kh) * s.kw + kw) * O * s.c;
        for (int64_t c = 0; c < s.c; c += kLanes) {
          __m512 wv[O];
          #pragma GCC unroll 16
          for (int o = 0; o < O; ++o) wv[o] = _mm512_loadu_ps(wp + o * s.c + c);
          #pragma GCC unroll 16
          for (int p = 0; p < P; ++p) {
            __m512 xv = _mm512_loadu_ps(xp + p * s.c + c);
            #pragma GCC unroll 16
            for (int o = 0; o < O; ++o) acc[p][o] = _mm512_fmadd_ps(xv, wv[o], acc[p][o]);
          }
        }
      }
  #pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
    #pragma GCC unroll 16
    for (int o = 0; o < O; ++o) y[(w0 + p) * O + o] = _mm512_reduce_add_ps(acc[p][o]);
}

template <int O>
void Forward(const NarrowConvShape& s, const float* x, const float* kernel, float* y) {
  std::vector<float> wt = KernelByOutput(kernel, s.kd * s.kh * s.kw, s.c, O);
  const int64_t od = s.d - s.kd + 1, oh = s.h - s.kh + 1, ow = s.w - s.kw + 1;
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t d = 0; d < od; ++d)
      for (int64_t h = 0; h < oh; ++h) {
        const float* x_row0 = x + (((n * s.d + d) * s.h + h) * s.w) * s.c;
        float* y_row = y + ((n * od + d) * oh + h) * ow * O;
        int64_t w0 = 0;
        for (; w0 + 4 <= ow; w0 += 4) ForwardPositions<O, 4>(s, x_row0, wt.data(), y_row, w0);
        for (; w0 < ow; ++w0) ForwardPositions<O, 1>(s, x_row0, wt.data(), y_row, w0);
      }
}

// Adds one output row's contribution to the kernel gradient of every tap, channels [c0, c0 + 16 CV).
template <int O, int CV>
__attribute__((target("avx512f"))) void KernelGradRow(const NarrowConvShape& s,
                                                      const float* x_row0, const float* dy_row,
                                                      float* acc_mem, int64_t ow, int64_t c0) {
  const int64_t row = s.w * s.c, plane = s.h * row;
  for (int64_t kd = 0; kd < s.kd; ++kd)
    for (int64_t kh = 0; kh < s.kh; ++kh)
      for (int64_t kw = 0; kw < s.kw; ++kw) {
        float* am = acc_mem + ((kd * s.kh + kh) * s.kw + kw) * O * s.c;
        __m512 acc[CV][O];
        #pragma GCC unroll 16
        for (int v = 0; v < CV; ++v)
          #pragma GCC unroll 16
          for (int o = 0; o < O; ++o) acc[v][o] = _mm512_loadu_ps(am + o * s.c + c0 + v * kLanes);
        const float* xp = x_row0 + kd * plane + kh * row + kw * s.c + c0;
        for (int64_t w = 0; w < ow; ++w) {
          __m512 g[O];
          #pragma GCC unroll 16
          for (int o = 0; o < O; ++o) g[o] = _mm512_set1_ps(dy_row[w * O + o]);
          #pragma GCC unroll 16
          for (int v = 0; v < CV; ++v) {
            __m512 xv = _mm512_loadu_ps(xp + w * s.c + v * kLanes);
            #pragma GCC unroll 16
            for (int o = 0; o < O; ++o) acc[v][o] = _mm512_fmadd_ps(xv, g[o], acc[v][o]);
          }
        }
        #pragma GCC unroll 16
        for (int v = 0; v < CV; ++v)
          #pragma GCC unroll 16
          for (int o = 0; o < O; ++o) _mm512_storeu_ps(am + o * s.c + c0 + v * kLanes, acc[v][o]);
      }
}

template <int O>
void KernelGrad(const NarrowConvShape& s, const float* x, const float* dy, float* dkernel) {
  const int64_t taps = s.kd * s.kh * s.kw, size = taps * O * s.c;
  const int64_t od = s.d - s.kd + 1, oh = s.h - s.kh + 1, ow = s.w - s.kw + 1;
  std::vector<float> total(size, 0.0f);
#pragma omp parallel
  {
    std::vector<float> acc(size, 0.0f);  // [tap][O][C], this thread's rows
#pragma omp for collapse(3) schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t d = 0; d < od; ++d)
        for (int64_t h = 0; h < oh; ++h) {
          const float* x_row0 = x + (((n * s.d + d) * s.h + h) * s.w) * s.c;
          const float* dy_row = dy + ((n * od + d) * oh + h) * ow * O;
          int64_t c0 = 0;
          for (; c0 + 4 * kLanes <= s.c; c0 += 4 * kLanes)
            KernelGradRow<O, 4>(s, x_row0, dy_row, acc.data(), ow, c0);
          for (; c0 < s.c; c0 += kLanes) KernelGradRow<O, 1>(s, x_row0, dy_row, acc.data(), ow, c0);
        }
#pragma omp critical
    for (int64_t i = 0; i < size; ++i) total[i] += acc[i];
  }
  for (int64_t t = 0; t < taps; ++t)      // [tap][O][C] -> DHWIO [tap][C][O]
    for (int64_t i = 0; i < s.c; ++i)
      for (int64_t j = 0; j < O; ++j) dkernel[(t * s.c + i) * O + j] = total[(t * O + j) * s.c + i];
}

template <template <int> class F, typename... Args>
void Dispatch(int64_t o, Args... args) {
  switch (o) {
    case 1: return F<1>::Run(args...);
    case 2: return F<2>::Run(args...);
    case 3: return F<3>::Run(args...);
    default: return F<4>::Run(args...);
  }
}

template <int O>
struct ForwardOp {
  static void Run(const NarrowConvShape& s, const float* x, const float* k, float* y) {
    Forward<O>(s, x, k, y);
  }
};

template <int O>
struct KernelGradOp {
  static void Run(const NarrowConvShape& s, const float* x, const float* dy, float* dk) {
    KernelGrad<O>(s, x, dy, dk);
  }
};

}  // namespace

bool NarrowConvApplies(const NarrowConvShape& s) {
  return s.o >= 1 && s.o <= kMaxNarrowOutputs && s.c % kLanes == 0 &&
         __builtin_cpu_supports("avx512f");
}

void NarrowConvForward(const NarrowConvShape& s, const float* x, const float* kernel, float* y) {
  Dispatch<ForwardOp>(s.o, s, x, kernel, y);
}

void NarrowConvKernelGrad(const NarrowConvShape& s, const float* x, const float* dy,
                          float* dkernel) {
  Dispatch<KernelGradOp>(s.o, s, x, dy, dkernel);
}

}  // namespace psrjax
