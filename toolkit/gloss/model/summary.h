#pragma once
// A model's layers the way Keras' model.summary() lists them: each layer's output shape as
// (batch, time_steps, features), its parameters, and the work it does, counted as
// bench train and the FLOP counter count it (2 FLOP per multiply-add of every GEMM and RNN
// primitive; element-wise work, softmax and layer normalisation are not counted).
//
// FLOPs depend on sentence lengths: per layer they are kept per source token, per target
// token and per sentence, and per_target_token() combines them for given lengths. Training
// does forward and backward (3x the forward GEMMs: the backward pass computes the gradients of
// the inputs and of the weights); translation does the forward pass per hypothesis.
#include <cstdint>
#include <string>
#include <vector>

#include "gloss/model/config.h"
#include "gloss/nn/parameter.h"

namespace gloss::model {

struct LayerSummary {
  std::string name;    // parameter prefix, e.g. "encoder/layer0/l2r"
  std::string kind;    // "Embedding", "GRU", "Attention", ...
  std::string output;  // e.g. "(batch, src_len, 256)"
  std::int64_t params = 0;
  // Forward FLOPs of one sentence: flops_src per source token + flops_tgt per target token +
  // flops_sentence.
  double flops_src = 0, flops_tgt = 0, flops_sentence = 0;
};

struct Lengths {
  double src_per_tgt = 1.0;  // source tokens per target token
  double tgt_len = 20.0;     // target tokens per sentence (with EOS)
};

struct ModelSummary {
  std::vector<LayerSummary> layers;  // in the order of the forward pass
  std::int64_t total_params = 0;
  // Forward FLOPs per target token for these lengths (summed over layers).
  double forward_per_target_token(const Lengths& lengths) const;
};

// The summary of a model of `config` whose parameters are `params` (the ones its Seq2Seq
// registered, e.g. loaded from a model file: the counts are theirs). Throws ConfigError if a
// parameter belongs to no layer the configuration describes.
ModelSummary summarize(const ModelConfig& config, const nn::ParameterSet& params);

// Training memory of one process, estimated from the configuration (bytes): what each part
// needs at its largest.
struct TrainingMemory {
  std::int64_t weights = 0;      // parameter values (fp32)
  std::int64_t gradients = 0;    // one set per data-parallel worker
  std::int64_t optimizer = 0;    // Adam's two moments (SGD: none), EMA's copy
  std::int64_t activations = 0;  // the kept activations and their gradients, per worker, of a batch part
  std::int64_t total() const { return weights + gradients + optimizer + activations; }
};
struct TrainingShape {
  int batch_size = 64;  // sentences per batch
  double src_len = 20, tgt_len = 20;
  int split_positions = 1024;  // target positions per batch part
  int workers = 1;             // data-parallel workers (each has its own gradients and activations)
  int replicas = 0;            // train.replicas (0: one per worker); a worker keeps each replica's gradients
  bool adam = true;
  bool ema = false;
};
TrainingMemory training_memory(const ModelConfig& config, std::int64_t params, const TrainingShape& shape);

}  // namespace gloss::model
