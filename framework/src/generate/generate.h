// Generation: a trained Model, the sampler chain and a seed turn a prompt into new tokens.
//
//   auto samplers = make_samplers(registry, experiment.samplers, tokenizer->vocab_size());
//   GenerationRequest request;
//   request.prompt = tokenizer->encode("ROMEO:");
//   request.max_new_tokens = 300;
//   request.seed = 1337;
//   GenerationResult result = generate(*model, samplers, request);   // result.tokens: new ids only
//
//   // Or text in, text out, streamed as it is drawn:
//   std::string text = generate_text(*model, *tokenizer, samplers, "ROMEO:", 300, 1337,
//                                    [](const std::string& piece) { std::cout << piece <<
//                                    std::flush; });
//
// The semantics are nanoGPT's `generate()`: the logits for the next token are computed from the
// last max_context() tokens of prompt + generated text (all of them when max_context() is 0), the
// sampler chain maps them in order, and the token is drawn from softmax(logits) with
// at::multinomial and a CPU generator seeded with `request.seed`. The cached path (the default)
// feeds one token at a time through the model's decoding state; once a bounded model's state is
// full it starts a new one prefilled with the last max_context() tokens, which is exactly the
// cropped context. The reference path (`use_cache = false`) re-runs forward() on the cropped
// context every step. Both draw the same random numbers in the same order, so for one seed they
// give the same tokens; their logits differ only by float rounding (under 1e-5), which could flip a
// draw only when two candidates are that close (not met in the tests, 250 greedy tokens included).
//
// Cost: the cache saves work only inside the context. Past it, learned (or sinusoidal) absolute
// positions shift with the window, so every cached key and value changes and each new token costs
// a full forward over max_context() tokens, as on the reference path (gpt_tiny on one CPU thread:
// about 2,100 tokens/s cached against 820 uncached for the first 63 tokens, about 600 both over
// 500). A recurrent model's state never fills, so its cost per token stays constant.
//
// Sampling always happens on the CPU (the (1, V) logits are copied there), so a seed gives the same
// text whatever device the model is on, up to the model's own arithmetic.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmrun/batch.h"

namespace lmrun {
class Model;
class Registry;
class Sampler;
class Tokenizer;
}  // namespace lmrun

namespace lmrun::host {

struct PluginSpec;

struct GenerationRequest {
  std::vector<std::int64_t> prompt;   // token ids, at least one; a bounded model sees the last
                                      // max_context() of them
  std::int64_t max_new_tokens = 200;  // >= 0; 0 generates nothing
  std::uint64_t seed = 0;             // seeds the sampling generator; nothing else is random
  bool use_cache = true;  // false: the reference path, forward() on the cropped context per token
  std::vector<std::int64_t> stop_tokens;  // stop right after emitting one of these; may be empty
  // Asked after each token (and its on_token call) whether to stop there; may be empty.
  std::function<bool()> stop_when;
  // (1, S) token ids every step is conditioned on (a system message) for models that read it
  // (Model::forward_conditioned); undefined: none. Any device.
  Conditioning context;
};

struct GenerationResult {
  std::vector<std::int64_t> tokens;  // the generated ids only, a stop token included
  double seconds = 0;                // steady clock, prefill included, callbacks included
  double tokens_per_second = 0;      // tokens.size() / seconds; 0 when nothing was generated
};

// Generates up to request.max_new_tokens ids after request.prompt. The model runs in eval mode
// without autograd; its training flag is restored afterwards, also when an exception leaves.
// `on_token` (may be empty) is called with each id as soon as it is drawn, for streaming. The
// samplers are applied in order and see the whole history (prompt and generated ids) and the
// generator. Throws lmrun::Error on an empty prompt, a negative id or max_new_tokens, a prompt id
// the model rejects, or a chain that leaves no token to draw.
GenerationResult generate(Model& model, const std::vector<std::shared_ptr<Sampler>>& samplers,
                          const GenerationRequest& request,
                          const std::function<void(std::int64_t)>& on_token = {});

// Beam search: the `width` most probable continuations kept at each step (sum of token log
// probabilities from the model's softmax; the sampler chain is not used), a hypothesis ending at
// a stop token or at max_new_tokens; the winner is the one with the highest score / length ^
// length_penalty (Hugging Face's convention: > 0 favours longer, < 0 shorter, 0 the plain sum).
// Deterministic: ties go to the lower beam and token ids. Each step feeds the kept hypotheses'
// new tokens as one batch through the model's decoding state, reordered to follow them
// (DecodeState::select_rows); a model whose state cannot, or a prompt and answer longer than the
// context, runs forward() on the hypotheses' cropped contexts instead. width 1 is greedy decoding.
struct BeamRequest {
  std::int64_t width = 4;
  double length_penalty = 1.0;
  bool use_cache = true;  // false: always recompute (for comparisons)
};
struct BeamResult {
  std::vector<std::int64_t> tokens;  // the winner's new ids, a stop token included
  double log_probability = 0;        // its sum of token log probabilities
  double seconds = 0;
  bool cached = false;  // the hypotheses carried their decoding states (else: recomputed)
};
BeamResult beam_search(Model& model, const GenerationRequest& request, const BeamRequest& beam);

// Encodes `prompt`, generates, and returns the decoded new tokens. `on_text` (may be empty)
// receives the text piece by piece as tokens are drawn; the pieces concatenate to the returned
// string. A piece never ends inside a UTF-8 sequence: bytes of an incomplete character wait for the
// token that completes it. Each piece comes from decoding all new ids so far (decoding need not be
// token by token additive, e.g. for word-piece tokenizers), which costs O(n) per token.
std::string generate_text(Model& model, const Tokenizer& tokenizer,
                          const std::vector<std::shared_ptr<Sampler>>& samplers,
                          const std::string& prompt, std::int64_t max_new_tokens,
                          std::uint64_t seed,
                          const std::function<void(const std::string&)>& on_text = {});

// Text in, text out, with stop conditions.
struct TextRequest {
  std::string prompt;
  std::int64_t max_new_tokens = 200;
  std::uint64_t seed = 0;
  // Generation ends at the first occurrence of any of these in the new text, which is cut
  // before it (the stop string is not returned, as in OpenAI's and HF's APIs). Streaming holds
  // back any tail that could still become a stop string, so no piece of one is ever printed.
  std::vector<std::string> stop;
  std::vector<std::int64_t> stop_tokens;  // as GenerationRequest's; the token's text is kept
  std::int64_t beam_width = 0;            // >= 2: beam search instead of the sampler chain
  double length_penalty = 1.0;            // beam search's
  Conditioning context;                   // as GenerationRequest's
};

struct TextResult {
  std::string text;              // the new text, cut before a stop string
  std::int64_t tokens = 0;       // drawn, those of a stop string included
  double tokens_per_second = 0;  // as GenerationResult's
  std::string stop_reason;       // "max_new_tokens", "stop string \"...\"", "stop token N"
};

TextResult generate_text(Model& model, const Tokenizer& tokenizer,
                         const std::vector<std::shared_ptr<Sampler>>& samplers,
                         const TextRequest& request,
                         const std::function<void(const std::string&)>& on_text = {});

// The sampler chain of validated sections (experiment.samplers, in order), each created with
// SamplerContext{vocab_size}. Errors name the section ("generate.samplers.1: sampler 'top_k':
// ...").
std::vector<std::shared_ptr<Sampler>> make_samplers(const Registry& registry,
                                                    const std::vector<PluginSpec>& specs,
                                                    std::int64_t vocab_size);

}  // namespace lmrun::host
