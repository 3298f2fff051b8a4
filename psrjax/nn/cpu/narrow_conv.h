// Convolutions with few output channels, vectorised over input channels (narrow_conv.cc).
#ifndef PSRJAX_NN_NARROW_CONV_H_
#define PSRJAX_NN_NARROW_CONV_H_

#include <cstdint>

namespace psrjax {

constexpr int64_t kMaxNarrowOutputs = 4;

// x [n, d, h, w, c] (padded), kernel [kd, kh, kw, c, o], output [n, d-kd+1, h-kh+1, w-kw+1, o].
// 2D convolutions are d = kd = 1.
struct NarrowConvShape {
  int64_t n, d, h, w, c;
  int64_t kd, kh, kw, o;
};

// Whether these kernels handle `shape` here: 1-4 outputs, c a multiple of 16, AVX-512F.
bool NarrowConvApplies(const NarrowConvShape& shape);
void NarrowConvForward(const NarrowConvShape& shape, const float* x, const float* kernel,
                       float* y);
void NarrowConvKernelGrad(const NarrowConvShape& shape, const float* x, const float* dy,
                          float* dkernel);

}  // namespace psrjax

#endif  // PSRJAX_NN_NARROW_CONV_H_
