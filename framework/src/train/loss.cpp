// What an objective is handed: the dataset's batch with the host's positions to ignore marked.
#include "train/loss.h"

#include <algorithm>

#include <ATen/ops/full_like.h>
#include <ATen/ops/where.h>

namespace lmrun::host {

Batch objective_batch(const Batch& batch, std::int64_t washout, c10::Device device) {
  Batch out;
  out.inputs = batch.inputs.to(device);
  out.mask = batch.mask.defined() ? batch.mask.to(device) : batch.mask;
  at::Tensor targets = batch.targets;
  if (batch.mask.defined() && targets.dim() == batch.mask.dim()) {
    targets = at::where(batch.mask, targets, at::full_like(targets, kIgnoreTarget));
  }
  if (washout > 0 && targets.dim() == 2) {
    if (targets.data_ptr() == batch.targets.data_ptr()) targets = targets.clone();
    targets.narrow(1, 0, std::min(washout, targets.size(1))).fill_(kIgnoreTarget);
  }
  out.targets = targets.to(device);
  if (batch.context.defined()) {
    out.context.tokens = batch.context.tokens.to(device);
    if (batch.context.mask.defined()) out.context.mask = batch.context.mask.to(device);
  }
  return out;
}

at::Tensor model_outputs(Model& model, const Batch& batch) {
  if (batch.context.defined())
    return model.forward_conditioned(batch.inputs, batch.mask, batch.context);
  return model.forward(batch.inputs, batch.mask);
}

Batch batch_rows(const Batch& batch, std::int64_t begin, std::int64_t n) {
  const auto rows = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, begin, n) : t; };
  Batch out{rows(batch.inputs), rows(batch.targets), rows(batch.mask), {}};
  out.context.tokens = rows(batch.context.tokens);
  out.context.mask = rows(batch.context.mask);
  return out;
}

}  // namespace lmrun::host
