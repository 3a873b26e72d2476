// Recurrent language model: the module of recurrent_lm.h. forward() and forward_cached() share
// run() and logits(), so decoding token by token reproduces the full-sequence logits.
#include "recurrent_lm.h"

#include <cmath>
#include <sstream>
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include "lmrun/error.h"
#include "rnn_kernel.h"

namespace lmrun::models {
namespace {

std::string shape(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

}  // namespace

// ---- head ---------------------------------------------------------------------------------------

HeadImpl::HeadImpl(std::int64_t in_features, std::int64_t vocab_size, bool own_weight) {
  at::NoGradGuard no_grad;
  if (own_weight) {
    // torch.nn.Linear's default range; the bias starts at zero, so initial logits are near uniform.
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    weight_ = register_parameter("weight", at::empty({vocab_size, in_features}));
    torch::nn::init::uniform_(weight_, -bound, bound);
  }
  bias_ = register_parameter("bias", at::zeros({vocab_size}));
}

at::Tensor HeadImpl::forward(const at::Tensor& x, const at::Tensor& tied_weight) {
  return at::linear(x, weight_.defined() ? weight_ : tied_weight, bias_);
}

// ---- model --------------------------------------------------------------------------------------

RecurrentLmImpl::RecurrentLmImpl(RecurrentLmConfig config) : config_(std::move(config)) {
  const RecurrentLmConfig& c = config_;
  // LibTorch's initialisation: normal(0, 1) embeddings, the scale of char-rnn's one-hot inputs (a
  // 0.1-scale embedding trains several times slower here), and uniform(+-1/sqrt(H)) recurrent
  // weights.
  wte_ = register_module("wte", torch::nn::Embedding(c.vocab_size, c.n_embd));
  // Dropout between layers only exists with two or more (LibTorch warns otherwise).
  const double between = c.n_layer > 1 ? c.dropout : 0.0;
  if (c.cell == CellKind::kLstm) {
    lstm_ = register_module("rnn", torch::nn::LSTM(torch::nn::LSTMOptions(c.n_embd, c.n_hidden)
                                                       .num_layers(c.n_layer)
                                                       .dropout(between)
                                                       .batch_first(true)));
  } else {
    gru_ = register_module("rnn", torch::nn::GRU(torch::nn::GRUOptions(c.n_embd, c.n_hidden)
                                                     .num_layers(c.n_layer)
                                                     .dropout(between)
                                                     .batch_first(true)));
  }
  lm_head_ = register_module("lm_head", Head(c.n_hidden, c.vocab_size, !c.tie_weights));
}

const char* RecurrentLmImpl::name() const {
  return config_.cell == CellKind::kLstm ? "lstm" : "gru";
}

void RecurrentLmImpl::check_tokens(const at::Tensor& idx, const char* what) const {
  if (idx.dim() != 2 || idx.size(0) < 1 || idx.size(1) < 1) {
    throw Error(std::string(name()) + ": " + what +
                " must be (batch, time) token ids, got a tensor of shape " + shape(idx));
  }
  if (idx.scalar_type() != at::kLong) {
    throw Error(std::string(name()) + ": " + what + " must be int64 token ids, got " +
                std::string(c10::toString(idx.scalar_type())));
  }
}

at::Tensor RecurrentLmImpl::run(const at::Tensor& idx, at::Tensor& h, at::Tensor& c) {
  at::Tensor x = wte_->forward(idx);  // (B, T, E)
  if (lstm_) {
    c10::optional<std::tuple<at::Tensor, at::Tensor>> hx;
    if (h.defined()) hx = std::make_tuple(h, c);
    auto result = lstm_->forward(x, hx);
    std::tie(h, c) = std::get<1>(result);
    return std::get<0>(result);  // (B, T, H)
  }
  auto result = gru_->forward(x, h);  // undefined h: zeros
  h = std::get<1>(result);
  return std::get<0>(result);  // (B, T, H)
}

at::Tensor RecurrentLmImpl::logits(const at::Tensor& out) {
  at::Tensor x =
      config_.dropout > 0.0 && is_training() ? at::dropout(out, config_.dropout, true) : out;
  return lm_head_->forward(x, wte_->weight);
}

at::Tensor RecurrentLmImpl::forward(const at::Tensor& idx, std::vector<Activation>* record) {
  check_tokens(idx, "inputs");
  at::Tensor h, c;                                       // zero initial state
  if (record == nullptr) return logits(run(idx, h, c));  // (B, T, V)
  record->push_back({"embeddings", wte_->forward(idx), true});
  record->push_back({"rnn", run(idx, h, c), true});
  return logits(record->back().value);
}

bool RecurrentState::select_rows(const at::Tensor& rows) {
  if (h.defined()) {
    const at::Tensor index = rows.to(h.device(), at::kLong);
    h = h.index_select(1, index);
    if (c.defined()) c = c.index_select(1, index);
  }
  batch_size = rows.size(0);
  return true;
}

RecurrentState RecurrentLmImpl::make_state(std::int64_t batch_size) const {
  if (batch_size < 1) {
    throw Error(std::string(name()) + ": decoding needs a batch size >= 1, got " +
                std::to_string(batch_size));
  }
  RecurrentState state;
  state.batch_size = batch_size;
  return state;
}

at::Tensor RecurrentLmImpl::forward_cached(const at::Tensor& idx, RecurrentState& state) {
  check_tokens(idx, "tokens");
  if (idx.size(0) != state.batch_size) {
    throw Error(std::string(name()) + ": the decoding state holds a batch of " +
                std::to_string(state.batch_size) + ", but the tokens are " + shape(idx));
  }
  at::NoGradGuard no_grad;
  if (idx.size(0) == 1 && idx.size(1) == 1 && fast_decode_ &&
      !(is_training() && config_.dropout > 0)) {
    at::Tensor logits = decode_one(idx.item<std::int64_t>(), state);
    if (logits.defined()) return logits;
  }
  at::Tensor out = run(idx, state.h, state.c);  // (B, t, H)
  state.filled += idx.size(1);
  return logits(out.select(1, idx.size(1) - 1));  // (B, V)
}

at::Tensor RecurrentLmImpl::decode_one(std::int64_t token, RecurrentState& state) {
  const RecurrentLmConfig& c = config_;
  bool usable = true;
  // A contiguous fp32 CPU tensor's data, or null (usable = false) for anything else.
  auto data = [&usable](const at::Tensor& t) -> float* {
    if (!t.defined() || !t.device().is_cpu() || t.scalar_type() != at::kFloat ||
        !t.is_contiguous()) {
      usable = false;
      return nullptr;
    }
    return t.data_ptr<float>();
  };
  torch::nn::Module& rnn = lstm_ ? static_cast<torch::nn::Module&>(*lstm_) : *gru_;
  const auto parameters = rnn.named_parameters(/*recurse=*/false);
  auto parameter = [&](const std::string& name) -> const float* {
    const at::Tensor* t = parameters.find(name);
    return t == nullptr ? (usable = false, nullptr) : data(*t);
  };
  RnnWeights w;
  w.lstm = c.cell == CellKind::kLstm;
  w.vocab_size = c.vocab_size;
  w.n_embd = c.n_embd;
  w.n_hidden = c.n_hidden;
  w.embedding = data(wte_->weight);
  for (std::int64_t l = 0; l < c.n_layer; ++l) {
    const std::string k = std::to_string(l);
    w.layers.push_back({parameter("weight_ih_l" + k), parameter("weight_hh_l" + k),
                        parameter("bias_ih_l" + k), parameter("bias_hh_l" + k)});
  }
  w.head_weight = data(c.tie_weights ? wte_->weight : lm_head_->weight_);
  w.head_bias = data(lm_head_->bias_);
  if (!usable) return {};
  if (token < 0 || token >= c.vocab_size) {
    throw Error(std::string(name()) + ": token id " + std::to_string(token) +
                " is outside the vocabulary of " + std::to_string(c.vocab_size));
  }
  const auto options = wte_->weight.options();
  // A fresh state is zeros; a state the op path made is advanced in place when it has our layout.
  if (!state.h.defined()) state.h = at::zeros({c.n_layer, 1, c.n_hidden}, options);
  if (w.lstm && !state.c.defined()) state.c = at::zeros({c.n_layer, 1, c.n_hidden}, options);
  float* h = data(state.h);
  float* cell = w.lstm ? data(state.c) : nullptr;
  if (!usable) return {};
  std::vector<float> scratch(static_cast<std::size_t>(rnn_scratch_size(w)));
  at::Tensor logits = at::empty({1, c.vocab_size}, options);  // (1, V)
  rnn_step(w, token, h, cell, scratch.data(), logits.data_ptr<float>());
  state.filled += 1;
  return logits;
}

std::int64_t RecurrentLmImpl::num_parameters() const {
  std::int64_t n = 0;
  for (const at::Tensor& p : parameters()) n += p.numel();
  return n;
}

std::vector<std::string> RecurrentLmImpl::describe() const {
  const RecurrentLmConfig& c = config_;
  auto str = [](std::int64_t v) { return std::to_string(v); };
  std::ostringstream dropout;
  dropout << c.dropout;
  return {
      std::string(name()) + ": recurrent LM, " + str(c.n_layer) + " layers, vocab " +
          str(c.vocab_size),
      "  embed:  wte (" + str(c.vocab_size) + ", " + str(c.n_embd) + ")",
      std::string("  rnn:    ") + (c.cell == CellKind::kLstm ? "LSTM" : "GRU") + " " +
          str(c.n_embd) + "->" + str(c.n_hidden) + " x" + str(c.n_layer) + ", dropout " +
          dropout.str() + " between layers and before the head",
      "  head:   lm_head (" + str(c.n_hidden) + "->" + str(c.vocab_size) + ")" +
          (c.tie_weights ? " tied to wte" : " untied"),
      "  parameters: " + str(num_parameters()) + " total",
  };
}

}  // namespace lmrun::models
