// The model suite: model.h's contracts on every model registration under test (conformance.h).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include "lmrun/model.h"
#include "lmrun/testing/conformance.h"

namespace lmrun::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

std::string shape_text(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string out = "(";
  for (std::int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + ")";
}

std::string shape_text(const std::vector<std::int64_t>& sizes) {
  std::string out = "(";
  for (std::size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + ")";
}

double max_abs(const at::Tensor& t) { return t.numel() == 0 ? 0.0 : t.abs().max().item<double>(); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return max_abs(a.to(at::kDouble) - b.to(at::kDouble));
}

std::vector<std::string> state_names(Model& model) {
  std::vector<std::string> names;
  for (const auto& item : model.module().named_parameters(true)) names.push_back(item.key());
  for (const auto& item : model.module().named_buffers(true)) names.push_back(item.key());
  return names;
}

class ModelConformance : public ::testing::TestWithParam<Subject> {
 protected:
  const SuiteOptions& options() const { return GetParam().options; }
  bool classifier() const { return options().num_classes > 0; }
  std::int64_t vocab() const { return options().vocab_size; }
  std::int64_t batch() const { return options().batch_size; }

  // Built as the host builds a model: right after torch::manual_seed, on the CPU.
  std::shared_ptr<Model> make(std::int64_t seed_offset = 0) const {
    ModelContext context;
    context.vocab_size = options().vocab_size;
    context.sequence_length = options().sequence_length;
    context.num_classes = options().num_classes;
    context.pad_id = options().pad_id;
    torch::manual_seed(static_cast<std::uint64_t>(options().seed + seed_offset));
    return GetParam().create<Model>(context);
  }

  // T of the test batches: sequence_length, within the model's context.
  std::int64_t length(const Model& model) const {
    const std::int64_t limit = model.max_context();
    return limit > 0 ? std::min(options().sequence_length, limit) : options().sequence_length;
  }

  // (B, T) ids in [0, vocab_size), never pad_id, from a generator of their own (`salt`), so that
  // the data does not depend on what the model drew from the default generator.
  at::Tensor tokens(std::int64_t b, std::int64_t t, std::uint64_t salt) const {
    at::Generator generator =
        at::detail::createCPUGenerator(static_cast<std::uint64_t>(options().seed) * 7919 + salt);
    at::Tensor ids = at::randint(vocab(), {b, t}, generator, at::kLong);
    const std::int64_t pad = options().pad_id;
    if (pad >= 0) ids.masked_fill_(ids.eq(pad), (pad + 1) % vocab());
    return ids;
  }

  std::vector<std::int64_t> expected_shape(std::int64_t b, std::int64_t t) const {
    if (classifier()) return {b, options().num_classes};
    return {b, t, vocab()};
  }

  ::testing::AssertionResult logits_ok(const at::Tensor& logits, std::int64_t b,
                                       std::int64_t t) const {
    const std::vector<std::int64_t> expected = expected_shape(b, t);
    if (!logits.defined() || logits.sizes() != expected) {
      return ::testing::AssertionFailure()
             << "logits " << shape_text(logits) << " for inputs (" << b << ", " << t
             << "), expected " << shape_text(expected)
             << (classifier() ? " (B, num_classes)" : " (B, T, vocab_size)");
    }
    if (!logits.is_floating_point()) {
      return ::testing::AssertionFailure()
             << "logits of type " << logits.scalar_type() << ", expected floating point";
    }
    if (!at::isfinite(logits).all().item<bool>()) {
      return ::testing::AssertionFailure() << "logits hold NaN or infinite values";
    }
    return ::testing::AssertionSuccess();
  }

  // |a - b| <= tolerance * (1 + max|b|), with the numbers in the message.
  ::testing::AssertionResult close(const at::Tensor& a, const at::Tensor& b) const {
    if (!a.defined() || a.sizes() != b.sizes()) {
      return ::testing::AssertionFailure()
             << "shape " << shape_text(a) << ", expected " << shape_text(b);
    }
    const double diff = max_abs_diff(a, b);
    const double bound = options().tolerance * (1.0 + max_abs(b));
    if (diff <= bound) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "logits differ by up to " << diff << " (tolerance " << bound << ")";
  }

  // Why the decoding checks do not apply, or nullptr when they do.
  const char* not_decoding(const Model& model) const {
    if (classifier()) return "a classifier (num_classes > 0) does not decode";
    if (!model.can_decode()) return "can_decode() is false: the model does not decode";
    return nullptr;
  }
};

// ---------------------------------------------------------------------------------------------
// Output shapes

TEST_P(ModelConformance, Shapes) {
  auto model = make();
  model->module().eval();
  torch::NoGradGuard no_grad;
  const std::int64_t T = length(*model);
  for (const auto& [b, t] :
       std::vector<std::pair<std::int64_t, std::int64_t>>{{batch(), T}, {1, 1}, {1, T}}) {
    EXPECT_TRUE(logits_ok(model->forward(tokens(b, t, 1), at::Tensor()), b, t))
        << "forward(inputs (" << b << ", " << t << "), no mask)";
  }
  // A right-padded batch: the last row holds T/2 real tokens, then padding behind the mask.
  at::Tensor inputs = tokens(batch(), T, 2);
  at::Tensor mask = at::ones({batch(), T}, at::kBool);
  const std::int64_t real = std::max<std::int64_t>(1, T / 2);
  mask[batch() - 1].narrow(0, real, T - real).fill_(false);
  if (options().pad_id >= 0) inputs[batch() - 1].narrow(0, real, T - real).fill_(options().pad_id);
  EXPECT_TRUE(logits_ok(model->forward(inputs, mask), batch(), T))
      << "forward with a right-padding mask";
}

// ---------------------------------------------------------------------------------------------
// Causality

TEST_P(ModelConformance, Causality) {
  if (classifier()) GTEST_SKIP() << "a classifier (num_classes > 0) has no positions to check";
  auto model = make();
  model->module().eval();
  torch::NoGradGuard no_grad;
  const std::int64_t T = length(*model);
  const at::Tensor inputs = tokens(batch(), T, 3);
  const at::Tensor base = model->forward(inputs, at::Tensor());
  ASSERT_TRUE(logits_ok(base, batch(), T));
  bool anything_changed = false;
  for (std::int64_t j : {std::int64_t{0}, T / 2, T - 1}) {
    at::Tensor changed = inputs.clone();
    changed.select(1, j).add_(1).remainder_(vocab());
    if (options().pad_id >= 0) {
      changed.masked_fill_(changed.eq(options().pad_id), (options().pad_id + 1) % vocab());
    }
    const at::Tensor logits = model->forward(changed, at::Tensor());
    if (j > 0) {
      EXPECT_TRUE(close(logits.narrow(1, 0, j), base.narrow(1, 0, j)))
          << "changing the token at position " << j << " changed the logits of earlier "
          << "positions: the model sees the future";
    }
    anything_changed =
        anything_changed || max_abs_diff(logits.narrow(1, j, T - j), base.narrow(1, j, T - j)) > 0;
  }
  EXPECT_TRUE(anything_changed) << "no token changed any logit: the freshly built model ignores "
                                   "its input, so causality cannot be checked (initialise its "
                                   "weights randomly)";
}

// ---------------------------------------------------------------------------------------------
// Incremental decoding

TEST_P(ModelConformance, DecodeMatchesForward) {
  auto model = make();
  if (const char* why = not_decoding(*model)) GTEST_SKIP() << why;
  model->module().eval();
  torch::NoGradGuard no_grad;
  const std::int64_t T = length(*model);
  for (std::int64_t b : {std::int64_t{1}, batch()}) {
    const at::Tensor inputs = tokens(b, T, 10 + static_cast<std::uint64_t>(b));
    const at::Tensor full = model->forward(inputs, at::Tensor());  // (B, T, V)
    ASSERT_TRUE(logits_ok(full, b, T));
    // A prompt then one token at a time (generation), and chunks of three from the first token.
    for (const auto& [prompt, step] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {std::max<std::int64_t>(1, T / 3), 1}, {1, 3}}) {
      SCOPED_TRACE("batch " + std::to_string(b) + ", prompt " + std::to_string(prompt) + ", then " +
                   std::to_string(step) + " at a time");
      auto state = model->start_decoding(b);
      ASSERT_NE(state, nullptr) << "start_decoding returned no state";
      EXPECT_EQ(state->length(), 0);
      std::int64_t fed = 0;
      while (fed < T) {
        const std::int64_t t = fed == 0 ? prompt : std::min(step, T - fed);
        const at::Tensor last = model->decode(*state, inputs.narrow(1, fed, t));  // (B, V)
        fed += t;
        ASSERT_EQ(state->length(), fed) << "the state's length() after " << fed << " tokens";
        ASSERT_TRUE(last.defined()) << "decode returned an undefined tensor";
        ASSERT_EQ(last.sizes(), (std::vector<std::int64_t>{b, vocab()}))
            << "decode gave " << shape_text(last) << ", expected (B, vocab_size)";
        ASSERT_TRUE(close(last, full.select(1, fed - 1)))
            << "decode's logits after " << fed << " tokens are not forward's at position "
            << fed - 1;
      }
    }
  }
}

TEST_P(ModelConformance, SelectRows) {
  auto model = make();
  if (const char* why = not_decoding(*model)) GTEST_SKIP() << why;
  model->module().eval();
  torch::NoGradGuard no_grad;
  const std::int64_t T = length(*model);
  if (T < 2) GTEST_SKIP() << "the context holds fewer than 2 tokens";
  const std::int64_t prompt = std::max<std::int64_t>(1, T / 2);
  const std::int64_t more = std::min<std::int64_t>(3, T - prompt);
  const at::Tensor prompts = tokens(3, prompt, 20);
  const at::Tensor next = tokens(3, more, 21);

  // Decodes three prompts, keeps `rows` of the state, and feeds the rows' next tokens to it and
  // to a state built for those rows alone. Returns whether select_rows took the selection.
  auto check = [&](const std::vector<std::int64_t>& rows) {
    std::string text;
    for (std::int64_t r : rows) text += (text.empty() ? "" : ", ") + std::to_string(r);
    SCOPED_TRACE("select_rows([" + text + "]) after a prompt of " + std::to_string(prompt));
    const at::Tensor index = at::tensor(rows, at::kLong);
    auto state = model->start_decoding(3);
    model->decode(*state, prompts);
    if (!state->select_rows(index)) {
      EXPECT_EQ(state->length(), prompt) << "select_rows returned false but changed the state";
      return false;
    }
    EXPECT_EQ(state->length(), prompt) << "select_rows changed the length";
    const auto b = static_cast<std::int64_t>(rows.size());
    auto alone = model->start_decoding(b);
    model->decode(*alone, prompts.index_select(0, index));
    const at::Tensor chosen = next.index_select(0, index);
    for (std::int64_t k = 0; k < more; ++k) {
      const at::Tensor got = model->decode(*state, chosen.narrow(1, k, 1));
      const at::Tensor expected = model->decode(*alone, chosen.narrow(1, k, 1));
      EXPECT_TRUE(close(got, expected)) << "the selected state's logits at next token " << k
                                        << " are not those of a state built for the rows";
    }
    return true;
  };
  const bool reorders = check({2, 0, 2});  // beam search: reordered, one row kept twice
  const bool narrows = check({1});         // one hypothesis left
  if (!reorders && !narrows) {
    GTEST_SKIP() << "select_rows returns false: beam search recomputes each step instead";
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

TEST_P(ModelConformance, CheckpointRoundTrip) {
  auto saved = make(0);
  {
    // Weights no constructor would draw, so that only reading the checkpoint can give them.
    torch::NoGradGuard no_grad;
    at::Generator generator = at::detail::createCPUGenerator(99);
    for (at::Tensor& p : saved->module().parameters(true)) {
      if (p.is_floating_point()) p.add_(at::randn(p.sizes(), generator, p.options()).mul(0.05));
    }
  }
  // Written as the host writes model.pt: every parameter, then every buffer, by name.
  torch::serialize::OutputArchive out;
  for (const auto& item : saved->module().named_parameters(true))
    out.write(item.key(), item.value());
  for (const auto& item : saved->module().named_buffers(true))
    out.write(item.key(), item.value(), /*is_buffer=*/true);
  std::ostringstream bytes;
  out.save_to(bytes);

  auto loaded = make(1);  // a fresh instance, seeded differently
  ASSERT_EQ(state_names(*loaded), state_names(*saved))
      << "two instances of the same parameters name their state differently";
  torch::serialize::InputArchive in;
  std::istringstream input(bytes.str());
  in.load_from(input);
  {
    torch::NoGradGuard no_grad;
    auto read = [&](const std::string& key, at::Tensor& target, bool is_buffer) {
      at::Tensor stored;
      ASSERT_TRUE(in.try_read(key, stored, is_buffer)) << "the checkpoint has no '" << key << "'";
      ASSERT_EQ(stored.sizes(), target.sizes()) << key;
      target.copy_(stored);
    };
    for (auto& item : loaded->module().named_parameters(true))
      read(item.key(), item.value(), false);
    for (auto& item : loaded->module().named_buffers(true)) read(item.key(), item.value(), true);
  }

  saved->module().eval();
  loaded->module().eval();
  torch::NoGradGuard no_grad;
  const at::Tensor inputs = tokens(batch(), length(*saved), 30);
  const at::Tensor expected = saved->forward(inputs, at::Tensor());
  const at::Tensor got = loaded->forward(inputs, at::Tensor());
  ASSERT_TRUE(logits_ok(got, batch(), length(*saved)));
  EXPECT_TRUE(at::equal(got, expected))
      << "a fresh instance loaded from the checkpoint gives other logits (by up to "
      << max_abs_diff(got, expected) << "): some state is not a registered parameter or buffer";
}

// ---------------------------------------------------------------------------------------------
// Modes

TEST_P(ModelConformance, EvalIsDeterministicWithoutGradients) {
  auto model = make();
  model->module().eval();
  torch::NoGradGuard no_grad;
  const std::int64_t T = length(*model);
  const at::Tensor inputs = tokens(batch(), T, 40);
  const at::Tensor first = model->forward(inputs, at::Tensor());
  const at::Tensor second = model->forward(inputs, at::Tensor());
  ASSERT_TRUE(logits_ok(first, batch(), T));
  EXPECT_TRUE(at::equal(first, second))
      << "two eval() forwards of one batch differ (by up to " << max_abs_diff(first, second)
      << "): is dropout or another random draw left on in eval mode?";
  EXPECT_FALSE(first.requires_grad()) << "forward under NoGradGuard built a graph";
  if (!classifier() && model->can_decode()) {
    auto state = model->start_decoding(1);
    EXPECT_FALSE(model->decode(*state, inputs.narrow(0, 0, 1)).requires_grad())
        << "decode under NoGradGuard built a graph";
  }
}

TEST_P(ModelConformance, TrainingForwardIsDifferentiable) {
  auto model = make();
  std::vector<at::Tensor> trainable;
  for (const at::Tensor& p : model->module().parameters(true)) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  if (trainable.empty()) GTEST_SKIP() << "the model has no trainable parameters";
  model->module().train();
  const at::Tensor logits = model->forward(tokens(batch(), length(*model), 50), at::Tensor());
  ASSERT_TRUE(logits.requires_grad()) << "train() forward built no graph to the parameters";
  logits.to(at::kFloat).pow(2).mean().backward();
  bool reached = false;
  for (const at::Tensor& p : trainable) {
    reached = reached || (p.grad().defined() && max_abs(p.grad()) > 0);
  }
  EXPECT_TRUE(reached) << "backward from the logits gave no parameter a non-zero gradient";
}

TEST_P(ModelConformance, ActivationsEndWithForwardsLogits) {
  auto model = make();
  model->module().eval();
  torch::NoGradGuard no_grad;
  const std::int64_t T = length(*model);
  const at::Tensor inputs = tokens(batch(), T, 60);
  const at::Tensor mask = at::ones({batch(), T}, at::kBool);
  const std::vector<Activation> activations = model->activations(inputs, mask);
  ASSERT_FALSE(activations.empty()) << "activations() reported nothing, not even the logits";
  for (const Activation& a : activations) {
    ASSERT_TRUE(a.value.defined()) << a.name;
    EXPECT_EQ(a.value.size(0), batch()) << a.name << " is not per batch row";
    if (a.per_position) {
      EXPECT_TRUE(a.value.dim() >= 2 && a.value.size(1) == T)
          << a.name << " is marked per position but is " << shape_text(a.value);
    }
  }
  EXPECT_TRUE(close(activations.back().value, model->forward(inputs, mask)))
      << "the last activation, '" << activations.back().name << "', is not forward's logits";
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ModelConformance);
INSTANTIATE_TEST_SUITE_P(Plugin, ModelConformance, ::testing::ValuesIn(subjects_of(Kind::kModel)),
                         [](const auto& info) { return test_name(info.param); });

}  // namespace
}  // namespace lmrun::testing
