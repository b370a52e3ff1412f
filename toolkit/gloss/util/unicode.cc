#include "gloss/util/unicode.h"

#include <unicode/ucasemap.h>
#include <unicode/uchar.h>
#include <unicode/utypes.h>

#include <memory>
#include <stdexcept>

namespace gloss::unicode {
namespace {

// Decodes one code point at text[i] (valid UTF-8 assumed), advancing i.
inline char32_t next_cp(std::string_view text, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int extra = b0 >= 0xF0 ? 3 : b0 >= 0xE0 ? 2 : 1;
  char32_t cp = b0 & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
  i += extra + 1;
  return cp;
}

inline bool ascii_space(unsigned char c) {
  // Python: \t \n \v \f \r, 0x1C-0x1F (bidi B/S) and space.
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
}

}  // namespace

std::size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    auto cont = [&](std::size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) {
      if (!cont(1)) return i;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      if (!cont(1) || !cont(2)) return i;
      const unsigned char c1 = s[i + 1];
      if (c == 0xE0 && c1 < 0xA0) return i;   // overlong
      if (c == 0xED && c1 >= 0xA0) return i;  // surrogate
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (!cont(1) || !cont(2) || !cont(3)) return i;
      const unsigned char c1 = s[i + 1];
      if (c == 0xF0 && c1 < 0x90) return i;   // overlong
      if (c == 0xF4 && c1 >= 0x90) return i;  // above U+10FFFF
      i += 4;
    } else {
      return i;
    }
  }
  return std::string_view::npos;
}

void decode(std::string_view text, std::u32string& out) {
  out.clear();
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) out.push_back(next_cp(text, i));
}

std::u32string decode(std::string_view text) {
  std::u32string out;
  decode(text, out);
  return out;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(cp, out);
  return out;
}

bool is_space(char32_t cp) {
  if (cp < 0x80) return ascii_space(static_cast<unsigned char>(cp));
  const auto dir = u_charDirection(static_cast<UChar32>(cp));
  return u_charType(static_cast<UChar32>(cp)) == U_SPACE_SEPARATOR || dir == U_WHITE_SPACE_NEUTRAL ||
         dir == U_BLOCK_SEPARATOR || dir == U_SEGMENT_SEPARATOR;
}

void split(std::string_view text, std::vector<std::string_view>& out) {
  out.clear();
  const std::size_t n = text.size();
  std::size_t i = 0, start = 0;
  bool in_word = false;
  while (i < n) {
    const std::size_t at = i;
    const auto c = static_cast<unsigned char>(text[i]);
    bool space;
    if (c < 0x80) {
      space = ascii_space(c);
      ++i;
    } else {
      space = is_space(next_cp(text, i));
    }
    if (space) {
      if (in_word) out.push_back(text.substr(start, at - start));
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      start = at;
    }
  }
  if (in_word) out.push_back(text.substr(start));
}

std::vector<std::string_view> split(std::string_view text) {
  std::vector<std::string_view> out;
  split(text, out);
  return out;
}

std::string_view rstrip(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    const auto c = static_cast<unsigned char>(text[end - 1]);
    if (c < 0x80) {
      if (!ascii_space(c)) break;
      --end;
      continue;
    }
    std::size_t start = end - 1;  // back up to the lead byte
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    std::size_t i = start;
    if (!is_space(next_cp(text, i))) break;
    end = start;
  }
  return text.substr(0, end);
}

std::string_view strip(std::string_view text) {
  text = rstrip(text);
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t next = i;
    if (!is_space(next_cp(text, next))) break;
    i = next;
  }
  return text.substr(i);
}

std::string collapse_spaces(std::string_view text) {
  std::vector<std::string_view> words;
  split(text, words);
  std::string out;
  out.reserve(text.size());
  for (std::size_t k = 0; k < words.size(); ++k) {
    if (k) out.push_back(' ');
    out.append(words[k]);
  }
  return out;
}

std::string lower(std::string_view text) {
  bool ascii = true;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  std::string out(text);
  if (ascii) {
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
  }
  // Root locale: the language-independent full mappings Python uses.
  thread_local std::unique_ptr<UCaseMap, void (*)(UCaseMap*)> map(nullptr, ucasemap_close);
  UErrorCode status = U_ZERO_ERROR;
  if (!map) {
    map.reset(ucasemap_open("", 0, &status));
    if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU ucasemap_open: ") + u_errorName(status));
  }
  out.resize(text.size() * 3 + 16);
  status = U_ZERO_ERROR;
  const int32_t len = ucasemap_utf8ToLower(map.get(), out.data(), static_cast<int32_t>(out.size()), text.data(),
                                           static_cast<int32_t>(text.size()), &status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU utf8ToLower: ") + u_errorName(status));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_N_MASK) != 0;
}

bool is_punctuation(char32_t cp) { return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_P_MASK) != 0; }

bool is_symbol(char32_t cp) { return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_S_MASK) != 0; }

}  // namespace gloss::unicode
