#include "gloss/train/checkpoint.h"

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/array.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <zlib.h>

#include <cstring>
#include <sstream>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"

namespace gloss::train {
namespace {

constexpr std::uint32_t kFormatVersion = 1;

struct NamedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
  template <class A>
  void serialize(A& ar, unsigned) {
    ar & name & shape & values;
  }
};

template <class A>
void serialize_config(A& ar, model::ModelConfig& c) {
  int cell = c.cell == nn::CellType::kGru ? 0 : 1;
  ar & cell & c.src_vocab & c.tgt_vocab & c.emb & c.enc_hidden & c.enc_layers & c.bidirectional & c.dec_hidden & c.att &
      c.readout & c.readout_dim & c.dec_init & c.tie_target_embeddings & c.dropout_emb & c.dropout_rnn & c.dropout_readout;
  c.cell = cell == 0 ? nn::CellType::kGru : nn::CellType::kLstm;
}

std::vector<NamedTensor> export_params(const nn::ParameterSet& params) {
  std::vector<NamedTensor> out;
  for (const auto& p : params.all())
    out.push_back({p->name, p->value.shape(), std::vector<float>(p->value.data(), p->value.data() + p->value.size())});
  return out;
}

void import_params(const std::string& path, const std::vector<NamedTensor>& stored, nn::ParameterSet& params) {
  if (stored.size() != params.all().size())
    throw InputError(path, 0, "holds " + std::to_string(stored.size()) + " parameters, the model has " +
                                  std::to_string(params.all().size()));
  for (const auto& t : stored) {
    if (!params.contains(t.name)) throw InputError(path, 0, "has a parameter '" + t.name + "' the model does not");
    auto& p = params.get(t.name);
    if (p.value.shape() != t.shape || static_cast<std::int64_t>(t.values.size()) != p.value.size())
      throw InputError(path, 0, "parameter '" + t.name + "' has shape " + Tensor(t.shape).shape_string() +
                                    ", the model expects " + p.value.shape_string());
    std::memcpy(p.value.data(), t.values.data(), t.values.size() * sizeof(float));
  }
  params.touch();
}

void write_envelope(const std::string& path, const char* magic, const std::string& payload) {
  std::string out(magic, 8);
  auto put = [&out](const void* p, std::size_t n) { out.append(static_cast<const char*>(p), n); };
  const std::uint32_t version = kFormatVersion;
  const std::uint64_t size = payload.size();
  const std::uint32_t crc = static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size())));
  put(&version, 4);
  put(&size, 8);
  put(&crc, 4);
  out += payload;
  atomic_write_file(path, out);
}

std::string read_envelope(const std::string& path, const char* magic, const char* what) {
  const std::string data = read_file(path);
  if (data.size() < 24 || data.compare(0, 8, magic) != 0) {
    const bool other = data.size() >= 8 && (data.compare(0, 8, "GLOSSMDL") == 0 || data.compare(0, 8, "GLOSSCKP") == 0);
    throw InputError(path, 0, other ? std::string("is a Gloss ") + (data.compare(0, 8, "GLOSSMDL") == 0 ? "model" : "checkpoint") +
                                          " file, not a " + what
                                    : std::string("is not a Gloss ") + what + " (wrong file?)");
  }
  std::uint32_t version, crc;
  std::uint64_t size;
  std::memcpy(&version, data.data() + 8, 4);
  std::memcpy(&size, data.data() + 12, 8);
  std::memcpy(&crc, data.data() + 20, 4);
  if (version != kFormatVersion)
    throw InputError(path, 0, std::string(what) + " format version " + std::to_string(version) + "; this gloss reads version " +
                                  std::to_string(kFormatVersion));
  if (data.size() - 24 != size)
    throw InputError(path, 0, "is truncated (" + std::to_string(data.size() - 24) + " of " + std::to_string(size) +
                                  " payload bytes); the file is incomplete or damaged");
  const std::string payload = data.substr(24);
  const auto actual = static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size())));
  if (actual != crc) throw InputError(path, 0, "is corrupted (checksum mismatch); use another copy");
  return payload;
}

template <class A>
void serialize_model_part(A& ar, ModelFile& m) {
  serialize_config(ar, m.config);
  ar & m.src_spm & m.tgt_spm & m.recipe;
}

template <class A>
void serialize_state(A& ar, TrainingState& s) {
  ar & s.epoch & s.batch & s.step & s.target_tokens & s.elapsed_seconds & s.lr & s.best_score & s.best_step & s.stalls &
      s.lr_stalls & s.rng;
}

}  // namespace

void save_model(const std::string& path, const ModelFile& model, const nn::ParameterSet& params) {
  std::ostringstream buf;
  {
    boost::archive::binary_oarchive ar(buf);
    ModelFile m = model;
    serialize_model_part(ar, m);
    auto tensors = export_params(params);
    ar << tensors;
  }
  write_envelope(path, "GLOSSMDL", buf.str());
}

ModelFile load_model(const std::string& path, nn::ParameterSet* params) {
  const std::string payload = read_envelope(path, "GLOSSMDL", "model");
  try {
    std::istringstream in(payload);
    boost::archive::binary_iarchive ar(in);
    ModelFile m;
    serialize_model_part(ar, m);
    std::vector<NamedTensor> tensors;
    ar >> tensors;
    if (params) import_params(path, tensors, *params);
    return m;
  } catch (const boost::archive::archive_exception& e) {
    throw InputError(path, 0, std::string("cannot be read: ") + e.what());
  }
}

void save_checkpoint(const std::string& path, const ModelFile& model, const nn::ParameterSet& params,
                     nn::Optimizer& optimizer, const TrainingState& state) {
  std::ostringstream buf;
  {
    boost::archive::binary_oarchive ar(buf);
    ModelFile m = model;
    serialize_model_part(ar, m);
    auto tensors = export_params(params);
    ar << tensors;
    std::vector<std::vector<float>> moments;
    for (Tensor* t : optimizer.state()) moments.emplace_back(t->data(), t->data() + t->size());
    std::int64_t steps = optimizer.steps;
    ar << moments << steps;
    TrainingState s = state;
    serialize_state(ar, s);
  }
  write_envelope(path, "GLOSSCKP", buf.str());
}

ModelFile peek_checkpoint(const std::string& path) {
  const std::string payload = read_envelope(path, "GLOSSCKP", "checkpoint");
  try {
    std::istringstream in(payload);
    boost::archive::binary_iarchive ar(in);
    ModelFile m;
    serialize_model_part(ar, m);
    return m;
  } catch (const boost::archive::archive_exception& e) {
    throw InputError(path, 0, std::string("cannot be read: ") + e.what());
  }
}

ModelFile load_checkpoint(const std::string& path, nn::ParameterSet& params, nn::Optimizer& optimizer,
                          TrainingState& state) {
  const std::string payload = read_envelope(path, "GLOSSCKP", "checkpoint");
  try {
    std::istringstream in(payload);
    boost::archive::binary_iarchive ar(in);
    ModelFile m;
    serialize_model_part(ar, m);
    std::vector<NamedTensor> tensors;
    ar >> tensors;
    import_params(path, tensors, params);
    std::vector<std::vector<float>> moments;
    std::int64_t steps = 0;
    ar >> moments >> steps;
    auto slots = optimizer.state();
    if (moments.size() != slots.size())
      throw InputError(path, 0, "optimiser state does not match train.optimizer (different optimiser?)");
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (static_cast<std::int64_t>(moments[i].size()) != slots[i]->size())
        throw InputError(path, 0, "optimiser state has the wrong size");
      std::memcpy(slots[i]->data(), moments[i].data(), moments[i].size() * sizeof(float));
    }
    optimizer.steps = steps;
    serialize_state(ar, state);
    return m;
  } catch (const boost::archive::archive_exception& e) {
    throw InputError(path, 0, std::string("cannot be read: ") + e.what());
  }
}

}  // namespace gloss::train
