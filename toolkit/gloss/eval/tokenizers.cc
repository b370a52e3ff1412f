#include "gloss/eval/tokenizers.h"

#include <array>
#include <vector>

#include "gloss/util/error.h"
#include "gloss/util/unicode.h"

namespace gloss::eval {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  for (;;) {
    const std::size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

inline bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

// Applies re.sub("(A)(B)", "<pre>\1<mid>\2<post>") for single-character classes A and B,
// with Python's leftmost, non-overlapping scan. Works on any sequence type.
template <class Seq, class ClassA, class ClassB>
Seq sub_pair(const Seq& s, ClassA a, ClassB b, const char* pre, const char* mid, const char* post) {
  Seq out;
  out.reserve(s.size() + s.size() / 2);
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    if (i + 1 < n && a(s[i]) && b(s[i + 1])) {
      for (const char* p = pre; *p; ++p) out.push_back(static_cast<typename Seq::value_type>(*p));
      out.push_back(s[i]);
      for (const char* p = mid; *p; ++p) out.push_back(static_cast<typename Seq::value_type>(*p));
      out.push_back(s[i + 1]);
      for (const char* p = post; *p; ++p) out.push_back(static_cast<typename Seq::value_type>(*p));
      i += 2;
    } else {
      out.push_back(s[i]);
      ++i;
    }
  }
  return out;
}

// re.sub("(A)", " \1 ") for a single-character class.
template <class Seq, class ClassA>
Seq pad_class(const Seq& s, ClassA a) {
  Seq out;
  out.reserve(s.size() + s.size() / 2);
  for (auto c : s) {
    if (a(c)) {
      out.push_back(' ');
      out.push_back(c);
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// [\{-\~\[-\` -\&\(-\+\:-\@\/] of mteval-v13a (ASCII only, so bytes suffice).
inline bool is_13a_punct(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x7B && u <= 0x7E) || (u >= 0x5B && u <= 0x60) || (u >= 0x20 && u <= 0x26) || (u >= 0x28 && u <= 0x2B) ||
         (u >= 0x3A && u <= 0x40) || u == 0x2F;
}

// The four byte-level rules are exact on UTF-8: every class is ASCII or its complement,
// and a non-ASCII character never matches an ASCII class.
std::string western_rules(std::string s, bool dash_rule) {
  s = pad_class(s, is_13a_punct);
  auto not_digit = [](char c) { return !is_digit(static_cast<unsigned char>(c)); };
  auto dot_comma = [](char c) { return c == '.' || c == ','; };
  s = sub_pair(s, not_digit, dot_comma, "", " ", " ");
  s = sub_pair(s, dot_comma, not_digit, " ", " ", "");
  if (dash_rule) {
    s = sub_pair(
        s, [](char c) { return is_digit(static_cast<unsigned char>(c)); }, [](char c) { return c == '-'; }, "", " ",
        " ");
  }
  return s;
}

}  // namespace

BleuTokenizer parse_bleu_tokenizer(std::string_view name) {
  if (name == "13a") return BleuTokenizer::k13a;
  if (name == "none") return BleuTokenizer::kNone;
  if (name == "intl") return BleuTokenizer::kIntl;
  if (name == "char") return BleuTokenizer::kChar;
  throw ConfigError("--tokenize: unknown tokenizer '" + std::string(name) + "'; choose one of: 13a, none, intl, char");
}

const char* tokenizer_name(BleuTokenizer tokenizer) {
  switch (tokenizer) {
    case BleuTokenizer::k13a:
      return "13a";
    case BleuTokenizer::kNone:
      return "none";
    case BleuTokenizer::kIntl:
      return "intl";
    case BleuTokenizer::kChar:
      return "char";
  }
  return "?";
}

std::string tokenize_13a(std::string_view line) {
  std::string s(line);
  replace_all(s, "<skipped>", "");
  replace_all(s, "-\n", "");
  replace_all(s, "\n", " ");
  if (s.find('&') != std::string::npos) {
    replace_all(s, "&quot;", "\"");
    replace_all(s, "&amp;", "&");
    replace_all(s, "&lt;", "<");
    replace_all(s, "&gt;", ">");
  }
  s = western_rules(" " + s + " ", /*dash_rule=*/true);
  return unicode::collapse_spaces(s);
}

std::string tokenize_intl(std::string_view line) {
  std::u32string s = unicode::decode(line);
  auto not_number = [](char32_t c) { return !unicode::is_number(c); };
  auto punct = [](char32_t c) { return unicode::is_punctuation(c); };
  s = sub_pair(s, not_number, punct, "", " ", " ");
  s = sub_pair(s, punct, not_number, " ", " ", "");
  s = pad_class(s, [](char32_t c) { return unicode::is_symbol(c); });
  return unicode::collapse_spaces(unicode::encode(s));
}

std::string tokenize_char(std::string_view line) {
  std::string out;
  out.reserve(line.size() * 2);
  std::size_t i = 0;
  while (i < line.size()) {
    std::size_t len = 1;
    const auto c = static_cast<unsigned char>(line[i]);
    if (c >= 0xF0)
      len = 4;
    else if (c >= 0xE0)
      len = 3;
    else if (c >= 0xC0)
      len = 2;
    if (i) out.push_back(' ');
    out.append(line.substr(i, len));
    i += len;
  }
  return out;
}

std::string tokenize(BleuTokenizer tokenizer, std::string_view line) {
  switch (tokenizer) {
    case BleuTokenizer::k13a:
      return tokenize_13a(line);
    case BleuTokenizer::kNone:
      return std::string(line);
    case BleuTokenizer::kIntl:
      return tokenize_intl(line);
    case BleuTokenizer::kChar:
      return tokenize_char(line);
  }
  return std::string(line);
}

namespace {

inline bool in(char32_t c, char32_t lo, char32_t hi) { return c >= lo && c <= hi; }

bool is_asian_punct(char32_t c) {
  return c == 0x3001 || c == 0x3002 || in(c, 0x3008, 0x3011) || in(c, 0x3014, 0x301F) || in(c, 0xFF61, 0xFF65) ||
         c == 0x30FB;
}

bool is_full_width_punct(char32_t c) {
  return c == 0xFF0E || c == 0xFF0C || c == 0xFF1F || c == 0xFF1A || c == 0xFF1B || c == 0xFF01 || c == 0xFF02 ||
         c == 0xFF08 || c == 0xFF09;
}

// re.sub(r"(^|^[X])([X]+)(?=$|^[X])", r"\1 \2 ", s): only matches when the whole string is
// made of X characters (the pattern's odd anchors make any other match impossible).
std::u32string pad_if_all(const std::u32string& s, char32_t lo, char32_t hi) {
  if (s.empty()) return s;
  for (char32_t c : s)
    if (!in(c, lo, hi)) return s;
  return U" " + s + U" ";
}

std::string normalize_general_and_western(std::string s) {
  replace_all(s, "\n-", "");
  replace_all(s, "\n", " ");
  replace_all(s, "&quot;", "\"");
  replace_all(s, "&amp;", "&");
  replace_all(s, "&lt;", "<");
  replace_all(s, "&gt;", ">");
  s = " " + s + " ";
  s = pad_class(s, is_13a_punct);
  // Possessives: "'s " -> " 's ", then "'s" at the very end.
  replace_all(s, "'s ", " 's ");
  if (s.size() >= 2 && s.compare(s.size() - 2, 2, "'s") == 0) s.replace(s.size() - 2, 2, " 's");
  auto not_digit = [](char c) { return !is_digit(static_cast<unsigned char>(c)); };
  auto dot_comma = [](char c) { return c == '.' || c == ','; };
  s = sub_pair(s, not_digit, dot_comma, "", " ", " ");
  s = sub_pair(s, dot_comma, not_digit, " ", " ", "");
  s = sub_pair(
      s, [](char c) { return is_digit(static_cast<unsigned char>(c)); }, [](char c) { return c == '-'; }, "", " ", " ");
  return s;
}

std::string normalize_asian(const std::string& text) {
  std::u32string s = unicode::decode(text);
  s = pad_class(s, [](char32_t c) { return in(c, 0x4E00, 0x9FFF) || in(c, 0x3400, 0x4DBF); });
  s = pad_class(s, [](char32_t c) { return in(c, 0x31C0, 0x31EF) || in(c, 0x2E80, 0x2EFF); });
  s = pad_class(s, [](char32_t c) { return in(c, 0x3300, 0x33FF) || in(c, 0xF900, 0xFAFF) || in(c, 0xFE30, 0xFE4F); });
  s = pad_class(s, [](char32_t c) { return in(c, 0x3200, 0x3F22); });
  s = pad_if_all(s, 0x3040, 0x309F);
  s = pad_if_all(s, 0x30A0, 0x30FF);
  s = pad_if_all(s, 0x31F0, 0x31FF);
  s = pad_class(s, is_asian_punct);
  s = pad_class(s, is_full_width_punct);
  return unicode::encode(s);
}

}  // namespace

std::string tokenize_tercom(const TercomOptions& options, std::string_view line) {
  if (line.empty()) return "";
  std::string s = options.case_sensitive ? std::string(line) : unicode::lower(line);
  if (options.normalized) {
    s = normalize_general_and_western(std::move(s));
    if (options.asian_support) s = normalize_asian(s);
  }
  if (options.no_punct) {
    std::string kept;
    kept.reserve(s.size());
    for (char c : s) {
      if (c == '.' || c == ',' || c == '?' || c == ':' || c == ';' || c == '!' || c == '"' || c == '(' || c == ')')
        continue;
      kept.push_back(c);
    }
    s.swap(kept);
    if (options.asian_support) {
      std::u32string u = unicode::decode(s), v;
      for (char32_t c : u)
        if (!is_asian_punct(c) && !is_full_width_punct(c)) v.push_back(c);
      s = unicode::encode(v);
    }
  }
  return unicode::collapse_spaces(s);
}

}  // namespace gloss::eval
