// The host's generation loop with real plugins: the KV-cached path draws exactly the tokens of the
// uncached reference (nanoGPT's loop) for transformer, lstm and gru, past the context limit too;
// seeds, stop tokens, prompts, errors, the char tokenizer round trip and the sampler chain builder.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "cli/repl.h"
#include "config/experiment.h"
#include "generate/generate.h"
#include "lmrun/model.h"
#include "lmrun/sampler.h"
#include "lmrun/tokenizer.h"
#include "lmrun/util/utf8.h"
#include "support/test_support.h"

namespace {

using lmrun::test::contains;
using lmrun::test::error_from;

using lmrun::Model;
using lmrun::Sampler;
using lmrun::host::GenerationRequest;
using lmrun::host::GenerationResult;
using Overrides = std::initializer_list<std::pair<const char*, lmrun::Value>>;
using Chain = std::vector<std::shared_ptr<Sampler>>;

constexpr std::int64_t kVocab = 20;
constexpr std::int64_t kBlock = 16;

// ---------------------------------------------------------------------------------------------
// Helpers

// Every declared default, as the host fills them, then the test's overrides.
lmrun::Params params_for(lmrun::Kind kind, const std::string& name, Overrides overrides) {
  return lmrun::test::plugin_params(kind, name, {overrides.begin(), overrides.end()});
}

std::shared_ptr<Model> make_model(const std::string& name, Overrides overrides,
                                  std::int64_t vocab = kVocab) {
  at::manual_seed(1337);
  return lmrun::test::plugin_registry().create<Model>(
      name, params_for(lmrun::Kind::kModel, name, overrides),
      lmrun::ModelContext{vocab, kBlock, 0, -1});
}

std::shared_ptr<Model> small_transformer(std::int64_t vocab = kVocab) {
  return make_model(
      "transformer",
      {{"n_layer", std::int64_t{2}}, {"n_head", std::int64_t{2}}, {"n_embd", std::int64_t{32}}},
      vocab);
}

// Every matrix redrawn from normal(0, std). The default initialisations give near-uniform logits on
// which greedy decoding repeats one token forever (with tied weights, the last one), so it would
// not notice a wrong context; larger weights make the next token depend on the whole window.
void liven(Model& model, double std) {
  at::NoGradGuard no_grad;
  at::manual_seed(7);
  for (at::Tensor& parameter : model.module().parameters()) {
    if (parameter.dim() == 2) parameter.normal_(0, std);
  }
}

std::shared_ptr<Model> lively_transformer() {
  auto model = make_model("transformer", {{"n_layer", std::int64_t{2}},
                                          {"n_head", std::int64_t{2}},
                                          {"n_embd", std::int64_t{32}},
                                          {"tie_weights", false}});
  liven(*model, 0.5);
  return model;
}

std::shared_ptr<Model> lively_rnn(const std::string& cell) {
  auto model = make_model(
      cell,
      {{"n_layer", std::int64_t{2}}, {"n_embd", std::int64_t{16}}, {"n_hidden", std::int64_t{32}}});
  liven(*model, 0.5);
  return model;
}

std::shared_ptr<Sampler> make_sampler(const std::string& name, Overrides overrides = {}) {
  return lmrun::test::plugin_registry().create<Sampler>(
      name, params_for(lmrun::Kind::kSampler, name, overrides), lmrun::SamplerContext{kVocab});
}

Chain greedy() { return {make_sampler("greedy")}; }

Chain greedy_for(std::int64_t vocab) {
  return {lmrun::test::plugin_registry().create<Sampler>(
      "greedy", params_for(lmrun::Kind::kSampler, "greedy", {}), lmrun::SamplerContext{vocab})};
}

Chain temperature_top_k() {
  return {make_sampler("temperature", {{"value", 1.0}}),
          make_sampler("top_k", {{"k", std::int64_t{5}}})};
}

GenerationRequest request_of(std::vector<std::int64_t> prompt, std::int64_t max_new_tokens,
                             std::uint64_t seed = 0, bool use_cache = true) {
  GenerationRequest request;
  request.prompt = std::move(prompt);
  request.max_new_tokens = max_new_tokens;
  request.seed = seed;
  request.use_cache = use_cache;
  return request;
}

std::vector<std::int64_t> run(Model& model, const Chain& chain, GenerationRequest request) {
  return lmrun::host::generate(model, chain, request).tokens;
}

// The same request through both paths; they must agree token for token. Returns the tokens.
std::vector<std::int64_t> expect_cached_matches_uncached(Model& model, const Chain& chain,
                                                         std::vector<std::int64_t> prompt,
                                                         std::int64_t max_new_tokens,
                                                         std::uint64_t seed) {
  const auto cached = run(model, chain, request_of(prompt, max_new_tokens, seed, true));
  const auto uncached = run(model, chain, request_of(prompt, max_new_tokens, seed, false));
  EXPECT_EQ(cached.size(), static_cast<std::size_t>(max_new_tokens));
  EXPECT_EQ(cached, uncached);
  for (std::int64_t id : cached) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, kVocab);
  }
  return cached;
}

std::size_t distinct(const std::vector<std::int64_t>& ids, std::size_t from) {
  return std::set<std::int64_t>(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end()).size();
}

// ---------------------------------------------------------------------------------------------
// Cached against uncached

TEST(Generate, TransformerGreedyCachedMatchesUncachedFarPastTheContext) {
  auto model = lively_transformer();
  // 5 prompt tokens + 250 new: 239 tokens past the 16-token context; every new token after the
  // twelfth comes from a freshly prefilled window.
  const auto tokens = expect_cached_matches_uncached(*model, greedy(), {1, 2, 3, 4, 5}, 250, 0);
  EXPECT_GE(distinct(tokens, 200), 4u) << "greedy settled on a short cycle; the test proves little";
}

TEST(Generate, TransformerSamplingCachedMatchesUncachedPastTheContext) {
  auto model = lively_transformer();
  expect_cached_matches_uncached(*model, temperature_top_k(), {1, 2, 3, 4, 5}, 16 + 50, 42);
}

// The reference path is nanoGPT's loop: argmax of forward() on the last block_size tokens.
TEST(Generate, TransformerGreedyIsNanoGptsLoop) {
  auto model = lively_transformer();
  std::vector<std::int64_t> expected_history = {3, 1, 4, 1, 5};
  {
    at::NoGradGuard no_grad;
    model->module().eval();
    for (int step = 0; step < 40; ++step) {
      const auto n = static_cast<std::int64_t>(expected_history.size());
      const std::int64_t start = std::max<std::int64_t>(0, n - kBlock);
      at::Tensor context = at::tensor(expected_history, at::kLong).slice(0, start).unsqueeze(0);
      at::Tensor logits = model->forward(context, {}).select(1, context.size(1) - 1);  // (1, V)
      expected_history.push_back(logits.argmax(1).item<std::int64_t>());
    }
  }
  const std::vector<std::int64_t> expected(expected_history.begin() + 5, expected_history.end());
  EXPECT_EQ(run(*model, greedy(), request_of({3, 1, 4, 1, 5}, 40)), expected);
}

TEST(Generate, LstmCachedMatchesUncached) {
  auto model = lively_rnn("lstm");
  EXPECT_EQ(model->max_context(), 0);
  EXPECT_GE(distinct(expect_cached_matches_uncached(*model, greedy(), {1, 2, 3}, 80, 0), 0), 4u);
  expect_cached_matches_uncached(*model, temperature_top_k(), {1, 2, 3}, 80, 7);
}

TEST(Generate, GruCachedMatchesUncached) {
  auto model = lively_rnn("gru");
  EXPECT_GE(distinct(expect_cached_matches_uncached(*model, greedy(), {1, 2, 3}, 80, 0), 0), 4u);
  expect_cached_matches_uncached(*model, temperature_top_k(), {1, 2, 3}, 80, 7);
}

TEST(Generate, PromptLongerThanTheContextIsCropped) {
  auto model = lively_transformer();
  std::vector<std::int64_t> prompt;
  for (std::int64_t i = 0; i < 3 * kBlock + 5; ++i) prompt.push_back(i % kVocab);
  expect_cached_matches_uncached(*model, greedy(), prompt, 30, 0);
  expect_cached_matches_uncached(*model, temperature_top_k(), prompt, 30, 3);
  // Only the last block_size tokens count.
  std::vector<std::int64_t> tail(prompt.end() - kBlock, prompt.end());
  EXPECT_EQ(run(*model, temperature_top_k(), request_of(prompt, 30, 3)),
            run(*model, temperature_top_k(), request_of(tail, 30, 3)));
}

// ---------------------------------------------------------------------------------------------
// Seeds, limits, stop tokens, streaming, the training flag

TEST(Generate, SameSeedSameTokensOtherSeedOtherTokens) {
  auto model = small_transformer();
  const Chain chain = {make_sampler("temperature", {{"value", 1.0}})};
  const auto first = run(*model, chain, request_of({1, 2, 3}, 40, 123));
  EXPECT_EQ(run(*model, chain, request_of({1, 2, 3}, 40, 123)), first);
  EXPECT_NE(run(*model, chain, request_of({1, 2, 3}, 40, 124)), first);
}

TEST(Generate, ZeroNewTokensGivesNothing) {
  auto model = small_transformer();
  int calls = 0;
  const GenerationResult result = lmrun::host::generate(*model, greedy(), request_of({1}, 0),
                                                        [&calls](std::int64_t) { ++calls; });
  EXPECT_TRUE(result.tokens.empty());
  EXPECT_EQ(result.tokens_per_second, 0.0);
  EXPECT_EQ(calls, 0);
}

TEST(Generate, StopTokenEndsGenerationAfterEmittingIt) {
  auto model = small_transformer();
  const Chain chain = temperature_top_k();
  const auto full = run(*model, chain, request_of({1, 2, 3}, 60, 9));
  const std::int64_t stop = full[10];
  const auto first = std::find(full.begin(), full.end(), stop);
  const std::vector<std::int64_t> expected(full.begin(), first + 1);

  GenerationRequest request = request_of({1, 2, 3}, 60, 9);
  request.stop_tokens = {kVocab + 5, stop};  // an id that never comes, then the real one
  EXPECT_EQ(run(*model, chain, request), expected);
  request.use_cache = false;
  EXPECT_EQ(run(*model, chain, request), expected);
}

TEST(Generate, StreamsEachTokenAndReportsTiming) {
  auto model = small_transformer();
  std::vector<std::int64_t> streamed;
  const GenerationResult result =
      lmrun::host::generate(*model, temperature_top_k(), request_of({1, 2}, 25, 5),
                            [&streamed](std::int64_t id) { streamed.push_back(id); });
  EXPECT_EQ(streamed, result.tokens);
  EXPECT_GT(result.seconds, 0.0);
  EXPECT_GT(result.tokens_per_second, 0.0);
}

TEST(Generate, RestoresTheTrainingFlag) {
  auto model = small_transformer();
  model->module().train();
  run(*model, greedy(), request_of({1}, 3));
  EXPECT_TRUE(model->module().is_training());
  model->module().eval();
  run(*model, greedy(), request_of({1}, 3));
  EXPECT_FALSE(model->module().is_training());
  // Also when generation fails.
  model->module().train();
  EXPECT_THROW(run(*model, greedy(), request_of({kVocab + 1}, 3)), lmrun::Error);
  EXPECT_TRUE(model->module().is_training());
}

// Dropout would make the two paths disagree; eval mode turns it off.
TEST(Generate, DropoutIsOffWhileGenerating) {
  auto model = make_model("transformer", {{"n_layer", std::int64_t{2}},
                                          {"n_head", std::int64_t{2}},
                                          {"n_embd", std::int64_t{32}},
                                          {"dropout", 0.5}});
  model->module().train();
  expect_cached_matches_uncached(*model, temperature_top_k(), {1, 2, 3}, 30, 11);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(Generate, EmptyPromptIsAnErrorWithAHint) {
  auto model = small_transformer();
  const lmrun::Error e = error_from([&] { run(*model, greedy(), request_of({}, 10)); });
  EXPECT_TRUE(contains(e.what(), "the prompt is empty")) << e.what();
  EXPECT_FALSE(e.hint().empty());
}

TEST(Generate, BadRequestsAreErrors) {
  auto model = small_transformer();
  EXPECT_TRUE(contains(error_from([&] { run(*model, greedy(), request_of({1}, -1)); }).what(),
                       "max_new_tokens is -1"));
  EXPECT_TRUE(contains(error_from([&] {
                         run(*model, greedy(), request_of({1, -3}, 5));
                       }).what(),
                       "prompt token 1 has the negative id -3"));
  const lmrun::Error too_big = error_from([&] { run(*model, greedy(), request_of({2, 25}, 5)); });
  EXPECT_TRUE(contains(too_big.what(), "generate:")) << too_big.what();
  EXPECT_FALSE(too_big.hint().empty());
}

class MaskEverything final : public Sampler {
 public:
  at::Tensor apply(at::Tensor logits, const lmrun::SamplingState&) override {
    return logits.fill_(-std::numeric_limits<float>::infinity());
  }
};

TEST(Generate, ChainThatLeavesNoTokenIsAnError) {
  auto model = small_transformer();
  const Chain chain = {std::make_shared<MaskEverything>()};
  const lmrun::Error e = error_from([&] { run(*model, chain, request_of({1}, 5)); });
  EXPECT_TRUE(contains(e.what(), "cannot draw")) << e.what();
}

// ---------------------------------------------------------------------------------------------
// Text and the sampler chain from the experiment

// A char tokenizer fitted on a line of Shakespeare.
const char* const kCorpus = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
std::shared_ptr<lmrun::Tokenizer> fitted_char_tokenizer() {
  auto tokenizer = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "char", params_for(lmrun::Kind::kTokenizer, "char", {}), lmrun::TokenizerContext{});
  tokenizer->fit(kCorpus);
  return tokenizer;
}

TEST(Generate, TextRoundTripThroughTheCharTokenizer) {
  const std::string corpus = kCorpus;
  auto tokenizer = fitted_char_tokenizer();
  auto model = small_transformer(tokenizer->vocab_size());
  const Chain chain = {make_sampler("temperature", {{"value", 1.0}})};

  std::string streamed;
  const std::string text =
      lmrun::host::generate_text(*model, *tokenizer, chain, "First", 40, 17,
                                 [&streamed](const std::string& piece) { streamed += piece; });
  EXPECT_EQ(text.size(), 40u);  // ASCII: one byte per token
  EXPECT_EQ(streamed, text);
  const std::set<char> alphabet(corpus.begin(), corpus.end());
  for (char c : text) EXPECT_TRUE(alphabet.count(c)) << "'" << c << "'";
  // Without a callback, the same text.
  EXPECT_EQ(lmrun::host::generate_text(*model, *tokenizer, chain, "First", 40, 17), text);
}

TEST(Generate, StopStringsCutTheTextAndAreNeverStreamed) {
  auto tokenizer = fitted_char_tokenizer();
  auto model = small_transformer(tokenizer->vocab_size());
  const Chain chain = {make_sampler("temperature", {{"value", 1.0}})};
  lmrun::host::TextRequest request;
  request.prompt = "First";
  request.max_new_tokens = 60;
  request.seed = 17;
  const lmrun::host::TextResult full =
      lmrun::host::generate_text(*model, *tokenizer, chain, request);
  ASSERT_EQ(full.text.size(), 60u);
  EXPECT_EQ(full.stop_reason, "max_new_tokens");

  // Stop at a 3-character piece of the middle of that text: the same draws up to it, then the
  // text cut before its first occurrence; a stop string that never comes changes nothing.
  const std::string stop = full.text.substr(30, 3);
  const std::size_t cut = full.text.find(stop);
  request.stop = {"never-in-this-text", stop};
  std::vector<std::string> pieces;
  const lmrun::host::TextResult stopped =
      lmrun::host::generate_text(*model, *tokenizer, chain, request,
                                 [&pieces](const std::string& piece) { pieces.push_back(piece); });
  EXPECT_EQ(stopped.text, full.text.substr(0, cut));
  EXPECT_EQ(stopped.tokens, static_cast<std::int64_t>(cut + 3));  // drawn up to the stop's end
  EXPECT_EQ(stopped.stop_reason, "stop string \"" + stop + "\"");
  std::string joined;
  for (const auto& piece : pieces) joined += piece;
  EXPECT_EQ(joined, stopped.text);  // not one character of the stop string was streamed

  // A stop token ends the sample after it, its text kept.
  lmrun::host::TextRequest by_token = request;
  by_token.stop.clear();
  by_token.stop_tokens = tokenizer->encode(full.text.substr(10, 1));
  const lmrun::host::TextResult token_stop =
      lmrun::host::generate_text(*model, *tokenizer, chain, by_token);
  EXPECT_EQ(token_stop.text, full.text.substr(0, full.text.find(full.text[10]) + 1));
  EXPECT_EQ(token_stop.stop_reason, "stop token " + std::to_string(by_token.stop_tokens[0]));
}

TEST(Generate, TextStreamingNeverSplitsACharacter) {
  const std::string corpus = "héllo wörld ✓\n";
  auto tokenizer = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "char", params_for(lmrun::Kind::kTokenizer, "char", {}), lmrun::TokenizerContext{});
  tokenizer->fit(corpus);
  auto model = small_transformer(tokenizer->vocab_size());
  const Chain chain = {make_sampler("temperature", {{"value", 1.0}})};
  std::vector<std::string> pieces;
  const std::string text =
      lmrun::host::generate_text(*model, *tokenizer, chain, "hé", 30, 2,
                                 [&pieces](const std::string& piece) { pieces.push_back(piece); });
  std::string joined;
  for (const auto& piece : pieces) {
    EXPECT_EQ(lmrun::utf8::find_invalid(piece), std::string::npos) << piece;
    joined += piece;
  }
  EXPECT_EQ(pieces.size(), 30u);  // one character per token
  EXPECT_EQ(joined, text);
  const lmrun::Error e =
      error_from([&] { lmrun::host::generate_text(*model, *tokenizer, chain, "", 5, 0); });
  EXPECT_TRUE(contains(e.what(), "encodes to no tokens")) << e.what();
}

// A model that plays a script: the logits after n tokens single out script[n]; it records whether
// it ran in eval mode without autograd. Unbounded, like a recurrent model.
class ScriptedModel final : public Model {
 public:
  ScriptedModel(std::vector<std::int64_t> script, std::int64_t vocab)
      : script_(std::move(script)), vocab_(vocab) {}

  struct State final : lmrun::DecodeState {
    std::int64_t length() const override { return filled; }
    std::int64_t filled = 0;
  };

  torch::nn::Module& module() override { return module_; }
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor&) override {
    std::vector<at::Tensor> rows;
    for (std::int64_t t = 1; t <= inputs.size(1); ++t) rows.push_back(logits_after(t));
    return at::stack(rows, 1);  // (1, T, V)
  }
  std::unique_ptr<lmrun::DecodeState> start_decoding(std::int64_t) override {
    return std::make_unique<State>();
  }
  at::Tensor decode(lmrun::DecodeState& state, const at::Tensor& tokens) override {
    auto& s = dynamic_cast<State&>(state);
    s.filled += tokens.size(1);
    return logits_after(s.filled);  // (1, V)
  }
  std::int64_t max_context() const override { return 0; }
  std::string summary() const override { return "scripted"; }

  bool ran_in_training_mode = false;
  bool ran_with_grad = false;

 private:
  at::Tensor logits_after(std::int64_t length) {
    ran_in_training_mode |= module_.is_training();
    ran_with_grad |= at::GradMode::is_enabled();
    at::Tensor logits = at::zeros({1, vocab_});
    const std::size_t index = static_cast<std::size_t>(length) % script_.size();
    logits[0][script_[index]] = 10.0;
    return logits;  // (1, V)
  }

  torch::nn::Module module_;
  std::vector<std::int64_t> script_;
  std::int64_t vocab_;
};

// Ids are byte strings, so one character may take several tokens (as in byte-level BPE).
class ByteTokenizer final : public lmrun::Tokenizer {
 public:
  explicit ByteTokenizer(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}
  void fit(std::string_view) override {}
  std::vector<std::int64_t> encode(std::string_view text) const override {
    std::vector<std::int64_t> ids;
    for (char c : text) {
      const auto it = std::find(pieces_.begin(), pieces_.end(), std::string(1, c));
      if (it == pieces_.end()) throw lmrun::Error("no token for '" + std::string(1, c) + "'");
      ids.push_back(it - pieces_.begin());
    }
    return ids;
  }
  std::string decode(const std::vector<std::int64_t>& ids) const override {
    std::string text;
    for (std::int64_t id : ids) text += pieces_.at(static_cast<std::size_t>(id));
    return text;
  }
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(pieces_.size()); }
  void save(const std::filesystem::path&) const override {}
  void load(const std::filesystem::path&) override {}

 private:
  std::vector<std::string> pieces_;
};

TEST(Generate, TextStreamingHoldsBackSplitCharacters) {
  // "é" is C3 A9 and "✓" is E2 9C 93, one byte per token.
  const ByteTokenizer tokenizer({"a", "\xC3", "\xA9", "\xE2", "\x9C", "\x93"});
  // After the prompt "a" (1 token): a é ✓ a, then a lone lead byte at the very end.
  ScriptedModel model({0, 0, 1, 2, 3, 4, 5, 0, 1}, 6);
  model.module().train();
  std::vector<std::string> pieces;
  const std::string text =
      lmrun::host::generate_text(model, tokenizer, greedy_for(6), "a", 8, 0,
                                 [&pieces](const std::string& piece) { pieces.push_back(piece); });
  EXPECT_EQ(text,
            "a\xC3\xA9\xE2\x9C\x93"
            "a\xC3");
  // The incomplete last character is flushed at the end, so the pieces always add up to the text.
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "\xC3\xA9", "\xE2\x9C\x93", "a", "\xC3"}));
  EXPECT_FALSE(model.ran_in_training_mode);
  EXPECT_FALSE(model.ran_with_grad);
  EXPECT_TRUE(model.module().is_training());
}

lmrun::host::PluginSpec sampler_spec(int index, const std::string& type, Overrides overrides) {
  lmrun::host::PluginSpec spec;
  spec.kind = lmrun::Kind::kSampler;
  spec.key = "generate.samplers." + std::to_string(index);
  spec.type = type;
  spec.params = params_for(lmrun::Kind::kSampler, type, overrides);
  return spec;
}

TEST(Generate, MakeSamplersBuildsTheChainInOrder) {
  const auto& registry = lmrun::test::plugin_registry();
  const Chain chain =
      lmrun::host::make_samplers(registry,
                                 {sampler_spec(0, "temperature", {{"value", 1.0}}),
                                  sampler_spec(1, "top_k", {{"k", std::int64_t{5}}})},
                                 kVocab);
  ASSERT_EQ(chain.size(), 2u);
  auto model = small_transformer();
  EXPECT_EQ(run(*model, chain, request_of({1, 2}, 30, 8)),
            run(*model, temperature_top_k(), request_of({1, 2}, 30, 8)));

  lmrun::host::PluginSpec bad = sampler_spec(1, "top_k", {});
  bad.params.set("k", std::int64_t{0});  // past the schema's bounds: the factory refuses it
  const lmrun::Error e = error_from([&] {
    lmrun::host::make_samplers(registry, {sampler_spec(0, "greedy", {}), bad}, kVocab);
  });
  EXPECT_TRUE(contains(e.what(), "generate.samplers.1: sampler 'top_k'")) << e.what();
}

}  // namespace

namespace {

using testing::HasSubstr;

TEST(Repl, TurnsContinueTheConversationAndCommandsChangeTheSettings) {
  lmrun::host::Pipeline p;
  p.tokenizer = fitted_char_tokenizer();
  p.model = small_transformer(p.tokenizer->vocab_size());
  liven(*p.model, 0.5);
  lmrun::host::PluginSpec temperature;
  temperature.kind = lmrun::Kind::kSampler;
  temperature.key = "generate.samplers.0";
  temperature.type = "temperature";
  temperature.params = params_for(lmrun::Kind::kSampler, "temperature", {{"value", 1.0}});
  lmrun::host::ReplSettings settings;
  settings.checkpoint = "test";
  settings.samplers = {temperature};
  settings.seed = 1;
  settings.max_new_tokens = 10;
  const auto& registry = lmrun::test::plugin_registry();
  p.samplers = lmrun::host::make_samplers(registry, settings.samplers, p.tokenizer->vocab_size());

  std::istringstream in(
      "First\n/temp 0\n/max 5\nFirst\n/reset\nFirst\n/tmep 2\n/top_k 0\n/seed x\n/settings\n"
      "/beam 3\n/quit\nnever read\n");
  std::ostringstream out;
  EXPECT_EQ(lmrun::host::generate_repl(p, settings, registry, in, out), 0);
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("[10 tokens, "));
  EXPECT_THAT(text, HasSubstr("samplers temperature(value=0.0); seed 2, max 10"));
  EXPECT_THAT(text, HasSubstr("unknown command /tmep (did you mean temp?)"));
  EXPECT_THAT(text, HasSubstr("/seed takes an integer >= 0"));
  EXPECT_THAT(text, HasSubstr("(conversation forgotten)"));
  EXPECT_THAT(text, HasSubstr("max 5, beam 3\n"));
  // Three turns, and nothing after /quit.
  std::size_t turns = 0;
  for (auto at = text.find(" tokens/s"); at != std::string::npos;
       at = text.find(" tokens/s", at + 1))
    ++turns;
  EXPECT_EQ(turns, 3u);
  // After /reset the model sees "First" alone: at temperature 0 that is greedy decoding of it.
  const std::string greedy_text =
      lmrun::host::generate_text(*p.model, *p.tokenizer, {make_sampler("greedy")}, "First", 5, 1);
  const std::string after_reset = text.substr(text.find("(conversation forgotten)"));
  EXPECT_THAT(after_reset, HasSubstr("> " + greedy_text + "\n  [5 tokens, ")) << text;
  // The first turn after /temp 0 saw the whole conversation, so it need not match.
  EXPECT_THAT(text, HasSubstr("context 10 bytes"));  // "First" + 5 new characters at /settings
}

TEST(Repl, ChatRendersTheTurnsAndConditionsOnTheSystemMessage) {
  lmrun::host::Pipeline p;
  p.tokenizer = fitted_char_tokenizer();
  p.model = small_transformer(p.tokenizer->vocab_size());
  liven(*p.model, 0.5);
  p.samplers = {make_sampler("greedy")};
  EXPECT_THAT(lmrun::test::error_of([&] { lmrun::host::system_context(p, "hi"); }),
              HasSubstr("not trained on conversations"));
  // Markers of the corpus's characters, so the char tokenizer knows them.
  p.chat_format = lmrun::ChatFormat{"C:", "B:", "F:", " ", "."};
  lmrun::host::ReplSettings settings;
  settings.checkpoint = "test";
  settings.chat = true;
  settings.system = "First";
  settings.max_new_tokens = 12;
  const auto& registry = lmrun::test::plugin_registry();
  std::istringstream in("we\n/system Citizen\nwe\n/quit\n");
  std::ostringstream out;
  EXPECT_EQ(lmrun::host::generate_repl(p, settings, registry, in, out), 0);
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("lmrun chat: test\nsystem: First\n"));
  EXPECT_THAT(text, HasSubstr("system: Citizen (a new conversation)"));
  // Each answer is what greedy decoding gives for the rendered turn, conditioned on the rendered
  // system turn, cut at the end marker.
  const auto answer = [&](const std::string& system) {
    lmrun::host::TextRequest request;
    request.prompt = "B: we.F: ";
    request.max_new_tokens = 12;
    request.stop = {"."};
    request.context = lmrun::host::system_context(p, system);
    return lmrun::host::generate_text(*p.model, *p.tokenizer, p.samplers, request).text;
  };
  const std::string first = answer("First"), second = answer("Citizen");
  EXPECT_NE(first, second);  // the system message reaches the model
  EXPECT_THAT(text, HasSubstr("> " + first + "\n  [")) << text;
  EXPECT_THAT(text.substr(text.find("(a new conversation)")), HasSubstr("> " + second + "\n  ["))
      << text;
}

}  // namespace

namespace {

// log p(sequence | prompt) under the model, by one forward pass.
double log_probability(lmrun::Model& model, std::vector<std::int64_t> prompt,
                       const std::vector<std::int64_t>& tokens) {
  at::NoGradGuard no_grad;
  const std::size_t start = prompt.size();
  prompt.insert(prompt.end(), tokens.begin(), tokens.end());
  const at::Tensor input = at::tensor(prompt, at::kLong).unsqueeze(0);
  const at::Tensor lp = at::log_softmax(model.forward(input, at::Tensor()).to(at::kDouble), -1);
  double total = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i)
    total += lp[0][static_cast<std::int64_t>(start + i - 1)][tokens[i]].item<double>();
  return total;
}

TEST(BeamSearch, WidthOneIsGreedyAndAWideBeamFindsTheMostProbableSequence) {
  auto model = small_transformer(5);
  liven(*model, 0.8);
  model->module().eval();
  lmrun::host::GenerationRequest request;
  request.prompt = {1, 3};
  request.max_new_tokens = 6;
  const auto greedy_tokens = lmrun::host::generate(*model, greedy_for(5), request).tokens;
  EXPECT_EQ(lmrun::host::beam_search(*model, request, {1, 0.0}).tokens, greedy_tokens);

  // 5^3 = 125 continuations of 3 tokens: a beam of 25 keeps every prefix of 2, so it is exact.
  request.max_new_tokens = 3;
  std::vector<std::int64_t> best;
  double best_lp = -1e300;
  for (std::int64_t a = 0; a < 5; ++a) {
    for (std::int64_t b = 0; b < 5; ++b) {
      for (std::int64_t c = 0; c < 5; ++c) {
        const double lp = log_probability(*model, request.prompt, {a, b, c});
        if (lp > best_lp) {
          best_lp = lp;
          best = {a, b, c};
        }
      }
    }
  }
  const auto beam = lmrun::host::beam_search(*model, request, {25, 0.0});
  EXPECT_EQ(beam.tokens, best);
  EXPECT_NEAR(beam.log_probability, best_lp, 1e-5);  // float logits, batched or not
  // Never worse than greedy's sequence, and the score is the sequence's log probability.
  const auto greedy3 = lmrun::host::generate(*model, greedy_for(5), request).tokens;
  EXPECT_GE(beam.log_probability, log_probability(*model, request.prompt, greedy3) - 1e-5);

  // A stop token ends a hypothesis there; deterministic from one call to the next.
  request.max_new_tokens = 8;
  request.stop_tokens = {best[0]};
  const auto stopped = lmrun::host::beam_search(*model, request, {4, 1.0});
  ASSERT_FALSE(stopped.tokens.empty());
  for (std::size_t i = 0; i + 1 < stopped.tokens.size(); ++i)
    EXPECT_NE(stopped.tokens[i], best[0]) << "a stop token inside a hypothesis";
  EXPECT_EQ(lmrun::host::beam_search(*model, request, {4, 1.0}).tokens, stopped.tokens);
  EXPECT_THAT(lmrun::test::error_of([&] {
                lmrun::host::beam_search(*model, request, {0, 1.0});
              }),
              HasSubstr("beam width 0 < 1"));
}

// The cached beam (each hypothesis carrying its parent's decoding state, DecodeState::select_rows)
// finds what recomputing every context finds, for every model kind, stop tokens and a length
// penalty included; a prompt and answer longer than the context fall back to recomputing.
TEST(BeamSearch, TheCachedBeamEqualsTheRecomputedOne) {
  for (const char* kind : {"transformer", "lstm", "gru"}) {
    SCOPED_TRACE(kind);
    auto model = std::string(kind) == "transformer" ? lively_transformer() : lively_rnn(kind);
    model->module().eval();
    lmrun::host::GenerationRequest request;
    request.prompt = {1, 3, 5, 2};
    request.max_new_tokens = 10;
    for (const auto& stops : {std::vector<std::int64_t>{}, std::vector<std::int64_t>{4}}) {
      request.stop_tokens = stops;
      for (std::int64_t width : {1, 3, 6}) {
        const auto cached = lmrun::host::beam_search(*model, request, {width, 1.0, true});
        const auto recomputed = lmrun::host::beam_search(*model, request, {width, 1.0, false});
        EXPECT_TRUE(cached.cached);  // the states were carried, not recomputed
        EXPECT_FALSE(recomputed.cached);
        EXPECT_EQ(cached.tokens, recomputed.tokens) << "width " << width;
        EXPECT_NEAR(cached.log_probability, recomputed.log_probability, 1e-4);
        EXPECT_NEAR(cached.log_probability, log_probability(*model, request.prompt, cached.tokens),
                    1e-4);
      }
    }
  }
  // Past the context (kBlock positions), the transformer's beam recomputes cropped windows.
  auto model = lively_transformer();
  lmrun::host::GenerationRequest request;
  request.prompt = {1, 2, 3};
  request.max_new_tokens = kBlock + 4;
  const auto past = lmrun::host::beam_search(*model, request, {3, 1.0, true});
  EXPECT_FALSE(past.cached);
  EXPECT_EQ(past.tokens.size(), static_cast<std::size_t>(kBlock + 4));
}

}  // namespace
