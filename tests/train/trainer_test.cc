// Training end to end on a small corpus: exact resume, and clear errors for bad model files.
#include <algorithm>
#include <barrier>
#include <catch2/catch.hpp>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <type_traits>

#include <zlib.h>

#include "gloss/decode/shortlist.h"
#include "gloss/decode/translator.h"
#include "gloss/model/model_file.h"
#include "gloss/recipe/recipe.h"
#include "gloss/tensor/compute.h"
#include "gloss/text/corpus.h"
#include "gloss/text/subword.h"
#include "gloss/train/checkpoint.h"
#include "gloss/train/trainer.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"

namespace fs = std::filesystem;
using namespace gloss;

namespace {

const std::string kData = std::string(GLOSS_SOURCE_DIR) + "/data/multi30k/";

recipe::LoadedRecipe small_recipe(const fs::path& workdir, int max_steps, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"--data.train_src",       kData + "val.en.gz",
                                   "--data.train_tgt",       kData + "val.de.gz",  //
                                   "--data.valid_src",       kData + "test_2016_flickr.en.gz",
                                   "--data.valid_tgt",       kData + "test_2016_flickr.de.gz",
                                   "--subword.vocab_size",   "400",
                                   "--model.emb_dim",        "16",
                                   "--model.enc_hidden",     "16",
                                   "--model.dec_hidden",     "24",
                                   "--model.att_dim",        "16",
                                   "--model.readout_dim",    "16",
                                   "--train.batch_size",     "48",
                                   "--train.valid_every",    "4",
                                   "--train.max_steps",      std::to_string(max_steps),
                                   "--train.threads",        "2",
                                   "--decode.max_len_ratio", "1.5",
                                   "--run.workdir",          workdir.string()};
  for (std::size_t i = 0; i + 1 < extra.size(); i += 2) {  // extra keys replace the ones above
    const auto it = std::find(args.begin(), args.end(), extra[i]);
    if (it != args.end()) args.erase(it, it + 2);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return recipe::load_recipe("", args);
}

// Every value a checkpoint holds: parameters, optimiser moments and (with ema_decay) averages.
std::vector<float> final_parameters(const fs::path& workdir, const recipe::LoadedRecipe& r) {
  const auto mf = train::peek_checkpoint((workdir / "checkpoint.gckpt").string());
  nn::ParameterSet params;
  model::Seq2Seq net(mf.config, params);
  auto opt = nn::make_optimizer(r.recipe.train.optimizer, params);
  std::unique_ptr<nn::WeightAverage> avg;
  if (r.recipe.train.ema_decay > 0) avg = std::make_unique<nn::WeightAverage>(params, r.recipe.train.ema_decay);
  train::TrainingState state;
  train::load_checkpoint((workdir / "checkpoint.gckpt").string(), params, *opt, state,
                         avg ? avg->state() : std::vector<Tensor*>{});
  std::vector<float> all;
  for (const auto& p : params.all()) all.insert(all.end(), p->value.data(), p->value.data() + p->value.size());
  for (Tensor* t : opt->state()) all.insert(all.end(), t->data(), t->data() + t->size());
  if (avg)
    for (Tensor* t : avg->state()) all.insert(all.end(), t->data(), t->data() + t->size());
  return all;
}

// A log that raises SIGINT in this process once it has printed `nth` validation lines: the
// trainer notes the signal at the end of the next update.
class SignalAfterValidations : public std::streambuf {
 public:
  explicit SignalAfterValidations(int nth) : nth_(nth) {}

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    line_ += static_cast<char>(c);
    if (c == '\n') {
      if (line_.find("validation: ce") != std::string::npos && ++seen_ == nth_) std::raise(SIGINT);
      text_ += line_;
      line_.clear();
    }
    return c;
  }

 private:
  int nth_, seen_ = 0;
  std::string line_, text_;
};

// The steps of metrics.jsonl's rows, in order.
std::vector<int> metrics_steps(const fs::path& workdir) {
  std::ifstream in(workdir / "metrics.jsonl");
  std::vector<int> steps;
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find("\"step\": ");
    if (at != std::string::npos) steps.push_back(std::stoi(line.substr(at + 8)));
  }
  return steps;
}

}  // namespace

TEST_CASE("Trainer: an interrupted run resumed from its checkpoint ends bit for bit like an uninterrupted one",
          "[train][resume]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_trainer_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  const auto full = small_recipe(root / "full", 10);
  train::train(full.recipe, log);
  // Running a finished training again changes nothing (no step, no validation, same files).
  const std::string before = read_file((root / "full" / "checkpoint.gckpt").string());
  const auto again = train::train(full.recipe, log);
  CHECK(again.steps == 10);
  CHECK(read_file((root / "full" / "checkpoint.gckpt").string()) == before);
  // The same run, stopped after 8 steps (its last checkpoint), then restarted with the same command.
  train::train(small_recipe(root / "resumed", 8).recipe, log);
  const auto outcome = train::train(small_recipe(root / "resumed", 10).recipe, log);
  CHECK(log.str().find("resuming from") != std::string::npos);
  CHECK(outcome.steps == 10);
  const auto a = final_parameters(root / "full", full);
  const auto b = final_parameters(root / "resumed", full);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(fs::exists(root / "full" / "model.best.gloss"));
  // Metrics log: one JSON line per validation (steps 4 and 8, then 10 at the end).
  std::ifstream metrics(root / "full" / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) lines += line.find("\"valid_bleu\"") != std::string::npos;
  CHECK(lines == 3);
  // train.keep_last (default 2) keeps the last numbered checkpoints; gloss average means them.
  CHECK(!fs::exists(root / "full" / "checkpoint.4.gckpt"));
  REQUIRE(fs::exists(root / "full" / "checkpoint.8.gckpt"));
  REQUIRE(fs::exists(root / "full" / "checkpoint.10.gckpt"));
  const std::vector<std::string> inputs = {(root / "full" / "checkpoint.8.gckpt").string(),
                                           (root / "full" / "checkpoint.10.gckpt").string()};
  model::average_models(inputs, (root / "avg.gloss").string());
  nn::ParameterSet p8, p10, avg;
  const auto mf = model::load_any(inputs[0], nullptr);
  model::Seq2Seq m8(mf.config, p8), m10(mf.config, p10), ma(mf.config, avg);
  model::load_any(inputs[0], &p8);
  model::load_any(inputs[1], &p10);
  model::load_model((root / "avg.gloss").string(), &avg);
  const auto& w8 = p8.get("decoder/attention/v").value;
  const auto& w10 = p10.get("decoder/attention/v").value;
  const auto& wa = avg.get("decoder/attention/v").value;
  for (std::int64_t i = 0; i < wa.size(); ++i) CHECK(wa[i] == Approx(0.5f * (w8[i] + w10[i])).margin(1e-7));
  fs::remove_all(root);
}

TEST_CASE("Trainer: a run that stopped early (patience) takes no step when run again", "[train][resume]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_trainer_patience_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  const auto r =
      small_recipe(root, 400, {"--train.valid_every", "2", "--train.patience", "1", "--train.lr_patience", "1"});
  const auto first = train::train(r.recipe, log);
  REQUIRE(first.steps < 400);  // stopped by patience, not by max_steps
  CHECK(log.str().find("no improvement of validation") != std::string::npos);
  // The plateau's decay is reported after the validation line it comes from (one that did not
  // improve), not before it.
  const std::string text = log.str();
  const auto decay = text.find("did not improve; learning rate now");
  REQUIRE(decay != std::string::npos);
  const auto line_before = text.rfind('\n', text.rfind('\n', decay) - 1);
  const std::string previous = text.substr(line_before + 1, decay - line_before);
  CHECK(previous.find("validation: ce") != std::string::npos);
  CHECK(previous.find("(best at step") != std::string::npos);
  const std::string ckpt = (root / "checkpoint.gckpt").string(), before = read_file(ckpt);
  std::ostringstream again_log;
  const auto again = train::train(r.recipe, again_log);
  CHECK(again.steps == first.steps);
  CHECK(again_log.str().find("validation:") == std::string::npos);  // no step, so no validation
  CHECK(read_file(ckpt) == before);
  fs::remove_all(root);
}

TEST_CASE("Trainer: a stop signal at a validation step or at the last step loses no validation", "[train][resume]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_trainer_signal_" + std::to_string(::getpid()));
  fs::remove_all(root);
  struct Case {
    int steps, valid_every, signal_after;  // SIGINT while printing this validation line
    std::vector<int> rows;                 // metrics.jsonl's steps, as in a run never stopped
  };
  // Validation at every step: the signal lands in step 3's update, which is due a validation.
  // Validation every 4 steps of 5: the signal lands in step 5's, the last, due the final one.
  for (const Case& c : {Case{5, 1, 2, {1, 2, 3, 4, 5}}, Case{5, 4, 1, {4, 5}}}) {
    const fs::path dir = root / std::to_string(c.valid_every);
    const auto r = small_recipe(dir, c.steps, {"--train.valid_every", std::to_string(c.valid_every)});
    SignalAfterValidations buf(c.signal_after);
    std::ostream log(&buf);
    CHECK_THROWS_AS(train::train(r.recipe, log), Interrupted);
    std::ostringstream quiet;
    const auto resumed = train::train(r.recipe, quiet);
    CHECK(resumed.steps == c.steps);
    CHECK(metrics_steps(dir) == c.rows);
  }
  fs::remove_all(root);
}

TEST_CASE("Trainer in bf16: resumed runs and 1 or 2 workers give the same model, bit for bit", "[train][bf16]") {
  if (!compute::has_bf16()) {
    WARN("this CPU lacks AVX512-BF16: the bf16 training test does not apply");
    return;
  }
  const fs::path root = fs::temp_directory_path() / ("gloss_bf16_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  const std::vector<std::string> bf16 = {"--train.precision", "bf16", "--train.replicas", "2"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), bf16.begin(), bf16.end());
    return extra;
  };
  const auto full = small_recipe(root / "full", 6, with({}));
  train::train(full.recipe, log);
  CHECK(log.str().find("train: precision bf16") != std::string::npos);
  train::train(small_recipe(root / "resumed", 4, with({})).recipe, log);
  train::train(small_recipe(root / "resumed", 6, with({})).recipe, log);
  train::train(small_recipe(root / "one", 6, with({"--train.threads", "1"})).recipe, log);
  train::train(small_recipe(root / "f32", 6, {"--train.replicas", "2"}).recipe, log);
  const auto a = final_parameters(root / "full", full);
  const auto b = final_parameters(root / "resumed", full);
  const auto one = final_parameters(root / "one", full);
  const auto f32 = final_parameters(root / "f32", full);
  REQUIRE(a.size() == b.size());
  REQUIRE(a.size() == one.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.data(), one.data(), a.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.data(), f32.data(), a.size() * sizeof(float)) != 0);  // and it was not f32
  fs::remove_all(root);
}

TEST_CASE(
    "Trainer: the model file holds the lexical shortlist of the training pairs, and translation uses it on request",
    "[train][shortlist]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_shortlist_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  const auto r = small_recipe(root, 2);
  train::train(r.recipe, log);
  const std::string model_path = (root / "model.best.gloss").string();
  const auto mf = model::load_model(model_path, nullptr);
  // The list gloss shortlist would build from the training pairs training keeps (same sizes).
  const auto src = text::SubwordModel::from_bytes(mf.src_spm, "src");
  const auto tgt = text::SubwordModel::from_bytes(mf.tgt_spm, "tgt");
  const auto corpus = text::encode_parallel(r.recipe.data.train_src, r.recipe.data.train_tgt, src, tgt,
                                            text::training_filter(r.recipe.data), 1);
  const auto expected = decode::Shortlist::build(corpus, src.vocab_size(), tgt.vocab_size(), {});
  REQUIRE(!mf.shortlist.empty());
  CHECK(mf.shortlist == expected.to_text());
  // Checkpoints carry it too, and gloss average passes it on.
  CHECK(model::load_any((root / "checkpoint.gckpt").string(), nullptr).shortlist == mf.shortlist);
  model::average_models({(root / "checkpoint.gckpt").string(), model_path}, (root / "avg.gloss").string());
  CHECK(model::load_model((root / "avg.gloss").string(), nullptr).shortlist == mf.shortlist);

  decode::Translator translator({model_path});
  translator.use_shortlist("model");
  CHECK(translator.has_shortlist());
  translator.use_shortlist("none");
  CHECK(!translator.has_shortlist());
  // A model without one (written before format 5, or by hand) translates without.
  model::ModelFile bare = mf;
  bare.shortlist.clear();
  nn::ParameterSet params;
  model::Seq2Seq net(mf.config, params);
  model::load_model(model_path, &params);
  model::save_model((root / "bare.gloss").string(), bare, params);
  decode::Translator plain({(root / "bare.gloss").string()});
  plain.use_shortlist("model");
  CHECK(!plain.has_shortlist());
  fs::remove_all(root);
}

TEST_CASE("Trainer: with train.replicas fixed, 1, 2 or 4 workers train the same model, bit for bit",
          "[train][parallel]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_replicas_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  // Dropouts and word dropout draw from the replicas' streams; batches of 48 in parts of ~300
  // positions give each replica more than one part.
  auto run = [&](int replicas, int threads) {
    // Built by appending: GCC 12 gives a false -Wrestrict for "r" + std::to_string(...) here.
    std::string name = "r";
    name.append(std::to_string(replicas)).append("-t").append(std::to_string(threads));
    const fs::path dir = root / name;
    const auto loaded = small_recipe(dir, 6,
                                     {"--train.replicas", std::to_string(replicas), "--train.threads",
                                      std::to_string(threads), "--model.word_dropout", "0.1", "--model.dropout_emb",
                                      "0.2", "--train.split_positions", "300", "--train.valid_every", "100"});
    train::train(loaded.recipe, log);
    return final_parameters(dir, loaded);
  };
  const auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  const auto two_by_one = run(2, 1), two_by_two = run(2, 2);
  CHECK(same(two_by_one, two_by_two));
  const auto four_by_one = run(4, 1), four_by_two = run(4, 2), four_by_four = run(4, 4);
  CHECK(same(four_by_one, four_by_two));
  CHECK(same(four_by_one, four_by_four));
  CHECK(!same(two_by_two, four_by_two));  // the replicas, not the workers, shape the model
  // Replicas that the workers do not divide: a one-line error naming the keys.
  try {
    run(3, 2);
    FAIL("expected an error");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("train.replicas 3 is not a multiple of the 2 workers") != std::string::npos);
  }
  fs::remove_all(root);
}

TEST_CASE("Trainer: with subword sampling, a run resumed across epochs ends bit for bit like an uninterrupted one",
          "[train][resume][sampling]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_trainer_sampling_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  // 1,014 pairs in batches of 200: 6 batches an epoch; stopped in epoch 2, resumed into epoch 3.
  const std::vector<std::string> sampled = {"--subword.sample_nbest", "8", "--train.batch_size", "200",
                                            "--train.valid_every",    "7"};
  const auto full = small_recipe(root / "full", 14, sampled);
  train::train(full.recipe, log);
  CHECK(log.str().find("train: subword sampling: ") != std::string::npos);
  train::train(small_recipe(root / "resumed", 7, sampled).recipe, log);
  train::train(small_recipe(root / "resumed", 14, sampled).recipe, log);
  const auto a = final_parameters(root / "full", full);
  const auto b = final_parameters(root / "resumed", full);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  // Sampling does change what is learnt: without it the same run ends elsewhere.
  const auto plain = small_recipe(root / "plain", 14, {"--train.batch_size", "200", "--train.valid_every", "7"});
  train::train(plain.recipe, log);
  const auto c = final_parameters(root / "plain", plain);
  REQUIRE(c.size() == a.size());
  CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) != 0);
  fs::remove_all(root);
}

TEST_CASE("Trainer: with weight decay, a weight average, context and word dropout, resume is still bit for bit",
          "[train][resume]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_trainer_reg_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  const std::vector<std::string> reg = {"--train.weight_decay", "0.01", "--train.ema_decay",    "0.99",
                                        "--model.dropout_ctx",  "0.3",  "--model.word_dropout", "0.1",
                                        "--train.keep_last",    "3"};
  const auto full = small_recipe(root / "full", 10, reg);
  const auto first = train::train(full.recipe, log);
  train::train(small_recipe(root / "resumed", 8, reg).recipe, log);
  train::train(small_recipe(root / "resumed", 10, reg).recipe, log);
  const auto a = final_parameters(root / "full", full);
  const auto b = final_parameters(root / "resumed", full);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  // The saved best model is the weight average at the best step (a checkpoint's model is its
  // average too), not the weights of that step.
  REQUIRE(first.best_step > 0);
  const std::string best_ckpt = (root / "full" / ("checkpoint." + std::to_string(first.best_step) + ".gckpt")).string();
  const auto mf = model::load_model((root / "full" / "model.best.gloss").string(), nullptr);
  nn::ParameterSet best, averaged, raw;
  model::Seq2Seq m1(mf.config, best), m2(mf.config, averaged), m3(mf.config, raw);
  model::load_model((root / "full" / "model.best.gloss").string(), &best);
  model::load_any(best_ckpt, &averaged);
  auto opt = nn::make_optimizer("adam", raw);
  train::TrainingState state;
  nn::WeightAverage avg(raw, 0.99);
  train::load_checkpoint(best_ckpt, raw, *opt, state, avg.state());
  const auto& x = best.get("decoder/attention/v").value;
  const auto& y = averaged.get("decoder/attention/v").value;
  const auto& z = raw.get("decoder/attention/v").value;
  const auto bytes = static_cast<std::size_t>(x.size()) * sizeof(float);
  CHECK(std::memcmp(x.data(), y.data(), bytes) == 0);
  CHECK(std::memcmp(x.data(), z.data(), bytes) != 0);
  // Switching the average off (or on) for a run that has a checkpoint: a clear error.
  CHECK_THROWS_WITH(train::train(small_recipe(root / "full", 12, {"--model.dropout_ctx", "0.3"}).recipe, log),
                    Catch::Contains("was trained with train.ema_decay"));
  train::train(small_recipe(root / "plain", 4).recipe, log);
  CHECK_THROWS_WITH(train::train(small_recipe(root / "plain", 8, {"--train.ema_decay", "0.99"}).recipe, log),
                    Catch::Contains("was trained without train.ema_decay"));
  fs::remove_all(root);
}

namespace {

// Two ranks of a job as two threads of this process: each collective meets at a barrier.
struct Exchange {
  std::barrier<> sync{2};
  const void* data[2] = {nullptr, nullptr};
  std::size_t n[2] = {0, 0};
  bool mismatch = false;
};
struct ThreadRank : dist::Comm {
  ThreadRank(int r, Exchange& e) : r_(r), e_(e) {}
  int rank() const override { return r_; }
  int size() const override { return 2; }
  void sum_in_rank_order(float* x, std::size_t n) override {
    combine(x, n, [](float a, float b) { return a + b; });
  }
  void sum_in_rank_order(double* x, std::size_t n) override {
    combine(x, n, [](double a, double b) { return a + b; });
  }
  void any(std::uint8_t* x, std::size_t n) override {
    combine(x, n, [](std::uint8_t a, std::uint8_t b) { return static_cast<std::uint8_t>(a | b); });
  }
  void broadcast(double*, std::size_t) override {}
  bool all_ok(bool ok) override { return ok; }
  void barrier() override { e_.sync.arrive_and_wait(); }
  // Both ranks' x combined element-wise in rank order, into each rank's x.
  template <typename T, typename Op>
  void combine(T* x, std::size_t n, Op op) {
    e_.data[r_] = x;
    e_.n[r_] = n;
    e_.sync.arrive_and_wait();
    if (r_ == 0 && e_.n[0] != e_.n[1]) e_.mismatch = true;  // one writer
    const std::size_t m = std::min(e_.n[0], e_.n[1]);
    const T* a = static_cast<const T*>(e_.data[0]);
    const T* b = static_cast<const T*>(e_.data[1]);
    std::vector<T> out(m);
    for (std::size_t i = 0; i < m; ++i) out[i] = op(a[i], b[i]);
    e_.sync.arrive_and_wait();  // both have read both before either writes
    std::copy(out.begin(), out.end(), x);
    if constexpr (std::is_same_v<T, float>) moved += m;
  }
  int r_;
  Exchange& e_;
  std::size_t moved = 0;  // floats summed
};

}  // namespace

TEST_CASE("Workers: a batch run by replicas side by side gives the one-model gradient and loss", "[train][parallel]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_workers_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  const auto loaded = small_recipe(root, 1);
  auto r = loaded.recipe;
  r.model.dropout_emb = r.model.dropout_rnn = r.model.dropout_readout = 0;  // no randomness in the gradient
  const auto paths = text::prepare_subword_models(r.data, r.subword, (root / "spm").string(), log);
  const auto src = text::SubwordModel::load(paths.src), tgt = text::SubwordModel::load(paths.tgt);
  const auto corpus = text::encode_parallel(r.data.train_src, r.data.train_tgt, src, tgt, {}, 1);
  model::ModelConfig mc = r.model;
  mc.src_vocab = src.vocab_size();
  mc.tgt_vocab = tgt.vocab_size();
  text::Batcher batcher(corpus, train::batch_options(r.train));
  const text::Batch batch = batcher.next();
  REQUIRE(batch.size > 8);

  auto gradients = [&](int threads, std::int64_t split_positions, nn::LossSum& loss, dist::Comm& comm = dist::job(),
                       bool sum_across_ranks = false) {
    train::TrainOptions t = r.train;
    t.threads = threads;
    t.split_positions = static_cast<int>(split_positions);
    compute::set_threads(threads);  // as training sets them: operations of a lone worker use these
    nn::ParameterSet params;
    model::Seq2Seq net(mc, params);
    Rng init(7);
    nn::init_parameters(params, "uniform", 0.1f, init);
    train::Workers workers(net, params, mc, t, comm);
    if (!sum_across_ranks) CHECK(workers.size() == threads);  // Catch asserts from one thread only
    Rng rng(3);
    for (int rep = 0; rep < 2; ++rep) {  // twice: replicas must start the second batch from zero
      params.zero_grad();
      loss = workers.train_batch(corpus, batch, rng, 1.0f / static_cast<float>(batch.target_tokens), 0);
      if (sum_across_ranks) workers.sum_across_ranks(loss);
    }
    std::vector<float> all;
    for (const auto& p : params.all()) all.insert(all.end(), p->grad.data(), p->grad.data() + p->grad.size());
    return all;
  };
  nn::LossSum one, three, split;
  const auto g1 = gradients(1, 0, one);
  const auto g3 = gradients(3, 0, three);
  const auto gs = gradients(2, 200, split);  // parts of groups, as with train.split_positions
  CHECK(three.tokens == one.tokens);
  CHECK(three.loss == Approx(one.loss).epsilon(1e-6));
  CHECK(split.loss == Approx(one.loss).epsilon(1e-6));
  REQUIRE(g1.size() == g3.size());
  double diff = 0, norm = 0, diff_split = 0;
  for (std::size_t i = 0; i < g1.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(g1[i] - g3[i])));
    diff_split = std::max(diff_split, static_cast<double>(std::fabs(g1[i] - gs[i])));
    norm = std::max(norm, static_cast<double>(std::fabs(g1[i])));
  }
  CHECK(norm > 1e-3);
  CHECK(diff <= 1e-5 * norm);  // the same sum, added in another order
  CHECK(diff_split <= 1e-5 * norm);

  // Two ranks of an MPI job with one worker each (here in one process: their sum done by
  // hand, in rank order, as dist::Comm does) give one process's two workers' sum, bit for bit.
  struct Rank : dist::Comm {
    explicit Rank(int r) : r_(r) {}
    int rank() const override { return r_; }
    int size() const override { return 2; }
    void sum_in_rank_order(float*, std::size_t) override {}
    void sum_in_rank_order(double*, std::size_t) override {}
    void any(std::uint8_t*, std::size_t) override {}
    void broadcast(double*, std::size_t) override {}
    bool all_ok(bool ok) override { return ok; }
    void barrier() override {}
    int r_;
  };
  Rank rank0(0), rank1(1);
  nn::LossSum two, l0, l1;
  const auto g2 = gradients(2, 0, two);
  const auto r0 = gradients(1, 0, l0, rank0);
  const auto r1 = gradients(1, 0, l1, rank1);
  CHECK(l0.tokens + l1.tokens == two.tokens);
  CHECK(l0.tokens > 0);
  CHECK(l1.tokens > 0);
  std::size_t differing = 0;
  for (std::size_t i = 0; i < g2.size(); ++i) differing += (r0[i] + r1[i] != g2[i]);
  CHECK(differing == 0);

  // The same two ranks at once (two threads), summing as Workers::sum_across_ranks does under
  // mpirun: only the embedding rows some rank touched travel, and each rank ends with the two
  // workers' gradients, bit for bit.
  Exchange exchange;
  ThreadRank t0(0, exchange), t1(1, exchange);
  nn::LossSum s0, s1;
  std::vector<float> summed0, summed1;
  std::thread second([&] { summed1 = gradients(1, 0, s1, t1, true); });
  summed0 = gradients(1, 0, s0, t0, true);
  second.join();
  CHECK_FALSE(exchange.mismatch);
  CHECK(s0.tokens == two.tokens);
  CHECK(s1.tokens == two.tokens);
  REQUIRE(summed0.size() == g2.size());
  REQUIRE(summed1.size() == g2.size());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < g2.size(); ++i) wrong += (summed0[i] != g2[i]) + (summed1[i] != g2[i]);
  CHECK(wrong == 0);
  CHECK(t0.moved == t1.moved);
  INFO("floats summed in two updates: " << t0.moved << ", gradients: " << g2.size());
  CHECK(t0.moved < 2 * g2.size());  // fewer floats than all gradients: some rows stayed home
  fs::remove_all(root);
}

TEST_CASE("Model files: truncated, corrupted or foreign files are clear errors", "[train][checkpoint]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_ckpt_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  model::ModelConfig c;
  c.src_vocab = c.tgt_vocab = 20;
  c.emb_dim = c.enc_hidden = c.att_dim = c.readout_dim = 4;
  c.dec_hidden = 6;
  c.layer_norm = true;  // stored since format 4
  nn::ParameterSet params;
  model::Seq2Seq net(c, params);
  params.get("decoder/attention/v").value[1] = 0.25f;
  // No subword models (loaders check stored ones against the vocabularies; see e2e.hostile_files).
  model::ModelFile mf{c, "", "", "recipe text", ""};
  const auto path = (root / "m.gloss").string();
  model::save_model(path, mf, params);
  nn::ParameterSet loaded;
  model::Seq2Seq net2(c, loaded);
  const auto back = model::load_model(path, &loaded);
  CHECK(back.config.layer_norm);
  CHECK(back.config.decoder == "bahdanau");
  {
    model::ModelConfig cc = c;
    cc.layer_norm = false;
    cc.decoder = "conditional";  // stored since format 6
    nn::ParameterSet cp;
    model::Seq2Seq cnet(cc, cp);
    const auto cpath = (root / "conditional.gloss").string();
    model::save_model(cpath, model::ModelFile{cc, "", "", "", ""}, cp);
    CHECK(model::load_model(cpath, nullptr).config.decoder == "conditional");
  }
  CHECK(back.recipe == "recipe text");
  CHECK(back.shortlist.empty());
  mf.shortlist = "gloss-shortlist 1 20 20\n5\n";
  model::save_model(path, mf, params);
  CHECK(model::load_model(path, nullptr).shortlist == mf.shortlist);
  CHECK(loaded.get("decoder/attention/v").value[1] == 0.25f);

  const std::string bytes = read_file(path);
  auto write = [&](const std::string& name, const std::string& data) {
    std::ofstream(root / name, std::ios::binary) << data;
    return (root / name).string();
  };
  CHECK_THROWS_WITH(model::load_model(write("short.gloss", bytes.substr(0, bytes.size() / 2)), nullptr),
                    Catch::Contains("is truncated"));
  std::string flipped = bytes;
  flipped[bytes.size() - 10] ^= 0x40;
  CHECK_THROWS_WITH(model::load_model(write("flip.gloss", flipped), nullptr), Catch::Contains("checksum mismatch"));
  CHECK_THROWS_WITH(model::load_model(write("text.gloss", "hello, not a model at all\n"), nullptr),
                    Catch::Contains("is not a Gloss model"));
  CHECK_THROWS_WITH(train::peek_checkpoint(path), Catch::Contains("is a Gloss model file, not a checkpoint"));
  fs::remove_all(root);
}

TEST_CASE("Checkpoints: the loss since the last validation is kept, and format 6 files still load",
          "[train][checkpoint]") {
  const fs::path root = fs::temp_directory_path() / ("gloss_ckpt_v6_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  model::ModelConfig c;
  c.src_vocab = c.tgt_vocab = 20;
  c.emb_dim = c.enc_hidden = c.att_dim = c.readout_dim = c.dec_hidden = 4;
  nn::ParameterSet params;
  model::Seq2Seq net(c, params);
  auto optimizer = nn::make_optimizer("adam", params);
  train::TrainingState state;
  state.step = 42;
  state.loss_since_valid = 1234.5;
  state.tokens_since_valid = 321;
  const auto path = (root / "checkpoint.gckpt").string();
  train::save_checkpoint(path, model::ModelFile{c, "", "", "", ""}, params, *optimizer, state);
  train::TrainingState back;
  train::load_checkpoint(path, params, *optimizer, back);
  CHECK(back.step == 42);
  CHECK(back.loss_since_valid == 1234.5);
  CHECK(back.tokens_since_valid == 321);

  // The same file as format 6 wrote it: the payload without those two fields (16 bytes at its
  // end), header version, size and CRC-32 set to match.
  std::string bytes = read_file(path);
  bytes.resize(bytes.size() - 16);
  const std::uint32_t version = 6;
  const std::uint64_t size = bytes.size() - 24;
  const auto crc =
      static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(bytes.data() + 24), static_cast<uInt>(size)));
  std::memcpy(bytes.data() + 8, &version, 4);
  std::memcpy(bytes.data() + 12, &size, 8);
  std::memcpy(bytes.data() + 20, &crc, 4);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  train::TrainingState old;
  train::load_checkpoint(path, params, *optimizer, old);
  CHECK(old.step == 42);
  CHECK(old.loss_since_valid == 0);
  CHECK(old.tokens_since_valid == 0);
  fs::remove_all(root);
}

TEST_CASE("Learning-rate schedules: constant, plateau, inverse_sqrt and cosine with warm-up", "[train]") {
  using gloss::train::lr_at;
  gloss::train::TrainOptions t;
  t.lr = 0.01;
  t.lr_schedule = "constant";
  CHECK(lr_at(t, 0.5, 0) == 0.01);
  CHECK(lr_at(t, 0.5, 1000) == 0.01);
  t.lr_schedule = "plateau";  // the run's halved rate
  CHECK(lr_at(t, 0.005, 1000) == 0.005);
  t.lr_schedule = "inverse_sqrt";
  t.warmup_steps = 100;
  CHECK(lr_at(t, 0.5, 50) == Approx(0.005));
  CHECK(lr_at(t, 0.5, 100) == Approx(0.01));
  CHECK(lr_at(t, 0.5, 400) == Approx(0.005));
  t.lr_schedule = "cosine";  // lr_min + (lr - lr_min) (1 + cos(pi s / span)) / 2, then lr_min
  t.warmup_steps = 0;
  t.decay_steps = 1000;
  t.lr_min = 0.001;
  CHECK(lr_at(t, 0.5, 0) == Approx(0.01));
  CHECK(lr_at(t, 0.5, 500) == Approx(0.0055));
  CHECK(lr_at(t, 0.5, 250) == Approx(0.001 + 0.009 * (1 + std::sqrt(0.5)) / 2));
  CHECK(lr_at(t, 0.5, 1000) == Approx(0.001));
  CHECK(lr_at(t, 0.5, 5000) == Approx(0.001));
  t.decay_steps = 2000;
  t.max_steps = 1000;  // the span is decay_steps alone, whatever the run's limits
  CHECK(lr_at(t, 0.5, 1000) == Approx(0.0055));
  t.warmup_steps = 100;  // warm-up scales the start
  CHECK(lr_at(t, 0.5, 50) == Approx(0.5 * (0.001 + 0.009 * (1 + std::cos(M_PI * 50 / 2000)) / 2)));
  t.warmup_steps = 0;  // decay_start holds lr, then the same half cosine, shifted
  t.decay_start = 3000;
  CHECK(lr_at(t, 0.5, 0) == Approx(0.01));
  CHECK(lr_at(t, 0.5, 2999) == Approx(0.01));
  CHECK(lr_at(t, 0.5, 3000 + 500) == Approx(0.001 + 0.009 * (1 + std::sqrt(0.5)) / 2));
  CHECK(lr_at(t, 0.5, 3000 + 1000) == Approx(0.0055));
  CHECK(lr_at(t, 0.5, 3000 + 2000) == Approx(0.001));
  CHECK(lr_at(t, 0.5, 9000) == Approx(0.001));
}

TEST_CASE("Scheduled sampling: the teacher-forcing ratio follows its decay schedule", "[train]") {
  gloss::train::TrainOptions t;
  t.teacher_forcing = 1.0;
  t.teacher_forcing_min = 0.2;
  t.teacher_forcing_steps = 100;
  CHECK(gloss::train::teacher_forcing_at(t, 0) == 1.0);
  CHECK(gloss::train::teacher_forcing_at(t, 5000) == 1.0);  // decay none: constant
  t.teacher_forcing_decay = "linear";
  CHECK(gloss::train::teacher_forcing_at(t, 50) == Approx(0.6));
  CHECK(gloss::train::teacher_forcing_at(t, 100) == Approx(0.2));
  CHECK(gloss::train::teacher_forcing_at(t, 1000) == Approx(0.2));
  t.teacher_forcing_decay = "exponential";  // half-life k
  CHECK(gloss::train::teacher_forcing_at(t, 100) == Approx(0.6));
  CHECK(gloss::train::teacher_forcing_at(t, 200) == Approx(0.4));
  t.teacher_forcing_decay = "inverse_sigmoid";  // k / (k + exp(s / k))
  CHECK(gloss::train::teacher_forcing_at(t, 0) == Approx(0.2 + 0.8 * 100.0 / 101.0));
  CHECK(gloss::train::teacher_forcing_at(t, 100000) == Approx(0.2));
  t.teacher_forcing = 0.5;  // constant ratio, as in the Keras/PyTorch tutorials
  t.teacher_forcing_decay = "none";
  CHECK(gloss::train::teacher_forcing_at(t, 123) == 0.5);
}
