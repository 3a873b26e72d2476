// lmrun tokenize: text to ids (and back, --decode) with any tokenizer plugin, to check what a
// tokenizer does with a text. The tokenizer is a run folder's (its experiment's [tokenizer] with
// the vocabulary the run saved) or one named with --tokenizer and its --set parameters.
//
//   lmrun tokenize --tokenizer bpe --set tokenizer.vocab=data/gpt2/encoder.json
//       --set tokenizer.merges=data/gpt2/vocab.bpe --text "Hello world"      -> [15496, 995]
//   echo "[15496, 995]" | lmrun tokenize runs/gpt_tiny_bpe --decode
#include <charconv>
#include <iostream>

#include "cli/commands.h"
#include "cli/loaded_registry.h"
#include "cli/run_dir.h"
#include "config/experiment.h"
#include "config/toml_document.h"
#include "lmrun/tokenizer.h"
#include "registry/guarded.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

// The inputs: each --text, or the input's lines (CR of CRLF dropped), or all of it (--whole).
std::vector<std::string> inputs_of(const TokenizeArgs& args) {
  if (!args.texts.empty()) {
    if (!args.input.empty()) throw UsageError("give --text or --input, not both");
    return args.texts;
  }
  const std::string text = read_input(args.input.empty() ? fs::path("-") : args.input, "--input");
  if (args.whole) return {text};
  return lines_of(text);
}

// "[15496, 995]", "15496 995" or "15496,995": the ids of one line.
std::vector<std::int64_t> parse_ids(const std::string& text, std::size_t line) {
  std::vector<std::int64_t> ids;
  std::size_t pos = 0;
  auto separator = [](char c) {
    return c == ' ' || c == '\t' || c == ',' || c == '[' || c == ']' || c == '\n' || c == '\r';
  };
  while (pos < text.size()) {
    if (separator(text[pos])) {
      ++pos;
      continue;
    }
    std::int64_t id = 0;
    const auto result = std::from_chars(text.data() + pos, text.data() + text.size(), id);
    if (result.ec != std::errc() ||
        (result.ptr != text.data() + text.size() && !separator(*result.ptr))) {
      std::size_t end = pos;
      while (end < text.size() && !separator(text[end])) ++end;
      throw Error("--decode: '" + text.substr(pos, end - pos) + "' on input line " +
                      std::to_string(line) + " is not a token id",
                  "give ids as a JSON array ([15496, 995]) or separated by spaces, one text a "
                  "line");
    }
    ids.push_back(id);
    pos = static_cast<std::size_t>(result.ptr - text.data());
  }
  return ids;
}

std::shared_ptr<Tokenizer> named_tokenizer(const CommonArgs& common, const TokenizeArgs& args,
                                           std::unique_ptr<LoadedRegistry>& plugins) {
  TomlDocument doc;
  doc.file = fs::current_path() / "--tokenizer";
  set_key(doc, "tokenizer.type", "\"" + args.tokenizer + "\"", "--tokenizer " + args.tokenizer);
  for (const auto& o : args.overrides) {
    const auto eq = o.find('=');
    const std::string key = o.substr(0, eq);
    if (eq == std::string::npos || key.rfind("tokenizer.", 0) != 0) {
      throw UsageError(
          "--set " + abbreviate(o) + ": with --tokenizer, only tokenizer.KEY=VALUE applies",
          "for example --set tokenizer.vocab=data/gpt2/encoder.json");
    }
    set_key(doc, key, o.substr(eq + 1), "--set " + o);
  }
  plugins = load_registry(common, {});
  const PluginSpec spec = resolve_plugin_section(doc, "tokenizer", Kind::kTokenizer,
                                                 plugins->registry, plugins->failure_messages());
  return make_plugin<Tokenizer>(plugins->registry, spec.type, spec.params, TokenizerContext{});
}

}  // namespace

int command_tokenize(const CommonArgs& common, const TokenizeArgs& args) {
  if (args.run_dir.empty() == args.tokenizer.empty()) {
    throw UsageError("tokenize needs a tokenizer",
                     "name a run folder (lmrun tokenize RUN_DIR) or a plugin (--tokenizer bpe "
                     "--set tokenizer.KEY=VALUE), one of the two");
  }
  if (!args.output.empty()) check_output_file(args.output, "--output");
  std::unique_ptr<LoadedRegistry> plugins;
  RunDir run;
  std::shared_ptr<Tokenizer> tokenizer;
  if (!args.run_dir.empty()) {
    if (!args.fit.empty())
      throw UsageError("--fit applies to --tokenizer: a run's tokenizer is fitted");
    RunDirArgs run_args;
    run_args.run_dir = args.run_dir;
    run_args.overrides = args.overrides;
    run_args.checkpoint = args.checkpoint;
    run = open_run_dir(common, run_args, kTokenizerKinds);
    const PluginSpec& spec = run.resolved.experiment.tokenizer;
    tokenizer = make_plugin<Tokenizer>(run.resolved.plugins->registry, spec.type, spec.params,
                                       TokenizerContext{});
    try {
      tokenizer->load(run.checkpoint / "tokenizer");
    } catch (const Error& error) {
      throw error.with_context("checkpoint " + run.checkpoint.string());
    }
  } else {
    tokenizer = named_tokenizer(common, args, plugins);
    if (!args.fit.empty()) tokenizer->fit(read_input(args.fit, "--fit"));
  }

  std::string out;
  const std::vector<std::string> inputs = inputs_of(args);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    try {
      if (args.decode) {
        out += tokenizer->decode(parse_ids(inputs[i], i + 1));
        if (!args.whole) out += "\n";
      } else {
        std::string line = "[";
        bool first = true;
        for (std::int64_t id : tokenizer->encode(inputs[i])) {
          line += (first ? "" : ", ") + std::to_string(id);
          first = false;
        }
        out += line + "]\n";
      }
    } catch (const Error& error) {
      throw args.whole ? error : error.with_context("input " + std::to_string(i + 1));
    }
  }
  if (args.output.empty()) {
    std::cout << out << std::flush;
  } else {
    write_file_atomic(args.output, out);
  }
  return kExitOk;
}

}  // namespace lmrun::host
