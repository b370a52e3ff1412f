// gloss_param_digest FILE...: one line per parameter of each model file or checkpoint,
// "name shape fnv1a64-of-its-float-bytes", and the stored configuration. Two files with the
// same lines hold the same model bit for bit, whatever else (the recipe text) they store.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include "gloss/model/model_file.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/parameter.h"
#include "gloss/util/error.h"

namespace {

std::string hex_digest(const float* data, std::int64_t n) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  for (std::int64_t i = 0; i < n * static_cast<std::int64_t>(sizeof(float)); ++i) h = (h ^ bytes[i]) * 0x100000001B3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

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
        std::cout << "] " << hex_digest(p->value.data(), p->value.size()) << "\n";
      }
    }
  } catch (const gloss::UserError& e) {
    std::cerr << "gloss_param_digest: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
