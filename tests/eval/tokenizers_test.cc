// Expected strings were produced by sacreBLEU's own regular expressions run in Python 3
// (re / regex modules), independently of this implementation.
#include <catch2/catch.hpp>

#include "gloss/eval/tokenizers.h"
#include "gloss/util/error.h"

using namespace gloss::eval;

TEST_CASE("13a tokenizer equals mteval-v13a as sacreBLEU runs it", "[eval][tokenizer]") {
  CHECK(tokenize_13a("Hello, world! It's 3.5 km-long (really).") == "Hello , world ! It's 3.5 km-long ( really ) .");
  CHECK(tokenize_13a("a..b,,c 1,000.50 x-1 1-2") == "a . . b , , c 1,000.50 x-1 1 - 2");
  CHECK(tokenize_13a("&amp;quot; &lt;tag&gt; AT&T") == "& quot ; < tag > AT & T");
  CHECK(tokenize_13a("Preis: 5\u20ac \u2014 \u201eZitat\u201c \u2026 ok?") ==
        "Preis : 5\u20ac \u2014 \u201eZitat\u201c \u2026 ok ?");
  CHECK(tokenize_13a("tab\tsep\u00a0nbsp\u2003em") == "tab sep nbsp em");
  CHECK(tokenize_13a("x<skipped>y line-\nnext") == "xy linenext");
  CHECK(tokenize_13a("") == "");
}

TEST_CASE("intl tokenizer splits Unicode punctuation and symbols", "[eval][tokenizer]") {
  CHECK(tokenize_intl("Hello, world! It's 3.5 km-long (really).") ==
        "Hello , world ! It ' s 3.5 km - long ( really ) .");
  CHECK(tokenize_intl("a..b,,c 1,000.50 x-1 1-2") == "a . . b , , c 1,000.50 x - 1 1-2");
  CHECK(tokenize_intl("Preis: 5\u20ac \u2014 \u201eZitat\u201c \u2026 ok?") ==
        "Preis : 5 \u20ac \u2014 \u201e Zitat \u201c \u2026 ok ?");
  CHECK(tokenize_intl("emoji \U0001F600\U0001F44D CJK \u6f22\u5b57\u3002\u30c6\u30b9\u30c8") ==
        "emoji \U0001F600 \U0001F44D CJK \u6f22\u5b57 \u3002 \u30c6\u30b9\u30c8");
}

TEST_CASE("char tokenizer makes every character a token", "[eval][tokenizer]") {
  CHECK(tokenize_char("ab \u00e9") == "a b   \u00e9");
  CHECK(tokenize(BleuTokenizer::kNone, " a  b ") == " a  b ");
}

TEST_CASE("tokenizer names: unknown ones list the valid choices", "[eval][tokenizer]") {
  CHECK(parse_bleu_tokenizer("intl") == BleuTokenizer::kIntl);
  CHECK_THROWS_WITH(parse_bleu_tokenizer("zh"), Catch::Contains("13a, none, intl, char"));
}

TEST_CASE("Tercom tokenizer: lowercasing, normalisation, punctuation removal", "[eval][tokenizer][ter]") {
  const std::string s = "John's car, 3.5 km-long (2-3) &quot;ok&quot;.";
  TercomOptions normalized;
  normalized.normalized = true;
  CHECK(tokenize_tercom(normalized, s) == "john 's car , 3.5 km-long ( 2 - 3 ) \" ok \" .");
  TercomOptions no_punct;
  no_punct.no_punct = true;
  CHECK(tokenize_tercom(no_punct, s) == "john's car 35 km-long 2-3 &quotok&quot");
  TercomOptions both;
  both.normalized = both.no_punct = both.case_sensitive = true;
  CHECK(tokenize_tercom(both, s) == "John 's car 35 km-long 2 - 3 ok");
  CHECK(tokenize_tercom(normalized, "Hello World! It's fine: yes; no?") == "hello world ! it 's fine : yes ; no ?");
  CHECK(tokenize_tercom({}, "") == "");
}
