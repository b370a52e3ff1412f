// The whole encoder-decoder on tiny padded batches: gradients against central differences,
// a padded batch against its sentences run one by one.
#include <catch2/catch.hpp>

#include <cmath>
#include <tuple>
#include <utility>

#include "gloss/decode/search.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/optimizer.h"
#include "gloss/tensor/compute.h"
#include "gloss/text/special_ids.h"
#include "gloss/util/error.h"

using namespace gloss;
using namespace gloss::model;

namespace {

// A batch with padding on both sides: source lengths 4, 2, 3; target lengths 3, 1, 2 (+EOS).
struct TinyBatch {
  int N = 3, S = 4, T = 4;
  std::vector<std::int32_t> src = {5,  6, 7,   //
                                   8,  9, 10,  //
                                   11, 0, 12,  //
                                   4,  0, 0};
  std::vector<std::int32_t> lengths = {4, 2, 3};
  std::vector<std::int32_t> tgt_in = {2, 2, 2, 4, 5, 6, 7, 0, 8, 9, 0, 0};
  std::vector<std::int32_t> tgt_out = {4, 5, 6, 7, 3, 8, 9, 0, 3, 3, 0, 0};
  BatchView view() const { return {N, S, T, src.data(), lengths.data(), tgt_in.data(), tgt_out.data()}; }
};

ModelConfig tiny(nn::CellType cell) {
  ModelConfig c;
  c.cell = cell;
  c.src_vocab = 13;
  c.tgt_vocab = 11;
  c.emb_dim = 4;
  c.enc_hidden = 3;
  c.dec_hidden = 5;
  c.att_dim = 4;
  c.readout_dim = 3;
  c.dropout_emb = c.dropout_rnn = c.dropout_readout = 0.0f;
  return c;
}

void randomise(nn::ParameterSet& params, std::uint64_t seed, float scale = 0.5f) {
  Rng rng(seed);
  for (auto& p : params.all())
    for (std::int64_t i = 0; i < p->value.size(); ++i) p->value[i] = rng.uniform(-scale, scale);
  params.touch();
}

// teacher_forcing < 1 or with_rng: training mode with the same random draws (scheduled
// sampling's coins, dropout masks) in every evaluation (a fresh generator each time).
void gradient_check(const ModelConfig& config, float teacher_forcing = 1.0f, bool with_rng = false) {
  compute::set_threads(1);
  nn::ParameterSet params;
  Seq2Seq model(config, params);
  model.set_teacher_forcing(teacher_forcing);
  auto run = [&](bool backward) {
    Rng coins(17);
    return model.forward_backward(TinyBatch().view(), 0.1f, teacher_forcing < 1.0f || with_rng ? &coins : nullptr,
                                  backward);
  };
  randomise(params, 3);
  // Attention weights that depend on the query: with v of +-0.5 the attention is near uniform
  // and a lost query gradient stays within the tolerance below.
  auto& v = params.get("decoder/attention/v").value;
  for (std::int64_t k = 0; k < v.size(); ++k) v[k] *= 10.0f;
  params.touch();
  if (config.readout == "maxout") {
    // Finite differences are meaningless across maxout's kink: keep the two pieces of each
    // unit apart by a margin (alternating which one wins) so no step of eps crosses it.
    auto& bias = params.get("decoder/readout/bias").value;
    for (std::int64_t k = 0; k < bias.size() / 2; ++k) bias[2 * k + (k % 2)] += 3.0f;
    params.touch();
  }
  params.zero_grad();
  run(true);
  const std::vector<std::int32_t> inputs = model.last_decoder_inputs();
  // A table with row flags (summed sparsely across processes) has gradient in flagged rows only.
  for (auto& p : params.all()) {
    const std::size_t rows = p->rows_touched.size();
    if (rows == 0) continue;
    CHECK((p->name != "decoder/embedding/table" || !config.tie_target_embeddings));  // tied: dense
    const std::int64_t width = p->grad.size() / static_cast<std::int64_t>(rows);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::int64_t k = 0; k < width; ++k)
        if (p->grad[static_cast<std::int64_t>(r) * width + k] != 0.0f) CHECK(p->rows_touched[r] == 1);
  }
  int skipped = 0;
  Rng pick(5);
  int checked = 0;
  for (auto& p : params.all()) {
    // A few entries of every parameter tensor, including its first and last.
    std::vector<std::int64_t> idx = {0, p->value.size() - 1};
    for (int k = 0; k < 4; ++k)
      idx.push_back(static_cast<std::int64_t>(pick.below(static_cast<std::uint64_t>(p->value.size()))));
    for (auto i : idx) {
      const float keep = p->value[i];
      const float eps = 1e-2f;
      p->value[i] = keep + eps;
      params.touch();
      const double up = run(false).loss;
      bool same_inputs = model.last_decoder_inputs() == inputs;
      p->value[i] = keep - eps;
      params.touch();
      const double down = run(false).loss;
      same_inputs = same_inputs && model.last_decoder_inputs() == inputs;
      p->value[i] = keep;
      params.touch();
      if (!same_inputs) {  // a sampled word changed: the loss jumps there, no derivative
        ++skipped;
        continue;
      }
      const double numeric = (up - down) / (2.0 * eps);
      const double analytic = p->grad[i];
      INFO(p->name << "[" << i << "]: analytic " << analytic << ", numeric " << numeric);
      // Central differences of eps 1e-2 in f32 agree to about 1e-4 here; a lost path (such as
      // the attention query's gradient) shows above 1e-3.
      CHECK(std::abs(analytic - numeric) <= 5e-4 + 4e-3 * std::abs(numeric));
      ++checked;
    }
  }
  CHECK(checked > 60);
  CHECK(skipped <= checked / 20);
}

}  // namespace

TEST_CASE("Seq2Seq GRU: gradients of the whole model match finite differences on a padded batch", "[model][grad]") {
  gradient_check(tiny(nn::CellType::kGru));
}

TEST_CASE("Seq2Seq LSTM: gradients match finite differences", "[model][grad]") {
  gradient_check(tiny(nn::CellType::kLstm));
}

TEST_CASE("Seq2Seq variants: tanh readout, mean init, tied embeddings, two bidirectional layers", "[model][grad]") {
  auto c = tiny(nn::CellType::kGru);
  c.readout = "tanh";
  c.dec_init = "mean";
  gradient_check(c);
  c = tiny(nn::CellType::kGru);
  c.tie_target_embeddings = true;
  c.readout_dim = c.emb_dim;
  gradient_check(c);
  c = tiny(nn::CellType::kGru);
  c.enc_layers = 2;
  c.bidirectional = "all";
  gradient_check(c);
  c = tiny(nn::CellType::kLstm);
  c.enc_layers = 2;
  c.bidirectional = "first";
  c.dec_init = "last_backward";
  gradient_check(c);
  c = tiny(nn::CellType::kGru);
  c.dec_init = "zero";
  c.bidirectional = "none";
  gradient_check(c);
}

TEST_CASE("Seq2Seq: stacked decoders, LSTM memory carried", "[model][grad]") {
  for (auto cell : {nn::CellType::kGru, nn::CellType::kLstm}) {
    auto c = tiny(cell);
    c.dec_layers = 2;
    gradient_check(c);
    c.dec_layers = 3;
    gradient_check(c);
  }
}

TEST_CASE("Seq2Seq conditional decoder: gradients match finite differences", "[model][grad]") {
  auto c = tiny(nn::CellType::kGru);
  c.decoder = "conditional";
  gradient_check(c);
  gradient_check(c, 0.3f);  // scheduled sampling
  c.dropout_emb = c.dropout_readout = 0.2f;
  c.dropout_ctx = c.word_dropout = 0.2f;
  c.tie_target_embeddings = true;
  c.readout_dim = c.emb_dim;
  c.dec_init = "mean";
  gradient_check(c, 1.0f, /*with_rng=*/true);
}

TEST_CASE("Seq2Seq conditional decoder: GRU, one layer, no layer_norm, else a clear error", "[model]") {
  auto c = tiny(nn::CellType::kGru);
  c.decoder = "conditional";
  validate(c);
  auto bad = c;
  bad.cell = nn::CellType::kLstm;
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("model.decoder conditional takes model.cell gru"));
  bad = c;
  bad.dec_layers = 2;
  CHECK_THROWS_AS(validate(bad), ConfigError);
  bad = c;
  bad.layer_norm = true;
  CHECK_THROWS_AS(validate(bad), ConfigError);
  bad = c;
  bad.decoder = "cgru";
  CHECK_THROWS_WITH(validate(bad), "model.decoder must be bahdanau or conditional");
}

TEST_CASE("Seq2Seq training in bf16: loss and gradients within bf16 rounding of f32", "[model][bf16]") {
  if (!compute::has_bf16()) {
    WARN("this CPU lacks AVX512-BF16: the bf16 training test does not apply");
    return;
  }
  compute::set_threads(1);
  for (auto cell : {nn::CellType::kGru, nn::CellType::kLstm}) {
    auto c = tiny(cell);
    c.dec_layers = 2;
    std::vector<std::vector<float>> grads;
    std::vector<double> losses;
    for (bool bf16 : {false, true}) {
      nn::ParameterSet params;
      Seq2Seq model(c, params);
      model.set_training_bf16(bf16);
      randomise(params, 3);
      params.zero_grad();
      losses.push_back(model.forward_backward(TinyBatch().view(), 0.1f, nullptr, true).loss);
      std::vector<float> g;
      for (auto& p : params.all()) g.insert(g.end(), p->grad.data(), p->grad.data() + p->grad.size());
      grads.push_back(g);
    }
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < grads[0].size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(grads[0][i] - grads[1][i])));
      norm = std::max(norm, static_cast<double>(std::fabs(grads[0][i])));
    }
    INFO("largest difference " << diff << ", largest gradient " << norm << "; loss " << losses[0] << " vs "
                               << losses[1]);
    CHECK(losses[1] == Approx(losses[0]).epsilon(1e-2));
    CHECK(diff < 5e-2 * norm);
    CHECK(diff > 1e-4 * norm);  // bf16 did run
  }
}

TEST_CASE("Seq2Seq scheduled sampling: own predictions fed back, gradients still exact", "[model][grad]") {
  auto c = tiny(nn::CellType::kGru);
  gradient_check(c, 0.3f);
  c = tiny(nn::CellType::kLstm);
  c.dec_layers = 2;
  gradient_check(c, 0.0f);
  // Ratio 0 feeds the model's own words: the loss differs from teacher forcing (ratio 1).
  compute::set_threads(1);
  nn::ParameterSet params;
  Seq2Seq model(tiny(nn::CellType::kGru), params);
  randomise(params, 3);
  Rng a(1), b(1);
  const double forced = model.forward_backward(TinyBatch().view(), 0.0f, &a, false).loss;
  model.set_teacher_forcing(0.0f);
  const double sampled = model.forward_backward(TinyBatch().view(), 0.0f, &b, false).loss;
  CHECK(forced != sampled);
  model.set_teacher_forcing(1.0f);
  Rng d(1);
  CHECK(model.forward_backward(TinyBatch().view(), 0.0f, &d, false).loss == forced);
}

TEST_CASE("Seq2Seq dropouts (embeddings, RNN, context, readout) and word dropout: gradients exact for fixed masks",
          "[model][grad]") {
  auto c = tiny(nn::CellType::kGru);
  c.enc_layers = 2;
  c.dropout_emb = 0.2f;
  c.dropout_rnn = 0.2f;
  c.dropout_readout = 0.2f;
  c.dropout_ctx = 0.3f;
  c.word_dropout = 0.2f;
  gradient_check(c, 1.0f, /*with_rng=*/true);
  c.cell = nn::CellType::kLstm;
  c.dec_init = "mean";
  gradient_check(c, 1.0f, /*with_rng=*/true);
}

TEST_CASE("Seq2Seq layer normalisation (annotations, decoder inputs): gradients match finite differences",
          "[model][grad]") {
  auto c = tiny(nn::CellType::kGru);
  c.layer_norm = true;
  gradient_check(c);
  c.cell = nn::CellType::kLstm;
  c.dec_layers = 2;
  c.dec_init = "mean";
  c.dropout_ctx = 0.3f;
  gradient_check(c, 1.0f, /*with_rng=*/true);
}

TEST_CASE("Seq2Seq word dropout: real words (never padding or BOS) become <unk>", "[model]") {
  compute::set_threads(1);
  auto c = tiny(nn::CellType::kGru);
  c.word_dropout = 0.999999f;  // every real word, but for a chance of about 1e-5 per batch
  nn::ParameterSet params;
  Seq2Seq model(c, params);
  randomise(params, 3);
  TinyBatch b;
  Rng rng(1);
  const double dropped = model.forward_backward(b.view(), 0.0f, &rng, false).loss;
  const auto inputs = model.last_decoder_inputs();
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const int want = b.tgt_in[k] == text::kPadId || b.tgt_in[k] == text::kBosId ? b.tgt_in[k] : text::kUnkId;
    CHECK(inputs[k] == want);
  }
  // The same loss as the batch with its words replaced by hand, without word dropout.
  TinyBatch unk;
  for (auto& id : unk.src)
    if (id != text::kPadId) id = text::kUnkId;
  unk.tgt_in = inputs;
  c.word_dropout = 0;
  nn::ParameterSet params2;
  Seq2Seq plain(c, params2);
  params2.share_values_of(params);
  CHECK(plain.forward_backward(unk.view(), 0.0f, nullptr, false).loss == dropped);
}

TEST_CASE("Seq2Seq: a padded batch gives the loss of its sentences run one by one", "[model][padding]") {
  compute::set_threads(1);
  for (auto [cell, decoder] : {std::pair{nn::CellType::kGru, "bahdanau"}, std::pair{nn::CellType::kLstm, "bahdanau"},
                               std::pair{nn::CellType::kGru, "conditional"}}) {
    auto config = tiny(cell);
    config.enc_layers = 2;
    config.bidirectional = "all";
    config.decoder = decoder;
    nn::ParameterSet params;
    Seq2Seq model(config, params);
    randomise(params, 9);
    TinyBatch batch;
    const double together = model.forward_backward(batch.view(), 0.1f, nullptr, false).loss;
    double alone = 0.0;
    for (int n = 0; n < batch.N; ++n) {
      const int S = batch.lengths[static_cast<std::size_t>(n)];
      int T = 0;
      while (T < batch.T && batch.tgt_out[static_cast<std::size_t>(T * batch.N + n)] != 0) ++T;
      std::vector<std::int32_t> src, tin, tout, len{S};
      for (int t = 0; t < S; ++t) src.push_back(batch.src[static_cast<std::size_t>(t * batch.N + n)]);
      for (int t = 0; t < T; ++t) {
        tin.push_back(batch.tgt_in[static_cast<std::size_t>(t * batch.N + n)]);
        tout.push_back(batch.tgt_out[static_cast<std::size_t>(t * batch.N + n)]);
      }
      const BatchView one{1, S, T, src.data(), len.data(), tin.data(), tout.data()};
      alone += model.forward_backward(one, 0.1f, nullptr, false).loss;
    }
    CHECK(together == Approx(alone).epsilon(1e-5));
  }
}

namespace {

// The batch's target negative log-likelihood through the inference steps (start, step fed the
// reference words, advance): what a search scores, computed in double from the step's logits.
double step_nll(Seq2Seq& model, const TinyBatch& b) {
  Seq2Seq::DecoderState& state = model.search_state();
  model.start(state, b.view(), 1);
  double nll = 0.0;
  for (int t = 0; t < b.T; ++t) {
    model.step(state, b.tgt_in.data() + t * b.N);
    const Tensor& logits = state.logits();
    const std::int64_t V = logits.shape()[1];
    for (int n = 0; n < b.N; ++n) {
      const std::int32_t want = b.tgt_out[static_cast<std::size_t>(t * b.N + n)];
      if (want == text::kPadId) continue;
      const float* row = logits.data() + n * V;
      double top = row[0], sum = 0.0;
      for (std::int64_t v = 1; v < V; ++v) top = std::max(top, static_cast<double>(row[v]));
      for (std::int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - top);
      nll += top + std::log(sum) - row[want];
    }
    model.advance(state);
  }
  return nll;
}

}  // namespace

TEST_CASE("Seq2Seq inference steps: the training forward's likelihood, also after the weights change",
          "[model][search]") {
  // f32 inference steps through weights packed once (the cells' RnnSteps, the readout's and
  // output layer's copies): they must follow every change of the values (validation between
  // updates), or the second comparison fails.
  compute::set_threads(1);
  auto conditional = tiny(nn::CellType::kGru);
  conditional.decoder = "conditional";
  auto tied = tiny(nn::CellType::kGru);
  tied.tie_target_embeddings = true;
  tied.readout_dim = tied.emb_dim;
  auto stacked = tiny(nn::CellType::kLstm);
  stacked.dec_layers = 2;
  for (const auto& config : {tiny(nn::CellType::kGru), tiny(nn::CellType::kLstm), conditional, tied, stacked}) {
    nn::ParameterSet params;
    Seq2Seq model(config, params);
    randomise(params, 21);
    TinyBatch b;
    for (int change = 0; change < 3; ++change) {
      const double trained = model.forward_backward(b.view(), 0.0f, nullptr, false).nll;
      const double stepped = step_nll(model, b);
      INFO("decoder " << config.decoder << ", cell " << static_cast<int>(config.cell) << ", layers "
                      << config.dec_layers << ", change " << change);
      CHECK(stepped == Approx(trained).epsilon(1e-5));
      for (auto& p : params.all())  // new values, as an update would give
        for (std::int64_t i = 0; i < p->value.size(); ++i) p->value[i] *= 1.25f;
      params.touch();
    }
  }
}

#include <chrono>

#include "gloss/nn/optimizer.h"

TEST_CASE("Seq2Seq memorises 20 sentence pairs within seconds", "[model][overfit]") {
  compute::set_threads(1);
  ModelConfig c;
  c.src_vocab = 24;
  c.tgt_vocab = 24;
  c.emb_dim = 32;
  c.enc_hidden = 32;
  c.dec_hidden = 64;
  c.att_dim = 32;
  c.readout_dim = 32;
  c.dropout_emb = c.dropout_rnn = c.dropout_readout = 0.0f;
  // Training and inference normalise alike, and run the same decoder step.
  std::tie(c.layer_norm, c.decoder) =
      GENERATE(std::tuple{false, "bahdanau"}, std::tuple{true, "bahdanau"}, std::tuple{false, "conditional"});
  INFO("layer_norm " << c.layer_norm << ", decoder " << c.decoder);
  nn::ParameterSet params;
  Seq2Seq model(c, params);
  Rng rng(17);
  nn::init_parameters(params, "uniform", 0.1f, rng);
  // 20 random source sentences (ids 4..23, lengths 3..8); the target is the source reversed.
  const int N = 20, S = 8, T = 9;
  std::vector<std::int32_t> src(S * N, 0), len(N), tin(T * N, 0), tout(T * N, 0);
  for (int n = 0; n < N; ++n) {
    len[n] = 3 + static_cast<int>(rng.below(6));
    for (int t = 0; t < len[n]; ++t) src[t * N + n] = 4 + static_cast<int>(rng.below(20));
    tin[n] = 2;
    for (int t = 0; t < len[n]; ++t) {
      const int y = src[(len[n] - 1 - t) * N + n];
      tout[t * N + n] = y;
      tin[(t + 1) * N + n] = y;
    }
    tout[len[n] * N + n] = 3;
  }
  const BatchView batch{N, S, T, src.data(), len.data(), tin.data(), tout.data()};
  auto adam = nn::make_optimizer("adam", params);
  const auto start = std::chrono::steady_clock::now();
  double per_token = 1e9;
  for (int step = 0; step < 400 && per_token > 0.01; ++step) {
    params.zero_grad();
    const auto loss = model.forward_backward(batch, 0.0f, nullptr, true, 1.0f / 20);
    per_token = loss.loss / static_cast<double>(loss.tokens);
    adam->step(params, 0.01f, nn::clip_scale(nn::grad_norm(params), 5.0));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("loss per token " << per_token << " after " << seconds << " s");
  CHECK(per_token < 0.01);
  // The inference path (forward_inference, no dropout, step by step) reproduces every target.
  const auto hyps = decode::greedy_search(model, batch, std::vector<int>(N, 2 * S));
  int exact = 0;
  for (int n = 0; n < N; ++n) {
    std::vector<std::int32_t> want;
    for (int t = 0; t < len[n]; ++t) want.push_back(tout[t * N + n]);
    exact += hyps[static_cast<std::size_t>(n)] == want;
  }
  CHECK(exact == N);
  // Sentences leave the batch as they end (EOS here, a length limit there); each result is
  // the one it gets alone.
  std::vector<int> limits(N);
  for (int n = 0; n < N; ++n) limits[static_cast<std::size_t>(n)] = n % 3 == 0 ? 2 : 2 * S;
  const auto cut = decode::greedy_search(model, batch, limits);
  for (int n = 0; n < N; ++n) {
    const auto& full = hyps[static_cast<std::size_t>(n)];
    const auto want = n % 3 == 0 ? std::vector<std::int32_t>(full.begin(), full.begin() + 2) : full;
    CHECK(cut[static_cast<std::size_t>(n)] == want);
    std::vector<std::int32_t> src1(S);
    for (int t = 0; t < S; ++t) src1[static_cast<std::size_t>(t)] = src[t * N + n];
    const BatchView one_sentence{1, S, T, src1.data(), &len[static_cast<std::size_t>(n)], nullptr, nullptr};
    CHECK(decode::greedy_search(model, one_sentence, {2 * S})[0] == full);
  }
  // Beam search: beam 1 is greedy; beam 5 finds the same memorised targets.
  decode::SearchOptions one, three;
  one.beam_size = 1;
  three.beam_size = 5;
  three.n_best = 3;
  const auto beam1 = decode::beam_search({&model}, batch, std::vector<int>(N, 2 * S), one);
  const auto beam5 = decode::beam_search({&model}, batch, std::vector<int>(N, 2 * S), three);
  for (int n = 0; n < N; ++n) {
    CHECK(beam1[static_cast<std::size_t>(n)][0].ids == hyps[static_cast<std::size_t>(n)]);
    CHECK(beam5[static_cast<std::size_t>(n)][0].ids == hyps[static_cast<std::size_t>(n)]);
    const auto& nbest = beam5[static_cast<std::size_t>(n)];
    // n_best distinct hypotheses: the search goes on until n_best have finished.
    REQUIRE(nbest.size() == 3);
    for (std::size_t k = 1; k < nbest.size(); ++k) CHECK(nbest[k - 1].score >= nbest[k].score);
    for (std::size_t k = 0; k < nbest.size(); ++k)
      for (std::size_t j = k + 1; j < nbest.size(); ++j) CHECK(nbest[k].ids != nbest[j].ids);
  }
  // stop_after: the 1-best of a search that waits for 3 finished hypotheses is the 3-best list's first.
  decode::SearchOptions wait3 = one;
  wait3.beam_size = 5;
  wait3.stop_after = 3;
  const auto waited = decode::beam_search({&model}, batch, std::vector<int>(N, 2 * S), wait3);
  for (int n = 0; n < N; ++n) {
    REQUIRE(waited[static_cast<std::size_t>(n)].size() == 1);
    CHECK(waited[static_cast<std::size_t>(n)][0].ids == beam5[static_cast<std::size_t>(n)][0].ids);
    CHECK(waited[static_cast<std::size_t>(n)][0].score == beam5[static_cast<std::size_t>(n)][0].score);
  }
  // An ensemble of the model with itself: the mean of equal log-probabilities, the same search.
  decode::SearchOptions five;
  five.beam_size = 5;
  five.n_best = 3;
  const auto twice = decode::beam_search({&model, &model}, batch, std::vector<int>(N, 2 * S), five);
  for (int n = 0; n < N; ++n) {
    REQUIRE(!twice[static_cast<std::size_t>(n)].empty());
    CHECK(twice[static_cast<std::size_t>(n)][0].ids == beam5[static_cast<std::size_t>(n)][0].ids);
    CHECK(twice[static_cast<std::size_t>(n)][0].score ==
          Approx(beam5[static_cast<std::size_t>(n)][0].score).margin(1e-4));
  }
  // Word scores and attention rows of each output subword (and of EOS); min length; coverage.
  decode::SearchOptions so;
  so.beam_size = 4;
  so.word_scores = true;
  so.attention = true;
  const auto rich = decode::beam_search({&model}, batch, std::vector<int>(N, 2 * S), so);
  for (int n = 0; n < N; ++n) {
    const auto& h = rich[static_cast<std::size_t>(n)][0];
    CHECK(h.ids == hyps[static_cast<std::size_t>(n)]);
    REQUIRE(h.word_log_probs.size() == h.ids.size() + 1);
    double sum = 0;
    for (float v : h.word_log_probs) sum += v;
    CHECK(sum == Approx(h.log_prob).margin(1e-4));
    const auto L = static_cast<std::size_t>(len[n]);
    REQUIRE(h.attention.size() == (h.ids.size() + 1) * L);
    for (std::size_t t = 0; t <= h.ids.size(); ++t) {
      double row = 0;
      for (std::size_t j = 0; j < L; ++j) row += h.attention[t * L + j];
      CHECK(row == Approx(1.0).margin(1e-5));
    }
  }
  so = {};
  so.beam_size = 3;
  so.min_length = S + 2;  // longer than every memorised target
  const auto longer = decode::beam_search({&model}, batch, std::vector<int>(N, 2 * S), so);
  for (int n = 0; n < N; ++n) CHECK(static_cast<int>(longer[static_cast<std::size_t>(n)][0].ids.size()) >= S + 2);
  so = {};
  so.beam_size = 3;
  so.coverage_penalty = 0.2f;
  const auto covered = decode::beam_search({&model}, batch, std::vector<int>(N, 2 * S), so);
  for (int n = 0; n < N; ++n) {
    const auto& h = covered[static_cast<std::size_t>(n)][0];
    CHECK(h.score <= h.log_prob / static_cast<double>(h.ids.size() + 1) + 1e-9);  // the penalty is <= 0
  }
}

TEST_CASE("Beam search stop_after: waiting for more finished hypotheses finds better-scored ones", "[model][search]") {
  compute::set_threads(1);
  auto c = tiny(nn::CellType::kGru);
  nn::ParameterSet params;
  Seq2Seq model(c, params);
  randomise(params, 11, 1.0f);  // an untrained model, with EOS likely at every step
  params.get("decoder/output/bias").value[text::kEosId] += 4.0f;
  params.touch();
  TinyBatch b;
  const std::vector<int> max_len(3, 8);
  decode::SearchOptions first, wait, three;
  first.beam_size = wait.beam_size = three.beam_size = 4;
  first.length_penalty = wait.length_penalty = three.length_penalty = 2.0f;  // longer ones score better
  wait.stop_after = 4;
  three.n_best = 4;
  const auto stopped = decode::beam_search({&model}, b.view(), max_len, first);
  const auto waited = decode::beam_search({&model}, b.view(), max_len, wait);
  const auto lists = decode::beam_search({&model}, b.view(), max_len, three);
  int better = 0;
  for (std::size_t n = 0; n < 3; ++n) {
    REQUIRE(waited[n].size() == 1);
    CHECK(waited[n][0].ids == lists[n][0].ids);  // the 1-best of the longer search
    CHECK(waited[n][0].score >= stopped[n][0].score);
    better += waited[n][0].score > stopped[n][0].score;
    UNSCOPED_INFO("sentence " << n << ": first " << stopped[n][0].score << " (" << stopped[n][0].ids.size()
                              << " ids), waited " << waited[n][0].score << " (" << waited[n][0].ids.size() << " ids)");
  }
  CHECK(better > 0);  // some sentence's best hypothesis finished after the first one did
}

TEST_CASE("Optimisers: decoupled weight decay shrinks weights by lr * wd, the weight average follows its formula",
          "[nn][optim]") {
  for (const std::string name : {"adam", "sgd"}) {
    nn::ParameterSet params;
    auto& p = params.add("w", {2});
    p.value[0] = 2.0f;
    p.value[1] = -4.0f;  // zero gradients: only the decay moves the weights
    auto opt = nn::make_optimizer(name, params, 0.5);
    opt->step(params, 0.1f);
    CHECK(p.value[0] == Approx(2.0f * 0.95f));
    CHECK(p.value[1] == Approx(-4.0f * 0.95f));
  }
  CHECK_THROWS_WITH(nn::make_optimizer("adam", nn::ParameterSet(), -1), Catch::Contains("weight_decay"));
  nn::ParameterSet params;
  auto& w = params.add("w", {1});
  w.value[0] = 1.0f;
  nn::WeightAverage avg(params, 0.5);
  w.value[0] = 3.0f;
  auto still = nn::make_optimizer("sgd", params);  // lr 0: only the average moves
  still->step(params, 0.0f, 1.0f, &avg);           // update 1: d = min(0.5, 2 / 11)
  const float d = 2.0f / 11.0f;
  CHECK((*avg.state()[0])[0] == Approx(d * 1.0f + (1 - d) * 3.0f));
  still->steps = 99;
  still->step(params, 0.0f, 1.0f, &avg);  // update 100: d = 0.5
  const float expected = 0.5f * (d * 1.0f + (1 - d) * 3.0f) + 0.5f * 3.0f;
  CHECK((*avg.state()[0])[0] == Approx(expected));
  const auto version = params.version();
  avg.swap_with(params);
  CHECK(w.value[0] == Approx(expected));
  CHECK(params.version() > version);
  avg.swap_with(params);
  CHECK(w.value[0] == 3.0f);
  CHECK_THROWS_WITH(nn::WeightAverage(params, 1.0), Catch::Contains("ema_decay"));
}

namespace {

// 20,000 + 3 values over two parameters: three of Optimizer::step's cache blocks, the last one
// partial, and a small tensor. Gradients are the same at every call.
void fill_optimiser_test_set(nn::ParameterSet& params) {
  const std::int64_t n = 20000;
  auto& p = params.add("w", {n});
  auto& b = params.add("b", {3});
  for (std::int64_t i = 0; i < n; ++i) {
    p.value[i] = std::sin(0.01f * static_cast<float>(i));
    p.grad[i] = std::cos(0.37f * static_cast<float>(i));
  }
  b.value.fill(0.5f);
  b.grad.fill(-2.0f);
}

// AdamW with clipping and a weight average, written out value by value over flat copies.
struct ReferenceAdam {
  std::vector<float> w, g, m, v, avg;
  explicit ReferenceAdam(nn::ParameterSet& params) {
    for (const auto& p : params.all())
      for (std::int64_t i = 0; i < p->value.size(); ++i) {
        w.push_back(p->value[i]);
        g.push_back(p->grad[i]);
      }
    m.assign(w.size(), 0.0f);
    v.assign(w.size(), 0.0f);
    avg = w;
  }
  void step(int t, float lr, float scale, float wd, float d) {
    const auto c1 = static_cast<float>(1.0 / (1.0 - std::pow(0.9, t)));
    const auto c2 = static_cast<float>(1.0 / (1.0 - std::pow(0.999, t)));
    for (std::size_t k = 0; k < w.size(); ++k) {
      const float gk = g[k] * scale;
      w[k] *= 1.0f - lr * wd;
      m[k] = 0.9f * m[k] + 0.1f * gk;
      v[k] = 0.999f * v[k] + 0.001f * gk * gk;
      w[k] -= lr * (m[k] * c1) / (std::sqrt(v[k] * c2) + 1e-8f);
      avg[k] = d * avg[k] + (1.0f - d) * w[k];
    }
  }
};

}  // namespace

TEST_CASE("Optimisers: a step's clipping, weight decay, Adam and weight average follow their formulas value by value",
          "[nn][optim]") {
  const float lr = 0.01f, wd = 0.1f;
  nn::ParameterSet probe;
  fill_optimiser_test_set(probe);
  const double norm = nn::grad_norm(probe);
  const float scale = nn::clip_scale(norm, 1.0);
  CHECK(scale == Approx(1.0 / (norm + 1e-6)));
  CHECK(nn::clip_scale(norm, 1e9) == 1.0f);
  CHECK(nn::clip_scale(norm, 0) == 1.0f);
  for (int threads : {1, 2}) {
    compute::set_threads(threads);
    nn::ParameterSet params;
    fill_optimiser_test_set(params);
    auto adam = nn::make_optimizer("adam", params, wd);
    nn::WeightAverage average(params, 0.9);
    ReferenceAdam ref(params);
    for (int t = 1; t <= 2; ++t) {
      nn::ParameterSet fresh;  // each step's gradients as fill_optimiser_test_set makes them
      fill_optimiser_test_set(fresh);
      for (std::size_t k = 0; k < params.all().size(); ++k) params.all()[k]->grad = fresh.all()[k]->grad;
      adam->step(params, lr, scale, &average);
      CHECK(average.decay_at(t) == Approx(std::min(0.9, (1.0 + t) / (10.0 + t))));
      ref.step(t, lr, scale, wd, average.decay_at(t));
    }
    std::size_t at = 0, off = 0;
    for (std::size_t k = 0; k < params.all().size(); ++k)
      for (std::int64_t i = 0; i < params.all()[k]->value.size(); ++i, ++at) {
        // The margin: the kernel may fuse w * shrink - update (and the average's products and
        // sum) into one FMA, a last-bit difference that is large only relative to a value near 0.
        off += params.all()[k]->value[i] != Approx(ref.w[at]).epsilon(1e-5).margin(1e-6);
        off += (*average.state()[k])[i] != Approx(ref.avg[at]).epsilon(1e-5).margin(1e-6);
        off += (*adam->state()[k])[i] != Approx(ref.m[at]).epsilon(1e-5).margin(1e-7);
      }
    INFO("threads " << threads);
    CHECK(off == 0);
    bool consumed = true;  // the step leaves every gradient zero for the next update
    for (const auto& p : params.all())
      for (std::int64_t i = 0; i < p->grad.size(); ++i) consumed = consumed && p->grad[i] == 0.0f;
    CHECK(consumed);
  }
  compute::set_threads(1);
}

TEST_CASE("Optimisers: Adam and SGD move against the gradient, clipping bounds the norm", "[nn][optim]") {
  nn::ParameterSet params;
  auto& p = params.add("w", {3});
  p.value.fill(1.0f);
  p.grad[0] = 3.0f;
  p.grad[1] = -4.0f;
  p.grad[2] = 0.0f;
  CHECK(nn::grad_norm(params) == Approx(5.0));
  auto adam = nn::make_optimizer("adam", params);
  adam->step(params, 0.1f, nn::clip_scale(nn::grad_norm(params), 1.0));
  CHECK(p.value[0] == Approx(0.9f).epsilon(1e-4));  // first Adam step moves by lr * sign
  CHECK(p.value[1] == Approx(1.1f).epsilon(1e-4));
  CHECK(p.value[2] == 1.0f);
  CHECK((p.grad[0] == 0.0f && p.grad[1] == 0.0f));  // consumed by the step
  CHECK(adam->state().size() == 2);
  p.grad[0] = 3.0f;
  p.grad[1] = -4.0f;
  auto sgd = nn::make_optimizer("sgd", params);
  sgd->step(params, 1.0f, nn::clip_scale(nn::grad_norm(params), 1.0));  // clipped to norm 1: 0.6, -0.8
  CHECK(p.value[0] == Approx(0.3f).epsilon(1e-4));
  CHECK_THROWS_WITH(nn::make_optimizer("adamw", params), Catch::Contains("choose adam or sgd"));
  Rng rng(1);
  nn::ParameterSet q;
  auto& w = q.add("rnn/weights_iter", {4, 3, 4});
  nn::init_parameters(q, "glorot", 0.1f, rng);
  for (int gate = 0; gate < 3; ++gate)  // each gate block is orthogonal: rows have unit norm and are orthogonal
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        double dot = 0;
        for (int k = 0; k < 4; ++k)
          dot += static_cast<double>(w.value[(i * 3 + gate) * 4 + k]) * w.value[(j * 3 + gate) * 4 + k];
        CHECK(dot == Approx(i == j ? 1.0 : 0.0).margin(1e-5));
      }
}

TEST_CASE("min_parameter_count: a lower bound, within a factor of two, of every variant's parameters", "[model]") {
  std::vector<ModelConfig> configs;
  ModelConfig c;
  c.src_vocab = 300, c.tgt_vocab = 400, c.emb_dim = 32, c.enc_hidden = 24, c.dec_hidden = 40, c.att_dim = 20;
  c.readout_dim = 32;
  configs.push_back(c);
  auto v = c;
  v.cell = gloss::nn::CellType::kLstm, v.enc_layers = 3, v.dec_layers = 2, v.bidirectional = "all";
  configs.push_back(v);
  v = c;
  v.tie_target_embeddings = true, v.bidirectional = "none", v.readout = "tanh";
  configs.push_back(v);
  v = c;
  v.src_vocab = 20, v.tgt_vocab = 20, v.enc_hidden = 200, v.dec_hidden = 300;  // weights dominate, not tables
  configs.push_back(v);
  for (const auto& config : configs) {
    gloss::nn::ParameterSet params;
    Seq2Seq net(config, params);
    const auto actual = params.num_values();
    CHECK(gloss::model::min_parameter_count(config) <= actual);
    CHECK(gloss::model::min_parameter_count(config) * 2 >= actual);
  }
}

TEST_CASE("shape_difference names the first [model] key that changes a parameter's shape", "[model]") {
  model::ModelConfig a;
  model::ModelConfig b = a;
  b.dropout_emb = 0.5f;  // a dropout changes no shape
  b.word_dropout = 0.1f;
  CHECK(model::shape_difference(a, b).empty());
  b.emb_dim = 64;
  CHECK(model::shape_difference(a, b) == "model.emb_dim is 256 there and 64 here");
  b = a;
  b.cell = nn::CellType::kLstm;
  CHECK(model::shape_difference(a, b) == "model.cell is gru there and lstm here");
  b = a;
  b.tie_target_embeddings = true;
  CHECK(model::shape_difference(a, b) == "model.tie_target_embeddings is false there and true here");
  b = a;
  b.tgt_vocab = 4000;
  CHECK(model::shape_difference(a, b) == "the target vocabulary is 8000 there and 4000 here");
}
