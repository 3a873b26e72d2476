// Tokenizer `bpe`: byte-level BPE (byte_bpe.h) behind lmrun's Tokenizer interface, with the file
// formats it is found in: GPT-2's encoder.json + vocab.bpe (the same data as Hugging Face's
// vocab.json + merges.txt), and Hugging Face's tokenizer.json, which is also what save() writes.
//
//   [tokenizer]                      # GPT-2's vocabulary, byte-exact
//   type = "bpe"
//   vocab = "data/gpt2/encoder.json"
//   merges = "data/gpt2/vocab.bpe"
//
//   [tokenizer]                      # trained on the training split by fit()
//   type = "bpe"
//   vocab_size = 2048
//   min_frequency = 2
//   special_tokens = ["<|endoftext|>"]
//
// `special` says what a special token's text inside the input becomes: "refused" (an error naming
// the offset: the safe default, as tiktoken's), "allowed" (its id), or "text" (ordinary text).
//
// Markup tokens, the dataset's special tokens (TokenizerContext::special_tokens: "|user|",
// "|end|"), are always found in the text and encoded as their ids, whatever `special` says: they
// take the ids after the own special tokens when trained, are appended to a given vocabulary that
// lacks them, and training never merges across them. tokenizer.json holds them as added tokens
// with "special": false, which is what Hugging Face's tokenizers also match in any input; such
// tokens of a loaded file are markup tokens here too.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <system_error>
#include <unordered_set>

#include "byte_bpe.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/tokenizer.h"
#include "lmrun/util/files.h"
#include "lmrun/util/markup.h"

namespace lmrun::tokenizers {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;                 // read: std::map objects (ordered_json's inserts
using OrderedJson = nlohmann::ordered_json;  // are linear: quadratic on a 50,000-token vocabulary)

constexpr const char* kPluginVersion = "0.1.0";
constexpr const char* kWho = "tokenizer 'bpe': ";
constexpr const char* kFileName = "tokenizer.json";

struct BpeOptions {
  fs::path vocab;   // encoder.json / vocab.json
  fs::path merges;  // vocab.bpe / merges.txt
  fs::path file;    // tokenizer.json
  std::int64_t vocab_size = 4096;
  std::int64_t min_frequency = 2;
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  std::string special = "refused";
};

std::string read_text(const fs::path& file, const char* what) {
  // A regular file only: a FIFO would block the read forever.
  const std::string problem = lmrun::regular_file_problem(file);
  if (!problem.empty()) {
    throw Error(std::string(kWho) + what + " " + file.string() + " " + problem,
                "check the path (relative paths are from the folder lmrun runs in)");
  }
  try {
    return lmrun::read_file(file);
  } catch (const Error& error) {
    throw Error(std::string(kWho) + what + ": " + error.what(), error.hint());
  }
}

Json parse_json(const fs::path& file, const char* what) {
  const std::string text = read_text(file, what);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw Error(std::string(kWho) + file.string() + " is not valid JSON: " + e.what());
  }
}

// A GPT-2 token string's bytes; `specials` may be any text.
std::string token_bytes(const std::string& token, const fs::path& file) {
  std::string bytes;
  if (!unicode_to_bytes(token, bytes)) {
    throw Error(std::string(kWho) + file.string() + ": token '" + token +
                    "' is not in GPT-2's byte alphabet",
                "lmrun's bpe reads byte-level BPE vocabularies (GPT-2, RoBERTa); list a token "
                "like '<|endoftext|>' in special_tokens");
  }
  return bytes;
}

std::string json_token(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += byte_to_unicode()[c];
  return out;
}

// The vocabulary object {token: id} as tokens by id: ids must be 0..n-1, each once.
std::vector<std::string> vocabulary(const Json& object, const fs::path& file,
                                    const std::vector<std::string>& specials,
                                    std::unordered_map<std::string, std::int64_t>& ids) {
  if (!object.is_object())
    throw Error(std::string(kWho) + file.string() + ": the vocabulary is not a JSON object");
  std::vector<std::optional<std::string>> by_id(object.size());
  for (const auto& [token, value] : object.items()) {
    if (!value.is_number_integer()) {
      throw Error(std::string(kWho) + file.string() + ": the id of '" + token +
                  "' is not an integer");
    }
    const auto id = value.get<std::int64_t>();
    if (id < 0 || id >= static_cast<std::int64_t>(object.size()) ||
        by_id[static_cast<std::size_t>(id)]) {
      throw Error(std::string(kWho) + file.string() + ": id " + std::to_string(id) + " of '" +
                      token + "' is repeated or outside 0.." + std::to_string(object.size() - 1),
                  "the ids of a vocabulary are 0..n-1, each once");
    }
    const bool special = std::find(specials.begin(), specials.end(), token) != specials.end();
    by_id[static_cast<std::size_t>(id)] = special ? token : token_bytes(token, file);
    ids[token] = id;
  }
  std::vector<std::string> tokens;
  for (auto& token : by_id) tokens.push_back(std::move(*token));
  return tokens;
}

using Merges = std::vector<std::pair<std::int64_t, std::int64_t>>;

std::pair<std::int64_t, std::int64_t> merge_ids(
    const std::string& left, const std::string& right,
    const std::unordered_map<std::string, std::int64_t>& ids, const std::string& where) {
  const auto l = ids.find(left), r = ids.find(right);
  if (l == ids.end() || r == ids.end()) {
    throw Error(std::string(kWho) + where + ": merge '" + left + " " + right +
                    "' names a token the vocabulary lacks",
                "the vocabulary and merges files do not belong together");
  }
  return {l->second, r->second};
}

// Specials as (text, id): those in the vocabulary keep their id, the others are appended.
std::vector<std::pair<std::string, std::int64_t>> place_specials(
    const std::vector<std::string>& specials, std::vector<std::string>& tokens,
    const std::unordered_map<std::string, std::int64_t>& ids) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& special : specials) {
    const auto it = ids.find(special);
    if (it != ids.end()) {
      out.emplace_back(special, it->second);
    } else {
      out.emplace_back(special, static_cast<std::int64_t>(tokens.size()));
      tokens.push_back(special);
    }
  }
  return out;
}

// GPT-2's files: encoder.json and vocab.bpe ("#version: 0.2", then "left right" per line).
ByteBpe read_gpt2(const BpeOptions& o) {
  std::unordered_map<std::string, std::int64_t> ids;
  std::vector<std::string> tokens =
      vocabulary(parse_json(o.vocab, "vocab"), o.vocab, o.special_tokens, ids);
  std::istringstream lines(read_text(o.merges, "merges"));
  Merges merges;
  std::int64_t number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos || space == 0 ||
        line.find(' ', space + 1) != std::string::npos) {
      throw Error(std::string(kWho) + o.merges.string() + ":" + std::to_string(number) +
                      ": expected 'left right', found '" + line + "'",
                  "a merges file holds one merge per line, two tokens separated by one space");
    }
    merges.push_back(merge_ids(line.substr(0, space), line.substr(space + 1), ids,
                               o.merges.string() + ":" + std::to_string(number)));
  }
  auto specials = place_specials(o.special_tokens, tokens, ids);
  return ByteBpe::from_tokens(std::move(tokens), merges, std::move(specials));
}

// Hugging Face's tokenizer.json, for a byte-level BPE model. `markup` receives the added tokens
// that are not special ("special": false), which are matched in any input.
ByteBpe read_tokenizer_json(const fs::path& file, std::vector<std::string>& markup) {
  const Json root = parse_json(file, "tokenizer.json");
  auto refuse = [&](const std::string& what) {
    return Error(std::string(kWho) + file.string() + ": " + what,
                 "lmrun's bpe reads byte-level BPE tokenizers (GPT-2, RoBERTa style) without a "
                 "normalizer");
  };
  if (!root.is_object() || !root.contains("model") || root["model"].value("type", "") != "BPE")
    throw refuse("its model is not a BPE model");
  if (root.contains("normalizer") && !root["normalizer"].is_null())
    throw refuse("it has a normalizer, which lmrun's bpe does not apply");
  const Json& pre = root.contains("pre_tokenizer") ? root["pre_tokenizer"] : Json();
  const Json* byte_level = nullptr;
  if (pre.is_object() && pre.value("type", "") == "ByteLevel") byte_level = &pre;
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].size() == 1 && pre["pretokenizers"][0].value("type", "") == "ByteLevel")
    byte_level = &pre["pretokenizers"][0];
  if (byte_level == nullptr) throw refuse("its pre-tokenizer is not ByteLevel");
  if (byte_level->value("add_prefix_space", false))
    throw refuse("its ByteLevel pre-tokenizer adds a prefix space");
  if (!byte_level->value("use_regex", true))
    throw refuse("its ByteLevel pre-tokenizer does not use GPT-2's regex");
  const Json& model = root["model"];
  if (model.value("ignore_merges", false))
    throw refuse("its model sets ignore_merges (a later BPE variant)");

  std::vector<std::string> added;
  if (root.contains("added_tokens")) {
    for (const auto& token : root["added_tokens"]) added.push_back(token.value("content", ""));
  }
  std::unordered_map<std::string, std::int64_t> ids;
  std::vector<std::string> tokens = vocabulary(model["vocab"], file, added, ids);
  std::vector<std::pair<std::int64_t, std::string>> by_id;
  if (root.contains("added_tokens")) {
    for (const auto& token : root["added_tokens"])
      by_id.emplace_back(token.value("id", std::int64_t{-1}), token.value("content", ""));
  }
  std::sort(by_id.begin(), by_id.end());  // those past the model's vocabulary come in id order
  std::vector<std::pair<std::string, std::int64_t>> specials;
  {
    for (const auto& [id, content] : by_id) {
      if (content.empty() || id < 0) throw refuse("an added token has no content or id");
      if (id == static_cast<std::int64_t>(tokens.size())) tokens.push_back(content);
      if (id >= static_cast<std::int64_t>(tokens.size()) ||
          tokens[static_cast<std::size_t>(id)] != content)
        throw refuse("added token '" + content + "' has id " + std::to_string(id) +
                     ", which the vocabulary gives to another token or skips");
      specials.emplace_back(content, id);
    }
  }
  markup.clear();
  if (root.contains("added_tokens")) {
    for (const auto& token : root["added_tokens"]) {
      if (!token.value("special", true)) markup.push_back(token.value("content", ""));
    }
  }
  Merges merges;
  if (!model.contains("merges") || !model["merges"].is_array())
    throw refuse("its model has no merges list");
  for (const auto& merge : model["merges"]) {
    std::string left, right;
    if (merge.is_string()) {  // "left right" (tokenizers before 0.20)
      const auto text = merge.get<std::string>();
      const auto space = text.find(' ');
      if (space == std::string::npos) throw refuse("merge '" + text + "' has no space");
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {  // ["left", "right"]
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      throw refuse("a merge is neither \"left right\" nor [\"left\", \"right\"]");
    }
    merges.push_back(merge_ids(left, right, ids, file.string()));
  }
  return ByteBpe::from_tokens(std::move(tokens), merges, std::move(specials));
}

// `markup`: the added tokens written with "special": false.
OrderedJson to_tokenizer_json(const ByteBpe& bpe, const std::vector<std::string>& markup) {
  auto byte_level = [](bool prefix, bool trim) {
    return OrderedJson{{"type", "ByteLevel"},
                       {"add_prefix_space", prefix},
                       {"trim_offsets", trim},
                       {"use_regex", true}};
  };
  OrderedJson added = OrderedJson::array();
  std::vector<bool> special(bpe.tokens().size(), false);
  for (const auto& [text, id] : bpe.specials()) {
    special[static_cast<std::size_t>(id)] = true;
    added.push_back(
        OrderedJson{{"id", id},
                    {"content", text},
                    {"single_word", false},
                    {"lstrip", false},
                    {"rstrip", false},
                    {"normalized", false},
                    {"special", std::find(markup.begin(), markup.end(), text) == markup.end()}});
  }
  // In id order, appended to the ordered object's vector directly: its own insert searches the
  // keys first, which is quadratic over 50,000 tokens.
  OrderedJson vocab = OrderedJson::object();
  using Entries = std::vector<std::pair<const std::string, OrderedJson>>;
  auto& entries = static_cast<Entries&>(vocab.get_ref<OrderedJson::object_t&>());
  std::unordered_set<std::string> keys;
  for (std::size_t id = 0; id < bpe.tokens().size(); ++id) {
    const std::string key = special[id] ? bpe.tokens()[id] : json_token(bpe.tokens()[id]);
    if (!keys.insert(key).second) {
      throw Error(std::string(kWho) + "token " + std::to_string(id) + " ('" + key +
                  "') is also a special token's text; tokenizer.json cannot hold both");
    }
    entries.emplace_back(key, OrderedJson(static_cast<std::int64_t>(id)));
  }
  OrderedJson merges = OrderedJson::array();
  for (const auto& [left, right] : bpe.merges()) {
    merges.push_back(json_token(bpe.tokens()[static_cast<std::size_t>(left)]) + " " +
                     json_token(bpe.tokens()[static_cast<std::size_t>(right)]));
  }
  return OrderedJson{{"version", "1.0"},
                     {"truncation", nullptr},
                     {"padding", nullptr},
                     {"added_tokens", added},
                     {"normalizer", nullptr},
                     {"pre_tokenizer", byte_level(false, true)},
                     {"post_processor", byte_level(true, false)},
                     {"decoder", byte_level(true, true)},
                     {"model", OrderedJson{{"type", "BPE"},
                                           {"dropout", nullptr},
                                           {"unk_token", nullptr},
                                           {"continuing_subword_prefix", ""},
                                           {"end_of_word_suffix", ""},
                                           {"fuse_unk", false},
                                           {"byte_fallback", false},
                                           {"vocab", vocab},
                                           {"merges", merges}}}};
}

SpecialPolicy policy_of(const std::string& name) {
  if (name == "allowed") return SpecialPolicy::kAllowed;
  if (name == "text") return SpecialPolicy::kText;
  return SpecialPolicy::kRefused;
}

// The markup tokens must be non-empty and distinct.
void check_markup(const std::vector<std::string>& markup) {
  for (std::size_t i = 0; i < markup.size(); ++i) {
    if (markup[i].empty()) {
      throw Error(std::string(kWho) + "the dataset's special token " + std::to_string(i) +
                  " is empty");
    }
    if (std::find(markup.begin(), markup.begin() + i, markup[i]) != markup.begin() + i) {
      throw Error(std::string(kWho) + "the dataset's special token '" + markup[i] +
                  "' is listed twice");
    }
  }
}

// `tokens` followed by those of `more` it lacks.
std::vector<std::string> with(std::vector<std::string> tokens,
                              const std::vector<std::string>& more) {
  for (const auto& token : more) {
    if (std::find(tokens.begin(), tokens.end(), token) == tokens.end()) tokens.push_back(token);
  }
  return tokens;
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeOptions o, std::vector<std::string> markup)
      : o_(std::move(o)), policy_(policy_of(o_.special)) {
    check_markup(markup);
    set_markup(std::move(markup));
    const bool gpt2 = !o_.vocab.empty() || !o_.merges.empty();
    if (gpt2 && !o_.file.empty()) {
      throw Error(std::string(kWho) + "both `file` (tokenizer.json) and `vocab`/`merges`",
                  "give one: file = \"tokenizer.json\", or vocab and merges");
    }
    if (gpt2 && (o_.vocab.empty() || o_.merges.empty())) {
      throw Error(std::string(kWho) + "`vocab` and `merges` come together",
                  "set both: vocab = \"data/gpt2/encoder.json\", merges = \"data/gpt2/vocab.bpe\"");
    }
    const auto specials = static_cast<std::int64_t>(with(o_.special_tokens, markup_).size());
    const auto room = 256 + specials;
    if (!gpt2 && o_.file.empty() && o_.vocab_size < room) {
      throw Error(std::string(kWho) + "vocab_size " + std::to_string(o_.vocab_size) +
                      " leaves no room for the 256 bytes and " + std::to_string(specials) +
                      " special tokens",
                  "set vocab_size to at least " + std::to_string(room));
    }
    if (gpt2) bpe_ = with_markup(read_gpt2(o_));
    if (!o_.file.empty()) {
      std::vector<std::string> marked;
      ByteBpe read = read_tokenizer_json(o_.file, marked);
      set_markup(with(marked, markup_));
      bpe_ = with_markup(std::move(read));
    }
  }

  void fit(std::string_view text) override {
    if (bpe_) return;  // a given vocabulary
    // Training cuts special tokens out of the text, so no merge spans a markup token.
    bpe_ = with_markup(ByteBpe::train(
        text, BpeTraining{o_.vocab_size, o_.min_frequency, with(o_.special_tokens, markup_)}));
  }

  std::vector<std::int64_t> encode(std::string_view text) const override {
    const ByteBpe& bpe = ready("encode");
    if (markup_split_.empty()) return bpe.encode(text, policy_);
    // Markup tokens first, whatever the policy; the text between them as before.
    std::vector<std::int64_t> ids;
    markup_split_.split(
        text,
        [&](std::string_view piece) {
          const auto offset = static_cast<std::size_t>(piece.data() - text.data());
          const std::vector<std::int64_t> part = bpe.encode(piece, policy_, offset);
          ids.insert(ids.end(), part.begin(), part.end());
        },
        [&](std::size_t token) { ids.push_back(markup_ids_[token]); });
    return ids;
  }
  std::string decode(const std::vector<std::int64_t>& ids) const override {
    return ready("decode").decode(ids);
  }
  std::int64_t vocab_size() const override { return ready("vocab_size").vocab_size(); }
  std::int64_t special_id(std::string_view token) const override {
    return bpe_ ? bpe_->special_id(token) : -1;
  }

  void save(const fs::path& folder) const override {
    const std::string text = to_tokenizer_json(ready("save"), markup_).dump(1) + "\n";
    write_file_atomic(folder / kFileName, text);
  }

  // The saved markup tokens replace this tokenizer's own.
  void load(const fs::path& folder) override {
    std::vector<std::string> marked;
    ByteBpe read = read_tokenizer_json(saved_tokenizer_file(folder, kFileName, kWho), marked);
    set_markup(std::move(marked));
    bpe_ = with_markup(std::move(read));
  }

 private:
  void set_markup(std::vector<std::string> markup) {
    markup_ = std::move(markup);
    markup_split_ = MarkupSplit(markup_);
  }

  // `bpe` with the markup tokens it lacks appended as special tokens; their ids noted.
  ByteBpe with_markup(ByteBpe bpe) {
    std::vector<std::string> tokens = bpe.tokens();
    auto specials = bpe.specials();
    bool added = false;
    for (const auto& token : markup_) {
      if (bpe.special_id(token) >= 0) continue;
      specials.emplace_back(token, static_cast<std::int64_t>(tokens.size()));
      tokens.push_back(token);
      added = true;
    }
    if (added) bpe = ByteBpe::from_tokens(std::move(tokens), bpe.merges(), std::move(specials));
    markup_ids_.clear();
    for (const auto& token : markup_) markup_ids_.push_back(bpe.special_id(token));
    return bpe;
  }

  const ByteBpe& ready(const char* what) const {
    if (!bpe_) {
      throw Error(std::string(kWho) + what + " before the tokenizer has a vocabulary",
                  "call fit() on the training text or load() a saved tokenizer first");
    }
    return *bpe_;
  }

  BpeOptions o_;
  SpecialPolicy policy_;
  std::optional<ByteBpe> bpe_;
  std::vector<std::string> markup_;       // the dataset's markup tokens
  MarkupSplit markup_split_;              // finds them in a text
  std::vector<std::int64_t> markup_ids_;  // id of markup_[i], once there is a vocabulary
};

Schema<BpeOptions> bpe_schema() {
  Schema<BpeOptions> schema;
  schema
      .add("vocab", &BpeOptions::vocab,
           "GPT-2 encoder.json (or Hugging Face vocab.json); with `merges`")
      .input_file();
  schema.add("merges", &BpeOptions::merges, "GPT-2 vocab.bpe (or Hugging Face merges.txt)")
      .input_file();
  schema.add("file", &BpeOptions::file, "a Hugging Face tokenizer.json of a byte-level BPE model")
      .input_file();
  schema
      .add("vocab_size", &BpeOptions::vocab_size,
           "training: tokens in all (special tokens + 256 bytes + merges)")
      .min(257);
  schema
      .add("min_frequency", &BpeOptions::min_frequency,
           "training: a pair seen fewer times is not merged")
      .min(1);
  schema.add("special_tokens", &BpeOptions::special_tokens,
             "special tokens: found in the vocabulary, or given the next ids");
  schema
      .add("special", &BpeOptions::special,
           "a special token's text in the input: refused (an error), allowed (its id), or text")
      .choices({"refused", "allowed", "text"});
  return schema;
}

void register_bpe(Registry& registry) {
  registry.add<Tokenizer>("bpe", "byte-level BPE (GPT-2's, or trained on the training split)",
                          bpe_schema(),
                          [](const BpeOptions& options, const TokenizerContext& context) {
                            return std::make_shared<BpeTokenizer>(options, context.special_tokens);
                          });
}

}  // namespace
}  // namespace lmrun::tokenizers

LMRUN_PLUGIN("bpe", lmrun::tokenizers::kPluginVersion, lmrun::tokenizers::register_bpe)
