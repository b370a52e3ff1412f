// Every case of sacreBLEU 2.6.0's test vectors (tests/data/bleu, copied from ../shared/bleu):
// the printed text must be identical byte for byte, and every figure equal to full precision.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "gloss/cli/eval_cli.h"
#include "gloss/eval/bleu.h"
#include "gloss/eval/chrf.h"
#include "gloss/eval/ter.h"
#include "gloss/util/text_file.h"
#include "gloss/util/unicode.h"

using nlohmann::json;

namespace {

const std::string kDir = std::string(GLOSS_TEST_DATA_DIR) + "/bleu/";

std::vector<json> load_cases() {
  std::ifstream in(kDir + "cases.jsonl");
  REQUIRE(in);
  std::vector<json> cases;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) cases.push_back(json::parse(line));
  return cases;
}

gloss::cli::EvalCommand command_for(const json& c) {
  std::vector<std::string> args;
  for (const auto& r : c["refs"]) args.push_back(kDir + r.get<std::string>());
  args.push_back("-i");
  args.push_back(kDir + c["hyp"].get<std::string>());
  for (const auto& a : c["args"]) args.push_back(a.get<std::string>());
  return gloss::cli::parse_eval_args(args);
}

std::vector<std::string> rstripped_lines(const std::string& path) {
  auto lines = gloss::read_lines(path);
  for (auto& l : lines) l.resize(gloss::unicode::rstrip(l).size());
  return lines;
}

void check_close(double got, double want, const std::string& what) {
  INFO(what << ": got " << got << ", want " << want);
  CHECK(std::abs(got - want) <= 1e-9);
}

}  // namespace

TEST_CASE("gloss eval prints exactly what sacreBLEU 2.6.0 prints, for all test vectors", "[eval][sacrebleu]") {
  const auto cases = load_cases();
  REQUIRE(cases.size() == 84);
  int matched = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"];
    INFO("case " << name);
    const auto cmd = command_for(c);
    std::istringstream no_stdin;
    std::ostringstream out;
    gloss::eval::run_eval(cmd.options, no_stdin, out);
    const std::string expected = c["expected_text"];
    CHECK(out.str() == expected);
    if (out.str() == expected) ++matched;
  }
  WARN("byte-identical output: " << matched << " of " << cases.size() << " cases");
  CHECK(matched == static_cast<int>(cases.size()));
}

TEST_CASE("gloss eval figures equal sacreBLEU's at full precision, for all test vectors", "[eval][sacrebleu]") {
  for (const auto& c : load_cases()) {
    const std::string name = c["name"];
    INFO("case " << name);
    const auto cmd = command_for(c);
    const auto& o = cmd.options;
    std::vector<std::vector<std::string>> refs;
    for (const auto& r : c["refs"]) refs.push_back(rstripped_lines(kDir + r.get<std::string>()));
    const auto hyps = rstripped_lines(kDir + c["hyp"].get<std::string>());
    const json& corpus = c["corpus"];
    const std::string metric = o.metrics.at(0);

    std::unique_ptr<gloss::eval::Metric> m;
    gloss::eval::BleuOptions bleu_options = o.bleu;
    if (o.sentence_level) bleu_options.effective_order = true;
    if (metric == "bleu") m = std::make_unique<gloss::eval::Bleu>(bleu_options);
    if (metric == "chrf") m = std::make_unique<gloss::eval::Chrf>(o.chrf);
    if (metric == "ter") m = std::make_unique<gloss::eval::Ter>(o.ter);
    REQUIRE(m);
    m->set_references(refs);
    gloss::eval::Stats total(m->num_stats(), 0.0);
    std::vector<double> sentence_scores;
    for (std::size_t i = 0; i < hyps.size(); ++i) {
      const auto s = m->segment_stats(hyps[i], i);
      for (std::size_t k = 0; k < total.size(); ++k) total[k] += s[k];
      sentence_scores.push_back(m->compute(s).score);
    }
    check_close(m->compute(total).score, corpus["score"].get<double>(), "score");
    if (metric == "bleu") {
      const auto& b = static_cast<gloss::eval::Bleu&>(*m);
      const auto s = b.score(b.unflatten(total));
      for (std::size_t n = 0; n < s.precisions.size(); ++n) {
        check_close(s.counts[n], corpus["counts"][n].get<double>(), "counts");
        check_close(s.totals[n], corpus["totals"][n].get<double>(), "totals");
        check_close(s.precisions[n], corpus["precisions"][n].get<double>(), "precisions");
      }
      check_close(s.bp, corpus["bp"].get<double>(), "bp");
      CHECK(s.sys_len == corpus["sys_len"].get<std::int64_t>());
      CHECK(s.ref_len == corpus["ref_len"].get<std::int64_t>());
    }
    if (metric == "ter") {
      check_close(total[0], corpus["num_edits"].get<double>(), "num_edits");
      check_close(total[1], corpus["ref_length"].get<double>(), "ref_length");
    }
    if (c.contains("sentences")) {
      const auto& want = c["sentences"];
      REQUIRE(want.size() == sentence_scores.size());
      for (std::size_t i = 0; i < want.size(); ++i) check_close(sentence_scores[i], want[i].get<double>(), "sentence");
    }
  }
}
