// Metric behaviour checked by hand arithmetic and by the additivity the trainer relies on.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>

#include "gloss/eval/bleu.h"
#include "gloss/eval/chrf.h"
#include "gloss/eval/evaluator.h"
#include "gloss/eval/format.h"
#include "gloss/eval/table.h"
#include "gloss/eval/ter.h"
#include "gloss/util/error.h"

using namespace gloss::eval;

TEST_CASE("BLEU of one sentence equals the hand computation", "[eval][bleu]") {
  // hyp: the cat sat on the mat / ref: the cat is on the mat
  // 1-grams 5/6, 2-grams 3/5, 3-grams 1/4, 4-grams 0/3 -> exp smoothing: 100 / (2 * 3)
  const Bleu bleu;
  const BleuStats s = bleu.sentence_stats("the cat sat on the mat", {"the cat is on the mat"});
  CHECK(s.correct == std::vector<std::int64_t>{5, 3, 1, 0});
  CHECK(s.total == std::vector<std::int64_t>{6, 5, 4, 3});
  CHECK(s.sys_len == 6);
  CHECK(s.ref_len == 6);
  const double p[4] = {500.0 / 6, 60.0, 25.0, 100.0 / 6};
  const double expected = std::exp((std::log(p[0]) + std::log(p[1]) + std::log(p[2]) + std::log(p[3])) / 4);
  CHECK(bleu.score(s).score == Approx(expected).epsilon(1e-12));
}

TEST_CASE("BLEU statistics add up: summing sentences equals scoring the corpus", "[eval][bleu]") {
  const Bleu bleu;
  const std::vector<std::string> hyps{"a b c d e", "the quick brown fox", "x y"};
  const std::vector<std::string> refs{"a b c d f", "the quick red fox jumps", "x y z"};
  BleuStats total;
  for (std::size_t i = 0; i < hyps.size(); ++i) total += bleu.sentence_stats(hyps[i], {refs[i]});
  Bleu corpus;
  corpus.set_references({refs});
  Stats flat(corpus.num_stats(), 0.0);
  for (std::size_t i = 0; i < hyps.size(); ++i) {
    const Stats s = corpus.segment_stats(hyps[i], i);
    for (std::size_t k = 0; k < flat.size(); ++k) flat[k] += s[k];
  }
  CHECK(Bleu::flatten(total) == flat);
  CHECK(bleu.score(total).score == corpus.compute(flat).score);
}

TEST_CASE("BLEU clips against the best reference and picks the closest reference length", "[eval][bleu]") {
  const Bleu bleu;
  const BleuStats s = bleu.sentence_stats("the the the", {"the cat", "the the dog sat"});
  CHECK(s.correct[0] == 2);  // 'the' appears at most twice in one reference
  CHECK(s.ref_len == 2);     // |3-2| == |3-4|: ties go to the shorter reference
}

TEST_CASE("BLEU rejects a smoothing value that would make a precision negative or infinite", "[eval][bleu]") {
  // sacreBLEU takes them: add-k -0.5 on "a b c d e" / "a b x d e" prints BLEU nan (a 3-gram
  // precision of -20 %), add-k 1e308 prints inf.
  for (const double bad : {-0.5, -5.0, 1e308, std::nan("")}) {
    BleuOptions o;
    o.smooth_method = SmoothMethod::kAddK;
    o.smooth_value = bad;
    CHECK_THROWS_WITH(Bleu(o), Catch::StartsWith("--smooth-value must be between 0 and 1000000"));
  }
  BleuOptions o;
  o.smooth_method = SmoothMethod::kFloor;
  o.smooth_value = 0.0;
  const Bleu floor0(o);
  CHECK(floor0.score(floor0.sentence_stats("a b c d e", {"a b x d e"})).score == 0.0);
}

TEST_CASE("chrF: identical text scores 100, disjoint text 0", "[eval][chrf]") {
  const Chrf chrf;
  CHECK(chrf.f_score(chrf.sentence_stats("Ein Hund läuft.", {"Ein Hund läuft."})) == Approx(100.0));
  CHECK(chrf.f_score(chrf.sentence_stats("xyz", {"abc"})) == 0.0);
  ChrfOptions pp;
  pp.word_order = 2;
  CHECK(Chrf(pp).name() == "chrF2++");
}

TEST_CASE("TER counts a block shift as one edit", "[eval][ter]") {
  auto words = [](std::vector<std::string>& store) {
    return std::vector<std::string_view>(store.begin(), store.end());
  };
  std::vector<std::string> h{"a", "b", "c", "d"}, r{"c", "d", "a", "b"}, empty;
  CHECK(translation_edit_count(words(h), words(r)) == 1);
  CHECK(translation_edit_count(words(h), words(empty)) == 4);
  CHECK(translation_edit_count(words(empty), words(r)) == 4);
  const Ter ter;
  CHECK(ter.compute(ter.sentence_stats("A B C D", {"c d a b"})).score == Approx(25.0));
}

TEST_CASE("Python float repr and JSON strings", "[eval][format]") {
  CHECK(python_float_repr(60.2) == "60.2");
  CHECK(python_float_repr(100.0) == "100.0");
  CHECK(python_float_repr(0.0001) == "0.0001");
  CHECK(python_float_repr(0.00001) == "1e-05");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(60.16348877164737) == "60.16348877164737");
  CHECK(json_string("a\"b\\c\n\u00e9", false) == "\"a\\\"b\\\\c\\n\u00e9\"");
  CHECK(json_string("\u00e9\U0001F600", true) == "\"\\u00e9\\ud83d\\ude00\"");
}

TEST_CASE("fancy_grid table as tabulate draws it", "[eval][format]") {
  const std::string t =
      fancy_grid({"System", "BLEU"}, {{"a.txt", "long-name.txt"}, {"58.4", "9.0"}}, {Align::kRight, Align::kCenter});
  const std::string expected =
      "╒═══════════════╤════════╕\n"
      "│        System │  BLEU  │\n"
      "╞═══════════════╪════════╡\n"
      "│         a.txt │  58.4  │\n"
      "├───────────────┼────────┤\n"
      "│ long-name.txt │  9.0   │\n"
      "╘═══════════════╧════════╛";
  CHECK(t == expected);
}

namespace {

std::string run(EvalOptions o, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out;
  run_eval(o, in, out);
  return out.str();
}

// The files write_temp wrote, removed when the test process exits.
struct TempFiles {
  std::set<std::string> paths;
  ~TempFiles() {
    for (const auto& p : paths) std::remove(p.c_str());
  }
};

std::string write_temp(const std::string& name, const std::string& content) {
  static TempFiles files;
  const std::string path = "/tmp/gloss_metrics_test_" + name;
  files.paths.insert(path);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(content.data(), 1, content.size(), f);
  std::fclose(f);
  return path;
}

}  // namespace

TEST_CASE("run_eval: stdin, JSON, score only, several metrics", "[eval][cli]") {
  EvalOptions o;
  o.references = {write_temp("ref.txt", "the cat is on the mat\nthere is a dog\n")};
  const std::string hyp = "the cat sat on the mat\r\nthere is a dog\n";
  const std::string text = run(o, hyp);
  CHECK(text.rfind("BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = ", 0) == 0);

  o.score_only = true;
  o.metrics = {"ter", "bleu"};
  const std::string both = run(o, hyp);
  CHECK(std::count(both.begin(), both.end(), '\n') == 2);

  o.score_only = false;
  o.metrics = {"chrf"};
  o.format = "json";
  const std::string json = run(o, hyp);
  CHECK(json.rfind("{\n \"name\": \"chrF2\",\n \"score\": ", 0) == 0);
  CHECK(json.find("\"nrefs\": \"1\"") != std::string::npos);
}

TEST_CASE("run_eval: bad input is a UserError naming the file, never a wrong score", "[eval][cli]") {
  EvalOptions o;
  o.references = {write_temp("ref2.txt", "a b c\nd e f\n")};
  o.inputs = {write_temp("hyp_short.txt", "a b c\n")};
  CHECK_THROWS_WITH(run(o), Catch::Contains("hyp_short.txt") && Catch::Contains("has 1 lines"));
  o.inputs = {write_temp("hyp_bad.txt", "a b c\nd \xff f\n")};
  CHECK_THROWS_WITH(run(o), Catch::Contains("hyp_bad.txt:2: invalid UTF-8"));
  o.inputs = {write_temp("hyp_ok.txt", "a b c\nd e f\n")};
  o.references = {write_temp("ref_empty_line.txt", "a b c\n\n")};
  CHECK_THROWS_WITH(run(o), Catch::Contains("ref_empty_line.txt:2: empty reference"));
  o.references = {"/nonexistent/ref.txt"};
  CHECK_THROWS_AS(run(o), gloss::InputError);
  o.references = {write_temp("ref3.txt", "a b c\nd e f\n")};
  o.metrics = {"meteor"};
  CHECK_THROWS_WITH(run(o), Catch::Contains("bleu, chrf, ter"));
}

TEST_CASE("run_eval: several systems print a table, and the paired bootstrap is seeded and repeatable", "[eval][cli]") {
  EvalOptions o;
  o.references = {write_temp("ref4.txt", "the cat is on the mat\nthere is a dog here\nbirds fly south\n")};
  o.inputs = {write_temp("sysA.txt", "the cat is on the mat\nthere is a dog\nbirds fly\n"),
              write_temp("sysB.txt", "a cat on a mat\nthe dog\nbirds south\n")};
  const std::string table = run(o);
  CHECK(table.find("│ /tmp/gloss_metrics_test_sysA.txt │") != std::string::npos);
  CHECK(table.find(" - BLEU       nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0") != std::string::npos);

  o.paired_bs = true;
  o.paired_bs_n = 200;
  const std::string first = run(o);
  CHECK(first == run(o));
  CHECK(first.find("Baseline: /tmp/gloss_metrics_test_sysA.txt") != std::string::npos);
  CHECK(first.find("BLEU (μ ± 95% CI)") != std::string::npos);
  CHECK(first.find("(p = ") != std::string::npos);
  CHECK(first.find("Paired bootstrap resampling test with 200 resampling trials") != std::string::npos);
  CHECK(first.find("nrefs:1|bs:200|seed:12345|case:mixed") != std::string::npos);
}

TEST_CASE("run_eval: the number of threads does not change a single digit", "[eval][cli]") {
  const std::string dir = std::string(GLOSS_TEST_DATA_DIR) + "/bleu/inputs/";
  EvalOptions o;
  o.references = {dir + "val.de.ref.txt", dir + "val.de.swap.txt"};
  o.inputs = {dir + "val.de.trunc.txt"};
  o.metrics = {"bleu", "chrf", "ter"};
  o.width = 15;
  o.threads = 1;
  const std::string one = run(o);
  o.threads = 2;
  CHECK(run(o) == one);
  o.threads = 7;
  CHECK(run(o) == one);
}
