// The C interface between the `sentencepiece` plugin and its bridge library, which links Debian's
// libsentencepiece and nothing of lmrun's or LibTorch's.
//
// Why a bridge: libsentencepiece 0.1.97 carries its own copy of protobuf-lite 3.14 and exports its
// symbols. LibTorch loads the system's libprotobuf 3.21 first, so inside one symbol namespace the
// library's calls land in the wrong protobuf and abort on its version check. The plugin therefore
// opens the bridge with dlmopen(LM_ID_NEWLM): a namespace of its own, with its own C++ runtime, in
// which the bundled protobuf is the only one. RTLD_DEEPBIND is not enough: it binds the library to
// libstdc++'s own std::cerr, which the executable's copy relocation leaves unconstructed.
//
// Rules of the boundary: plain C types only; no exception crosses it; memory is freed on the side
// that allocated it, so results come back through callbacks that copy them.
#pragma once

#include <stddef.h>

#define LMRUN_SPB_API __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

// Receives a byte string (a serialized model, decoded text or an error message) or ids. The bytes
// are valid only during the call.
typedef void (*lmrun_spb_bytes_fn)(void* context, const char* data, size_t size);
typedef void (*lmrun_spb_ids_fn)(void* context, const int* ids, size_t count);

typedef struct lmrun_spb_model lmrun_spb_model;

typedef struct lmrun_spb_info {
  int pieces;                          // vocabulary size
  int unk_id, bos_id, eos_id, pad_id;  // -1: none
} lmrun_spb_info;

// Every function returning int returns 0 on success; on failure it passes a message to `error`.

// Parses a serialized ModelProto (a .model file's bytes).
LMRUN_SPB_API int lmrun_spb_load(const char* proto, size_t size, lmrun_spb_model** model,
                                 lmrun_spb_bytes_fn error, void* context);
LMRUN_SPB_API void lmrun_spb_free(lmrun_spb_model* model);
LMRUN_SPB_API void lmrun_spb_info_of(const lmrun_spb_model* model, lmrun_spb_info* info);

// Trains on `text`, one sentence per line, with SentencePiece's own option names as `keys` and
// their values as text (e.g. "vocab_size" = "1000"), and passes the serialized model to `model`.
LMRUN_SPB_API int lmrun_spb_train(const char* text, size_t size, const char* const* keys,
                                  const char* const* values, size_t count, lmrun_spb_bytes_fn model,
                                  lmrun_spb_bytes_fn error, void* context);

LMRUN_SPB_API int lmrun_spb_encode(const lmrun_spb_model* model, const char* text, size_t size,
                                   lmrun_spb_ids_fn ids, lmrun_spb_bytes_fn error, void* context);
LMRUN_SPB_API int lmrun_spb_decode(const lmrun_spb_model* model, const int* ids, size_t count,
                                   lmrun_spb_bytes_fn text, lmrun_spb_bytes_fn error,
                                   void* context);
// The id of the piece `piece` (a user-defined symbol, a control token), or -1 when the model has
// no such piece.
LMRUN_SPB_API int lmrun_spb_piece_id(const lmrun_spb_model* model, const char* piece, size_t size);

LMRUN_SPB_API int lmrun_spb_serialize(const lmrun_spb_model* model, lmrun_spb_bytes_fn proto,
                                      lmrun_spb_bytes_fn error, void* context);

#ifdef __cplusplus
}
#endif
