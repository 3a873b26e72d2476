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
// The library runs in a link namespace of its own, behind a bridge: see sentencepiece_bridge.h.
#include <dlfcn.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmrun/util/files.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/tokenizer.h"
#include "sentencepiece_bridge.h"

namespace lmrun::tokenizers {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPluginVersion = "0.1.0";
constexpr const char* kWho = "tokenizer 'sentencepiece': ";
constexpr const char* kFileName = "sentencepiece.model";
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

// The trainer's options, by SentencePiece's own names.
std::vector<std::pair<std::string, std::string>> training_arguments(const SentencePieceOptions& o) {
  const auto yes_no = [](bool b) { return std::string(b ? "true" : "false"); };
  return {{"vocab_size", std::to_string(o.vocab_size)},
          {"model_type", o.model_type},
          {"character_coverage", std::to_string(o.character_coverage)},
          {"normalization_rule_name", o.normalization},
          {"byte_fallback", yes_no(o.byte_fallback)},
          {"remove_extra_whitespaces", yes_no(o.remove_extra_whitespaces)},
          {"pad_id", o.pad ? "3" : "-1"},
          {"max_sentence_length", std::to_string(o.max_sentence_length)},
          {"num_threads", std::to_string(o.threads)},
          {"minloglevel", "2"}};
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(SentencePieceOptions o) : o_(std::move(o)) {
    bridge();  // a missing bridge is an error now, not at the first encode
    if (!o_.model.empty()) {
      install(read_file(o_.model, "check [tokenizer] model (paths are from where lmrun runs)"),
              o_.model.string());
    }
  }

  void fit(std::string_view text) override {
    if (model_) return;  // a given model
    const auto arguments = training_arguments(o_);
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
    return -1;
  }

  void save(const fs::path& folder) const override {
    Reply reply;
    reply.finish(bridge().serialize(ready("save"), &Reply::on_bytes, &Reply::on_error, &reply),
                 "cannot serialize the model");
    write_file_atomic(folder / kFileName, reply.bytes);
  }

  void load(const fs::path& folder) override {
    const fs::path file = saved_tokenizer_file(folder, kFileName, kWho);
    install(read_file(file), file.string());
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
    model_.reset(loaded);
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
  ModelHandle model_;
  lmrun_spb_info info_{};
};

void register_sentencepiece(Registry& registry) {
  Schema<SentencePieceOptions> schema;
  schema.add("model", &SentencePieceOptions::model, "a SentencePiece .model file; empty: train");
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
  registry.add<Tokenizer>("sentencepiece", "Google's SentencePiece (load a .model, or train)",
                          schema, [](const SentencePieceOptions& o, const TokenizerContext&) {
                            return std::make_shared<SentencePieceTokenizer>(o);
                          });
}

}  // namespace
}  // namespace lmrun::tokenizers

LMRUN_PLUGIN("sentencepiece", lmrun::tokenizers::kPluginVersion,
             lmrun::tokenizers::register_sentencepiece)
