#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gloss/text/subword.h"
#include "gloss/util/error.h"
#include "gloss/util/unicode.h"

namespace fs = std::filesystem;
using namespace gloss::text;

namespace {

const std::string kData = std::string(GLOSS_SOURCE_DIR) + "/data/multi30k/";

struct Workdir {
  fs::path dir = fs::temp_directory_path() / ("gloss_spm_test_" + std::to_string(::getpid()));
  Workdir() { fs::remove_all(dir); }
  ~Workdir() { fs::remove_all(dir); }
};

DataOptions val_data() {
  DataOptions d;
  d.train_src = kData + "val.en.gz";
  d.train_tgt = kData + "val.de.gz";
  d.src_lang = "en";
  d.tgt_lang = "de";
  return d;
}

SubwordOptions small() {
  SubwordOptions o;
  o.vocab_size = 600;
  return o;
}

}  // namespace

TEST_CASE("spm: models are trained once and reused while corpus and options stay the same", "[text][spm]") {
  Workdir w;
  std::ostringstream log1, log2, log3;
  const auto first = prepare_subword_models(val_data(), small(), w.dir.string(), log1);
  CHECK(log1.str().find("training source (en)") != std::string::npos);
  CHECK(fs::exists(first.src));
  CHECK(fs::exists(first.tgt));
  const auto mtime = fs::last_write_time(first.src);

  const auto second = prepare_subword_models(val_data(), small(), w.dir.string(), log2);
  CHECK(second.src == first.src);
  CHECK(second.tgt == first.tgt);
  CHECK(log2.str().find("reusing source (en) model") != std::string::npos);
  CHECK(log2.str().find("training") == std::string::npos);
  CHECK(fs::last_write_time(first.src) == mtime);

  SubwordOptions changed = small();
  changed.vocab_size = 700;
  const auto third = prepare_subword_models(val_data(), changed, w.dir.string(), log3);
  CHECK(third.src != first.src);
  CHECK(log3.str().find("training source (en)") != std::string::npos);
}

TEST_CASE("spm: a changed corpus changes the fingerprint", "[text][spm]") {
  Workdir w;
  fs::create_directories(w.dir);
  const auto a = (w.dir / "a.txt").string();
  std::ofstream(a) << "one line\n";
  const auto before = subword_fingerprint({a}, small(), "en");
  std::ofstream(a) << "one line, edited\n";
  CHECK(subword_fingerprint({a}, small(), "en") != before);
  CHECK(subword_fingerprint({a}, small(), "de") != subword_fingerprint({a}, small(), "en"));
}

TEST_CASE("spm: a vocabulary too large for the corpus trains the largest possible, with a warning", "[text][spm]") {
  Workdir w;
  fs::create_directories(w.dir);
  const auto s = (w.dir / "s.txt").string(), t = (w.dir / "t.txt").string();
  std::ofstream(s) << "a small house\nthe cat sits\na dog runs fast\n";
  std::ofstream(t) << "ein kleines haus\ndie katze sitzt\nein hund läuft schnell\n";
  DataOptions d;
  d.train_src = s;
  d.train_tgt = t;
  for (const std::string type : {"unigram", "bpe"}) {
    SubwordOptions o;
    o.model_type = type;
    o.vocab_size = 8000;
    std::ostringstream log;
    const auto paths = prepare_subword_models(d, o, (w.dir / type).string(), log);
    INFO(log.str());
    CHECK(log.str().find("warning: subword.vocab_size 8000 is too large") != std::string::npos);
    const auto m = SubwordModel::load(paths.tgt);
    CHECK(m.vocab_size() < 8000);
    CHECK(m.vocab_size() > 256);  // byte pieces included
  }
}

TEST_CASE("spm: training files without text are an error naming them, not SentencePiece's check", "[text][spm]") {
  Workdir w;
  fs::create_directories(w.dir);
  const auto s = (w.dir / "s.txt").string(), t = (w.dir / "t.txt").string();
  std::ofstream(s) << "\n\n";
  std::ofstream(t) << "";
  DataOptions d;
  d.train_src = s;
  d.train_tgt = t;
  std::ostringstream log;
  CHECK_THROWS_WITH(prepare_subword_models(d, small(), (w.dir / "spm").string(), log),
                    s + ": no text to train the source (src) subword model on; give training files with one "
                        "sentence per line");
}

TEST_CASE("spm: unseen characters round-trip through byte fallback, never <unk>", "[text][spm]") {
  Workdir w;
  std::ostringstream log;
  const auto paths = prepare_subword_models(val_data(), small(), w.dir.string(), log);
  const auto m = SubwordModel::load(paths.tgt);
  const std::string text = "Ein Hund läuft über die Straße: 5€, 😀 und 東京.";
  const auto ids = m.encode(text);
  CHECK(std::find(ids.begin(), ids.end(), kUnkId) == ids.end());
  CHECK(m.decode(ids) == text);
  CHECK(m.decode_pieces(m.encode_pieces(text)) == text);
  // Detokenised output is exactly SentencePiece's decoding: no stray spaces.
  CHECK(m.decode(m.encode("Zwei Männer stehen am Herd.")) == "Zwei Männer stehen am Herd.");
}

TEST_CASE("spm: loading something that is not a model is a clear error", "[text][spm]") {
  Workdir w;
  fs::create_directories(w.dir);
  const auto bogus = (w.dir / "bogus.model").string();
  std::ofstream(bogus) << "not a model";
  CHECK_THROWS_WITH(SubwordModel::load(bogus), Catch::Contains("bogus.model: not a SentencePiece model"));
  CHECK_THROWS_AS(SubwordModel::load((w.dir / "missing.model").string()), gloss::InputError);
}

TEST_CASE("spm: a joint model is one model trained on both languages", "[text][spm]") {
  Workdir w;
  SubwordOptions o = small();
  o.joint = true;
  std::ostringstream log;
  const auto paths = prepare_subword_models(val_data(), o, w.dir.string(), log);
  CHECK(paths.src == paths.tgt);
  CHECK(log.str().find("joint en+de") != std::string::npos);
  CHECK(log.str().find("from 2028 lines") != std::string::npos);  // 1,014 lines of each side
  const auto m = SubwordModel::load(paths.src);
  CHECK(m.decode(m.encode("A dog. Ein Hund.")) == "A dog. Ein Hund.");
}

TEST_CASE("spm: training sees a sample of subword.input_sentence_size lines of a larger corpus", "[text][spm]") {
  // 2,000 lines, each one CJK character of its own: a model trained on a sample of 150 lines
  // (SentencePiece's least is 101) knows at most 150 of them as pieces (the rest fall back to
  // bytes).
  Workdir w;
  fs::create_directories(w.dir);
  const auto s = (w.dir / "s.txt").string(), t = (w.dir / "t.txt").string();
  {
    std::ofstream src(s), tgt(t);
    for (char32_t c = 0x4E00; c < 0x4E00 + 2000; ++c) {
      std::string utf8;
      gloss::unicode::append_utf8(c, utf8);  // 3 bytes, the first 0xE4 or 0xE5
      src << utf8 << "\n";
      tgt << "x\n";
    }
  }
  DataOptions d;
  d.train_src = s;
  d.train_tgt = t;
  SubwordOptions o;
  o.vocab_size = 500;
  o.input_sentence_size = 150;
  std::ostringstream log;
  const auto paths = prepare_subword_models(d, o, w.dir.string(), log);
  INFO(log.str());
  CHECK(log.str().find("from 2000 lines (a sample of 150, subword.input_sentence_size)") != std::string::npos);
  const auto m = SubwordModel::load(paths.src);
  int cjk = 0;
  for (int id = 0; id < m.vocab_size(); ++id)
    cjk += m.piece(id).find("\xE4") != std::string::npos || m.piece(id).find("\xE5") != std::string::npos;
  CHECK(cjk > 50);
  CHECK(cjk <= 150);
}
