// Row indices for datasets whose examples are rows (a classification file, generated problems):
// the draws of Dataset::sample() and the ranges of Dataset::slice().
//
//   Batch sample(Split split, std::int64_t b, at::Generator& g) const override {
//     return batch(split, lmrun::random_rows(num_examples(split), b, g, "dataset 'mine': " +
//                                            std::string(split_name(split)) + " split"));
//   }
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/ops/randint.h>

#include "lmrun/error.h"

namespace lmrun {

// `batch_size` indices in [0, n), uniform and independent, drawn with `generator` alone.
// Throws lmrun::Error naming `what` when n is 0.
inline std::vector<std::int64_t> random_rows(std::int64_t n, std::int64_t batch_size,
                                             at::Generator& generator, const std::string& what) {
  if (n <= 0) throw Error(what + " is empty");
  const at::Tensor picks = at::randint(n, {batch_size}, generator, at::kLong);
  return std::vector<std::int64_t>(picks.data_ptr<std::int64_t>(),
                                   picks.data_ptr<std::int64_t>() + batch_size);
}

// begin, begin + 1, ..., min(end, n) - 1.
inline std::vector<std::int64_t> row_range(std::int64_t begin, std::int64_t end, std::int64_t n) {
  std::vector<std::int64_t> rows;
  for (std::int64_t i = std::max<std::int64_t>(begin, 0); i < std::min(end, n); ++i)
    rows.push_back(i);
  return rows;
}

}  // namespace lmrun
