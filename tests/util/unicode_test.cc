// Expected values come from Python 3 itself (str.split, str.strip, str.lower).
#include <catch2/catch.hpp>

#include "gloss/util/error.h"
#include "gloss/util/text_file.h"
#include "gloss/util/unicode.h"

using namespace gloss;

TEST_CASE("unicode::split splits on every whitespace Python's str.split() knows", "[util][unicode]") {
  // "a\u00a0b\u2003c\x1cd\u200be\u3000f\u0085g".split()  (U+200B is not whitespace)
  const std::string text =
      "a\u00a0b\u2003c\x1c"
      "d\u200b"
      "e\u3000f\u0085g";
  const auto words = unicode::split(text);
  REQUIRE(words.size() == 6);
  CHECK(words[0] == "a");
  CHECK(words[3] ==
        "d\u200b"
        "e");
  CHECK(words[5] == "g");
  CHECK(unicode::split("  \t ").empty());
}

TEST_CASE("unicode::strip removes Unicode whitespace at both ends", "[util][unicode]") {
  CHECK(unicode::strip(" \u2028x\u00a0 ") == "x");
  CHECK(unicode::rstrip("x y \r\n") == "x y");
  CHECK(unicode::rstrip("\u00e9\u00a0") == "\u00e9");
}

TEST_CASE("unicode::lower is Python's full case mapping", "[util][unicode]") {
  // "İSTANBUL ΣΑΣ Straße ǅ".lower() == 'i̇stanbul σας straße ǆ'  (final sigma, dotted I)
  CHECK(unicode::lower("\u0130STANBUL \u03a3\u0391\u03a3 Stra\u00dfe \u01c5") ==
        "i\u0307stanbul \u03c3\u03b1\u03c2 stra\u00dfe \u01c6");
  CHECK(unicode::lower("ABC def") == "abc def");
}

TEST_CASE("unicode::find_invalid_utf8 rejects what Python's strict decoder rejects", "[util][unicode]") {
  CHECK(unicode::find_invalid_utf8("ok \xc3\xa9") == std::string_view::npos);
  CHECK(unicode::find_invalid_utf8("ab\xff") == 2);
  CHECK(unicode::find_invalid_utf8("\xc0\xaf") == 0);          // overlong
  CHECK(unicode::find_invalid_utf8("\xed\xa0\x80") == 0);      // surrogate
  CHECK(unicode::find_invalid_utf8("\xf4\x90\x80\x80") == 0);  // above U+10FFFF
  CHECK(unicode::find_invalid_utf8("x\xe2\x82") == 1);         // truncated
}

TEST_CASE("split_lines: newline modes, final line without break, invalid UTF-8 names the line", "[util][io]") {
  CHECK(split_lines("a\nb\r\nc", "f", LineBreaks::kNewline) == std::vector<std::string>{"a", "b\r", "c"});
  CHECK(split_lines("a\rb\r\nc\n", "f", LineBreaks::kUniversal) == std::vector<std::string>{"a", "b", "c"});
  CHECK(split_lines("", "f", LineBreaks::kNewline).empty());
  CHECK(split_lines("\n\n", "f", LineBreaks::kNewline) == std::vector<std::string>{"", ""});
  try {
    split_lines("good\nbad \xff here\n", "hyp.txt", LineBreaks::kNewline);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(e.line() == 2);
    CHECK(std::string(e.what()).rfind("hyp.txt:2: invalid UTF-8", 0) == 0);
  }
}

TEST_CASE("read_lines: a missing file is an InputError naming it", "[util][io]") {
  CHECK_THROWS_AS(read_lines("/nonexistent/file.txt"), InputError);
  CHECK_THROWS_WITH(read_lines("/nonexistent/file.txt"), Catch::Contains("/nonexistent/file.txt"));
}
