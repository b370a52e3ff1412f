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

RnnCell::Forward& RnnCell::forward_primitive(bool training, int T, int N) {
  const bool half = training ? bf16_train_ : bf16_;
  const auto key = std::make_tuple(training, half, T, N, compute::threads());
  auto it = forward_.find(key);
  if (it != forward_.end()) return it->second;
  if (forward_.size() >= kMaxCachedShapes) forward_.clear();  // bounded: each holds JIT code
  const memory::dim C = input_, H = hidden_, G = gates();
  const auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
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

RnnCell::Backward& RnnCell::backward_primitive(int T, int N) {
  const auto key = std::make_tuple(bf16_train_, T, N, compute::threads());
  auto it = backward_.find(key);
  if (it != backward_.end()) return it->second;
  if (backward_.size() >= kMaxCachedShapes) backward_.clear();
  const memory::dim C = input_, H = hidden_, G = gates();
  const auto dir = dnnl::rnn_direction::unidirectional_left2right;
  // Forward's values in its type; their gradients always f32 (oneDNN 2.6 requires it).
  const dt type = bf16_train_ ? dt::bf16 : dt::f32;
  const memory::desc x({T, N, C}, type, tag::tnc), y({T, N, H}, type, tag::tnc), s({1, 1, N, H}, type, tag::ldnc);
  const memory::desc wl({1, 1, C, G, H}, type, tag::ldgoi), wi({1, 1, H, G, H}, type, tag::ldgoi);
  const auto b = md({1, 1, 4, H}, tag::ldgo), sc = md({1, 1, N, H}, tag::ldnc);
  const auto dx = md({T, N, C}, tag::tnc), dy = md({T, N, H}, tag::tnc), ds = md({1, 1, N, H}, tag::ldnc);
  const auto dwl = md({1, 1, C, G, H}, tag::ldigo), dwi = md({1, 1, H, G, H}, tag::ldigo);
  const auto& fwd = forward_primitive(true, T, N);
  Backward bw;
  if (cell_ == CellType::kGru) {
    dnnl::lbr_gru_backward::desc d(dnnl::prop_kind::backward, dir, x, s, wl, wi, b, y, s, dx, ds, dwl, dwi, b, dy, ds);
    auto pd = std::make_unique<dnnl::lbr_gru_backward::primitive_desc>(
        d, compute::user_scratchpad(), compute::engine(),
        static_cast<const dnnl::lbr_gru_forward::primitive_desc&>(*fwd.pd));
    bw.prim = dnnl::lbr_gru_backward(*pd);
    bw.pd = std::move(pd);
  } else {
    dnnl::lstm_backward::desc d(dnnl::prop_kind::backward, dir, x, s, sc, wl, wi, b, y, s, sc, dx, ds, ds, dwl, dwi, b,
                                dy, ds, ds);
    auto pd = std::make_unique<dnnl::lstm_backward::primitive_desc>(
        d, compute::user_scratchpad(), compute::engine(),
        static_cast<const dnnl::lstm_forward::primitive_desc&>(*fwd.pd));
    bw.prim = dnnl::lstm_backward(*pd);
    bw.pd = std::move(pd);
  }
  return backward_.emplace(key, std::move(bw)).first->second;
}

std::size_t RnnCell::training_cache_bytes(int T, int N) {
  const std::size_t states = static_cast<std::size_t>(N) * static_cast<std::size_t>(hidden_) * sizeof(float) *
                             (cell_ == CellType::kLstm ? 4 : 2);
  return forward_primitive(true, T, N).pd->workspace_desc().get_size() + states;
}

void RnnCell::refresh_backward_weights() {
  if (bwd_master_) {
    if (bwd_master_->bwd_version_ != params_.version())
      throw std::logic_error("a replica's backward ran before its master's weights were refreshed");
    return;
  }
  if (bwd_version_ == params_.version()) return;
  const memory::dim C = input_, H = hidden_, G = gates();
  auto reorder = [](const float* from, void* to, dt type, const memory::dims& dims) {
    auto src = mem(md(dims, tag::ldigo), from);
    memory dst(memory::desc(dims, type, tag::ldgoi), compute::engine(), to);
    dnnl::reorder(src, dst).execute(compute::stream(), src, dst);
  };
  if (bf16_train_) {  // oneDNN's reorder rounds to nearest even, as compute::to_bf16
    w_layer_bwd16_.resize(static_cast<std::size_t>(C * G * H));
    w_iter_bwd16_.resize(static_cast<std::size_t>(H * G * H));
    reorder(w_layer_.value.data(), w_layer_bwd16_.data(), dt::bf16, {1, 1, C, G, H});
    reorder(w_iter_.value.data(), w_iter_bwd16_.data(), dt::bf16, {1, 1, H, G, H});
  } else {
    w_layer_bwd_.resize({C, G, H});
    w_iter_bwd_.resize({H, G, H});
    reorder(w_layer_.value.data(), w_layer_bwd_.data(), dt::f32, {1, 1, C, G, H});
    reorder(w_iter_.value.data(), w_iter_bwd_.data(), dt::f32, {1, 1, H, G, H});
  }
  compute::stream().wait();
  bwd_version_ = params_.version();
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

void RnnCell::to_bf16_buffers(int T, int N, const float* x, const float* h0, const float* y, const float* hT) {
  const std::int64_t nx = static_cast<std::int64_t>(T) * N * input_, ny = static_cast<std::int64_t>(T) * N * hidden_,
                     ns = static_cast<std::int64_t>(N) * hidden_;
  x_bf16_.resize(static_cast<std::size_t>(nx));
  h0_bf16_.resize(static_cast<std::size_t>(ns));
  y_bf16_.resize(static_cast<std::size_t>(ny));
  hT_bf16_.resize(static_cast<std::size_t>(ns));
  compute::to_bf16(nx, x, x_bf16_.data());
  compute::to_bf16(ns, h0, h0_bf16_.data());
  if (y) compute::to_bf16(ny, y, y_bf16_.data());
  if (hT) compute::to_bf16(ns, hT, hT_bf16_.data());
}

void RnnCell::run_forward_bf16(bool training, int T, int N, const float* x, const float* h0, const float* c0, float* y,
                               float* hT, float* cT, dnnl::memory* workspace) {
  Forward& f = forward_primitive(training, T, N);
  const memory::dim C = input_, H = hidden_, G = gates();
  refresh_bf16_weights();
  to_bf16_buffers(T, N, x, h0, nullptr, nullptr);
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
  if (workspace) args.emplace(DNNL_ARG_WORKSPACE, *workspace);
  args.emplace(DNNL_ARG_SCRATCHPAD, compute::scratchpad_for(*f.pd));
  f.prim.execute(compute::stream(), args);
  compute::stream().wait();
  compute::from_bf16(ny, y_bf16_.data(), y);
  compute::from_bf16(ns, hT_bf16_.data(), hT);
  compute::add_flops(2.0 * T * N * G * H * static_cast<double>(C + H));
}

void RnnCell::run_forward(bool training, int T, int N, const float* x, const float* h0, const float* c0, float* y,
                          float* hT, float* cT, dnnl::memory* workspace) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  if (training ? bf16_train_ : bf16_) return run_forward_bf16(training, T, N, x, h0, c0, y, hT, cT, workspace);
  const bool lstm = cell_ == CellType::kLstm;
  Forward& f = forward_primitive(training, T, N);
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
  if (workspace) args.emplace(DNNL_ARG_WORKSPACE, *workspace);
  args.emplace(DNNL_ARG_SCRATCHPAD, compute::scratchpad_for(*f.pd));
  f.prim.execute(compute::stream(), args);
  compute::stream().wait();
  compute::add_flops(2.0 * T * N * G * H * static_cast<double>(C + H));
}

dnnl::memory& RnnCell::prepare_workspace(Cache& cache, int T, int N) {
  const auto ws = forward_primitive(true, T, N).pd->workspace_desc();
  cache.workspace_buffer.resize({static_cast<std::int64_t>((ws.get_size() + sizeof(float) - 1) / sizeof(float))});
  cache.workspace = memory(ws, compute::engine(), cache.workspace_buffer.data());
  return cache.workspace;
}

void RnnCell::forward(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT, float* cT,
                      Cache* cache) {
  const std::int64_t state = static_cast<std::int64_t>(N) * hidden_;
  if (zeros_.size() < state) {
    zeros_.resize({state});
    zeros_.zero();
  }
  if (!h0) h0 = zeros_.data();
  if (!c0) c0 = zeros_.data();
  if (!cache) {
    forward_inference(T, N, x, h0, c0, y, hT, cT);
    return;
  }
  forward_training(T, N, x, h0, c0, y, *cache);
  if (hT) std::copy(cache->hT.data(), cache->hT.data() + state, hT);
  if (cell_ == CellType::kLstm && cT) std::copy(cache->cT.data(), cache->cT.data() + state, cT);
}

void RnnCell::forward_inference(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT,
                                float* cT) {
  const bool lstm = cell_ == CellType::kLstm;
  const std::int64_t state = static_cast<std::int64_t>(N) * hidden_;
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
    run_forward(false, len, N, x + static_cast<std::int64_t>(t0) * N * C, t0 == 0 ? h0 : carry_h.data(),
                t0 == 0 ? c0 : carry_c.data(), y + static_cast<std::int64_t>(t0) * N * H, last ? hT : next_h.data(),
                last ? cT : (lstm ? next_c.data() : nullptr), nullptr);
    carry_h = std::move(next_h);
    carry_c = std::move(next_c);
  }
}

void RnnCell::forward_training(int T, int N, const float* x, const float* h0, const float* c0, float* y, Cache& cache) {
  const bool lstm = cell_ == CellType::kLstm;
  const std::int64_t state = static_cast<std::int64_t>(N) * hidden_;
  cache.T = T;
  cache.N = N;
  cache.x = x;
  cache.y = y;
  cache.h0.resize({N, hidden_});
  std::copy(h0, h0 + state, cache.h0.data());
  cache.hT.resize({N, hidden_});
  if (lstm) {
    cache.c0.resize({N, hidden_});
    std::copy(c0, c0 + state, cache.c0.data());
    cache.cT.resize({N, hidden_});
  }
  cache.chunk = T;
  if (cache.budget > 0 && T > 1) {
    const std::size_t need = training_cache_bytes(T, N);
    if (need > cache.budget)
      cache.chunk = std::max(
          1, static_cast<int>(static_cast<double>(T) * static_cast<double>(cache.budget) / static_cast<double>(need)));
  }
  if (cache.chunk == T) {
    run_forward(true, T, N, x, cache.h0.data(), lstm ? cache.c0.data() : nullptr, y, cache.hT.data(),
                lstm ? cache.cT.data() : nullptr, &prepare_workspace(cache, T, N));
    return;
  }
  // Chunks of steps; only each chunk's initial state is kept (the workspace is recomputed).
  const int chunk = cache.chunk, chunks = (T + chunk - 1) / chunk;
  const memory::dim C = input_, H = hidden_;
  cache.bounds_h.resize({chunks, N, H});
  if (lstm) cache.bounds_c.resize({chunks, N, H});
  for (int k = 0; k < chunks; ++k) {
    const int t0 = k * chunk, len = std::min(chunk, T - t0);
    float* bh = cache.bounds_h.data() + k * state;
    float* bc = lstm ? cache.bounds_c.data() + k * state : nullptr;
    if (k == 0) {
      std::copy(h0, h0 + state, bh);
      if (lstm) std::copy(c0, c0 + state, bc);
    }
    const bool last = k == chunks - 1;
    float* next_h = last ? cache.hT.data() : cache.bounds_h.data() + (k + 1) * state;
    float* next_c = !lstm ? nullptr : last ? cache.cT.data() : cache.bounds_c.data() + (k + 1) * state;
    run_forward(true, len, N, x + static_cast<std::int64_t>(t0) * N * C, bh, bc,
                y + static_cast<std::int64_t>(t0) * N * H, next_h, next_c, &prepare_workspace(cache, len, N));
  }
}

void RnnCell::run_backward(int T, int N, const float* x, const float* h0, const float* c0, const float* y,
                           const float* hT, const float* cT, dnnl::memory& workspace, const float* dy, const float* dhT,
                           const float* dcT, float* dx, float* dh0, float* dc0) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const bool lstm = cell_ == CellType::kLstm;
  const memory::dim C = input_, H = hidden_, G = gates();
  Backward& b = backward_primitive(T, N);
  const auto s = md({1, 1, N, H}, tag::ldnc);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC_LAYER, mem(md({T, N, C}, tag::tnc), x)},
      {DNNL_ARG_SRC_ITER, mem(s, h0)},
      {DNNL_ARG_WEIGHTS_LAYER,
       mem(md({1, 1, C, G, H}, tag::ldgoi), (bwd_master_ ? bwd_master_ : this)->w_layer_bwd_.data())},
      {DNNL_ARG_WEIGHTS_ITER,
       mem(md({1, 1, H, G, H}, tag::ldgoi), (bwd_master_ ? bwd_master_ : this)->w_iter_bwd_.data())},
      {DNNL_ARG_BIAS, mem(md({1, 1, 4, H}, tag::ldgo), bias_.value.data())},
      {DNNL_ARG_DST_LAYER, mem(md({T, N, H}, tag::tnc), y)},
      {DNNL_ARG_DST_ITER, mem(s, hT)},
      {DNNL_ARG_DIFF_SRC_LAYER, mem(md({T, N, C}, tag::tnc), dx)},
      {DNNL_ARG_DIFF_SRC_ITER, mem(s, dh0)},
      {DNNL_ARG_DIFF_WEIGHTS_LAYER, mem(md({1, 1, C, G, H}, tag::ldigo), w_layer_.grad.data())},
      {DNNL_ARG_DIFF_WEIGHTS_ITER, mem(md({1, 1, H, G, H}, tag::ldigo), w_iter_.grad.data())},
      {DNNL_ARG_DIFF_BIAS, mem(md({1, 1, 4, H}, tag::ldgo), bias_.grad.data())},
      {DNNL_ARG_DIFF_DST_LAYER, mem(md({T, N, H}, tag::tnc), dy)},
      {DNNL_ARG_DIFF_DST_ITER, mem(s, dhT)},
      {DNNL_ARG_WORKSPACE, workspace},
  };
  if (lstm) {
    args.emplace(DNNL_ARG_SRC_ITER_C, mem(s, c0));
    args.emplace(DNNL_ARG_DST_ITER_C, mem(s, cT));
    args.emplace(DNNL_ARG_DIFF_SRC_ITER_C, mem(s, dc0));
    args.emplace(DNNL_ARG_DIFF_DST_ITER_C, mem(s, dcT));
  }
  if (bf16_train_) run_backward_bf16(T, N, x, h0, y, hT, args);
  args.emplace(DNNL_ARG_SCRATCHPAD, compute::scratchpad_for(*b.pd));
  b.prim.execute(compute::stream(), args);
  compute::stream().wait();
  compute::add_flops(4.0 * T * N * G * H * static_cast<double>(C + H));
}

void RnnCell::run_backward_bf16(int T, int N, const float* x, const float* h0, const float* y, const float* hT,
                                std::unordered_map<int, dnnl::memory>& args) {
  const memory::dim C = input_, H = hidden_, G = gates();
  to_bf16_buffers(T, N, x, h0, y, hT);  // y and hT came from bf16: converted back exactly
  const RnnCell& w = bwd_master_ ? *bwd_master_ : *this;
  const std::uint16_t* wl = w.w_layer_bwd16_.data();
  const std::uint16_t* wi = w.w_iter_bwd16_.data();
  args[DNNL_ARG_SRC_LAYER] = half({T, N, C}, tag::tnc, x_bf16_.data());
  args[DNNL_ARG_SRC_ITER] = half({1, 1, N, H}, tag::ldnc, h0_bf16_.data());
  args[DNNL_ARG_DST_LAYER] = half({T, N, H}, tag::tnc, y_bf16_.data());
  args[DNNL_ARG_DST_ITER] = half({1, 1, N, H}, tag::ldnc, hT_bf16_.data());
  args[DNNL_ARG_WEIGHTS_LAYER] = half({1, 1, C, G, H}, tag::ldgoi, wl);
  args[DNNL_ARG_WEIGHTS_ITER] = half({1, 1, H, G, H}, tag::ldgoi, wi);
}

void RnnCell::backward(Cache& cache, const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                       float* dc0) {
  const bool lstm = cell_ == CellType::kLstm;
  const int T = cache.T, N = cache.N;
  const memory::dim C = input_, H = hidden_;
  const std::int64_t seq = static_cast<std::int64_t>(T) * N * H, state = static_cast<std::int64_t>(N) * H;
  if (zeros_.size() < seq) {
    zeros_.resize({seq});
    zeros_.zero();
  }
  refresh_backward_weights();
  Tensor scratch_dh, scratch_dc, scratch_dx;
  if (!dh0) {
    scratch_dh.resize({state});
    dh0 = scratch_dh.data();
  }
  if (lstm && !dc0) {
    scratch_dc.resize({state});
    dc0 = scratch_dc.data();
  }
  if (!dx) {
    scratch_dx.resize({static_cast<std::int64_t>(T) * N * C});
    dx = scratch_dx.data();
  }
  if (!dy) dy = zeros_.data();
  if (!dhT) dhT = zeros_.data();
  if (!dcT) dcT = zeros_.data();
  if (cache.chunk == T) {
    run_backward(T, N, cache.x, cache.h0.data(), lstm ? cache.c0.data() : nullptr, cache.y, cache.hT.data(),
                 lstm ? cache.cT.data() : nullptr, cache.workspace, dy, dhT, dcT, dx, dh0, dc0);
    return;
  }
  backward_chunked(cache, dy, dhT, dcT, dx, dh0, dc0);
}

void RnnCell::backward_chunked(Cache& cache, const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                               float* dc0) {
  const bool lstm = cell_ == CellType::kLstm;
  const int T = cache.T, N = cache.N;
  const memory::dim C = input_, H = hidden_;
  const std::int64_t state = static_cast<std::int64_t>(N) * H;
  // Last chunk first; each chunk's forward is recomputed from its initial state.
  const int chunk = cache.chunk, chunks = (T + chunk - 1) / chunk;
  Tensor carry_h({N, H}), carry_c({N, H}), next_h({N, H}), next_c({N, H});
  std::copy(dhT, dhT + state, carry_h.data());
  if (lstm) std::copy(dcT, dcT + state, carry_c.data());
  cache.y_chunk.resize({chunk, N, H});
  cache.h_chunk.resize({N, H});
  cache.c_chunk.resize({N, H});
  for (int k = chunks - 1; k >= 0; --k) {
    const int t0 = k * chunk, len = std::min(chunk, T - t0);
    const float* x = cache.x + static_cast<std::int64_t>(t0) * N * C;
    const float* bh = cache.bounds_h.data() + k * state;
    const float* bc = lstm ? cache.bounds_c.data() + k * state : nullptr;
    auto& ws = prepare_workspace(cache, len, N);
    {
      const compute::UncountedFlops recompute;
      run_forward(true, len, N, x, bh, bc, cache.y_chunk.data(), cache.h_chunk.data(),
                  lstm ? cache.c_chunk.data() : nullptr, &ws);
    }
    const bool first = k == 0;
    run_backward(len, N, x, bh, bc, cache.y_chunk.data(), cache.h_chunk.data(), lstm ? cache.c_chunk.data() : nullptr,
                 ws, dy + static_cast<std::int64_t>(t0) * N * H, carry_h.data(), lstm ? carry_c.data() : nullptr,
                 dx + static_cast<std::int64_t>(t0) * N * C, first ? dh0 : next_h.data(),
                 !lstm   ? nullptr
                 : first ? dc0
                         : next_c.data());
    std::swap(carry_h, next_h);
    if (lstm) std::swap(carry_c, next_c);
  }
}

}  // namespace gloss::nn
