#include "gloss/nn/rnn.h"

#include <stdexcept>
#include <unordered_map>

#include "gloss/tensor/compute.h"
#include "gloss/util/error.h"

namespace gloss::nn {
namespace {

constexpr int kInferenceChunk = 32;  // steps per forward_inference call
// Primitives kept per cell and direction of use. Sequence lengths and a shrinking beam make
// hundreds of shapes; a recreated primitive costs ~0.1 ms (oneDNN's own cache keeps recent ones).
constexpr std::size_t kMaxCachedShapes = 48;

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::desc md(const memory::dims& dims, tag t) { return memory::desc(dims, dt::f32, t); }

memory mem(const memory::desc& d, const float* p) { return memory(d, compute::engine(), const_cast<float*>(p)); }

memory half(const memory::dims& dims, tag t, const std::uint16_t* p) {
  return memory(memory::desc(dims, dt::bf16, t), compute::engine(), const_cast<std::uint16_t*>(p));
}

}  // namespace

CellType parse_cell(std::string_view name) {
  if (name == "gru") return CellType::kGru;
  if (name == "lstm") return CellType::kLstm;
  throw ConfigError("unknown cell '" + std::string(name) + "'; choose gru or lstm");
}

RnnCell::RnnCell(ParameterSet& params, const std::string& name, CellType cell, std::int64_t input, std::int64_t hidden)
    : params_(params),
      cell_(cell),
      input_(input),
      hidden_(hidden),
      w_layer_(params.add(name + "/weights_layer", {input, cell == CellType::kGru ? 3 : 4, hidden})),
      w_iter_(params.add(name + "/weights_iter", {hidden, cell == CellType::kGru ? 3 : 4, hidden})),
      bias_(params.add(name + "/bias", {4, hidden})) {}

RnnCell::Forward& RnnCell::forward_primitive(int T, int N) {
  const bool half = bf16_;
  const auto key = std::make_tuple(half, T, N, compute::threads());
  auto it = forward_.find(key);
  if (it != forward_.end()) return it->second;
  if (forward_.size() >= kMaxCachedShapes) forward_.clear();  // bounded: each holds JIT code
  const memory::dim C = input_, H = hidden_, G = gates();
  const auto prop = dnnl::prop_kind::forward_inference;
  const auto dir = dnnl::rnn_direction::unidirectional_left2right;
  const dt type = half ? dt::bf16 : dt::f32;  // of inputs, outputs, hidden states and weights
  const memory::desc x({T, N, C}, type, tag::tnc), y({T, N, H}, type, tag::tnc), s({1, 1, N, H}, type, tag::ldnc);
  const memory::desc wl({1, 1, C, G, H}, type, tag::ldigo), wi({1, 1, H, G, H}, type, tag::ldigo);
  const auto b = md({1, 1, 4, H}, tag::ldgo), sc = md({1, 1, N, H}, tag::ldnc);  // bias, LSTM cell state: f32
  Forward f;
  if (cell_ == CellType::kGru) {
    dnnl::lbr_gru_forward::desc d(prop, dir, x, s, wl, wi, b, y, s);
    auto pd = std::make_unique<dnnl::lbr_gru_forward::primitive_desc>(d, compute::user_scratchpad(), compute::engine());
    f.prim = dnnl::lbr_gru_forward(*pd);
    f.pd = std::move(pd);
  } else {
    dnnl::lstm_forward::desc d(prop, dir, x, s, sc, wl, wi, b, y, s, sc);
    auto pd = std::make_unique<dnnl::lstm_forward::primitive_desc>(d, compute::user_scratchpad(), compute::engine());
    f.prim = dnnl::lstm_forward(*pd);
    f.pd = std::move(pd);
  }
  return forward_.emplace(key, std::move(f)).first->second;
}

void RnnCell::refresh_bf16_weights() {
  if (bf16_version_ == params_.version()) return;
  const memory::dim C = input_, H = hidden_, G = gates();
  w_layer_bf16_.resize(static_cast<std::size_t>(C * G * H));
  w_iter_bf16_.resize(static_cast<std::size_t>(H * G * H));
  compute::to_bf16(C * G * H, w_layer_.value.data(), w_layer_bf16_.data());
  compute::to_bf16(H * G * H, w_iter_.value.data(), w_iter_bf16_.data());
  bf16_version_ = params_.version();
}

void RnnCell::to_bf16_buffers(int T, int N, const float* x, const float* h0) {
  const std::int64_t nx = static_cast<std::int64_t>(T) * N * input_, ny = static_cast<std::int64_t>(T) * N * hidden_,
                     ns = static_cast<std::int64_t>(N) * hidden_;
  x_bf16_.resize(static_cast<std::size_t>(nx));
  h0_bf16_.resize(static_cast<std::size_t>(ns));
  y_bf16_.resize(static_cast<std::size_t>(ny));
  hT_bf16_.resize(static_cast<std::size_t>(ns));
  compute::to_bf16(nx, x, x_bf16_.data());
  compute::to_bf16(ns, h0, h0_bf16_.data());
}

void RnnCell::run_forward_bf16(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT,
                               float* cT) {
  Forward& f = forward_primitive(T, N);
  const memory::dim C = input_, H = hidden_, G = gates();
  refresh_bf16_weights();
  to_bf16_buffers(T, N, x, h0);
  const std::int64_t ny = static_cast<std::int64_t>(T) * N * H, ns = static_cast<std::int64_t>(N) * H;
  const memory::dims s = {1, 1, N, H};
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC_LAYER, half({T, N, C}, tag::tnc, x_bf16_.data())},
      {DNNL_ARG_SRC_ITER, half(s, tag::ldnc, h0_bf16_.data())},
      {DNNL_ARG_WEIGHTS_LAYER, half({1, 1, C, G, H}, tag::ldigo, w_layer_bf16_.data())},
      {DNNL_ARG_WEIGHTS_ITER, half({1, 1, H, G, H}, tag::ldigo, w_iter_bf16_.data())},
      {DNNL_ARG_BIAS, mem(md({1, 1, 4, H}, tag::ldgo), bias_.value.data())},
      {DNNL_ARG_DST_LAYER, half({T, N, H}, tag::tnc, y_bf16_.data())},
      {DNNL_ARG_DST_ITER, half(s, tag::ldnc, hT_bf16_.data())},
  };
  if (cell_ == CellType::kLstm) {
    args.emplace(DNNL_ARG_SRC_ITER_C, mem(md(s, tag::ldnc), c0));
    args.emplace(DNNL_ARG_DST_ITER_C, mem(md(s, tag::ldnc), cT));
  }
  args.emplace(DNNL_ARG_SCRATCHPAD, compute::scratchpad_for(*f.pd));
  f.prim.execute(compute::stream(), args);
  compute::stream().wait();
  compute::from_bf16(ny, y_bf16_.data(), y);
  compute::from_bf16(ns, hT_bf16_.data(), hT);
  compute::add_flops(2.0 * T * N * G * H * static_cast<double>(C + H));
}

void RnnCell::run_forward(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT,
                          float* cT) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  if (bf16_) return run_forward_bf16(T, N, x, h0, c0, y, hT, cT);
  const bool lstm = cell_ == CellType::kLstm;
  Forward& f = forward_primitive(T, N);
  const memory::dim C = input_, H = hidden_, G = gates();
  const auto s = md({1, 1, N, H}, tag::ldnc);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC_LAYER, mem(md({T, N, C}, tag::tnc), x)},
      {DNNL_ARG_SRC_ITER, mem(s, h0)},
      {DNNL_ARG_WEIGHTS_LAYER, mem(md({1, 1, C, G, H}, tag::ldigo), w_layer_.value.data())},
      {DNNL_ARG_WEIGHTS_ITER, mem(md({1, 1, H, G, H}, tag::ldigo), w_iter_.value.data())},
      {DNNL_ARG_BIAS, mem(md({1, 1, 4, H}, tag::ldgo), bias_.value.data())},
      {DNNL_ARG_DST_LAYER, mem(md({T, N, H}, tag::tnc), y)},
      {DNNL_ARG_DST_ITER, mem(s, hT)},
  };
  if (lstm) {
    args.emplace(DNNL_ARG_SRC_ITER_C, mem(s, c0));
    args.emplace(DNNL_ARG_DST_ITER_C, mem(s, cT));
  }
  args.emplace(DNNL_ARG_SCRATCHPAD, compute::scratchpad_for(*f.pd));
  f.prim.execute(compute::stream(), args);
  compute::stream().wait();
  compute::add_flops(2.0 * T * N * G * H * static_cast<double>(C + H));
}

void RnnCell::forward(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT, float* cT) {
  const bool lstm = cell_ == CellType::kLstm;
  const std::int64_t state = static_cast<std::int64_t>(N) * hidden_;
  if (zeros_.size() < state) {
    zeros_.resize({state});
    zeros_.zero();
  }
  if (!h0) h0 = zeros_.data();
  if (!c0) c0 = zeros_.data();
  Tensor scratch_h, scratch_c;
  if (!hT) {
    scratch_h.resize({state});
    hT = scratch_h.data();
  }
  if (lstm && !cT) {
    scratch_c.resize({state});
    cT = scratch_c.data();
  }
  // Long sequences in chunks of kInferenceChunk steps: oneDNN's scratchpad grows with the
  // steps of one call (~1 MB per step at N=64, H=256). The chunk length does not depend on N,
  // so results do not depend on the batch size.
  const memory::dim C = input_, H = hidden_;
  Tensor carry_h, carry_c;
  for (int t0 = 0; t0 < T; t0 += kInferenceChunk) {
    const int len = std::min(kInferenceChunk, T - t0);
    const bool last = t0 + len == T;
    Tensor next_h, next_c;
    if (!last) {
      next_h.resize({state});
      if (lstm) next_c.resize({state});
    }
    run_forward(len, N, x + static_cast<std::int64_t>(t0) * N * C, t0 == 0 ? h0 : carry_h.data(),
                t0 == 0 ? c0 : carry_c.data(), y + static_cast<std::int64_t>(t0) * N * H, last ? hT : next_h.data(),
                last ? cT : (lstm ? next_c.data() : nullptr));
    carry_h = std::move(next_h);
    carry_c = std::move(next_c);
  }
}

}  // namespace gloss::nn
