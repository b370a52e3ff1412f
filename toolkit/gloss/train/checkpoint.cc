#include "gloss/train/checkpoint.h"

#include <algorithm>
#include <filesystem>

#include <boost/serialization/array.hpp>
#include <boost/serialization/string.hpp>

#include "gloss/model/file_format.h"
#include "gloss/util/error.h"

namespace gloss::train {
namespace {

template <class A>
void serialize_state(A& ar, TrainingState& s, std::uint32_t version) {
  model::serialize_fields(ar, s.epoch, s.batch, s.step, s.target_tokens, s.elapsed_seconds, s.lr, s.best_score,
                          s.best_step, s.stalls, s.lr_stalls, s.rng);
  if (version >= 7) model::serialize_fields(ar, s.loss_since_valid, s.tokens_since_valid);
}

}  // namespace

void save_checkpoint(const std::string& path, const model::ModelFile& model, const nn::ParameterSet& params,
                     nn::Optimizer& optimizer, const TrainingState& state, const std::vector<Tensor*>& averages) {
  model::write_envelope(path, model::kCheckpointMagic, model::kCheckpointVersion,
                        [&](boost::archive::binary_oarchive& ar) {
                          model::save_model_part(ar, model, params);
                          model::save_averages(ar, averages);
                          const auto slots = optimizer.state();
                          std::uint64_t count = slots.size();
                          ar << count;
                          for (Tensor* t : slots) {
                            std::uint64_t size = static_cast<std::uint64_t>(t->size());
                            ar << size << boost::serialization::make_array(t->data(), static_cast<std::size_t>(size));
                          }
                          std::int64_t steps = optimizer.steps;
                          ar << steps;
                          TrainingState st = state;
                          serialize_state(ar, st, model::kCheckpointVersion);
                        });
}

model::ModelFile peek_checkpoint(const std::string& path) {
  return model::read_envelope(path, model::kCheckpointMagic, "checkpoint", model::kCheckpointVersion,
                              [](model::Payload&, model::ModelFile&, std::uint32_t) {});
}

model::ModelFile load_checkpoint(const std::string& path, nn::ParameterSet& params, nn::Optimizer& optimizer,
                                 TrainingState& state, const std::vector<Tensor*>& averages) {
  return model::read_envelope(
      path, model::kCheckpointMagic, "checkpoint", model::kCheckpointVersion,
      [&](model::Payload& in, model::ModelFile&, std::uint32_t version) {
        auto& ar = in.ar();
        model::load_params(in, &params);
        if (version >= 4)
          model::load_averages(in, averages);
        else if (!averages.empty())
          throw InputError(path, 0,
                           "was trained without train.ema_decay; resume it without, or start another run.workdir");
        std::uint64_t count = 0;
        ar >> count;
        auto slots = optimizer.state();
        if (count != slots.size())
          throw InputError(path, 0, "optimiser state does not match train.optimizer (different optimiser?)");
        for (Tensor* t : slots) {
          std::uint64_t size = 0;
          ar >> size;
          if (static_cast<std::int64_t>(size) != t->size())
            throw InputError(path, 0, "optimiser state has the wrong size");
          ar >> boost::serialization::make_array(t->data(), static_cast<std::size_t>(size));
        }
        std::int64_t steps = 0;
        ar >> steps;
        optimizer.steps = steps;
        serialize_state(in, state, version);
      });
}

std::string numbered_checkpoint_path(const std::string& dir, std::int64_t step) {
  return (std::filesystem::path(dir) / ("checkpoint." + std::to_string(step) + ".gckpt")).string();
}

std::vector<std::pair<std::int64_t, std::string>> numbered_checkpoints(const std::string& dir) {
  std::vector<std::pair<std::int64_t, std::string>> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 18 || !name.starts_with("checkpoint.") || !name.ends_with(".gckpt")) continue;
    const std::string step = name.substr(11, name.size() - 17);
    if (step.size() > 18 || step.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(step), entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace gloss::train
