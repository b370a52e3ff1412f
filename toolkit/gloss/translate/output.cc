#include "gloss/translate/output.h"

#include <algorithm>
#include <cstdio>

#include "gloss/report/plot.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"

namespace gloss::translate {

void validate(const OutputOptions& o) {
  if (!o.alignment.empty() && o.alignment != "hard" && o.alignment != "soft")
    throw ConfigError("--alignment must be hard or soft (got '" + o.alignment + "')");
  if (o.attention_line < 1) throw ConfigError("--attention-line counts from 1");
  if (!o.attention_path.empty() && !o.attention_path.ends_with(".svg") && !o.attention_path.ends_with(".png"))
    throw ConfigError("--attention " + o.attention_path +
                      ": give a file name ending in .svg or .png (the heat map's format)");
}

decode::TranslateOptions with_outputs(decode::TranslateOptions options, const OutputOptions& outputs) {
  options.search.word_scores = outputs.word_scores;
  options.search.attention = !outputs.alignment.empty() || !outputs.attention_path.empty();
  return options;
}

namespace {

// What --alignment and --word-scores append to a hypothesis' text.
std::string extras(const decode::Hypothesis& h, std::size_t src_len, const text::SubwordModel& tgt,
                   const OutputOptions& o) {
  std::string x;
  const std::size_t T = h.ids.size();
  if (!o.alignment.empty()) {
    x += " |||";
    for (std::size_t t = 0; t < T && (t + 1) * src_len <= h.attention.size(); ++t) {
      const float* row = h.attention.data() + t * src_len;
      if (o.alignment == "hard") {
        char buf[48];
        std::snprintf(buf, sizeof buf, " %td-%zu", std::max_element(row, row + src_len) - row, t);
        x += buf;
      } else {
        x += " ";
        for (std::size_t j = 0; j < src_len; ++j) {
          if (j) x += ',';
          x += fixed(static_cast<double>(row[j]), 4);
        }
      }
    }
  }
  if (o.word_scores) {
    // Words are the output's whitespace-separated words: a piece starting with U+2581 starts one.
    x += " ||| WordScores=";
    double word = 0;
    for (std::size_t t = 0; t < T && t < h.word_log_probs.size(); ++t) {
      if (t > 0 && tgt.piece(h.ids[t]).rfind("\xE2\x96\x81", 0) == 0) {  // a new word starts
        x.append(" ").append(fixed(word, 4));
        word = 0;
      }
      word += h.word_log_probs[t];
    }
    if (T > 0) x.append(" ").append(fixed(word, 4));
  }
  return x;
}

}  // namespace

std::string best_line(const decode::Translation& t, const decode::Translator& translator, const OutputOptions& o) {
  const auto& h = t.hypotheses.front();
  return translator.text(h) + extras(h, t.source.size(), translator.target_subwords(), o);
}

std::vector<std::string> nbest_lines(const decode::Translation& t, std::size_t id, const decode::Translator& translator,
                                     const OutputOptions& o) {
  std::vector<std::string> out;
  for (const auto& h : t.hypotheses)
    out.push_back(std::to_string(id) + " ||| " + translator.text(h) + " ||| " + fixed(h.score, 4) +
                  extras(h, t.source.size(), translator.target_subwords(), o));
  return out;
}

void write_attention_map(const decode::Translation& t, const decode::Translator& translator, const OutputOptions& o) {
  const auto& h = t.hypotheses.front();
  std::vector<std::string> src_pieces, tgt_pieces;
  for (int id : t.source) src_pieces.push_back(translator.source_subwords().piece(id));
  for (auto id : h.ids) tgt_pieces.push_back(translator.target_subwords().piece(id));
  const std::size_t rows = t.source.empty() ? 0 : h.attention.size() / t.source.size();
  if (rows > tgt_pieces.size()) tgt_pieces.push_back("</s>");
  const std::string& path = o.attention_path;
  atomic_write_file(path, path.ends_with(".png") ? report::attention_png(src_pieces, tgt_pieces, h.attention)
                                                 : report::attention_svg(src_pieces, tgt_pieces, h.attention));
}

}  // namespace gloss::translate
