// lmrun eval and lmrun predict: a trained run's model over a split, or over new texts.
#include <ATen/ops/full.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/utils.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/run_dir.h"
#include "config/diagnostics.h"
#include "lmrun/util/utf8.h"
#include "train/checkpoint.h"
#include "train/pipeline.h"
#include "util/fs.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace lmrun::host {

void apply_quantize(Pipeline& p, const RunDirArgs& args) {
  if (args.quantize.empty()) return;
  if (!p.device.is_cpu()) {
    throw Error("--quantize runs on the CPU, and this run's device is " + p.device.str(),
                "add --set train.device=cpu");
  }
  p.model->module().eval();
  std::cerr << "lmrun: quantized " << p.model->quantize(args.quantize) << "\n";
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "val") return Split::kVal;
  if (name == "test") return Split::kTest;
  throw UsageError("--split must be train, val or test, not '" + abbreviate(name) + "'");
}

Pipeline trained_pipeline(const RunDir& run, const fs::path& run_dir) {
  const Experiment& e = run.resolved.experiment;
  configure_runtime(e.train.threads);
  Pipeline p = build_pipeline(e, run.resolved.plugins->registry,
                              PipelineOptions{run_dir, run.checkpoint / "tokenizer", false});
  // The model's outputs mean the classes it was trained on: the dataset must give the same ones
  // in the same order, or every metric would compare against the wrong ids.
  if (p.data->task() == Task::kClassification) {
    const std::vector<std::string> trained = read_class_names(run.checkpoint);
    if (trained != p.class_names) {
      auto list = [](const std::vector<std::string>& names) {
        std::string out;
        for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
        return "[" + out + "]";
      };
      throw Error("checkpoint " + run.checkpoint.string() + " was trained on the classes " +
                      list(trained) + ", and the dataset now gives " + list(p.class_names),
                  "evaluate with the data the run was trained on (its config.toml's [data]), or "
                  "train again");
    }
  }
  try {
    load_model_weights(run.checkpoint, *p.model);
  } catch (const Error& error) {
    // A model sized by the data's length (learned positions) no longer fits its weights when the
    // data now asks for longer examples: say that, not only the tensor shapes.
    const std::int64_t trained = read_model_context(run.checkpoint).sequence_length;
    const std::int64_t asked = p.model_context.sequence_length;
    if (asked <= trained) throw;
    throw Error("the dataset's examples now take " + std::to_string(asked) +
                    " positions, more than the " + std::to_string(trained) +
                    " (block_size) the checkpoint's model was built for: " + error.what(),
                "evaluate with the data the run was trained on, or train with the longer "
                "examples in [data] (a held-out length, say) so that the model has positions "
                "for them");
  }
  return p;
}

namespace {

// Counts of (true class, predicted class) over a pass, padding (kIgnoreTarget) left out.
class ConfusionCounts {
 public:
  explicit ConfusionCounts(std::int64_t classes)
      : classes_(classes), counts_(static_cast<std::size_t>(classes * classes), 0) {}

  void add(const at::Tensor& logits, const at::Tensor& targets) {
    const at::Tensor predicted = logits.argmax(-1).reshape({-1}).to(at::kCPU).contiguous();
    const at::Tensor truth = targets.reshape({-1}).to(at::kCPU).contiguous();
    const auto* p = predicted.data_ptr<std::int64_t>();
    const auto* t = truth.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < truth.numel(); ++i) {
      if (t[i] < 0 || t[i] >= classes_) continue;
      ++counts_[static_cast<std::size_t>(t[i] * classes_ + p[i])];
    }
  }

  std::int64_t at(std::int64_t truth, std::int64_t predicted) const {
    return counts_[static_cast<std::size_t>(truth * classes_ + predicted)];
  }
  std::int64_t classes() const { return classes_; }

 private:
  std::int64_t classes_;
  std::vector<std::int64_t> counts_;
};

std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

std::string pad_left(const std::string& text, std::size_t width) {
  return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

// Rows are true labels, columns predictions; totals, each class's recall and precision.
std::string confusion_table(const ConfusionCounts& c, const std::vector<std::string>& names) {
  const std::int64_t n = c.classes();
  std::size_t width = 7;  // "predicted", "total", "recall" columns, and every count
  for (const auto& name : names) width = std::max(width, name.size());
  std::int64_t total = 0;
  std::vector<std::int64_t> row_sum(static_cast<std::size_t>(n)),
      column_sum(static_cast<std::size_t>(n));
  for (std::int64_t t = 0; t < n; ++t) {
    for (std::int64_t p = 0; p < n; ++p) {
      row_sum[static_cast<std::size_t>(t)] += c.at(t, p);
      column_sum[static_cast<std::size_t>(p)] += c.at(t, p);
      total += c.at(t, p);
    }
  }
  std::ostringstream out;
  out << "confusion matrix (rows: true label, columns: predicted)\n  " << std::string(width, ' ');
  for (const auto& name : names) out << "  " << pad_left(name, width);
  out << "  " << pad_left("total", width) << "  " << pad_left("recall", width) << "\n";
  for (std::int64_t t = 0; t < n; ++t) {
    const auto rows = row_sum[static_cast<std::size_t>(t)];
    out << "  " << pad_left(names[static_cast<std::size_t>(t)], width);
    for (std::int64_t p = 0; p < n; ++p) out << "  " << pad_left(std::to_string(c.at(t, p)), width);
    out << "  " << pad_left(std::to_string(rows), width) << "  "
        << pad_left(rows > 0 ? fixed(static_cast<double>(c.at(t, t)) / rows, 4) : "-", width)
        << "\n";
  }
  out << "  " << pad_left("total", width);
  for (std::int64_t p = 0; p < n; ++p)
    out << "  " << pad_left(std::to_string(column_sum[static_cast<std::size_t>(p)]), width);
  out << "  " << pad_left(std::to_string(total), width) << "\n  " << pad_left("precision", width);
  for (std::int64_t p = 0; p < n; ++p) {
    const auto columns = column_sum[static_cast<std::size_t>(p)];
    out << "  "
        << pad_left(columns > 0 ? fixed(static_cast<double>(c.at(p, p)) / columns, 4) : "-", width);
  }
  out << "\n";
  return out.str();
}

std::string trim_space(const std::string& text) {
  const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  std::size_t begin = 0, end = text.size();
  while (begin < end && space(text[begin])) ++begin;
  while (end > begin && space(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

void write_output(const fs::path& file, const std::string& text) {
  if (file.empty()) {
    std::cout << text << std::flush;
  } else {
    write_file_atomic(file, text);
  }
}

}  // namespace

Metrics evaluate_run(const CommonArgs& common, const RunDirArgs& args,
                     const std::vector<Split>& splits) {
  RunDir run = open_run_dir(common, args, kTrainedPipelineKinds);
  const Experiment& e = run.resolved.experiment;
  Pipeline p = trained_pipeline(run, args.run_dir);
  Metrics all;
  for (Split split : splits) {
    if (!p.data->has_split(split)) continue;
    for (const auto& [name, value] : evaluate_split(p, split, e.train.batch_size))
      all[name] = value;
  }
  return all;
}

int command_eval(const CommonArgs& common, const RunDirArgs& args) {
  const Split split = parse_split(args.split);
  if (!args.output.empty()) check_output_file(args.output, "--output");
  RunDir run = open_run_dir(common, args, kTrainedPipelineKinds);
  const Experiment& e = run.resolved.experiment;
  Pipeline p = trained_pipeline(run, args.run_dir);
  apply_quantize(p, args);
  const bool classify = p.data->task() == Task::kClassification;
  ConfusionCounts confusion(classify ? p.model_context.num_classes : 0);
  BatchObserver observe;
  if (classify)
    observe = [&](const at::Tensor& logits, const at::Tensor& t) { confusion.add(logits, t); };
  const Metrics metrics = evaluate_split(p, split, e.train.batch_size, observe);

  std::size_t width = 0;
  for (const auto& entry : metrics) width = std::max(width, entry.first.size());
  std::ostringstream text;
  text << "checkpoint " << run.checkpoint.string() << ", " << args.split << " split\n";
  JsonObject values;
  for (const auto& [name, value] : metrics) {
    values.add(name, value);
    // The confusion_matrix metric's counts read better as the table below.
    if (classify && name.find("_confusion_") != std::string::npos) continue;
    // Counts (test_examples) print as integers; a metric that happens to be whole (an accuracy
    // of 1) keeps its decimals.
    const bool count = name.size() >= 9 && name.compare(name.size() - 9, 9, "_examples") == 0 &&
                       std::fabs(value) < 1e15;
    text << "  " << name << std::string(width - name.size() + 2, ' ')
         << (count ? std::to_string(static_cast<std::int64_t>(value)) : fixed(value, 6)) << "\n";
  }
  JsonObject report;
  report.add("checkpoint", run.checkpoint.string()).add("split", args.split).add("metrics", values);
  if (classify) {
    text << confusion_table(confusion, p.class_names);
    std::vector<JsonObject> rows;
    for (std::int64_t t = 0; t < confusion.classes(); ++t) {
      JsonObject row;
      row.add("true", p.class_names[static_cast<std::size_t>(t)]);
      JsonObject counts;
      for (std::int64_t q = 0; q < confusion.classes(); ++q)
        counts.add(p.class_names[static_cast<std::size_t>(q)], confusion.at(t, q));
      row.add("predicted", counts);
      rows.push_back(row);
    }
    report.add("class_names", p.class_names).add("confusion_matrix", rows);
  }
  // The dataset's groups (arithmetic: by operand length), whatever the split.
  const std::vector<GroupMetrics> groups = evaluate_groups(p, e.train.batch_size);
  if (!groups.empty()) {
    text << "by group:\n" << group_table(groups);
    report.add("groups", group_json(groups));
  }
  std::cout << text.str() << std::flush;
  if (!args.output.empty()) write_file_atomic(args.output, report.str(2) + "\n");
  return kExitOk;
}

int command_predict(const CommonArgs& common, const RunDirArgs& args) {
  if (args.texts.empty() && args.input.empty())
    throw UsageError("predict needs texts",
                     "pass --text \"...\" (repeatable) or --input FILE (- for stdin)");
  if (!args.output.empty()) check_output_file(args.output, "--output");
  std::vector<std::string> texts = args.texts;
  if (!args.input.empty()) {
    for (std::string& line : lines_of(read_input(args.input, "--input")))
      texts.push_back(std::move(line));
  }

  RunDir run = open_run_dir(common, args, kGenerateKinds);
  const Experiment& e = run.resolved.experiment;
  configure_runtime(e.train.threads);
  Pipeline p = build_inference_pipeline(e, run.resolved.plugins->registry, run.checkpoint);
  apply_quantize(p, args);
  const ModelContext& context = p.model_context;
  if (context.num_classes <= 0) {
    throw Error(args.run_dir.string() +
                    " holds a language model; predict labels texts with a "
                    "classifier",
                "sample from it with `lmrun generate " + args.run_dir.string() + "`");
  }

  // Encoded as the dataset encodes its examples: trimmed of ASCII white space, truncated to the
  // model's context (the dataset's max_len), an empty text as one <unk>, padded with <pad>
  // behind a mask.
  const std::int64_t pad = std::max<std::int64_t>(context.pad_id, 0);
  const std::int64_t unk = p.tokenizer->special_id("<unk>");
  const std::int64_t batch_size = std::max<std::int64_t>(e.train.batch_size, 1);
  torch::NoGradGuard no_grad;
  std::string out;
  for (std::size_t begin = 0; begin < texts.size(); begin += static_cast<std::size_t>(batch_size)) {
    const std::size_t end = std::min(texts.size(), begin + static_cast<std::size_t>(batch_size));
    std::vector<std::vector<std::int64_t>> ids;
    std::int64_t width = 1;
    for (std::size_t i = begin; i < end; ++i) {
      std::vector<std::int64_t> one;
      try {
        one = p.tokenizer->encode(trim_space(texts[i]));
      } catch (const Error& error) {
        throw error.with_context("text " + std::to_string(i + 1));
      }
      if (context.sequence_length > 0 &&
          static_cast<std::int64_t>(one.size()) > context.sequence_length)
        one.resize(static_cast<std::size_t>(context.sequence_length));
      if (one.empty()) one.push_back(unk >= 0 ? unk : pad);
      width = std::max<std::int64_t>(width, static_cast<std::int64_t>(one.size()));
      ids.push_back(std::move(one));
    }
    const auto b = static_cast<std::int64_t>(ids.size());
    at::Tensor inputs = at::full({b, width}, pad, at::kLong);
    at::Tensor mask = at::zeros({b, width}, at::kBool);
    for (std::int64_t r = 0; r < b; ++r) {
      const auto& row = ids[static_cast<std::size_t>(r)];
      const auto n = static_cast<std::int64_t>(row.size());
      inputs[r].narrow(0, 0, n).copy_(at::tensor(row, at::kLong));
      mask[r].narrow(0, 0, n).fill_(true);
    }
    const at::Tensor probabilities =
        at::softmax(p.scoring_model().forward(inputs.to(p.device), mask.to(p.device)), -1)
            .to(at::kCPU, at::kDouble)
            .contiguous();
    for (std::int64_t r = 0; r < b; ++r) {
      const double* row = probabilities[r].data_ptr<double>();
      const auto best = std::max_element(row, row + context.num_classes) - row;
      JsonObject all;
      for (std::int64_t c = 0; c < context.num_classes; ++c)
        all.add(p.class_names[static_cast<std::size_t>(c)], row[c]);
      JsonObject record;
      record.add("text", utf8::replace_invalid(texts[begin + static_cast<std::size_t>(r)]))
          .add("label", p.class_names[static_cast<std::size_t>(best)])
          .add("confidence", row[best])
          .add("probabilities", all);
      out += record.str() + "\n";
    }
  }
  write_output(args.output, out);
  if (texts.empty())
    std::cerr << "lmrun: warning: --input " << args.input.string() << " holds no texts\n";
  std::cerr << "lmrun: " << texts.size() << " texts labelled with " << run.checkpoint.string()
            << (args.output.empty() ? "" : " -> " + args.output.string()) << "\n";
  return kExitOk;
}

}  // namespace lmrun::host
