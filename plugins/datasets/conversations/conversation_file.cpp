// The JSONL reader of the `conversations` dataset: nlohmann/json per line, every rule checked with
// an error that names the file, the line and the key.
#include "conversation_file.h"

#include <nlohmann/json.hpp>

#include <string_view>
#include <system_error>
#include <utility>

#include "lmrun/error.h"
#include "lmrun/util/files.h"

namespace lmrun::datasets {
namespace {

using Json = nlohmann::json;

constexpr const char* kShape =
    "each line is one conversation: {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, "
    "{\"role\": \"assistant\", \"content\": \"...\"}]}";

const char* type_name(const Json& value) { return value.type_name(); }

// Throws the error of one line: "WHO FILE:LINE: key KEY: WHAT".
struct LineError {
  const std::string& who;
  const std::filesystem::path& file;
  std::int64_t line;

  [[noreturn]] void operator()(const std::string& key, const std::string& what,
                               const std::string& hint) const {
    throw Error(who + file.string() + ":" + std::to_string(line) + ": " +
                    (key.empty() ? "" : "key " + key + ": ") + what,
                hint);
  }
};

// One line's conversation.
Conversation parse_line(std::string_view text, std::int64_t line,
                        const std::vector<std::string>& markup, const LineError& fail) {
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::parse_error& e) {
    fail("", std::string("not JSON: ") + e.what(),
         std::string(kShape) + " (one JSON object per line, no line breaks inside it)");
  }
  if (!root.is_object())
    fail("", std::string("expected a JSON object, found ") + type_name(root), kShape);
  const auto messages = root.find("messages");
  if (messages == root.end()) fail("", "the object has no key \"messages\"", kShape);
  if (!messages->is_array())
    fail("messages", std::string("expected an array, found ") + type_name(*messages), kShape);

  Conversation conversation;
  conversation.line = line;
  bool assistant = false;
  for (std::size_t i = 0; i < messages->size(); ++i) {
    const Json& message = (*messages)[i];
    const std::string key = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) {
      fail(key,
           std::string("expected an object {\"role\": ..., \"content\": ...}, found ") +
               type_name(message),
           kShape);
    }
    const auto role = message.find("role");
    const auto content = message.find("content");
    if (role == message.end() || !role->is_string())
      fail(key + ".role", "missing or not a string", "give each message a \"role\"");
    if (content == message.end() || !content->is_string())
      fail(key + ".content", "missing or not a string", "give each message a \"content\" string");
    const std::string& name = role->get_ref<const std::string&>();
    std::string text = content->get<std::string>();
    for (const auto& token : markup) {
      if (text.find(token) != std::string::npos) {
        fail(key + ".content", "holds the markup token \"" + token + "\"",
             "markup tokens render the conversation: choose other tokens (the dataset's "
             "*_token parameters) or take it out of the text");
      }
    }
    if (name == "system") {
      if (i != 0) {
        fail(key + ".role",
             "a system message comes first, and once (this one is message " + std::to_string(i) +
                 ")",
             "move the system message to the start, or merge the system messages");
      }
      conversation.has_system = true;
      conversation.system = std::move(text);
    } else if (name == "user" || name == "assistant") {
      assistant = assistant || name == "assistant";
      conversation.turns.push_back(
          Turn{name == "user" ? Role::kUser : Role::kAssistant, std::move(text)});
    } else {
      fail(key + ".role",
           "unknown role \"" + name + "\", expected \"system\", \"user\" or \"assistant\"",
           "rename the role (other roles, such as \"tool\", are not supported)");
    }
  }
  if (!assistant) {
    fail("messages", "no assistant message: nothing to learn",
         "every conversation needs at least one message with \"role\": \"assistant\"");
  }
  return conversation;
}

}  // namespace

std::vector<Conversation> read_conversations(const std::filesystem::path& file,
                                             const std::vector<std::string>& markup,
                                             const std::string& who) {
  const std::string problem = regular_file_problem(file);  // a FIFO would block the read
  if (!problem.empty()) {
    throw Error(who + "conversation file " + file.string() + " " + problem,
                "check `path` in [data]: lmrun resolves a relative path against the working "
                "directory, so run it from the repository root");
  }
  const std::string text = read_file(file, "check the file's permissions");
  std::vector<Conversation> conversations;
  std::size_t begin = 0;
  for (std::int64_t line = 1; begin < text.size(); ++line) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view row(text.data() + begin, end - begin);
    begin = end + 1;
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (row.find_first_not_of(" \t") == std::string_view::npos) continue;  // a blank line
    conversations.push_back(parse_line(row, line, markup, LineError{who, file, line}));
  }
  if (conversations.empty()) {
    throw Error(who + "conversation file " + file.string() + " is empty (no conversations)",
                kShape);
  }
  return conversations;
}

}  // namespace lmrun::datasets
