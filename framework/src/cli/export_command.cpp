// lmrun export: a run's checkpoint written for other tools (export/export.h).
#include <iostream>

#include "cli/commands.h"
#include "cli/run_dir.h"
#include "export/export.h"
#include "registry/guarded.h"
#include "train/pipeline.h"

namespace fs = std::filesystem;

namespace lmrun::host {

int command_export(const CommonArgs& common, const ExportArgs& args) {
  if (args.format.empty()) {
    throw UsageError("lmrun export needs --format: safetensors, nanogpt or onnx",
                     "lmrun export RUN_DIR --format safetensors [-o OUT]");
  }
  RunDirArgs run_args;
  run_args.run_dir = args.run_dir;
  run_args.checkpoint = args.checkpoint;
  const RunDir run = open_run_dir(common, run_args, kGenerateKinds);
  const Experiment& e = run.resolved.experiment;
  const PluginRegistry& registry = run.resolved.plugins->registry;
  configure_runtime(e.train.threads);
  Pipeline p = build_inference_pipeline(e, registry, run.checkpoint);
  const ModelContext context = p.model_context;
  ExportSource source{*p.model,
                      [&] {
                        ModelContext fresh = context;
                        fresh.weights_from_checkpoint = true;
                        return make_plugin<Model>(registry, e.model.type, e.model.params, fresh);
                      },
                      *p.tokenizer,
                      run.checkpoint,
                      e.model.type,
                      e.experiment.name,
                      context.sequence_length};
  ExportRequest request;
  request.format = args.format;
  request.layout = args.layout;
  request.dtype = args.dtype;
  request.out = args.out.empty() ? args.run_dir / "export" / args.format : args.out;
  request.force = args.force;
  request.prune = args.prune;
  request.prune_mode = parse_prune_mode(args.prune_mode);
  request.quantize = args.quantize;
  if (args.out.empty()) fs::create_directories(args.run_dir / "export");
  const ExportResult result = export_model(source, request);
  std::cout << "lmrun export: " << run.checkpoint.string() << " as " << args.format << "\n";
  for (const std::string& line : result.lines) std::cout << "  " << line << "\n";
  return kExitOk;
}

}  // namespace lmrun::host
