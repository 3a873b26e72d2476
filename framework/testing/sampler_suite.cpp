// The sampler suite: sampler.h's contracts on every sampler registration under test
// (conformance.h).
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/isnan.h>
#include <ATen/ops/randn.h>

#include "lmrun/sampler.h"
#include "lmrun/testing/conformance.h"

namespace lmrun::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

class SamplerConformance : public ::testing::TestWithParam<Subject> {
 protected:
  const SuiteOptions& options() const { return GetParam().options; }
  std::int64_t vocab() const { return options().vocab_size; }

  std::shared_ptr<Sampler> make() const {
    return GetParam().create<Sampler>(SamplerContext{vocab()});
  }

  // (B, V) logits of scale 3, the first row with a few tokens already masked (-inf) by an
  // earlier link of the chain.
  at::Tensor logits(std::int64_t rows, std::uint64_t salt) const {
    at::Generator generator =
        at::detail::createCPUGenerator(static_cast<std::uint64_t>(options().seed) * 104729 + salt);
    at::Tensor out = at::randn({rows, vocab()}, generator, at::kFloat).mul(3.0);
    for (std::int64_t id = 1; id < vocab(); id += 5) out[0][id] = -kInf;
    return out;
  }

  // A generation's state: a history of ids (a prompt with repeats) and a generator.
  std::vector<std::int64_t> history() const {
    std::vector<std::int64_t> ids;
    for (std::int64_t i = 0; i < 12; ++i) ids.push_back((i * 7 + i / 4) % vocab());
    return ids;
  }
};

TEST_P(SamplerConformance, ShapeAndValues) {
  auto sampler = make();
  const std::vector<std::int64_t> ids = history();
  at::Generator generator = at::detail::createCPUGenerator(1);
  for (std::int64_t rows : {std::int64_t{1}, options().batch_size}) {
    SCOPED_TRACE("logits (" + std::to_string(rows) + ", " + std::to_string(vocab()) + ")");
    const at::Tensor in = logits(rows, static_cast<std::uint64_t>(rows));
    const at::Tensor out = sampler->apply(in.clone(), SamplingState{&ids, &generator});
    ASSERT_TRUE(out.defined()) << "apply returned an undefined tensor";
    ASSERT_EQ(out.sizes(), in.sizes()) << "apply must return (B, V) for (B, V)";
    ASSERT_TRUE(out.is_floating_point()) << "apply returned " << out.scalar_type();
    EXPECT_FALSE(at::isnan(out).any().item<bool>()) << "apply produced NaN";
    EXPECT_FALSE(out.eq(kInf).any().item<bool>()) << "apply produced +inf";
    EXPECT_TRUE(at::isfinite(out).any(1).all().item<bool>())
        << "apply left a row without a finite logit: nothing to draw from";
  }
  // Without a history or a generator, which a caller may leave null.
  const at::Tensor in = logits(options().batch_size, 3);
  EXPECT_EQ(sampler->apply(in.clone(), SamplingState{}).sizes(), in.sizes());
}

TEST_P(SamplerConformance, MaskedTokensStayMasked) {
  auto sampler = make();
  const std::vector<std::int64_t> ids = history();
  at::Generator generator = at::detail::createCPUGenerator(2);
  const at::Tensor in = logits(options().batch_size, 4);
  const at::Tensor out = sampler->apply(in.clone(), SamplingState{&ids, &generator});
  ASSERT_EQ(out.sizes(), in.sizes());
  const at::Tensor masked = in.eq(-kInf);
  EXPECT_TRUE(out.masked_select(masked).eq(-kInf).all().item<bool>())
      << "a token an earlier link masked (-inf) has a logit again";
}

TEST_P(SamplerConformance, Deterministic) {
  // Two instances, generators of one seed, the same calls: the same logits out, call after call
  // (a sampler with state, such as a running target, must evolve identically too).
  auto first = make();
  auto second = make();
  at::Generator g1 = at::detail::createCPUGenerator(static_cast<std::uint64_t>(options().seed));
  at::Generator g2 = at::detail::createCPUGenerator(static_cast<std::uint64_t>(options().seed));
  std::vector<std::int64_t> ids = history();
  for (std::uint64_t call = 0; call < 4; ++call) {
    const std::int64_t rows = call % 2 == 0 ? 1 : options().batch_size;
    const at::Tensor in = logits(rows, 10 + call);
    const at::Tensor a = first->apply(in.clone(), SamplingState{&ids, &g1});
    const at::Tensor b = second->apply(in.clone(), SamplingState{&ids, &g2});
    ASSERT_EQ(a.sizes(), b.sizes());
    EXPECT_TRUE(at::equal(a, b)) << "call " << call << ": two instances given the same logits "
                                 << "and generators of one seed disagree";
    ids.push_back(static_cast<std::int64_t>(call * 3) % vocab());
  }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SamplerConformance);
INSTANTIATE_TEST_SUITE_P(Plugin, SamplerConformance,
                         ::testing::ValuesIn(subjects_of(Kind::kSampler)),
                         [](const auto& info) { return test_name(info.param); });

}  // namespace
}  // namespace lmrun::testing
