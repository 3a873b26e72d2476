// The trainer's helpers: gradient clipping against LibTorch's clip_grad_norm_, the matmul peak
// probe (which must leave the run's random stream alone), and the process readings in summary.json.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>
// clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>

#include "cli/run_dir.h"
#include "train/clip.h"
#include "train/peak.h"
#include "util/process.h"
#include "util/tensor_stats.h"

namespace {

using lmrun::NamedParameter;

// Parameters of odd sizes (no multiple of the kernel's lanes) with gradients of the given scale.
std::vector<NamedParameter> parameters(double scale, at::ScalarType dtype) {
  std::vector<NamedParameter> out;
  for (std::int64_t n : {7, 130, 1001}) {
    at::Tensor p = at::randn({n}, dtype).set_requires_grad(true);
    p.mutable_grad() = at::randn({n}, dtype) * scale;
    out.push_back({"p" + std::to_string(n), p});
  }
  return out;
}

// The same parameters with cloned gradients, clipped by LibTorch's own function.
double reference_clip(const std::vector<NamedParameter>& params, double max_norm,
                      std::vector<at::Tensor>& clipped_grads) {
  std::vector<at::Tensor> copies;
  for (const auto& named : params) {
    at::Tensor c = named.tensor.detach().clone().set_requires_grad(true);
    c.mutable_grad() = named.tensor.grad().clone();
    copies.push_back(c);
  }
  const double norm = torch::nn::utils::clip_grad_norm_(copies, max_norm);
  for (const auto& c : copies) clipped_grads.push_back(c.grad());
  return norm;
}

TEST(ClipGradNorm, MatchesLibTorchWhenItClipsAndWhenItDoesNot) {
  torch::manual_seed(3);
  for (double scale : {10.0, 0.001}) {  // global norm ~ 320 (clipped) and ~ 0.03 (left alone)
    SCOPED_TRACE(scale);
    auto params = parameters(scale, at::kFloat);
    std::vector<at::Tensor> expected;
    const double expected_norm = reference_clip(params, 1.0, expected);
    std::vector<at::Tensor> scratch;
    const double norm = lmrun::host::clip_grad_norm(params, 1.0, scratch);
    EXPECT_NEAR(norm, expected_norm, 1e-5 * expected_norm);
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(at::allclose(params[i].tensor.grad(), expected[i], 1e-5, 1e-7)) << i;
    }
  }
}

TEST(ClipGradNorm, OtherDtypesAndMissingGradientsTakeLibTorchsPath) {
  torch::manual_seed(4);
  auto params = parameters(10.0, at::kDouble);
  at::Tensor no_grad = at::randn({5}).set_requires_grad(true);
  params.push_back({"frozen", no_grad});  // no gradient: skipped, not an error
  std::vector<at::Tensor> expected;
  std::vector<NamedParameter> with_grads(params.begin(), params.end() - 1);
  const double expected_norm = reference_clip(with_grads, 0.5, expected);
  std::vector<at::Tensor> scratch;
  EXPECT_NEAR(lmrun::host::clip_grad_norm(params, 0.5, scratch), expected_norm, 1e-9);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(at::allclose(params[i].tensor.grad(), expected[i], 1e-12, 1e-12)) << i;
  }
  EXPECT_FALSE(no_grad.grad().defined());
}

TEST(MatmulPeak, IsPositiveAndLeavesTheGlobalGeneratorAlone) {
  torch::manual_seed(11);
  const at::Tensor expected = at::randn({4});
  torch::manual_seed(11);
  const double peak = lmrun::host::measure_matmul_peak(at::kCPU, at::kFloat, 64, 2, 0.0);
  EXPECT_GT(peak, 0.0);
  EXPECT_TRUE(at::equal(at::randn({4}), expected));  // the probe drew from its own generator
}

TEST(Process, ReportsItsAgeAndPeakMemory) {
  const double age = lmrun::host::seconds_since_process_start();
  EXPECT_GT(age, 0.0);
  EXPECT_LT(age, 3600.0);
  const double rss = lmrun::host::peak_rss_mib();
  EXPECT_GT(rss, 1.0);  // LibTorch alone is over 100 MiB; anything real is over 1
}

}  // namespace

TEST(TensorStats, HistogramHeightsAreCountsOverTheFullestBin) {
  // Three values in the first bin, one in the last, none between: full, 3/8 rounded up, spaces.
  const at::Tensor values = torch::tensor({0.0f, 0.0f, 0.0f, 1.0f});
  EXPECT_EQ(lmrun::host::histogram(values, 0.0, 1.0), "█" + std::string(14, ' ') + "▃");
  EXPECT_EQ(lmrun::host::histogram(torch::tensor({2.0f, 2.0f}), 2.0, 2.0), "(all           2)");
}

TEST(TensorStats, StatisticsLineHasMeanStdMinMaxZerosAndHistogram) {
  const std::string line = lmrun::host::statistics(torch::tensor({0.0f, 2.0f, 0.0f, 2.0f}));
  // Unbiased std of {0, 2, 0, 2}: sqrt(4/3) = 1.155.
  EXPECT_EQ(line, "          1      1.155          0          2    50.0%  █" +
                      std::string(14, ' ') + "█");
  EXPECT_EQ(lmrun::host::statistics(at::empty({0})), "(empty)");
  // NaN and infinities are counted apart; the rest keep their statistics and histogram.
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(lmrun::host::statistics(torch::tensor({0.0f, 2.0f, NAN, inf, -inf, 0.0f, 2.0f})),
            "          1      1.155          0          2    28.6%  █" + std::string(14, ' ') +
                "█  (+1 nan, 2 inf)");
  EXPECT_EQ(lmrun::host::statistics(torch::tensor({NAN})), "(no finite values)  (+1 nan, 0 inf)");
}

TEST(CrossValidation, FoldStatisticsLeaveNonFiniteFoldsOut) {
  using lmrun::host::fold_statistic;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto s = fold_statistic({0.8, 0.7, 0.9});
  EXPECT_NEAR(s.mean, 0.8, 1e-12);
  EXPECT_NEAR(s.sd, 0.1, 1e-12);  // sample std: squares / (n - 1)
  EXPECT_EQ(s.count, 3u);
  s = fold_statistic({2.0, nan, 4.0, inf});
  EXPECT_DOUBLE_EQ(s.mean, 3.0);
  EXPECT_NEAR(s.sd, std::sqrt(2.0), 1e-12);
  EXPECT_EQ(s.count, 2u);
  s = fold_statistic({nan, 5.0});  // one value: a mean, no std
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_TRUE(std::isnan(s.sd));
  EXPECT_EQ(s.count, 1u);
  s = fold_statistic({nan, nan});
  EXPECT_TRUE(std::isnan(s.mean));
  EXPECT_EQ(s.count, 0u);
}
