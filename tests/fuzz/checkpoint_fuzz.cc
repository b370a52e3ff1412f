// libFuzzer harness: training checkpoints as a resumed training reads them (model part,
// weights, weight averages, optimiser moments, training state).
#include "fuzz_input.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/optimizer.h"
#include "gloss/train/checkpoint.h"
#include "gloss/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = gloss::fuzz::input_file("checkpoint.gckpt", gloss::fuzz::as_text(data, size));
  try {
    const auto mf = gloss::train::peek_checkpoint(path);
    gloss::nn::ParameterSet params;
    gloss::model::Seq2Seq net(mf.config, params);
    const auto optimizer = gloss::nn::make_optimizer("adam", params);
    gloss::nn::WeightAverage average(params, 0.999);
    gloss::train::TrainingState state;
    try {
      gloss::train::load_checkpoint(path, params, *optimizer, state, average.state());
    } catch (const gloss::UserError&) {  // e.g. saved without averages: read as such
      gloss::train::load_checkpoint(path, params, *optimizer, state, {});
    }
  } catch (const gloss::UserError&) {
  }
  return 0;
}
