// lmrun generate RUN_DIR --interactive: a read-eval-print loop over a loaded model. Each line
// is added to the conversation so far and the model continues it, streaming; slash commands
// change the sampling settings between turns. Reads from any line source: a terminal through
// LineEditor, or a stream, so tests drive it with a script.
#include "cli/repl.h"

#include <charconv>
#include <cmath>
#include <iostream>
#include <sstream>

#include <ATen/ops/tensor.h>

#include "generate/generate.h"
#include "lmrun/util/suggest.h"

namespace lmrun::host {
namespace {

constexpr const char* kHelp =
    "  text              continue the conversation with it (the model sees everything since "
    "/reset)\n"
    "  /set S.P VALUE    set parameter P of sampler S (adding S to the chain), e.g. /set "
    "top_k.k 20\n"
    "  /drop S           take sampler S out of the chain\n"
    "  /seed N           the next turn's seed (each turn then adds one)\n"
    "  /max N            new tokens a turn\n"
    "  /beam N           beam search with N hypotheses (0: the sampler chain)\n"
    "  /settings         the sampler chain and settings\n"
    "  /reset            forget the conversation\n"
    "  /help             this list\n"
    "  /quit             leave (so does end of input)\n";

constexpr const char* kChatHelp =
    "  text              say it: the model answers (it sees the conversation since /reset)\n"
    "  /system TEXT      change the system message (and start a new conversation)\n";

const std::vector<std::string> kCommands = {"set",      "drop",  "seed", "max",  "beam",
                                            "settings", "reset", "help", "quit", "exit"};

template <class T>
bool parse_number(const std::string& text, T& value) {
  if (text.empty()) return false;
  if constexpr (std::is_floating_point_v<T>) {
    std::size_t used = 0;
    try {
      value = std::stod(text, &used);
    } catch (const std::exception&) {
      return false;
    }
    return used == text.size() && std::isfinite(value);
  } else {
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    return result.ec == std::errc() && result.ptr == text.data() + text.size();
  }
}

// A command a sampler plugin declares on one of its parameters (ParamSpec::shortcut): /temp X
// sets temperature's value.
struct Shortcut {
  std::string command;
  std::string sampler;
  const ParamSpec* param = nullptr;
  bool first = false;
};

std::vector<Shortcut> shortcuts_of(const PluginRegistry& registry) {
  std::vector<Shortcut> out;
  for (const RegistryEntry* entry : registry.entries(Kind::kSampler)) {
    for (const ParamSpec& spec : entry->registration.params) {
      if (!spec.shortcut.empty())
        out.push_back({spec.shortcut, entry->registration.name, &spec, spec.shortcut_first});
    }
  }
  return out;
}

// The text of a REPL argument as the parameter's type; throws lmrun::Error naming it.
Value parse_argument(const std::string& text, const ParamSpec& spec, const std::string& what) {
  Value value;
  bool ok = false;
  switch (spec.type) {
    case ParamType::kInt: {
      std::int64_t v = 0;
      ok = parse_number(text, v);
      value = v;
      break;
    }
    case ParamType::kFloat: {
      double v = 0;
      ok = parse_number(text, v);
      value = v;
      break;
    }
    case ParamType::kBool:
      ok = text == "true" || text == "false";
      value = text == "true";
      break;
    case ParamType::kString:
    case ParamType::kPath:
      ok = true;
      value = text;
      break;
    default:
      throw Error(what + " is a " + type_name(spec.type) + ", which /set cannot take");
  }
  if (!ok)
    throw Error(what + " takes a " + std::string(type_name(spec.type)) + ", not '" + text + "'");
  const std::string problem = check_value(value, spec);
  if (!problem.empty()) throw Error(what + ": " + problem);
  return value;
}

// The sampler section of `type` in `specs`: its params' defaults from the registry when it is
// not there yet (added at `front` or at the end).
PluginSpec& sampler_spec(std::vector<PluginSpec>& specs, const std::string& type, bool front,
                         const PluginRegistry& registry) {
  for (auto& spec : specs) {
    if (spec.type == type) return spec;
  }
  const Registration* registration = registry.find(Kind::kSampler, type);
  if (registration == nullptr)
    throw Error("no sampler plugin '" + type + "' is loaded for this setting");
  PluginSpec spec;
  spec.kind = Kind::kSampler;
  spec.type = type;
  for (const auto& param : registration->params) {
    if (param.default_value) spec.params.set(param.name, *param.default_value);
  }
  auto at = front ? specs.begin() : specs.end();
  at = specs.insert(at, std::move(spec));
  for (std::size_t i = 0; i < specs.size(); ++i)
    specs[i].key = "generate.samplers." + std::to_string(i);
  return *at;
}

void remove_sampler(std::vector<PluginSpec>& specs, const std::string& type) {
  for (auto it = specs.begin(); it != specs.end();) {
    it = it->type == type ? specs.erase(it) : it + 1;
  }
}

std::string describe_chain(const std::vector<PluginSpec>& specs) {
  if (specs.empty()) return "(none: plain sampling from the softmax)";
  std::string out;
  for (const auto& spec : specs) {
    std::string params;
    for (const auto& [name, value] : spec.params.values())
      params += (params.empty() ? "" : ", ") + name + "=" + format_value(value);
    out += (out.empty() ? "" : " -> ") + spec.type + (params.empty() ? "" : "(" + params + ")");
  }
  return out;
}

}  // namespace

Conditioning system_context(const Pipeline& p, const std::string& text) {
  if (!p.chat_format.defined()) {
    throw Error("this run was not trained on conversations: its data renders no system message",
                "--system and lmrun chat take a run on the conversations dataset");
  }
  const std::vector<std::int64_t> ids = p.tokenizer->encode(p.chat_format.render("system", text));
  Conditioning context;
  context.tokens = at::tensor(ids, at::kLong).unsqueeze(0);
  return context;
}

int generate_repl(Pipeline& p, const ReplSettings& settings, const PluginRegistry& registry,
                  std::istream& in, std::ostream& out) {
  const ReadLine from_stream = [&](const std::string& prompt, std::string& line) {
    out << prompt << std::flush;
    if (!std::getline(in, line)) return false;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  };
  return generate_repl(p, settings, registry, from_stream, out);
}

int generate_repl(Pipeline& p, const ReplSettings& start, const PluginRegistry& registry,
                  const ReadLine& read_line, std::ostream& out) {
  ReplSettings s = start;
  std::string context;
  Conditioning system;
  if (s.chat) {
    system = system_context(p, s.system);
    out << "lmrun chat: " << s.checkpoint << "\n"
        << "system: " << (s.system.empty() ? "(none)" : s.system) << "\n"
        << "type a line to say it, /system TEXT to change the system message, /help for "
           "commands, /quit to leave\n";
    if (!p.model->uses_context()) {
      out << "lmrun: note: the model ignores system messages; it answers the turns alone\n";
    }
  } else {
    out << "lmrun interactive: " << s.checkpoint << "\n"
        << "type text to continue it, /help for commands, /quit to leave\n";
  }
  auto rebuild = [&] {
    p.samplers = make_samplers(registry, s.samplers, p.tokenizer->vocab_size());
  };
  const std::vector<Shortcut> shortcuts = shortcuts_of(registry);
  const auto shortcut_for = [&](const std::string& command) -> const Shortcut* {
    for (const Shortcut& shortcut : shortcuts) {
      if (shortcut.command == command) return &shortcut;
    }
    return nullptr;
  };
  const auto print_settings = [&] {
    out << "  samplers " << describe_chain(s.samplers) << "; seed " << s.seed << ", max "
        << s.max_new_tokens
        << (s.beam_width >= 2 ? ", beam " + std::to_string(s.beam_width) : std::string()) << "\n";
  };
  std::string line;
  while (true) {
    if (!read_line("> ", line)) break;
    if (s.chat && (line == "/system" || line.rfind("/system ", 0) == 0)) {
      s.system = line.size() > 8 ? line.substr(8) : std::string();
      system = system_context(p, s.system);
      context.clear();
      out << "  system: " << (s.system.empty() ? "(none)" : s.system) << " (a new conversation)\n";
      continue;
    }
    if (!line.empty() && line[0] == '/') {
      std::istringstream words(line.substr(1));
      std::string command, argument, extra_value, extra;
      words >> command >> argument >> extra_value >> extra;
      const bool takes_two = command == "set";
      if (!extra.empty() || (!takes_two && !extra_value.empty())) {
        out << "  " << line << ": " << (takes_two ? "two values" : "one value") << " at most\n";
        continue;
      }
      if (command == "quit" || command == "exit") break;
      try {
        if (command == "help") {
          if (s.chat) out << kChatHelp;
          out << kHelp;
          for (const Shortcut& shortcut : shortcuts) {
            const std::string usage = "/" + shortcut.command + " X";
            out << "  " << usage << std::string(usage.size() < 18 ? 18 - usage.size() : 1, ' ')
                << shortcut.sampler << "." << shortcut.param->name << ": " << shortcut.param->doc
                << " (off: drop " << shortcut.sampler << ")\n";
          }
        } else if (command == "reset") {
          context.clear();
          out << "  (conversation forgotten)\n";
        } else if (command == "settings") {
          out << "  samplers " << describe_chain(s.samplers) << "\n  seed " << s.seed << ", max "
              << s.max_new_tokens << " new tokens, context " << context.size() << " bytes\n";
        } else if (command == "set" || command == "drop" || shortcut_for(command)) {
          std::string sampler, param, value = argument;
          const ParamSpec* spec = nullptr;
          bool first = false;
          if (const Shortcut* shortcut = shortcut_for(command)) {
            sampler = shortcut->sampler;
            spec = shortcut->param;
            first = shortcut->first;
          } else if (command == "drop") {
            sampler = argument;
          } else {  // /set S.P VALUE
            const auto dot = argument.find('.');
            if (dot == std::string::npos) throw Error("/set takes SAMPLER.PARAM VALUE (/help)");
            sampler = argument.substr(0, dot);
            param = argument.substr(dot + 1);
            value = extra_value;
          }
          if (argument.empty() || (command == "set" && value.empty())) {
            out << "  /" << command << " needs a value (/help)\n";
            continue;
          }
          const Registration* registration = registry.find(Kind::kSampler, sampler);
          if (registration == nullptr) {
            throw Error("no sampler '" + sampler + "' is loaded" +
                        did_you_mean(sampler, registry.names(Kind::kSampler)));
          }
          if (command == "drop" || value == "off") {
            remove_sampler(s.samplers, sampler);
          } else {
            if (spec == nullptr) {
              for (const ParamSpec& candidate : registration->params) {
                if (candidate.name == param) spec = &candidate;
              }
            }
            if (spec == nullptr) {
              std::vector<std::string> names;
              for (const ParamSpec& candidate : registration->params)
                names.push_back(candidate.name);
              throw Error("sampler '" + sampler + "' has no parameter '" + param + "'" +
                          did_you_mean(param, names) + "; it takes: " + join(names));
            }
            const Value parsed =
                parse_argument(value, *spec, command == "set" ? argument : "/" + command);
            sampler_spec(s.samplers, sampler, first, registry).params.set(spec->name, parsed);
          }
          rebuild();
          print_settings();
        } else if (command == "seed" || command == "max" || command == "beam") {
          if (argument.empty()) {
            out << "  /" << command << " needs a value (/help)\n";
            continue;
          }
          if (command == "beam") {
            std::int64_t width = 0;
            if (!parse_number(argument, width) || width < 0)
              throw Error("/beam takes an integer >= 0");
            s.beam_width = width;
          } else if (command == "seed") {
            std::int64_t seed = 0;
            if (!parse_number(argument, seed) || seed < 0)
              throw Error("/seed takes an integer >= 0");
            s.seed = seed;
          } else {
            std::int64_t max = 0;
            if (!parse_number(argument, max) || max < 1) throw Error("/max takes an integer >= 1");
            s.max_new_tokens = max;
          }
          print_settings();
        } else {
          std::vector<std::string> known = kCommands;
          for (const Shortcut& shortcut : shortcuts) known.push_back(shortcut.command);
          out << "  unknown command /" << command << did_you_mean(command, known)
              << " (/help lists them)\n";
        }
      } catch (const Error& error) {
        out << "  " << error.what() << "\n";
      }
      continue;
    }
    // A turn: the line joins the conversation and the model continues it (in a chat, as the
    // user's turn, answered by the assistant until the end marker).
    const std::string turn =
        s.chat ? p.chat_format.render("user", line) + p.chat_format.assistant + p.chat_format.start
               : line;
    context += turn;
    TextRequest request;
    request.prompt = context;
    request.max_new_tokens = s.max_new_tokens;
    request.seed = static_cast<std::uint64_t>(s.seed++);
    request.stop = s.stop;
    if (s.chat) request.stop.push_back(p.chat_format.end);
    request.stop_tokens = s.stop_tokens;
    request.beam_width = s.beam_width;
    request.length_penalty = s.length_penalty;
    request.context = system;
    TextResult result;
    try {
      result = generate_text(p.scoring_model(), *p.tokenizer, p.samplers, request,
                             [&out](const std::string& piece) { out << piece << std::flush; });
    } catch (const Error& error) {
      context.resize(context.size() - turn.size());
      out << "\n  " << error.what() << "\n";
      continue;
    }
    context += result.text;
    if (s.chat) context += p.chat_format.end;
    char rate[96];
    std::snprintf(rate, sizeof rate, "\n  [%lld tokens, %.0f tokens/s%s]\n",
                  static_cast<long long>(result.tokens), result.tokens_per_second,
                  result.stop_reason == "max_new_tokens" ? "" : ", stopped");
    out << rate;
  }
  out << "\n";
  return 0;
}

}  // namespace lmrun::host
