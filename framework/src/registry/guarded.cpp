// One wrapper per plugin kind: each method forwards to the plugin's object inside guarded(), so
// that whatever the plugin throws names it and the call, and a crash in it is reported by name.
#include "registry/guarded.h"

#include "lmrun/dataset.h"
#include "lmrun/metric.h"
#include "lmrun/model.h"
#include "lmrun/objective.h"
#include "lmrun/optimizer.h"
#include "lmrun/sampler.h"
#include "lmrun/scheduler.h"
#include "lmrun/tokenizer.h"

namespace lmrun::host {
namespace {

// The forwarding: CALL names the method in messages and crash reports.
#define LMRUN_FORWARD(CALL, ...) \
  guarded(*who_, CALL, [&]() -> decltype(auto) { return __VA_ARGS__; })

class GuardedDataset final : public Dataset, public Wrapped {
 public:
  GuardedDataset(std::shared_ptr<Dataset> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  Task task() const override { return LMRUN_FORWARD("task", inner_->task()); }
  std::string training_text() const override {
    return LMRUN_FORWARD("training_text", inner_->training_text());
  }
  void prepare(const Tokenizer& tokenizer) override {
    LMRUN_FORWARD("prepare", inner_->prepare(tokenizer));
  }
  bool has_split(Split split) const override {
    return LMRUN_FORWARD("has_split", inner_->has_split(split));
  }
  std::int64_t num_examples(Split split) const override {
    return LMRUN_FORWARD("num_examples", inner_->num_examples(split));
  }
  std::int64_t sequence_length() const override {
    return LMRUN_FORWARD("sequence_length", inner_->sequence_length());
  }
  std::int64_t num_classes() const override {
    return LMRUN_FORWARD("num_classes", inner_->num_classes());
  }
  std::vector<std::string> class_names() const override {
    return LMRUN_FORWARD("class_names", inner_->class_names());
  }
  Batch sample(Split split, std::int64_t batch_size, at::Generator& generator) const override {
    return LMRUN_FORWARD("sample", inner_->sample(split, batch_size, generator));
  }
  Batch slice(Split split, std::int64_t begin, std::int64_t end) const override {
    return LMRUN_FORWARD("slice", inner_->slice(split, begin, end));
  }
  std::vector<ExampleGroup> groups() const override {
    return LMRUN_FORWARD("groups", inner_->groups());
  }
  Batch group_slice(std::size_t group, std::int64_t begin, std::int64_t end) const override {
    return LMRUN_FORWARD("group_slice", inner_->group_slice(group, begin, end));
  }
  std::vector<std::string> special_tokens() const override {
    return LMRUN_FORWARD("special_tokens", inner_->special_tokens());
  }
  std::string objective() const override { return LMRUN_FORWARD("objective", inner_->objective()); }
  ChatFormat chat_format() const override {
    return LMRUN_FORWARD("chat_format", inner_->chat_format());
  }
  void save(const std::filesystem::path& folder) const override {
    LMRUN_FORWARD("save", inner_->save(folder));
  }

 private:
  std::shared_ptr<Dataset> inner_;
};

class GuardedTokenizer final : public Tokenizer, public Wrapped {
 public:
  GuardedTokenizer(std::shared_ptr<Tokenizer> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  void fit(std::string_view text) override { LMRUN_FORWARD("fit", inner_->fit(text)); }
  std::vector<std::int64_t> encode(std::string_view text) const override {
    return LMRUN_FORWARD("encode", inner_->encode(text));
  }
  std::string decode(const std::vector<std::int64_t>& ids) const override {
    return LMRUN_FORWARD("decode", inner_->decode(ids));
  }
  std::int64_t vocab_size() const override {
    return LMRUN_FORWARD("vocab_size", inner_->vocab_size());
  }
  std::int64_t special_id(std::string_view token) const override {
    return LMRUN_FORWARD("special_id", inner_->special_id(token));
  }
  void save(const std::filesystem::path& folder) const override {
    LMRUN_FORWARD("save", inner_->save(folder));
  }
  void load(const std::filesystem::path& folder) override {
    LMRUN_FORWARD("load", inner_->load(folder));
  }

 private:
  std::shared_ptr<Tokenizer> inner_;
};

class GuardedModel final : public Model, public Wrapped {
 public:
  GuardedModel(std::shared_ptr<Model> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  torch::nn::Module& module() override { return LMRUN_FORWARD("module", inner_->module()); }
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& mask) override {
    return LMRUN_FORWARD("forward", inner_->forward(inputs, mask));
  }
  at::Tensor forward_conditioned(const at::Tensor& inputs, const at::Tensor& mask,
                                 const Conditioning& context) override {
    return LMRUN_FORWARD("forward_conditioned", inner_->forward_conditioned(inputs, mask, context));
  }
  bool uses_context() const override {
    return LMRUN_FORWARD("uses_context", inner_->uses_context());
  }
  bool can_decode() const override { return LMRUN_FORWARD("can_decode", inner_->can_decode()); }
  std::unique_ptr<DecodeState> start_decoding(std::int64_t batch_size) override {
    return LMRUN_FORWARD("start_decoding", inner_->start_decoding(batch_size));
  }
  std::unique_ptr<DecodeState> start_decoding_conditioned(std::int64_t batch_size,
                                                          const Conditioning& context) override {
    return LMRUN_FORWARD("start_decoding_conditioned",
                         inner_->start_decoding_conditioned(batch_size, context));
  }
  at::Tensor decode(DecodeState& state, const at::Tensor& tokens) override {
    return LMRUN_FORWARD("decode", inner_->decode(state, tokens));
  }
  std::int64_t max_context() const override {
    return LMRUN_FORWARD("max_context", inner_->max_context());
  }
  std::vector<Activation> activations(const at::Tensor& inputs, const at::Tensor& mask) override {
    return LMRUN_FORWARD("activations", inner_->activations(inputs, mask));
  }
  at::Tensor token_embeddings() override {
    return LMRUN_FORWARD("token_embeddings", inner_->token_embeddings());
  }
  std::int64_t washout() const override { return LMRUN_FORWARD("washout", inner_->washout()); }
  std::string diagnostics(const Batch& batch) override {
    return LMRUN_FORWARD("diagnostics", inner_->diagnostics(batch));
  }
  std::string summary() const override { return LMRUN_FORWARD("summary", inner_->summary()); }
  double flops_per_token(std::int64_t context) const override {
    return LMRUN_FORWARD("flops_per_token", inner_->flops_per_token(context));
  }
  std::vector<WeightLayout> weight_layouts() const override {
    return LMRUN_FORWARD("weight_layouts", inner_->weight_layouts());
  }
  ExternalWeights export_weights(const std::string& layout) override {
    return LMRUN_FORWARD("export_weights", inner_->export_weights(layout));
  }
  std::vector<NamedTensor> import_weights(const std::string& layout,
                                          std::vector<NamedTensor> tensors) override {
    return LMRUN_FORWARD("import_weights", inner_->import_weights(layout, std::move(tensors)));
  }
  std::string quantize(const std::string& scheme) override {
    return LMRUN_FORWARD("quantize", inner_->quantize(scheme));
  }
  std::vector<OnnxGraph> export_onnx(std::int64_t opset) override {
    return LMRUN_FORWARD("export_onnx", inner_->export_onnx(opset));
  }

 private:
  std::shared_ptr<Model> inner_;
};

class GuardedOptimizer final : public Optimizer, public Wrapped {
 public:
  GuardedOptimizer(std::shared_ptr<Optimizer> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  void zero_grad() override { LMRUN_FORWARD("zero_grad", inner_->zero_grad()); }
  void step() override { LMRUN_FORWARD("step", inner_->step()); }
  double base_lr() const override { return LMRUN_FORWARD("base_lr", inner_->base_lr()); }
  void set_lr(double lr) override { LMRUN_FORWARD("set_lr", inner_->set_lr(lr)); }
  std::vector<double> learning_rates() const override {
    return LMRUN_FORWARD("learning_rates", inner_->learning_rates());
  }
  void save(torch::serialize::OutputArchive& archive) override {
    LMRUN_FORWARD("save", inner_->save(archive));
  }
  void load(torch::serialize::InputArchive& archive) override {
    LMRUN_FORWARD("load", inner_->load(archive));
  }

 private:
  std::shared_ptr<Optimizer> inner_;
};

class GuardedScheduler final : public Scheduler, public Wrapped {
 public:
  GuardedScheduler(std::shared_ptr<Scheduler> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  double lr(std::int64_t step) override { return LMRUN_FORWARD("lr", inner_->lr(step)); }
  void on_evaluation(std::int64_t step, const Metrics& metrics) override {
    LMRUN_FORWARD("on_evaluation", inner_->on_evaluation(step, metrics));
  }
  std::string save_state() const override {
    return LMRUN_FORWARD("save_state", inner_->save_state());
  }
  void load_state(const std::string& state) override {
    LMRUN_FORWARD("load_state", inner_->load_state(state));
  }

 private:
  std::shared_ptr<Scheduler> inner_;
};

class GuardedCallback final : public Callback, public Wrapped {
 public:
  GuardedCallback(std::shared_ptr<Callback> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  void check_plan(const TrainState& planned) const override {
    LMRUN_FORWARD("check_plan", inner_->check_plan(planned));
  }
  void on_train_start(const TrainState& state, TrainerControl& control) override {
    LMRUN_FORWARD("on_train_start", inner_->on_train_start(state, control));
  }
  void on_after_backward(const TrainState& state, const std::vector<NamedParameter>& parameters,
                         TrainerControl& control) override {
    LMRUN_FORWARD("on_after_backward", inner_->on_after_backward(state, parameters, control));
  }
  void on_step_end(const TrainState& state, TrainerControl& control) override {
    LMRUN_FORWARD("on_step_end", inner_->on_step_end(state, control));
  }
  void on_eval_end(const TrainState& state, const Metrics& eval, TrainerControl& control) override {
    LMRUN_FORWARD("on_eval_end", inner_->on_eval_end(state, eval, control));
  }
  void on_checkpoint(const TrainState& state, const std::filesystem::path& folder) override {
    LMRUN_FORWARD("on_checkpoint", inner_->on_checkpoint(state, folder));
  }
  void on_train_end(const TrainState& state, TrainerControl& control) override {
    LMRUN_FORWARD("on_train_end", inner_->on_train_end(state, control));
  }
  std::vector<std::string> metric_names() const override {
    return LMRUN_FORWARD("metric_names", inner_->metric_names());
  }
  std::string save_state() const override {
    return LMRUN_FORWARD("save_state", inner_->save_state());
  }
  void load_state(const std::string& state) override {
    LMRUN_FORWARD("load_state", inner_->load_state(state));
  }

 private:
  std::shared_ptr<Callback> inner_;
};

class GuardedSampler final : public Sampler, public Wrapped {
 public:
  GuardedSampler(std::shared_ptr<Sampler> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  at::Tensor apply(at::Tensor logits, const SamplingState& state) override {
    return LMRUN_FORWARD("apply", inner_->apply(std::move(logits), state));
  }

 private:
  std::shared_ptr<Sampler> inner_;
};

class GuardedMetric final : public Metric, public Wrapped {
 public:
  GuardedMetric(std::shared_ptr<Metric> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  std::vector<std::string> names() const override {
    return LMRUN_FORWARD("names", inner_->names());
  }
  void reset() override { LMRUN_FORWARD("reset", inner_->reset()); }
  void update(const at::Tensor& logits, const at::Tensor& targets) override {
    LMRUN_FORWARD("update", inner_->update(logits, targets));
  }
  Metrics compute() const override { return LMRUN_FORWARD("compute", inner_->compute()); }

 private:
  std::shared_ptr<Metric> inner_;
};

class GuardedObjective final : public Objective, public Wrapped {
 public:
  GuardedObjective(std::shared_ptr<Objective> inner, WhoPtr who)
      : Wrapped(std::move(who)), inner_(std::move(inner)) {}
  ModelOutput output() const override { return LMRUN_FORWARD("output", inner_->output()); }
  void attach(Model& model) override { LMRUN_FORWARD("attach", inner_->attach(model)); }
  std::int64_t count(const Batch& batch) const override {
    return LMRUN_FORWARD("count", inner_->count(batch));
  }
  at::Tensor loss(const at::Tensor& outputs, const Batch& batch) override {
    return LMRUN_FORWARD("loss", inner_->loss(outputs, batch));
  }
  at::Tensor scores(const at::Tensor& outputs) override {
    return LMRUN_FORWARD("scores", inner_->scores(outputs));
  }
  bool loss_is_nll() const override { return LMRUN_FORWARD("loss_is_nll", inner_->loss_is_nll()); }

 private:
  std::shared_ptr<Objective> inner_;
};

#undef LMRUN_FORWARD

template <class Guarded, class Interface>
std::shared_ptr<Interface> wrap(std::shared_ptr<Interface> object, WhoPtr who) {
  if (!object || dynamic_cast<const Wrapped*>(object.get()) != nullptr) return object;
  return std::make_shared<Guarded>(std::move(object), std::move(who));
}

}  // namespace

WhoPtr plugin_who(const Registry& registry, Kind kind, const std::string& name) {
  const auto* host_registry = dynamic_cast<const PluginRegistry*>(&registry);
  const RegistryEntry* entry = host_registry ? host_registry->find_entry(kind, name) : nullptr;
  return std::make_shared<const PluginWho>(std::string(kind_name(kind)) + " '" + name + "'",
                                           entry ? entry->origin.file.string() : std::string());
}

std::shared_ptr<Dataset> wrap_plugin(std::shared_ptr<Dataset> object, WhoPtr who) {
  return wrap<GuardedDataset>(std::move(object), std::move(who));
}
std::shared_ptr<Tokenizer> wrap_plugin(std::shared_ptr<Tokenizer> object, WhoPtr who) {
  return wrap<GuardedTokenizer>(std::move(object), std::move(who));
}
std::shared_ptr<Model> wrap_plugin(std::shared_ptr<Model> object, WhoPtr who) {
  return wrap<GuardedModel>(std::move(object), std::move(who));
}
std::shared_ptr<Optimizer> wrap_plugin(std::shared_ptr<Optimizer> object, WhoPtr who) {
  return wrap<GuardedOptimizer>(std::move(object), std::move(who));
}
std::shared_ptr<Scheduler> wrap_plugin(std::shared_ptr<Scheduler> object, WhoPtr who) {
  return wrap<GuardedScheduler>(std::move(object), std::move(who));
}
std::shared_ptr<Callback> wrap_plugin(std::shared_ptr<Callback> object, WhoPtr who) {
  return wrap<GuardedCallback>(std::move(object), std::move(who));
}
std::shared_ptr<Sampler> wrap_plugin(std::shared_ptr<Sampler> object, WhoPtr who) {
  return wrap<GuardedSampler>(std::move(object), std::move(who));
}
std::shared_ptr<Metric> wrap_plugin(std::shared_ptr<Metric> object, WhoPtr who) {
  return wrap<GuardedMetric>(std::move(object), std::move(who));
}
std::shared_ptr<Objective> wrap_plugin(std::shared_ptr<Objective> object, WhoPtr who) {
  return wrap<GuardedObjective>(std::move(object), std::move(who));
}

}  // namespace lmrun::host
