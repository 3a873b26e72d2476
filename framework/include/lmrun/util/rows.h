// Datasets whose examples are rows (a classification file, generated problems): the draws of
// Dataset::sample() and the ranges of Dataset::slice(), and a base class that implements both
// from one batch(split, rows).
//
//   class Mine final : public lmrun::RowDataset {
//     Batch batch(Split split, const std::vector<std::int64_t>& rows) const override;
//     ...
//   };
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/ops/randint.h>

#include "lmrun/dataset.h"
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

// sample() and slice() over rows: a subclass builds the batch of given rows of a split.
class RowDataset : public Dataset {
 public:
  Batch sample(Split split, std::int64_t batch_size, at::Generator& generator) const override {
    return batch(split, random_rows(num_examples(split), batch_size, generator,
                                    who() + "the " + split_name(split) + " split"));
  }
  Batch slice(Split split, std::int64_t begin, std::int64_t end) const override {
    return batch(split, row_range(begin, end, num_examples(split)));
  }

 protected:
  // The examples `rows` (indices into the split, in order) as one batch.
  virtual Batch batch(Split split, const std::vector<std::int64_t>& rows) const = 0;
  // "dataset 'NAME': ", the start of error messages.
  virtual std::string who() const = 0;
  // train 0, val 1, test 2: an index for per-split arrays.
  static int split_index(Split split) {
    return split == Split::kTrain ? 0 : split == Split::kVal ? 1 : 2;
  }
};

}  // namespace lmrun
