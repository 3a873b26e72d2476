// The `transformer` model plugin through the real loader: what is its own. The model contracts
// (shapes, causality, KV-cached and batch-1 decoding against the full forward, select_rows,
// checkpoint round trips, eval determinism) are checked by the conformance suite at gpt_tiny's
// size and in every variant (tests/conformance/CMakeLists.txt). Here: checkpoint key names, the
// padding mask, weight tying, the gpt_tiny parameter count, GPT-2 initialisation, context and
// configuration errors, the variants' structure, dropout in training, and a short training run.
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include "lmrun/model.h"
#include "support/test_support.h"

namespace {

using lmrun::test::contains;
using lmrun::test::error_of;

using lmrun::Model;

constexpr std::int64_t kVocab = 65;  // tinyshakespeare's characters
constexpr std::int64_t kBlock = 64;

// ---------------------------------------------------------------------------------------------
// Helpers

lmrun::Params with(std::initializer_list<std::pair<const char*, lmrun::Value>> values) {
  lmrun::Params params;
  for (const auto& [key, value] : values) params.set(key, value);
  return params;
}

// Every declared default, as the host fills them, then the test's overrides.
lmrun::Params params_for(const lmrun::Params& overrides) {
  return lmrun::test::plugin_params(lmrun::Kind::kModel, "transformer", overrides.values());
}

std::shared_ptr<Model> make(const lmrun::Params& overrides = {}, std::int64_t vocab = kVocab,
                            std::int64_t sequence_length = kBlock) {
  torch::manual_seed(1337);
  return lmrun::test::plugin_registry().create<Model>(
      "transformer", params_for(overrides), lmrun::ModelContext{vocab, sequence_length, 0, -1});
}

// A small, fast configuration for tests that do not need gpt_tiny's size.
lmrun::Params small(std::initializer_list<std::pair<const char*, lmrun::Value>> extra = {}) {
  lmrun::Params params = with(
      {{"n_layer", std::int64_t{2}}, {"n_head", std::int64_t{4}}, {"n_embd", std::int64_t{32}}});
  for (const auto& [key, value] : extra) params.set(key, value);
  return params;
}

at::Tensor random_tokens(std::int64_t batch, std::int64_t time, std::int64_t vocab = kVocab) {
  return at::randint(vocab, {batch, time}, at::kLong);
}

at::Tensor named_parameter(Model& model, const std::string& name) {
  for (const auto& item : model.module().named_parameters()) {
    if (item.key() == name) return item.value();
  }
  return {};
}

std::set<std::string> parameter_names(Model& model) {
  std::set<std::string> names;
  for (const auto& item : model.module().named_parameters()) names.insert(item.key());
  return names;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// ---------------------------------------------------------------------------------------------
// Registration and checkpoint keys

TEST(Transformer, DeclaresTheParametersExperimentsUse) {
  const lmrun::Registration* registration =
      lmrun::test::plugin_registry().find(lmrun::Kind::kModel, "transformer");
  ASSERT_NE(registration, nullptr);
  std::vector<std::string> names;
  for (const auto& spec : registration->params) names.push_back(spec.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"n_layer", "n_head", "n_embd", "dropout", "bias", "norm",
                                      "positions", "tie_weights", "gelu", "block_size"}));
  for (const auto& spec : registration->params) {
    EXPECT_TRUE(spec.default_value.has_value()) << spec.name;
    EXPECT_FALSE(spec.doc.empty()) << spec.name;
  }
}

TEST(Transformer, CheckpointKeysAreTheDocumentedOnes) {
  auto model = make(small({{"n_layer", std::int64_t{1}}, {"tie_weights", false}}));
  EXPECT_EQ(parameter_names(*model),
            (std::set<std::string>{
                "wte.weight", "wpe.weight", "blocks.0.ln_1.weight", "blocks.0.ln_1.bias",
                "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
                "blocks.0.attn.proj.bias", "blocks.0.ln_2.weight", "blocks.0.ln_2.bias",
                "blocks.0.mlp.fc.weight", "blocks.0.mlp.fc.bias", "blocks.0.mlp.proj.weight",
                "blocks.0.mlp.proj.bias", "ln_f.weight", "ln_f.bias", "lm_head.weight"}));
  EXPECT_TRUE(model->module().named_buffers().is_empty());  // derived constants are not state
}

TEST(Transformer, BlockSizeZeroTakesTheDataSequenceLength) {
  EXPECT_EQ(make(small(), kVocab, 32)->max_context(), 32);
  EXPECT_EQ(make(small({{"block_size", std::int64_t{16}}}), kVocab, 32)->max_context(), 16);
}

// ---------------------------------------------------------------------------------------------
// Masks

TEST(Transformer, RightPaddingMaskLeavesRealTokensAlone) {
  auto model = make(small());
  model->module().eval();
  at::NoGradGuard no_grad;
  at::Tensor tokens = random_tokens(2, 12);
  at::Tensor mask = at::ones({2, 12}, at::kBool);
  mask[1].narrow(0, 8, 4).fill_(false);  // the second row has 8 real tokens
  at::Tensor plain = model->forward(tokens, {});
  at::Tensor masked = model->forward(tokens, mask);
  EXPECT_TRUE(at::isfinite(masked).all().item<bool>());
  EXPECT_LT(max_abs_diff(masked[0], plain[0]), 1e-6);
  EXPECT_LT(max_abs_diff(masked[1].narrow(0, 0, 8), plain[1].narrow(0, 0, 8)), 1e-6);
}

// ---------------------------------------------------------------------------------------------
// Conditioning: the context (a system turn) read as a prefix

TEST(Transformer, ContextIsReadAsAPrefixOfEachRowsRealTokens) {
  auto model = make(small());
  model->module().eval();
  at::NoGradGuard no_grad;
  EXPECT_TRUE(model->uses_context());
  const at::Tensor inputs = random_tokens(2, 10);
  lmrun::Conditioning context;
  context.tokens = random_tokens(2, 6);
  context.mask = at::ones({2, 6}, at::kBool);
  context.mask[1].narrow(0, 4, 2).fill_(false);  // the second row's context has 4 real tokens
  const at::Tensor conditioned = model->forward_conditioned(inputs, {}, context);
  ASSERT_EQ(conditioned.sizes(), (std::vector<std::int64_t>{2, 10, kVocab}));
  // Row by row: the same as forward() on the context's real tokens followed by the inputs.
  for (std::int64_t row = 0; row < 2; ++row) {
    const std::int64_t real = row == 0 ? 6 : 4;
    const at::Tensor joined =
        at::cat({context.tokens[row].narrow(0, 0, real), inputs[row]}).unsqueeze(0);
    const at::Tensor expected = model->forward(joined, {}).narrow(1, real, 10);
    EXPECT_LT(max_abs_diff(conditioned[row], expected[0]), 1e-5) << "row " << row;
  }
  // The context matters, and decoding after start_decoding_conditioned() agrees with forward.
  lmrun::Conditioning other = context;
  other.tokens = random_tokens(2, 6);
  EXPECT_GT(max_abs_diff(model->forward_conditioned(inputs, {}, other), conditioned), 1e-3);
  lmrun::Conditioning first;
  first.tokens = context.tokens.narrow(0, 0, 1);
  auto state = model->start_decoding_conditioned(1, first);
  EXPECT_EQ(state->length(), 6);
  const at::Tensor last = model->decode(*state, inputs.narrow(0, 0, 1));
  EXPECT_LT(max_abs_diff(last[0], conditioned[0][9]), 1e-4);
}

TEST(Transformer, ContextAndInputsPastTheBlockSizeAreAClearError) {
  auto model = make(small({{"block_size", std::int64_t{16}}}));
  lmrun::Conditioning context;
  context.tokens = random_tokens(1, 8);
  const std::string message =
      error_of([&] { model->forward_conditioned(random_tokens(1, 12), {}, context); });
  EXPECT_TRUE(contains(message, "a context of 8 tokens and 12 inputs exceed block_size 16"))
      << message;
}

// ---------------------------------------------------------------------------------------------
// Weights: tying, count, initialisation

TEST(Transformer, TiedHeadIsTheTokenEmbedding) {
  auto tied = make(small());
  at::Tensor wte = named_parameter(*tied, "wte.weight");
  ASSERT_TRUE(wte.defined());
  // Registered once, so optimizers step it once and counts do not double it.
  EXPECT_FALSE(named_parameter(*tied, "lm_head.weight").defined());

  // The head reads wte's storage: a gradient reaches rows of tokens absent from the input, and
  // zeroing wte zeroes every logit.
  at::Tensor tokens = at::zeros({1, 8}, at::kLong);  // token 0 only
  tied->forward(tokens, {}).sum().backward();
  EXPECT_GT(wte.grad()[5].abs().sum().item<double>(), 0.0);
  {
    at::NoGradGuard no_grad;
    wte.zero_();
    EXPECT_EQ(tied->forward(tokens, {}).abs().max().item<double>(), 0.0);
  }

  auto untied = make(small({{"tie_weights", false}}));
  at::Tensor head = named_parameter(*untied, "lm_head.weight");
  ASSERT_TRUE(head.defined());
  EXPECT_NE(head.data_ptr(), named_parameter(*untied, "wte.weight").data_ptr());
}

TEST(Transformer, GptTinyParameterCountMatchesTheFormula) {
  // experiments/gpt_tiny.toml: n_layer 4, n_head 4, n_embd 128, bias, tied; vocab 65, block 64.
  auto model = make();
  const std::int64_t V = kVocab, P = kBlock, C = 128, L = 4;
  const std::int64_t per_block = 2 * (2 * C)            // ln_1, ln_2: weight and bias
                                 + (C * 3 * C + 3 * C)  // attn.qkv
                                 + (C * C + C)          // attn.proj
                                 + (C * 4 * C + 4 * C)  // mlp.fc
                                 + (4 * C * C + C);     // mlp.proj
  const std::int64_t expected = V * C + P * C + L * per_block + 2 * C;  // + wte, wpe, ln_f
  std::int64_t counted = 0;
  for (const at::Tensor& p : model->module().parameters()) counted += p.numel();
  EXPECT_EQ(counted, expected);
  EXPECT_EQ(expected, 809856);
  EXPECT_TRUE(contains(model->summary(), std::to_string(expected) + " total")) << model->summary();
  EXPECT_TRUE(contains(model->summary(), std::to_string(expected - P * C) + " without"))
      << model->summary();
}

TEST(Transformer, Gpt2InitialisationScalesResidualProjections) {
  auto model = make(with({{"n_layer", std::int64_t{4}}, {"n_embd", std::int64_t{256}}}));
  const double residual_std = 0.02 / std::sqrt(2.0 * 4);
  for (const char* name : {"blocks.2.mlp.proj.weight", "blocks.1.attn.proj.weight"}) {
    at::Tensor w = named_parameter(*model, name);
    ASSERT_TRUE(w.defined()) << name;
    EXPECT_NEAR(w.std().item<double>(), residual_std, 0.05 * residual_std) << name;
    EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.05 * residual_std) << name;
  }
  for (const char* name : {"blocks.0.mlp.fc.weight", "blocks.3.attn.qkv.weight", "wte.weight"}) {
    EXPECT_NEAR(named_parameter(*model, name).std().item<double>(), 0.02, 0.002) << name;
  }
  EXPECT_EQ(named_parameter(*model, "blocks.0.attn.qkv.bias").abs().max().item<double>(), 0.0);
  EXPECT_EQ(named_parameter(*model, "blocks.0.ln_1.weight").min().item<double>(), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Incremental decoding: its errors

TEST(Transformer, SingleSequenceDecodingRejectsAnUnknownToken) {
  lmrun::test::expect_decode_rejects_unknown_token(*make(small()), kVocab);
}

TEST(Transformer, DecodingPastTheContextIsAClearError) {
  auto model = make(small({{"block_size", std::int64_t{8}}}));
  model->module().eval();
  ASSERT_EQ(model->max_context(), 8);
  auto state = model->start_decoding(1);
  model->decode(*state, random_tokens(1, 8));  // exactly full
  EXPECT_EQ(state->length(), 8);
  const std::string message = error_of([&] { model->decode(*state, random_tokens(1, 1)); });
  EXPECT_TRUE(contains(message, "cannot decode 1 more token(s) after 8")) << message;
  EXPECT_TRUE(contains(message, "exceed the context of 8 tokens (block_size)")) << message;
  EXPECT_EQ(state->length(), 8);  // the state is unchanged by the refusal

  auto fresh = model->start_decoding(1);
  EXPECT_TRUE(contains(error_of([&] { model->decode(*fresh, random_tokens(1, 9)); }),
                       "exceed the context of 8 tokens"));
  EXPECT_TRUE(contains(error_of([&] { model->forward(random_tokens(1, 9), {}); }),
                       "a sequence of 9 tokens is longer than block_size = 8"));
}

TEST(Transformer, DecodingChecksTheBatch) {
  auto model = make(small());
  auto state = model->start_decoding(2);
  EXPECT_TRUE(contains(error_of([&] { model->decode(*state, random_tokens(3, 1)); }),
                       "holds a batch of 2"));
  EXPECT_TRUE(contains(error_of([&] { model->start_decoding(0); }), "batch size >= 1"));
}

// ---------------------------------------------------------------------------------------------
// Configuration errors and variants

TEST(Transformer, EmbeddingWidthMustBeDivisibleByHeads) {
  const std::string message = error_of([] {
    make(with({{"n_embd", std::int64_t{130}}, {"n_head", std::int64_t{4}}}));
  });
  EXPECT_TRUE(contains(message, "model 'transformer'")) << message;
  EXPECT_TRUE(contains(message, "n_embd (130) must be divisible by n_head (4)")) << message;

  // The same rule runs while the host validates an experiment, before anything is built.
  const lmrun::Registration* registration =
      lmrun::test::plugin_registry().find(lmrun::Kind::kModel, "transformer");
  ASSERT_TRUE(registration->check);
  EXPECT_TRUE(contains(error_of([&] {
                         registration->check(params_for(
                             with({{"n_embd", std::int64_t{130}}, {"n_head", std::int64_t{4}}})));
                       }),
                       "n_embd (130) must be divisible by n_head (4)"));
  registration->check(params_for({}));  // the defaults pass
}

TEST(Transformer, RmsNormAndSinusoidalVariantsRunAndDiffer) {
  torch::manual_seed(3);
  at::Tensor tokens = random_tokens(2, 16);
  auto run = [&](std::shared_ptr<Model> model) {
    model->module().eval();
    at::NoGradGuard no_grad;
    at::Tensor logits = model->forward(tokens, {});
    EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{2, 16, kVocab}));
    EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
    return logits;
  };
  at::Tensor base = run(make(small()));
  auto rms = make(small({{"norm", std::string("rmsnorm")}}));
  EXPECT_FALSE(named_parameter(*rms, "blocks.0.ln_1.bias").defined());  // RMSNorm has no bias
  EXPECT_GT(max_abs_diff(run(rms), base), 1e-4);
  auto sinusoidal = make(small({{"positions", std::string("sinusoidal")}}));
  EXPECT_FALSE(named_parameter(*sinusoidal, "wpe.weight").defined());
  EXPECT_GT(max_abs_diff(run(sinusoidal), base), 1e-4);
}

// In eval mode it is off: the conformance suite's EvalIsDeterministicWithoutGradients runs with
// dropout = 0.5 (conformance.transformer.small).
TEST(Transformer, DropoutIsActiveInTraining) {
  auto model = make(small({{"dropout", 0.5}}));
  at::Tensor tokens = random_tokens(2, 16);
  at::NoGradGuard no_grad;
  model->module().train();
  EXPECT_GT(max_abs_diff(model->forward(tokens, {}), model->forward(tokens, {})), 1e-4);
}

// ---------------------------------------------------------------------------------------------
// Training sanity

TEST(Transformer, ThirtyAdamStepsLearnARepeatedSequence) {
  auto model = make(small());
  model->module().train();
  // "abcdefgh" over and over: every next token is determined by the current one.
  at::Tensor stream = at::arange(33, at::kLong).remainder(8).unsqueeze(0).repeat({4, 1});
  at::Tensor inputs = stream.narrow(1, 0, 32), targets = stream.narrow(1, 1, 32);
  torch::optim::Adam adam(model->module().parameters(), torch::optim::AdamOptions(3e-3));
  auto loss_now = [&] {
    at::Tensor logits = model->forward(inputs, {});
    return at::cross_entropy_loss(logits.reshape({-1, kVocab}), targets.reshape({-1}));
  };
  const double first = loss_now().item<double>();
  EXPECT_NEAR(first, std::log(double(kVocab)), 0.5);  // near-uniform at initialisation
  for (int step = 0; step < 30; ++step) {
    adam.zero_grad();
    at::Tensor loss = loss_now();
    loss.backward();
    adam.step();
  }
  const double last = loss_now().item<double>();
  EXPECT_LT(last, 0.25 * first) << "loss " << first << " -> " << last;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Interchange: GPT-2's and nanoGPT's names (interchange.h)

std::string mismatch_of(Model& model, const std::string& layout) {
  for (const lmrun::WeightLayout& l : model.weight_layouts())
    if (l.name == layout) return l.mismatch;
  return "(no such layout)";
}

TEST(Transformer, TanhGeluIsGpt2sAndTheDecodingKernelAgrees) {
  auto exact = make(small());
  auto tanh = make(small({{"gelu", std::string("tanh")}}));
  const at::Tensor tokens = random_tokens(1, 12);
  exact->module().eval();
  tanh->module().eval();
  torch::NoGradGuard no_grad;
  // Weights large enough for pre-activations of order 1, where the two GELUs differ (~1e-3); at
  // GPT-2's initial scale they agree to 1e-7.
  auto exact_params = exact->module().named_parameters();
  for (auto& item : tanh->module().named_parameters()) {
    item.value().normal_(0.0, 0.3);
    exact_params[item.key()].copy_(item.value());
  }
  const at::Tensor full = tanh->forward(tokens, {});
  EXPECT_GT(max_abs_diff(full, exact->forward(tokens, {})), 1e-6);  // the same weights (seed)
  // Token by token through the single-sequence kernel, against the batched forward.
  auto state = tanh->start_decoding(1);
  for (std::int64_t t = 0; t < 12; ++t) {
    const at::Tensor step = tanh->decode(*state, tokens.narrow(1, t, 1));
    EXPECT_LT(max_abs_diff(step[0], full[0][t]), 1e-4) << "position " << t;
  }
}

TEST(Transformer, SaysWhyAnArchitectureIsNotGpt2sOrNanoGpts) {
  EXPECT_EQ(mismatch_of(*make(small()), "gpt2"), "");
  EXPECT_EQ(mismatch_of(*make(small()), "nanogpt"), "");
  EXPECT_EQ(mismatch_of(*make(small({{"gelu", std::string("tanh")}})), "gpt2"), "");
  EXPECT_TRUE(contains(mismatch_of(*make(small({{"gelu", std::string("tanh")}})), "nanogpt"),
                       "gelu = tanh"));
  EXPECT_TRUE(contains(mismatch_of(*make(small({{"norm", std::string("rmsnorm")}})), "gpt2"),
                       "norm = rmsnorm"));
  EXPECT_TRUE(contains(mismatch_of(*make(small({{"bias", false}})), "gpt2"), "bias = false"));
  EXPECT_EQ(mismatch_of(*make(small({{"bias", false}})), "nanogpt"), "");
  EXPECT_TRUE(contains(mismatch_of(*make(small({{"tie_weights", false}})), "nanogpt"),
                       "tie_weights = false"));
  EXPECT_TRUE(
      contains(mismatch_of(*make(small({{"positions", std::string("sinusoidal")}})), "gpt2"),
               "positions = sinusoidal"));
  auto rms = make(small({{"norm", std::string("rmsnorm")}}));
  EXPECT_TRUE(contains(error_of([&] { rms->export_weights("gpt2"); }), "norm = rmsnorm"));
  EXPECT_TRUE(contains(error_of([&] { rms->export_weights("onnx"); }), "no weight layout"));
}

TEST(Transformer, Gpt2LayoutIsHuggingFacesNamesWithConv1dWeights) {
  auto model = make(small({{"n_layer", std::int64_t{1}}}));
  const lmrun::ExternalWeights out = model->export_weights("gpt2");
  std::map<std::string, at::Tensor> by_name;
  for (const auto& t : out.tensors) by_name[t.name] = t.value;
  EXPECT_EQ(by_name.size(), 16u);  // every parameter once; the tied head is wte
  EXPECT_FALSE(by_name.count("lm_head.weight"));
  EXPECT_TRUE(at::equal(by_name.at("transformer.h.0.attn.c_attn.weight"),
                        named_parameter(*model, "blocks.0.attn.qkv.weight").t()));
  EXPECT_TRUE(at::equal(by_name.at("transformer.h.0.mlp.c_proj.weight"),
                        named_parameter(*model, "blocks.0.mlp.proj.weight").t()));
  EXPECT_TRUE(at::equal(by_name.at("transformer.ln_f.bias"), named_parameter(*model, "ln_f.bias")));
  EXPECT_TRUE(contains(out.config_json, "\"model_type\":\"gpt2\""));
  EXPECT_TRUE(contains(out.config_json, "\"activation_function\":\"gelu\""));
}

TEST(Transformer, ExportedLayoutsImportBackToTheOwnNamesExactly) {
  for (const char* layout : {"gpt2", "nanogpt"}) {
    SCOPED_TRACE(layout);
    auto model = make(small());
    std::vector<lmrun::NamedTensor> tensors = model->export_weights(layout).tensors;
    // Hugging Face's hub files drop the "transformer." prefix and may carry mask buffers.
    for (auto& t : tensors)
      if (t.name.rfind("transformer.", 0) == 0 && std::string(layout) == "gpt2")
        t.name = t.name.substr(12);
    tensors.push_back({"h.0.attn.masked_bias", at::zeros({1})});
    const std::vector<lmrun::NamedTensor> back = model->import_weights(layout, tensors);
    std::set<std::string> names;
    for (const auto& t : back) {
      names.insert(t.name);
      EXPECT_TRUE(at::equal(t.value, named_parameter(*model, t.name))) << t.name;
    }
    EXPECT_EQ(names, parameter_names(*model));
  }
}

TEST(Transformer, ImportPassesUnknownNamesOnForTheHostToReport) {
  auto model = make(small());
  const auto back = model->import_weights(
      "nanogpt", {{"transformer.h.0.attn.rotary.freq", at::zeros({2})}, {"extra", at::zeros({1})}});
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].name, "transformer.h.0.attn.rotary.freq");
  EXPECT_EQ(back[1].name, "extra");
}

// ---------------------------------------------------------------------------------------------
// INT8 inference (Model::quantize)

TEST(Transformer, Int8DecodingAgreesWithItsBatchedPassAndStaysCloseToFp32) {
  auto int8 = make(small());
  auto fp32 = make(small());  // the same seed: the same weights
  int8->module().eval();
  fp32->module().eval();
  const std::string report = int8->quantize("int8");
  EXPECT_TRUE(contains(report, "8 linear weights")) << report;
  torch::NoGradGuard no_grad;
  const at::Tensor tokens = random_tokens(1, 12);
  const at::Tensor full = int8->forward(tokens, {});  // the op path, activations quantized too
  auto state = int8->start_decoding(1);               // the INT8 single-token kernel
  for (std::int64_t t = 0; t < 12; ++t) {
    const at::Tensor step = int8->decode(*state, tokens.narrow(1, t, 1));
    EXPECT_LT(max_abs_diff(step[0], full[0][t]), 1e-4) << "position " << t;
  }
  const at::Tensor reference = fp32->forward(tokens, {});
  const double relative = ((full - reference).norm() / reference.norm()).item<double>();
  EXPECT_GT(relative, 0.0);   // quantized for real
  EXPECT_LT(relative, 0.05);  // by quantization error only
}

TEST(Transformer, QuantizeRefusesUnknownSchemesAndASecondPass) {
  auto model = make(small());
  model->module().eval();
  EXPECT_TRUE(
      contains(error_of([&] { model->quantize("int4"); }), "no quantization scheme 'int4'"));
  model->quantize("int8");
  EXPECT_TRUE(contains(error_of([&] { model->quantize("int8"); }), "quantized already"));
}
