#include "gloss/text/subword.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <regex>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/hash.h"
#include "gloss/util/line_reader.h"

namespace sentencepiece::logging {
void SetMinLogLevel(int v);  // exported by libsentencepiece 0.1.97, not declared in its headers
}

namespace fs = std::filesystem;

namespace gloss::text {
namespace {

// Bumped whenever the way Gloss trains models changes, so cached models are retrained.
constexpr const char* kTrainingFormat = "gloss-spm-1";

// Feeds SentencePiece the lines of one or more files (plain or .gz), skipping empty lines.
class CorpusIterator : public sentencepiece::SentenceIterator {
 public:
  explicit CorpusIterator(std::vector<std::string> files) : files_(std::move(files)) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    while (true) {
      if (!reader_) {
        if (next_file_ == files_.size()) {
          done_ = true;
          return;
        }
        reader_ = std::make_unique<LineReader>(files_[next_file_++]);
      }
      if (reader_->next(line_)) {
        ++count_;
        if (!line_.empty()) {
          ++sentences_;
          return;
        }
        continue;
      }
      reader_.reset();
    }
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }
  std::size_t count() const { return count_; }          // lines read
  std::size_t sentences() const { return sentences_; }  // non-empty lines among them

 private:
  std::vector<std::string> files_;
  std::size_t next_file_ = 0;
  std::unique_ptr<LineReader> reader_;
  std::string line_;
  bool done_ = false;
  std::size_t count_ = 0, sentences_ = 0;
};

std::string trainer_args(const SubwordOptions& o, int vocab_size) {
  std::string args = "--model_type=" + o.model_type + " --vocab_size=" + std::to_string(vocab_size) +
                     " --character_coverage=" + std::to_string(o.character_coverage) +
                     " --input_sentence_size=" + std::to_string(o.input_sentence_size) +
                     " --shuffle_input_sentence=true" + " --byte_fallback=" + (o.byte_fallback ? "true" : "false") +
                     " --normalization_rule_name=" + o.normalization +
                     " --pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3 --num_threads=" + std::to_string(o.threads);
  if (o.model_type == "unigram") args += " --hard_vocab_limit=false";
  return args;
}

std::string train_one(const std::vector<std::string>& files, const SubwordOptions& o, const std::string& out_path,
                      const std::string& label, std::ostream& log) {
  const auto start = std::chrono::steady_clock::now();
  int vocab_size = o.vocab_size;
  sentencepiece::logging::SetMinLogLevel(2);  // SentencePiece's own INFO/WARNING lines are noise here
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(o.seed));
  std::string model;
  std::size_t lines = 0;
  for (int attempt = 0;; ++attempt) {
    CorpusIterator it(files);
    log << "spm: training " << label << " " << o.model_type << " model, vocabulary " << vocab_size << " ..."
        << std::endl;
    const auto status = sentencepiece::SentencePieceTrainer::Train(trainer_args(o, vocab_size), &it, &model);
    lines = it.count();
    if (status.ok()) break;
    if (it.sentences() == 0) {  // SentencePiece's own words: "[!sentences_.empty()]"
      std::string names = files.front();
      for (std::size_t i = 1; i < files.size(); ++i) names += " and " + files[i];
      throw InputError(
          names, 0,
          "no text to train the " + label + " subword model on; give training files with one sentence per line");
    }
    // SentencePiece refuses a vocabulary larger than the corpus supports and names the limit.
    static const std::regex kTooHigh(R"(Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+))");
    std::smatch m;
    const std::string message = status.ToString();
    if (attempt == 0 && std::regex_search(message, m, kTooHigh)) {
      vocab_size = std::stoi(m[2]);
      continue;
    }
    throw UserError("SentencePiece training of the " + label + " model failed: " + message +
                    " (check [subword] options and the training files)");
  }
#if defined(__GLIBC__)
  // The trainer's sample and tables are freed, but glibc keeps such heap for reuse: give it back,
  // or on a large corpus training would start a few hundred MB higher than it needs.
  ::malloc_trim(0);
#endif
  auto sp = SubwordModel::from_bytes(model, out_path);
  if (sp.vocab_size() < o.vocab_size)
    log << "spm: warning: subword.vocab_size " << o.vocab_size << " is too large for this corpus; the " << label
        << " model has " << sp.vocab_size() << " pieces" << std::endl;
  atomic_write_file(out_path, model);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto sample = static_cast<std::size_t>(o.input_sentence_size);
  log << "spm: " << label << " model: " << sp.vocab_size() << " pieces from " << lines << " lines"
      << (sample > 0 && lines > sample ? " (a sample of " + std::to_string(sample) + ", subword.input_sentence_size)"
                                       : "")
      << " in " << fixed(secs, 1) << " s -> " << out_path << std::endl;
  return out_path;
}

}  // namespace

SubwordModel SubwordModel::from_bytes(const std::string& bytes, const std::string& name) {
  SubwordModel m;
  m.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  m.bytes_ = bytes;
  m.name_ = name;
  const auto status = m.sp_->LoadFromSerializedProto(bytes);
  if (!status.ok()) throw InputError(name, 0, "not a SentencePiece model: " + status.ToString());
  if (m.sp_->pad_id() != kPadId || m.sp_->unk_id() != kUnkId || m.sp_->bos_id() != kBosId || m.sp_->eos_id() != kEosId)
    throw InputError(name, 0,
                     "SentencePiece model with special ids pad/unk/bos/eos = " + std::to_string(m.sp_->pad_id()) + "/" +
                         std::to_string(m.sp_->unk_id()) + "/" + std::to_string(m.sp_->bos_id()) + "/" +
                         std::to_string(m.sp_->eos_id()) + "; Gloss needs 0/1/2/3 (train it with gloss spm train)");
  return m;
}

SubwordModel SubwordModel::load(const std::string& path) { return from_bytes(read_file(path), path); }

std::vector<int> SubwordModel::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw UserError(name_ + ": encoding failed: " + status.ToString());
  return ids;
}

std::vector<std::string> SubwordModel::encode_pieces(std::string_view text) const {
  std::vector<std::string> pieces;
  const auto status = sp_->Encode(text, &pieces);
  if (!status.ok()) throw UserError(name_ + ": encoding failed: " + status.ToString());
  return pieces;
}

std::vector<std::vector<int>> SubwordModel::encode_nbest(std::string_view text, int n) const {
  std::vector<std::vector<int>> nbest;
  const auto status = sp_->NBestEncode(text, n, &nbest);
  if (!status.ok()) throw UserError(name_ + ": n-best encoding failed: " + status.ToString());
  if (nbest.empty()) nbest.push_back(encode(text));
  return nbest;
}

float SubwordModel::score(int id) const { return sp_->GetScore(id); }

std::string SubwordModel::decode(const std::vector<int>& ids) const {
  std::string text;
  const auto status = sp_->Decode(ids, &text);
  if (!status.ok()) throw UserError(name_ + ": decoding failed: " + status.ToString());
  return text;
}

std::string SubwordModel::decode_pieces(const std::vector<std::string>& pieces) const {
  std::string text;
  const auto status = sp_->Decode(pieces, &text);
  if (!status.ok()) throw UserError(name_ + ": decoding failed: " + status.ToString());
  return text;
}

std::string SubwordModel::piece(int id) const { return sp_->IdToPiece(id); }

int SubwordModel::vocab_size() const { return sp_->GetPieceSize(); }

std::string subword_fingerprint(const std::vector<std::string>& files, const SubwordOptions& o,
                                const std::string& side) {
  std::uint64_t h = kFnvOffset;
  h = fnv1a(h, kTrainingFormat);
  h = fnv1a(h, side);
  h = fnv1a(h, trainer_args(o, o.vocab_size) + " seed=" + std::to_string(o.seed));
  for (const auto& f : files) {
    h = fnv1a(h, "\n--file--\n");
    h = fnv1a(h, read_file(f));
  }
  return hex16(h);
}

SubwordModelPaths prepare_subword_models(const DataOptions& data, const SubwordOptions& o, const std::string& dir,
                                         std::ostream& log) {
  fs::create_directories(dir);
  auto prepare = [&](const std::vector<std::string>& files, const std::string& side, const std::string& label) {
    const std::string fp = subword_fingerprint(files, o, side);
    const std::string path = (fs::path(dir) / (side + "-" + fp + ".model")).string();
    if (fs::exists(path)) {
      SubwordModel::load(path);  // a corrupt cached file is an error, not a silent reuse
      log << "spm: reusing " << label << " model " << path << " (same corpus and options)" << std::endl;
      return path;
    }
    return train_one(files, o, path, label, log);
  };
  SubwordModelPaths paths;
  if (o.joint) {
    paths.src = paths.tgt = prepare({data.train_src, data.train_tgt}, data.src_lang + "-" + data.tgt_lang,
                                    "joint " + data.src_lang + "+" + data.tgt_lang);
  } else {
    paths.src = prepare({data.train_src}, data.src_lang, "source (" + data.src_lang + ")");
    paths.tgt = prepare({data.train_tgt}, data.tgt_lang, "target (" + data.tgt_lang + ")");
  }
  return paths;
}

}  // namespace gloss::text
