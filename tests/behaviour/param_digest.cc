// gloss_param_digest FILE...: one line per parameter of each model file or checkpoint (its
// weight average when it keeps one), "name [shape] fingerprint-of-its-float-bytes". Two files
// with the same lines hold the same model bit for bit, whatever else (the recipe text) they store.
#include <cstdint>
#include <iostream>
#include <string>
#include <string_view>

#include "gloss/model/model_file.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/parameter.h"
#include "gloss/util/error.h"
#include "gloss/util/hash.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: gloss_param_digest MODEL_OR_CHECKPOINT...\n";
    return 2;
  }
  try {
    for (int a = 1; a < argc; ++a) {
      const auto peek = gloss::model::load_any(argv[a], nullptr);
      gloss::nn::ParameterSet params;
      gloss::model::Seq2Seq net(peek.config, params);
      gloss::model::load_any(argv[a], &params);
      std::cout << "# " << argv[a] << "\n";
      for (const auto& p : params.all()) {
        std::cout << p->name << " [";
        for (std::size_t d = 0; d < p->value.shape().size(); ++d) std::cout << (d ? "," : "") << p->value.shape()[d];
        std::cout << "] "
                  << gloss::fingerprint(std::string_view(reinterpret_cast<const char*>(p->value.data()),
                                                         static_cast<std::size_t>(p->value.size()) * sizeof(float)))
                  << "\n";
      }
    }
  } catch (const gloss::UserError& e) {
    std::cerr << "gloss_param_digest: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
