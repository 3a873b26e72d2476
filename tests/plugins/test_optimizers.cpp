// The standard optimizers (adamw, adam, sgd) through the real plugin loader: golden updates against
// hand-computed numbers, nanoGPT's weight-decay grouping, set_lr, checkpoint round trips, errors.
#include <array>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include "lmrun/optimizer.h"
#include "support/test_support.h"

namespace {

using lmrun::NamedParameter;
using lmrun::Optimizer;
using lmrun::OptimizerContext;

// ---------------------------------------------------------------------------------------------
// Helpers

// Every declared default, as the host fills them, then the test's overrides.
lmrun::Params params_for(const std::string& name, const lmrun::Params& overrides = {}) {
  return lmrun::test::plugin_params(lmrun::Kind::kOptimizer, name, overrides.values());
}

std::shared_ptr<Optimizer> make(const std::string& name, const lmrun::Params& overrides,
                                std::vector<NamedParameter> parameters) {
  return lmrun::test::plugin_registry().create<Optimizer>(name, params_for(name, overrides),
                                                          OptimizerContext{std::move(parameters)});
}

lmrun::Params with(std::initializer_list<std::pair<const char*, lmrun::Value>> values) {
  lmrun::Params params;
  for (const auto& [key, value] : values) params.set(key, value);
  return params;
}

// A leaf parameter in double precision, so golden comparisons can be tight.
at::Tensor parameter(std::vector<double> values, std::vector<std::int64_t> shape,
                     at::ScalarType dtype = at::kDouble) {
  return at::tensor(values, at::kDouble).to(dtype).reshape(shape).set_requires_grad(true);
}

void set_grad(at::Tensor& p, std::vector<double> values) {
  p.mutable_grad() = at::tensor(values, at::kDouble).to(p.scalar_type()).reshape(p.sizes());
}

std::vector<double> values_of(const at::Tensor& t) {
  at::Tensor flat = t.detach().contiguous().to(at::kDouble).reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

// ---------------------------------------------------------------------------------------------
// Registration

TEST(Optimizers, RegistersAdamwAdamSgdWithTheirParameters) {
  const auto& registry = lmrun::test::plugin_registry();
  for (const char* name : {"adamw", "adam", "sgd"}) {
    EXPECT_NE(registry.find(lmrun::Kind::kOptimizer, name), nullptr) << name;
  }
  const lmrun::Registration* adamw = registry.find(lmrun::Kind::kOptimizer, "adamw");
  ASSERT_NE(adamw, nullptr);
  std::vector<std::string> names;
  for (const auto& spec : adamw->params) names.push_back(spec.name);
  EXPECT_EQ(names, (std::vector<std::string>{"lr", "betas", "eps", "weight_decay"}));
  const lmrun::Params defaults = params_for("adamw");
  EXPECT_EQ(defaults.get<double>("lr"), 1e-3);
  EXPECT_EQ(defaults.get<std::vector<double>>("betas"), (std::vector<double>{0.9, 0.999}));
  EXPECT_EQ(defaults.get<double>("eps"), 1e-8);
  EXPECT_EQ(defaults.get<double>("weight_decay"), 0.01);
  EXPECT_EQ(adamw->params[1].size, 2u);  // betas is a fixed pair
  EXPECT_EQ(params_for("adam").get<double>("weight_decay"), 0.0);
  EXPECT_EQ(params_for("sgd").get<double>("lr"), 0.01);
  EXPECT_EQ(params_for("sgd").get<bool>("nesterov"), false);
}

// ---------------------------------------------------------------------------------------------
// AdamW golden numbers
//
// gpt_tiny's setting: lr = 1e-3, betas = (0.9, 0.99), eps = 1e-8, weight_decay = 0.1, two steps on
// a 2x2 weight (decayed) with the gradients below. Expected values from PyTorch's documented AdamW
// algorithm (https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html), evaluated by hand
// in double precision:
//   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Tolerance, absolute: 1e-12 for double parameters, 1e-6 for float32 ones.

TEST(Optimizers, AdamwTwoStepsMatchTheHandComputedUpdate) {
  // Step 1: decay by (1 - 1e-4); the bias-corrected update is lr * g / (|g| + eps) ~ lr * sign(g).
  // Step 2: m = 0.09 g1 + 0.1 g2, v = 0.0099 g1^2 + 0.01 g2^2, corrections 0.19 and 0.0199.
  const std::array<double, 4> expected = {0.99929340822925, -1.99833342063781, 0.49792890730701,
                                          2.99740013039998};
  // float32 as models train: a few roundings of values up to 3, whose ulp is 2.4e-7.
  for (const auto& [dtype, tolerance] :
       {std::pair<at::ScalarType, double>{at::kDouble, 1e-12}, {at::kFloat, 1e-6}}) {
    SCOPED_TRACE(c10::toString(dtype));
    at::Tensor w = parameter({1.0, -2.0, 0.5, 3.0}, {2, 2}, dtype);
    auto optimizer =
        make("adamw",
             with({{"lr", 1e-3}, {"betas", std::vector<double>{0.9, 0.99}}, {"weight_decay", 0.1}}),
             {{"w", w}});
    set_grad(w, {0.1, -0.2, 0.3, 0.05});
    optimizer->step();
    set_grad(w, {-0.3, 0.1, 0.2, 0.05});
    optimizer->step();
    const std::vector<double> actual = values_of(w);
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_NEAR(actual[i], expected[i], tolerance) << "element " << i;
    }
  }
}

// The same update computed independently in the test, for a longer run with a 1-D bias alongside.
TEST(Optimizers, AdamwMatchesTheReferenceFormulaOverTenSteps) {
  const double lr = 3e-3, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
  at::Tensor w = parameter({0.2, -0.7, 1.3, 0.4, -0.1, 0.9}, {2, 3});
  at::Tensor b = parameter({0.5, -0.5}, {2});
  auto optimizer = make(
      "adamw",
      with(
          {{"lr", lr}, {"betas", std::vector<double>{b1, b2}}, {"eps", eps}, {"weight_decay", wd}}),
      {{"w", w}, {"b", b}});

  struct Reference {
    std::vector<double> p, m, v;
    double decay;
  };
  Reference ref_w{values_of(w), std::vector<double>(6, 0.0), std::vector<double>(6, 0.0), wd};
  Reference ref_b{values_of(b), std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), 0.0};
  auto reference_step = [&](Reference& r, const std::vector<double>& g, int t) {
    for (std::size_t i = 0; i < r.p.size(); ++i) {
      r.p[i] *= 1.0 - lr * r.decay;
      r.m[i] = b1 * r.m[i] + (1 - b1) * g[i];
      r.v[i] = b2 * r.v[i] + (1 - b2) * g[i] * g[i];
      const double m_hat = r.m[i] / (1 - std::pow(b1, t));
      const double v_hat = r.v[i] / (1 - std::pow(b2, t));
      r.p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  };

  for (int t = 1; t <= 10; ++t) {
    std::vector<double> g_w, g_b;
    for (int i = 0; i < 6; ++i) g_w.push_back(std::sin(0.7 * t + i));
    for (int i = 0; i < 2; ++i) g_b.push_back(std::cos(1.3 * t + i));
    set_grad(w, g_w);
    set_grad(b, g_b);
    optimizer->step();
    reference_step(ref_w, g_w, t);
    reference_step(ref_b, g_b, t);
  }
  const std::vector<double> actual_w = values_of(w), actual_b = values_of(b);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(actual_w[i], ref_w.p[i], 1e-12) << "w " << i;
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(actual_b[i], ref_b.p[i], 1e-12) << "b " << i;
}

// ---------------------------------------------------------------------------------------------
// Weight-decay grouping (nanoGPT's configure_optimizers: dim >= 2 decays, the rest does not)

TEST(Optimizers, AdamwDecaysMatricesButNotBiases) {
  const double lr = 1e-2, wd = 0.5;
  at::Tensor weight = parameter({1.0, 2.0, -3.0, 4.0, 0.5, -6.0}, {2, 3});
  at::Tensor bias = parameter({1.0, -2.0, 3.0}, {3});
  at::Tensor norm_gain = parameter({1.0, 1.0, 1.0}, {3});
  const std::vector<double> weight_before = values_of(weight);
  const std::vector<double> bias_before = values_of(bias);
  auto optimizer = make("adamw", with({{"lr", lr}, {"weight_decay", wd}}),
                        {{"blocks.0.attn.weight", weight},
                         {"blocks.0.attn.bias", bias},
                         {"blocks.0.ln_1.weight", norm_gain}});

  // Zero (defined) gradients: the Adam part moves nothing, only decay acts.
  set_grad(weight, std::vector<double>(6, 0.0));
  set_grad(bias, std::vector<double>(3, 0.0));
  set_grad(norm_gain, std::vector<double>(3, 0.0));
  optimizer->step();

  const std::vector<double> weight_after = values_of(weight);
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(weight_after[i], weight_before[i] * (1.0 - lr * wd), 1e-15) << "weight " << i;
  }
  EXPECT_EQ(values_of(bias), bias_before);
  EXPECT_EQ(values_of(norm_gain), (std::vector<double>{1.0, 1.0, 1.0}));
}

TEST(Optimizers, AdamL2PenaltySkipsBiasesToo) {
  at::Tensor weight = parameter({1.0, -1.0, 2.0, -2.0}, {2, 2});
  at::Tensor bias = parameter({1.0, -1.0}, {2});
  auto optimizer = make("adam", with({{"lr", 1e-2}, {"weight_decay", 0.1}}),
                        {{"fc.weight", weight}, {"fc.bias", bias}});
  set_grad(weight, std::vector<double>(4, 0.0));
  set_grad(bias, std::vector<double>(2, 0.0));
  optimizer->step();
  // L2 turns the zero gradient into wd * p, so Adam's first step is lr * sign(p).
  const std::vector<double> w = values_of(weight);
  const std::vector<double> expected = {0.99, -0.99, 1.99, -1.99};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(w[i], expected[i], 1e-8) << i;  // eps shifts ~1e-9
  EXPECT_EQ(values_of(bias), (std::vector<double>{1.0, -1.0}));
}

// ---------------------------------------------------------------------------------------------
// Learning rate

TEST(Optimizers, SetLrScalesTheStepAndKeepsBaseLr) {
  auto first_step = [](double lr_override) {
    at::Tensor w = parameter({1.0, 2.0, 3.0, 4.0}, {2, 2});
    auto optimizer = make("adamw", with({{"lr", 1e-3}, {"weight_decay", 0.0}}), {{"w", w}});
    EXPECT_EQ(optimizer->base_lr(), 1e-3);
    if (lr_override > 0) optimizer->set_lr(lr_override);
    EXPECT_EQ(optimizer->base_lr(), 1e-3);  // set_lr never changes the configured lr
    set_grad(w, {0.5, -0.5, 0.25, -0.25});
    optimizer->step();
    std::vector<double> delta = values_of(w);
    const std::vector<double> start = {1.0, 2.0, 3.0, 4.0};
    for (int i = 0; i < 4; ++i) delta[i] -= start[i];
    return delta;
  };
  const std::vector<double> base = first_step(0.0);
  const std::vector<double> tripled = first_step(3e-3);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(std::abs(base[i]), 1e-3, 1e-9) << i;  // Adam's first step is ~lr per element
    EXPECT_NEAR(tripled[i], 3.0 * base[i], 1e-12) << i;
  }
}

TEST(Optimizers, SetLrReachesEveryParameterGroup) {
  at::Tensor weight = parameter({1.0, 1.0, 1.0, 1.0}, {2, 2});
  at::Tensor bias = parameter({1.0, 1.0}, {2});
  auto optimizer = make("sgd", with({{"lr", 0.1}}), {{"w", weight}, {"b", bias}});
  optimizer->set_lr(0.5);
  set_grad(weight, {1.0, 1.0, 1.0, 1.0});
  set_grad(bias, {1.0, 1.0});
  optimizer->step();
  EXPECT_EQ(values_of(weight), (std::vector<double>{0.5, 0.5, 0.5, 0.5}));
  EXPECT_EQ(values_of(bias), (std::vector<double>{0.5, 0.5}));
}

// ---------------------------------------------------------------------------------------------
// zero_grad, tied weights, frozen parameters

TEST(Optimizers, ZeroGradSetsGradientsToNone) {
  at::Tensor w = parameter({1.0, 2.0, 3.0, 4.0}, {2, 2});
  auto optimizer = make("adamw", {}, {{"w", w}});
  set_grad(w, {1.0, 1.0, 1.0, 1.0});
  ASSERT_TRUE(w.grad().defined());
  optimizer->zero_grad();
  EXPECT_FALSE(w.grad().defined());
  optimizer->step();  // no gradient: the parameter is skipped, weight decay included
  EXPECT_EQ(values_of(w), (std::vector<double>{1.0, 2.0, 3.0, 4.0}));
}

TEST(Optimizers, TiedWeightsAreSteppedOnce) {
  at::Tensor shared = parameter({1.0, 1.0, 1.0, 1.0}, {2, 2});
  auto optimizer =
      make("sgd", with({{"lr", 0.1}}), {{"wte.weight", shared}, {"lm_head.weight", shared}});
  set_grad(shared, {1.0, 1.0, 1.0, 1.0});
  optimizer->step();
  EXPECT_EQ(values_of(shared), (std::vector<double>{0.9, 0.9, 0.9, 0.9}));
}

TEST(Optimizers, FrozenParametersAreLeftAlone) {
  at::Tensor frozen = at::ones({2, 2}, at::kDouble);  // requires_grad = false
  at::Tensor w = parameter({1.0, 1.0, 1.0, 1.0}, {2, 2});
  auto optimizer = make("sgd", with({{"lr", 0.1}}), {{"frozen", frozen}, {"w", w}});
  set_grad(w, {1.0, 1.0, 1.0, 1.0});
  optimizer->step();
  EXPECT_EQ(values_of(frozen), (std::vector<double>{1.0, 1.0, 1.0, 1.0}));
}

TEST(Optimizers, NoTrainableParametersIsAnError) {
  try {
    make("adamw", {}, {{"frozen", at::ones({2, 2})}});
    FAIL() << "expected lmrun::Error";
  } catch (const lmrun::Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer 'adamw': no trainable parameters"),
              std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

std::string save_to_string(Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void load_from_string(Optimizer& optimizer, const std::string& bytes) {
  std::istringstream in(bytes);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  optimizer.load(archive);
}

// fp32 CPU parameters take the fused one-pass step (adamw_kernel.h): it must follow LibTorch's own
// AdamW, and its state must survive a checkpoint like the op path's.
TEST(Optimizers, AdamwFusedFloatStepFollowsLibTorchAdamW) {
  torch::manual_seed(5);
  at::Tensor w = at::randn({7, 13}).set_requires_grad(true);  // odd sizes: no lane multiples
  at::Tensor b = at::randn({13}).set_requires_grad(true);
  at::Tensor w_ref = w.detach().clone().set_requires_grad(true);
  at::Tensor b_ref = b.detach().clone().set_requires_grad(true);
  auto fused = make("adamw", with({{"lr", 1e-2}, {"weight_decay", 0.1}}), {{"w", w}, {"b", b}});
  auto options = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.999}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{w_ref},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(options).weight_decay(0.1)));
  groups.emplace_back(std::vector<at::Tensor>{b_ref},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(options).weight_decay(0.0)));
  torch::optim::AdamW reference(std::move(groups), options);
  for (int t = 0; t < 20; ++t) {
    at::Tensor gw = at::randn({7, 13}), gb = at::randn({13});
    w.mutable_grad() = gw.clone();
    b.mutable_grad() = gb.clone();
    w_ref.mutable_grad() = gw.clone();
    b_ref.mutable_grad() = gb.clone();
    fused->step();
    reference.step();
    ASSERT_LT((w - w_ref).abs().max().item<double>(), 1e-6) << "step " << t;
    ASSERT_LT((b - b_ref).abs().max().item<double>(), 1e-6) << "step " << t;
  }
  // The moments are in the checkpoint: a restored optimizer takes the same next step.
  const std::string bytes = save_to_string(*fused);
  at::Tensor w2 = w.detach().clone().set_requires_grad(true);
  at::Tensor b2 = b.detach().clone().set_requires_grad(true);
  auto restored =
      make("adamw", with({{"lr", 1e-2}, {"weight_decay", 0.1}}), {{"w", w2}, {"b", b2}});
  load_from_string(*restored, bytes);
  at::Tensor gw = at::randn({7, 13}), gb = at::randn({13});
  w.mutable_grad() = gw.clone();
  b.mutable_grad() = gb.clone();
  w2.mutable_grad() = gw.clone();
  b2.mutable_grad() = gb.clone();
  fused->step();
  restored->step();
  EXPECT_TRUE(at::equal(w, w2));
  EXPECT_TRUE(at::equal(b, b2));
}

TEST(Optimizers, SaveLoadRoundTripReproducesTheNextStep) {
  for (const char* name : {"adamw", "adam", "sgd"}) {
    SCOPED_TRACE(name);
    const lmrun::Params overrides =
        std::string(name) == "sgd" ? with({{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 0.01}})
                                   : with({{"lr", 1e-2}, {"weight_decay", 0.1}});
    at::Tensor w = parameter({0.3, -0.2, 0.8, 1.1}, {2, 2});
    at::Tensor b = parameter({0.1, -0.1}, {2});
    auto original = make(name, overrides, {{"w", w}, {"b", b}});
    for (int t = 0; t < 3; ++t) {
      set_grad(w, {0.1 * t, -0.3, 0.2, 0.05 * t});
      set_grad(b, {0.2, -0.1 * t});
      original->step();
    }
    const std::string bytes = save_to_string(*original);

    // A second model at the same point, with its optimizer restored from the checkpoint.
    at::Tensor w2 = w.detach().clone().set_requires_grad(true);
    at::Tensor b2 = b.detach().clone().set_requires_grad(true);
    auto restored = make(name, overrides, {{"w", w2}, {"b", b2}});
    load_from_string(*restored, bytes);
    // And one without the state, to show that the state matters.
    at::Tensor w3 = w.detach().clone().set_requires_grad(true);
    at::Tensor b3 = b.detach().clone().set_requires_grad(true);
    auto fresh = make(name, overrides, {{"w", w3}, {"b", b3}});

    for (at::Tensor* p : {&w, &w2, &w3}) set_grad(*p, {0.4, 0.1, -0.2, 0.3});
    for (at::Tensor* p : {&b, &b2, &b3}) set_grad(*p, {-0.2, 0.5});
    original->step();
    restored->step();
    fresh->step();
    EXPECT_TRUE(at::equal(w, w2)) << w << w2;
    EXPECT_TRUE(at::equal(b, b2)) << b << b2;
    EXPECT_FALSE(at::allclose(w, w3, 1e-9, 1e-9));
  }
}

TEST(Optimizers, LoadIntoAModelOfAnotherShapeNamesTheParameter) {
  at::Tensor w = parameter({0.3, -0.2, 0.8, 1.1}, {2, 2});
  auto original = make("adamw", {}, {{"fc.weight", w}});
  set_grad(w, {0.1, 0.2, 0.3, 0.4});
  original->step();
  const std::string bytes = save_to_string(*original);

  at::Tensor other = parameter({0.3, -0.2, 0.8, 1.1, 0.0, 0.0}, {2, 3});
  auto restored = make("adamw", {}, {{"fc.weight", other}});
  try {
    load_from_string(*restored, bytes);
    FAIL() << "expected lmrun::Error";
  } catch (const lmrun::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("fc.weight [2, 2]"), std::string::npos) << message;
    EXPECT_NE(message.find("fc.weight [2, 3]"), std::string::npos) << message;
    EXPECT_FALSE(e.hint().empty());
  }
}

// ---------------------------------------------------------------------------------------------
// SGD

TEST(Optimizers, SgdNesterovMomentumMatchesTheFormula) {
  // torch.optim.SGD: buf <- momentum * buf + g (buf = g on the first step);
  // nesterov: g <- g + momentum * buf;  p <- p - lr * g.
  at::Tensor w = parameter({1.0, 1.0}, {1, 2});
  auto optimizer =
      make("sgd", with({{"lr", 0.1}, {"momentum", 0.5}, {"nesterov", true}}), {{"w", w}});
  set_grad(w, {1.0, -2.0});
  optimizer->step();  // buf = g; update = g + 0.5 g = 1.5 g
  set_grad(w, {1.0, 0.0});
  optimizer->step();  // buf = 0.5 g1 + g2; update = g2 + 0.5 buf
  const double buf0 = 0.5 * 1.0 + 1.0, buf1 = 0.5 * -2.0 + 0.0;
  const std::vector<double> expected = {1.0 - 0.1 * 1.5 - 0.1 * (1.0 + 0.5 * buf0),
                                        1.0 + 0.1 * 3.0 - 0.1 * (0.0 + 0.5 * buf1)};
  const std::vector<double> actual = values_of(w);
  EXPECT_NEAR(actual[0], expected[0], 1e-15);
  EXPECT_NEAR(actual[1], expected[1], 1e-15);
}

TEST(Optimizers, SgdNesterovWithoutMomentumIsAnErrorWithAHint) {
  at::Tensor w = parameter({1.0, 1.0}, {1, 2});
  try {
    make("sgd", with({{"nesterov", true}}), {{"w", w}});
    FAIL() << "expected lmrun::Error";
  } catch (const lmrun::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("optimizer 'sgd': ", 0), 0u) << message;
    EXPECT_NE(message.find("nesterov = true needs momentum > 0"), std::string::npos) << message;
    EXPECT_NE(message.find("momentum = 0.0"), std::string::npos) << message;
    EXPECT_NE(e.hint().find("set momentum"), std::string::npos) << e.hint();
  }
}

}  // namespace
