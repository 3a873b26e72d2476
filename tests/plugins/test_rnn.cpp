// The `rnn` plugin's models `lstm` and `gru` through the real loader: what is their own. The model
// contracts (shapes, causality, hidden-state and batch-1 decoding against the full forward,
// select_rows, checkpoint round trips, eval determinism) are checked by the conformance suite,
// tied, untied and at odd widths (tests/conformance/CMakeLists.txt). Here: registration,
// checkpoint key names, parameter and FLOP counts, decoding's errors, weight tying, dropout in
// training, and a short training run.
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include "lmrun/model.h"
#include "support/test_support.h"

namespace {

using lmrun::test::contains;
using lmrun::test::error_of;

using lmrun::Model;

constexpr std::int64_t kVocab = 65;

// ---------------------------------------------------------------------------------------------
// Helpers

lmrun::Params with(std::initializer_list<std::pair<const char*, lmrun::Value>> values) {
  lmrun::Params params;
  for (const auto& [key, value] : values) params.set(key, value);
  return params;
}

// Every declared default, as the host fills them, then the test's overrides.
lmrun::Params params_for(const std::string& name, const lmrun::Params& overrides) {
  return lmrun::test::plugin_params(lmrun::Kind::kModel, name, overrides.values());
}

std::shared_ptr<Model> make(const std::string& name, const lmrun::Params& overrides = {}) {
  torch::manual_seed(1337);
  return lmrun::test::plugin_registry().create<Model>(name, params_for(name, overrides),
                                                      lmrun::ModelContext{kVocab, 64, 0, -1});
}

// Small and fast, dropout on.
lmrun::Params small(std::initializer_list<std::pair<const char*, lmrun::Value>> extra = {}) {
  lmrun::Params params = with({{"n_layer", std::int64_t{2}},
                               {"n_embd", std::int64_t{32}},
                               {"n_hidden", std::int64_t{48}},
                               {"dropout", 0.2}});
  for (const auto& [key, value] : extra) params.set(key, value);
  return params;
}

at::Tensor random_tokens(std::int64_t batch, std::int64_t time) {
  return at::randint(kVocab, {batch, time}, at::kLong);
}

at::Tensor named_parameter(Model& model, const std::string& name) {
  for (const auto& item : model.module().named_parameters()) {
    if (item.key() == name) return item.value();
  }
  return {};
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Parameters of a stacked LSTM (gates = 4) or GRU (gates = 3): per layer W_ih, W_hh, b_ih, b_hh.
std::int64_t recurrent_parameters(std::int64_t gates, std::int64_t layers, std::int64_t in,
                                  std::int64_t hidden) {
  std::int64_t n = 0;
  for (std::int64_t l = 0; l < layers; ++l) {
    n += gates * hidden * ((l == 0 ? in : hidden) + hidden + 2);
  }
  return n;
}

class Recurrent : public ::testing::TestWithParam<const char*> {};

// ---------------------------------------------------------------------------------------------
// Registration and checkpoint keys

TEST(Rnn, OnePluginRegistersLstmAndGruWithTheSameParameters) {
  const auto& registry = lmrun::test::plugin_registry();
  for (const char* name : {"lstm", "gru"}) {
    const lmrun::Registration* registration = registry.find(lmrun::Kind::kModel, name);
    ASSERT_NE(registration, nullptr) << name;
    std::vector<std::string> names;
    for (const auto& spec : registration->params) names.push_back(spec.name);
    EXPECT_EQ(names,
              (std::vector<std::string>{"n_layer", "n_embd", "n_hidden", "dropout", "tie_weights"}))
        << name;
    EXPECT_EQ(registry.find_entry(lmrun::Kind::kModel, name)->origin.plugin_name, "rnn");
  }
}

TEST_P(Recurrent, CheckpointKeysAreTheDocumentedOnes) {
  auto model = make(GetParam(), small({{"n_layer", std::int64_t{1}}}));
  std::set<std::string> names;
  for (const auto& item : model->module().named_parameters()) names.insert(item.key());
  EXPECT_EQ(names, (std::set<std::string>{"wte.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                                          "rnn.bias_ih_l0", "rnn.bias_hh_l0", "lm_head.weight",
                                          "lm_head.bias"}));
}

TEST_P(Recurrent, ParameterCountMatchesTheFormula) {
  auto model = make(GetParam());  // defaults: 2 layers, n_embd 128, n_hidden 256, untied
  const std::int64_t gates = std::string(GetParam()) == "lstm" ? 4 : 3;
  const std::int64_t expected =
      kVocab * 128 + recurrent_parameters(gates, 2, 128, 256) + kVocab * 256 + kVocab;
  std::int64_t counted = 0;
  for (const at::Tensor& p : model->module().parameters()) counted += p.numel();
  EXPECT_EQ(counted, expected);
  EXPECT_EQ(expected, gates == 4 ? 946625 : 716225);  // the figures in the plugin's README
  EXPECT_TRUE(contains(model->summary(), std::to_string(expected))) << model->summary();
}

// Model FLOPs count 6 per weight that takes part in a product: the cell and the head, and the
// embedding only when it is the head's weight too (an untied embedding is a lookup).
TEST_P(Recurrent, FlopsPerTokenCountTheProductsNotTheLookup) {
  const std::int64_t gates = std::string(GetParam()) == "lstm" ? 4 : 3;
  auto untied = make(GetParam());  // n_embd 128, n_hidden 256
  const double untied_weights =
      static_cast<double>(recurrent_parameters(gates, 2, 128, 256) + kVocab * 256 + kVocab);
  EXPECT_DOUBLE_EQ(untied->flops_per_token(64), 6.0 * untied_weights);
  EXPECT_DOUBLE_EQ(untied->flops_per_token(1), untied->flops_per_token(1000));

  auto tied = make(GetParam(), small({{"n_hidden", std::int64_t{32}}, {"tie_weights", true}}));
  const double tied_weights =
      static_cast<double>(kVocab * 32 + recurrent_parameters(gates, 2, 32, 32) + kVocab);
  EXPECT_DOUBLE_EQ(tied->flops_per_token(64), 6.0 * tied_weights);
}

// ---------------------------------------------------------------------------------------------
// Decoding: unbounded, and its errors

TEST_P(Recurrent, SingleSequenceDecodingRejectsAnUnknownToken) {
  lmrun::test::expect_decode_rejects_unknown_token(*make(GetParam(), small()), kVocab);
}

TEST_P(Recurrent, DecodingIsUnboundedButChecksTheBatch) {
  auto model = make(GetParam(), small());
  model->module().eval();
  EXPECT_EQ(model->max_context(), 0);
  auto state = model->start_decoding(1);
  for (int i = 0; i < 5; ++i) model->decode(*state, random_tokens(1, 100));
  EXPECT_EQ(state->length(), 500);
  EXPECT_TRUE(contains(error_of([&] { model->decode(*state, random_tokens(2, 1)); }),
                       "holds a batch of 1"));
}

// ---------------------------------------------------------------------------------------------
// Weights and configuration

TEST_P(Recurrent, TiedHeadIsTheTokenEmbedding) {
  auto tied = make(GetParam(), small({{"n_hidden", std::int64_t{32}}, {"tie_weights", true}}));
  at::Tensor wte = named_parameter(*tied, "wte.weight");
  ASSERT_TRUE(wte.defined());
  EXPECT_FALSE(named_parameter(*tied, "lm_head.weight").defined());  // registered once
  EXPECT_TRUE(named_parameter(*tied, "lm_head.bias").defined());
  {
    // The head reads wte's storage: with wte zeroed every logit is the (zero) head bias.
    at::NoGradGuard no_grad;
    wte.zero_();
    EXPECT_EQ(tied->forward(random_tokens(1, 5), {}).abs().max().item<double>(), 0.0);
  }
  auto untied = make(GetParam(), small({{"n_hidden", std::int64_t{32}}}));
  at::Tensor head = named_parameter(*untied, "lm_head.weight");
  ASSERT_TRUE(head.defined());
  EXPECT_NE(head.data_ptr(), named_parameter(*untied, "wte.weight").data_ptr());
}

TEST_P(Recurrent, TyingNeedsEqualWidths) {
  const std::string message = error_of([] {
    make(GetParam(), with({{"n_embd", std::int64_t{64}},
                           {"n_hidden", std::int64_t{128}},
                           {"tie_weights", true}}));
  });
  EXPECT_TRUE(contains(message, "model '" + std::string(GetParam()) + "'")) << message;
  EXPECT_TRUE(contains(message,
                       "tie_weights needs n_embd == n_hidden, got n_embd 64 and "
                       "n_hidden 128"))
      << message;

  // The same rule runs while the host validates an experiment, before anything is built.
  const lmrun::Registration* registration =
      lmrun::test::plugin_registry().find(lmrun::Kind::kModel, GetParam());
  ASSERT_TRUE(registration->check);
  EXPECT_TRUE(contains(error_of([&] {
                         registration->check(params_for(GetParam(), with({{"tie_weights", true}})));
                       }),
                       "tie_weights needs n_embd == n_hidden"));
  registration->check(
      params_for(GetParam(), with({{"tie_weights", true}, {"n_embd", std::int64_t{256}}})));
}

// In eval mode it is off: the conformance suite's EvalIsDeterministicWithoutGradients runs with
// dropout = 0.2 (conformance.rnn.small).
TEST_P(Recurrent, DropoutIsActiveInTraining) {
  auto model = make(GetParam(), small({{"dropout", 0.5}}));
  at::Tensor tokens = random_tokens(2, 16);
  at::NoGradGuard no_grad;
  model->module().train();
  EXPECT_GT(max_abs_diff(model->forward(tokens, {}), model->forward(tokens, {})), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Training sanity

TEST_P(Recurrent, ThirtyAdamStepsLearnARepeatedSequence) {
  auto model = make(GetParam(), small({{"dropout", 0.0}}));
  model->module().train();
  // "abcdefgh" over and over: every next token is determined by the current one.
  at::Tensor stream = at::arange(33, at::kLong).remainder(8).unsqueeze(0).repeat({4, 1});
  at::Tensor inputs = stream.narrow(1, 0, 32), targets = stream.narrow(1, 1, 32);
  torch::optim::Adam adam(model->module().parameters(), torch::optim::AdamOptions(2e-2));
  auto loss_now = [&] {
    at::Tensor logits = model->forward(inputs, {});
    return at::cross_entropy_loss(logits.reshape({-1, kVocab}), targets.reshape({-1}));
  };
  const double first = loss_now().item<double>();
  EXPECT_NEAR(first, std::log(double(kVocab)), 0.5);
  for (int step = 0; step < 30; ++step) {
    adam.zero_grad();
    at::Tensor loss = loss_now();
    loss.backward();
    adam.step();
  }
  const double last = loss_now().item<double>();
  EXPECT_LT(last, 0.25 * first) << "loss " << first << " -> " << last;
}

INSTANTIATE_TEST_SUITE_P(LstmAndGru, Recurrent, ::testing::Values("lstm", "gru"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
