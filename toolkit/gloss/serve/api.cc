#include "gloss/serve/api.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace gloss::serve {

using nlohmann::json;

namespace {

int integer_field(const json& body, const char* key, int fallback, int lo, int hi) {
  if (!body.contains(key)) return fallback;
  const json& v = body.at(key);
  if (!v.is_number_integer()) throw ApiError(400, std::string("\"") + key + "\" must be an integer");
  const auto n = v.get<long long>();
  if (n < lo || n > hi)
    throw ApiError(400, std::string("\"") + key + "\" must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(n);
}

std::vector<std::string> sentences(const json& text, const ApiLimits& limits) {
  std::vector<std::string> lines;
  if (text.is_string()) {
    lines.push_back(text.get<std::string>());
  } else if (text.is_array()) {
    if (text.size() > limits.max_sentences)
      throw ApiError(413, std::to_string(text.size()) + " sentences in one request; the limit is " +
                              std::to_string(limits.max_sentences) + " (send several requests)");
    for (const auto& s : text) {
      if (!s.is_string()) throw ApiError(400, "\"text\" must be a string or an array of strings");
      lines.push_back(s.get<std::string>());
    }
  } else {
    throw ApiError(400, "\"text\" must be a string or an array of strings");
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].size() > limits.max_sentence_bytes)
      throw ApiError(413, "sentence " + std::to_string(i + 1) + " has " + std::to_string(lines[i].size()) +
                              " bytes; the limit is " + std::to_string(limits.max_sentence_bytes));
    if (lines[i].find_first_of("\n\r") != std::string::npos)
      throw ApiError(400, "sentence " + std::to_string(i + 1) + " contains a line break; send one sentence per entry");
  }
  return lines;
}

json hypothesis_json(const decode::Hypothesis& h, const decode::Translator& translator) {
  return {{"text", translator.text(h)}, {"score", std::isfinite(h.score) ? h.score : -1e30}};
}

json alignment_json(const decode::Translation& t, const decode::Translator& translator) {
  const decode::Hypothesis& h = t.hypotheses.front();
  json src = json::array(), tgt = json::array(), weights = json::array();
  for (int id : t.source) src.push_back(translator.source_subwords().piece(id));
  const std::size_t S = t.source.size();
  const std::size_t rows = S == 0 ? 0 : h.attention.size() / S;
  for (std::size_t r = 0; r < rows; ++r) {
    tgt.push_back(r < h.ids.size() ? translator.target_subwords().piece(h.ids[r]) : std::string("</s>"));
    json row = json::array();
    for (std::size_t j = 0; j < S; ++j) row.push_back(std::round(h.attention[r * S + j] * 1e4) / 1e4);
    weights.push_back(std::move(row));
  }
  return {{"source", std::move(src)}, {"target", std::move(tgt)}, {"weights", std::move(weights)}};
}

}  // namespace

TranslateRequest parse_request(const std::string& body, const ApiLimits& limits) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    // parse_error for malformed text, out_of_range for a number beyond a double (1e999).
    // nlohmann's message names the position and the problem; the bytes it read ("; last
    // read: ...") may be anything, so they are not echoed.
    std::string what = e.what();
    what = what.substr(0, what.find("; last read"));
    const auto at = what.find("parse error");
    throw ApiError(400, "invalid JSON (or UTF-8): " + (at == std::string::npos ? what : what.substr(at)));
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object with a \"text\" field");
  if (!j.contains("text")) throw ApiError(400, "missing \"text\": a string or an array of strings");
  for (const auto& [key, value] : j.items()) {
    if (key != "text" && key != "beam_size" && key != "n_best" && key != "alignment")
      throw ApiError(400, "unknown field \"" + key + "\" (fields: text, beam_size, n_best, alignment)");
  }
  TranslateRequest r;
  r.lines = sentences(j.at("text"), limits);
  r.beam_size = integer_field(j, "beam_size", limits.default_beam, 1, limits.max_beam);
  r.n_best = integer_field(j, "n_best", 1, 1, r.beam_size);
  if (j.contains("alignment")) {
    if (!j.at("alignment").is_boolean()) throw ApiError(400, "\"alignment\" must be true or false");
    r.alignment = j.at("alignment").get<bool>();
  }
  return r;
}

std::string answer_json(const TranslateRequest& request, const std::vector<decode::Translation>& translations,
                        const decode::Translator& translator) {
  json list = json::array();
  for (const auto& t : translations) {
    json one = hypothesis_json(t.hypotheses.front(), translator);
    if (request.n_best > 1) {
      json nbest = json::array();
      for (const auto& h : t.hypotheses) nbest.push_back(hypothesis_json(h, translator));
      one["n_best"] = std::move(nbest);
    }
    if (request.alignment) one["alignment"] = alignment_json(t, translator);
    list.push_back(std::move(one));
  }
  return json{{"translations", std::move(list)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_json(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace gloss::serve
