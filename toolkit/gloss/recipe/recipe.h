#pragma once
// Recipes: INI files read by Boost.Program_options. Every key `[section] key = value` is also
// the command-line option `--section.key value`; the command line wins over the file, a file
// wins over the recipes it includes, and those win over the defaults.
//
//   include = base.ini        # optional, first line(s): recipes to build on
//   [train]
//   lr = 0.001
//
// Paths in a recipe are relative to the file that sets them; on the command line, to the
// current directory. Errors name the file, line and key.
#include <map>
#include <string>
#include <vector>

#include "gloss/train/options.h"

namespace gloss::recipe {

struct EvalOptions {
  std::string metrics = "bleu chrf";  // scored by `gloss run`
};

struct RunOptions {
  int average_last = 0;  // > 0: gloss run translates with the average of the last N checkpoints
  std::string seeds;     // "1 2 3": gloss run trains a model per seed and translates with the ensemble
  std::string grid;      // "model.dropout_ctx=0.3,0.5 train.lr=5e-4,1e-3": a model per combination
};

// One combination of run.grid: (key, value) for each of its keys, in the order written.
using GridPoint = std::vector<std::pair<std::string, std::string>>;
// Every combination of run.grid ("KEY=V1,V2,... KEY=...", keys of [data], [subword], [model]
// or [train]), the last key varying fastest; empty for an empty grid. ConfigError on bad syntax,
// a key given twice or more than kMaxGridPoints combinations (values are checked when each
// combination's recipe loads).
inline constexpr std::size_t kMaxGridPoints = 100;
std::vector<GridPoint> grid_points(const std::string& grid);
// "model.dropout_ctx=0.3,train.lr=5e-4": a combination as a folder name ('/' becomes '_'; a
// name longer than kMaxGridNameBytes is cut and ends in a fingerprint of the whole).
inline constexpr std::size_t kMaxGridNameBytes = 120;
std::string grid_point_name(const GridPoint& point);

// A recipe: everything a training run reads (train::TrainSetup: [data], [subword], [model],
// [train], [decode] and run.workdir, each registered into its module's own options struct)
// and what `gloss run` adds.
struct Recipe : train::TrainSetup {
  std::string path;  // the recipe file ("" for command-line options only)
  EvalOptions eval;
  RunOptions run;
};

// Where a value came from.
struct Origin {
  enum class Kind { kDefault, kFile, kCommandLine };
  Kind kind = Kind::kDefault;
  std::string file;
  int line = 0;
  std::string describe() const;  // "default", "recipes/quick.ini:12", "command line"
};

struct LoadedRecipe {
  Recipe recipe;
  std::vector<std::string> keys;            // every key, "section.key", in schema order
  std::map<std::string, std::string> text;  // effective value of each key, as text
  std::map<std::string, Origin> origins;
};

// Loads `path` (may be empty) with `overrides` (command-line tokens such as
// {"--train.lr", "0.01"}), validates everything and checks that data files exist. Sets
// recipe.workdir (default runs/<recipe name>) and recipe.recipe_text (show()).
// Throws ConfigError / InputError with file, line and key.
LoadedRecipe load_recipe(const std::string& path, const std::vector<std::string>& overrides, bool check_files = true);

// The effective recipe: every key, its value and where it came from.
std::string show(const LoadedRecipe& loaded);
// Every key with its type, default and description (for --help).
std::string keys_help();

}  // namespace gloss::recipe
