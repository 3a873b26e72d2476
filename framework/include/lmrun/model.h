// Model plugins: a LibTorch module behind one interface for training, evaluation and generation.
//
//   auto model = registry.create<lmrun::Model>("transformer", params, {vocab, block, 0, -1});
//   at::Tensor logits = model->forward(batch.inputs, batch.mask);   // (B, T, V)
//
//   auto state = model->start_decoding(1);              // model-owned: KV cache, hidden state
//   at::Tensor next = model->decode(*state, prompt);     // (1, T0) -> (1, V) at the last position
//   next = model->decode(*state, token);                 // (1, 1)  -> (1, V)
//
// The objective (lmrun/objective.h) computes the loss from the outputs, so a model only maps tokens
// to logits, or, for an embedding objective such as cosine_embedding, to vectors in the space of
// its token embeddings (ModelContext::output). Most plugins wrap a LibTorch module with TorchModel
// (torch_model.h) and write only what differs.
//
// What a model plugin can rely on:
// - Construction: the factory runs right after torch::manual_seed(experiment seed), so initial
//   weights drawn from LibTorch's default generator are a function of the seed. It runs on the
//   CPU; the host then moves the module with module().to(device) (cpu, or cuda with
//   train.device), so a model must register every tensor it needs on the device (parameters,
//   buffers) rather than hold tensors of its own.
// - Checkpoints: every parameter and buffer of module() is saved and restored by name; the names
//   given to register_module()/register_parameter()/register_buffer() are checkpoint keys, so
//   they are API. Nothing else of the object is saved.
// - Modes: forward() in training runs in train() mode with gradients; evaluation, activations()
//   and decoding run in eval() mode under torch::NoGradGuard.
// - Output contracts, checked by the host on a dry batch at set-up, before any step: forward()
//   gives (B, T, vocab_size) for a language model (ModelContext::num_classes == 0) and (B, C)
//   for a classifier; decode() gives a defined (B, vocab_size) tensor. Built for vectors
//   (ModelContext::output == kVectors), forward() gives (B, T, D) and decode() (B, D), D the
//   width of token_embeddings(). A model breaking one is refused with both shapes named.
// - A language model's outputs depend on its inputs from the start (freshly built, before any
//   training): the conformance suite's causality check needs a change to show.
// - Calls into a plugin are guarded by the host: an exception names the plugin and the call, a
//   crash is reported with them before the process ends.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "lmrun/batch.h"
#include "lmrun/registry.h"
#include "lmrun/tokenizer.h"

namespace lmrun {

// What forward() and decode() return, as the run's objective asks (Objective::output()).
enum class ModelOutput {
  kScores,   // logits over the vocabulary (B, T, V) or the classes (B, C): cross-entropy
  kVectors,  // (B, T, D) vectors compared with token_embeddings() (D wide): cosine_embedding, mse
};

struct ModelContext {
  std::int64_t vocab_size = 0;       // the tokenizer's, special tokens included
  std::int64_t sequence_length = 0;  // the data's window or padded length (block_size)
  std::int64_t num_classes = 0;      // 0 for a language model
  std::int64_t pad_id = -1;          // the tokenizer's <pad> id, -1 when it has none
  // The run's fitted or loaded tokenizer, for initialisation that needs each id's text (word
  // vectors): tokenizer->decode({id}). Valid during construction only; null in unit tests that
  // build a model alone.
  const Tokenizer* tokenizer = nullptr;
  // True when a checkpoint's weights replace the initial ones right after construction (resume,
  // eval, generate, predict): skip initialisation that reads files.
  bool weights_from_checkpoint = false;
  // What to output. A model that cannot produce vectors refuses kVectors in its factory (lmrun
  // says so before any work); one that ignores it is caught by the output check.
  ModelOutput output = ModelOutput::kScores;
  // The dataset's training text (Dataset::training_text()), for initialisation fitted to the
  // data (a sinusoidal embedding's frequencies, a readout solved in closed form), encoded with
  // `tokenizer`. Valid during construction only; empty when weights_from_checkpoint.
  std::string_view training_text = {};
};

// Weights under another tool's names (`lmrun export`, `[model] init_from`). A layout is a name
// the model and the host agree on: "gpt2" is Hugging Face's GPT2LMHeadModel (its state-dict names,
// Conv1D's (in, out) orientation, config.json), "nanogpt" is nanoGPT's GPT (model.py's state-dict
// names, its model_args). A plugin may offer its own.
struct WeightLayout {
  std::string name;      // "gpt2"
  std::string mismatch;  // why this model cannot be written so ("norm = rmsnorm: GPT-2 has
                         // LayerNorm"); empty when it can
};
struct NamedTensor {
  std::string name;
  at::Tensor value;
};
struct ExternalWeights {
  // The layout's description of the architecture as one JSON object: config.json for "gpt2",
  // model_args for "nanogpt".
  std::string config_json;
  // Every tensor the layout's reader expects, under its names and in its orientation, on the CPU.
  // A tensor may appear under two names (a tied head): the writer stores it as the format does.
  std::vector<NamedTensor> tensors;
};

// One ONNX graph of a model (`lmrun export --format onnx`): a serialized onnx.ModelProto with the
// weights as initializers.
struct OnnxGraph {
  std::string name;         // "model": the forward pass; "decode": one step, state in and out
  std::string model_proto;  // the ModelProto's bytes
};

// A named intermediate tensor of one forward pass (`lmrun inspect`).
struct Activation {
  std::string name;           // "embedding", "blocks.0", "pooled", "logits"
  at::Tensor value;           // (B, T, ...) per position or (B, ...) per text
  bool per_position = false;  // (B, T, ...): statistics leave the padded positions out
};

// What a model carries between decode() calls. Owned by the caller, made by the model.
class LMRUN_API DecodeState {
 public:
  virtual ~DecodeState() = default;
  // Tokens fed so far.
  virtual std::int64_t length() const = 0;
  // Keeps the batch rows `rows` ((B') int64 indices into the current batch, repeats allowed), in
  // that order, as the new batch: beam search carrying each kept hypothesis's cache forward.
  // Returns false, changing nothing, when this state cannot (the default); beam search then
  // recomputes every step from the tokens.
  virtual bool select_rows(const at::Tensor& /*rows*/) { return false; }
};

class LMRUN_API Model {
 public:
  virtual ~Model() = default;

  // The module tree: parameters, train()/eval(), to(device), state for checkpoints.
  virtual torch::nn::Module& module() = 0;

  // inputs (B, T) int64; mask (B, T) bool or undefined. Returns language model logits (B, T, V)
  // or classification logits (B, C).
  virtual at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask) = 0;

  // Optional: forward() conditioned on per-example context (a conversation's system message,
  // lmrun/batch.h), for the batches that carry one. Default: the context is ignored.
  virtual at::Tensor forward_conditioned(const at::Tensor& inputs, const at::Tensor& mask,
                                         const Conditioning& /*context*/) {
    return forward(inputs, mask);
  }
  // True when the model reads the context (shown in the run's header). Default false.
  virtual bool uses_context() const { return false; }

  // Optional capability: incremental decoding (language models). A model that generates text
  // returns true here and implements the two methods below; the defaults refuse.
  virtual bool can_decode() const { return false; }
  // A fresh state for `batch_size` sequences.
  virtual std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size);
  // A fresh state whose sequences are conditioned on `context` ((batch_size, S) or (1, S) for
  // all). Default: start_decoding(batch_size), the context ignored.
  virtual std::unique_ptr<DecodeState> start_decoding_conditioned(std::int64_t batch_size,
                                                                  const Conditioning& /*context*/) {
    return start_decoding(batch_size);
  }
  // Feeds tokens (B, t) after those already in `state`; returns the logits of the last position
  // (B, V). Throws lmrun::Error when state.length() + t would exceed max_context().
  virtual at::Tensor decode(DecodeState& state, const at::Tensor& tokens);
  // Longest context decode() and forward() accept; 0 when unbounded (recurrent models).
  virtual std::int64_t max_context() const { return 0; }

  // Optional. forward() with its intermediate tensors, in the order computed, the logits last,
  // for `lmrun inspect`'s activation statistics. The default reports the logits alone, per
  // position when they are (B, T, vocabulary).
  virtual std::vector<Activation> activations(const at::Tensor& inputs, const at::Tensor& mask) {
    at::Tensor logits = forward(inputs, mask);
    const bool per_position = logits.dim() == 3;
    return {Activation{"logits", std::move(logits), per_position}};
  }

  // Optional: the token embedding table (V, D) on the model's device, the targets of an
  // embedding objective (cosine_embedding, mse: the vector predicted for a position is compared
  // with the next token's row). May be a trained parameter (the objective decides whether its
  // gradient reaches it) or a fixed buffer. Undefined, the default: the model has none, and an
  // embedding objective refuses it.
  virtual at::Tensor token_embeddings() { return {}; }

  // Optional: how many positions at the start of every sequence the loss and metrics leave out,
  // because their outputs are not yet meaningful (a reservoir's washout: its state still
  // remembers the initial one). Default 0.
  virtual std::int64_t washout() const { return 0; }

  // Optional: properties of the trained model measured on a batch of real inputs (B, T), for
  // `lmrun inspect`: a reservoir's spectral radius, its state statistics, the echo state property.
  // One property per line, "name: value (what it means)". Runs in eval mode without gradients.
  // Default: none.
  virtual std::string diagnostics(const Batch& /*batch*/) { return {}; }

  // Optional: a few lines on the architecture, shown under the model's line at the start of a
  // run (which already gives the parameter count). Default: none.
  virtual std::string summary() const { return {}; }

  // Optional. Floating-point operations of one training step (forward and backward) per token at
  // the given context length, as nanoGPT's estimate_mfu counts them (6 per parameter of a matrix
  // product, plus the attention products): the numerator of the model-FLOPs utilisation the
  // trainer logs. 0, the default, means unknown, and the log leaves MFU out.
  virtual double flops_per_token(std::int64_t context) const {
    (void)context;
    return 0.0;
  }

  // Optional: interchange with other tools. The layouts this plugin knows, each with why this
  // instance cannot be written in it (empty: it can). Default: none; `lmrun export` then writes
  // the model's own names (module().named_parameters()), which every model has.
  virtual std::vector<WeightLayout> weight_layouts() const { return {}; }
  // The weights in `layout`, one of weight_layouts() with an empty mismatch. Throws lmrun::Error
  // otherwise.
  virtual ExternalWeights export_weights(const std::string& layout);
  // The inverse, for `[model] init_from`: tensors under `layout`'s names (as a file holds them,
  // any dtype) to this model's own names and orientation. A name the layout does not know is
  // returned unchanged, for the host to report; a name the model does not use (a tied head's
  // second copy, a causal-mask buffer) is dropped. Throws lmrun::Error for `layout` unknown.
  virtual std::vector<NamedTensor> import_weights(const std::string& layout,
                                                  std::vector<NamedTensor> tensors);

  // Optional: quantized inference (`lmrun generate|eval|predict --quantize int8`). Replaces the
  // weights of the model's linear layers, in place, by `scheme`: "int8" is symmetric INT8 per
  // output channel, activations quantized dynamically as they come, results in fp32. Called once,
  // after the weights are loaded and the model is in eval mode on the CPU; the model is neither
  // trained nor saved afterwards. Returns one line on what changed (tensors, bytes before and
  // after). Default: throws lmrun::Error (the model has no quantized path).
  virtual std::string quantize(const std::string& scheme);

  // Optional: the model as ONNX graphs at `opset` (ai.onnx), built from its current weights:
  // "model" (inputs (B, T) int64 -> logits) and, for a model that decodes, "decode" (one step,
  // its state as inputs and outputs). Default: none; lmrun export refuses the format for it.
  virtual std::vector<OnnxGraph> export_onnx(std::int64_t opset) {
    (void)opset;
    return {};
  }
};

namespace detail {
inline Error no_decoding() {
  return Error("this model does not generate text (it has no incremental decoding)",
               "remove [generate] from the experiment, or use a language model");
}
}  // namespace detail

inline std::unique_ptr<DecodeState> Model::start_decoding(std::int64_t) {
  throw detail::no_decoding();
}
inline at::Tensor Model::decode(DecodeState&, const at::Tensor&) { throw detail::no_decoding(); }
inline std::string Model::quantize(const std::string& scheme) {
  throw Error("this model has no quantized inference ('" + scheme + "')",
              "run it without --quantize");
}
inline ExternalWeights Model::export_weights(const std::string& layout) {
  throw Error("this model has no weight layout '" + layout + "'",
              "export under lmrun's own names (lmrun export --layout lmrun)");
}
inline std::vector<NamedTensor> Model::import_weights(const std::string& layout,
                                                      std::vector<NamedTensor>) {
  throw Error("this model has no weight layout '" + layout + "'",
              "give init_from a file under the model's own names (an lmrun run or export)");
}

// For a model's factory that produces logits only: throws lmrun::Error when the run asks for
// vectors (an embedding objective).
inline void require_scores(const ModelContext& context) {
  if (context.output == ModelOutput::kVectors) {
    throw Error(
        "outputs logits only, but the objective asks for vectors in the token-embedding "
        "space",
        "use objective type = \"cross_entropy\", or a model with vector outputs "
        "(transformer)");
  }
}

// For a language model's factory: throws lmrun::Error unless the context is a language model's
// (no classes, a vocabulary). The host adds "model 'NAME': " in front.
inline void require_language_model(const ModelContext& context) {
  if (context.num_classes != 0) {
    throw Error("is a language model, but the data asks for " +
                    std::to_string(context.num_classes) + " classes",
                "use a classification model for a classification dataset");
  }
  if (context.vocab_size < 1) {
    throw Error("the vocabulary is empty (vocab_size " + std::to_string(context.vocab_size) + ")");
  }
}

template <>
struct KindTraits<Model> {
  static constexpr Kind kKind = Kind::kModel;
  using Context = ModelContext;
};

}  // namespace lmrun
