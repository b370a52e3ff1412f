#include "gloss/model/summary.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "gloss/util/error.h"

namespace gloss::model {

namespace {

std::string shape(const std::string& time, std::int64_t features) {
  return "(batch, " + (time.empty() ? std::string() : time + ", ") + std::to_string(features) + ")";
}

std::int64_t gates(const ModelConfig& c) { return c.cell == nn::CellType::kGru ? 3 : 4; }
const char* cell_name(const ModelConfig& c) { return c.cell == nn::CellType::kGru ? "GRU" : "LSTM"; }

// The layers a configuration has, in forward order, with their shapes and FLOPs (params 0).
std::vector<LayerSummary> layers_of(const ModelConfig& c) {
  const std::int64_t E = c.emb_dim, H = c.enc_hidden, D = c.dec_hidden, A = c.att_dim, K = annotation_width(c);
  const std::int64_t R = c.readout_dim, G = gates(c), V = c.tgt_vocab;
  std::vector<LayerSummary> out;
  auto add = [&](std::string name, std::string kind, std::string output, double src, double tgt, double sent) {
    out.push_back({std::move(name), std::move(kind), std::move(output), 0, src, tgt, sent});
  };
  add("encoder/embedding", "Embedding", shape("src_len", E), 0, 0, 0);
  std::int64_t in = E;
  for (int l = 0; l < c.enc_layers; ++l) {
    const bool bi = bidirectional_layer(c, l);
    const std::string name = "encoder/layer" + std::to_string(l);
    const double f = 2.0 * static_cast<double>(G * H * (in + H));
    add(name + "/l2r", cell_name(c), shape("src_len", H), f, 0, 0);
    if (bi) add(name + "/r2l", std::string(cell_name(c)) + " (reversed)", shape("src_len", H), f, 0, 0);
    in = bi ? 2 * H : H;
  }
  if (c.layer_norm) add("encoder/annotations", "LayerNorm", shape("src_len", K), 0, 0, 0);
  if (c.dec_init != "zero") {
    const std::int64_t init_in = c.dec_init == "mean" ? K : H;
    add("decoder/init", "Dense (tanh)", shape("", D), 0, 0, 2.0 * static_cast<double>(init_in * D));
  }
  add("decoder/embedding", "Embedding", shape("tgt_len", E), 0, 0, 0);
  add("decoder/attention", "Attention (additive)", shape("tgt_len", K), 2.0 * static_cast<double>(K * A),
      2.0 * static_cast<double>(D * A), 0);
  if (c.layer_norm) add("decoder/input", "LayerNorm", shape("tgt_len", E + K), 0, 0, 0);
  if (c.decoder == "conditional") {
    add("decoder/rnn", cell_name(c), shape("tgt_len", D), 0, 2.0 * static_cast<double>(G * D * (E + D)), 0);
    add("decoder/rnn_context", cell_name(c), shape("tgt_len", D), 0, 2.0 * static_cast<double>(G * D * (K + D)), 0);
  } else {
    for (int l = 0; l < c.dec_layers; ++l) {
      const std::int64_t cin = l == 0 ? E + K : D;
      add(l == 0 ? "decoder/rnn" : "decoder/rnn" + std::to_string(l), cell_name(c), shape("tgt_len", D), 0,
          2.0 * static_cast<double>(G * D * (cin + D)), 0);
    }
  }
  const std::int64_t pre = c.readout == "maxout" ? 2 * R : R;
  add("decoder/readout", c.readout == "maxout" ? "Dense + maxout(2)" : "Dense (tanh)", shape("tgt_len", R), 0,
      2.0 * static_cast<double>((D + K + E) * pre), 0);
  add("decoder/output", c.tie_target_embeddings ? "Dense (tied to decoder/embedding) + softmax" : "Dense + softmax",
      shape("tgt_len", V), 0, 2.0 * static_cast<double>(R * V), 0);
  return out;
}

// The layer a parameter belongs to: its name without the last component.
std::string layer_of(const std::string& param) {
  const auto slash = param.rfind('/');
  return slash == std::string::npos ? param : param.substr(0, slash);
}

}  // namespace

double ModelSummary::forward_per_target_token(const Lengths& l) const {
  double f = 0;
  for (const auto& layer : layers)
    f += layer.flops_tgt + l.src_per_tgt * layer.flops_src + layer.flops_sentence / std::max(1.0, l.tgt_len);
  return f;
}

ModelSummary summarize(const ModelConfig& config, const nn::ParameterSet& params) {
  ModelSummary s;
  s.layers = layers_of(config);
  std::map<std::string, LayerSummary*> by_name;
  for (auto& layer : s.layers) by_name[layer.name] = &layer;
  for (const auto& p : params.all()) {
    const auto it = by_name.find(layer_of(p->name));
    if (it == by_name.end())
      throw ConfigError("parameter " + p->name + " belongs to no layer of the model's configuration");
    it->second->params += p->value.size();
    s.total_params += p->value.size();
  }
  return s;
}

TrainingMemory training_memory(const ModelConfig& c, std::int64_t params, const TrainingShape& t) {
  const std::int64_t E = c.emb_dim, H = c.enc_hidden, D = c.dec_hidden, A = c.att_dim, K = annotation_width(c);
  const std::int64_t R = c.readout_dim, V = c.tgt_vocab, L = c.dec_layers, lstm = c.cell == nn::CellType::kLstm;
  TrainingMemory m;
  const std::int64_t workers = std::max(1, t.workers), replicas = std::max<std::int64_t>(workers, t.replicas);
  m.weights = 4 * params;
  m.gradients = 4 * params * replicas;
  m.optimizer = 4 * params * ((t.adam ? 2 : 0) + (t.ema ? 1 : 0));
  // Floats kept per target position: logits (their gradient in place), readout before and
  // after maxout, dropout mask and gradient, contexts and their gradient, decoder inputs,
  // embeddings (and mask and gradient), states (and cells) of every layer, the attention's
  // query projection, weights and gradient, and each decoder cell's gates, which backward
  // overwrites with their gradients (nn::RnnSteps: GRU 4 x D, LSTM 5 x D).
  const std::int64_t cells = c.decoder == "conditional" ? 2 : L;
  const double per_tgt = static_cast<double>(V + (c.readout == "maxout" ? 2 * R : R) + 3 * R + 3 * K + (E + K) + 3 * E +
                                             L * D * (1 + lstm) * 2 + (c.decoder == "conditional" ? 2 * D : 0) + 2 * A +
                                             cells * D * (lstm ? 5 : 4)) +
                         t.src_len;
  // Per source position: each encoder layer's input (and reversed), outputs and their
  // gradients, each direction's gates (nn::RnnSteps: GRU 4 x H, LSTM 5 x H and the cell
  // state), the annotations, their key projection and its gradient.
  std::int64_t directions = 0;
  for (int l = 0; l < c.enc_layers; ++l) directions += bidirectional_layer(c, l) ? 2 : 1;
  const double per_src =
      static_cast<double>(c.enc_layers * (2 * E + 6 * H) + directions * H * (lstm ? 6 : 4) + 2 * K + 2 * A + 1);
  const double sentences_per_part =
      std::clamp(std::floor(static_cast<double>(t.split_positions) / std::max(1.0, t.tgt_len)), 1.0,
                 std::ceil(static_cast<double>(t.batch_size) / static_cast<double>(replicas)));
  m.activations = static_cast<std::int64_t>(4.0 * static_cast<double>(workers) * sentences_per_part *
                                            (t.tgt_len * per_tgt + t.src_len * per_src));
  return m;
}

}  // namespace gloss::model
