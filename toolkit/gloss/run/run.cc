#include "gloss/run/run.h"

#include <malloc.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

#include "gloss/decode/translator.h"
#include "gloss/dist/comm.h"
#include "gloss/eval/evaluator.h"
#include "gloss/model/model_file.h"
#include "gloss/report/plot.h"
#include "gloss/train/checkpoint.h"
#include "gloss/train/trainer.h"
#include "gloss/translate/translate_file.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/hash.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace gloss::run {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Keys that only say how long to train (or how fast): changing them continues a run.
const std::set<std::string> kContinueKeys = {"train.epochs",    "train.max_steps",       "train.max_minutes",
                                             "train.patience",  "train.valid_every",     "train.threads",
                                             "train.keep_last", "train.split_positions", "train.parallel",
                                             "subword.threads", "data.tempdir"};

// Keys added after runs already existed: left out of the fingerprint while at their default,
// so that a run trained before they existed (which trained as the default says) stays valid.
const std::set<std::string> kLaterKeys = {"model.dropout_ctx", "model.word_dropout", "model.layer_norm",
                                          "model.decoder",     "train.weight_decay", "train.ema_decay",
                                          "train.replicas",    "train.precision",    "train.decay_steps",
                                          "train.lr_min",      "train.decay_start"};

bool at_default(const recipe::LoadedRecipe& loaded, const std::string& key) {
  const auto it = loaded.origins.find(key);
  return it == loaded.origins.end() || it->second.kind == recipe::Origin::Kind::kDefault;
}

// What a trained model depends on: the data, subword, model and training keys (less
// kContinueKeys) and the training and validation files' contents.
std::string training_fingerprint(const recipe::LoadedRecipe& loaded) {
  std::string s;
  for (const auto& key : loaded.keys) {
    const auto section = key.substr(0, key.find('.'));
    if (section != "data" && section != "subword" && section != "model" && section != "train") continue;
    if (kContinueKeys.count(key) || key.rfind("data.test_", 0) == 0) continue;
    if (kLaterKeys.count(key) && at_default(loaded, key)) continue;
    s += key + "=" + loaded.text.at(key) + "\n";
  }
  const auto& d = loaded.recipe.data;
  for (const auto& f : {d.train_src, d.train_tgt, d.valid_src, d.valid_tgt}) s += f + " " + file_fingerprint(f) + "\n";
  return fingerprint(s);
}

// The keys of one section and their values, one "key=value" line each.
std::string section_text(const recipe::LoadedRecipe& loaded, const std::string& section) {
  std::string s;
  for (const auto& key : loaded.keys)
    if (key.rfind(section + ".", 0) == 0) s += key + "=" + loaded.text.at(key) + "\n";
  return s;
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
  std::string model, model_note;  // what translated it
  std::string name, source, reference, output, nbest_output;
  std::size_t lines = 0;
  bool reused = false;
  double seconds = 0;
  json scores = json::array();  // sacreBLEU's JSON objects (name, score, signature, verbose_score)
};

// Stage 0: when the keys or files a trained model depends on changed, the old run's files
// move to <workdir>/previous/<n>/ (n = 1, 2, ...: every earlier run is kept) and training
// starts again.
void set_aside_changed_run(const std::string& train_fp, const fs::path& dir, std::ostream& log) {
  const fs::path fp_path = dir / "train.fingerprint", ckpt = dir / "checkpoint.gckpt";
  const std::string old_fp = read_or_empty(fp_path.string());
  if (fs::exists(ckpt) && !old_fp.empty() && old_fp != train_fp) {
    int n = 1;
    while (fs::exists(dir / "previous" / std::to_string(n))) ++n;
    const fs::path prev = dir / "previous" / std::to_string(n);
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
}

// Stage 1b: the model that translates: the best model, or with run.average_last N the average
// of the last N checkpoints (each one's weight average when the run keeps one) in
// <workdir>/model.avg.gloss, remade when they change. `what` describes it for the report.
std::string translation_model(const recipe::Recipe& r, const train::TrainOutcome& trained, const fs::path& dir,
                              std::string& what, std::ostream& log) {
  const int n = r.run.average_last;
  what = "the best model (step " + std::to_string(trained.best_step) + ")";
  if (n == 0) return trained.best_model;
  auto checkpoints = train::numbered_checkpoints(dir.string());
  if (checkpoints.size() > static_cast<std::size_t>(n)) checkpoints.erase(checkpoints.begin(), checkpoints.end() - n);
  std::vector<std::string> inputs;
  std::string stamp, steps;
  for (const auto& [step, path] : checkpoints) {
    inputs.push_back(path);
    stamp += file_fingerprint(path) + "\n";
    steps += (steps.empty() ? "" : ", ") + std::to_string(step);
  }
  const std::string out = (dir / "model.avg.gloss").string(), stamp_path = out + ".stamp";
  what = "the average of the last " + std::to_string(inputs.size()) + " checkpoints (steps " + steps + ")";
  if (fs::exists(out) && read_or_empty(stamp_path) == stamp) return out;
  log << "run: averaging checkpoints " << steps << " into " << out << std::endl;
  model::average_models(inputs, out);
  atomic_write_file(stamp_path, stamp);
  return out;
}

// One model of the run: trained in the run folder, or (run.seeds) in seed-<s>/ of it.
struct Member {
  train::TrainSetup setup;
  std::string seed;  // "" unless the run is an ensemble
  train::TrainOutcome trained;
  std::string model, model_note;  // what translates
};

std::vector<std::string> seed_list(const std::string& seeds) {
  std::istringstream words(seeds);
  std::vector<std::string> out;
  for (std::string w; words >> w;) out.push_back(w);
  return out;
}

// Stage 1: every member trained (or resumed, or reused), and the model each translates with.
std::vector<Member> train_members(const recipe::LoadedRecipe& loaded, std::ostream& log) {
  const recipe::Recipe& r = loaded.recipe;
  const fs::path dir(r.workdir);
  std::vector<Member> members;
  for (const auto& seed : seed_list(r.run.seeds)) {
    Member m{r, seed, {}, {}, {}};
    m.setup.train.seed = std::stoi(seed);
    m.setup.workdir = (dir / ("seed-" + seed)).string();
    m.setup.subword_dir = (dir / "spm").string();  // shared: the ensemble needs one subword model
    m.setup.recipe_text += "\n# gloss run: ensemble member with train.seed = " + seed + "\n";
    members.push_back(std::move(m));
  }
  if (members.empty()) members.push_back({r, "", {}, {}, {}});
  dist::Comm& comm = dist::job();  // under mpirun every rank trains; rank 0 alone does the rest
  for (auto& m : members) {
    const fs::path mdir(m.setup.workdir);
    dist::rank0_first(comm, [&] {
      fs::create_directories(mdir);
      set_aside_changed_run(training_fingerprint(loaded) + (m.seed.empty() ? "" : " seed " + m.seed), mdir, log);
      log << "run: [1/3] train" << (m.seed.empty() ? "" : " (ensemble member, seed " + m.seed + ")")
          << " (subword models, then the model; resumes or reuses what is there)" << std::endl;
    });
    m.trained = train::train(m.setup, log);
    // Training's buffers are freed but kept by the allocator (gloss keeps freed memory for
    // reuse); give them back before the next stage, or the peaks add up.
    malloc_trim(0);
    if (comm.rank() == 0) m.model = translation_model(r, m.trained, mdir, m.model_note, log);
  }
  return members;
}

// run.grid: one combination of values, its recipe and its trained model.
struct GridRun {
  recipe::GridPoint point;
  std::string name;  // its folder under <workdir>/grid/
  recipe::LoadedRecipe loaded;
  std::vector<Member> members;  // one
};

// The recipe of each combination of run.grid: the recipe file, the command line's keys, then
// the combination's values, training in <workdir>/grid/<name>/ with the run's subword models.
// All are loaded (and so checked) before any trains: a bad value fails at once, not hours in.
std::vector<GridRun> load_grid(const recipe::LoadedRecipe& loaded) {
  const recipe::Recipe& r = loaded.recipe;
  const fs::path dir(r.workdir);
  const auto origin = loaded.origins.find("run.grid");
  const std::string where = origin == loaded.origins.end() ? "run.grid" : origin->second.describe() + ": run.grid";
  std::vector<GridRun> runs;
  for (const auto& point : recipe::grid_points(r.run.grid)) {
    GridRun g{point, recipe::grid_point_name(point), {}, {}};
    std::vector<std::string> overrides;
    for (const auto& origin_of : loaded.origins) {
      const std::string& key = origin_of.first;  // (a structured binding cannot be captured in C++20)
      const bool varied = std::any_of(point.begin(), point.end(), [&](const auto& kv) { return kv.first == key; });
      if (origin_of.second.kind == recipe::Origin::Kind::kCommandLine && !varied && key != "run.grid" &&
          key != "run.workdir")
        overrides.insert(overrides.end(), {"--" + key, loaded.text.at(key)});
    }
    for (const auto& [key, value] : point) overrides.insert(overrides.end(), {"--" + key, value});
    overrides.insert(overrides.end(), {"--run.grid", "", "--run.workdir", (dir / "grid" / g.name).string()});
    try {
      g.loaded = recipe::load_recipe(r.path, overrides);
    } catch (const UserError& e) {
      throw ConfigError(where + ": " + g.name + ": " + e.what());
    }
    runs.push_back(std::move(g));
  }
  return runs;
}

// Stage 1 of a grid: every combination trained (or resumed, or reused) in turn.
void train_grid(std::vector<GridRun>& runs, const fs::path& dir, std::ostream& log) {
  for (std::size_t i = 0; i < runs.size(); ++i) {
    log << "run: grid " << (i + 1) << "/" << runs.size() << ": " << runs[i].name << std::endl;
    recipe::LoadedRecipe& child = runs[i].loaded;
    child.recipe.subword_dir = (dir / "spm").string();  // shared (files are named by their corpus and options)
    runs[i].members = train_members(child, log);
  }
}

// The combination with the best validation score (train.valid_metric; the first of equals;
// one that was never validated, e.g. stopped before its first validation, only if all were not).
std::size_t best_of_grid(const std::vector<GridRun>& runs) {
  auto score = [&](std::size_t i) {
    const train::TrainOutcome& t = runs[i].members[0].trained;
    return t.best_validation ? t.best_score : -std::numeric_limits<double>::infinity();
  };
  std::size_t best = 0;
  for (std::size_t i = 1; i < runs.size(); ++i)
    if (score(i) > score(best)) best = i;
  return best;
}

// Stage 2: the test set translated with the [decode] keys, unless its stamp says the output
// is up to date.
TestResult translate_test(const recipe::LoadedRecipe& loaded, const std::vector<Member>& members, const fs::path& dir,
                          std::ostream& log) {
  const recipe::Recipe& r = loaded.recipe;
  TestResult t;
  std::vector<std::string> models;
  std::string model_fp;
  for (const auto& m : members) {
    models.push_back(m.model);
    model_fp += (model_fp.empty() ? "" : "+") + file_fingerprint(m.model);
    t.model += (t.model.empty() ? "" : " ") + m.model;
  }
  t.model_note = members.size() == 1 ? members[0].model_note
                                     : "an ensemble of " + std::to_string(members.size()) + " models (" +
                                           members[0].model_note + " of each seed's run)";
  t.name = test_name(r.data.test_src, r.data.src_lang);
  t.source = r.data.test_src;
  t.reference = r.data.test_tgt;
  t.output = (dir / (t.name + "." + r.data.tgt_lang)).string();
  translate::OutputOptions outputs;
  if (r.decode.search.n_best > 1) outputs.nbest_output = t.nbest_output = t.output + ".nbest";
  const std::string stamp = model_fp + " " + fingerprint(section_text(loaded, "decode") + file_fingerprint(t.source));
  const std::string stamp_path = t.output + ".stamp";
  log << "run: [2/3] translate " << t.source << " (beam " << r.decode.search.beam_size << ")" << std::endl;
  const auto t0 = Clock::now();
  if (fs::exists(t.output) && (t.nbest_output.empty() || fs::exists(t.nbest_output)) &&
      read_or_empty(stamp_path) == stamp) {
    t.reused = true;
    log << "run: " << t.output << " is up to date (same model, test file and decode keys)" << std::endl;
  } else {
    decode::Translator translator(models);
    translator.use_shortlist(r.decode.shortlist);
    std::ostringstream unused;
    translate::translate_file(translator, t.source, t.output, r.decode, outputs, unused, log);
    atomic_write_file(stamp_path, stamp);
  }
  t.seconds = since(t0);
  t.lines = count_lines(t.output);
  return t;
}

// Stage 3: eval.metrics of the translation, as sacreBLEU's JSON objects.
json evaluate_test(const recipe::Recipe& r, const TestResult& t, std::ostream& log) {
  log << "run: [3/3] evaluate " << t.output << " against " << t.reference << std::endl;
  eval::EvalOptions e;
  e.references = {t.reference};
  e.inputs = {t.output};
  e.metrics.clear();
  std::istringstream words(r.eval.metrics);
  for (std::string m; words >> m;) e.metrics.push_back(m);
  e.format = "json";
  e.bleu.lowercase = e.chrf.lowercase = text::folds_case(r.subword);  // the model writes lowercase only
  std::istringstream no_input;
  std::ostringstream scored;
  eval::run_eval(e, no_input, scored);
  const auto parsed = json::parse(scored.str());
  return parsed.is_array() ? parsed : json::array({parsed});
}

// A grid's table (empty without run.grid): its combinations in order, `chosen` the best.
struct GridTable {
  const std::vector<GridRun>* runs = nullptr;
  std::size_t chosen = 0;
};

json grid_json(const GridTable& grid) {
  json rows = json::array();
  for (std::size_t i = 0; i < grid.runs->size(); ++i) {
    const GridRun& g = (*grid.runs)[i];
    const train::TrainOutcome& t = g.members[0].trained;
    json values = json::object();
    for (const auto& [key, value] : g.point) values[key] = value;
    rows.push_back({{"name", g.name},
                    {"values", values},
                    {"workdir", g.loaded.recipe.workdir},
                    {"steps", t.steps},
                    {"seconds", t.train_seconds},
                    {"best_step", t.best_step},
                    {"best_valid_bleu", t.best_validation ? t.best_validation->valid_bleu : 0.0},
                    {"best_valid_chrf", t.best_validation ? t.best_validation->valid_chrf : 0.0},
                    {"best_valid_ce", t.best_validation ? t.best_validation->valid_ce : 0.0},
                    {"chosen", i == grid.chosen}});
  }
  return rows;
}

std::string grid_markdown(const recipe::Recipe& r, const GridTable& grid) {
  std::ostringstream md;
  md << "## Grid (`run.grid`), chosen on validation " << r.train.valid_metric << "\n\n";
  md << "| combination | updates | minutes | best step | val BLEU | val chrF | val CE | |\n"
        "|---|---|---|---|---|---|---|---|\n";
  for (std::size_t i = 0; i < grid.runs->size(); ++i) {
    const GridRun& g = (*grid.runs)[i];
    const train::TrainOutcome& t = g.members[0].trained;
    md << "| `" << table_escape(g.name) << "` | " << t.steps << " | " << fixed(t.train_seconds / 60, 1) << " | "
       << t.best_step << " | " << (t.best_validation ? fixed(t.best_validation->valid_bleu, 2) : "-") << " | "
       << (t.best_validation ? fixed(t.best_validation->valid_chrf, 2) : "-") << " | "
       << (t.best_validation ? fixed(t.best_validation->valid_ce, 3) : "-") << " | "
       << (i == grid.chosen ? "**chosen**: translates the test set" : "") << " |\n";
  }
  md << "\n";
  return md.str();
}

json training_json(const recipe::Recipe& r, const train::TrainOutcome& trained, const std::string& curves) {
  const auto& best = trained.best_validation;
  return {{"steps", trained.steps},
          {"epochs", trained.epochs_done},
          {"target_tokens", trained.target_tokens},
          {"seconds", trained.train_seconds},
          {"target_tokens_per_s", trained.train_seconds > 0 ? trained.target_tokens / trained.train_seconds : 0.0},
          {"best_step", trained.best_step},
          {"valid_metric", r.train.valid_metric},
          {"best_valid_bleu", best ? best->valid_bleu : 0.0},
          {"best_valid_chrf", best ? best->valid_chrf : 0.0},
          {"best_valid_ce", best ? best->valid_ce : 0.0},
          {"curves", curves}};
}

json tests_json(const recipe::Recipe& r, const std::vector<TestResult>& tests) {
  json tj = json::array();
  for (const auto& t : tests) {
    json one = {{"name", t.name},
                {"model", t.model},
                {"translated_with", t.model_note},
                {"source", t.source},
                {"reference", t.reference},
                {"output", t.output},
                {"lines", t.lines},
                {"beam_size", r.decode.search.beam_size},
                {"reused", t.reused},
                {"translate_seconds", t.seconds},
                {"scores", t.scores}};
    if (!t.nbest_output.empty()) one["nbest_output"] = t.nbest_output;
    tj.push_back(one);
  }
  return tj;
}

json ensemble_json(const std::vector<Member>& members) {
  json ens = json::array();
  for (const auto& m : members)
    ens.push_back({{"seed", m.seed},
                   {"model", m.model},
                   {"best_step", m.trained.best_step},
                   {"best_valid_bleu", m.trained.best_validation ? m.trained.best_validation->valid_bleu : 0.0},
                   {"seconds", m.trained.train_seconds}});
  return ens;
}

json report_json(const recipe::Recipe& r, const std::string& recipe_fp, const std::vector<Member>& members,
                 const std::vector<TestResult>& tests, const std::string& curves, const json& stages,
                 const GridTable& grid) {
  const train::TrainOutcome& trained = members[0].trained;
  std::error_code ec;
  const auto model_bytes = fs::file_size(trained.best_model, ec);
  json j;
  j["recipe"] = r.path;
  j["recipe_fingerprint"] = recipe_fp;
  j["workdir"] = r.workdir;
  j["data"] = {{"train_pairs_read", trained.data.read},
               {"train_pairs_kept", trained.data.kept},
               {"filter", trained.data.summary(trained.filter)},
               {"valid_pairs", trained.valid_pairs},
               {"src_vocab", trained.src_vocab},
               {"tgt_vocab", trained.tgt_vocab}};
  j["model"] = {{"file", trained.best_model},       {"file_bytes", model_bytes},
                {"parameters", trained.parameters}, {"cell", r.model.cell == nn::CellType::kGru ? "gru" : "lstm"},
                {"enc_layers", r.model.enc_layers}, {"dec_layers", r.model.dec_layers}};
  j["training"] = training_json(r, trained, curves);
  j["tests"] = tests_json(r, tests);
  if (members.size() > 1) j["ensemble"] = ensemble_json(members);
  if (grid.runs) j["grid"] = grid_json(grid);
  j["this_run"] = stages;
  return j;
}

std::string report_markdown(const recipe::Recipe& r, const std::string& recipe_fp, const std::vector<Member>& members,
                            const std::vector<TestResult>& tests, const std::string& curves, const json& stages,
                            const GridTable& grid) {
  const train::TrainOutcome& trained = members[0].trained;
  std::error_code ec;
  const auto model_bytes = fs::file_size(trained.best_model, ec);
  const auto& best = trained.best_validation;
  const std::string dropped = trained.data.dropped(trained.filter);
  std::ostringstream md;
  md << "# Gloss run report: " << fs::path(r.path).filename().string() << "\n\n";
  md << "- Recipe: `" << r.path << "` (fingerprint " << recipe_fp << "), run folder `" << r.workdir << "`\n";
  md << "- Data: " << trained.data.kept << " of " << trained.data.read << " training pairs kept ("
     << (dropped.empty() ? "none dropped" : dropped) << "); " << trained.valid_pairs
     << " validation pairs; subword vocabularies " << trained.src_vocab << " (" << r.data.src_lang << ") and "
     << trained.tgt_vocab << " (" << r.data.tgt_lang << ")\n";
  md << "- Model: " << (r.model.cell == nn::CellType::kGru ? "gru" : "lstm") << ", " << trained.parameters
     << " parameters, `" << trained.best_model << "` (" << fixed(static_cast<double>(model_bytes) / 1e6, 1) << " MB)\n";
  md << "- Training: " << trained.steps << " updates, " << fixed(trained.epochs_done, 2) << " epochs, "
     << duration_text(trained.train_seconds) << " of updates, "
     << fixed(trained.train_seconds > 0 ? trained.target_tokens / trained.train_seconds : 0.0, 0)
     << " target tokens/s; best validation " << r.train.valid_metric << " at step " << trained.best_step;
  if (best)
    md << " (BLEU " << fixed(best->valid_bleu, 2) << ", chrF " << fixed(best->valid_chrf, 2) << ", CE "
       << fixed(best->valid_ce, 3) << ", greedy)";
  md << "\n";
  if (members.size() > 1) {
    md << "- Ensemble of " << members.size() << " seeds (the training line above is seed " << members[0].seed << "'s):";
    for (const auto& m : members)
      md << " seed " << m.seed << " best validation " << r.train.valid_metric << " at step " << m.trained.best_step
         << (m.trained.best_validation ? " (BLEU " + fixed(m.trained.best_validation->valid_bleu, 2) + ")" : "") << ";";
    md << "\n";
  }
  md << "- Curves: `" << curves << "`\n\n";
  if (grid.runs) md << grid_markdown(r, grid);
  if (!tests.empty()) {
    md << "| test set | lines | beam | metric | score | signature |\n|---|---|---|---|---|---|\n";
    for (const auto& t : tests)
      for (const auto& s : t.scores)
        md << "| " << t.name << " | " << t.lines << " | " << r.decode.search.beam_size << " | " << s.value("name", "")
           << " | " << fixed(s.value("score", 0.0), 1) << " | `" << table_escape(s.value("signature", "")) << "` |\n";
    md << "\n";
    for (const auto& t : tests)
      md << "- " << t.name << " translated with " << t.model_note << ": `" << t.model << "`\n";
    md << "\n";
    for (const auto& t : tests)
      if (!t.nbest_output.empty())
        md << "- " << r.decode.search.n_best << "-best lists of " << t.name << ": `" << t.nbest_output << "`\n\n";
  }
  md << "This run: train " << fixed(stages["train"]["seconds"].get<double>(), 1) << " s";
  for (const auto& t : tests) md << ", translate " << fixed(t.seconds, 1) << " s" << (t.reused ? " (reused)" : "");
  md << ", total " << fixed(stages["total_seconds"].get<double>(), 1) << " s.\n";
  return md.str();
}

}  // namespace

RunResult run_recipe(const recipe::LoadedRecipe& loaded, std::ostream& log) {
  const recipe::Recipe& r = loaded.recipe;
  const fs::path dir(r.workdir);
  std::vector<GridRun> grid_runs = r.run.grid.empty() ? std::vector<GridRun>{} : load_grid(loaded);
  fs::create_directories(dir);
  const auto run_start = Clock::now();
  std::string recipe_text;
  for (const auto& key : loaded.keys)
    if (key != "run.workdir") recipe_text += key + "=" + loaded.text.at(key) + "\n";
  const std::string recipe_fp = fingerprint(recipe_text);
  json stages = json::object();

  auto t0 = Clock::now();
  GridTable grid;
  if (!grid_runs.empty()) {
    train_grid(grid_runs, dir, log);
    grid = {&grid_runs, best_of_grid(grid_runs)};
  }
  const std::vector<Member> members = grid.runs ? grid_runs[grid.chosen].members : train_members(loaded, log);
  if (dist::job().rank() != 0) return {};  // under mpirun the other ranks only train
  // What the report and the test translation follow: the recipe, or the grid's chosen one (with
  // the run's file and folder).
  const recipe::LoadedRecipe& chosen = grid.runs ? grid_runs[grid.chosen].loaded : loaded;
  recipe::Recipe shown = chosen.recipe;
  shown.path = r.path;
  shown.workdir = r.workdir;
  if (grid.runs)
    log << "run: grid: chose " << grid_runs[grid.chosen].name << " (best validation " << r.train.valid_metric << " of "
        << grid_runs.size() << " combinations)" << std::endl;
  stages["train"] = {{"seconds", since(t0)}, {"steps_this_run", !members[0].trained.stop_reason.empty()}};
  const std::string curves = (dir / "curves.svg").string();
  const fs::path first_dir(members[0].setup.workdir);
  atomic_write_file(curves, report::training_curves_svg(train::read_metrics((first_dir / "metrics.jsonl").string()),
                                                        "Gloss: " + fs::path(r.path).filename().string() + " (" +
                                                            r.data.src_lang + "->" + r.data.tgt_lang + ")"));
  std::vector<TestResult> tests;
  if (!r.data.test_src.empty()) {
    TestResult t = translate_test(chosen, members, dir, log);
    t.scores = evaluate_test(shown, t, log);
    tests.push_back(std::move(t));
  } else {
    log << "run: the recipe names no test set (data.test_src); nothing to translate" << std::endl;
  }
  stages["total_seconds"] = since(run_start);
  RunResult result{report_markdown(shown, recipe_fp, members, tests, curves, stages, grid),
                   report_json(shown, recipe_fp, members, tests, curves, stages, grid).dump(2) + "\n"};
  atomic_write_file((dir / "report.md").string(), result.markdown);
  atomic_write_file((dir / "report.json").string(), result.json);
  return result;
}

}  // namespace gloss::run
