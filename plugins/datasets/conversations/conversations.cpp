// Dataset `conversations`: chat transcripts as language-modelling windows whose loss falls on the
// assistant's turns, each conditioned on its conversation's system turn (Batch::context).
//
// - Rendering (ChatFormat, lmrun/dataset.h): a message is its role's marker, `start`, the content
//   and `end`: "|user||start|Good morrow.|end|". The five markers are the dataset's special
//   tokens (one id each in the tokenizers that support them).
// - An example is a window of one conversation's user and assistant turns, rendered and
//   concatenated: context_length + 1 tokens, stride context_length, never across conversations;
//   the last window of a conversation is padded (mask false, targets kIgnoreTarget). A window
//   with no target to learn (all of it a user's turn, with loss_on = "assistant") is left out.
// - The system turn is not in the example's tokens: it is Batch::context, the encoded rendering
//   "|system||start|You are JULIET.|end|", (B, S) padded at the end with a mask. A conversation
//   without a system message, and every conversation with system_message = "none", gets the
//   rendered empty system turn "|system||start||end|": the context is always defined, so a model
//   sees one kind of input and "no system message" is itself a message it can learn.
// - Targets: the next token where it belongs to an assistant's content or its `end` marker
//   (loss_on = "assistant"), or everywhere (loss_on = "all"); kIgnoreTarget elsewhere.
// - Splits: whole conversations, shuffled with the seed; test first, then val, then train, each
//   kept in file order.
// - system_message = "other": each conversation is conditioned on the system message of another
//   conversation, one whose message differs, drawn with the seed: val loss with "own" against
//   "other" measures how much a model uses its conditioning.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include "conversation_file.h"
#include "lmrun/dataset.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/util/files.h"
#include "lmrun/util/rows.h"

namespace lmrun::datasets {
namespace {

constexpr const char* kWho = "dataset 'conversations': ";
constexpr const char* kPluginVersion = "0.1.0";

enum class LossOn { kAssistant, kAll };
enum class SystemMessage { kOwn, kOther, kNone };

struct Options {
  std::filesystem::path path;  // required: the JSONL file
  std::int64_t context_length = 256;
  double val_fraction = 0.1;
  double test_fraction = 0.0;
  std::int64_t seed = -1;  // -1: the experiment's seed
  LossOn loss_on = LossOn::kAssistant;
  SystemMessage system_message = SystemMessage::kOwn;
  std::string system_token = "|system|";
  std::string user_token = "|user|";
  std::string assistant_token = "|assistant|";
  std::string start_token = "|start|";
  std::string end_token = "|end|";
};

// One conversation tokenized.
struct Encoded {
  std::vector<std::int64_t> ids;      // its user and assistant turns rendered
  std::vector<bool> learn;            // ids[k] is a target to learn (as the token after k - 1)
  std::vector<std::int64_t> context;  // its system turn rendered
};

// An example: the window of conversation `conversation` (an index into its split) at `start`.
struct Window {
  std::size_t conversation = 0;
  std::int64_t start = 0;
};

// Shuffles 0..n-1 with `rng` (Fisher-Yates; std::shuffle's draws differ across libraries).
std::vector<std::size_t> shuffled(std::size_t n, std::mt19937_64& rng) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

// Conversations of `n` a fraction takes: at least one when the fraction is above 0.
std::size_t share(std::size_t n, double fraction) {
  if (fraction <= 0) return 0;
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(n * fraction)));
}

class Conversations final : public RowDataset {
 public:
  Conversations(Options options, std::uint64_t experiment_seed) : o_(std::move(options)) {
    format_ = ChatFormat{o_.system_token, o_.user_token, o_.assistant_token, o_.start_token,
                         o_.end_token};
    seed_ = o_.seed >= 0 ? static_cast<std::uint64_t>(o_.seed) : experiment_seed;
    std::vector<Conversation> all = read_conversations(o_.path, special_tokens(), kWho);
    const std::vector<std::string> systems = system_messages(all);
    split(std::move(all), systems);
  }

  Task task() const override { return Task::kLanguageModel; }
  std::vector<std::string> special_tokens() const override {
    return {o_.system_token, o_.user_token, o_.assistant_token, o_.start_token, o_.end_token};
  }
  ChatFormat chat_format() const override { return format_; }

  // The train split rendered, system turns included (as the model's context sees them), one
  // conversation a line: the tokenizer learns the text around the markers too.
  std::string training_text() const override {
    std::string text;
    for (std::size_t i = 0; i < conversations_[0].size(); ++i) {
      text += format_.render("system", systems_[0][i]);
      for (const Turn& turn : conversations_[0][i].turns) text += render(turn);
      text += "\n";
    }
    return text;
  }

  void prepare(const Tokenizer& tokenizer) override;

  bool has_split(Split split) const override { return !conversations_[split_index(split)].empty(); }
  std::int64_t num_examples(Split split) const override {
    require_prepared("num_examples");
    return static_cast<std::int64_t>(windows_[split_index(split)].size());
  }
  std::int64_t sequence_length() const override { return o_.context_length; }

  // splits.json: which line of the file went to which split, with the system message each
  // conversation was conditioned on.
  void save(const std::filesystem::path& folder) const override;

 private:
  std::string who() const override { return kWho; }
  std::string render(const Turn& turn) const {
    return format_.render(turn.role == Role::kUser ? "user" : "assistant", turn.content);
  }
  void require_prepared(const char* what) const {
    if (!prepared_) {
      throw Error(std::string(kWho) + what + " before prepare()",
                  "call prepare(tokenizer) once the tokenizer is fitted or loaded");
    }
  }

  std::vector<std::string> system_messages(const std::vector<Conversation>& all) const;
  void split(std::vector<Conversation> all, const std::vector<std::string>& systems);
  Encoded encode(const Tokenizer& tokenizer, const Conversation& conversation,
                 const std::string& system) const;
  Batch batch(Split split, const std::vector<std::int64_t>& rows) const override;

  Options o_;
  ChatFormat format_;
  std::uint64_t seed_ = 0;
  // Per split (train, val, test), in file order: the conversations and the system message each
  // is conditioned on (by system_message).
  std::vector<Conversation> conversations_[3];
  std::vector<std::string> systems_[3];
  // After prepare():
  bool prepared_ = false;
  std::vector<Encoded> encoded_[3];
  std::vector<Window> windows_[3];
  std::int64_t pad_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Splits and system messages

// The system message each conversation (file order) is conditioned on.
std::vector<std::string> Conversations::system_messages(
    const std::vector<Conversation>& all) const {
  std::vector<std::string> out;
  for (const Conversation& c : all) {
    out.push_back(o_.system_message == SystemMessage::kNone ? std::string() : c.system);
  }
  if (o_.system_message != SystemMessage::kOther) return out;
  // Another conversation's message, one that differs from the own: drawn from the distinct
  // messages (sorted, so the draw depends on the file and the seed alone).
  std::set<std::string> distinct;
  for (const Conversation& c : all) distinct.insert(c.system);
  const std::vector<std::string> pool(distinct.begin(), distinct.end());
  if (pool.size() < 2) {
    throw Error(std::string(kWho) +
                    "system_message = \"other\" needs conversations with two "
                    "different system messages, and every conversation of " +
                    o_.path.string() + " has the same one",
                "use system_message = \"own\" or \"none\", or a file of several characters");
  }
  std::mt19937_64 rng(seed_ ^ 0x6f74686572ULL);  // "other": a stream apart from the split's
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto own = std::lower_bound(pool.begin(), pool.end(), all[i].system) - pool.begin();
    auto pick = static_cast<std::ptrdiff_t>(rng() % (pool.size() - 1));
    if (pick >= own) ++pick;  // every message but the own one, equally likely
    out[i] = pool[static_cast<std::size_t>(pick)];
  }
  return out;
}

void Conversations::split(std::vector<Conversation> all, const std::vector<std::string>& systems) {
  const std::size_t n = all.size();
  const std::size_t tests = share(n, o_.test_fraction), vals = share(n, o_.val_fraction);
  if (tests + vals >= n) {
    throw Error(std::string(kWho) + o_.path.string() + " has " + std::to_string(n) +
                    " conversation(s): val_fraction = " + std::to_string(o_.val_fraction) +
                    " and test_fraction = " + std::to_string(o_.test_fraction) +
                    " leave none to train on",
                "lower val_fraction / test_fraction, or add conversations");
  }
  std::mt19937_64 rng(seed_);
  std::vector<int> split_of(n, 0);
  const std::vector<std::size_t> order = shuffled(n, rng);
  for (std::size_t k = 0; k < n; ++k) split_of[order[k]] = k < tests ? 2 : k < tests + vals ? 1 : 0;
  for (std::size_t i = 0; i < n; ++i) {  // file order within each split
    conversations_[split_of[i]].push_back(std::move(all[i]));
    systems_[split_of[i]].push_back(systems[i]);
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens and windows

Encoded Conversations::encode(const Tokenizer& tokenizer, const Conversation& conversation,
                              const std::string& system) const {
  Encoded out;
  // Each piece on its own, so that every id is known to be markup or content: with a tokenizer
  // that keeps the markers whole this is the rendered text's encoding.
  auto add = [&](const std::string& text, bool learn) {
    const std::vector<std::int64_t> ids = tokenizer.encode(text);
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.learn.insert(out.learn.end(), ids.size(), learn || o_.loss_on == LossOn::kAll);
  };
  for (const Turn& turn : conversation.turns) {
    const bool assistant = turn.role == Role::kAssistant;
    add(assistant ? o_.assistant_token : o_.user_token, false);
    add(o_.start_token, false);
    add(turn.content, assistant);
    add(o_.end_token, assistant);
  }
  out.context = tokenizer.encode(format_.render("system", system));
  return out;
}

void Conversations::prepare(const Tokenizer& tokenizer) {
  const std::int64_t pad = tokenizer.special_id("<pad>");
  pad_ = pad >= 0 ? pad : 0;
  const std::int64_t T = o_.context_length;
  for (int s = 0; s < 3; ++s) {
    std::vector<Encoded> encoded;
    std::vector<Window> windows;
    for (std::size_t i = 0; i < conversations_[s].size(); ++i) {
      try {
        encoded.push_back(encode(tokenizer, conversations_[s][i], systems_[s][i]));
      } catch (const Error& e) {
        throw e.with_context(std::string(kWho) + "encoding " + o_.path.string() + ":" +
                             std::to_string(conversations_[s][i].line));
      }
      const std::vector<bool>& learn = encoded.back().learn;
      const auto n = static_cast<std::int64_t>(learn.size());
      for (std::int64_t start = 0; start + 1 < n; start += T) {
        const std::int64_t last = std::min(start + T, n - 1);  // the window's last target
        if (std::any_of(learn.begin() + start + 1, learn.begin() + last + 1,
                        [](bool b) { return b; }))
          windows.push_back(Window{i, start});
      }
    }
    encoded_[s] = std::move(encoded);
    windows_[s] = std::move(windows);
  }
  prepared_ = true;
}

Batch Conversations::batch(Split split, const std::vector<std::int64_t>& rows) const {
  require_prepared("a batch");
  const int s = split_index(split);
  if (windows_[s].empty()) {
    throw Error(std::string(kWho) + "there is no " + split_name(split) + " split",
                "set val_fraction / test_fraction above 0 to hold one out");
  }
  const auto b = static_cast<std::int64_t>(rows.size());
  const std::int64_t T = o_.context_length;
  std::int64_t S = 1;
  for (std::int64_t row : rows) {
    const Encoded& e = encoded_[s][windows_[s][static_cast<std::size_t>(row)].conversation];
    S = std::max<std::int64_t>(S, static_cast<std::int64_t>(e.context.size()));
  }
  Batch out;
  out.inputs = at::full({b, T}, pad_, at::kLong);            // (B, T)
  out.targets = at::full({b, T}, kIgnoreTarget, at::kLong);  // (B, T)
  out.mask = at::zeros({b, T}, at::kBool);                   // (B, T)
  out.context.tokens = at::full({b, S}, pad_, at::kLong);    // (B, S)
  out.context.mask = at::zeros({b, S}, at::kBool);           // (B, S)
  auto in = out.inputs.accessor<std::int64_t, 2>();
  auto target = out.targets.accessor<std::int64_t, 2>();
  auto mask = out.mask.accessor<bool, 2>();
  auto context = out.context.tokens.accessor<std::int64_t, 2>();
  auto context_mask = out.context.mask.accessor<bool, 2>();
  bool padded = false, context_padded = false;
  for (std::int64_t r = 0; r < b; ++r) {
    const Window& w = windows_[s][static_cast<std::size_t>(rows[static_cast<std::size_t>(r)])];
    const Encoded& e = encoded_[s][w.conversation];
    const auto n = static_cast<std::int64_t>(e.ids.size());
    const std::int64_t length = std::min(T, n - w.start);  // real inputs
    padded = padded || length < T;
    for (std::int64_t j = 0; j < length; ++j) {
      const auto k = static_cast<std::size_t>(w.start + j);
      in[r][j] = e.ids[k];
      mask[r][j] = true;
      if (w.start + j + 1 < n && e.learn[k + 1]) target[r][j] = e.ids[k + 1];
    }
    const auto c = static_cast<std::int64_t>(e.context.size());
    context_padded = context_padded || c < S;
    for (std::int64_t j = 0; j < c; ++j) {
      context[r][j] = e.context[static_cast<std::size_t>(j)];
      context_mask[r][j] = true;
    }
  }
  // The masks are undefined when nothing is padded (lmrun/batch.h).
  if (!padded) out.mask = at::Tensor();
  if (!context_padded) out.context.mask = at::Tensor();
  return out;
}

void Conversations::save(const std::filesystem::path& folder) const {
  nlohmann::ordered_json doc;
  doc["format_version"] = 1;
  doc["plugin"] = std::string("conversations ") + kPluginVersion;
  doc["path"] = o_.path.string();
  doc["seed"] = seed_;
  for (int s = 0; s < 3; ++s) {
    nlohmann::ordered_json lines = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < conversations_[s].size(); ++i) {
      lines.push_back({{"line", conversations_[s][i].line}, {"system", systems_[s][i]}});
    }
    doc[split_name(s == 0 ? Split::kTrain : s == 1 ? Split::kVal : Split::kTest)] = lines;
  }
  write_file_atomic(folder / "splits.json", doc.dump(1) + "\n");
}

// ---------------------------------------------------------------------------------------------
// Registration

Schema<Options> conversations_schema() {
  Schema<Options> schema;
  schema
      .add("path", &Options::path,
           "JSONL file, one conversation a line: {\"messages\": [{\"role\", \"content\"}, ...]}")
      .required()
      .input_file();
  schema
      .add("context_length", &Options::context_length,
           "tokens per window (the model's context length, the system turn not counted)")
      .min(1);
  schema
      .add("val_fraction", &Options::val_fraction,
           "share of the conversations held out for validation")
      .range(0, 1, true);
  schema
      .add("test_fraction", &Options::test_fraction, "share of the conversations held out for test")
      .range(0, 1, true);
  schema
      .add("seed", &Options::seed,
           "seed of the split and of system_message = \"other\"; -1: the experiment's seed")
      .min(-1);
  schema.add_enum("loss_on", &Options::loss_on,
                  {{"assistant", LossOn::kAssistant}, {"all", LossOn::kAll}},
                  "the targets learned: the assistant's turns (content and end marker), or all");
  schema.add_enum("system_message", &Options::system_message,
                  {{"own", SystemMessage::kOwn},
                   {"other", SystemMessage::kOther},
                   {"none", SystemMessage::kNone}},
                  "the context: the conversation's system message, another conversation's "
                  "(seeded; to measure conditioning), or the empty one");
  schema.add("system_token", &Options::system_token, "marker of a system message");
  schema.add("user_token", &Options::user_token, "marker of a user message");
  schema.add("assistant_token", &Options::assistant_token, "marker of an assistant message");
  schema.add("start_token", &Options::start_token, "marker before a message's content");
  schema.add("end_token", &Options::end_token, "marker after a message's content");
  schema.check([](const Options& o) {
    if (o.val_fraction + o.test_fraction >= 1) {
      throw Error("val_fraction + test_fraction must be below 1, got " +
                  std::to_string(o.val_fraction + o.test_fraction));
    }
    const std::vector<std::pair<const char*, const std::string*>> tokens = {
        {"system_token", &o.system_token},
        {"user_token", &o.user_token},
        {"assistant_token", &o.assistant_token},
        {"start_token", &o.start_token},
        {"end_token", &o.end_token}};
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i].second->empty())
        throw Error(std::string(tokens[i].first) + " is empty", "a marker is a non-empty text");
      for (std::size_t j = 0; j < i; ++j) {
        if (*tokens[i].second == *tokens[j].second) {
          throw Error(std::string(tokens[i].first) + " and " + tokens[j].first + " are both \"" +
                          *tokens[i].second + "\"",
                      "each marker must differ from the others");
        }
      }
    }
  });
  return schema;
}

void register_conversations(Registry& registry) {
  registry.add<Dataset>("conversations",
                        "chat transcripts (JSONL): loss on the assistant's turns, the system "
                        "turn as the context",
                        conversations_schema(),
                        [](const Options& options, const DatasetContext& c) {
                          return std::make_shared<Conversations>(options, c.seed);
                        });
}

}  // namespace
}  // namespace lmrun::datasets

LMRUN_PLUGIN("conversations", lmrun::datasets::kPluginVersion,
             lmrun::datasets::register_conversations)
