#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "gloss/text/batcher.h"
#include "gloss/text/corpus.h"
#include "gloss/text/sampling.h"
#include "gloss/util/error.h"

namespace fs = std::filesystem;
using namespace gloss::text;

namespace {

const std::string kData = std::string(GLOSS_SOURCE_DIR) + "/data/multi30k/";

struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("gloss_sampling_test_" + std::to_string(::getpid()));
  SubwordModel src, tgt;
  EncodedCorpus corpus;
  FilterOptions filter{40, 40, 3.0, true};
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
    corpus = encode_parallel(d.train_src, d.train_tgt, src, tgt, filter, 2);
  }
  ~Fixture() { fs::remove_all(dir); }
  SegmentationSampler sampler(SamplingOptions o) const {
    return SegmentationSampler(kData + "val.en.gz", kData + "val.de.gz", src, tgt, corpus, o, filter, 2);
  }
};

std::vector<int> ids(const EncodedCorpus::Ids& s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("SubwordModel::encode_nbest: distinct segmentations, the best first, all decoding to the text",
          "[text][sampling]") {
  Fixture f;
  const std::string text = "Two young guys with shaggy hair look at their hands.";
  const auto nbest = f.tgt.encode_nbest(text, 8);
  REQUIRE(nbest.size() == 8);
  CHECK(nbest[0] == f.tgt.encode(text));
  for (std::size_t i = 0; i < nbest.size(); ++i) {
    CHECK(f.tgt.decode(nbest[i]) == text);
    for (std::size_t j = 0; j < i; ++j) CHECK(nbest[i] != nbest[j]);
  }
}

TEST_CASE("SegmentationSampler: an epoch's corpus is a pure function of (seed, epoch) and keeps the pairs",
          "[text][sampling]") {
  Fixture f;
  const auto s = f.sampler({8, 0.1});
  CHECK(s.mean_candidates() > 4);
  const auto a = s.sample(1, 3), b = s.sample(1, 3), c = s.sample(1, 4), d = s.sample(2, 3);
  REQUIRE(a.size() == f.corpus.size());
  std::size_t differs_from_best = 0, epoch_differs = 0, seed_differs = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a.line(i) == f.corpus.line(i));
    CHECK(ids(a.src(i)) == ids(b.src(i)));
    CHECK(ids(a.tgt(i)) == ids(b.tgt(i)));
    // Same text, other segmentation.
    CHECK(f.tgt.decode(ids(a.tgt(i))) == f.tgt.decode(ids(f.corpus.tgt(i))));
    CHECK(f.src.decode(ids(a.src(i))) == f.src.decode(ids(f.corpus.src(i))));
    CHECK(a.src_len(i) <= 40);
    CHECK(a.tgt_len(i) <= 40);
    differs_from_best += ids(a.tgt(i)) != ids(f.corpus.tgt(i));
    epoch_differs += ids(a.tgt(i)) != ids(c.tgt(i));
    seed_differs += ids(a.tgt(i)) != ids(d.tgt(i));
  }
  // alpha 0.1 over 8 candidates: most sentences take another segmentation than the best.
  CHECK(differs_from_best > a.size() / 2);
  CHECK(epoch_differs > a.size() / 2);
  CHECK(seed_differs > a.size() / 2);
}

TEST_CASE("SegmentationSampler: on disk, read and written, the same epochs as in memory", "[text][sampling]") {
  Fixture f;
  const auto on_disk = encode_parallel(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, f.filter, 2, nullptr,
                                       EncodedCorpus::on_disk(f.dir.string()));
  const SegmentationSampler from_disk(kData + "val.en.gz", kData + "val.de.gz", f.src, f.tgt, on_disk, {8, 0.1},
                                      f.filter, 2);
  const auto a = f.sampler({8, 0.1}).sample(1, 3);
  const auto b = from_disk.sample(1, 3, EncodedCorpus::on_disk(f.dir.string()));
  REQUIRE(b.is_on_disk());
  const auto read = b.slice(0, b.size());
  REQUIRE(read.size() == a.size());
  bool same = true;
  for (std::size_t i = 0; i < a.size(); ++i)
    same = same && a.line(i) == read.line(i) && ids(a.src(i)) == ids(read.src(i)) && ids(a.tgt(i)) == ids(read.tgt(i));
  CHECK(same);
}

TEST_CASE("SegmentationSampler: alpha sets how often the best segmentation is drawn", "[text][sampling]") {
  Fixture f;
  auto best_share = [&](double alpha) {
    const auto corpus = f.sampler({8, alpha}).sample(1, 1);
    std::size_t best = 0;
    for (std::size_t i = 0; i < corpus.size(); ++i) best += ids(corpus.tgt(i)) == ids(f.corpus.tgt(i));
    return static_cast<double>(best) / static_cast<double>(corpus.size());
  };
  const double flat = best_share(0.0), mild = best_share(0.5), sharp = best_share(10.0);
  CHECK(flat < 0.3);  // uniform over up to 8
  CHECK(flat < mild);
  CHECK(mild < sharp);
  CHECK(sharp > 0.9);
  // One candidate: always the best segmentation.
  const auto one = f.sampler({1, 0.1}).sample(7, 2);
  for (std::size_t i = 0; i < one.size(); ++i) CHECK(ids(one.tgt(i)) == ids(f.corpus.tgt(i)));
}

TEST_CASE("Batcher::on_epoch_start: the hook runs before each epoch's batches are made, also after restore",
          "[text][sampling]") {
  Fixture f;
  const auto s = f.sampler({8, 0.1});
  EncodedCorpus corpus = f.corpus;
  BatchOptions o;
  o.batch_size = 100;
  std::vector<int> seen;
  std::vector<Batcher::Position> positions;
  auto run = [&](Batcher& b, int batches) {
    std::vector<Batch> out;
    for (int i = 0; i < batches; ++i) {
      positions.push_back(b.position());
      out.push_back(b.next());
    }
    return out;
  };
  Batcher whole(corpus, o);
  whole.on_epoch_start([&](int e) {
    seen.push_back(e);
    corpus = s.sample(1, e);
  });
  const auto all = run(whole, 25);  // about 10 batches an epoch: into epoch 3
  CHECK(seen == std::vector<int>{1, 2, 3});
  const Batcher::Position resume_at{2, 5};
  const auto at = std::find(positions.begin(), positions.end(), resume_at) - positions.begin();
  REQUIRE(at < 25);
  Batcher resumed(corpus, o);
  resumed.on_epoch_start([&](int e) { corpus = s.sample(1, e); });
  resumed.restore(resume_at);
  const auto rest = run(resumed, static_cast<int>(25 - at));
  for (std::size_t i = 0; i < rest.size(); ++i) {
    CHECK(rest[i].examples == all[at + i].examples);
    CHECK(rest[i].src == all[at + i].src);
    CHECK(rest[i].tgt_out == all[at + i].tgt_out);
  }
}

TEST_CASE("SegmentationSampler: a training file that lost lines is an error naming it", "[text][sampling]") {
  Fixture f;
  fs::create_directories(f.dir);
  const auto shorter = (f.dir / "short.de").string();
  { std::ofstream(shorter) << "Ein Hund.\n"; }
  CHECK_THROWS_WITH(SegmentationSampler(kData + "val.en.gz", shorter, f.src, f.tgt, f.corpus, {4, 0.1}, f.filter, 1),
                    Catch::Contains("short.de:2: line missing"));
}

TEST_CASE("PackedIds: 2 bytes an id below 65,536, every id read back after the first wide one", "[text][sampling]") {
  PackedIds ids;
  const std::vector<int> narrow = {0, 1, 65535, 4, 30000};
  for (int id : narrow) ids.push_back(id);
  CHECK(ids.bytes() == 2 * narrow.size());
  const std::vector<int> wide = {65536, 7, (1 << 21) - 1, 65535, (1 << 24) - 1};
  for (int id : wide) ids.push_back(id);
  CHECK(ids.bytes() == 3 * (narrow.size() + wide.size()));
  REQUIRE(ids.size() == narrow.size() + wide.size());
  for (std::size_t i = 0; i < narrow.size(); ++i) CHECK(ids[i] == narrow[i]);
  for (std::size_t i = 0; i < wide.size(); ++i) CHECK(ids[narrow.size() + i] == wide[i]);
  PackedIds first_wide;
  first_wide.push_back(70000);
  first_wide.push_back(3);
  CHECK(first_wide[0] == 70000);
  CHECK(first_wide[1] == 3);
}
