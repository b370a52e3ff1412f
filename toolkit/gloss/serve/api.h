#pragma once
// The JSON of `gloss serve`'s POST /translate, without any HTTP: parsing and checking a
// request body, and writing the answer.
//
//   request   {"text": ["sentence", ...] | "sentence", "beam_size": 5, "n_best": 1, "alignment": false}
//   answer    {"translations": [{"text": "...", "score": -0.41,
//                                "n_best": [{"text": "...", "score": -0.41}, ...],          (n_best > 1)
//                                "alignment": {"source": [pieces], "target": [pieces],      (alignment)
//                                              "weights": [[w per source piece] per target piece]}}]}
//   error     {"error": "one line"} with an HTTP status (ApiError::status)
// Scores are the search's normalised log-probabilities (as gloss translate --n-best writes).
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "gloss/decode/translator.h"

namespace gloss::serve {

// What a request may ask; defaults and maxima are `gloss serve`'s options.
struct ApiLimits {
  std::size_t max_sentences = 64;         // per request
  std::size_t max_sentence_bytes = 2000;  // per sentence (UTF-8 bytes)
  int max_beam = 16;
  int default_beam = 5;
};

// A request the server cannot take: its HTTP status (400 malformed, 413 too large) and message.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct TranslateRequest {
  std::vector<std::string> lines;
  int beam_size = 5;
  int n_best = 1;
  bool alignment = false;
};

// Parses and checks a body (any bytes). Throws ApiError: 400 for invalid JSON or UTF-8, a
// missing or mistyped field, a value out of range, a line break inside a sentence; 413 for
// too many or too long sentences.
TranslateRequest parse_request(const std::string& body, const ApiLimits& limits);

// The answer to `request` from its translations (one per line, in order).
std::string answer_json(const TranslateRequest& request, const std::vector<decode::Translation>& translations,
                        const decode::Translator& translator);

// {"error": message}.
std::string error_json(const std::string& message);

}  // namespace gloss::serve
