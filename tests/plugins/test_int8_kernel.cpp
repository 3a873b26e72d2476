// The transformer's INT8 matrix-vector kernel (plugins/models/transformer/int8_kernel.h), compiled
// into this test: its AVX2 and portable paths agree bit for bit, the result is the exact product
// of the quantized values, and it stays within quantization error of the fp32 product.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "int8_kernel.h"
#include "lmrun/util/cpu_kernels.h"

namespace {

using namespace lmrun::models;

struct Case {
  std::vector<float> w, x, bias;
  std::int64_t rows, cols;
};

Case random_case(std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Case c{std::vector<float>(rows * cols), std::vector<float>(cols), std::vector<float>(rows), rows,
         cols};
  for (float& v : c.w) v = normal(rng) * 0.05f;
  for (float& v : c.x) v = normal(rng);
  for (float& v : c.bias) v = normal(rng) * 0.1f;
  return c;
}

std::vector<float> product(const Case& c, const Int8Matrix& m, bool avx2) {
  set_int8_kernel_avx2(avx2);
  Int8Vector scratch;
  std::vector<float> y(c.rows);
  matvec_int8(m, c.bias.data(), c.x.data(), scratch, y.data());
  set_int8_kernel_avx2(true);
  return y;
}

TEST(Int8Kernel, BothPathsAgreeBitForBitAndComputeTheQuantizedProductExactly) {
  for (auto [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {384, 128}, {128, 512}, {131, 77}, {3, 5}, {65, 200}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    Case c = random_case(rows, cols, static_cast<unsigned>(rows * 7 + cols));
    if (rows > 5) std::fill(c.w.begin() + 5 * cols, c.w.begin() + 6 * cols, 0.0f);  // a zero row
    const Int8Matrix m = quantize_rows(c.w.data(), rows, cols);
    const std::vector<float> fast = product(c, m, true), portable = product(c, m, false);
    EXPECT_EQ(std::memcmp(fast.data(), portable.data(), fast.size() * sizeof(float)), 0);

    Int8Vector xq;
    quantize_vector(c.x.data(), cols, xq);
    std::vector<float> fp32(rows);
    lmrun::cpu::matvec(c.w.data(), c.bias.data(), c.x.data(), rows, cols, fp32.data());
    double error = 0, norm = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      double exact = 0;  // the dequantized product in double
      for (std::int64_t k = 0; k < cols; ++k)
        exact += double(m.q[r * m.stride + k]) * m.scale[r] * double(xq.q[k]) * xq.scale;
      exact += c.bias[r];
      EXPECT_NEAR(fast[r], exact, 1e-5 * (1.0 + std::fabs(exact)));
      error += (fast[r] - fp32[r]) * (fast[r] - fp32[r]);
      norm += fp32[r] * fp32[r];
    }
    EXPECT_LT(std::sqrt(error / norm), 0.03);  // quantization error, about 1e-2
    if (rows > 5) {
      EXPECT_EQ(m.scale[5], 0.0f);
    }
  }
}

TEST(Int8Kernel, RoundsHalfToEvenAndClampsTo127) {
  Int8Vector q;
  const std::vector<float> x = {127.0f, 2.5f, 3.5f, -2.5f, 0.0f};  // scale 1: the values themselves
  quantize_vector(x.data(), static_cast<std::int64_t>(x.size()), q);
  EXPECT_EQ(q.scale, 1.0f);
  EXPECT_EQ((std::vector<std::int16_t>(q.q.begin(), q.q.begin() + 5)),
            (std::vector<std::int16_t>{127, 2, 4, -2, 0}));
  const std::vector<float> zeros(7, 0.0f);
  quantize_vector(zeros.data(), 7, q);
  EXPECT_EQ(q.scale, 0.0f);
}

}  // namespace
