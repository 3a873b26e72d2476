// Tokenizer `sentencepiece`: Google's SentencePiece through Debian's libsentencepiece. Loads a
// .model file (LLaMA's, T5's, one from spm_train), or trains a unigram, BPE, char or word model
// on the training split in memory.
//
//   [tokenizer]
//   type = "sentencepiece"
//   model = "data/m.model"        # or, to train one: vocab_size, model_type, ...
//
// A trained model is lossless by default, as LLaMA's is: no normalisation, whitespace kept, and
// bytes for characters outside the vocabulary (a newline is <0x0A>), so decode(encode(x)) == x.
// `normalization = "nmt_nfkc"` and `byte_fallback = false` give SentencePiece's own defaults.
// Ids are SentencePiece's: <unk> 0, <s> 1, </s> 2, and <pad> 3 with `pad = true`. A run saves the
// model as sentencepiece.model in its tokenizer folder.
//
// Markup tokens, the dataset's special tokens (TokenizerContext::special_tokens: "|user|",
// "|end|"), are SentencePiece's own user-defined symbols: a trained model gets them as
// `user_defined_symbols` (one piece each, always matched in the text, never split, kept in the
// saved .model), and is trained without the dummy prefix so that a marker alone encodes to its one
// id and pieces encoded apart join as the whole text does. A given .model must hold them already
// (a missing one is an error). save() lists them in markup_tokens.txt beside the model, one a
// line, and load() takes that list. Without markup tokens, everything is exactly as before.
//
// The library runs in a link namespace of its own, behind a bridge: see sentencepiece_bridge.h.
#include <dlfcn.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/tokenizer.h"
#include "lmrun/util/files.h"
#include "sentencepiece_bridge.h"

namespace lmrun::tokenizers {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPluginVersion = "0.1.0";
constexpr const char* kWho = "tokenizer 'sentencepiece': ";
constexpr const char* kFileName = "sentencepiece.model";
constexpr const char* kMarkupFileName = "markup_tokens.txt";
// Beside the plugin, in a folder the plugin loader does not scan.
constexpr const char* kBridgePath = "lmrun-sentencepiece.libs/sentencepiece_bridge.so";

struct SentencePieceOptions {
  fs::path model;
  std::int64_t vocab_size = 1000;
  std::string model_type = "unigram";
  double character_coverage = 1.0;
  std::string normalization = "identity";
  bool byte_fallback = true;
  bool remove_extra_whitespaces = false;
  bool pad = false;
  std::int64_t max_sentence_length = 16384;
  std::int64_t threads = 1;
};

// The bridge's functions, resolved once per process. The namespace is never closed: glibc has
// only a few, and the model handles live as long as the tokenizers.
struct Bridge {
  decltype(&lmrun_spb_load) load;
  decltype(&lmrun_spb_free) free;
  decltype(&lmrun_spb_info_of) info_of;
  decltype(&lmrun_spb_train) train;
  decltype(&lmrun_spb_encode) encode;
  decltype(&lmrun_spb_decode) decode;
  decltype(&lmrun_spb_serialize) serialize;
  decltype(&lmrun_spb_piece_id) piece_id;
};

fs::path bridge_file() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&bridge_file), &info) == 0 || info.dli_fname == nullptr)
    throw Error(std::string(kWho) + "cannot find the plugin's own file");
  return fs::path(info.dli_fname).parent_path() / kBridgePath;
}

Bridge open_bridge() {
  const fs::path file = bridge_file();
  void* handle = ::dlmopen(LM_ID_NEWLM, file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* reason = ::dlerror();
    throw Error(std::string(kWho) + "cannot load its SentencePiece bridge " + file.string() + ": " +
                    (reason ? reason : "unknown reason"),
                "the bridge is built and installed with the plugin: rebuild with scripts/setup.sh");
  }
  auto symbol = [&](auto& slot, const char* name) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(::dlsym(handle, name));
    if (slot == nullptr) {
      ::dlclose(handle);  // namespaces are few: give this one back
      throw Error(std::string(kWho) + "the bridge " + file.string() + " lacks " + name,
                  "the bridge and the plugin come from different builds: rebuild both");
    }
  };
  Bridge b{};
  symbol(b.load, "lmrun_spb_load");
  symbol(b.free, "lmrun_spb_free");
  symbol(b.info_of, "lmrun_spb_info_of");
  symbol(b.train, "lmrun_spb_train");
  symbol(b.encode, "lmrun_spb_encode");
  symbol(b.decode, "lmrun_spb_decode");
  symbol(b.serialize, "lmrun_spb_serialize");
  symbol(b.piece_id, "lmrun_spb_piece_id");
  return b;
}

const Bridge& bridge() {
  static const Bridge opened = open_bridge();
  return opened;
}

// What a bridge call hands back, copied into this side's memory. The callbacks run inside the
// bridge's call, so nothing may leave them as an exception: a failed copy is recorded and thrown
// by finish() once the call has returned.
struct Reply {
  std::string bytes;
  std::vector<int> ids;
  std::string error;
  bool copy_failed = false;

  template <typename Copy>
  static void guarded(void* self, Copy copy) noexcept {
    auto* reply = static_cast<Reply*>(self);
    try {
      copy(*reply);
    } catch (...) {
      reply->copy_failed = true;
    }
  }
  static void on_bytes(void* self, const char* data, size_t size) noexcept {
    guarded(self, [&](Reply& r) { r.bytes.assign(data, size); });
  }
  static void on_ids(void* self, const int* ids, size_t count) noexcept {
    guarded(self, [&](Reply& r) { r.ids.assign(ids, ids + count); });
  }
  static void on_error(void* self, const char* data, size_t size) noexcept {
    guarded(self, [&](Reply& r) { r.error.assign(data, size); });
  }
  // After a call that returned `status`: throws when a result could not be copied (out of
  // memory), then when the call failed, as "<failure>: <the bridge's message>".
  void finish(int status, const std::string& failure, const std::string& hint = "") const {
    if (copy_failed) throw Error(std::string(kWho) + "out of memory copying a result");
    if (status != 0) throw Error(std::string(kWho) + failure + ": " + error, hint);
  }
};

struct ModelDeleter {
  void operator()(lmrun_spb_model* model) const { bridge().free(model); }
};
using ModelHandle = std::unique_ptr<lmrun_spb_model, ModelDeleter>;

// The trainer's options, by SentencePiece's own names; `markup` becomes user_defined_symbols.
std::vector<std::pair<std::string, std::string>> training_arguments(
    const SentencePieceOptions& o, const std::vector<std::string>& markup) {
  const auto yes_no = [](bool b) { return std::string(b ? "true" : "false"); };
  std::vector<std::pair<std::string, std::string>> arguments = {
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"normalization_rule_name", o.normalization},
      {"byte_fallback", yes_no(o.byte_fallback)},
      {"remove_extra_whitespaces", yes_no(o.remove_extra_whitespaces)},
      {"pad_id", o.pad ? "3" : "-1"},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"num_threads", std::to_string(o.threads)},
      {"minloglevel", "2"}};
  if (!markup.empty()) {
    std::string symbols;
    for (const auto& token : markup) symbols += (symbols.empty() ? "" : ",") + token;
    arguments.emplace_back("user_defined_symbols", symbols);
    arguments.emplace_back("add_dummy_prefix", "false");
  }
  return arguments;
}

// SentencePiece takes user_defined_symbols as one comma-separated text.
void check_markup(const std::vector<std::string>& markup) {
  for (std::size_t i = 0; i < markup.size(); ++i) {
    if (markup[i].empty() || markup[i].find(',') != std::string::npos) {
      throw Error(std::string(kWho) + "the dataset's special token '" + markup[i] +
                      "' is empty or holds a comma",
                  "SentencePiece lists its user-defined symbols separated by commas: choose "
                  "tokens without one");
    }
    if (std::find(markup.begin(), markup.begin() + i, markup[i]) != markup.begin() + i) {
      throw Error(std::string(kWho) + "the dataset's special token '" + markup[i] +
                  "' is listed twice");
    }
  }
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(SentencePieceOptions o, std::vector<std::string> markup)
      : o_(std::move(o)), markup_(std::move(markup)) {
    check_markup(markup_);
    bridge();  // a missing bridge is an error now, not at the first encode
    if (!o_.model.empty()) {
      install(read_file(o_.model, "check [tokenizer] model (paths are from where lmrun runs)"),
              o_.model.string());
    }
  }

  void fit(std::string_view text) override {
    if (model_) return;  // a given model
    const auto arguments = training_arguments(o_, markup_);
    std::vector<const char*> keys, values;
    for (const auto& [key, value] : arguments) {
      keys.push_back(key.c_str());
      values.push_back(value.c_str());
    }
    Reply reply;
    const int status = bridge().train(text.data(), text.size(), keys.data(), values.data(),
                                      keys.size(), &Reply::on_bytes, &Reply::on_error, &reply);
    reply.finish(status, "training failed", training_hint(reply.error));
    install(reply.bytes, "the trained model");
  }

  std::vector<std::int64_t> encode(std::string_view text) const override {
    Reply reply;
    reply.finish(bridge().encode(ready("encode"), text.data(), text.size(), &Reply::on_ids,
                                 &Reply::on_error, &reply),
                 "encode failed");
    return std::vector<std::int64_t>(reply.ids.begin(), reply.ids.end());
  }

  std::string decode(const std::vector<std::int64_t>& ids) const override {
    const lmrun_spb_model* model = ready("decode");
    std::vector<int> narrow;
    narrow.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= info_.pieces) {
        throw Error(std::string(kWho) + "id " + std::to_string(ids[i]) + " at position " +
                    std::to_string(i) + " is outside the vocabulary of " +
                    std::to_string(info_.pieces));
      }
      narrow.push_back(static_cast<int>(ids[i]));
    }
    Reply reply;
    reply.finish(bridge().decode(model, narrow.data(), narrow.size(), &Reply::on_bytes,
                                 &Reply::on_error, &reply),
                 "decode failed");
    return reply.bytes;
  }

  std::int64_t vocab_size() const override {
    ready("vocab_size");
    return info_.pieces;
  }

  std::int64_t special_id(std::string_view token) const override {
    if (!model_) return -1;
    if (token == "<unk>") return info_.unk_id;
    if (token == "<pad>") return info_.pad_id;
    if (token == "<bos>") return info_.bos_id;
    if (token == "<eos>") return info_.eos_id;
    if (std::find(markup_.begin(), markup_.end(), token) != markup_.end())
      return bridge().piece_id(model_.get(), token.data(), token.size());
    return -1;
  }

  void save(const fs::path& folder) const override {
    Reply reply;
    reply.finish(bridge().serialize(ready("save"), &Reply::on_bytes, &Reply::on_error, &reply),
                 "cannot serialize the model");
    write_file_atomic(folder / kFileName, reply.bytes);
    if (!markup_.empty()) {
      std::string list;
      for (const auto& token : markup_) list += token + "\n";
      write_file_atomic(folder / kMarkupFileName, list);
    }
  }

  // The saved markup tokens (markup_tokens.txt, when there is one) replace this tokenizer's own.
  void load(const fs::path& folder) override {
    const fs::path file = saved_tokenizer_file(folder, kFileName, kWho);
    std::vector<std::string> markup;
    std::error_code error;
    if (fs::is_regular_file(folder / kMarkupFileName, error)) {
      std::istringstream lines(read_file(folder / kMarkupFileName));
      for (std::string line; std::getline(lines, line);) markup.push_back(line);
      try {
        check_markup(markup);
      } catch (const Error& e) {
        throw Error((folder / kMarkupFileName).string() + ": " + e.what(),
                    "the saved tokenizer is damaged; fit it again");
      }
    }
    std::vector<std::string> own = std::move(markup_);
    markup_ = std::move(markup);
    try {
      install(read_file(file), file.string());
    } catch (...) {
      markup_ = std::move(own);
      throw;
    }
  }

 private:
  static std::string training_hint(const std::string& reason) {
    if (reason.find("required_chars") != std::string::npos) {
      return "the vocabulary must hold every character kept (and 256 bytes with byte_fallback): "
             "raise vocab_size, or lower character_coverage";
    }
    if (reason.find("too high") != std::string::npos) {
      return "the training text cannot fill that many pieces: lower vocab_size";
    }
    return "";
  }

  void install(const std::string& serialized, const std::string& source) {
    lmrun_spb_model* loaded = nullptr;
    Reply reply;
    reply.finish(
        bridge().load(serialized.data(), serialized.size(), &loaded, &Reply::on_error, &reply),
        source + " is not a SentencePiece model");
    ModelHandle model(loaded);
    for (const auto& token : markup_) {
      if (bridge().piece_id(loaded, token.data(), token.size()) < 0) {
        throw Error(std::string(kWho) + source + " has no piece for the dataset's special token '" +
                        token + "'",
                    "train the tokenizer on the data (leave `model` out), or give a model "
                    "trained with user_defined_symbols holding it");
      }
    }
    model_ = std::move(model);
    bridge().info_of(loaded, &info_);
  }

  const lmrun_spb_model* ready(const char* what) const {
    if (!model_) {
      throw Error(std::string(kWho) + what + " before the tokenizer has a model",
                  "call fit() on the training text or load() a saved tokenizer first");
    }
    return model_.get();
  }

  SentencePieceOptions o_;
  std::vector<std::string> markup_;  // the dataset's markup tokens
  ModelHandle model_;
  lmrun_spb_info info_{};
};

void register_sentencepiece(Registry& registry) {
  Schema<SentencePieceOptions> schema;
  schema.add("model", &SentencePieceOptions::model, "a SentencePiece .model file; empty: train")
      .input_file();
  schema.add("vocab_size", &SentencePieceOptions::vocab_size, "training: pieces in all").min(8);
  schema.add("model_type", &SentencePieceOptions::model_type, "training: the algorithm")
      .choices({"unigram", "bpe", "char", "word"});
  schema
      .add("character_coverage", &SentencePieceOptions::character_coverage,
           "training: share of characters kept (1.0 for small alphabets, 0.9995 for CJK)")
      .min(0.5)
      .max(1.0);
  schema
      .add("normalization", &SentencePieceOptions::normalization,
           "training: Unicode normalisation; identity keeps the text as it is")
      .choices({"identity", "nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf"});
  schema.add("byte_fallback", &SentencePieceOptions::byte_fallback,
             "training: a character outside the vocabulary becomes its UTF-8 bytes, not <unk>");
  schema.add("remove_extra_whitespaces", &SentencePieceOptions::remove_extra_whitespaces,
             "training: drop leading, trailing and repeated spaces");
  schema.add("pad", &SentencePieceOptions::pad, "training: add <pad> as id 3");
  schema
      .add("max_sentence_length", &SentencePieceOptions::max_sentence_length,
           "training: longer lines (in bytes) are left out")
      .min(16);
  schema
      .add("threads", &SentencePieceOptions::threads,
           "training: threads; 1 gives the same model on every run")
      .min(1);
  registry.add<Tokenizer>(
      "sentencepiece", "Google's SentencePiece (load a .model, or train)", schema,
      [](const SentencePieceOptions& o, const TokenizerContext& context) {
        return std::make_shared<SentencePieceTokenizer>(o, context.special_tokens);
      });
}

}  // namespace
}  // namespace lmrun::tokenizers

LMRUN_PLUGIN("sentencepiece", lmrun::tokenizers::kPluginVersion,
             lmrun::tokenizers::register_sentencepiece)
