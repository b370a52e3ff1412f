#include "gloss/model/file_format.h"

#include <zlib.h>
#include <boost/serialization/array.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include "gloss/text/subword.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"

namespace gloss::model {
namespace {

template <class A>
void serialize_config(A& ar, ModelConfig& c, std::uint32_t version) {
  int cell = c.cell == nn::CellType::kGru ? 0 : 1;
  serialize_fields(ar, cell, c.src_vocab, c.tgt_vocab, c.emb_dim, c.enc_hidden, c.enc_layers, c.bidirectional,
                   c.dec_hidden, c.att_dim, c.readout, c.readout_dim, c.dec_init, c.tie_target_embeddings,
                   c.dropout_emb, c.dropout_rnn, c.dropout_readout);
  if (version >= 3)
    serialize_fields(ar, c.dec_layers);
  else
    c.dec_layers = 1;
  if (version >= 4)
    serialize_fields(ar, c.layer_norm);
  else
    c.layer_norm = false;
  if (version >= 6)
    serialize_fields(ar, c.decoder);
  else
    c.decoder = "bahdanau";
  c.cell = cell == 0 ? nn::CellType::kGru : nn::CellType::kLstm;
}

template <class A>
void serialize_model_part(A& ar, ModelFile& m, std::uint32_t version) {
  serialize_config(ar, m.config, version);
  serialize_fields(ar, m.src_spm, m.tgt_spm, m.recipe);
  if (version >= 5)
    serialize_fields(ar, m.shortlist);
  else
    m.shortlist.clear();
}

// Parameters are written as (count, then name, shape, values) straight from their tensors.
void save_params(boost::archive::binary_oarchive& ar, const nn::ParameterSet& params) {
  std::uint64_t count = params.all().size();
  ar << count;
  for (const auto& p : params.all()) {
    std::string name = p->name;
    std::vector<std::int64_t> shape = p->value.shape();
    ar << name << shape;
    ar << boost::serialization::make_array(p->value.data(), static_cast<std::size_t>(p->value.size()));
  }
}

// A model file's or checkpoint's bytes, all of them; a pipe or device is an InputError
// (util::read_file sizes the file before reading it).
std::string read_whole(const std::string& path) {
  require_rereadable(path, "model files and checkpoints are read whole, their size known first");
  return read_file(path);
}

// Checks the envelope of a whole file's bytes: magic, version, size and checksum.
void check_envelope(const std::string& path, const std::string& data, const char* magic, const char* what,
                    std::uint32_t newest) {
  const std::string kind = gloss_kind_of_head(data);
  if (!kind.empty() && data.size() < 24)
    throw InputError(path, 0,
                     "is truncated (" + std::to_string(data.size()) +
                         " bytes, less than the 24-byte header); the file is incomplete or damaged");
  if (data.size() < 24 || data.compare(0, 8, magic) != 0)
    throw InputError(path, 0,
                     !kind.empty() ? "is a Gloss " + kind + ", not a " + what
                                   : std::string("is not a Gloss ") + what +
                                         " (wrong file? gloss train and gloss run write RUN_FOLDER/model.best.gloss)");
  std::uint32_t version, crc;
  std::uint64_t size;
  std::memcpy(&version, data.data() + 8, 4);
  std::memcpy(&size, data.data() + 12, 8);
  std::memcpy(&crc, data.data() + 20, 4);
  if (version < kOldestVersion || version > newest)
    throw InputError(path, 0,
                     std::string(what) + " format version " + std::to_string(version) + "; this gloss reads versions " +
                         std::to_string(kOldestVersion) + " to " + std::to_string(newest));
  if (data.size() - 24 != size)
    throw InputError(path, 0,
                     "is truncated (" + std::to_string(data.size() - 24) + " of " + std::to_string(size) +
                         " payload bytes); the file is incomplete or damaged");
  const auto actual =
      static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(data.data() + 24), static_cast<uInt>(size)));
  if (actual != crc) throw InputError(path, 0, "is corrupted (checksum mismatch); use another copy");
}

}  // namespace

// An istream buffer over bytes already in memory (no copy) that tells how many are left.
struct Payload::Buffer : std::streambuf {
  Buffer(const char* begin, std::size_t size) {
    char* b = const_cast<char*>(begin);
    setg(b, b, b + size);
  }
  std::uint64_t left() const { return static_cast<std::uint64_t>(egptr() - gptr()); }
  const char* next() const { return gptr(); }
};

Payload::Payload(const std::string& path, const char* data, std::size_t size)
    : path_(path),
      buf_(std::make_unique<Buffer>(data, size)),
      in_(std::make_unique<std::istream>(buf_.get())),
      ar_(std::make_unique<boost::archive::binary_iarchive>(*in_)) {}

Payload::~Payload() = default;

std::uint64_t Payload::left() const { return buf_->left(); }

void Payload::need(std::uint64_t count, std::uint64_t item_bytes, const std::string& what) const {
  if (item_bytes > 0 && count > left() / item_bytes)
    throw InputError(path_, 0,
                     "is damaged: " + what + " of " + std::to_string(count) + " items does not fit in the " +
                         std::to_string(left()) + " bytes left");
}

std::uint64_t Payload::peek_count() const {
  need(1, 8, "a length");
  std::uint64_t count;
  std::memcpy(&count, buf_->next(), 8);
  return count;
}

void Payload::read(std::string& s, const std::string& what, std::uint64_t most) {
  const std::uint64_t count = peek_count();
  if (count > most) throw InputError(path_, 0, "is damaged: " + what + " is longer than " + std::to_string(most));
  need(count, 1, what);
  *ar_ >> s;
}

void Payload::read(std::vector<std::int64_t>& v, const std::string& what, std::uint64_t most) {
  const std::uint64_t count = peek_count();
  if (count > most)
    throw InputError(path_, 0, "is damaged: " + what + " has more than " + std::to_string(most) + " items");
  need(count, sizeof(std::int64_t), what);
  *ar_ >> v;
}

void save_model_part(boost::archive::binary_oarchive& ar, const ModelFile& model, const nn::ParameterSet& params) {
  ModelFile m = model;
  serialize_model_part(ar, m, kFormatVersion);
  save_params(ar, params);
}

void load_params(Payload& in, nn::ParameterSet* params) {
  const std::string& path = in.path();
  std::uint64_t count = 0;
  in& count;
  in.need(count, 16, "the parameter list");  // each parameter stores at least two lengths
  if (params && count != params->all().size())
    throw InputError(
        path, 0,
        "holds " + std::to_string(count) + " parameters, the model has " + std::to_string(params->all().size()));
  std::vector<float> skip;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string name;
    std::vector<std::int64_t> shape;
    in.read(name, "a parameter name", 256);
    in.read(shape, "the shape of parameter '" + name + "'", 4);
    std::uint64_t size = 1;
    for (auto d : shape) {
      if (d < 0 || d > kMaxVocab) throw InputError(path, 0, "is damaged: parameter '" + name + "' has a bad shape");
      size *= static_cast<std::uint64_t>(d);  // at most 4 factors of 2^21: no overflow
    }
    in.need(size, sizeof(float), "parameter '" + name + "'");
    if (!params) {
      skip.resize(static_cast<std::size_t>(size));
      in.ar() >> boost::serialization::make_array(skip.data(), skip.size());
      continue;
    }
    if (!params->contains(name)) throw InputError(path, 0, "has a parameter '" + name + "' the model does not");
    auto& p = params->get(name);
    if (p.value.shape() != shape)
      throw InputError(path, 0,
                       "parameter '" + name + "' has shape " + Tensor(shape).shape_string() + ", the model expects " +
                           p.value.shape_string());
    in.ar() >> boost::serialization::make_array(p.value.data(), static_cast<std::size_t>(size));
  }
  if (params) params->touch();
}

// Streams the payload into a temporary file after a placeholder header, then fills in size
// and CRC-32 and renames: the full file is never held in memory.
void save_averages(boost::archive::binary_oarchive& ar, const std::vector<Tensor*>& averages) {
  std::uint64_t count = averages.size();
  ar << count;
  for (Tensor* t : averages) {
    std::uint64_t size = static_cast<std::uint64_t>(t->size());
    ar << size << boost::serialization::make_array(t->data(), static_cast<std::size_t>(size));
  }
}

namespace {

std::uint64_t read_average_count(Payload& in, std::size_t most) {
  std::uint64_t count = 0;
  in& count;
  if (count > most)
    throw InputError(in.path(), 0,
                     "holds " + std::to_string(count) + " weight averages for " + std::to_string(most) +
                         " parameters; the file is damaged");
  return count;
}

void read_tensors(Payload& in, const std::vector<Tensor*>& into) {
  for (Tensor* t : into) {
    std::uint64_t size = 0;
    in& size;
    if (static_cast<std::int64_t>(size) != t->size())
      throw InputError(in.path(), 0, "weight average has the wrong size");
    in.ar() >> boost::serialization::make_array(t->data(), static_cast<std::size_t>(size));
  }
}

}  // namespace

void load_averages(Payload& in, const std::vector<Tensor*>& into) {
  const std::uint64_t count = read_average_count(in, std::max<std::size_t>(into.size(), 1 << 16));
  if (count != into.size())
    throw InputError(in.path(), 0,
                     count == 0 ? "was trained without train.ema_decay; resume it without, or start another run.workdir"
                                : "was trained with train.ema_decay; resume it with, or start another run.workdir");
  read_tensors(in, into);
}

void load_averages_as_params(Payload& in, nn::ParameterSet* params) {
  if (!params) return;
  const std::uint64_t count = read_average_count(in, params->all().size());
  if (count == 0) return;
  if (count != params->all().size())
    throw InputError(in.path(), 0,
                     "holds " + std::to_string(count) + " weight averages, the model has " +
                         std::to_string(params->all().size()) + " parameters");
  std::vector<Tensor*> values;
  for (const auto& p : params->all()) values.push_back(&p->value);
  read_tensors(in, values);
  params->touch();
}

namespace {

// Streams the archive after a placeholder header; false when a write failed (full disk).
bool write_payload_file(const std::string& tmp, const std::function<void(boost::archive::binary_oarchive&)>& payload) {
  std::ofstream out(tmp, std::ios::binary);
  if (!out) return false;
  out.write(std::string(24, '\0').data(), 24);
  try {
    boost::archive::binary_oarchive ar(out);
    payload(ar);
  } catch (const boost::archive::archive_exception&) {
    return false;  // Boost's "output stream error": the stream failed under it
  }
  out.flush();
  return static_cast<bool>(out);
}

// Fills in the header (size and CRC-32 of the payload); false when a write failed.
bool patch_header(const std::string& tmp, const char* magic, std::uint32_t version) {
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
  const std::uint32_t crc32v = static_cast<std::uint32_t>(crc);
  f.write(magic, 8);
  f.write(reinterpret_cast<const char*>(&version), 4);
  f.write(reinterpret_cast<const char*>(&size), 8);
  f.write(reinterpret_cast<const char*>(&crc32v), 4);
  f.close();
  return static_cast<bool>(f);
}

}  // namespace

void write_envelope(const std::string& path, const char* magic, std::uint32_t version,
                    const std::function<void(boost::archive::binary_oarchive&)>& write_payload) {
  if (is_special_file(path))  // the file is streamed, then its header patched: a regular file only
    throw UserError(path + ": is a device or FIFO; a model file or checkpoint needs a regular file name");
  sweep_stale_temporaries(path);
  const std::string tmp = temporary_name(path);
  struct RemoveUnlessRenamed {  // any failure, an exception included, leaves no temporary behind
    const std::string& file;
    bool renamed = false;
    ~RemoveUnlessRenamed() {
      if (!renamed) std::remove(file.c_str());
    }
  } guard{tmp};
  errno = 0;
  if (!write_payload_file(tmp, write_payload) || !patch_header(tmp, magic, version)) {
    const int err = errno;
    throw UserError(path + ": write failed: " + (err ? std::strerror(err) : "disk full?") + "; " + path +
                    " is as it was");
  }
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw UserError(path + ": cannot rename into place: " + std::strerror(errno));
  guard.renamed = true;
}

namespace {

// The stored configuration, checked before anything is built from it.
void check_stored_config(const ModelFile& m, const Payload& in) {
  const ModelConfig& c = m.config;
  try {
    validate(c);
  } catch (const ConfigError& e) {
    throw InputError(in.path(), 0, std::string("is damaged: its stored configuration is invalid (") + e.what() + ")");
  }
  // The subword models stored beside it must have the vocabularies its tables have.
  for (const auto& [bytes, vocab, side] :
       {std::tuple{&m.src_spm, c.src_vocab, "source"}, std::tuple{&m.tgt_spm, c.tgt_vocab, "target"}}) {
    if (bytes->empty()) continue;
    const auto sp = text::SubwordModel::from_bytes(*bytes, in.path() + " (" + side + " subwords)");
    if (sp.vocab_size() != vocab)
      throw InputError(in.path(), 0,
                       std::string("is damaged: its ") + side + " subword model has " +
                           std::to_string(sp.vocab_size()) + " pieces, its " + side + " vocabulary " +
                           std::to_string(vocab));
  }
  const auto floats = static_cast<std::uint64_t>(min_parameter_count(c));
  if (floats > in.left() / sizeof(float))
    throw InputError(in.path(), 0,
                     "is damaged: its configuration needs at least " + std::to_string(floats) +
                         " parameters, more than its " + std::to_string(in.left()) + " bytes left can hold");
}

}  // namespace

namespace {

// read_envelope's work after the envelope's check: the model part, then `rest`.
ModelFile parse_envelope(const std::string& path, const std::string& data,
                         const std::function<void(Payload&, ModelFile&, std::uint32_t)>& rest) {
  try {
    Payload in(path, data.data() + 24, data.size() - 24);
    ModelFile m;
    std::uint32_t version;
    std::memcpy(&version, data.data() + 8, 4);
    serialize_model_part(in, m, version);
    check_stored_config(m, in);
    if (version < 3 && m.config.cell == nn::CellType::kLstm)
      throw InputError(path, 0,
                       "is an LSTM model of format version 2, whose decoder reset its memory cell at every "
                       "step; retrain it with this gloss");
    rest(in, m, version);
    return m;
  } catch (const boost::archive::archive_exception& e) {
    throw InputError(path, 0, std::string("cannot be read: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw InputError(path, 0,
                     "cannot be read: its contents are inconsistent (damaged, or written by another Gloss version)");
  } catch (const std::length_error&) {
    throw InputError(path, 0,
                     "cannot be read: its contents are inconsistent (damaged, or written by another Gloss version)");
  }
}

}  // namespace

ModelFile read_envelope(const std::string& path, const char* magic, const char* what, std::uint32_t newest,
                        const std::function<void(Payload&, ModelFile&, std::uint32_t)>& rest) {
  const std::string data = read_whole(path);
  check_envelope(path, data, magic, what, newest);
  return parse_envelope(path, data, rest);
}

ModelFile read_model_or_checkpoint(const std::string& path,
                                   const std::function<void(Payload&, ModelFile&, std::uint32_t, bool)>& rest) {
  const std::string data = read_whole(path);
  const bool checkpoint = data.compare(0, 8, kCheckpointMagic) == 0;
  if (checkpoint)
    check_envelope(path, data, kCheckpointMagic, "checkpoint", kCheckpointVersion);
  else
    check_envelope(path, data, kModelMagic, "model", kFormatVersion);
  return parse_envelope(path, data,
                        [&](Payload& in, ModelFile& m, std::uint32_t version) { rest(in, m, version, checkpoint); });
}

}  // namespace gloss::model
