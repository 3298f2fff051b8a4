// oneDNN 2D convolutions (forward, input gradient, kernel gradient) as XLA FFI handlers for CPU.
//
// Layouts are XLA's: activations NHWC, kernels HWIO, float32 or bfloat16. Attributes: strides
// (stride_h, stride_w) and zero padding (pad_top, pad_bottom, pad_left, pad_right); dilation 1.
// Primitive descriptors are built once per shape and cached; each call allocates its own
// scratchpad and blocked-kernel buffer, so calls may run concurrently.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

enum class Kind : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

struct Geometry {
  Kind kind;
  memory::data_type dtype;
  memory::dims src, weights, dst, strides, pad_l, pad_r;

  std::string Key() const {
    std::string key = std::to_string(static_cast<int64_t>(kind)) + ":" +
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

// The primitive of one geometry and, when its preferred kernel layout is not HWIO, the reorder
// between that layout and HWIO.
struct Plan {
  dnnl::primitive conv;
  memory::desc weights_md;      // the primitive's kernel layout
  memory::desc scratch_md;
  bool reorder_weights = false;
  dnnl::reorder weights_reorder;
};

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  auto src = memory::desc(g.src, g.dtype, tag::nhwc);
  auto wei = memory::desc(g.weights, g.dtype, tag::any);
  auto dst = memory::desc(g.dst, g.dtype, tag::nhwc);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
      wei, dst, g.strides, g.pad_l, g.pad_r, attr);
}

std::unique_ptr<Plan> MakePlan(const Geometry& g) {
  auto plan = std::make_unique<Plan>();
  auto hwio = memory::desc(g.weights, g.dtype, tag::hwio);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto fwd = ForwardDesc(g);
  if (g.kind == Kind::kForward) {
    plan->conv = dnnl::convolution_forward(fwd);
    plan->weights_md = fwd.weights_desc();
    plan->scratch_md = fwd.scratchpad_desc();
  } else if (g.kind == Kind::kBackwardData) {
    auto pd = dnnl::convolution_backward_data::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct,
        memory::desc(g.src, g.dtype, tag::nhwc), memory::desc(g.weights, g.dtype, tag::any),
        memory::desc(g.dst, g.dtype, tag::nhwc), g.strides, g.pad_l, g.pad_r, fwd, attr);
    plan->conv = dnnl::convolution_backward_data(pd);
    plan->weights_md = pd.weights_desc();
    plan->scratch_md = pd.scratchpad_desc();
  } else {
    auto pd = dnnl::convolution_backward_weights::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct,
        memory::desc(g.src, g.dtype, tag::nhwc), memory::desc(g.weights, g.dtype, tag::any),
        memory::desc(g.dst, g.dtype, tag::nhwc), g.strides, g.pad_l, g.pad_r, fwd, attr);
    plan->conv = dnnl::convolution_backward_weights(pd);
    plan->weights_md = pd.diff_weights_desc();
    plan->scratch_md = pd.scratchpad_desc();
  }
  plan->reorder_weights = plan->weights_md != hwio;
  if (plan->reorder_weights) {
    bool to_hwio = g.kind == Kind::kBackwardWeights;
    plan->weights_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), to_hwio ? plan->weights_md : hwio, Engine(),
        to_hwio ? hwio : plan->weights_md));
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

void Run(const Geometry& g, void* src, void* weights, void* dst) {
  const Plan& plan = GetPlan(g);
  dnnl::engine& engine = Engine();
  dnnl::stream stream(engine);
  auto hwio = memory::desc(g.weights, g.dtype, tag::hwio);
  memory user_weights(hwio, engine, weights);
  std::vector<uint8_t> blocked_buffer(plan.reorder_weights ? plan.weights_md.get_size() : 0);
  memory prim_weights = plan.reorder_weights
                            ? memory(plan.weights_md, engine, blocked_buffer.data())
                            : user_weights;
  std::vector<uint8_t> scratch_buffer(plan.scratch_md.get_size());
  memory scratch(plan.scratch_md, engine, scratch_buffer.data());
  memory src_mem(memory::desc(g.src, g.dtype, tag::nhwc), engine, src);
  memory dst_mem(memory::desc(g.dst, g.dtype, tag::nhwc), engine, dst);
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
    plan.conv.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_DIFF_WEIGHTS, prim_weights},
                               {DNNL_ARG_DIFF_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, scratch}});
    if (plan.reorder_weights) plan.weights_reorder.execute(stream, prim_weights, user_weights);
  }
  stream.wait();
}

// NHWC / HWIO dims to oneDNN's logical (N, C, H, W) / (O, I, H, W).
memory::dims Activation(ffi::Span<const int64_t> d) { return {d[0], d[3], d[1], d[2]}; }
memory::dims Kernel(ffi::Span<const int64_t> d) { return {d[3], d[2], d[0], d[1]}; }

ffi::Error Convolve(Kind kind, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                    int64_t stride_h, int64_t stride_w, int64_t pad_top, int64_t pad_bottom,
                    int64_t pad_left, int64_t pad_right) {
  auto type = a.element_type();
  if (type != b.element_type() || type != out->element_type() ||
      (type != ffi::DataType::F32 && type != ffi::DataType::BF16)) {
    return ffi::Error::InvalidArgument("psrjax oneDNN conv: operands must all be f32 or all bf16");
  }
  if (a.dimensions().size() != 4 || b.dimensions().size() != 4 || out->dimensions().size() != 4) {
    return ffi::Error::InvalidArgument("psrjax oneDNN conv: operands must be rank 4");
  }
  Geometry g;
  g.kind = kind;
  g.dtype = type == ffi::DataType::F32 ? memory::data_type::f32 : memory::data_type::bf16;
  g.strides = {stride_h, stride_w};
  g.pad_l = {pad_top, pad_left};
  g.pad_r = {pad_bottom, pad_right};
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
                      int64_t stride_h, int64_t stride_w, int64_t pad_top, int64_t pad_bottom,
                      int64_t pad_left, int64_t pad_right) {
  return Convolve(kind, a, b, out, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right);
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Arg<ffi::AnyBuffer>()
      .Arg<ffi::AnyBuffer>()
      .Ret<ffi::AnyBuffer>()
      .Attr<int64_t>("stride_h")
      .Attr<int64_t>("stride_w")
      .Attr<int64_t>("pad_top")
      .Attr<int64_t>("pad_bottom")
      .Attr<int64_t>("pad_left")
      .Attr<int64_t>("pad_right");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PsrjaxConv2dForward, ConvolveAs<Kind::kForward>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PsrjaxConv2dBackwardData, ConvolveAs<Kind::kBackwardData>,
                              Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PsrjaxConv2dBackwardWeights, ConvolveAs<Kind::kBackwardWeights>,
                              Binding());
