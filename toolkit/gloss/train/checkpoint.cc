#include "gloss/train/checkpoint.h"

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/array.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <zlib.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"

namespace gloss::train {
namespace {

// 2: parameters and optimiser moments streamed as raw arrays (1: as vectors of copies).
// 3: the model configuration has dec_layers. Version 2 files are read (one decoder layer),
// except LSTM models: version 2 reset the decoder's LSTM memory cell at every step.
constexpr std::uint32_t kFormatVersion = 3, kOldestVersion = 2;

template <class A>
void serialize_config(A& ar, model::ModelConfig& c, std::uint32_t version) {
  int cell = c.cell == nn::CellType::kGru ? 0 : 1;
  ar & cell & c.src_vocab & c.tgt_vocab & c.emb & c.enc_hidden & c.enc_layers & c.bidirectional & c.dec_hidden & c.att &
      c.readout & c.readout_dim & c.dec_init & c.tie_target_embeddings & c.dropout_emb & c.dropout_rnn & c.dropout_readout;
  if (version >= 3) ar & c.dec_layers;
  else c.dec_layers = 1;
  c.cell = cell == 0 ? nn::CellType::kGru : nn::CellType::kLstm;
}

// Parameters are written as (count, then name, shape, values) straight from their tensors.
template <class A>
void save_params(A& ar, const nn::ParameterSet& params) {
  std::uint64_t count = params.all().size();
  ar << count;
  for (const auto& p : params.all()) {
    std::string name = p->name;
    std::vector<std::int64_t> shape = p->value.shape();
    ar << name << shape;
    ar << boost::serialization::make_array(p->value.data(), static_cast<std::size_t>(p->value.size()));
  }
}

template <class A>
void load_params(A& ar, const std::string& path, nn::ParameterSet* params) {
  std::uint64_t count = 0;
  ar >> count;
  if (params && count != params->all().size())
    throw InputError(path, 0, "holds " + std::to_string(count) + " parameters, the model has " +
                                  std::to_string(params->all().size()));
  std::vector<float> skip;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string name;
    std::vector<std::int64_t> shape;
    ar >> name >> shape;
    std::int64_t size = 1;
    for (auto d : shape) size *= d;
    if (!params) {
      skip.resize(static_cast<std::size_t>(size));
      ar >> boost::serialization::make_array(skip.data(), skip.size());
      continue;
    }
    if (!params->contains(name)) throw InputError(path, 0, "has a parameter '" + name + "' the model does not");
    auto& p = params->get(name);
    if (p.value.shape() != shape)
      throw InputError(path, 0, "parameter '" + name + "' has shape " + Tensor(shape).shape_string() +
                                    ", the model expects " + p.value.shape_string());
    ar >> boost::serialization::make_array(p.value.data(), static_cast<std::size_t>(size));
  }
  if (params) params->touch();
}

// An istream over bytes already in memory (no copy).
struct MemoryBuffer : std::streambuf {
  MemoryBuffer(const char* begin, std::size_t size) {
    char* b = const_cast<char*>(begin);
    setg(b, b, b + size);
  }
};

// Streams the payload into a temporary file after a placeholder header, then fills in size
// and CRC-32 and renames: the full file is never held in memory.
template <class F>
void write_file(const std::string& path, const char* magic, F&& write_payload) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw UserError(path + ": cannot write");
    out.write(std::string(24, '\0').data(), 24);
    {
      boost::archive::binary_oarchive ar(out);
      write_payload(ar);
    }
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw UserError(path + ": write failed (disk full?)");
    }
  }
  std::fstream f(tmp, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(24);
  std::vector<char> chunk(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  std::uint64_t size = 0;
  while (f.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || f.gcount() > 0) {
    crc = crc32(crc, reinterpret_cast<const Bytef*>(chunk.data()), static_cast<uInt>(f.gcount()));
    size += static_cast<std::uint64_t>(f.gcount());
  }
  f.clear();
  f.seekp(0);
  const std::uint32_t version = kFormatVersion, crc32v = static_cast<std::uint32_t>(crc);
  f.write(magic, 8);
  f.write(reinterpret_cast<const char*>(&version), 4);
  f.write(reinterpret_cast<const char*>(&size), 8);
  f.write(reinterpret_cast<const char*>(&crc32v), 4);
  f.close();
  if (!f) {
    std::remove(tmp.c_str());
    throw UserError(path + ": write failed");
  }
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw UserError(path + ": cannot rename into place");
  }
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
  if (version < kOldestVersion || version > kFormatVersion)
    throw InputError(path, 0, std::string(what) + " format version " + std::to_string(version) + "; this gloss reads versions " +
                                  std::to_string(kOldestVersion) + " to " + std::to_string(kFormatVersion));
  if (data.size() - 24 != size)
    throw InputError(path, 0, "is truncated (" + std::to_string(data.size() - 24) + " of " + std::to_string(size) +
                                  " payload bytes); the file is incomplete or damaged");
  const auto actual = static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data.data() + 24), static_cast<uInt>(size)));
  if (actual != crc) throw InputError(path, 0, "is corrupted (checksum mismatch); use another copy");
  return data;  // payload starts at byte 24
}

template <class A>
void serialize_model_part(A& ar, ModelFile& m, std::uint32_t version = kFormatVersion) {
  serialize_config(ar, m.config, version);
  ar & m.src_spm & m.tgt_spm & m.recipe;
}

template <class A>
void serialize_state(A& ar, TrainingState& s) {
  ar & s.epoch & s.batch & s.step & s.target_tokens & s.elapsed_seconds & s.lr & s.best_score & s.best_step & s.stalls &
      s.lr_stalls & s.rng;
}

}  // namespace

void save_model(const std::string& path, const ModelFile& model, const nn::ParameterSet& params) {
  write_file(path, "GLOSSMDL", [&](boost::archive::binary_oarchive& ar) {
    ModelFile m = model;
    serialize_model_part(ar, m);
    save_params(ar, params);
  });
}

namespace {

template <class F>
ModelFile read_file_payload(const std::string& path, const char* magic, const char* what, F&& rest) {
  const std::string data = read_envelope(path, magic, what);
  try {
    MemoryBuffer buf(data.data() + 24, data.size() - 24);
    std::istream in(&buf);
    boost::archive::binary_iarchive ar(in);
    ModelFile m;
    std::uint32_t version;
    std::memcpy(&version, data.data() + 8, 4);
    serialize_model_part(ar, m, version);
    if (version < 3 && m.config.cell == nn::CellType::kLstm)
      throw InputError(path, 0, "is an LSTM model of format version 2, whose decoder reset its memory cell at every "
                                "step; retrain it with this gloss");
    rest(ar, m);
    return m;
  } catch (const boost::archive::archive_exception& e) {
    throw InputError(path, 0, std::string("cannot be read: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw InputError(path, 0, "cannot be read: its contents are inconsistent (damaged, or written by another Gloss version)");
  } catch (const std::length_error&) {
    throw InputError(path, 0, "cannot be read: its contents are inconsistent (damaged, or written by another Gloss version)");
  }
}

}  // namespace

ModelFile load_model(const std::string& path, nn::ParameterSet* params) {
  return read_file_payload(path, "GLOSSMDL", "model",
                           [&](boost::archive::binary_iarchive& ar, ModelFile&) { load_params(ar, path, params); });
}

void save_checkpoint(const std::string& path, const ModelFile& model, const nn::ParameterSet& params,
                     nn::Optimizer& optimizer, const TrainingState& state) {
  write_file(path, "GLOSSCKP", [&](boost::archive::binary_oarchive& ar) {
    ModelFile m = model;
    serialize_model_part(ar, m);
    save_params(ar, params);
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
    serialize_state(ar, st);
  });
}

ModelFile peek_checkpoint(const std::string& path) {
  return read_file_payload(path, "GLOSSCKP", "checkpoint", [](boost::archive::binary_iarchive&, ModelFile&) {});
}

ModelFile load_checkpoint(const std::string& path, nn::ParameterSet& params, nn::Optimizer& optimizer,
                          TrainingState& state) {
  return read_file_payload(path, "GLOSSCKP", "checkpoint", [&](boost::archive::binary_iarchive& ar, ModelFile&) {
    load_params(ar, path, &params);
    std::uint64_t count = 0;
    ar >> count;
    auto slots = optimizer.state();
    if (count != slots.size())
      throw InputError(path, 0, "optimiser state does not match train.optimizer (different optimiser?)");
    for (Tensor* t : slots) {
      std::uint64_t size = 0;
      ar >> size;
      if (static_cast<std::int64_t>(size) != t->size()) throw InputError(path, 0, "optimiser state has the wrong size");
      ar >> boost::serialization::make_array(t->data(), static_cast<std::size_t>(size));
    }
    std::int64_t steps = 0;
    ar >> steps;
    optimizer.steps = steps;
    serialize_state(ar, state);
  });
}

ModelFile load_any(const std::string& path, nn::ParameterSet* params) {
  require_file(path);
  std::string head(8, '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(head.data(), 8);  // the magic number only; a short file fails below with its own error
  head.resize(static_cast<std::size_t>(in.gcount()));
  if (head == "GLOSSCKP") {
    return read_file_payload(path, "GLOSSCKP", "checkpoint",
                             [&](boost::archive::binary_iarchive& ar, ModelFile&) { load_params(ar, path, params); });
  }
  return load_model(path, params);
}

void average_models(const std::vector<std::string>& inputs, const std::string& output) {
  if (inputs.empty()) throw ConfigError("gloss average: give the model files or checkpoints to average");
  const ModelFile first = load_any(inputs[0], nullptr);
  nn::ParameterSet sum, one;
  model::Seq2Seq a(first.config, sum), b(first.config, one);
  load_any(inputs[0], &sum);
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    const ModelFile other = load_any(inputs[i], &one);  // checks names and shapes
    if (other.src_spm != first.src_spm || other.tgt_spm != first.tgt_spm)
      throw InputError(inputs[i], 0, "uses other subword models than " + inputs[0] + "; average runs of one training only");
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

}  // namespace gloss::train
