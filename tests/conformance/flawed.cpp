// Fixture: one plugin of each kind with a suite, each able to break one contract on request
// (`flaw`), so that test_conformance.cpp can show every conformance check fails when it should.
//
//   model     flawed_model      none, wrong_shape, peeks, decode_drifts, select_ignores_rows,
//                               unsaved_state, eval_dropout
//   tokenizer flawed_tokenizer  none, drops_spaces, forgets_on_load
//   sampler   flawed_sampler    none, nan, unmasks, noisy
//   callback  flawed_callback   none, forgets_state, logs_loss    (patience: required)
//
// With `none` each is a small correct plugin: a language model whose logits at t read tokens t
// and t-1, a byte tokenizer over the bytes it was fitted on, a halving sampler, and a callback
// that stops after `patience` evaluations without a better val_loss.
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ops/cat.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/full.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "lmrun/callback.h"
#include "lmrun/model.h"
#include "lmrun/plugin.h"
#include "lmrun/sampler.h"
#include "lmrun/schema.h"
#include "lmrun/tokenizer.h"

namespace {

struct FlawOptions {
  std::string flaw = "none";
};

lmrun::Schema<FlawOptions> flaw_schema(std::vector<std::string> flaws) {
  lmrun::Schema<FlawOptions> schema;
  schema.add("flaw", &FlawOptions::flaw, "which contract to break").choices(std::move(flaws));
  return schema;
}

// ---------------------------------------------------------------------------------------------
// Model: logits_t = head(wte(x_t) + wpe(x_{t-1})), x_{-1} = a start id (vocab).

struct NetImpl : torch::nn::Module {
  NetImpl(std::int64_t vocab, bool unsaved)
      : wte(register_module("wte", torch::nn::Embedding(vocab, 8))),
        wpe(register_module("wpe", torch::nn::Embedding(vocab + 1, 8))),
        head(register_module("head", torch::nn::Linear(8, vocab))),
        start(vocab) {
    if (unsaved) scale = at::randn({8});  // state that is no parameter or buffer
  }
  // tokens (B, T), previous (B, 1): the token before them. -> (B, T, V)
  at::Tensor step(const at::Tensor& tokens, const at::Tensor& previous) {
    const at::Tensor before = at::cat({previous, tokens.narrow(1, 0, tokens.size(1) - 1)}, 1);
    at::Tensor h = wte->forward(tokens) + wpe->forward(before);
    if (scale.defined()) h = h * scale;
    return head->forward(h);
  }
  torch::nn::Embedding wte, wpe;
  torch::nn::Linear head;
  std::int64_t start;
  at::Tensor scale;
};
TORCH_MODULE(Net);

struct State : lmrun::DecodeState {
  std::int64_t length() const override { return fed; }
  bool select_rows(const at::Tensor& rows) override {
    if (!ignore_rows) previous = previous.index_select(0, rows);
    return true;
  }
  at::Tensor previous;  // (B, 1)
  std::int64_t fed = 0;
  bool ignore_rows = false;
};

class FlawedModel : public lmrun::Model {
 public:
  FlawedModel(std::string flaw, std::int64_t vocab)
      : flaw_(std::move(flaw)), net_(vocab, flaw_ == "unsaved_state") {}
  torch::nn::Module& module() override { return *net_; }

  at::Tensor forward(const at::Tensor& inputs, const at::Tensor&) override {
    const at::Tensor start = at::full({inputs.size(0), 1}, net_->start, at::kLong);
    at::Tensor tokens = inputs;
    if (flaw_ == "peeks") tokens = inputs.roll(-1, 1);  // position t reads token t + 1
    at::Tensor logits = net_->step(tokens, start);
    if (flaw_ == "eval_dropout") logits = at::dropout(logits, 0.5, /*train=*/true);
    if (flaw_ == "wrong_shape") logits = logits.narrow(2, 0, logits.size(2) - 1);
    return logits;
  }

  bool can_decode() const override { return true; }
  std::unique_ptr<lmrun::DecodeState> start_decoding(std::int64_t batch) override {
    auto state = std::make_unique<State>();
    state->previous = at::full({batch, 1}, net_->start, at::kLong);
    state->ignore_rows = flaw_ == "select_ignores_rows";
    return state;
  }
  at::Tensor decode(lmrun::DecodeState& base, const at::Tensor& tokens) override {
    auto& state = static_cast<State&>(base);
    at::Tensor last = net_->step(tokens, state.previous).select(1, -1);  // (B, V)
    state.previous = tokens.narrow(1, tokens.size(1) - 1, 1);
    state.fed += tokens.size(1);
    if (flaw_ == "decode_drifts" && state.fed > 1) last = last + 0.01 * state.fed;
    if (flaw_ == "wrong_shape") last = last.narrow(1, 0, last.size(1) - 1);
    return last;
  }

 private:
  std::string flaw_;
  Net net_;
};

// ---------------------------------------------------------------------------------------------
// Tokenizer: one id per byte value seen while fitting, in byte order.

class FlawedTokenizer : public lmrun::Tokenizer {
 public:
  explicit FlawedTokenizer(std::string flaw) : flaw_(std::move(flaw)) {}
  void fit(std::string_view text) override {
    std::set<unsigned char> seen(text.begin(), text.end());
    bytes_.assign(seen.begin(), seen.end());
  }
  std::vector<std::int64_t> encode(std::string_view text) const override {
    std::vector<std::int64_t> ids;
    for (unsigned char c : text) {
      if (flaw_ == "drops_spaces" && c == ' ') continue;
      std::int64_t id = 0;
      while (id < vocab_size() && bytes_[static_cast<std::size_t>(id)] != c) ++id;
      if (id == vocab_size()) throw lmrun::Error("byte " + std::to_string(c) + " was not seen");
      ids.push_back(id);
    }
    return ids;
  }
  std::string decode(const std::vector<std::int64_t>& ids) const override {
    std::string text;
    for (std::int64_t id : ids) {
      if (id < 0 || id >= vocab_size()) throw lmrun::Error("id outside the vocabulary");
      text += static_cast<char>(bytes_[static_cast<std::size_t>(id)]);
    }
    return text;
  }
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(bytes_.size()); }
  void save(const std::filesystem::path& folder) const override {
    std::ofstream(folder / "bytes.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes_.data()),
               static_cast<std::streamsize>(bytes_.size()));
  }
  void load(const std::filesystem::path& folder) override {
    if (flaw_ == "forgets_on_load") return;
    std::ifstream in(lmrun::saved_tokenizer_file(folder, "bytes.bin", "flawed_tokenizer: "),
                     std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    const std::string text = bytes.str();
    bytes_.assign(text.begin(), text.end());
  }

 private:
  std::string flaw_;
  std::vector<unsigned char> bytes_;
};

// ---------------------------------------------------------------------------------------------
// Sampler: halves the logits.

class FlawedSampler : public lmrun::Sampler {
 public:
  explicit FlawedSampler(std::string flaw) : flaw_(std::move(flaw)) {}
  at::Tensor apply(at::Tensor logits, const lmrun::SamplingState&) override {
    logits = logits / 2;
    if (flaw_ == "nan") logits[0][0] = std::numeric_limits<float>::quiet_NaN();
    if (flaw_ == "unmasks") logits.masked_fill_(logits.eq(-INFINITY), 0.0);
    if (flaw_ == "noisy") logits[0][0] = static_cast<float>(std::random_device()() % 1000);
    return logits;
  }

 private:
  std::string flaw_;
};

// ---------------------------------------------------------------------------------------------
// Callback: stops after `patience` evaluations without a lower val_loss; logs the best so far.

struct CallbackOptions {
  std::string flaw = "none";
  std::int64_t patience = 0;
};

class FlawedCallback : public lmrun::Callback {
 public:
  explicit FlawedCallback(CallbackOptions options) : o_(std::move(options)) {}
  void on_eval_end(const lmrun::TrainState&, const lmrun::Metrics& eval,
                   lmrun::TrainerControl& control) override {
    const double value = eval.at("val_loss");
    if (value < best_) {
      best_ = value;
      wait_ = 0;
    } else if (++wait_ >= o_.patience) {
      control.request_stop("no better val_loss for " + std::to_string(wait_) + " evaluations");
    }
    control.log_metric(o_.flaw == "logs_loss" ? "loss" : "flawed_best", best_);
  }
  std::vector<std::string> metric_names() const override { return {"flawed_best"}; }
  std::string save_state() const override {
    std::ostringstream out;
    out.precision(17);
    out << best_ << " " << wait_;
    return out.str();
  }
  void load_state(const std::string& state) override {
    if (o_.flaw == "forgets_state") return;
    std::istringstream in(state);
    in >> best_ >> wait_;
  }

 private:
  CallbackOptions o_;
  double best_ = 1e300;
  std::int64_t wait_ = 0;
};

// ---------------------------------------------------------------------------------------------

void register_flawed(lmrun::Registry& registry) {
  registry.add<lmrun::Model>("flawed_model", "a model that breaks one contract (test fixture)",
                             flaw_schema({"none", "wrong_shape", "peeks", "decode_drifts",
                                          "select_ignores_rows", "unsaved_state", "eval_dropout"}),
                             [](const FlawOptions& o, const lmrun::ModelContext& c) {
                               lmrun::require_language_model(c);
                               return std::make_shared<FlawedModel>(o.flaw, c.vocab_size);
                             });
  registry.add<lmrun::Tokenizer>("flawed_tokenizer",
                                 "a tokenizer that breaks one contract (test fixture)",
                                 flaw_schema({"none", "drops_spaces", "forgets_on_load"}),
                                 [](const FlawOptions& o, const lmrun::TokenizerContext&) {
                                   return std::make_shared<FlawedTokenizer>(o.flaw);
                                 });
  registry.add<lmrun::Sampler>("flawed_sampler", "a sampler that breaks one contract (fixture)",
                               flaw_schema({"none", "nan", "unmasks", "noisy"}),
                               [](const FlawOptions& o, const lmrun::SamplerContext&) {
                                 return std::make_shared<FlawedSampler>(o.flaw);
                               });
  lmrun::Schema<CallbackOptions> callback_schema;
  callback_schema.add("flaw", &CallbackOptions::flaw, "which contract to break")
      .choices({"none", "forgets_state", "logs_loss"});
  callback_schema.add("patience", &CallbackOptions::patience, "evaluations without improvement")
      .min(1)
      .required();
  registry.add<lmrun::Callback>("flawed_callback", "a callback that breaks one contract (fixture)",
                                callback_schema,
                                [](const CallbackOptions& o, const lmrun::CallbackContext&) {
                                  return std::make_shared<FlawedCallback>(o);
                                });
}

}  // namespace

LMRUN_PLUGIN("flawed", "0.1.0", register_flawed)
