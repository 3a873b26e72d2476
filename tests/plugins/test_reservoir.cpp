// The `reservoir` plugin through the real loader: what is its own. The model contracts (shapes,
// causality, decoding against forward, select_rows, checkpoint round trips, eval determinism) run
// in the conformance suite for the linear, cnn2d and lif configurations
// (tests/conformance/CMakeLists.txt). Here: fixed weights that do not train, the reservoir seed,
// the measured spectral radius, the echo state property, stateful decoding and beam rows, the
// ridge readout, vector outputs, conditioning, the diagnostics and the option errors.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include "lmrun/model.h"
#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

using lmrun::Model;
using lmrun::test::contains;
using lmrun::test::error_of;

constexpr std::int64_t kVocab = 29;
constexpr std::int64_t kContext = 32;

using Overrides = std::map<std::string, lmrun::Value>;

// Small and fast: 96 units, learned embedding of 16.
Overrides small(Overrides extra = {}) {
  Overrides o = {{"n_units", std::int64_t{96}},
                 {"n_embd", std::int64_t{16}},
                 {"sparsity", 0.9},
                 {"readout_hidden", std::int64_t{24}},
                 {"window", std::int64_t{4}},
                 {"channels", std::int64_t{3}}};
  for (const auto& [k, v] : extra) o[k] = v;
  return o;
}

std::shared_ptr<Model> make(const Overrides& overrides,
                            lmrun::ModelContext context = {kVocab, kContext, 0, -1}) {
  torch::manual_seed(1337);
  const lmrun::Params params =
      lmrun::test::plugin_params(lmrun::Kind::kModel, "reservoir", overrides);
  return lmrun::test::plugin_registry().create<Model>("reservoir", params, context);
}

at::Tensor random_tokens(std::int64_t batch, std::int64_t time, std::uint64_t seed = 7) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return at::randint(kVocab, {batch, time}, g, at::kLong);
}

at::Tensor named(torch::nn::Module& module, const std::string& name) {
  for (const auto& item : module.named_parameters()) {
    if (item.key() == name) return item.value();
  }
  for (const auto& item : module.named_buffers()) {
    if (item.key() == name) return item.value();
  }
  return {};
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// The recurrent matrix from its CSR buffers, dense (N, N).
at::Tensor recurrent_matrix(Model& model) {
  const at::Tensor row_ptr = named(model.module(), "reservoir.row_ptr");
  const at::Tensor col = named(model.module(), "reservoir.col");
  const at::Tensor value = named(model.module(), "reservoir.value");
  const std::int64_t n = row_ptr.numel() - 1;
  const at::Tensor rows = at::repeat_interleave(at::arange(n, at::kLong),
                                                row_ptr.narrow(0, 1, n) - row_ptr.narrow(0, 0, n));
  at::Tensor dense = at::zeros({n, n}, at::kDouble);
  dense.index_put_({rows, col}, value.to(at::kDouble), /*accumulate=*/true);
  return dense;
}

// ---------------------------------------------------------------------------------------------
// Fixed weights

TEST(Reservoir, ReservoirWeightsAreBuffersThatAnOptimizerStepLeavesAlone) {
  auto model = make(small({{"readout", std::string("cnn2d")}}));
  for (const auto& item : model->module().named_parameters()) {
    EXPECT_FALSE(contains(item.key(), "reservoir.")) << item.key() << " is trained";
  }
  const std::vector<std::string> fixed = {"reservoir.row_ptr", "reservoir.col",
                                          "reservoir.value",   "reservoir.input_weight",
                                          "reservoir.bias",    "reservoir.leak"};
  std::vector<at::Tensor> before;
  for (const auto& name : fixed) {
    ASSERT_TRUE(named(model->module(), name).defined()) << name;
    before.push_back(named(model->module(), name).clone());
  }
  const at::Tensor readout_before = named(model->module(), "readout.out.weight").clone();
  const at::Tensor embed_before = named(model->module(), "embed.weight").clone();

  model->module().train();
  torch::optim::Adam adam(model->module().parameters(), torch::optim::AdamOptions(1e-2));
  const at::Tensor tokens = random_tokens(3, 20);
  const at::Tensor logits = model->forward(tokens, {});
  at::cross_entropy_loss(logits.reshape({-1, kVocab}), random_tokens(3, 20, 9).reshape({-1}))
      .backward();
  adam.step();

  for (std::size_t i = 0; i < fixed.size(); ++i) {
    EXPECT_TRUE(at::equal(before[i], named(model->module(), fixed[i]))) << fixed[i];
  }
  EXPECT_GT(max_abs_diff(readout_before, named(model->module(), "readout.out.weight")), 0.0);
  // The learned embedding trains through the reservoir (backpropagation through time).
  EXPECT_GT(max_abs_diff(embed_before, named(model->module(), "embed.weight")), 0.0);
}

TEST(Reservoir, TheReservoirSeedAloneDecidesTheFixedWeights) {
  auto a = make(small());
  torch::manual_seed(99);  // the experiment's seed does not reach the reservoir
  auto b = make(small());
  auto c = make(small({{"reservoir_seed", std::int64_t{2}}}));
  for (const char* name :
       {"reservoir.col", "reservoir.value", "reservoir.input_weight", "reservoir.bias"}) {
    EXPECT_TRUE(at::equal(named(a->module(), name), named(b->module(), name))) << name;
    const at::Tensor x = named(a->module(), name), y = named(c->module(), name);
    EXPECT_FALSE(x.sizes() == y.sizes() && at::equal(x, y)) << name;
  }
}

TEST(Reservoir, MeasuredSpectralRadiusMatchesTheOption) {
  for (double radius : {0.5, 0.9, 1.3}) {
    auto model = make(small({{"spectral_radius", radius}}));
    const double measured = at::linalg_eigvals(recurrent_matrix(*model)).abs().max().item<double>();
    EXPECT_NEAR(measured, radius, 1e-4 * radius) << radius;
  }
  // Each unit gets round((1 - sparsity) N) inputs.
  auto model = make(small({{"sparsity", 0.75}}));
  EXPECT_EQ(named(model->module(), "reservoir.value").numel(), 96 * 24);
}

TEST(Reservoir, PowerIterationMeasuresLargeReservoirs) {
  // Above 1024 units the radius is measured by power iteration: a few tenths of a percent.
  auto model = make(small({{"n_units", std::int64_t{1500}}, {"sparsity", 0.99}}));
  const double measured = at::linalg_eigvals(recurrent_matrix(*model)).abs().max().item<double>();
  EXPECT_NEAR(measured, 0.9, 0.01);
}

TEST(Reservoir, EchoStatePropertyHoldsAtRadiusNineTenths) {
  for (const char* activation : {"tanh", "sine"}) {
    auto model = make(small({{"spectral_radius", 0.9}, {"activation", std::string(activation)}}));
    model->module().eval();
    lmrun::Batch batch;
    batch.inputs = random_tokens(2, 64);
    const std::string report = model->diagnostics(batch);
    EXPECT_TRUE(contains(report, "spectral_radius: 0.9 ")) << report;
    EXPECT_TRUE(contains(report, "echo_state: distance")) << report;
    EXPECT_TRUE(contains(report, "converges: the echo state property holds")) << report;
    EXPECT_TRUE(contains(report, "saturation: ")) << report;
  }
  // Far above 1 with strong feedback, two initial states stay apart.
  auto chaotic = make(small({{"spectral_radius", 3.0},
                             {"activation", std::string("tanh")},
                             {"leak_rate", 1.0},
                             {"sparsity", 0.5}}));
  lmrun::Batch batch;
  batch.inputs = random_tokens(2, 64);
  EXPECT_TRUE(contains(chaotic->diagnostics(batch), "does not converge"));
}

TEST(Reservoir, SpikingDiagnosticsReportTheSpikeRate) {
  auto model = make(small({{"activation", std::string("lif")}, {"input_scaling", 2.0}}));
  lmrun::Batch batch;
  batch.inputs = random_tokens(2, 40);
  const std::string report = model->diagnostics(batch);
  EXPECT_TRUE(contains(report, "spike_rate: ")) << report;
  EXPECT_FALSE(contains(report, "spike_rate: 0 ")) << report;
}

// ---------------------------------------------------------------------------------------------
// Decoding

class Readouts : public ::testing::TestWithParam<const char*> {};

Overrides readout_config(const std::string& which) {
  if (which == "lif") return small({{"activation", std::string("lif")}, {"input_scaling", 2.0}});
  if (which == "cnn3d") {
    return small({{"readout", which},
                  {"grid", std::vector<std::int64_t>{8, 12}},
                  {"kernel", std::int64_t{3}},
                  {"stride", std::int64_t{2}}});
  }
  return small({{"readout", which}});
}

TEST_P(Readouts, DecodingStepByStepEqualsForward) {
  auto model = make(readout_config(GetParam()));
  model->module().eval();
  at::NoGradGuard no_grad;
  const at::Tensor tokens = random_tokens(2, 12);
  const at::Tensor full = model->forward(tokens, {});  // (2, 12, V)
  auto state = model->start_decoding(2);
  at::Tensor last = model->decode(*state, tokens.narrow(1, 0, 5));
  EXPECT_LT(max_abs_diff(last, full.select(1, 4)), 1e-4);
  for (std::int64_t t = 5; t < 12; ++t) {
    last = model->decode(*state, tokens.narrow(1, t, 1));
    EXPECT_LT(max_abs_diff(last, full.select(1, t)), 1e-4) << "position " << t;
  }
  EXPECT_EQ(state->length(), 12);
  EXPECT_EQ(model->max_context(), 0);
}

TEST_P(Readouts, SelectRowsCarriesEachRowsState) {
  auto model = make(readout_config(GetParam()));
  model->module().eval();
  at::NoGradGuard no_grad;
  const at::Tensor tokens = random_tokens(3, 10);
  auto state = model->start_decoding(3);
  model->decode(*state, tokens.narrow(1, 0, 9));
  const at::Tensor rows = at::tensor(std::vector<std::int64_t>{2, 0, 2}, at::kLong);
  ASSERT_TRUE(state->select_rows(rows));
  const at::Tensor next = model->decode(*state, tokens.index_select(0, rows).narrow(1, 9, 1));
  const at::Tensor expected = model->forward(tokens.index_select(0, rows), {}).select(1, 9);
  EXPECT_LT(max_abs_diff(next, expected), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Kinds, Readouts,
                         ::testing::Values("linear", "mlp", "cnn2d", "cnn3d", "lif"),
                         [](const auto& info) { return std::string(info.param); });

// ---------------------------------------------------------------------------------------------
// Ridge readout

std::string training_text() {
  // A text with structure a reservoir can use: words in a fixed cycle.
  const std::vector<std::string> words = {"the ",  "cat ",  "sat ", "on ",   "a ",
                                          "mat; ", "dogs ", "run ", "fast. "};
  std::string text;
  for (int i = 0; i < 600; ++i) text += words[(i * 7) % words.size()];
  return text;
}

// A char tokenizer fitted on training_text(), and a model context that hands both to a model's
// construction (as the host does).
struct FittedText {
  std::shared_ptr<lmrun::Tokenizer> tokenizer =
      lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
          "char", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "char"), {});
  std::string text = training_text();
  lmrun::ModelContext context;
  FittedText() {
    tokenizer->fit(text);
    context = lmrun::ModelContext{tokenizer->vocab_size(), kContext, 0, -1};
    context.tokenizer = tokenizer.get();
    context.training_text = text;
  }
};

TEST(Reservoir, RidgeFitBeatsTheUntrainedReadout) {
  FittedText fitted;
  const std::string& text = fitted.text;
  auto& tokenizer = fitted.tokenizer;
  lmrun::ModelContext& context = fitted.context;

  auto loss = [&](Model& model) {
    model.module().eval();
    at::NoGradGuard no_grad;
    const std::vector<std::int64_t> ids = tokenizer->encode(text.substr(0, 8 * (kContext + 1)));
    const at::Tensor all = at::tensor(ids, at::kLong).reshape({8, kContext + 1});
    const at::Tensor logits = model.forward(all.narrow(1, 0, kContext), {});
    return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),
                                  all.narrow(1, 1, kContext).reshape({-1}))
        .item<double>();
  };
  auto untrained = make(small(), context);
  auto ridge =
      make(small({{"readout_fit", std::string("ridge")}, {"ridge_lambda", 1e-4}}), context);
  EXPECT_TRUE(contains(ridge->summary(), "ridge readout fitted on")) << ridge->summary();
  const double before = loss(*untrained), after = loss(*ridge);
  EXPECT_LT(after, 0.5 * before) << before << " -> " << after;
  EXPECT_LT(after, 1.0);

  // A model restored from a checkpoint is not fitted again.
  context.weights_from_checkpoint = true;
  context.training_text = {};
  auto restored =
      make(small({{"readout_fit", std::string("ridge")}, {"ridge_lambda", 1e-4}}), context);
  EXPECT_FALSE(contains(restored->summary(), "ridge readout fitted")) << restored->summary();
  // ... and its checkpoint (the readout and score_floor) gives the fitted model back.
  {
    at::NoGradGuard no_grad;
    for (const auto& item : ridge->module().named_parameters())
      named(restored->module(), item.key()).copy_(item.value());
    for (const auto& item : ridge->module().named_buffers())
      named(restored->module(), item.key()).copy_(item.value());
  }
  EXPECT_DOUBLE_EQ(loss(*restored), after);

  // Vector outputs: the ridge targets are the next token's embedding.
  context.weights_from_checkpoint = false;
  context.training_text = text;
  context.output = lmrun::ModelOutput::kVectors;
  auto vectors = make(
      small({{"readout_fit", std::string("ridge")}, {"embedding", std::string("fixed_random")}}),
      context);
  EXPECT_TRUE(contains(vectors->summary(), "ridge readout fitted on")) << vectors->summary();
}

TEST(Reservoir, SinusoidalEmbeddingIsFittedToTheText) {
  FittedText fitted;
  auto model = make(small({{"embedding", std::string("sinusoidal")}}), fitted.context);
  EXPECT_TRUE(contains(model->summary(), "fitted on")) << model->summary();
  // A buffer (fixed), unit RMS.
  const at::Tensor table = named(model->module(), "embed.weight");
  EXPECT_FALSE(table.requires_grad());
  EXPECT_NEAR(table.pow(2).mean().item<double>(), 1.0, 0.2);
}

// ---------------------------------------------------------------------------------------------
// Vector outputs and conditioning

TEST(Reservoir, VectorOutputsLiveInTheEmbeddingSpace) {
  lmrun::ModelContext context{kVocab, kContext, 0, -1};
  context.output = lmrun::ModelOutput::kVectors;
  auto model = make(small(), context);
  const at::Tensor out = model->forward(random_tokens(2, 5), {});
  EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{2, 5, 16}));
  EXPECT_EQ(model->token_embeddings().sizes(), (std::vector<std::int64_t>{kVocab, 16}));
}

TEST(Reservoir, ContextModulatesThroughFilmThatStartsAsTheIdentity) {
  for (const char* readout : {"linear", "cnn3d"}) {
    auto model = make(readout_config(readout));
    model->module().eval();
    EXPECT_TRUE(model->uses_context());
    at::NoGradGuard no_grad;
    const at::Tensor tokens = random_tokens(2, 8);
    lmrun::Conditioning context;
    context.tokens = random_tokens(2, 5, 3);
    context.mask = at::ones({2, 5}, at::kBool);
    context.mask[1][4] = false;
    const at::Tensor plain = model->forward(tokens, {});
    // FiLM starts at the identity; cnn3d's context channels already read it.
    const double at_start = max_abs_diff(model->forward_conditioned(tokens, {}, context), plain);
    if (std::string(readout) == "linear") {
      EXPECT_EQ(at_start, 0.0);
    }
    named(model->module(), "film.weight").normal_();
    const at::Tensor conditioned = model->forward_conditioned(tokens, {}, context);
    EXPECT_GT(max_abs_diff(conditioned, plain), 1e-3) << readout;
    EXPECT_TRUE(at::equal(model->forward(tokens, {}), plain)) << "forward() is unmodulated";
    // Decoding conditioned on the same context gives the same outputs.
    auto state = model->start_decoding_conditioned(2, context);
    const at::Tensor last = model->decode(*state, tokens);
    EXPECT_LT(max_abs_diff(last, conditioned.select(1, 7)), 1e-4) << readout;
    // The padded context token does not count.
    lmrun::Conditioning changed = context;
    changed.tokens = context.tokens.clone();
    changed.tokens[1][4] = (changed.tokens[1][4].item<std::int64_t>() + 1) % kVocab;
    EXPECT_TRUE(at::equal(model->forward_conditioned(tokens, {}, changed), conditioned));
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and washout

TEST(Reservoir, CheckpointKeysRoundTrip) {
  auto a = make(small({{"readout", std::string("cnn2d")}, {"residual", true}}));
  torch::manual_seed(4242);
  lmrun::ModelContext context{kVocab, kContext, 0, -1};
  context.weights_from_checkpoint = true;
  auto b = make(small({{"readout", std::string("cnn2d")}, {"residual", true}}), context);
  // Copy every parameter and buffer by name, as the host's checkpoint does.
  {
    at::NoGradGuard no_grad;
    for (const auto& item : a->module().named_parameters())
      named(b->module(), item.key()).copy_(item.value());
    for (const auto& item : a->module().named_buffers())
      named(b->module(), item.key()).copy_(item.value());
  }
  a->module().eval();
  b->module().eval();
  const at::Tensor tokens = random_tokens(2, 10);
  EXPECT_TRUE(at::equal(a->forward(tokens, {}), b->forward(tokens, {})));
  for (const char* key :
       {"embed.weight", "film.weight", "readout.out.weight", "readout.conv.0.weight",
        "readout.conv.2.weight", "readout.head.weight", "reservoir.value"}) {
    EXPECT_TRUE(named(a->module(), key).defined()) << key;
  }
  EXPECT_EQ(make(small({{"washout", std::int64_t{5}}}))->washout(), 5);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(Reservoir, BadOptionsNameTheKey) {
  const std::string radius = error_of([] { make(small({{"spectral_radius", 0.0}})); });
  EXPECT_TRUE(contains(radius, "spectral_radius: ")) << radius;
  EXPECT_TRUE(contains(radius, "is out of range: expected in (0, 3]")) << radius;
  EXPECT_TRUE(contains(error_of([] {
                         make(small({{"leak_rate", 1.5}}));
                       }),
                       "leak_rate: 1.5 is out of range"));
  const std::string sparsity = error_of([] { make(small({{"sparsity", 1.0}})); });
  EXPECT_TRUE(contains(sparsity, "sparsity: ")) << sparsity;
  EXPECT_TRUE(contains(sparsity, "is out of range: expected in [0, 1)")) << sparsity;
  const std::string grid = error_of([] {
    make(small({{"grid", std::vector<std::int64_t>{10, 10}}}));
  });
  EXPECT_TRUE(contains(grid, "grid [10, 10] holds 100 units, but n_units is 96")) << grid;
  EXPECT_TRUE(contains(error_of([] {
                         make(small({{"readout", std::string("cnn3d")}}));
                       }),
                       "needs grid"));
  const std::string window = error_of([] {
    make(small({{"readout", std::string("cnn2d")}, {"window", std::int64_t{40}}}));
  });
  EXPECT_TRUE(contains(window, "window 40 is longer than the context")) << window;
  EXPECT_TRUE(contains(
      error_of([] {
        make(small({{"readout", std::string("mlp")}, {"readout_fit", std::string("ridge")}}));
      }),
      "readout_fit = \"ridge\" solves a linear readout"));
  EXPECT_TRUE(contains(error_of([] {
                         make(small({{"washout", std::int64_t{32}}}));
                       }),
                       "washout 32 leaves nothing"));

  // The cross-field rules run while the host validates an experiment (`lmrun check`).
  const lmrun::Registration* registration =
      lmrun::test::plugin_registry().find(lmrun::Kind::kModel, "reservoir");
  ASSERT_TRUE(registration->check);
  EXPECT_TRUE(contains(error_of([&] {
                         registration->check(lmrun::test::plugin_params(
                             lmrun::Kind::kModel, "reservoir",
                             {{"grid", std::vector<std::int64_t>{3, 3}}}));
                       }),
                       "grid [3, 3] holds 9 units"));
}

}  // namespace
