// lmrun inspect: a trained run's model laid open. Its parameters with shapes and counts, the
// memory training it takes, each weight tensor's statistics and histogram, and the statistics of
// every activation the model reports (Model::activations) on one batch of real data.
#include <torch/utils.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/run_dir.h"
#include "train/checkpoint.h"
#include "train/loss.h"
#include "train/pipeline.h"
#include "util/tensor_stats.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

std::string with_commas(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

std::string shape_of(const at::Tensor& t) {
  std::string out = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) out += (d ? ", " : "") + std::to_string(t.size(d));
  return out + "]";
}

std::string mebibytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f MiB", bytes / (1024.0 * 1024.0));
  return text;
}

std::string padded(const std::string& text, std::size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

const char* const kStatisticsHeader =
    "       mean        std        min        max    zeros  histogram (min to max, 16 bins)";

}  // namespace

int command_inspect(const CommonArgs& common, const RunDirArgs& args) {
  RunDir run = open_run_dir(common, args, kTrainedPipelineKinds);
  const Experiment& e = run.resolved.experiment;
  Pipeline p = trained_pipeline(run, args.run_dir);
  torch::nn::Module& module = p.model->module();
  std::ostream& out = std::cout;
  out << "checkpoint " << run.checkpoint.string() << "\nmodel " << e.model.type << ": "
      << p.model->summary();
  if (p.model->summary().empty() || p.model->summary().back() != '\n') out << "\n";

  // Parameters, each tensor once (a tied head shares the embedding's).
  const auto named = module.named_parameters(/*recurse=*/true);
  std::size_t width = 5;
  for (const auto& item : named) width = std::max(width, item.key().size() + 2);
  out << "\nparameters\n  " << padded("name", width) << padded("shape", 16)
      << "      count  trainable\n";
  std::vector<const void*> seen;
  std::int64_t total = 0, trainable = 0;
  double bytes = 0, gradient_bytes = 0;
  for (const auto& item : named) {
    const at::Tensor& t = item.value();
    const bool shared = std::find(seen.begin(), seen.end(), t.unsafeGetTensorImpl()) != seen.end();
    char count[24];
    std::snprintf(count, sizeof count, "%11s", with_commas(t.numel()).c_str());
    out << "  " << padded(item.key(), width) << padded(shape_of(t), 16) << count << "  "
        << (shared              ? "(shared)"
            : t.requires_grad() ? "yes"
                                : "no (frozen)")
        << "\n";
    if (shared) continue;
    seen.push_back(t.unsafeGetTensorImpl());
    total += t.numel();
    bytes += static_cast<double>(t.numel() * t.element_size());
    if (t.requires_grad()) {
      trainable += t.numel();
      gradient_bytes += static_cast<double>(t.numel() * t.element_size());
    }
  }
  out << "  " << padded("total", width) << padded("", 16)
      << std::string(11 - std::min<std::size_t>(11, with_commas(total).size()), ' ')
      << with_commas(total) << "  " << with_commas(trainable) << " trainable\n";
  double buffer_bytes = 0;
  for (const auto& buffer : module.named_buffers(true))
    buffer_bytes += static_cast<double>(buffer.value().numel() * buffer.value().element_size());

  // Memory: what training holds besides activations.
  std::error_code ec;
  const auto optimizer_file = run.checkpoint / "optimizer.pt";
  const double optimizer_bytes = fs::is_regular_file(optimizer_file, ec)
                                     ? static_cast<double>(fs::file_size(optimizer_file, ec))
                                     : 0;
  out << "\nmemory for training, activations aside\n"
      << "  parameters       " << mebibytes(bytes) << "\n"
      << "  buffers          " << mebibytes(buffer_bytes) << "\n"
      << "  gradients        " << mebibytes(gradient_bytes) << " (the trainable parameters)\n"
      << "  optimizer state  "
      << (optimizer_bytes > 0 ? mebibytes(optimizer_bytes) + " (" + e.optimizer.type +
                                    ": the checkpoint's optimizer.pt)"
                              : std::string("unknown (the checkpoint has no optimizer.pt)"))
      << "\n  total            "
      << mebibytes(bytes + buffer_bytes + gradient_bytes + optimizer_bytes) << "\n";

  out << "\nweights\n  " << padded("name", width) << kStatisticsHeader << "\n";
  seen.clear();
  for (const auto& item : named) {
    if (std::find(seen.begin(), seen.end(), item.value().unsafeGetTensorImpl()) != seen.end())
      continue;
    seen.push_back(item.value().unsafeGetTensorImpl());
    out << "  " << padded(item.key(), width) << statistics(item.value()) << "\n";
  }

  // Activations on the first examples of a split, in eval mode: padded positions left out. A
  // few examples describe the distributions, and a large batch_size would only cost memory.
  Split split = parse_split(args.split);
  if (!p.data->has_split(split)) {
    if (args.split_given) {
      throw Error("the run's dataset has no " + args.split + " split",
                  "choose another with --split train|val|test");
    }
    split = Split::kTrain;  // the default, val, where the run has none
  }
  constexpr std::int64_t kInspectExamples = 8;
  const std::int64_t n = std::min({p.data->num_examples(split), kInspectExamples,
                                   std::max<std::int64_t>(e.train.batch_size, 1)});
  const Batch batch = p.data->slice(split, 0, n);
  torch::NoGradGuard no_grad;
  module.eval();
  const at::Tensor mask = batch.mask.defined() ? batch.mask.to(p.device) : batch.mask;
  const std::vector<Activation> activations = p.model->activations(batch.inputs.to(p.device), mask);
  std::size_t name_width = 12;
  for (const auto& a : activations) name_width = std::max(name_width, a.name.size() + 1);
  out << "\nactivations on " << n << " " << split_name(split) << " examples of "
      << shape_of(batch.inputs) << " tokens (eval mode"
      << (mask.defined() ? "; padded positions left out" : "") << ")\n  "
      << padded("name", name_width) << padded("shape", 16) << kStatisticsHeader << "\n";
  for (const auto& a : activations) {
    at::Tensor values = a.value;
    if (a.per_position && mask.defined()) {
      if (values.dim() < 2 || values.size(0) != mask.size(0) || values.size(1) != mask.size(1)) {
        throw Error("the " + e.model.type + " plugin reports activation '" + a.name + "' of " +
                    shape_of(values) + " as per position, but the batch is " + shape_of(mask));
      }
      values = values.flatten(0, 1).index_select(
          0, mask.to(at::kBool).reshape({-1}).nonzero().squeeze(1));
    }
    out << "  " << padded(a.name, name_width) << padded(shape_of(a.value), 16) << statistics(values)
        << "\n";
  }
  if (activations.size() == 1) {
    out << "  (the " << e.model.type
        << " plugin reports only its output: it does not implement Model::activations)\n";
  }
  const std::string measured = p.model->diagnostics(objective_batch(batch, 0, p.device));
  if (!measured.empty()) {
    out << "\nmeasured by the " << e.model.type << " plugin on these examples\n";
    std::istringstream lines(measured);
    for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";
  }
  return kExitOk;
}

}  // namespace lmrun::host
