// The transformer's weights under other tools' names (lmrun/model.h, WeightLayout):
//
//   "gpt2"     Hugging Face's GPT2LMHeadModel: transformer.h.{i}.attn.c_attn.weight and so on, the
//              linears as Conv1D (in, out), no lm_head.weight when tied (safetensors stores a
//              tensor once), and a config.json of model_type "gpt2".
//   "nanogpt"  nanoGPT's GPT (model.py): the same names with nn.Linear's (out, in), lm_head.weight
//              beside transformer.wte.weight (one tensor, tied), and model_args.
//
// Both need LayerNorm, learned positions and logits; GPT-2 also biases, nanoGPT also a tied head
// and the exact GELU (model.py's nn.GELU()). Hugging Face's "gelu" is the exact GELU and its
// "gelu_new" GPT-2's tanh one, so either GELU is GPT-2's layout.
#pragma once

#include <string>
#include <vector>

#include "gpt.h"
#include "lmrun/model.h"

namespace lmrun::models {

// "gpt2" and "nanogpt", each with why `gpt` cannot be written in it (empty when it can).
std::vector<WeightLayout> gpt_layouts(const GptConfig& config);

// The weights in `layout`; throws lmrun::Error for a layout that does not fit (gpt_layouts).
ExternalWeights gpt_export(const GptImpl& gpt, const std::string& layout);

// Tensors under `layout`'s names (with or without Hugging Face's "transformer." prefix) renamed
// and reoriented to the model's own keys. Unknown names pass through; the causal-mask buffers of
// older files (attn.bias, attn.masked_bias) are dropped, and so is lm_head.weight when the model
// is tied and it equals the token embedding.
std::vector<NamedTensor> gpt_import(const GptConfig& config, const std::string& layout,
                                    std::vector<NamedTensor> tensors);

}  // namespace lmrun::models
