#pragma once
// sacreBLEU's tokenizers, reimplemented: the output equals sacreBLEU 2.x for every input.
#include <string>
#include <string_view>

namespace gloss::eval {

enum class BleuTokenizer { k13a, kNone, kIntl, kChar };

// "13a", "none", "intl", "char"; throws ConfigError listing the valid names.
BleuTokenizer parse_bleu_tokenizer(std::string_view name);
const char* tokenizer_name(BleuTokenizer tokenizer);
// Returns the tokenized line: tokens separated by single spaces (except `none`, which
// returns the line unchanged; callers split on Unicode whitespace either way).
std::string tokenize(BleuTokenizer tokenizer, std::string_view line);

std::string tokenize_13a(std::string_view line);   // mteval-v13a.pl
std::string tokenize_intl(std::string_view line);  // mteval-v14.pl --international-tokenization
std::string tokenize_char(std::string_view line);  // every character a token

// TER's tokenizer (Tercom's normalizer), as sacreBLEU's TercomTokenizer.
struct TercomOptions {
  bool normalized = false;     // basic normalisation and punctuation tokenisation
  bool no_punct = false;       // remove punctuation
  bool asian_support = false;  // CJK handling for normalized / no_punct
  bool case_sensitive = false;
};
std::string tokenize_tercom(const TercomOptions& options, std::string_view line);

}  // namespace gloss::eval
