#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "gloss/recipe/recipe.h"
#include "gloss/util/error.h"

namespace fs = std::filesystem;
using gloss::recipe::load_recipe;

namespace {

// A scratch folder with a tiny corpus and recipe files written by each test.
struct Scratch {
  fs::path dir;
  Scratch() {
    dir = fs::temp_directory_path() / ("gloss_recipe_test_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "corpus");
    write("corpus/s.txt", "a b\nc d\n");
    write("corpus/t.txt", "x y\nz w\n");
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    fs::create_directories((dir / name).parent_path());
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

const char* kData = "[data]\ntrain_src = corpus/s.txt\ntrain_tgt = corpus/t.txt\n";

}  // namespace

TEST_CASE("Recipe: values come from the command line, then the file, then its include, then defaults", "[recipe]") {
  Scratch s;
  s.write("base.ini", std::string(kData) + "[train]\nlr = 0.001\nepochs = 7\nbatch_size = 16\n");
  const auto path = s.write("over.ini", "include = base.ini\n# override\n[train]\nlr = 0.002  # faster\nepochs = 8\n");
  const auto r = load_recipe(path, {"--train.epochs", "9"});
  CHECK(r.recipe.train.lr == 0.002);
  CHECK(r.recipe.train.epochs == 9);
  CHECK(r.recipe.train.batch_size == 16);
  CHECK(r.recipe.train.pool_batches == 50);
  CHECK(r.origins.at("train.epochs").describe() == "command line");
  CHECK(r.origins.at("train.lr").describe() == path + ":4");
  CHECK(r.origins.at("train.batch_size").line == 7);
  CHECK(r.origins.count("train.pool_batches") == 0);
  // Paths are relative to the file that sets them.
  CHECK(fs::equivalent(r.recipe.data.train_src, s.dir / "corpus/s.txt"));
  const std::string shown = gloss::recipe::show(r);
  CHECK(shown.find("epochs = 9") != std::string::npos);
  CHECK(shown.find("# command line") != std::string::npos);
  CHECK(shown.find("pool_batches = 50") != std::string::npos);
}

TEST_CASE("Recipe errors name the file, the line and the key", "[recipe]") {
  Scratch s;
  auto fails = [&](const std::string& text, const std::string& want, std::vector<std::string> cli = {}) {
    const auto path = s.write("bad.ini", text);
    INFO(text);
    CHECK_THROWS_WITH(load_recipe(path, cli), Catch::Contains(want));
  };
  fails(std::string(kData) + "[train]\nlrate = 0.1\n", "bad.ini:5: unknown key 'lrate' in [train]; did you mean 'lr'?");
  const std::string file = s.write("a_file", "not a folder\n");  // a run folder under a file cannot be made
  fails(kData, "--run.workdir: '" + file + "' is a file, not a folder; choose another run.workdir",
        {"--run.workdir", file + "/sub"});
  fails(std::string(kData) + "[model]\nhidden = 512\n",  // no key near: the keys that contain it
        "bad.ini:5: unknown key 'hidden' in [model]; did you mean 'enc_hidden' or 'dec_hidden'?");
  fails(std::string(kData) + "[model]\nwidth_of_everything = 512\n",  // nothing near: where the keys are
        "bad.ini:5: unknown key 'width_of_everything' in [model]; `gloss train --help` lists the keys of [model]");
  fails(std::string(kData) + "[train]\nrnn_cache_mb = 16\n",  // a retired key says so
        "bad.ini:5: unknown key 'rnn_cache_mb' in [train]; it was removed on 2026-12-06");
  fails(std::string(kData) + "[train]\nrnn_cache_mb = 16\n", "so delete the line");
  fails(kData, "unknown option --train.rnn_cache_mb; it was removed", {"--train.rnn_cache_mb", "16"});
  fails(kData, "so leave the option out", {"--train.rnn_cache_mb", "16"});
  fails(std::string(kData) + "[train]\nlr = fast\n", "bad.ini:5: [train] lr: 'fast' is not a valid float value");
  fails(std::string(kData) + "[train]\nlr = -1\n", "bad.ini:5: train.lr must be > 0 (got -1)");
  fails(std::string(kData) + "[subword]\ninput_sentence_size = 50\n",
        "bad.ini:5: subword.input_sentence_size must be 0 (all lines) or above 100, SentencePiece's least (got 50)");
  fails(std::string(kData) + "[subword]\ninput_sentence_size = -1\n",
        "bad.ini:5: subword.input_sentence_size must be at least 0 (got -1)");
  fails(std::string(kData) + "[model]\ncell = rnn\n", "bad.ini:5: model.cell 'rnn' is not one of: gru, lstm");
  fails(std::string(kData) + "[trian]\n", "bad.ini:4: unknown section [trian]; did you mean 'train'?");
  fails("[data]\ntrain_src = corpus/s.txt\n", "data.train_tgt is required");
  fails("[data]\ntrain_src = corpus/nope.txt\ntrain_tgt = corpus/t.txt\n", "bad.ini:2: data.train_src: no such file");
  fails(std::string(kData) + "[train]\nlr = 1\nlr = 2\n", "bad.ini:6: [train] lr is set twice (first at line 5)");
  fails("lr = 1\n", "bad.ini:1: 'lr' is outside any section");
  fails("include = missing.ini\n", "bad.ini:1: include: no such file");
  fails(kData, "unknown option --train.lrr; did you mean 'train.lr'?", {"--train.lrr", "1"});
  fails(kData, "--decode.n_best must not exceed decode.beam_size", {"--decode.n_best", "6"});
  fails(std::string(kData) + "[train]\nlr_schedule = cosine\n",
        "bad.ini:5: train.lr_schedule cosine needs the updates to decay over: set train.decay_steps");
  fails(std::string(kData) + "[train]\nlr_schedule = cosine\ndecay_steps = 100\nlr_min = 0.5\n",
        "bad.ini:7: train.lr_min must not exceed train.lr (0.5 > 0.001)");
  s.write("loop.ini", "include = bad.ini\n");
  fails("include = loop.ini\n", "includes itself");
}

TEST_CASE("Recipe: command-line options alone make a recipe", "[recipe]") {
  Scratch s;
  const auto src = (s.dir / "corpus/s.txt").string(), tgt = (s.dir / "corpus/t.txt").string();
  const auto r = load_recipe("", {"--data.train_src", src, "--data.train_tgt", tgt, "--subword.joint", "true"});
  CHECK(r.recipe.subword.joint);
  CHECK(r.recipe.workdir == "runs/gloss");
}

TEST_CASE("Recipe: every bundled recipe is valid", "[recipe]") {
  const fs::path dir = fs::path(GLOSS_TEST_DATA_DIR).parent_path().parent_path() / "recipes";
  int n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".ini") continue;
    INFO(entry.path());
    CHECK_NOTHROW(load_recipe(entry.path().string(), {}));
    ++n;
  }
  CHECK(n >= 3);
}

TEST_CASE("Recipe: run.grid's combinations, last key fastest, and its errors", "[recipe]") {
  using gloss::recipe::grid_point_name;
  using gloss::recipe::grid_points;
  CHECK(grid_points("").empty());
  const auto points = grid_points("train.lr=1e-3,5e-4  data.train_src=a/b.txt,c");
  REQUIRE(points.size() == 4);
  CHECK(grid_point_name(points[0]) == "train.lr=1e-3,data.train_src=a_b.txt");
  CHECK(grid_point_name(points[1]) == "train.lr=1e-3,data.train_src=c");
  CHECK(grid_point_name(points[2]) == "train.lr=5e-4,data.train_src=a_b.txt");
  CHECK(points[3] == gloss::recipe::GridPoint{{"train.lr", "5e-4"}, {"data.train_src", "c"}});
  const std::string a(300, 'a'), b = std::string(299, 'a') + "b";
  const auto long_a = grid_point_name({{"data.train_src", a}}), long_b = grid_point_name({{"data.train_src", b}});
  CHECK(long_a.size() == gloss::recipe::kMaxGridNameBytes);
  CHECK(long_a.rfind("data.train_src=aaa", 0) == 0);
  CHECK(long_a != long_b);  // cut alike, told apart by the fingerprint
  CHECK_THROWS_WITH(grid_points("train.lr"), Catch::Contains("'train.lr' is not KEY=VALUE,VALUE,..."));
  CHECK_THROWS_WITH(grid_points("train.lr=1,"), Catch::Contains("has an empty value"));
  CHECK_THROWS_WITH(grid_points("train.lr=1 train.lr=2"), Catch::Contains("'train.lr' appears twice"));
  CHECK_THROWS_WITH(grid_points("a.b=1,2,3,4,5,6,7,8,9,10 c.d=1,2,3,4,5,6,7,8,9,10,11"),
                    Catch::Contains("more than 100 combinations"));
  CHECK(grid_points("a.b=1,2,3,4,5,6,7,8,9,10 c.d=1,2,3,4,5,6,7,8,9,10").size() == 100);

  Scratch s;
  auto fails = [&](const std::string& grid, const std::string& want) {
    const auto path = s.write("grid.ini", std::string(kData) + "[run]\ngrid = " + grid + "\n");
    INFO(grid);
    CHECK_THROWS_WITH(load_recipe(path, {}), Catch::Contains(want));
  };
  fails("model.cel=gru,lstm", "grid.ini:5: run.grid 'model.cel' is not a recipe key; did you mean 'model.cell'?");
  fails("decode.beam_size=1,2", "only [data] (not test files), [subword], [model] and [train] keys vary in a grid");
  fails("data.test_src=a,b", "only [data] (not test files)");
  fails("train.lr=1,2", "run.grid needs validation data (data.valid_src, data.valid_tgt) to choose by");
}
