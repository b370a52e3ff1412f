#include "gloss/report/pipeline.h"

#include <malloc.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "gloss/decode/translator.h"
#include "gloss/eval/evaluator.h"
#include "gloss/report/plot.h"
#include "gloss/train/checkpoint.h"
#include "gloss/train/trainer.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace gloss::report {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A file's content fingerprint, read in chunks (a copy or a touch of the file keeps it).
std::string file_identity(const std::string& path) {
  if (path.empty()) return "-";
  std::ifstream in(path, std::ios::binary);
  std::uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<std::size_t>(i)]);
      h *= 1099511628211ull;
    }
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

// Keys that only say how long to train (or how fast): changing them continues a run.
const std::set<std::string> kContinueKeys = {"train.epochs",  "train.max_steps", "train.max_minutes",
                                             "train.patience", "train.valid_every", "train.threads",
                                             "train.keep_last", "train.rnn_cache_mb", "train.split_positions", "train.parallel",
                                             "subword.threads"};

std::string training_fingerprint(const recipe::LoadedRecipe& loaded) {
  std::string s;
  for (const auto& key : loaded.keys) {
    const auto section = key.substr(0, key.find('.'));
    if (section != "data" && section != "subword" && section != "model" && section != "train") continue;
    if (kContinueKeys.count(key) || key.rfind("data.test_", 0) == 0) continue;
    s += key + "=" + loaded.text.at(key) + "\n";
  }
  const auto& d = loaded.recipe.data;
  for (const auto& f : {d.train_src, d.train_tgt, d.valid_src, d.valid_tgt}) s += f + " " + file_identity(f) + "\n";
  return fingerprint(s);
}

// A test file's name without directories, ".gz" and the language suffix: "test_2016_flickr".
std::string test_name(const std::string& path, const std::string& lang) {
  std::string name = fs::path(path).filename().string();
  if (name.size() > 3 && name.ends_with(".gz")) name.resize(name.size() - 3);
  if (name.ends_with("." + lang)) name.resize(name.size() - lang.size() - 1);
  return name;
}

std::string read_or_empty(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec) ? read_file(path) : std::string();
}

std::size_t count_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::size_t n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

// A '|' inside a Markdown table cell (even in code) must be written '\|'.
std::string table_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

struct TestResult {
  std::string name, source, reference, output;
  std::size_t lines = 0;
  bool reused = false;
  double seconds = 0;
  json scores = json::array();  // sacreBLEU's JSON objects (name, score, signature, verbose_score)
};

}  // namespace

std::string fingerprint(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

RunResult run_recipe(const recipe::LoadedRecipe& loaded, std::ostream& log) {
  const recipe::Recipe& r = loaded.recipe;
  const fs::path dir(r.run.workdir);
  fs::create_directories(dir);
  const auto run_start = Clock::now();
  std::string recipe_text;
  for (const auto& key : loaded.keys)
    if (key != "run.workdir") recipe_text += key + "=" + loaded.text.at(key) + "\n";
  const std::string recipe_fp = fingerprint(recipe_text);
  json stages = json::object();

  // ---- training (subword models first, inside train())
  const std::string train_fp = training_fingerprint(loaded);
  const fs::path fp_path = dir / "train.fingerprint", ckpt = dir / "checkpoint.gckpt";
  const std::string old_fp = read_or_empty(fp_path.string());
  if (fs::exists(ckpt) && !old_fp.empty() && old_fp != train_fp) {
    const fs::path prev = dir / "previous";
    fs::remove_all(prev);
    fs::create_directories(prev);
    std::vector<fs::path> old_files;  // collected first: renaming while iterating may skip entries
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name != "spm" && name != "previous" && entry.is_regular_file()) old_files.push_back(entry.path());
    }
    for (const auto& f : old_files) fs::rename(f, prev / f.filename());
    log << "run: the recipe's data, model or training keys changed since " << ckpt.string()
        << " was trained; its files are now in " << prev.string() << ", training starts again" << std::endl;
  }
  atomic_write_file(fp_path.string(), train_fp);
  log << "run: [1/3] train (subword models, then the model; resumes or reuses what is there)" << std::endl;
  auto t0 = Clock::now();
  const train::TrainOutcome trained = train::train(loaded, log);
  stages["train"] = {{"seconds", since(t0)}, {"steps_this_run", !trained.stop_reason.empty()}};
  // Training's buffers are freed but kept by the allocator (gloss keeps freed memory for
  // reuse); give them back before translating, or the two stages' peaks add up.
  malloc_trim(0);
  const auto metrics_rows = read_metrics((dir / "metrics.jsonl").string());
  const report::MetricsRow* best_row = nullptr;
  for (const auto& m : metrics_rows)
    if (m.step == trained.best_step) best_row = &m;
  const std::string svg_path = (dir / "curves.svg").string();
  atomic_write_file(svg_path, training_curves_svg(metrics_rows, "Gloss: " + fs::path(r.path).filename().string() +
                                                                     " (" + r.data.src_lang + "->" + r.data.tgt_lang + ")"));

  // ---- translation and evaluation of the test set
  std::vector<TestResult> tests;
  if (!r.data.test_src.empty()) {
    TestResult t;
    t.name = test_name(r.data.test_src, r.data.src_lang);
    t.source = r.data.test_src;
    t.reference = r.data.test_tgt;
    t.output = (dir / (t.name + "." + r.data.tgt_lang)).string();
    decode::TranslateOptions o;
    o.beam_size = r.decode.beam_size;
    o.length_penalty = static_cast<float>(r.decode.length_penalty);
    o.max_len_ratio = r.decode.max_len_ratio;
    o.max_len_add = r.decode.max_len_add;
    o.batch_size = r.decode.batch_size;
    std::string decode_text;
    for (const auto& key : loaded.keys)
      if (key.rfind("decode.", 0) == 0) decode_text += key + "=" + loaded.text.at(key) + "\n";
    const std::string stamp = file_identity(trained.best_model) + " " + fingerprint(decode_text + file_identity(t.source));
    const std::string stamp_path = t.output + ".stamp";
    log << "run: [2/3] translate " << t.source << " (beam " << o.beam_size << ")" << std::endl;
    t0 = Clock::now();
    if (fs::exists(t.output) && read_or_empty(stamp_path) == stamp) {
      t.reused = true;
      log << "run: " << t.output << " is up to date (same model, test file and decode keys)" << std::endl;
    } else {
      decode::Translator translator(trained.best_model);
      std::ostringstream unused;
      decode::translate_file(translator, t.source, t.output, o, unused, log);
      atomic_write_file(stamp_path, stamp);
    }
    t.seconds = since(t0);
    t.lines = count_lines(t.output);
    log << "run: [3/3] evaluate " << t.output << " against " << t.reference << std::endl;
    eval::EvalOptions e;
    e.references = {t.reference};
    e.inputs = {t.output};
    e.metrics.clear();
    std::istringstream words(r.eval.metrics);
    for (std::string m; words >> m;) e.metrics.push_back(m);
    e.format = "json";
    std::istringstream no_input;
    std::ostringstream scored;
    eval::run_eval(e, no_input, scored);
    const auto parsed = json::parse(scored.str());
    t.scores = parsed.is_array() ? parsed : json::array({parsed});
    tests.push_back(std::move(t));
  } else {
    log << "run: the recipe names no test set (data.test_src); nothing to translate" << std::endl;
  }

  // ---- the report
  std::error_code ec;
  const auto model_bytes = fs::file_size(trained.best_model, ec);
  json j;
  j["recipe"] = r.path;
  j["recipe_fingerprint"] = recipe_fp;
  j["workdir"] = dir.string();
  j["data"] = {{"train_pairs_read", trained.pairs_read},
               {"train_pairs_kept", trained.pairs_kept},
               {"filter", trained.data_summary},
               {"valid_pairs", trained.valid_pairs},
               {"src_vocab", trained.src_vocab},
               {"tgt_vocab", trained.tgt_vocab}};
  j["model"] = {{"file", trained.best_model},
                {"file_bytes", model_bytes},
                {"parameters", trained.parameters},
                {"cell", r.model.cell},
                {"enc_layers", r.model.enc_layers},
                {"dec_layers", r.model.dec_layers}};
  j["training"] = {{"steps", trained.steps},
                   {"epochs", trained.epochs_done},
                   {"target_tokens", trained.target_tokens},
                   {"seconds", trained.train_seconds},
                   {"target_tokens_per_s", trained.train_seconds > 0 ? trained.target_tokens / trained.train_seconds : 0.0},
                   {"best_step", trained.best_step},
                   {"valid_metric", r.train.valid_metric},
                   {"best_valid_bleu", best_row ? best_row->valid_bleu : 0.0},
                   {"best_valid_chrf", best_row ? best_row->valid_chrf : 0.0},
                   {"best_valid_ce", best_row ? best_row->valid_ce : 0.0},
                   {"curves", svg_path}};
  json tj = json::array();
  for (const auto& t : tests) {
    tj.push_back({{"name", t.name},
                  {"source", t.source},
                  {"reference", t.reference},
                  {"output", t.output},
                  {"lines", t.lines},
                  {"beam_size", r.decode.beam_size},
                  {"reused", t.reused},
                  {"translate_seconds", t.seconds},
                  {"scores", t.scores}});
  }
  j["tests"] = tj;
  stages["total_seconds"] = since(run_start);
  j["this_run"] = stages;

  std::ostringstream md;
  md << "# Gloss run report: " << fs::path(r.path).filename().string() << "\n\n";
  md << "- Recipe: `" << r.path << "` (fingerprint " << recipe_fp << "), run folder `" << dir.string() << "`\n";
 const auto dropped = trained.data_summary.find("; ");
  md << "- Data: " << trained.pairs_kept << " of " << trained.pairs_read << " training pairs kept ("
     << (dropped == std::string::npos ? "none dropped" : trained.data_summary.substr(dropped + 2)) << "); " << trained.valid_pairs << " validation pairs; subword vocabularies "
     << trained.src_vocab << " (" << r.data.src_lang << ") and " << trained.tgt_vocab << " (" << r.data.tgt_lang << ")\n";
  md << "- Model: " << r.model.cell << ", " << trained.parameters << " parameters, `" << trained.best_model << "` ("
     << fixed(static_cast<double>(model_bytes) / 1e6, 1) << " MB)\n";
  md << "- Training: " << trained.steps << " updates, " << fixed(trained.epochs_done, 2) << " epochs, " << duration_text(trained.train_seconds)
     << " of updates, " << fixed(trained.train_seconds > 0 ? trained.target_tokens / trained.train_seconds : 0.0, 0)
     << " target tokens/s; best validation " << r.train.valid_metric << " at step " << trained.best_step;
  if (best_row)
    md << " (BLEU " << fixed(best_row->valid_bleu, 2) << ", chrF " << fixed(best_row->valid_chrf, 2) << ", CE "
       << fixed(best_row->valid_ce, 3) << ", greedy)";
  md << "\n- Curves: `" << svg_path << "`\n\n";
  if (!tests.empty()) {
    md << "| test set | lines | beam | metric | score | signature |\n|---|---|---|---|---|---|\n";
    for (const auto& t : tests)
      for (const auto& s : t.scores)
        md << "| " << t.name << " | " << t.lines << " | " << r.decode.beam_size << " | " << s.value("name", "") << " | "
           << fixed(s.value("score", 0.0), 1) << " | `" << table_escape(s.value("signature", "")) << "` |\n";
    md << "\n";
  }
  md << "This run: train " << fixed(stages["train"]["seconds"].get<double>(), 1) << " s";
  for (const auto& t : tests) md << ", translate " << fixed(t.seconds, 1) << " s" << (t.reused ? " (reused)" : "");
  md << ", total " << fixed(since(run_start), 1) << " s.\n";

  RunResult result{md.str(), j.dump(2) + "\n"};
  atomic_write_file((dir / "report.md").string(), result.markdown);
  atomic_write_file((dir / "report.json").string(), result.json);
  return result;
}

}  // namespace gloss::report
