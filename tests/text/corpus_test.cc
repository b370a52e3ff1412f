#include <catch2/catch.hpp>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>

#include "gloss/text/batcher.h"
#include "gloss/text/corpus.h"
#include "gloss/util/error.h"
#include "gloss/util/line_reader.h"

namespace fs = std::filesystem;
using namespace gloss::text;

namespace {

const std::string kData = std::string(GLOSS_SOURCE_DIR) + "/data/multi30k/";

struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("gloss_corpus_test_" + std::to_string(::getpid()));
  SubwordModel src, tgt;
  Fixture() {
    fs::remove_all(dir);
    DataOptions d;
    d.train_src = kData + "val.en.gz";
    d.train_tgt = kData + "val.de.gz";
    SubwordOptions o;
    o.vocab_size = 600;
    std::ostringstream log;
    const auto paths = prepare_subword_models(d, o, (dir / "spm").string(), log);
    src = SubwordModel::load(paths.src);
    tgt = SubwordModel::load(paths.tgt);
  }
  ~Fixture() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  }
};

}  // namespace

TEST_CASE("LineReader: BOM, Windows line ends, gzip, missing final newline", "[text][io]") {
  Fixture f;
  const auto path = f.write("crlf.txt", "\xEF\xBB\xBFone\r\ntwo\r\n\r\nlast");
  gloss::LineReader r(path);
  std::string line;
  std::vector<std::string> lines;
  while (r.next(line)) lines.push_back(line);
  CHECK(lines == std::vector<std::string>{"one", "two", "", "last"});
  CHECK(gloss::count_lines(kData + "val.de.gz") == 1014);
  const auto bad = f.write("bad.txt", "fine\nnot \xC3( fine\n");
  gloss::LineReader b(bad);
  b.next(line);
  CHECK_THROWS_WITH(b.next(line), Catch::Contains("bad.txt:2: invalid UTF-8"));
}

TEST_CASE("EncodedCorpus: pairs across many blocks come back as added, a copy too", "[text][corpus]") {
  // Pairs of 0 .. 999 + 0 .. 499 ids fill several blocks (4,096 ids, then doubling); one pair
  // larger than kBlockIds gets a block of its own, and its ids above 65,535 widen the storage
  // of every pair from 2 to 3 bytes an id after 3,000 pairs were stored in 2. On disk the same
  // pairs go to unnamed files (the high bytes' file starts sparse at the widening pair) and
  // come back the same after seal(), read by gather (any order) and by slice (in chunks).
  const bool disk = GENERATE(false, true);
  const fs::path dir = fs::temp_directory_path() / ("gloss_corpus_disk_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EncodedCorpus corpus = disk ? EncodedCorpus::on_disk(dir.string()) : EncodedCorpus();
  CHECK(corpus.is_on_disk() == disk);
  auto ids = [](std::size_t n, int first) {
    std::vector<int> v(n);
    std::iota(v.begin(), v.end(), first);
    return v;
  };
  const std::size_t kPairs = 3000;
  for (std::size_t i = 0; i < kPairs; ++i)
    corpus.add(ids(i % 1000, static_cast<int>(i)), ids(i % 500, static_cast<int>(7 * i)), i + 1);
  corpus.add(ids(EncodedCorpus::kBlockIds + 3, 5), ids(2, 9), kPairs + 1);
  corpus.add(ids(1, 1), ids(1, 2), kPairs + 2);  // after the large pair
  CHECK_THROWS_AS(corpus.add({1, -1}, {2}, 1), std::out_of_range);
  CHECK_THROWS_AS(corpus.add({1}, {1 << 24}, 1), std::out_of_range);
  corpus.seal();
  CHECK(fs::is_empty(dir));  // on disk: the files have no names
  const EncodedCorpus copy = corpus;
  std::vector<std::uint32_t> backwards(kPairs + 2);
  for (std::size_t k = 0; k < backwards.size(); ++k) backwards[k] = static_cast<std::uint32_t>(kPairs + 1 - k);
  auto slices = [](const EncodedCorpus& c, std::size_t n) {  // chunks of n pairs, joined in memory
    EncodedCorpus all;
    for (std::size_t first = 0; first < c.size() + n; first += n) {  // the last one empty, clipped
      const EncodedCorpus chunk = c.slice(first, n);
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        const auto s = chunk.src(i), t = chunk.tgt(i);
        all.add({s.begin(), s.end()}, {t.begin(), t.end()}, chunk.line(i));
      }
    }
    return all;
  };
  const EncodedCorpus reversed = corpus.gather(backwards), from_copy = copy.gather(backwards),
                      sliced = slices(corpus, 777);
  for (const EncodedCorpus* c : std::vector<const EncodedCorpus*>{&reversed, &from_copy, &sliced}) {
    const bool rev = c != &sliced;
    auto at = [&](std::size_t i) { return rev ? kPairs + 1 - i : i; };
    REQUIRE(c->size() == kPairs + 2);
    REQUIRE(!c->is_on_disk());
    bool all_equal = true;
    for (std::size_t i = 0; i < kPairs; ++i) {
      const auto src = c->src(at(i)), tgt = c->tgt(at(i));
      all_equal = all_equal && corpus.src_len(i) == i % 1000 && corpus.tgt_len(i) == i % 500 &&
                  c->line(at(i)) == i + 1 &&
                  std::vector<int>(src.begin(), src.end()) == ids(i % 1000, static_cast<int>(i)) &&
                  std::vector<int>(tgt.begin(), tgt.end()) == ids(i % 500, static_cast<int>(7 * i));
    }
    CHECK(all_equal);
    const auto big = c->src(at(kPairs));
    CHECK(std::vector<int>(big.begin(), big.end()) == ids(EncodedCorpus::kBlockIds + 3, 5));
    CHECK(c->tgt(at(kPairs))[1] == 10);
    CHECK(c->src(at(kPairs + 1))[0] == 1);
    CHECK(c->tgt(at(kPairs + 1))[0] == 2);
  }
  CHECK(corpus.slice(kPairs + 5, 3).size() == 0);
  if (disk) {
    CHECK_THROWS_AS(corpus.add({1}, {2}, 1), std::logic_error);  // sealed
    CHECK_THROWS_AS(corpus.src(0), std::logic_error);            // read through gather or slice
    // 2 bytes + 1 high byte an id, 24 bytes a pair
    const std::uint64_t all_ids =
        3000 / 1000 * (999 * 1000 / 2) + 3000 / 500 * (499 * 500 / 2) + EncodedCorpus::kBlockIds + 3 + 2 + 2;
    CHECK(corpus.disk_bytes() == all_ids * 3 + (kPairs + 2) * 24);
  }
  CHECK(corpus.size() == kPairs + 2);  // nothing added by a rejected pair
  fs::remove_all(dir);
}

TEST_CASE("EncodedCorpus on disk: a folder it cannot write is a one-line error naming it", "[text][corpus]") {
  CHECK_THROWS_WITH(EncodedCorpus::on_disk("/nonexistent/gloss"),
                    Catch::StartsWith("/nonexistent/gloss: cannot create the encoded training corpus there") &&
                        Catch::Contains("set data.tempdir"));
}

TEST_CASE("encode_parallel: on disk, the same pairs as in memory", "[text][corpus]") {
  Fixture f;
  fs::create_directories(f.dir);
  FilterOptions o{30, 30, 3.0, true};
  const auto a = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, o, 2);
  const auto b = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, o, 2, nullptr,
                                 EncodedCorpus::on_disk(f.dir.string()));
  REQUIRE(b.is_on_disk());
  REQUIRE(b.size() == a.size());
  const EncodedCorpus read = b.slice(0, b.size());
  bool same = true;
  for (std::size_t i = 0; i < a.size(); ++i)
    same = same && a.line(i) == read.line(i) && a.src_len(i) == b.src_len(i) && a.tgt_len(i) == b.tgt_len(i) &&
           std::equal(a.src(i).begin(), a.src(i).end(), read.src(i).begin(), read.src(i).end()) &&
           std::equal(a.tgt(i).begin(), a.tgt(i).end(), read.tgt(i).begin(), read.tgt(i).end());
  CHECK(same);
  // Batches read from the files (make_batch gathers their pairs): the same as from memory.
  BatchOptions bo;
  bo.batch_size = 8;
  Batcher ba(a, bo), bb(b, bo);
  bool same_batches = true;
  for (int k = 0; k < 300; ++k) {
    const Batch x = ba.next(), y = bb.next();
    same_batches = same_batches && x.examples == y.examples && x.src == y.src && x.tgt_out == y.tgt_out;
  }
  CHECK(same_batches);
}

TEST_CASE("encode_parallel: files of different length are an error naming both files and the line", "[text][corpus]") {
  Fixture f;
  const auto s = f.write("s.txt", "a\nb\nc\n");
  const auto t = f.write("t.txt", "x\ny\n");
  CHECK_THROWS_WITH(encode_parallel(s, t, f.src, f.tgt, {}, 1),
                    Catch::Contains("s.txt:3: no matching line in") && Catch::Contains("t.txt (it ends at line 2)"));
  CHECK_THROWS_WITH(encode_parallel(t, s, f.src, f.tgt, {}, 1), Catch::Contains("s.txt:3: no matching line in"));
}

TEST_CASE("encode_parallel: filtering reports every dropped pair and why", "[text][corpus]") {
  Fixture f;
  const auto s = f.write("s.txt", "a dog\n\nthe small black dog runs over the green grass\na cat\nok\n");
  const auto t = f.write("t.txt", "ein hund\nleer\nhund\neine katze\n\n");
  FilterOptions o{30, 30, 3.0, true};
  FilterReport report;
  const auto corpus = encode_parallel(s, t, f.src, f.tgt, o, 2, &report);
  CHECK(report.read == 5);
  CHECK(report.empty == 2);
  CHECK(report.bad_ratio == 1);
  CHECK(report.kept == 2);
  CHECK(corpus.size() == 2);
  CHECK(corpus.line(1) == 4);
  CHECK(report.summary(o) == "5 pairs read, 2 kept; dropped: 2 with an empty side, 1 length ratio > 3");
}

TEST_CASE("encode_parallel: gzip and plain input give the same ids, whatever the thread count", "[text][corpus]") {
  Fixture f;
  const auto a = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, {}, 1);
  const auto b = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, {}, 2);
  REQUIRE(a.size() == 1014);
  REQUIRE(b.size() == a.size());
  for (std::size_t i = 0; i < a.size(); i += 97) {
    CHECK(std::equal(a.src(i).begin(), a.src(i).end(), b.src(i).begin(), b.src(i).end()));
    CHECK(std::equal(a.tgt(i).begin(), a.tgt(i).end(), b.tgt(i).begin(), b.tgt(i).end()));
  }
}

TEST_CASE("Batcher: every pair once per epoch, seeded, bucketed, and resumable exactly", "[text][batcher]") {
  Fixture f;
  const auto corpus = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, {}, 2);
  BatchOptions o;
  o.batch_size = 32;
  o.pool_batches = 8;
  o.seed = 7;
  Batcher batcher(corpus, o);
  const auto e1 = batcher.epoch_batches(1);
  std::multiset<std::uint32_t> seen;
  for (const auto& b : e1) {
    CHECK(b.size() <= 32);
    seen.insert(b.begin(), b.end());
  }
  CHECK(seen.size() == corpus.size());
  CHECK(std::set<std::uint32_t>(seen.begin(), seen.end()).size() == corpus.size());
  CHECK(batcher.epoch_batches(1) == e1);  // repeatable
  CHECK(batcher.epoch_batches(2) != e1);  // reshuffled per epoch
  BatchOptions flat = o;
  flat.pool_batches = 1;
  CHECK(batcher.padding_fraction(1) < Batcher(corpus, flat).padding_fraction(1));

  // Resume: a batcher restored to a saved position yields exactly the batches that follow.
  for (int i = 0; i < 40; ++i) batcher.next();  // crosses into epoch 2 (32 batches per epoch)
  const auto saved = batcher.position();
  CHECK(saved.epoch == 2);
  std::vector<std::vector<std::uint32_t>> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(batcher.next().examples);
  Batcher resumed(corpus, o);
  resumed.restore(saved);
  for (int i = 0; i < 10; ++i) CHECK(resumed.next().examples == expected[static_cast<std::size_t>(i)]);
}

TEST_CASE("Batcher: token batches stay under the padded token budget", "[text][batcher]") {
  Fixture f;
  const auto corpus = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, {}, 2);
  BatchOptions o;
  o.by_tokens = true;
  o.batch_tokens = 500;
  Batcher batcher(corpus, o);
  std::size_t total = 0;
  for (const auto& ids : batcher.epoch_batches(1)) {
    const Batch b = make_batch(corpus, ids);
    CHECK(static_cast<std::size_t>(b.tgt_len) * ids.size() <= 500);
    total += ids.size();
  }
  CHECK(total == corpus.size());
}

TEST_CASE("split_batch: long batches in parts under the position limit, every sentence once", "[text][batcher]") {
  Fixture f;
  const auto corpus = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, {}, 2);
  BatchOptions o;
  o.batch_size = 64;
  Batcher batcher(corpus, o);
  int split = 0;
  for (const auto& ids : batcher.epoch_batches(1)) {
    const Batch b = make_batch(corpus, ids);
    const auto parts = split_batch(corpus, b, 400);
    if (static_cast<std::int64_t>(b.tgt_len) * b.size <= 400) {
      REQUIRE(parts.size() == 1);
      CHECK(parts[0].examples == b.examples);
      continue;
    }
    ++split;
    std::vector<std::uint32_t> seen;
    std::int64_t tokens = 0;
    const int k = static_cast<int>((static_cast<std::int64_t>(b.tgt_len) * b.size + 399) / 400);
    const int per = (b.size + k - 1) / k;  // equal parts (the last may be smaller)
    CHECK(static_cast<int>(parts.size()) == (b.size + per - 1) / per);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const auto& p = parts[i];
      CHECK((p.size == per || i + 1 == parts.size()));
      CHECK(p.tgt_len <= b.tgt_len);
      seen.insert(seen.end(), p.examples.begin(), p.examples.end());
      tokens += p.target_tokens;
    }
    std::sort(seen.begin(), seen.end());
    std::vector<std::uint32_t> want = b.examples;
    std::sort(want.begin(), want.end());
    CHECK(seen == want);
    CHECK(tokens == b.target_tokens);
  }
  CHECK(split > 0);
  CHECK(split_batch(corpus, make_batch(corpus, {0, 1, 2}), 0).size() == 1);
}

TEST_CASE("split_batch for workers: each group dealt round-robin, every sentence once", "[text][batcher]") {
  Fixture f;
  const auto corpus = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, {}, 2);
  BatchOptions o;
  o.batch_size = 64;
  Batcher batcher(corpus, o);
  for (const std::int64_t limit : {std::int64_t{0}, std::int64_t{400}}) {
    for (const auto& ids : batcher.epoch_batches(1)) {
      const Batch b = make_batch(corpus, ids);
      const auto parts = split_batch(corpus, b, limit, 3);
      const auto groups = split_batch(corpus, b, limit, 1);  // what one worker would run
      REQUIRE(parts.size() == 3 * groups.size());
      for (std::size_t g = 0; g < groups.size(); ++g) {
        std::vector<std::uint32_t> dealt;
        for (int w = 0; w < 3; ++w) {
          const auto& p = parts[g * 3 + static_cast<std::size_t>(w)];
          CHECK(p.size == static_cast<int>((groups[g].examples.size() + 2 - static_cast<std::size_t>(w)) / 3));
          if (p.size > 0) {  // cut from the batch: exactly the batch make_batch builds of its sentences
            const Batch m = make_batch(corpus, p.examples);
            CHECK((p.src == m.src && p.tgt_in == m.tgt_in && p.tgt_out == m.tgt_out && p.src_lengths == m.src_lengths &&
                   p.src_len == m.src_len && p.tgt_len == m.tgt_len && p.target_tokens == m.target_tokens));
          }
          dealt.insert(dealt.end(), p.examples.begin(), p.examples.end());
        }
        std::vector<std::uint32_t> want = groups[g].examples;
        std::sort(dealt.begin(), dealt.end());
        std::sort(want.begin(), want.end());
        CHECK(dealt == want);
      }
    }
  }
  // Fewer sentences than workers: the extra parts are empty.
  const auto tiny = split_batch(corpus, make_batch(corpus, {0}), 0, 2);
  REQUIRE(tiny.size() == 2);
  CHECK(tiny[0].size == 1);
  CHECK(tiny[1].size == 0);
}

TEST_CASE("make_batch: time-major, padded, BOS/EOS in place", "[text][batcher]") {
  Fixture f;
  const auto s = f.write("s2.txt", "a dog runs\na cat\n");
  const auto t = f.write("t2.txt", "ein hund\neine katze schläft\n");
  const auto corpus = encode_parallel(s, t, f.src, f.tgt, {}, 1);
  const Batch b = make_batch(corpus, {0, 1});
  CHECK(b.size == 2);
  CHECK(b.src_lengths[0] == static_cast<int>(corpus.src_len(0)));
  CHECK(b.tgt_len == static_cast<int>(std::max(corpus.tgt_len(0), corpus.tgt_len(1))) + 1);
  CHECK(b.tgt_in[0] == kBosId);
  CHECK(b.tgt_in[1] == kBosId);
  CHECK(b.tgt_out[corpus.tgt_len(0) * 2 + 0] == kEosId);
  for (int k = 0; k < 2; ++k) {
    const auto len = corpus.src_len(static_cast<std::size_t>(k));
    for (std::size_t t = 0; t < static_cast<std::size_t>(b.src_len); ++t) {
      if (t < len)
        CHECK(b.src[t * 2 + static_cast<std::size_t>(k)] == corpus.src(static_cast<std::size_t>(k))[t]);
      else
        CHECK(b.src[t * 2 + static_cast<std::size_t>(k)] == kPadId);
    }
  }
  CHECK(b.target_tokens == static_cast<std::int64_t>(corpus.tgt_len(0) + corpus.tgt_len(1) + 2));
}
