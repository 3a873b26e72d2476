// The model as the host checks it and as generation sees it.
//
//   check_model_outputs(*model, context, device);     // at set-up: shapes on a dry batch
//   std::shared_ptr<Model> scored = scored_model(model, objective);
//   generate(*scored, samplers, request);             // decode() now gives scores (B, V)
#pragma once

#include <memory>

#include <c10/core/Device.h>

#include "lmrun/model.h"
#include "lmrun/objective.h"

namespace lmrun::host {

// The output contracts of lmrun/model.h on a dry batch of 2 x min(4, sequence length) tokens, in
// eval mode without gradients: forward() gives (B, T, vocab) or (B, classes), decode() (when
// can_decode()) a defined (1, vocab); built for vectors (context.output), (B, T, D) and (1, D),
// D the width of token_embeddings(). Throws lmrun::Error naming the model and both shapes. The
// pipelines run it right after building the model.
void check_model_outputs(Model& model, const ModelContext& context, c10::Device device);

// `model` with its forward() and decode() outputs mapped through objective->scores(): what
// metrics, the sampler chain, beam search and predict read. The model itself when `objective` is
// null (a run from before objectives, whose outputs are scores). Holds both.
std::shared_ptr<Model> scored_model(std::shared_ptr<Model> model,
                                    std::shared_ptr<Objective> objective);

}  // namespace lmrun::host
