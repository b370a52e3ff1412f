#pragma once
// `gloss run RECIPE`: every stage of a recipe, from raw parallel text to a BLEU report.
//
// Stages, each skipped when its result is there and up to date:
//   train      subword models, then the model (train/trainer.h): resumes an interrupted
//              training; a finished one takes no step. When the recipe's data, subword, model
//              or training keys change (other than how long or how fast to train: epochs,
//              max_steps, max_minutes, patience, valid_every, threads, keep_last,
//              split_positions, parallel), the old run's files move to
//              <workdir>/previous/ and training starts again. Longer limits continue the run.
//   average    with run.average_last N, the last N checkpoints averaged into model.avg.gloss
//              (remade when they change), which then translates
//   translate  the test set with the recipe's [decode] keys (decode.n_best > 1: the n-best
//              lists also go to <output>.nbest); redone when the model file, the test file or a
//              decode key changes (stamp: <output>.stamp)
//   evaluate   the recipe's eval.metrics on the translation (sacreBLEU-exact scores)
// Then report.md, report.json and curves.svg are written to <workdir>.
//
// With run.grid, stage 1 trains one model per combination of the grid's values, each in
// <workdir>/grid/<combination>/ as above (all combinations' recipes are loaded, so checked,
// before the first trains); the one with the best validation score (train.valid_metric) alone
// translates the test set, and the report tabulates every combination's validation scores.
#include <iosfwd>
#include <string>

#include "gloss/recipe/recipe.h"

namespace gloss::run {

struct RunResult {
  std::string markdown;  // the report (also in <workdir>/report.md)
  std::string json;      // the same facts (also in <workdir>/report.json)
};

RunResult run_recipe(const recipe::LoadedRecipe& loaded, std::ostream& log);

}  // namespace gloss::run
