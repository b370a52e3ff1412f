#pragma once
// Options of the data pipeline and of SentencePiece; recipes fill them ([data], [subword]).
#include <string>

namespace gloss::text {

struct DataOptions {
  std::string train_src, train_tgt;  // parallel training corpus (plain or .gz), required
  std::string valid_src, valid_tgt;  // validation set
  std::string test_src, test_tgt;    // test set (translated and scored by `gloss run`)
  std::string src_lang = "src", tgt_lang = "tgt";
  int max_src_len = 100;       // drop pairs with more source subwords
  int max_tgt_len = 100;       // drop pairs with more target subwords
  double max_len_ratio = 3.0;  // drop pairs whose subword length ratio exceeds this (0: off)
  // Folder of the encoded training corpus's unnamed files ("": $TMPDIR, else /tmp).
  std::string tempdir;
};

struct SubwordOptions {
  std::string model_type = "unigram";  // unigram or bpe
  int vocab_size = 8000;               // per model; lowered with a warning if the corpus is too small
  bool joint = false;                  // one model for both languages
  double character_coverage = 1.0;     // share of characters covered by the vocabulary
  // Sentences SentencePiece trains on, a uniform sample when the corpus has more (0: all).
  // Training costs about 2 KB of memory per sampled sentence of Multi30k's length, so this
  // bound (~600 MB) is what keeps `gloss data`'s peak flat as corpora grow.
  int input_sentence_size = 300000;
  bool byte_fallback = true;               // unseen characters become byte pieces, never <unk>
  std::string normalization = "nmt_nfkc";  // SentencePiece normalisation rule
  int seed = 1;
  int threads = 2;
  // Subword regularisation (Kudo, 2018): each epoch, every training sentence is segmented by a
  // draw from its sample_nbest best segmentations, with probability proportional to
  // P(segmentation)^sample_alpha. 1: off (always the best one). Unigram models only. Training
  // only: not part of the models' fingerprint.
  int sample_nbest = 1;
  double sample_alpha = 0.1;
};

// Whether the normalisation lowercases (the *_cf rules): such models write lowercase only, so
// validation and a run's test scores compare case-insensitively (sacreBLEU's -lc).
inline bool folds_case(const SubwordOptions& o) { return o.normalization.ends_with("_cf"); }

}  // namespace gloss::text
