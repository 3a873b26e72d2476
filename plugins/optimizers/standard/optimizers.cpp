// The standard optimizers (adamw, adam, sgd): thin wrappers over torch::optim that group parameters
// as nanoGPT's configure_optimizers does, so weight decay touches matrices and embeddings only.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/archive.h>

#include "adamw_kernel.h"
#include "lmrun/optimizer.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Options: one struct per registered name; the defaults live here and only here.

struct AdamWOptions {
  double lr = 1e-3;                         // step size
  std::array<double, 2> betas{0.9, 0.999};  // decay rates of the first and second moments
  double eps = 1e-8;                        // added to sqrt(v) in the denominator
  double weight_decay = 0.01;               // decoupled: p -= lr * wd * p, on dim >= 2 only
};

struct AdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: grad += wd * p, on dim >= 2 only
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;     // momentum buffer takes (1 - dampening) of each gradient
  double weight_decay = 0.0;  // L2: grad += wd * p, on dim >= 2 only
  bool nesterov = false;
};

template <class Options>
void add_adam_params(lmrun::Schema<Options>& schema) {
  schema.add("lr", &Options::lr, "learning rate (schedulers scale from it)").min(0, true);
  schema.add("betas", &Options::betas, "decay rates of the first and second moment estimates")
      .range(0, 1, true);
  schema.add("eps", &Options::eps, "term added to the denominator for numerical stability")
      .min(0, true);
}

lmrun::Schema<AdamWOptions> adamw_schema() {
  lmrun::Schema<AdamWOptions> schema;
  add_adam_params(schema);
  schema
      .add("weight_decay", &AdamWOptions::weight_decay,
           "decoupled weight decay, applied to parameters with dim >= 2 only")
      .min(0);
  return schema;
}

lmrun::Schema<AdamOptions> adam_schema() {
  lmrun::Schema<AdamOptions> schema;
  add_adam_params(schema);
  schema
      .add("weight_decay", &AdamOptions::weight_decay,
           "L2 penalty added to the gradient, for parameters with dim >= 2 only")
      .min(0);
  return schema;
}

// torch::optim::SGD checks this too, but with a TORCH_CHECK backtrace and no hint. Registered as a
// schema check, so the host reports it while validating the experiment.
void check_sgd(const SgdOptions& options) {
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw lmrun::Error(
        "nesterov = true needs momentum > 0 and dampening = 0 (momentum = " +
            lmrun::format_value(options.momentum) +
            ", dampening = " + lmrun::format_value(options.dampening) + ")",
        "set momentum (0.9 is usual) and leave dampening at 0, or set nesterov = false");
  }
}

lmrun::Schema<SgdOptions> sgd_schema() {
  lmrun::Schema<SgdOptions> schema;
  schema.add("lr", &SgdOptions::lr, "learning rate (schedulers scale from it)").min(0, true);
  schema.add("momentum", &SgdOptions::momentum, "momentum factor; 0 is plain SGD")
      .range(0, 1, true);
  schema.add("dampening", &SgdOptions::dampening, "dampening of the momentum").range(0, 1);
  schema
      .add("weight_decay", &SgdOptions::weight_decay,
           "L2 penalty added to the gradient, for parameters with dim >= 2 only")
      .min(0);
  schema.add("nesterov", &SgdOptions::nesterov,
             "Nesterov momentum; needs momentum > 0 and dampening = 0");
  schema.check(check_sgd);
  return schema;
}

// ---------------------------------------------------------------------------------------------
// Parameter groups

// nanoGPT's split: every 2-D or larger tensor (linear weights, embeddings) is decayed; biases and
// norm gains are not. Tied weights (the same tensor under two names) are kept once, under the
// first name, since torch::optim keys its state by tensor and would otherwise step them twice.
struct ParameterSplit {
  std::vector<at::Tensor> decay;
  std::vector<at::Tensor> no_decay;
  // "name [d0, d1]" for every kept parameter in group order (decay first): what save() records so
  // that load() can say which parameter differs.
  std::vector<std::string> layout;
};

std::string describe_parameter(const lmrun::NamedParameter& parameter) {
  std::string out = parameter.name + " [";
  for (std::int64_t d = 0; d < parameter.tensor.dim(); ++d) {
    out += (d ? ", " : "") + std::to_string(parameter.tensor.size(d));
  }
  return out + "]";
}

ParameterSplit split_parameters(const lmrun::OptimizerContext& context) {
  ParameterSplit split;
  std::unordered_set<const void*> seen;
  std::vector<std::string> decay_layout;
  std::vector<std::string> no_decay_layout;
  for (const lmrun::NamedParameter& parameter : context.parameters) {
    if (!parameter.tensor.defined()) {
      throw lmrun::Error("parameter '" + parameter.name + "' is an undefined tensor");
    }
    if (!parameter.tensor.requires_grad()) continue;  // frozen: nothing to update
    if (!seen.insert(parameter.tensor.unsafeGetTensorImpl()).second) continue;
    if (parameter.tensor.dim() >= 2) {
      split.decay.push_back(parameter.tensor);
      decay_layout.push_back(describe_parameter(parameter));
    } else {
      split.no_decay.push_back(parameter.tensor);
      no_decay_layout.push_back(describe_parameter(parameter));
    }
  }
  if (split.decay.empty() && split.no_decay.empty()) {
    throw lmrun::Error("no trainable parameters were given (none requires grad)",
                       "check that the model registers its parameters and does not freeze all");
  }
  split.layout = std::move(decay_layout);
  split.layout.insert(split.layout.end(), no_decay_layout.begin(), no_decay_layout.end());
  return split;
}

// Up to two groups, decayed first. An empty group is left out: nothing to step, and one entry less
// in every checkpoint.
template <class TorchOptions>
std::vector<torch::optim::OptimizerParamGroup> make_groups(ParameterSplit& split,
                                                           const TorchOptions& options) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!split.decay.empty()) {
    groups.emplace_back(std::move(split.decay), std::make_unique<TorchOptions>(options));
  }
  if (!split.no_decay.empty()) {
    auto no_decay_options = std::make_unique<TorchOptions>(options);
    no_decay_options->weight_decay(0.0);
    groups.emplace_back(std::move(split.no_decay), std::move(no_decay_options));
  }
  return groups;
}

// ---------------------------------------------------------------------------------------------
// AdamW in one pass per tensor

// torch::optim::AdamW with its step fused into one loop per tensor (adamw_kernel.h) when every
// parameter and gradient is a dense, contiguous fp32 CPU tensor; otherwise LibTorch's own step.
// The state lives where AdamW keeps it (AdamWParamState, keyed by the tensor), so checkpoints
// are torch::optim's format either way. gpt_tiny: 2.4 -> 1.1 ms of a ~50 ms step.
class FusedAdamW final : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;

  at::Tensor step(LossClosure closure = nullptr) override {
    if (closure != nullptr || !fusable()) return torch::optim::AdamW::step(std::move(closure));
    at::NoGradGuard no_grad;
    for (auto& group : param_groups()) {
      const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        auto& state = state_for(p);
        state.step(state.step() + 1);
        const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
        const auto t = static_cast<double>(state.step());
        lmrun::optimizers::AdamWStep s{};
        s.decay_factor = static_cast<float>(1.0 - options.lr() * options.weight_decay());
        s.beta1 = static_cast<float>(beta1);
        s.beta2 = static_cast<float>(beta2);
        s.one_minus_beta1 = static_cast<float>(1.0 - beta1);  // in double, as LibTorch does
        s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
        s.step_size = static_cast<float>(options.lr() / (1.0 - std::pow(beta1, t)));
        s.sqrt_bias_correction2 = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
        s.eps = static_cast<float>(options.eps());
        lmrun::optimizers::adamw_update(
            s, p.numel(), p.data_ptr<float>(), p.grad().data_ptr<float>(),
            state.exp_avg().data_ptr<float>(), state.exp_avg_sq().data_ptr<float>());
      }
    }
    return {};
  }

 private:
  static bool plain(const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
           t.layout() == at::kStrided;
  }

  // Every parameter, gradient and existing moment is a plain fp32 CPU array of the parameter's
  // size (state loaded from a checkpoint could be anything): checked before anything changes, so
  // a step is either fused throughout or LibTorch's throughout, never half of each.
  bool fusable() const {
    for (const auto& group : param_groups()) {
      if (static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad()) return false;
      for (const auto& p : group.params()) {
        if (!plain(p) || (p.grad().defined() && !plain(p.grad()))) return false;
        const auto it = state().find(key_of(p));
        if (it == state().end()) continue;
        const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
        for (const at::Tensor* moment : {&s.exp_avg(), &s.exp_avg_sq()}) {
          if (!moment->defined() || !moment->device().is_cpu() ||
              moment->scalar_type() != at::kFloat || moment->layout() != at::kStrided ||
              moment->numel() != p.numel()) {
            return false;
          }
        }
      }
    }
    return true;
  }

  // torch::optim keys its state by the tensor: LibTorch 1.x by the TensorImpl's address printed
  // as a string, 2.x by the address itself.
  using StateKey =
      std::decay_t<decltype(std::declval<const torch::optim::Optimizer&>().state())>::key_type;
  template <typename Key = StateKey>  // a template, so that only the matching branch compiles
  static Key key_of(const at::Tensor& p) {
    if constexpr (std::is_same_v<Key, std::string>) {
      return c10::guts::to_string(p.unsafeGetTensorImpl());
    } else {
      return p.unsafeGetTensorImpl();
    }
  }

  // The tensor's state, created as torch::optim::AdamW creates it (zero moments, step 0).
  torch::optim::AdamWParamState& state_for(const at::Tensor& p) {
    auto& all = state();
    const StateKey key = key_of(p);
    auto it = all.find(key);
    if (it == all.end()) {
      auto fresh = std::make_unique<torch::optim::AdamWParamState>();
      fresh->exp_avg(at::zeros_like(p, at::MemoryFormat::Contiguous));
      fresh->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Contiguous));
      it = all.emplace(key, std::move(fresh)).first;
    }
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    // Loaded state may be non-contiguous; the kernel needs plain arrays.
    if (!s.exp_avg().is_contiguous()) s.exp_avg(s.exp_avg().contiguous());
    if (!s.exp_avg_sq().is_contiguous()) s.exp_avg_sq(s.exp_avg_sq().contiguous());
    return s;
  }
};

// ---------------------------------------------------------------------------------------------
// The wrapper behind lmrun::Optimizer

constexpr const char* kLayoutKey = "lmrun_parameters";

class TorchOptimizer final : public lmrun::Optimizer {
 public:
  TorchOptimizer(std::unique_ptr<torch::optim::Optimizer> optimizer, double base_lr,
                 std::vector<std::string> layout)
      : optimizer_(std::move(optimizer)), base_lr_(base_lr), layout_(std::move(layout)) {}

  // Sets gradients to none (undefined), as PyTorch 2.x and nanoGPT do: saves a memset per step,
  // and backward() then writes fresh gradients instead of accumulating into zeros.
  void zero_grad() override {
    for (auto& group : optimizer_->param_groups()) {
      for (auto& parameter : group.params()) parameter.mutable_grad().reset();
    }
  }

  // Parameters whose grad is undefined are skipped by torch::optim (no decay either).
  void step() override { optimizer_->step(); }

  double base_lr() const override { return base_lr_; }

  void set_lr(double lr) override {
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  }

  // torch::optim's own format, plus the parameter layout it was saved for.
  void save(torch::serialize::OutputArchive& archive) override {
    optimizer_->save(archive);
    c10::List<std::string> layout;
    for (const auto& entry : layout_) layout.push_back(entry);
    archive.write(kLayoutKey, c10::IValue(layout));
  }

  // torch::optim matches state to parameters by position and checks only the counts, so a model
  // whose shapes changed would fail later inside step(); the saved layout makes it fail here.
  void load(torch::serialize::InputArchive& archive) override {
    c10::IValue saved;
    if (archive.try_read(kLayoutKey, saved)) check_layout(saved.to<c10::List<std::string>>());
    try {
      optimizer_->load(archive);
    } catch (const c10::Error& e) {
      throw lmrun::Error(
          std::string("cannot load the optimizer state: ") + e.what_without_backtrace(),
          "the checkpoint was written by another optimizer or model");
    }
  }

 private:
  void check_layout(const c10::List<std::string>& saved) const {
    const std::size_t n = std::min(saved.size(), layout_.size());
    for (std::size_t i = 0; i < n; ++i) {
      if (saved.get(i) != layout_[i]) {
        throw lmrun::Error("optimizer state does not fit the model: parameter " +
                               std::to_string(i) + " was saved as " + saved.get(i) +
                               ", the model has " + layout_[i],
                           "resume with the model configuration the checkpoint was written with");
      }
    }
    if (saved.size() != layout_.size()) {
      throw lmrun::Error("optimizer state does not fit the model: saved for " +
                             std::to_string(saved.size()) + " parameters, the model has " +
                             std::to_string(layout_.size()),
                         "resume with the model configuration the checkpoint was written with");
    }
  }

  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  double base_lr_;
  std::vector<std::string> layout_;  // "name [shape]" in group order
};

// ---------------------------------------------------------------------------------------------
// Factories

std::shared_ptr<lmrun::Optimizer> make_adamw(const AdamWOptions& options,
                                             const lmrun::OptimizerContext& context) {
  ParameterSplit split = split_parameters(context);
  auto torch_options = torch::optim::AdamWOptions(options.lr)
                           .betas({options.betas[0], options.betas[1]})
                           .eps(options.eps)
                           .weight_decay(options.weight_decay);
  auto groups = make_groups(split, torch_options);
  return std::make_shared<TorchOptimizer>(
      std::make_unique<FusedAdamW>(std::move(groups), torch_options), options.lr,
      std::move(split.layout));
}

std::shared_ptr<lmrun::Optimizer> make_adam(const AdamOptions& options,
                                            const lmrun::OptimizerContext& context) {
  ParameterSplit split = split_parameters(context);
  auto torch_options = torch::optim::AdamOptions(options.lr)
                           .betas({options.betas[0], options.betas[1]})
                           .eps(options.eps)
                           .weight_decay(options.weight_decay);
  auto groups = make_groups(split, torch_options);
  return std::make_shared<TorchOptimizer>(
      std::make_unique<torch::optim::Adam>(std::move(groups), torch_options), options.lr,
      std::move(split.layout));
}

std::shared_ptr<lmrun::Optimizer> make_sgd(const SgdOptions& options,
                                           const lmrun::OptimizerContext& context) {
  check_sgd(options);
  ParameterSplit split = split_parameters(context);
  auto torch_options = torch::optim::SGDOptions(options.lr)
                           .momentum(options.momentum)
                           .dampening(options.dampening)
                           .weight_decay(options.weight_decay)
                           .nesterov(options.nesterov);
  auto groups = make_groups(split, torch_options);
  return std::make_shared<TorchOptimizer>(
      std::make_unique<torch::optim::SGD>(std::move(groups), torch_options), options.lr,
      std::move(split.layout));
}

void register_optimizers(lmrun::Registry& registry) {
  registry.add<lmrun::Optimizer>(
      "adamw", "Adam with decoupled weight decay (Loshchilov & Hutter), torch::optim::AdamW",
      adamw_schema(), make_adamw);
  registry.add<lmrun::Optimizer>("adam",
                                 "Adam with L2 weight decay (Kingma & Ba), torch::optim::Adam",
                                 adam_schema(), make_adam);
  registry.add<lmrun::Optimizer>("sgd",
                                 "stochastic gradient descent with optional (Nesterov) momentum",
                                 sgd_schema(), make_sgd);
}

}  // namespace

LMRUN_PLUGIN("optimizers", "0.1.0", register_optimizers)
