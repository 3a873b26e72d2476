// Model `rnn_classifier`: token embedding -> LSTM or GRU (layers, bidirectional, dropout between
// layers) run over packed sequences, so padding never reaches a real position in either
// direction -> pooling over the real positions (`last`: the final hidden state of each
// direction; `mean`; `max`; `attention`: additive attention whose weights, zero on padding, stay
// readable for inspection) -> dropout -> an optional hidden layer (ReLU) -> class logits (B, C).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>
#include <torch/nn/utils/rnn.h>

#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/torch_model.h"
#include "lmrun/util/word_vectors.h"
#include "onnx_export.h"

namespace lmrun::models {
namespace {

namespace rnn_utils = torch::nn::utils::rnn;

struct Options {
  std::string cell = "lstm";
  std::int64_t n_embd = 128;
  std::int64_t n_hidden = 128;
  std::int64_t n_layer = 1;
  bool bidirectional = true;
  double dropout = 0.0;
  std::string pooling = "last";
  std::int64_t head_hidden = 0;  // 0: a linear head
  std::string embeddings;        // a word-vector file (GloVe text) to initialise wte from
  bool freeze_embeddings = false;
};

struct ClassifierImpl : torch::nn::Module {
  ClassifierImpl(const Options& o, const ModelContext& c) : o_(o) {
    const std::int64_t dirs = o.bidirectional ? 2 : 1;
    const double between = o.n_layer > 1 ? o.dropout : 0.0;
    wte = register_module("wte", torch::nn::Embedding(c.vocab_size, o.n_embd));
    if (o.cell == "lstm") {
      lstm = register_module("rnn", torch::nn::LSTM(torch::nn::LSTMOptions(o.n_embd, o.n_hidden)
                                                        .num_layers(o.n_layer)
                                                        .bidirectional(o.bidirectional)
                                                        .dropout(between)
                                                        .batch_first(true)));
    } else {
      gru = register_module("rnn", torch::nn::GRU(torch::nn::GRUOptions(o.n_embd, o.n_hidden)
                                                      .num_layers(o.n_layer)
                                                      .bidirectional(o.bidirectional)
                                                      .dropout(between)
                                                      .batch_first(true)));
    }
    const std::int64_t width = dirs * o.n_hidden;
    if (o.pooling == "attention") {
      attn_proj = register_module("attn_proj", torch::nn::Linear(width, width));
      attn_score = register_module(
          "attn_score", torch::nn::Linear(torch::nn::LinearOptions(width, 1).bias(false)));
    }
    std::int64_t head_in = width;
    if (o.head_hidden > 0) {
      hidden = register_module("hidden", torch::nn::Linear(width, o.head_hidden));
      head_in = o.head_hidden;
    }
    head = register_module("head", torch::nn::Linear(head_in, c.num_classes));
    drop = register_module("drop", torch::nn::Dropout(o.dropout));
  }

  // `record`, when given, receives each stage's output (Model::activations).
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask,
                     std::vector<Activation>* record = nullptr) {
    const std::int64_t b = inputs.size(0), t = inputs.size(1);
    const at::Tensor real =
        mask.defined() ? mask : at::ones({b, t}, inputs.options().dtype(at::kBool));
    const at::Tensor lengths = real.sum(1).clamp_min(1).to(at::kCPU, at::kLong);
    const at::Tensor x = drop->forward(wte->forward(inputs));  // (B, T, E)
    if (record) record->push_back({"embeddings", x, true});
    const auto packed = rnn_utils::pack_padded_sequence(x, lengths, /*batch_first=*/true,
                                                        /*enforce_sorted=*/false);
    // The packed output and the last layer's final states, (layers * dirs, B, H).
    auto [out_packed, h_n] = [&]() -> std::tuple<rnn_utils::PackedSequence, at::Tensor> {
      if (lstm) {
        auto [output, state] = lstm->forward_with_packed_input(packed);
        return {output, std::get<0>(state)};
      }
      return gru->forward_with_packed_input(packed);
    }();
    if (record) {
      record->push_back(
          {"rnn",
           std::get<0>(rnn_utils::pad_packed_sequence(out_packed, /*batch_first=*/true, 0.0, t)),
           true});
    }
    at::Tensor pooled;
    if (o_.pooling == "last") {
      // The last layer's final state of each direction: the forward one after the last real
      // token, the backward one after reading back to the first.
      pooled = o_.bidirectional ? at::cat({h_n[-2], h_n[-1]}, 1) : h_n[-1];
    } else {
      const at::Tensor out = std::get<0>(rnn_utils::pad_packed_sequence(
          out_packed, /*batch_first=*/true, 0.0, t));  // (B, T, H'), zeros at padding
      const at::Tensor keep = real.unsqueeze(-1);
      if (o_.pooling == "mean") {
        pooled = out.sum(1) / lengths.to(out.device()).unsqueeze(1).to(out.scalar_type());
      } else if (o_.pooling == "max") {
        pooled = std::get<0>(
            out.masked_fill(keep.logical_not(), -std::numeric_limits<float>::infinity()).max(1));
      } else {  // attention
        at::Tensor scores =
            attn_score->forward(at::tanh(attn_proj->forward(out))).squeeze(-1);  // (B, T)
        scores = scores.masked_fill(real.logical_not(), -std::numeric_limits<float>::infinity());
        last_attention = at::softmax(scores, 1);
        if (record) record->push_back({"attention", last_attention, true});
        pooled = (last_attention.unsqueeze(-1) * out).sum(1);
      }
    }
    if (record) record->push_back({"pooled", pooled, false});
    at::Tensor h = drop->forward(pooled);
    if (hidden) {
      h = drop->forward(at::relu(hidden->forward(h)));
      if (record) record->push_back({"hidden", h, false});
    }
    return head->forward(h);
  }

  Options o_;
  torch::nn::Embedding wte{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::GRU gru{nullptr};
  torch::nn::Linear attn_proj{nullptr}, attn_score{nullptr}, hidden{nullptr}, head{nullptr};
  torch::nn::Dropout drop{nullptr};
  at::Tensor last_attention;  // (B, T) of the last forward with attention pooling
};
TORCH_MODULE(Classifier);

std::string ascii_lower(std::string word) {
  for (char& ch : word) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return word;
}

// Copies the vectors of the vocabulary's words into the embedding: each id's text as the
// tokenizer decodes it, else its lower case. Missing words keep random rows, drawn at the found
// vectors' scale so that they do not stand out. Returns the coverage line for summary().
std::string load_word_vectors(torch::nn::Embedding& wte, const Options& o, const ModelContext& c) {
  if (c.tokenizer == nullptr)
    throw Error("model.embeddings needs the run's tokenizer, and this model was built without one");
  const Tokenizer& tokenizer = *c.tokenizer;
  std::set<std::int64_t> specials;
  for (const char* token : {"<pad>", "<unk>", "<bos>", "<eos>"}) {
    if (tokenizer.special_id(token) >= 0) specials.insert(tokenizer.special_id(token));
  }
  std::vector<std::string> words(static_cast<std::size_t>(c.vocab_size));
  std::unordered_set<std::string> wanted;
  for (std::int64_t id = 0; id < c.vocab_size; ++id) {
    if (specials.count(id)) continue;
    std::string& word = words[static_cast<std::size_t>(id)];
    word = tokenizer.decode({id});
    wanted.insert(word);
    wanted.insert(ascii_lower(word));
  }
  const WordVectors vectors = read_word_vectors(o.embeddings, wanted);
  if (vectors.dim != o.n_embd) {
    throw Error("model.embeddings " + o.embeddings + " holds " + std::to_string(vectors.dim) +
                    "-dimensional vectors, but model.n_embd = " + std::to_string(o.n_embd),
                "set model.n_embd = " + std::to_string(vectors.dim));
  }
  torch::NoGradGuard no_grad;
  at::Tensor weight = wte->weight;
  std::vector<std::int64_t> missing;
  std::vector<bool> is_missing(static_cast<std::size_t>(c.vocab_size), false);
  std::vector<std::string> missing_words;
  std::int64_t found = 0;
  for (std::int64_t id = 0; id < c.vocab_size; ++id) {
    if (specials.count(id)) continue;
    const std::string& word = words[static_cast<std::size_t>(id)];
    auto it = vectors.found.find(word);
    if (it == vectors.found.end()) it = vectors.found.find(ascii_lower(word));
    if (it == vectors.found.end()) {
      missing.push_back(id);
      is_missing[static_cast<std::size_t>(id)] = true;
      if (missing_words.size() < 5) missing_words.push_back(word);
      continue;
    }
    weight[id].copy_(at::tensor(it->second, at::kFloat));
    ++found;
  }
  const auto words_total = c.vocab_size - static_cast<std::int64_t>(specials.size());
  if (found == 0 && words_total > 0) {
    throw Error("model.embeddings " + o.embeddings + " holds none of the vocabulary's " +
                    std::to_string(words_total) + " words (e.g. '" + missing_words.front() + "')",
                "it is the wrong file for this language or tokenizer; pre-trained vectors help "
                "only where they cover the words");
  }
  if (found > 0 && !missing.empty()) {
    // The initial N(0, 1) rows, scaled to the found vectors' spread.
    std::vector<std::int64_t> found_ids;
    for (std::int64_t id = 0; id < c.vocab_size; ++id) {
      if (!specials.count(id) && !is_missing[static_cast<std::size_t>(id)]) found_ids.push_back(id);
    }
    const double spread =
        weight.index_select(0, at::tensor(found_ids, at::kLong)).std().item<double>();
    const at::Tensor rows = at::tensor(missing, at::kLong);
    weight.index_copy_(0, rows, weight.index_select(0, rows) * spread);
  }
  std::string line = "embeddings from " + o.embeddings + ": " + std::to_string(found) + " of " +
                     std::to_string(words_total) + " words found";
  char percent[32];
  std::snprintf(percent, sizeof percent, " (%.1f%%)",
                words_total > 0 ? 100.0 * static_cast<double>(found) / words_total : 0.0);
  line += percent;
  if (!missing_words.empty()) {
    line += "; missing, e.g.";
    for (const auto& word : missing_words) line += " '" + word + "'";
  }
  return line + (o.freeze_embeddings ? "; frozen" : "; fine-tuned");
}

class RnnClassifier final : public TorchModel<Classifier> {
 public:
  RnnClassifier(const Options& o, const ModelContext& c) : TorchModel(Classifier(o, c)), o_(o) {
    if (!o.embeddings.empty()) {
      embeddings_ = c.weights_from_checkpoint
                        ? "embeddings as trained (first from " + o.embeddings + ")"
                        : load_word_vectors(net_->wte, o, c);
    }
    if (o.freeze_embeddings) net_->wte->weight.set_requires_grad(false);
  }
  std::string summary() const override {
    std::int64_t n = 0, frozen = 0;
    for (const auto& p : net_->parameters()) {
      n += p.numel();
      if (!p.requires_grad()) frozen += p.numel();
    }
    return std::string(o_.bidirectional ? "bidirectional " : "") + o_.cell + " " +
           std::to_string(o_.n_layer) + "x" + std::to_string(o_.n_hidden) + ", embedding " +
           std::to_string(o_.n_embd) + ", " + o_.pooling + " pooling, " +
           (o_.head_hidden > 0 ? std::to_string(o_.head_hidden) + "-unit hidden layer, " : "") +
           std::to_string(n) + " parameters" +
           (frozen > 0 ? " (" + std::to_string(frozen) + " frozen)" : "") + "\n" +
           (embeddings_.empty() ? "" : embeddings_ + "\n");
  }
  // 6 per weight of a product (nanoGPT's convention): the recurrent layers and the attention
  // run at every token, the head once per text (spread over its `context` tokens); the
  // embedding is a lookup.
  double flops_per_token(std::int64_t context) const override {
    double per_token = 0, per_text = 0;
    for (const auto& named : net_->named_parameters()) {
      const std::string& name = named.key();
      const auto n = static_cast<double>(named.value().numel());
      if (name.rfind("wte.", 0) == 0) continue;
      if (name.rfind("rnn.", 0) == 0 || name.rfind("attn_", 0) == 0) {
        per_token += n;
      } else {
        per_text += n;
      }
    }
    return 6.0 * (per_token + per_text / static_cast<double>(std::max<std::int64_t>(context, 1)));
  }

  // "model": input_ids and attention_mask (B, T) int64 -> logits (B, C); onnx_export.h.
  std::vector<OnnxGraph> export_onnx(std::int64_t opset) override {
    return classifier_onnx(
        {o_.cell, o_.n_hidden, o_.n_layer, o_.bidirectional, o_.pooling, o_.head_hidden}, *net_,
        opset);
  }

  // Attention weights (B, T) of the last forward pass; undefined for other poolings.
  const at::Tensor& attention() const { return net_->last_attention; }

 private:
  Options o_;
  std::string embeddings_;  // the coverage line, or empty
};

// Parameters and per-token activations of a training step, as ClassifierImpl builds it.
SizeEstimate estimate(const Options& o, const ModelContext& c) {
  const double v = static_cast<double>(std::max<std::int64_t>(c.vocab_size, 1));
  const double e = static_cast<double>(o.n_embd), h = static_cast<double>(o.n_hidden);
  const double dirs = o.bidirectional ? 2 : 1, gates = o.cell == "lstm" ? 4 : 3;
  const double l = static_cast<double>(o.n_layer);
  SizeEstimate size;
  size.parameters = v * e + dirs * gates * h * (e + h + 2) +
                    (l - 1) * dirs * gates * h * (dirs * h + h + 2) +
                    static_cast<double>(o.head_hidden) * dirs * h +
                    static_cast<double>(std::max<std::int64_t>(c.num_classes, 2)) * dirs * h;
  size.activations_per_token = e + l * dirs * (gates + 2) * h;
  return size;
}

void register_classifier(Registry& registry) {
  Schema<Options> schema;
  schema.add("cell", &Options::cell, "the recurrent cell").choices({"lstm", "gru"});
  schema.add("n_embd", &Options::n_embd, "embedding width").min(1);
  schema.add("n_hidden", &Options::n_hidden, "hidden units per direction").min(1);
  schema.add("n_layer", &Options::n_layer, "stacked recurrent layers").min(1);
  schema.add("bidirectional", &Options::bidirectional, "read the text both ways");
  schema
      .add("dropout", &Options::dropout,
           "on the embeddings, between layers, on the pooled vector and the hidden layer")
      .range(0, 1, /*max_exclusive=*/true);
  schema
      .add("pooling", &Options::pooling,
           "last: final states; mean / max over real tokens; attention: learned weights")
      .choices({"last", "mean", "max", "attention"});
  schema
      .add("head_hidden", &Options::head_hidden,
           "units of a ReLU hidden layer before the output; 0: a linear head")
      .min(0);
  schema
      .add("embeddings", &Options::embeddings,
           "a word-vector file (GloVe text format) to initialise the embedding from; its "
           "dimension must equal n_embd. Empty: random")
      .input_file();
  schema.add("freeze_embeddings", &Options::freeze_embeddings,
             "keep the embedding fixed during training (the optimizer never sees it)");
  registry.add<Model>(
      "rnn_classifier", "LSTM/GRU text classifier: packed sequences, pooling, MLP head", schema,
      [](const Options& options, const ModelContext& context) {
        if (context.num_classes < 2) {
          throw Error("rnn_classifier needs a classification dataset (it has " +
                          std::to_string(context.num_classes) + " classes)",
                      "use data.type = \"text_classification\"");
        }
        return std::make_shared<RnnClassifier>(options, context);
      },
      estimate);
}

}  // namespace
}  // namespace lmrun::models

LMRUN_PLUGIN("rnn_classifier", "0.1.0", lmrun::models::register_classifier)
