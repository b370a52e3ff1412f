#include "gloss/model/model_file.h"

#include <filesystem>
#include <fstream>
#include <optional>

#include "gloss/model/file_format.h"
#include "gloss/util/error.h"

namespace gloss::model {

void save_model(const std::string& path, const ModelFile& model, const nn::ParameterSet& params) {
  write_envelope(path, kModelMagic, kFormatVersion,
                 [&](boost::archive::binary_oarchive& ar) { save_model_part(ar, model, params); });
}

ModelFile load_model(const std::string& path, nn::ParameterSet* params) {
  return read_envelope(path, kModelMagic, "model", kFormatVersion,
                       [&](Payload& in, ModelFile&, std::uint32_t) { load_params(in, params); });
}

ModelFile load_model(const std::string& path, const std::function<nn::ParameterSet&(const ModelFile&)>& build) {
  return read_envelope(path, kModelMagic, "model", kFormatVersion,
                       [&](Payload& in, ModelFile& m, std::uint32_t) { load_params(in, &build(m)); });
}

namespace {

// load_any with the set to fill (nullptr: none) chosen once the configuration is read.
ModelFile load_any_into(const std::string& path, const std::function<nn::ParameterSet*(const ModelFile&)>& params_for) {
  return read_model_or_checkpoint(path, [&](Payload& in, ModelFile& m, std::uint32_t version, bool checkpoint) {
    nn::ParameterSet* params = params_for(m);
    load_params(in, params);
    if (checkpoint && version >= 4) load_averages_as_params(in, params);
  });
}

}  // namespace

ModelFile load_any(const std::string& path, nn::ParameterSet* params) {
  return load_any_into(path, [&](const ModelFile&) { return params; });
}

ModelFile load_any(const std::string& path, const std::function<nn::ParameterSet&(const ModelFile&)>& build) {
  return load_any_into(path, [&](const ModelFile& m) { return &build(m); });
}

std::string gloss_kind_of_head(std::string_view head) {
  if (head.starts_with(std::string_view(kModelMagic, 8))) return "model file";
  if (head.starts_with(std::string_view(kCheckpointMagic, 8))) return "checkpoint";
  return "";
}

std::string gloss_file_kind(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return "";  // a pipe's bytes would be consumed
  char head[8] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(head, sizeof head);
  return gloss_kind_of_head(std::string_view(head, static_cast<std::size_t>(in.gcount())));
}

namespace {

// A shell glob right after -o (`-o run/checkpoint.*.gckpt`) would make the oldest checkpoint
// the output and replace it with a model file: refused, as is an output that is an input.
void check_average_output(const std::vector<std::string>& inputs, const std::string& output) {
  if (output.ends_with(".gckpt"))
    throw ConfigError("-o " + output +
                      ": a checkpoint's name (.gckpt), but gloss average writes a model file; give -o a new .gloss "
                      "name before the inputs");
  std::error_code ec;
  for (const auto& in : inputs)
    if (std::filesystem::equivalent(in, output, ec))
      throw ConfigError("-o " + output + ": is also an input of gloss average; give -o a new file name");
}

}  // namespace

void average_models(const std::vector<std::string>& inputs, const std::string& output) {
  if (inputs.empty()) throw ConfigError("gloss average: give the model files or checkpoints to average");
  check_average_output(inputs, output);
  nn::ParameterSet sum, one;
  std::optional<Seq2Seq> a, b;
  const ModelFile first = load_any(inputs[0], [&](const ModelFile& m) -> nn::ParameterSet& {
    a.emplace(m.config, sum);
    b.emplace(m.config, one);
    return sum;
  });
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    const ModelFile other = load_any(inputs[i], &one);  // checks names and shapes
    if (other.src_spm != first.src_spm || other.tgt_spm != first.tgt_spm)
      throw InputError(inputs[i], 0,
                       "uses other subword models than " + inputs[0] + "; average runs of one training only");
    for (std::size_t k = 0; k < sum.all().size(); ++k) {
      float* acc = sum.all()[k]->value.data();
      const float* x = one.all()[k]->value.data();
      for (std::int64_t j = 0; j < sum.all()[k]->value.size(); ++j) acc[j] += x[j];
    }
  }
  const float scale = 1.0f / static_cast<float>(inputs.size());
  for (const auto& p : sum.all())
    for (std::int64_t j = 0; j < p->value.size(); ++j) p->value[j] *= scale;
  ModelFile out = first;
  out.recipe += "\n# averaged over " + std::to_string(inputs.size()) + " files\n";
  save_model(output, out, sum);
}

}  // namespace gloss::model
