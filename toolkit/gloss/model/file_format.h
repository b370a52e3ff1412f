#pragma once
// The envelope of Gloss's binary files, shared by model files (model/model_file.h) and
// training checkpoints (train/checkpoint.h): Boost.Serialization inside a checked envelope
//   magic (8 bytes) | format version (u32) | payload size (u64) | CRC-32 (u32) | payload
// The payload of both starts with the model part (configuration, subword models, recipe
// text) and the parameters; a checkpoint goes on with the training state.
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "gloss/model/model_file.h"
#include "gloss/nn/parameter.h"

namespace gloss::model {

inline constexpr char kModelMagic[] = "GLOSSMDL";
inline constexpr char kCheckpointMagic[] = "GLOSSCKP";
// 2: parameters and optimiser moments streamed as raw arrays (1: as vectors of copies).
// 3: the model configuration has dec_layers. Version 2 files are read (one decoder layer),
// except LSTM models: version 2 reset the decoder's LSTM memory cell at every step.
// 4: the model configuration has layer_norm; checkpoints have the weight averages
// (train.ema_decay) after the parameters.
// 5: the model part ends with the lexical shortlist (ModelFile::shortlist, empty for none).
// 6: the model configuration has decoder (bahdanau or conditional).
// 7 (checkpoints only; their model part is as in 6): the training state ends with the loss
// since the last validation.
inline constexpr std::uint32_t kFormatVersion = 6, kCheckpointVersion = 7, kOldestVersion = 2;

// ar & f1 & f2 & ... (save or load, as the archive goes), written as a call.
template <class Archive, class... Fields>
void serialize_fields(Archive& ar, Fields&... fields) {
  (ar & ... & fields);
}

// A payload being read: an archive over the file's bytes in memory, and the bytes not yet read,
// which bound every stored length before anything is allocated for it (a forged length is an
// InputError naming the file, never a huge allocation).
class Payload {
 public:
  Payload(const std::string& path, const char* data, std::size_t size);
  ~Payload();
  boost::archive::binary_iarchive& ar() { return *ar_; }
  const std::string& path() const { return path_; }
  std::uint64_t left() const;
  // Throws InputError unless `count` items of `item_bytes` each fit in the bytes left.
  void need(std::uint64_t count, std::uint64_t item_bytes, const std::string& what) const;
  // A string or a vector of integers as the archive stores them (u64 count, then the items),
  // its count checked against the bytes left and against `most`.
  void read(std::string& s, const std::string& what, std::uint64_t most = UINT64_MAX);
  void read(std::vector<std::int64_t>& v, const std::string& what, std::uint64_t most);
  // The payload's next value (plain fields: ints, floats, fixed arrays).
  template <class T>
  Payload& operator&(T& value) {
    *ar_ >> value;
    return *this;
  }
  Payload& operator&(std::string& s) {
    read(s, "a stored string");
    return *this;
  }

 private:
  std::uint64_t peek_count() const;
  struct Buffer;
  std::string path_;
  std::unique_ptr<Buffer> buf_;
  std::unique_ptr<std::istream> in_;
  std::unique_ptr<boost::archive::binary_iarchive> ar_;
};

// Streams write_payload's archive into a temporary file beside `path`, fills in the header
// and renames it into place (never a half-written file). Throws UserError naming the path.
void write_envelope(const std::string& path, const char* magic, std::uint32_t version,
                    const std::function<void(boost::archive::binary_oarchive&)>& write_payload);

// Reads a file with `magic` (`what` names its kind in errors) of a version up to `newest`:
// checks the envelope, reads the model part, then lets `rest` read on (given the file's
// version). The stored configuration is checked (model::validate, and that the payload can hold
// its embedding and output tables) before `rest` runs, so a caller may build the model it
// describes. Throws InputError naming the file for any damage.
ModelFile read_envelope(const std::string& path, const char* magic, const char* what, std::uint32_t newest,
                        const std::function<void(Payload&, ModelFile&, std::uint32_t)>& rest);
// The same for a model file or a checkpoint, whichever the file is (read once); `rest` also
// gets whether it is a checkpoint. Both need a regular file (InputError for a pipe or device).
ModelFile read_model_or_checkpoint(const std::string& path,
                                   const std::function<void(Payload&, ModelFile&, std::uint32_t, bool)>& rest);

// The model part and the parameters of a payload.
void save_model_part(boost::archive::binary_oarchive& ar, const ModelFile& m, const nn::ParameterSet& params);
// Reads the parameters into `params` when given (names and shapes checked), else skips them.
void load_params(Payload& in, nn::ParameterSet* params);

// Checkpoints (version 4+): the weight averages, one per parameter in order, or none.
void save_averages(boost::archive::binary_oarchive& ar, const std::vector<Tensor*>& averages);
// Reads them into `into` (InputError naming the file when the file has another number or size
// of averages than `into`, e.g. after train.ema_decay was switched on or off).
void load_averages(Payload& in, const std::vector<Tensor*>& into);
// Reads them, if the file has any, into params' values (params null: skips them): a
// checkpoint's model is its average when its run kept one.
void load_averages_as_params(Payload& in, nn::ParameterSet* params);

}  // namespace gloss::model
