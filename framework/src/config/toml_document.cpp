// Reading experiment files: TOML++ parsing, `base` inheritance, and `--set` overrides.
#include "config/toml_document.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>

#include "lmrun/util/files.h"

namespace fs = std::filesystem;

namespace lmrun::host {

namespace {
std::string display(const fs::path& path);
}  // namespace

std::string location_of(const toml::source_region& source) {
  if (!source.path) return "";
  // A value from --set has no file: its source is "--set KEY=VALUE", shown as it is.
  if (source.path->rfind('/', 0) != 0) return *source.path;
  std::string out = display(*source.path);
  if (source.begin.line > 0)
    out += ":" + std::to_string(source.begin.line) + ":" + std::to_string(source.begin.column);
  return out;
}

std::string location_of(const toml::node& node) { return location_of(node.source()); }

namespace {

[[noreturn]] void fail(std::string location, std::string key, std::string message) {
  throw ConfigError({Problem{std::move(location), std::move(key), std::move(message)}});
}

// Shows paths as the user wrote them where possible: relative to the working directory.
std::string display(const fs::path& path) {
  std::error_code ec;
  const fs::path relative = fs::relative(path, fs::current_path(ec), ec);
  return !ec && !relative.empty() && relative.native().rfind("..", 0) != 0 ? relative.string()
                                                                           : path.string();
}

// ---------------------------------------------------------------------------------------------
// Float literals a double cannot hold. TOML++ reads 1e-400 as 0 and refuses 1e400; a value that
// silently became 0 (grad_clip = 1e-400: clipping off) is refused instead (issue 21).

// Why `literal` is not the float `value` it was read as: "" when it is. A literal with a nonzero
// digit before its exponent that reads as 0 or a subnormal underflowed.
std::string float_problem(const std::string& literal, double value) {
  const std::string mantissa = literal.substr(0, literal.find_first_of("eE"));
  if (mantissa.find_first_of("123456789") == std::string::npos) return "";
  if (value != 0 && std::fpclassify(value) != FP_SUBNORMAL) return "";
  return abbreviate(literal) + " is too small for a float: it would be " +
         (value == 0 ? "0" : "a subnormal number") +
         " (the smallest normal float is about 2.2e-308); write 0 if 0 is meant";
}

// The number literal at 1-based `column` of `line` (TOML++ counts columns in code points).
std::string literal_at(std::string_view line, std::size_t column) {
  std::size_t at = 0;
  for (std::size_t c = 1; c < column && at < line.size(); ++c) {
    ++at;
    while (at < line.size() && (static_cast<unsigned char>(line[at]) & 0xC0) == 0x80) ++at;
  }
  std::size_t end = at;
  while (end < line.size() && std::strchr("0123456789+-._eE", line[end]) != nullptr) ++end;
  return std::string(line.substr(at, end - at));
}

// Calls `report(node, dotted key, problem)` for each float under `node` whose literal in `text`
// (the document it was parsed from) underflowed.
template <class Report>
void check_floats(const toml::node& node, const std::string& key,
                  const std::vector<std::string_view>& lines, const Report& report) {
  if (const toml::table* table = node.as_table()) {
    for (const auto& [name, child] : *table)
      check_floats(child,
                   key.empty() ? std::string(name.str()) : key + "." + std::string(name.str()),
                   lines, report);
  } else if (const toml::array* array = node.as_array()) {
    for (std::size_t i = 0; i < array->size(); ++i)
      check_floats(*array->get(i), key + "." + std::to_string(i), lines, report);
  } else if (const toml::value<double>* value = node.as_floating_point()) {
    const auto& begin = node.source().begin;
    if (begin.line == 0 || begin.line > lines.size()) return;
    const std::string problem =
        float_problem(literal_at(lines[begin.line - 1], begin.column), value->get());
    if (!problem.empty()) report(node, key, problem);
  }
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

toml::table parse_file(const fs::path& file, const std::string& named_at) {
  // Checked before opening: a FIFO would block the read forever, /dev/null reads as empty.
  const std::string problem = regular_file_problem(file);
  if (!problem.empty()) fail(named_at, "", "experiment file " + display(file) + " " + problem);
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error& error) {
    fail(named_at, "", error.what());  // "cannot read FILE: Permission denied"
  }
  toml::table table;
  try {
    table = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    fail(display(file) + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column), "",
         "TOML syntax error: " + std::string(e.description()));
  }
  check_floats(table, "", split_lines(text),
               [](const toml::node& node, const std::string& key, const std::string& problem) {
                 fail(location_of(node), key, problem);
               });
  return table;
}

// Notes that the table at `path` changes its `type` to `to` (set at `where`): its other keys,
// but those in `kept`, came with the old type.
void note_retype(std::map<std::string, TomlDocument::Retyped>& retyped, const std::string& path,
                 const toml::table& table, const std::string& to, const std::string& where,
                 const std::set<std::string>& kept) {
  const toml::value<std::string>* from = table.get_as<std::string>("type");
  if (from == nullptr || from->get() == to) return;
  TomlDocument::Retyped& entry = retyped[path];
  entry.from = from->get();
  entry.to = to;
  entry.where = where;
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (name != "type" && !kept.count(name)) entry.keys.insert(name);
  }
}

// Moves `overlay` into `base`: tables merge recursively, everything else replaces. Moving (not
// copying) keeps each node's source region. `path` is `base`'s dotted key ("" at the root).
void merge_into(toml::table& base, toml::table&& overlay, const std::string& path,
                std::map<std::string, TomlDocument::Retyped>& retyped) {
  if (auto it = retyped.find(path); it != retyped.end()) {
    for (const auto& [key, node] : overlay) it->second.keys.erase(std::string(key.str()));
  }
  if (const toml::value<std::string>* type = overlay.get_as<std::string>("type")) {
    std::set<std::string> kept;
    for (const auto& [key, node] : overlay) kept.insert(std::string(key.str()));
    note_retype(retyped, path, base, type->get(), location_of(*type), kept);
  }
  for (auto&& [key, node] : overlay) {
    toml::node* existing = base.get(key);
    if (existing && existing->is_table() && node.is_table()) {
      const std::string child =
          path.empty() ? std::string(key.str()) : path + "." + std::string(key.str());
      merge_into(*existing->as_table(), std::move(*node.as_table()), child, retyped);
    } else {
      base.insert_or_assign(key, std::move(node));
    }
  }
}

toml::table load_with_bases(const fs::path& file, const std::string& named_at,
                            std::vector<fs::path>& chain,
                            std::map<std::string, TomlDocument::Retyped>& retyped) {
  if (std::find(chain.begin(), chain.end(), file) != chain.end()) {
    std::string cycle;
    for (const auto& f : chain) cycle += display(f) + " -> ";
    fail(named_at, "base", "inheritance cycle: " + cycle + display(file));
  }
  chain.push_back(file);
  toml::table table = parse_file(file, named_at);

  toml::table merged;
  if (toml::node* base = table.get("base")) {
    std::vector<const toml::node*> names;
    if (const toml::array* list = base->as_array()) {
      for (const toml::node& item : *list) names.push_back(&item);
    } else {
      names.push_back(base);
    }
    for (const toml::node* name : names) {
      if (!name->is_string()) {
        fail(location_of(*name), "base", "expected a file name (string) or a list of them");
      }
      const fs::path base_file =
          fs::weakly_canonical(file.parent_path() / name->as_string()->get());
      merge_into(merged, load_with_bases(base_file, location_of(*name), chain, retyped), "",
                 retyped);
    }
    table.erase("base");
  }
  merge_into(merged, std::move(table), "", retyped);
  chain.pop_back();
  return merged;
}

// ---------------------------------------------------------------------------------------------
// --set KEY=VALUE

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

bool is_index(const std::string& part) {
  return !part.empty() &&
         std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void apply_override(TomlDocument& doc, const std::string& assignment) {
  const std::string where = "--set " + assignment;
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    fail(where, "", "expected KEY=VALUE, e.g. --set train.max_steps=200");
  }
  set_key(doc, assignment.substr(0, equals), assignment.substr(equals + 1), where);
}

}  // namespace

void set_key(TomlDocument& doc, const std::string& key, const std::string& text,
             const std::string& where) {
  const std::vector<std::string> parts = split_key(key);
  if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    fail(where, key, "empty key segment");
  }

  // Walk to the table that holds the last part, making tables as needed; a numeric part picks an
  // element of an array of tables (callbacks.0.patience).
  toml::table* table = &doc.root;
  std::string walked;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string& part = parts[i];
    walked += (walked.empty() ? "" : ".") + part;
    toml::node* next = table->get(part);
    if (next == nullptr) {
      if (i + 2 < parts.size() && is_index(parts[i + 1])) {
        fail(where, walked, "there is no " + walked + " list to index");
      }
      next = &table->insert_or_assign(part, toml::table{}).first->second;
    }
    if (toml::array* array = next->as_array()) {
      const std::string& index_text = parts[++i];
      if (!is_index(index_text))
        fail(where, walked, "is a list: index it with a number, e.g. " + walked + ".0");
      const std::size_t index = std::stoul(index_text);
      if (index >= array->size()) {
        fail(where, walked,
             "index " + index_text + " is out of range: the list has " +
                 std::to_string(array->size()) + " entries");
      }
      walked += "." + index_text;
      if (i + 1 >= parts.size())
        fail(where, walked, "set a key inside the entry, e.g. " + walked + ".type");
      next = array->get(index);
    }
    if (!next->is_table())
      fail(where, walked, "is a value, not a section: cannot set a key inside it");
    table = next->as_table();
  }

  // The value: TOML syntax if it parses (3, 1e-3, true, [0.9, 0.95], "quoted"), else the text
  // itself.
  toml::node* parsed = nullptr;
  toml::parse_result result;
  try {
    result = toml::parse("value = " + text, std::string_view(where));
    parsed = result.get("value");
  } catch (const toml::parse_error&) {
    parsed = nullptr;
  }
  if (parsed != nullptr) {
    const std::string line = "value = " + text;
    check_floats(*parsed, key, split_lines(line),
                 [&](const toml::node&, const std::string&, const std::string& problem) {
                   fail(where, key, problem);
                 });
  } else {
    // Not TOML, but a number all the same: one past a double's range (TOML++ refuses 1e400).
    errno = 0;
    char* end = nullptr;
    const double number = std::strtod(text.c_str(), &end);
    if (!text.empty() && *end == '\0' && errno == ERANGE && std::isinf(number)) {
      fail(where, key,
           abbreviate(text) + " is out of range of a float (the largest is about 1.8e308)");
    }
  }
  // A changed type: the section's other keys came with the old one, but for those set by --set
  // or the sweep, which are the user's own.
  if (auto it = doc.retyped.find(walked); it != doc.retyped.end())
    it->second.keys.erase(parts.back());
  const bool as_text = parsed == nullptr;  // not TOML: the text itself, a string
  if (parts.back() == "type" && (as_text || parsed->is_string())) {
    std::set<std::string> kept;
    for (const auto& [name, value] : *table) {
      if (doc.raw_overrides.count(walked + "." + std::string(name.str())))
        kept.insert(std::string(name.str()));
    }
    note_retype(doc.retyped, walked, *table, as_text ? text : parsed->as_string()->get(), where,
                kept);
  }
  if (parsed != nullptr) {
    table->insert_or_assign(parts.back(), std::move(*parsed));
  } else {
    toml::table holder = toml::parse("value = \"\"", std::string_view(where));
    *holder.get("value")->as_string() = text;
    table->insert_or_assign(parts.back(), std::move(*holder.get("value")));
  }
  doc.raw_overrides[key] = text;
}

TomlDocument load_document(const fs::path& file, const std::vector<std::string>& overrides) {
  TomlDocument doc;
  std::error_code ec;
  doc.file = fs::weakly_canonical(fs::absolute(file, ec), ec);
  std::vector<fs::path> chain;
  doc.root = load_with_bases(doc.file, "", chain, doc.retyped);
  for (const auto& assignment : overrides) apply_override(doc, assignment);
  return doc;
}

}  // namespace lmrun::host
