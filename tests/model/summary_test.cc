// gloss summary's figures against the model itself: parameter counts against the registered
// parameters, FLOPs against the counter that bench train reads, on batches without padding
// (every source S words, every target T), for each kind of layer a configuration can have.
#include <catch2/catch.hpp>

#include "gloss/model/seq2seq.h"
#include "gloss/model/summary.h"
#include "gloss/tensor/compute.h"

using namespace gloss;
using namespace gloss::model;

namespace {

ModelConfig small() {
  ModelConfig c;
  c.src_vocab = 37;
  c.tgt_vocab = 41;
  c.emb_dim = 8;
  c.enc_hidden = 6;
  c.dec_hidden = 10;
  c.att_dim = 7;
  c.readout_dim = 8;
  c.dropout_emb = c.dropout_rnn = c.dropout_readout = 0.0f;
  return c;
}

struct FullBatch {
  int N, S, T;
  std::vector<std::int32_t> src, lengths, tgt_in, tgt_out;
  FullBatch(int n, int s, int t) : N(n), S(s), T(t) {
    for (int i = 0; i < S * N; ++i) src.push_back(4 + i % 30);
    lengths.assign(static_cast<std::size_t>(N), S);
    for (int i = 0; i < T * N; ++i) {
      tgt_in.push_back(i < N ? 2 : 4 + i % 35);
      tgt_out.push_back(i >= (T - 1) * N ? 3 : 4 + (i + N) % 35);
    }
  }
  BatchView view() const { return {N, S, T, src.data(), lengths.data(), tgt_in.data(), tgt_out.data()}; }
};

double counted_training_flops(Seq2Seq& model, const FullBatch& b) {
  compute::reset_flops();
  model.forward_backward(b.view(), 0.1f, nullptr, true);
  return compute::flops();
}

double counted_inference_flops(Seq2Seq& model, const FullBatch& b) {
  compute::reset_flops();
  Seq2Seq::DecoderState state;
  model.start(state, b.view(), 1);
  std::vector<std::int32_t> prev(static_cast<std::size_t>(b.N), 2);
  for (int i = 0; i < b.T; ++i) {
    model.step(state, prev.data());
    model.advance(state);
    std::fill(prev.begin(), prev.end(), 5);
  }
  return compute::flops();
}

void check(const ModelConfig& config) {
  compute::set_threads(1);
  nn::ParameterSet params;
  Seq2Seq model(config, params);
  const ModelSummary s = summarize(config, params);
  CHECK(s.total_params == params.num_values());
  std::int64_t sum = 0;
  for (const auto& l : s.layers) sum += l.params;
  CHECK(sum == params.num_values());

  const FullBatch b(3, 5, 4);
  const Lengths lengths{static_cast<double>(b.S) / b.T, static_cast<double>(b.T)};
  const double forward = s.forward_per_target_token(lengths) * b.N * b.T;
  CHECK(counted_training_flops(model, b) == Approx(3 * forward).epsilon(1e-9));
  CHECK(counted_inference_flops(model, b) == Approx(forward).epsilon(1e-9));
}

}  // namespace

TEST_CASE("summary: parameters and FLOPs equal the model's and the FLOP counter's", "[summary]") {
  ModelConfig c = small();
  SECTION("GRU, defaults") { check(c); }
  SECTION("LSTM, two bidirectional encoder layers, two decoder layers, mean init") {
    c.cell = nn::CellType::kLstm;
    c.enc_layers = 2;
    c.bidirectional = "all";
    c.dec_layers = 2;
    c.dec_init = "mean";
    check(c);
  }
  SECTION("layer norm, tanh readout, tied output, first-only bidirectional") {
    c.layer_norm = true;
    c.readout = "tanh";
    c.tie_target_embeddings = true;
    c.readout_dim = c.emb_dim;
    c.enc_layers = 2;
    check(c);
  }
  SECTION("conditional decoder") {
    c.decoder = "conditional";
    check(c);
  }
  SECTION("unidirectional encoder, zero init") {
    c.bidirectional = "none";
    c.dec_init = "zero";
    check(c);
  }
}

TEST_CASE("summary: a parameter outside the configuration's layers is an error", "[summary]") {
  const ModelConfig c = small();
  nn::ParameterSet params;
  Seq2Seq model(c, params);
  params.add("decoder/extra/weight", {2, 2});
  CHECK_THROWS_WITH(summarize(c, params), Catch::Contains("decoder/extra/weight"));
}

TEST_CASE("summary: training memory grows with the batch and the vocabulary", "[summary]") {
  ModelConfig c = small();
  TrainingShape t;
  const auto base = training_memory(c, 1000, t);
  CHECK(base.weights == 4000);
  CHECK(base.gradients == 4000);
  CHECK(base.optimizer == 8000);
  t.batch_size = 8;
  CHECK(training_memory(c, 1000, t).activations < base.activations);
  c.tgt_vocab *= 10;
  CHECK(training_memory(c, 1000, TrainingShape{}).activations > base.activations);
}
