// Reading a JSONL file of conversations, one per line, each checked whole before anything is kept:
//
//   {"messages": [{"role": "system", "content": "You are JULIET."},
//                 {"role": "user", "content": "Romeo!"},
//                 {"role": "assistant", "content": "My lord?"}]}
//
// Rules: blank lines are skipped; a line is a JSON object with a "messages" array (other keys are
// ignored, as are keys of a message besides "role" and "content"); a role is "system", "user"
// or "assistant"; a system message, if any, is the first and only one; at least one assistant
// message; no content holds a markup token (it would read as markup). Every error names the
// file, the line and the key ("messages[2].role").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lmrun::datasets {

enum class Role { kUser, kAssistant };

struct Turn {
  Role role = Role::kUser;
  std::string content;
};

struct Conversation {
  std::int64_t line = 0;    // 1-based line of the file
  bool has_system = false;  // the conversation has a system message
  std::string system;       // its content; empty without one
  std::vector<Turn> turns;  // the user and assistant messages, in order
};

// The file's conversations in file order. `markup`: the dataset's markup tokens, which no content
// may hold. Throws lmrun::Error, prefixed with `who`, on a missing file, an empty one, or the
// first line that breaks a rule.
std::vector<Conversation> read_conversations(const std::filesystem::path& file,
                                             const std::vector<std::string>& markup,
                                             const std::string& who);

}  // namespace lmrun::datasets
