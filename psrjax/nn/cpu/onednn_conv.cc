// oneDNN 2D and 3D convolutions (forward, input gradient, kernel gradient) as XLA FFI handlers
// for CPU.
//
// Layouts are XLA's channels-last ones: activations NHWC or NDHWC, kernels HWIO or DHWIO,
// float32 or bfloat16. Attributes: `strides`, `pads_lo`, `pads_hi` (one value per spatial axis;
// zero padding), dilation 1, and `transposed`: a transposed convolution (oneDNN's deconvolution,
// PyTorch's ConvTranspose with `pads_hi` = padding - output_padding; kernel (D)HWIO with I the
// input and O the output channels).
// bfloat16 runs natively where oneDNN has bfloat16 kernels for this CPU (AVX-512 and newer) and is
// otherwise computed in float32 and rounded back (`RunWidened`).
// Primitive descriptors are built once per shape and cached; the scratchpad, the blocked
// kernel and a kernel gradient's blocked activations live in buffers kept between calls
// (`Workspace`), as calls run one at a time
// (`ExecutionMutex`). Float32
// convolutions with 1-4 outputs, stride 1 and no padding go to narrow_conv.cc instead.
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "narrow_conv.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

enum class Kind : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

struct Geometry {
  Kind kind;
  bool transposed;  // a transposed convolution (oneDNN's deconvolution): src is the small side
  memory::data_type dtype;
  memory::dims src, weights, dst, strides, pad_l, pad_r;

  bool Is3d() const { return src.size() == 5; }
  tag ActivationTag() const { return Is3d() ? tag::ndhwc : tag::nhwc; }
  tag KernelTag() const { return Is3d() ? tag::dhwio : tag::hwio; }

  std::string Key() const {
    std::string key = std::to_string(static_cast<int64_t>(kind)) + ":" +
                      std::to_string(static_cast<int>(transposed)) + ":" +
                      std::to_string(static_cast<int>(dtype));
    for (const auto* dims : {&src, &weights, &dst, &strides, &pad_l, &pad_r}) {
      key += "|";
      for (auto d : *dims) key += std::to_string(d) + ",";
    }
    return key;
  }
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The primitive of one geometry and, when its preferred kernel layout is not (D)HWIO, the reorder
// between that layout and (D)HWIO.
struct Plan {
  dnnl::primitive conv;
  memory::desc weights_md;      // the primitive's kernel layout
  memory::desc scratch_md;
  bool reorder_weights = false;
  dnnl::reorder weights_reorder;
  // Kernel gradients only: the activations' and output gradients' layouts oneDNN prefers, and
  // the reorders from channels-last into them (`reorder_activations`).
  memory::desc src_md, dst_md;
  bool reorder_activations = false;
  dnnl::reorder src_reorder, dst_reorder;
};

// The primitives of a convolution (`Forward`, `BackwardData`, `BackwardWeights` of
// dnnl::convolution_* or dnnl::deconvolution_*, with `algorithm`).
template <class Forward, class BackwardData, class BackwardWeights>
std::unique_ptr<Plan> MakePlanOf(const Geometry& g, dnnl::algorithm algorithm) {
  auto plan = std::make_unique<Plan>();
  auto src = memory::desc(g.src, g.dtype, g.ActivationTag());
  auto dst = memory::desc(g.dst, g.dtype, g.ActivationTag());
  auto any = memory::desc(g.weights, g.dtype, tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto fwd = typename Forward::primitive_desc(Engine(), dnnl::prop_kind::forward_training,
                                              algorithm, src, any, dst, g.strides, g.pad_l,
                                              g.pad_r, attr);
  if (g.kind == Kind::kForward) {
    plan->conv = Forward(fwd);
    plan->weights_md = fwd.weights_desc();
    plan->scratch_md = fwd.scratchpad_desc();
  } else if (g.kind == Kind::kBackwardData) {
    auto pd = typename BackwardData::primitive_desc(Engine(), algorithm, src, any, dst, g.strides,
                                                    g.pad_l, g.pad_r, fwd, attr);
    plan->conv = BackwardData(pd);
    plan->weights_md = pd.weights_desc();
    plan->scratch_md = pd.scratchpad_desc();
  } else {
    // The kernel gradient in the activation layouts oneDNN prefers (blocked channels on x86):
    // its AVX2 kernel gradient reads channels-last activations about 3x slower than blocked
    // ones (3 x 3, 128 -> 64 channels at 4 x 256 x 256: 1.84 s against 0.58 s), far more than
    // the two reorders into that layout cost (0.08 s).
    auto src_any = memory::desc(g.src, g.dtype, tag::any);
    auto dst_any = memory::desc(g.dst, g.dtype, tag::any);
    auto hint = typename Forward::primitive_desc(Engine(), dnnl::prop_kind::forward_training,
                                                 algorithm, src_any, any, dst_any, g.strides,
                                                 g.pad_l, g.pad_r, attr);
    auto pd = typename BackwardWeights::primitive_desc(Engine(), algorithm, src_any, any,
                                                       dst_any, g.strides, g.pad_l, g.pad_r,
                                                       hint, attr);
    plan->conv = BackwardWeights(pd);
    plan->weights_md = pd.diff_weights_desc();
    plan->scratch_md = pd.scratchpad_desc();
    plan->src_md = pd.src_desc();
    plan->dst_md = pd.diff_dst_desc();
    plan->reorder_activations = plan->src_md != src || plan->dst_md != dst;
    if (plan->reorder_activations) {
      plan->src_reorder = dnnl::reorder(
          dnnl::reorder::primitive_desc(Engine(), src, Engine(), plan->src_md));
      plan->dst_reorder = dnnl::reorder(
          dnnl::reorder::primitive_desc(Engine(), dst, Engine(), plan->dst_md));
    }
  }
  return plan;
}

std::unique_ptr<Plan> MakePlan(const Geometry& g) {
  auto plan = g.transposed
      ? MakePlanOf<dnnl::deconvolution_forward, dnnl::deconvolution_backward_data,
                   dnnl::deconvolution_backward_weights>(g, dnnl::algorithm::deconvolution_direct)
      : MakePlanOf<dnnl::convolution_forward, dnnl::convolution_backward_data,
                   dnnl::convolution_backward_weights>(g, dnnl::algorithm::convolution_direct);
  auto plain = memory::desc(g.weights, g.dtype, g.KernelTag());
  plan->reorder_weights = plan->weights_md != plain;
  if (plan->reorder_weights) {
    bool to_plain = g.kind == Kind::kBackwardWeights;
    plan->weights_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), to_plain ? plan->weights_md : plain, Engine(),
        to_plain ? plain : plan->weights_md));
  }
  return plan;
}

const Plan& GetPlan(const Geometry& g) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::unique_ptr<Plan>> plans;
  std::string key = g.Key();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, MakePlan(g)).first;
  return *it->second;
}

// Each primitive already uses every core (OpenMP); XLA may issue independent calls from two
// of its threads at once, which would oversubscribe the cores. Calls therefore run one at a time.
std::mutex& ExecutionMutex() {
  static std::mutex mutex;
  return mutex;
}

// The geometry as a `psrjax::NarrowConvShape` when those kernels should run it instead of
// oneDNN: a float32 forward pass or kernel gradient with few outputs, stride 1, no padding.
bool AsNarrow(const Geometry& g, psrjax::NarrowConvShape* shape) {
  if (g.transposed || g.kind == Kind::kBackwardData || g.dtype != memory::data_type::f32) {
    return false;
  }
  for (size_t i = 0; i < g.strides.size(); ++i) {
    if (g.strides[i] != 1 || g.pad_l[i] != 0 || g.pad_r[i] != 0) return false;
  }
  bool is3d = g.Is3d();
  const memory::dims& x = g.src;   // (N, C, [D,] H, W)
  const memory::dims& k = g.weights;  // (O, I, [D,] H, W)
  *shape = {x[0], is3d ? x[2] : 1, x[x.size() - 2], x[x.size() - 1], x[1],
            is3d ? k[2] : 1, k[k.size() - 2], k[k.size() - 1], k[0]};
  return psrjax::NarrowConvApplies(*shape);
}

// Buffer `slot` (0: the blocked kernel, 1: the scratchpad, 2 and 3: a kernel gradient's
// reordered activations and output gradients) of at least `bytes`, kept between
// calls: a fresh allocation of a large kernel's blocked copy costs page faults and zeroing on
// every call, as much as the convolution itself for 1024-channel kernels on small images.
// Calls run one at a time (`ExecutionMutex`), so one buffer per slot suffices.
void* Workspace(int slot, size_t bytes) {
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    size_t size = 0;
  };
  static Buffer buffers[4];
  Buffer& b = buffers[slot];
  if (b.size < bytes) {
    b.data.reset(new uint8_t[bytes]);  // default-initialised: not zeroed
    b.size = bytes;
  }
  return b.data.get();
}

void RunNative(const Geometry& g, void* src, void* weights, void* dst) {
  psrjax::NarrowConvShape narrow;
  if (AsNarrow(g, &narrow)) {
    if (g.kind == Kind::kForward) {
      psrjax::NarrowConvForward(narrow, static_cast<const float*>(src),
                                static_cast<const float*>(weights), static_cast<float*>(dst));
    } else {
      psrjax::NarrowConvKernelGrad(narrow, static_cast<const float*>(src),
                                   static_cast<const float*>(dst), static_cast<float*>(weights));
    }
    return;
  }
  const Plan& plan = GetPlan(g);
  dnnl::engine& engine = Engine();
  dnnl::stream stream(engine);
  auto plain = memory::desc(g.weights, g.dtype, g.KernelTag());
  memory user_weights(plain, engine, weights);
  memory prim_weights =
      plan.reorder_weights
          ? memory(plan.weights_md, engine, Workspace(0, plan.weights_md.get_size()))
          : user_weights;
  memory scratch(plan.scratch_md, engine, Workspace(1, plan.scratch_md.get_size()));
  memory src_mem(memory::desc(g.src, g.dtype, g.ActivationTag()), engine, src);
  memory dst_mem(memory::desc(g.dst, g.dtype, g.ActivationTag()), engine, dst);
  if (g.kind != Kind::kBackwardWeights && plan.reorder_weights) {
    plan.weights_reorder.execute(stream, user_weights, prim_weights);
  }
  if (g.kind == Kind::kForward) {
    plan.conv.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, prim_weights},
                               {DNNL_ARG_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, scratch}});
  } else if (g.kind == Kind::kBackwardData) {
    plan.conv.execute(stream, {{DNNL_ARG_DIFF_SRC, src_mem}, {DNNL_ARG_WEIGHTS, prim_weights},
                               {DNNL_ARG_DIFF_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, scratch}});
  } else {
    memory prim_src = src_mem, prim_dst = dst_mem;
    if (plan.reorder_activations) {
      prim_src = memory(plan.src_md, engine, Workspace(2, plan.src_md.get_size()));
      prim_dst = memory(plan.dst_md, engine, Workspace(3, plan.dst_md.get_size()));
      plan.src_reorder.execute(stream, src_mem, prim_src);
      plan.dst_reorder.execute(stream, dst_mem, prim_dst);
    }
    plan.conv.execute(stream, {{DNNL_ARG_SRC, prim_src}, {DNNL_ARG_DIFF_WEIGHTS, prim_weights},
                               {DNNL_ARG_DIFF_DST, prim_dst}, {DNNL_ARG_SCRATCHPAD, scratch}});
    if (plan.reorder_weights) plan.weights_reorder.execute(stream, prim_weights, user_weights);
  }
  stream.wait();
}

// ------------------------------------------------------------ bfloat16 where the CPU lacks it
// oneDNN has bfloat16 convolutions only on CPUs with AVX-512 (or AVX2-VNNI-2); elsewhere creating
// their primitive descriptors fails. There the operands are widened to float32, the float32
// primitive runs, and the result is rounded back to bfloat16 (to nearest, ties to even): the
// same values a bfloat16 kernel accumulating in float32 would produce, at float32 speed.

float Bf16ToF32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t F32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

int64_t Elements(const memory::dims& dims) {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

std::vector<float> Widen(const void* data, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(data);
  std::vector<float> out(n);
  #pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToF32(in[i]);
  return out;
}

void Narrow(const std::vector<float>& in, void* data) {
  auto* out = static_cast<uint16_t*>(data);
  const int64_t n = static_cast<int64_t>(in.size());
  #pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) out[i] = F32ToBf16(in[i]);
}

// Whether oneDNN has bfloat16 convolutions on this CPU: probes one small 3D convolution's
// forward, input-gradient and kernel-gradient primitives once.
bool Bf16Native() {
  static const bool native = [] {
    Geometry g;
    g.transposed = false;
    g.dtype = memory::data_type::bf16;
    g.src = {1, 16, 4, 8, 8}, g.weights = {16, 16, 3, 3, 3}, g.dst = {1, 16, 4, 8, 8};
    g.strides = {1, 1, 1}, g.pad_l = {1, 1, 1}, g.pad_r = {1, 1, 1};
    try {
      for (Kind kind : {Kind::kForward, Kind::kBackwardData, Kind::kBackwardWeights}) {
        g.kind = kind;
        MakePlan(g);
      }
    } catch (const dnnl::error&) {
      return false;
    }
    return true;
  }();
  return native;
}

// A bfloat16 convolution computed by the float32 primitive (see above).
void RunWidened(const Geometry& g, void* src, void* weights, void* dst) {
  Geometry f = g;
  f.dtype = memory::data_type::f32;
  void* bufs[3] = {src, weights, dst};
  const memory::dims* dims[3] = {&g.src, &g.weights, &g.dst};
  // The output operand: dst (forward), src (input gradient), weights (kernel gradient).
  int out = g.kind == Kind::kForward ? 2 : g.kind == Kind::kBackwardData ? 0 : 1;
  std::vector<float> wide[3];
  for (int i = 0; i < 3; ++i) {
    wide[i] = i == out ? std::vector<float>(Elements(*dims[i])) : Widen(bufs[i], Elements(*dims[i]));
  }
  RunNative(f, wide[0].data(), wide[1].data(), wide[2].data());
  Narrow(wide[out], bufs[out]);
}

void Run(const Geometry& g, void* src, void* weights, void* dst) {
  std::lock_guard<std::mutex> lock(ExecutionMutex());
  if (g.dtype == memory::data_type::bf16 && !Bf16Native()) {
    RunWidened(g, src, weights, dst);
  } else {
    RunNative(g, src, weights, dst);
  }
}

// Channels-last dims (N, spatial..., C) / (spatial..., I, O) to oneDNN's logical order
// (N, C, spatial...) / (O, I, spatial...).
memory::dims Activation(ffi::Span<const int64_t> d) {
  memory::dims dims = {d[0], d[d.size() - 1]};
  for (size_t i = 1; i + 1 < d.size(); ++i) dims.push_back(d[i]);
  return dims;
}
memory::dims Kernel(ffi::Span<const int64_t> d) {
  memory::dims dims = {d[d.size() - 1], d[d.size() - 2]};
  for (size_t i = 0; i + 2 < d.size(); ++i) dims.push_back(d[i]);
  return dims;
}
memory::dims Dims(ffi::Span<const int64_t> v) { return memory::dims(v.begin(), v.end()); }

ffi::Error Convolve(Kind kind, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                    ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pads_lo,
                    ffi::Span<const int64_t> pads_hi, bool transposed) {
  auto type = a.element_type();
  if (type != b.element_type() || type != out->element_type() ||
      (type != ffi::DataType::F32 && type != ffi::DataType::BF16)) {
    return ffi::Error::InvalidArgument("psrjax oneDNN conv: operands must all be f32 or all bf16");
  }
  size_t rank = a.dimensions().size();
  if ((rank != 4 && rank != 5) || b.dimensions().size() != rank ||
      out->dimensions().size() != rank || strides.size() != rank - 2 ||
      pads_lo.size() != rank - 2 || pads_hi.size() != rank - 2) {
    return ffi::Error::InvalidArgument(
        "psrjax oneDNN conv: operands must all be rank 4 or all rank 5, with one stride and "
        "pad per spatial axis");
  }
  Geometry g;
  g.kind = kind;
  g.transposed = transposed;
  g.dtype = type == ffi::DataType::F32 ? memory::data_type::f32 : memory::data_type::bf16;
  g.strides = Dims(strides);
  g.pad_l = Dims(pads_lo);
  g.pad_r = Dims(pads_hi);
  void *src, *weights, *dst;
  if (kind == Kind::kForward) {            // a = x, b = kernel, out = y
    g.src = Activation(a.dimensions()), g.weights = Kernel(b.dimensions());
    g.dst = Activation(out->dimensions());
    src = a.untyped_data(), weights = b.untyped_data(), dst = out->untyped_data();
  } else if (kind == Kind::kBackwardData) {  // a = dy, b = kernel, out = dx
    g.dst = Activation(a.dimensions()), g.weights = Kernel(b.dimensions());
    g.src = Activation(out->dimensions());
    dst = a.untyped_data(), weights = b.untyped_data(), src = out->untyped_data();
  } else {                                   // a = x, b = dy, out = dkernel
    g.src = Activation(a.dimensions()), g.dst = Activation(b.dimensions());
    g.weights = Kernel(out->dimensions());
    src = a.untyped_data(), dst = b.untyped_data(), weights = out->untyped_data();
  }
  try {
    Run(g, src, weights, dst);
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("psrjax oneDNN conv failed: ") + e.what());
  }
  return ffi::Error::Success();
}

template <Kind kind>
ffi::Error ConvolveAs(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                      ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pads_lo,
                      ffi::Span<const int64_t> pads_hi, bool transposed) {
  return Convolve(kind, a, b, out, strides, pads_lo, pads_hi, transposed);
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Arg<ffi::AnyBuffer>()
      .Arg<ffi::AnyBuffer>()
      .Ret<ffi::AnyBuffer>()
      .Attr<ffi::Span<const int64_t>>("strides")
      .Attr<ffi::Span<const int64_t>>("pads_lo")
      .Attr<ffi::Span<const int64_t>>("pads_hi")
      .Attr<bool>("transposed");
}

}  // namespace

// 1 when oneDNN runs bfloat16 convolutions natively on this CPU, 0 when they are computed in
// float32 (`RunWidened`).
extern "C" int PsrjaxOneDNNBf16Native() { return Bf16Native() ? 1 : 0; }

XLA_FFI_DEFINE_HANDLER_SYMBOL(PsrjaxConvForward, ConvolveAs<Kind::kForward>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PsrjaxConvBackwardData, ConvolveAs<Kind::kBackwardData>,
                              Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PsrjaxConvBackwardWeights, ConvolveAs<Kind::kBackwardWeights>,
                              Binding());
