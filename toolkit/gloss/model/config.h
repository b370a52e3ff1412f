#pragma once
// The model's configuration: the recipe's [model] keys (registered by recipe/recipe.cc
// straight into this struct) and the vocabulary sizes, which training takes from the subword
// models. Stored in every model file (model/file_format.h).
#include <cstdint>
#include <string>

#include "gloss/nn/rnn.h"

namespace gloss::model {

// Largest sizes a configuration may have (recipe keys and stored model files alike): far above
// any model Gloss trains, small enough that a forged size cannot ask for unbounded memory.
inline constexpr std::int64_t kMaxVocab = 1 << 21;  // subwords per vocabulary
inline constexpr std::int64_t kMaxDim = 1 << 14;    // embedding, state, attention and readout sizes
inline constexpr int kMaxLayers = 16;

struct ModelConfig {
  std::int64_t src_vocab = 8000, tgt_vocab = 8000;  // set from the subword models, not recipe keys
  nn::CellType cell = nn::CellType::kGru;
  std::int64_t emb_dim = 256;
  std::int64_t enc_hidden = 256;  // per direction
  int enc_layers = 1;
  std::string bidirectional = "first";  // first, all, none
  std::int64_t dec_hidden = 512;
  int dec_layers = 1;
  // bahdanau: one RNN reads [E y_{i-1} ; c_i] after attending with s_{i-1}. conditional (Sennrich
  // et al. 2017, Nematus' and LIUM-CVC's cGRU): a first RNN reads E y_{i-1}, attention queries its
  // state, a second RNN reads c_i (one decoder layer, GRU cells, no layer_norm).
  std::string decoder = "bahdanau";
  std::int64_t att_dim = 512;
  std::string readout = "maxout";  // maxout (pool 2) or tanh
  std::int64_t readout_dim = 256;
  std::string dec_init = "last_backward";  // last_backward, mean, zero
  bool tie_target_embeddings = false;      // W_o = E_tgt^T (needs readout_dim == emb_dim)
  bool layer_norm = false;                 // layer-normalised annotations (attention keys) and decoder RNN inputs
  float dropout_emb = 0.2f, dropout_rnn = 0.2f, dropout_readout = 0.2f;
  // Training only (not stored in model files):
  float dropout_ctx = 0;   // dropout on the annotations (the attention's keys and the init input)
  float word_dropout = 0;  // each source word and decoder input word becomes <unk> with this probability
};
void validate(const ModelConfig& config);  // throws ConfigError naming the key

// The first [model] key whose value gives `stored` parameters of other shapes than `wanted`,
// as "model.emb_dim is 32 there and 64 here" ("" when every parameter has the same shape;
// dropouts, which change no shape, are not compared). Vocabulary sizes read "vocabulary".
std::string shape_difference(const ModelConfig& stored, const ModelConfig& wanted);

// Whether encoder layer l (0-based) runs both directions (model.bidirectional).
bool bidirectional_layer(const ModelConfig& config, int l);
// The width of the annotations (the attention's keys): both directions of the top layer, or one.
std::int64_t annotation_width(const ModelConfig& config);

// A lower bound on the parameters (floats) of a model of this configuration (its tables and
// weight matrices, counted for the smallest variant). A model file must hold 4 bytes for each:
// loaders check it before building the model a stored configuration describes.
std::int64_t min_parameter_count(const ModelConfig& config);

}  // namespace gloss::model
