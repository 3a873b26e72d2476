// The batches objectives see: on the model's device, with every position that must not count in
// the loss or the metrics set to kIgnoreTarget.
#pragma once

#include <cstdint>

#include <c10/core/Device.h>

#include "lmrun/dataset.h"
#include "lmrun/model.h"

namespace lmrun::host {

// `batch` on `device`, its targets kIgnoreTarget where the mask is false (padding) and, for a
// language model's (B, T) targets, at the first `washout` positions of every row (Model::washout).
// Its context (conditioning) moves along.
Batch objective_batch(const Batch& batch, std::int64_t washout, c10::Device device);

// The model's outputs for a batch: forward_conditioned when the batch carries a context.
at::Tensor model_outputs(Model& model, const Batch& batch);

// Rows [begin, begin + n) of every tensor of `batch` (the context's too).
Batch batch_rows(const Batch& batch, std::int64_t begin, std::int64_t n);

}  // namespace lmrun::host
