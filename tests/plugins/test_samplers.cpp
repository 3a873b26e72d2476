// The standard sampler links (greedy, temperature, top_k, top_p, min_p, typical, the penalties,
// no_repeat_ngram, logit_bias) through the real plugin loader, on
// fixed logits whose expected masks are worked out by hand in the comments.
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ops/cat.h>
#include <ATen/ops/log.h>
#include <ATen/ops/tensor.h>

#include "lmrun/sampler.h"
#include "support/test_support.h"

namespace {

using lmrun::Sampler;

constexpr float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// Helpers

lmrun::Params params_for(const std::string& name,
                         std::initializer_list<std::pair<const char*, lmrun::Value>> overrides) {
  return lmrun::test::plugin_params(lmrun::Kind::kSampler, name,
                                    {overrides.begin(), overrides.end()});
}

std::shared_ptr<Sampler> make(
    const std::string& name,
    std::initializer_list<std::pair<const char*, lmrun::Value>> overrides = {},
    std::int64_t vocab_size = 8) {
  return lmrun::test::plugin_registry().create<Sampler>(name, params_for(name, overrides),
                                                        lmrun::SamplerContext{vocab_size});
}

// (B, V) float logits from rows.
at::Tensor logits_of(const std::vector<std::vector<float>>& rows) {
  std::vector<float> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return at::tensor(flat, at::kFloat).reshape({static_cast<std::int64_t>(rows.size()), -1});
}

std::vector<float> row(const at::Tensor& logits, std::int64_t b) {
  at::Tensor r = logits[b].contiguous();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

at::Tensor apply(Sampler& sampler, const at::Tensor& logits) {
  // A copy in, so a sampler working in place cannot change the test's expectations.
  at::Tensor out = sampler.apply(logits.clone(), lmrun::SamplingState{});
  EXPECT_EQ(out.sizes(), logits.sizes());
  return out;
}

// The expected row: the input where `kept`, -inf elsewhere.
std::vector<float> masked(const std::vector<float>& input, const std::vector<bool>& kept) {
  std::vector<float> out(input.size(), -kInf);
  for (std::size_t i = 0; i < input.size(); ++i) {
    if (kept[i]) out[i] = input[i];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Registration

TEST(Samplers, RegistersTheFourLinksWithTheirDefaults) {
  const auto& registry = lmrun::test::plugin_registry();
  for (const char* name :
       {"greedy", "temperature", "top_k", "top_p", "min_p", "typical", "repetition_penalty",
        "frequency_penalty", "presence_penalty", "no_repeat_ngram", "logit_bias"}) {
    EXPECT_NE(registry.find(lmrun::Kind::kSampler, name), nullptr) << name;
  }
  EXPECT_TRUE(registry.find(lmrun::Kind::kSampler, "greedy")->params.empty());
  EXPECT_EQ(params_for("temperature", {}).get<double>("value"), 1.0);
  EXPECT_EQ(params_for("top_k", {}).get<std::int64_t>("k"), 40);
  EXPECT_EQ(params_for("top_p", {}).get<double>("p"), 0.9);
}

// ---------------------------------------------------------------------------------------------
// greedy

TEST(Samplers, GreedyKeepsOnlyTheArgmaxPerRow) {
  const std::vector<float> a = {0.5f, -1.0f, 2.5f, 1.0f, 2.0f};
  const std::vector<float> b = {3.0f, 0.0f, 0.0f, 0.0f, -3.0f};
  at::Tensor out = apply(*make("greedy"), logits_of({a, b}));
  EXPECT_EQ(row(out, 0), masked(a, {false, false, true, false, false}));
  EXPECT_EQ(row(out, 1), masked(b, {true, false, false, false, false}));
}

TEST(Samplers, GreedyBreaksTiesTowardsTheLowestId) {
  const std::vector<float> tied = {1.0f, 4.0f, 2.0f, 4.0f, 4.0f};
  at::Tensor out = apply(*make("greedy"), logits_of({tied}));
  EXPECT_EQ(row(out, 0), masked(tied, {false, true, false, false, false}));
}

// ---------------------------------------------------------------------------------------------
// temperature

TEST(Samplers, TemperatureDividesTheLogits) {
  const std::vector<float> a = {1.0f, -2.0f, 4.0f, 0.0f};
  EXPECT_EQ(row(apply(*make("temperature", {{"value", 2.0}}), logits_of({a})), 0),
            (std::vector<float>{0.5f, -1.0f, 2.0f, 0.0f}));
  EXPECT_EQ(row(apply(*make("temperature", {{"value", 0.5}}), logits_of({a})), 0),
            (std::vector<float>{2.0f, -4.0f, 8.0f, 0.0f}));
  EXPECT_EQ(row(apply(*make("temperature"), logits_of({a})), 0), a);  // default 1: unchanged
}

TEST(Samplers, TemperatureZeroIsGreedy) {
  const std::vector<float> a = {1.0f, 7.0f, 7.0f, -2.0f};
  const std::vector<float> b = {0.0f, 0.1f, 0.2f, 0.3f};
  at::Tensor logits = logits_of({a, b});
  at::Tensor cold = apply(*make("temperature", {{"value", 0.0}}), logits);
  at::Tensor greedy = apply(*make("greedy"), logits);
  EXPECT_EQ(row(cold, 0), row(greedy, 0));
  EXPECT_EQ(row(cold, 1), row(greedy, 1));
  EXPECT_EQ(row(cold, 0), masked(a, {false, true, false, false}));
}

// ---------------------------------------------------------------------------------------------
// top_k

TEST(Samplers, TopKKeepsExactlyK) {
  const std::vector<float> a = {1.0f, 4.0f, 2.0f, 3.0f, 0.0f, -1.0f};
  const std::vector<float> b = {9.0f, 8.0f, 7.0f, 6.0f, 5.0f, 4.0f};
  at::Tensor out = apply(*make("top_k", {{"k", std::int64_t{2}}}), logits_of({a, b}));
  EXPECT_EQ(row(out, 0), masked(a, {false, true, false, true, false, false}));
  EXPECT_EQ(row(out, 1), masked(b, {true, true, false, false, false, false}));
  at::Tensor three = apply(*make("top_k", {{"k", std::int64_t{3}}}), logits_of({a}));
  EXPECT_EQ(row(three, 0), masked(a, {false, true, true, true, false, false}));
}

TEST(Samplers, TopKCutsTiesByLowestId) {
  // Three logits tie at 2 for two places: ids 1 and 2 stay, id 3 goes.
  const std::vector<float> tied = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f};
  at::Tensor out = apply(*make("top_k", {{"k", std::int64_t{2}}}), logits_of({tied}));
  EXPECT_EQ(row(out, 0), masked(tied, {false, true, true, false, false}));
}

TEST(Samplers, TopKLargerThanTheVocabularyKeepsAll) {
  const std::vector<float> a = {1.0f, 4.0f, 2.0f, 3.0f, 0.0f};
  EXPECT_EQ(row(apply(*make("top_k", {{"k", std::int64_t{5}}}), logits_of({a})), 0), a);
  EXPECT_EQ(row(apply(*make("top_k", {{"k", std::int64_t{100}}}), logits_of({a})), 0), a);
  EXPECT_EQ(row(apply(*make("top_k"), logits_of({a})), 0), a);  // default 40 > 5
}

TEST(Samplers, TopKOneIsGreedy) {
  const std::vector<float> a = {1.0f, 4.0f, 2.0f, 4.0f, 0.0f};
  EXPECT_EQ(row(apply(*make("top_k", {{"k", std::int64_t{1}}}), logits_of({a})), 0),
            row(apply(*make("greedy"), logits_of({a})), 0));
}

// ---------------------------------------------------------------------------------------------
// top_p
//
// Probabilities by id: 0.15, 0.50, 0.05, 0.30 (logits = their logs). Sorted: id1 0.50, id3 0.30,
// id0 0.15, id2 0.05; cumulative 0.50, 0.80, 0.95, 1.00. The smallest set reaching p:
//   p = 0.40 -> {1}           (the top token alone already has 0.50)
//   p = 0.75 -> {1, 3}        (0.50 < 0.75 <= 0.80)
//   p = 0.85 -> {1, 3, 0}     (0.80 < 0.85 <= 0.95)
//   p = 0.97 -> all four      (0.95 < 0.97)

at::Tensor nucleus_example() {
  return at::log(at::tensor({0.15f, 0.50f, 0.05f, 0.30f})).reshape({1, 4});
}

TEST(Samplers, TopPKeepsTheSmallestSetReachingP) {
  const at::Tensor logits = nucleus_example();
  const std::vector<float> input = row(logits, 0);
  auto kept_for = [&](double p) { return row(apply(*make("top_p", {{"p", p}}), logits), 0); };
  EXPECT_EQ(kept_for(0.40), masked(input, {false, true, false, false}));
  EXPECT_EQ(kept_for(0.75), masked(input, {false, true, false, true}));
  EXPECT_EQ(kept_for(0.85), masked(input, {true, true, false, true}));
  EXPECT_EQ(kept_for(0.97), input);
  EXPECT_EQ(row(apply(*make("top_p"), logits), 0),
            masked(input, {true, true, false, true}));  // 0.9
}

TEST(Samplers, TopPOneKeepsAll) {
  const at::Tensor logits = nucleus_example();
  EXPECT_EQ(row(apply(*make("top_p", {{"p", 1.0}}), logits), 0), row(logits, 0));
  // Even tokens whose probability rounds to nothing next to the rest.
  const std::vector<float> extreme = {0.0f, -200.0f, 50.0f, -90.0f};
  EXPECT_EQ(row(apply(*make("top_p", {{"p", 1.0}}), logits_of({extreme})), 0), extreme);
}

TEST(Samplers, TopPAlwaysKeepsTheTopToken) {
  const std::vector<float> a = {0.0f, 0.1f, 0.2f, 0.3f};
  EXPECT_EQ(row(apply(*make("top_p", {{"p", 1e-9}}), logits_of({a})), 0),
            masked(a, {false, false, false, true}));
}

TEST(Samplers, TopPRowsAreIndependentAndTiesGoToTheLowestIds) {
  // Row 0: uniform over 4, p = 0.6: mass before each (in id order) is 0, .25, .5, .75 -> 3 stay.
  // Row 1: the nucleus example at p = 0.6 -> {1, 3}.
  const std::vector<float> uniform = {0.0f, 0.0f, 0.0f, 0.0f};
  const std::vector<float> example = row(nucleus_example(), 0);
  at::Tensor out = apply(*make("top_p", {{"p", 0.6}}), logits_of({uniform, example}));
  EXPECT_EQ(row(out, 0), masked(uniform, {true, true, true, false}));
  EXPECT_EQ(row(out, 1), masked(example, {false, true, false, true}));
}

// ---------------------------------------------------------------------------------------------
// Chains and errors

TEST(Samplers, GptTinyChainTemperatureThenTopK) {
  // [[generate.samplers]] temperature 0.8, then top_k 40 over a 50-token vocabulary.
  std::vector<float> a(50);
  for (int i = 0; i < 50; ++i) a[i] = static_cast<float>((i * 37) % 50) / 10.0f;
  at::Tensor logits = logits_of({a});
  at::Tensor out = apply(*make("top_k", {{"k", std::int64_t{40}}}, 50),
                         apply(*make("temperature", {{"value", 0.8}}), logits));
  const std::vector<float> result = row(out, 0);
  int finite = 0;
  for (int i = 0; i < 50; ++i) {
    if (std::isfinite(result[i])) {
      ++finite;
      EXPECT_FLOAT_EQ(result[i], a[i] / 0.8f) << i;
      EXPECT_GE(a[i], 1.0f) << i;  // the 10 smallest (0.0 .. 0.9) are the ones masked
    }
  }
  EXPECT_EQ(finite, 40);
}

TEST(Samplers, LogitsMustBeTwoDimensional) {
  auto sampler = make("top_k", {{"k", std::int64_t{2}}});
  try {
    sampler->apply(at::tensor({1.0f, 2.0f, 3.0f}), lmrun::SamplingState{});
    FAIL() << "expected lmrun::Error";
  } catch (const lmrun::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expects floating-point logits of shape (B, V), got [3]"),
              std::string::npos)
        << e.what();
  }
}

TEST(Samplers, OutOfRangeParametersAreErrorsAtCreation) {
  auto message_of = [](const char* name, const char* key, lmrun::Value value) -> std::string {
    try {
      lmrun::Params params = params_for(name, {});
      params.set(key, std::move(value));
      lmrun::test::plugin_registry().create<Sampler>(name, params, lmrun::SamplerContext{8});
    } catch (const lmrun::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  // The schema enforces what it declares even for a caller that skips the host's validation.
  EXPECT_EQ(message_of("top_k", "k", std::int64_t{0}),
            "sampler 'top_k': k: 0 is out of range: expected >= 1");
  EXPECT_EQ(message_of("top_p", "p", 0.0),
            "sampler 'top_p': p: 0.0 is out of range: expected in (0, 1]");
  EXPECT_EQ(message_of("top_p", "p", 1.5),
            "sampler 'top_p': p: 1.5 is out of range: expected in (0, 1]");
  EXPECT_EQ(message_of("temperature", "value", -0.5),
            "sampler 'temperature': value: -0.5 is out of range: expected >= 0");
}

// ---------------------------------------------------------------------------------------------
// min_p, typical: on log-probabilities of [0.5, 0.3, 0.15, 0.05], whose softmax is themselves.

at::Tensor probabilities_row() { return at::log(logits_of({{0.5f, 0.3f, 0.15f, 0.05f}})); }

std::vector<bool> kept_of(const at::Tensor& out) {
  std::vector<bool> kept;
  for (float v : row(out, 0)) kept.push_back(std::isfinite(v));
  return kept;
}

TEST(Samplers, MinPKeepsTokensWithinAFactorOfTheTop) {
  const at::Tensor in = probabilities_row();
  // p = 0.2: at least 0.1, so 0.05 goes; the kept logits are untouched.
  const at::Tensor out = apply(*make("min_p", {{"p", 0.2}}), in);
  EXPECT_EQ(row(out, 0), masked(row(in, 0), {true, true, true, false}));
  EXPECT_EQ(kept_of(apply(*make("min_p", {{"p", 0.0}}), in)),
            (std::vector<bool>{true, true, true, true}));
  EXPECT_EQ(kept_of(apply(*make("min_p", {{"p", 1.0}}), in)),
            (std::vector<bool>{true, false, false, false}));  // only the top
}

TEST(Samplers, TypicalKeepsTheTokensClosestToTheEntropy) {
  // Entropy 1.1421 nats; -log p = 0.693, 1.204, 1.897, 2.996: distances 0.449, 0.062, 0.755,
  // 1.854. In that order (ids 1, 0, 2, 3) the mass before each is 0, 0.3, 0.8, 0.95.
  const at::Tensor in = probabilities_row();
  EXPECT_EQ(kept_of(apply(*make("typical", {{"p", 0.5}}), in)),
            (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(kept_of(apply(*make("typical", {{"p", 0.9}}), in)),
            (std::vector<bool>{true, true, true, false}));
  // A tiny mass keeps the most typical token, which is not the most likely one.
  EXPECT_EQ(kept_of(apply(*make("typical", {{"p", 0.01}}), in)),
            (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(kept_of(apply(*make("typical", {{"p", 1.0}}), in)),
            (std::vector<bool>{true, true, true, true}));
  // Masked tokens (-inf, probability 0) stay masked and do not disturb the entropy.
  at::Tensor with_masked = at::cat({in, logits_of({{-kInf}})}, 1);
  EXPECT_EQ(kept_of(apply(*make("typical", {{"p", 0.5}}), with_masked)),
            (std::vector<bool>{true, true, false, false, false}));
}

// ---------------------------------------------------------------------------------------------
// Penalties, no_repeat_ngram, logit_bias: on [2, -1, 0.5, 3] after a history.

at::Tensor with_history(Sampler& sampler, const std::vector<std::int64_t>& history) {
  const at::Tensor in = logits_of({{2.0f, -1.0f, 0.5f, 3.0f}});
  return sampler.apply(in.clone(), lmrun::SamplingState{&history, nullptr});
}

TEST(Samplers, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOnce) {
  auto penalty = make("repetition_penalty", {{"penalty", 2.0}, {"window", std::int64_t{0}}});
  // 0 seen once and 1 twice: each penalised once; 2 and 3 unseen.
  EXPECT_EQ(row(with_history(*penalty, {0, 1, 1}), 0), (std::vector<float>{1, -2, 0.5, 3}));
  auto last = make("repetition_penalty", {{"penalty", 2.0}, {"window", std::int64_t{1}}});
  EXPECT_EQ(row(with_history(*last, {0, 1, 1}), 0), (std::vector<float>{2, -2, 0.5, 3}));
  EXPECT_EQ(row(apply(*penalty, logits_of({{2.0f, -1.0f}})), 0),
            (std::vector<float>{2, -1}));  // no history: unchanged
  // History ids outside the logits (another vocabulary) are ignored, not an error.
  EXPECT_EQ(row(with_history(*penalty, {9}), 0), (std::vector<float>{2, -1, 0.5, 3}));
}

TEST(Samplers, FrequencyAndPresencePenaltiesSubtractPerCountAndPerToken) {
  auto frequency = make("frequency_penalty", {{"value", 0.5}, {"window", std::int64_t{0}}});
  EXPECT_EQ(row(with_history(*frequency, {0, 1, 1}), 0), (std::vector<float>{1.5, -2, 0.5, 3}));
  auto presence = make("presence_penalty", {{"value", 0.5}, {"window", std::int64_t{0}}});
  EXPECT_EQ(row(with_history(*presence, {0, 1, 1}), 0), (std::vector<float>{1.5, -1.5, 0.5, 3}));
  auto recent = make("frequency_penalty", {{"value", 0.5}, {"window", std::int64_t{2}}});
  EXPECT_EQ(row(with_history(*recent, {0, 1, 1}), 0), (std::vector<float>{2, -2, 0.5, 3}));
}

TEST(Samplers, NoRepeatNgramBansTheTokenThatWouldRepeatAnNgram) {
  auto bigram = make("no_repeat_ngram", {{"n", std::int64_t{2}}});
  // History ends in 1; "1 2" occurred, so 2 is banned.
  EXPECT_EQ(row(with_history(*bigram, {1, 2, 3, 1}), 0), (std::vector<float>{2, -1, -kInf, 3}));
  auto trigram = make("no_repeat_ngram", {{"n", std::int64_t{3}}});
  EXPECT_EQ(row(with_history(*trigram, {1, 2, 3, 1, 2}), 0),
            (std::vector<float>{2, -1, 0.5, -kInf}));
  EXPECT_EQ(row(with_history(*trigram, {1, 2}), 0), (std::vector<float>{2, -1, 0.5, 3}));
  auto unigram = make("no_repeat_ngram", {{"n", std::int64_t{1}}});  // no token twice
  EXPECT_EQ(row(with_history(*unigram, {0, 3}), 0), (std::vector<float>{-kInf, -1, 0.5, -kInf}));
}

TEST(Samplers, LogitBiasAddsPerTokenAndRefusesBadLists) {
  auto bias = make("logit_bias", {{"tokens", std::vector<std::int64_t>{1, 3}},
                                  {"bias", std::vector<double>{5.0, -kInf}}});
  EXPECT_EQ(row(with_history(*bias, {}), 0), (std::vector<float>{2, 4, 0.5, -kInf}));
  EXPECT_THAT(lmrun::test::error_of([] {
                make("logit_bias", {{"tokens", std::vector<std::int64_t>{1, 3}},
                                    {"bias", std::vector<double>{5.0}}});
              }),
              testing::HasSubstr("logit_bias has 2 tokens and 1 biases"));
  EXPECT_THAT(lmrun::test::error_of([] {
                make("logit_bias", {{"tokens", std::vector<std::int64_t>{8}},
                                    {"bias", std::vector<double>{1.0}}});
              }),
              testing::HasSubstr("token 8 is outside the vocabulary (0..7)"));
}

}  // namespace
