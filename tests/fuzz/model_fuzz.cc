// libFuzzer harness: model files and checkpoints as gloss translate and gloss average load them
// (configuration first, then a model of that configuration, then its weights).
#include "fuzz_input.h"
#include "gloss/model/model_file.h"
#include "gloss/model/seq2seq.h"
#include "gloss/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = gloss::fuzz::input_file("model.gloss", gloss::fuzz::as_text(data, size));
  try {
    const auto mf = gloss::model::load_any(path, nullptr);
    gloss::nn::ParameterSet params;
    gloss::model::Seq2Seq net(mf.config, params);
    gloss::model::load_any(path, &params);
  } catch (const gloss::UserError&) {
  }
  return 0;
}
