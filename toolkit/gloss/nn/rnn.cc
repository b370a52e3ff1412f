#include "gloss/nn/rnn.h"

#include <stdexcept>
#include <unordered_map>

#include "gloss/tensor/compute.h"
#include "gloss/util/error.h"

namespace gloss::nn {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::desc md(const memory::dims& dims, tag t) { return memory::desc(dims, dt::f32, t); }

memory mem(const memory::desc& d, const float* p) { return memory(d, compute::engine(), const_cast<float*>(p)); }

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
  const auto key = std::make_tuple(training, T, N);
  auto it = forward_.find(key);
  if (it != forward_.end()) return it->second;
  const memory::dim C = input_, H = hidden_, G = gates();
  const auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  const auto dir = dnnl::rnn_direction::unidirectional_left2right;
  const auto x = md({T, N, C}, tag::tnc), y = md({T, N, H}, tag::tnc), s = md({1, 1, N, H}, tag::ldnc);
  const auto wl = md({1, 1, C, G, H}, tag::ldigo), wi = md({1, 1, H, G, H}, tag::ldigo), b = md({1, 1, 4, H}, tag::ldgo);
  Forward f;
  if (cell_ == CellType::kGru) {
    dnnl::lbr_gru_forward::desc d(prop, dir, x, s, wl, wi, b, y, s);
    auto pd = std::make_unique<dnnl::lbr_gru_forward::primitive_desc>(d, compute::engine());
    f.prim = dnnl::lbr_gru_forward(*pd);
    f.pd = std::move(pd);
  } else {
    dnnl::lstm_forward::desc d(prop, dir, x, s, s, wl, wi, b, y, s, s);
    auto pd = std::make_unique<dnnl::lstm_forward::primitive_desc>(d, compute::engine());
    f.prim = dnnl::lstm_forward(*pd);
    f.pd = std::move(pd);
  }
  return forward_.emplace(key, std::move(f)).first->second;
}

RnnCell::Backward& RnnCell::backward_primitive(int T, int N) {
  const auto key = std::make_pair(T, N);
  auto it = backward_.find(key);
  if (it != backward_.end()) return it->second;
  const memory::dim C = input_, H = hidden_, G = gates();
  const auto dir = dnnl::rnn_direction::unidirectional_left2right;
  const auto x = md({T, N, C}, tag::tnc), y = md({T, N, H}, tag::tnc), s = md({1, 1, N, H}, tag::ldnc);
  const auto wl = md({1, 1, C, G, H}, tag::ldgoi), wi = md({1, 1, H, G, H}, tag::ldgoi), b = md({1, 1, 4, H}, tag::ldgo);
  const auto dwl = md({1, 1, C, G, H}, tag::ldigo), dwi = md({1, 1, H, G, H}, tag::ldigo);
  const auto& fwd = forward_primitive(true, T, N);
  Backward bw;
  if (cell_ == CellType::kGru) {
    dnnl::lbr_gru_backward::desc d(dnnl::prop_kind::backward, dir, x, s, wl, wi, b, y, s, x, s, dwl, dwi, b, y, s);
    auto pd = std::make_unique<dnnl::lbr_gru_backward::primitive_desc>(
        d, compute::engine(), static_cast<const dnnl::lbr_gru_forward::primitive_desc&>(*fwd.pd));
    bw.prim = dnnl::lbr_gru_backward(*pd);
    bw.pd = std::move(pd);
  } else {
    dnnl::lstm_backward::desc d(dnnl::prop_kind::backward, dir, x, s, s, wl, wi, b, y, s, s, x, s, s, dwl, dwi, b, y, s,
                                s);
    auto pd = std::make_unique<dnnl::lstm_backward::primitive_desc>(
        d, compute::engine(), static_cast<const dnnl::lstm_forward::primitive_desc&>(*fwd.pd));
    bw.prim = dnnl::lstm_backward(*pd);
    bw.pd = std::move(pd);
  }
  return backward_.emplace(key, std::move(bw)).first->second;
}

void RnnCell::refresh_backward_weights() {
  if (bwd_version_ == params_.version()) return;
  const memory::dim C = input_, H = hidden_, G = gates();
  w_layer_bwd_.resize({C, G, H});
  w_iter_bwd_.resize({H, G, H});
  auto reorder = [](const float* from, float* to, const memory::dims& dims) {
    auto src = mem(md(dims, tag::ldigo), from);
    auto dst = mem(md(dims, tag::ldgoi), to);
    dnnl::reorder(src, dst).execute(compute::stream(), src, dst);
  };
  reorder(w_layer_.value.data(), w_layer_bwd_.data(), {1, 1, C, G, H});
  reorder(w_iter_.value.data(), w_iter_bwd_.data(), {1, 1, H, G, H});
  compute::stream().wait();
  bwd_version_ = params_.version();
}

void RnnCell::forward(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT, float* cT,
                      Cache* cache) {
  const bool lstm = cell_ == CellType::kLstm;
  const std::int64_t state = static_cast<std::int64_t>(N) * hidden_;
  if (zeros_.size() < state) {
    zeros_.resize({state});
    zeros_.zero();
  }
  Forward& f = forward_primitive(cache != nullptr, T, N);
  const memory::dim C = input_, H = hidden_, G = gates();
  const auto s = md({1, 1, N, H}, tag::ldnc);
  Tensor scratch_h, scratch_c;
  float* h_out = hT;
  float* c_out = cT;
  if (cache) {
    cache->T = T;
    cache->N = N;
    cache->x = x;
    cache->y = y;
    cache->h0.resize({N, hidden_});
    std::copy(h0 ? h0 : zeros_.data(), (h0 ? h0 : zeros_.data()) + state, cache->h0.data());
    cache->hT.resize({N, hidden_});
    h_out = cache->hT.data();
    if (lstm) {
      cache->c0.resize({N, hidden_});
      std::copy(c0 ? c0 : zeros_.data(), (c0 ? c0 : zeros_.data()) + state, cache->c0.data());
      cache->cT.resize({N, hidden_});
      c_out = cache->cT.data();
    }
    const auto ws = f.pd->workspace_desc();
    cache->workspace_buffer.resize({static_cast<std::int64_t>((ws.get_size() + sizeof(float) - 1) / sizeof(float))});
    cache->workspace = memory(ws, compute::engine(), cache->workspace_buffer.data());
  }
  if (!h_out) {
    scratch_h.resize({state});
    h_out = scratch_h.data();
  }
  if (lstm && !c_out) {
    scratch_c.resize({state});
    c_out = scratch_c.data();
  }
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC_LAYER, mem(md({T, N, C}, tag::tnc), x)},
      {DNNL_ARG_SRC_ITER, mem(s, cache ? cache->h0.data() : (h0 ? h0 : zeros_.data()))},
      {DNNL_ARG_WEIGHTS_LAYER, mem(md({1, 1, C, G, H}, tag::ldigo), w_layer_.value.data())},
      {DNNL_ARG_WEIGHTS_ITER, mem(md({1, 1, H, G, H}, tag::ldigo), w_iter_.value.data())},
      {DNNL_ARG_BIAS, mem(md({1, 1, 4, H}, tag::ldgo), bias_.value.data())},
      {DNNL_ARG_DST_LAYER, mem(md({T, N, H}, tag::tnc), y)},
      {DNNL_ARG_DST_ITER, mem(s, h_out)},
  };
  if (lstm) {
    args.emplace(DNNL_ARG_SRC_ITER_C, mem(s, cache ? cache->c0.data() : (c0 ? c0 : zeros_.data())));
    args.emplace(DNNL_ARG_DST_ITER_C, mem(s, c_out));
  }
  if (cache) args.emplace(DNNL_ARG_WORKSPACE, cache->workspace);
  f.prim.execute(compute::stream(), args);
  compute::stream().wait();
  if (cache && hT) std::copy(cache->hT.data(), cache->hT.data() + state, hT);
  if (cache && lstm && cT) std::copy(cache->cT.data(), cache->cT.data() + state, cT);
  compute::add_flops(2.0 * T * N * G * H * static_cast<double>(C + H));
}

void RnnCell::backward(Cache& cache, const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                       float* dc0) {
  const bool lstm = cell_ == CellType::kLstm;
  const int T = cache.T, N = cache.N;
  const memory::dim C = input_, H = hidden_, G = gates();
  const std::int64_t seq = static_cast<std::int64_t>(T) * N * H, state = static_cast<std::int64_t>(N) * H;
  if (zeros_.size() < seq) {
    zeros_.resize({seq});
    zeros_.zero();
  }
  refresh_backward_weights();
  Backward& b = backward_primitive(T, N);
  const auto s = md({1, 1, N, H}, tag::ldnc);
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
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC_LAYER, mem(md({T, N, C}, tag::tnc), cache.x)},
      {DNNL_ARG_SRC_ITER, mem(s, cache.h0.data())},
      {DNNL_ARG_WEIGHTS_LAYER, mem(md({1, 1, C, G, H}, tag::ldgoi), w_layer_bwd_.data())},
      {DNNL_ARG_WEIGHTS_ITER, mem(md({1, 1, H, G, H}, tag::ldgoi), w_iter_bwd_.data())},
      {DNNL_ARG_BIAS, mem(md({1, 1, 4, H}, tag::ldgo), bias_.value.data())},
      {DNNL_ARG_DST_LAYER, mem(md({T, N, H}, tag::tnc), cache.y)},
      {DNNL_ARG_DST_ITER, mem(s, cache.hT.data())},
      {DNNL_ARG_DIFF_SRC_LAYER, mem(md({T, N, C}, tag::tnc), dx)},
      {DNNL_ARG_DIFF_SRC_ITER, mem(s, dh0)},
      {DNNL_ARG_DIFF_WEIGHTS_LAYER, mem(md({1, 1, C, G, H}, tag::ldigo), w_layer_.grad.data())},
      {DNNL_ARG_DIFF_WEIGHTS_ITER, mem(md({1, 1, H, G, H}, tag::ldigo), w_iter_.grad.data())},
      {DNNL_ARG_DIFF_BIAS, mem(md({1, 1, 4, H}, tag::ldgo), bias_.grad.data())},
      {DNNL_ARG_DIFF_DST_LAYER, mem(md({T, N, H}, tag::tnc), dy ? dy : zeros_.data())},
      {DNNL_ARG_DIFF_DST_ITER, mem(s, dhT ? dhT : zeros_.data())},
      {DNNL_ARG_WORKSPACE, cache.workspace},
  };
  if (lstm) {
    args.emplace(DNNL_ARG_SRC_ITER_C, mem(s, cache.c0.data()));
    args.emplace(DNNL_ARG_DST_ITER_C, mem(s, cache.cT.data()));
    args.emplace(DNNL_ARG_DIFF_SRC_ITER_C, mem(s, dc0));
    args.emplace(DNNL_ARG_DIFF_DST_ITER_C, mem(s, dcT ? dcT : zeros_.data()));
  }
  b.prim.execute(compute::stream(), args);
  compute::stream().wait();
  compute::add_flops(4.0 * T * N * G * H * static_cast<double>(C + H));
}

}  // namespace gloss::nn
