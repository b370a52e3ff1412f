#pragma once
// UTF-8 helpers with Python 3 str semantics, so that text metrics match sacreBLEU exactly:
// str.split() / str.strip() whitespace, str.lower(), and Unicode general categories.
// Character properties come from ICU, not hand-typed tables.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gloss::unicode {

// Byte offset of the first invalid UTF-8 sequence (as Python's strict decoder sees it:
// overlong forms, surrogates and code points above U+10FFFF are invalid), or npos.
std::size_t find_invalid_utf8(std::string_view text);

// Decodes valid UTF-8 (checked beforehand) into code points.
void decode(std::string_view text, std::u32string& out);
std::u32string decode(std::string_view text);
void append_utf8(char32_t cp, std::string& out);
std::string encode(std::u32string_view text);

// Python's str.isspace() for one code point: bidi class WS, B or S, or category Zs.
bool is_space(char32_t cp);

// Python's str.split() with no argument: runs of whitespace separate, no empty fields.
std::vector<std::string_view> split(std::string_view text);
void split(std::string_view text, std::vector<std::string_view>& out);
// Python's str.rstrip() / str.strip() with no argument.
std::string_view rstrip(std::string_view text);
std::string_view strip(std::string_view text);
// ' '.join(text.split())
std::string collapse_spaces(std::string_view text);

// Python's str.lower(): full case mapping (e.g. U+0130 -> "i\u0307"), final sigma.
std::string lower(std::string_view text);

// Unicode general category classes as used by the `regex` module's \p{N}, \p{P}, \p{S}.
bool is_number(char32_t cp);       // Nd, Nl, No
bool is_punctuation(char32_t cp);  // Pc, Pd, Ps, Pe, Pi, Pf, Po
bool is_symbol(char32_t cp);       // Sm, Sc, Sk, So

}  // namespace gloss::unicode
