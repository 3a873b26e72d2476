// The bridge library of sentencepiece_bridge.h: Debian's libsentencepiece behind a C interface,
// loaded by the plugin into a link namespace of its own.
#include "sentencepiece_bridge.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

// Exported by libsentencepiece but declared only in its private common.h. Training logs its
// progress at INFO, and the trainer prints the command before it reads `minloglevel`.
namespace sentencepiece::logging {
void SetMinLogLevel(int level);
}  // namespace sentencepiece::logging

struct lmrun_spb_model {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

void say(lmrun_spb_bytes_fn sink, void* context, const std::string& text) {
  sink(context, text.data(), text.size());
}

// Runs `body`, turning a failed Status or an exception into a message: nothing crosses the
// boundary.
template <typename Body>
int guarded(lmrun_spb_bytes_fn error, void* context, Body body) {
  try {
    const sentencepiece::util::Status status = body();
    if (status.ok()) return 0;
    say(error, context, status.ToString());
  } catch (const std::exception& e) {
    say(error, context, e.what());
  } catch (...) {
    say(error, context, "an unknown exception");
  }
  return 1;
}

// The training text's lines, for the trainer, without a copy to a file.
class Lines final : public sentencepiece::SentenceIterator {
 public:
  explicit Lines(std::string_view text) : text_(text) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    if (pos_ >= text_.size()) {
      done_ = true;
      return;
    }
    const std::size_t end = std::min(text_.find('\n', pos_), text_.size());
    line_.assign(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::string line_;
  bool done_ = false;
};

}  // namespace

int lmrun_spb_load(const char* proto, size_t size, lmrun_spb_model** model,
                   lmrun_spb_bytes_fn error, void* context) {
  *model = nullptr;
  return guarded(error, context, [&] {
    auto loaded = std::make_unique<lmrun_spb_model>();
    const auto status = loaded->processor.LoadFromSerializedProto(std::string_view(proto, size));
    if (status.ok()) *model = loaded.release();
    return status;
  });
}

void lmrun_spb_free(lmrun_spb_model* model) { delete model; }

void lmrun_spb_info_of(const lmrun_spb_model* model, lmrun_spb_info* info) {
  const auto& p = model->processor;
  *info = lmrun_spb_info{p.GetPieceSize(), p.unk_id(), p.bos_id(), p.eos_id(), p.pad_id()};
}

int lmrun_spb_train(const char* text, size_t size, const char* const* keys,
                    const char* const* values, size_t count, lmrun_spb_bytes_fn model,
                    lmrun_spb_bytes_fn error, void* context) {
  return guarded(error, context, [&] {
    sentencepiece::logging::SetMinLogLevel(2);  // errors only: the plugin reports the rest
    std::unordered_map<std::string, std::string> args;
    for (size_t i = 0; i < count; ++i) args[keys[i]] = values[i];
    Lines lines(std::string_view(text, size));
    std::string serialized;
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &serialized);
    if (status.ok()) say(model, context, serialized);
    return status;
  });
}

int lmrun_spb_encode(const lmrun_spb_model* model, const char* text, size_t size,
                     lmrun_spb_ids_fn ids, lmrun_spb_bytes_fn error, void* context) {
  return guarded(error, context, [&] {
    std::vector<int> out;
    const auto status = model->processor.Encode(std::string_view(text, size), &out);
    if (status.ok()) ids(context, out.data(), out.size());
    return status;
  });
}

int lmrun_spb_decode(const lmrun_spb_model* model, const int* ids, size_t count,
                     lmrun_spb_bytes_fn text, lmrun_spb_bytes_fn error, void* context) {
  return guarded(error, context, [&] {
    std::string out;
    const auto status = model->processor.Decode(std::vector<int>(ids, ids + count), &out);
    if (status.ok()) say(text, context, out);
    return status;
  });
}

int lmrun_spb_piece_id(const lmrun_spb_model* model, const char* piece, size_t size) {
  try {
    const auto& p = model->processor;
    const std::string_view text(piece, size);
    const int id = p.PieceToId(text);
    // PieceToId answers <unk>'s id for a piece it lacks.
    if (id < 0 || (p.IsUnknown(id) && p.IdToPiece(id) != text)) return -1;
    return id;
  } catch (...) {
    return -1;
  }
}

int lmrun_spb_serialize(const lmrun_spb_model* model, lmrun_spb_bytes_fn proto,
                        lmrun_spb_bytes_fn error, void* context) {
  return guarded(error, context, [&] {
    say(proto, context, model->processor.serialized_model_proto());
    return sentencepiece::util::Status();
  });
}
