// The `char` tokenizer: code points <-> ids through a flat table for the Basic Multilingual Plane,
// so encoding a megabyte of text is one pass with one load per character.
#include "char_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/util/files.h"
#include "lmrun/util/utf8.h"
#include "lmrun/version.h"

namespace lmrun::tokenizers {

const std::vector<std::string> CharTokenizer::kSpecialTokens = {"<pad>", "<bos>", "<eos>", "<unk>"};

namespace {

constexpr const char* kWho = "tokenizer 'char': ";
constexpr const char* kMagic = "lmrun char tokenizer";
constexpr std::size_t kBmpSize = 0x10000;

Error invalid_utf8(const std::string& source, std::string_view text, std::size_t offset) {
  return Error(source + " is not valid UTF-8 at byte offset " + std::to_string(offset) + ": " +
                   utf8::why_invalid(text, offset),
               "lmrun reads text as UTF-8; convert the file first (e.g. iconv -t UTF-8)");
}

// The distinct code points of `text`, in increasing order. `source` names the text in errors.
std::vector<char32_t> distinct_code_points(std::string_view text, const std::string& source) {
  std::vector<bool> seen(utf8::kMaxCodePoint + 1, false);
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = pos;
    const char32_t cp = utf8::decode(text, pos);
    if (cp == utf8::kInvalid) throw invalid_utf8(source, text, start);
    seen[cp] = true;
  }
  std::vector<char32_t> out;
  for (char32_t cp = 0; cp <= utf8::kMaxCodePoint; ++cp) {
    if (seen[cp]) out.push_back(cp);
  }
  return out;
}

// Special tokens must come from kSpecialTokens, each at most once.
void check_specials(const std::vector<std::string>& specials, const std::string& where) {
  const auto& allowed = CharTokenizer::kSpecialTokens;
  for (std::size_t i = 0; i < specials.size(); ++i) {
    if (std::find(allowed.begin(), allowed.end(), specials[i]) == allowed.end()) {
      throw Error(where + "unknown special token \"" + specials[i] + "\"",
                  "special_tokens may hold \"<pad>\", \"<bos>\", \"<eos>\" and \"<unk>\"");
    }
    if (std::find(specials.begin(), specials.begin() + i, specials[i]) != specials.begin() + i) {
      throw Error(where + "special token \"" + specials[i] + "\" is listed twice",
                  "list each special token once");
    }
  }
}

// Markup tokens are one line each in the saved file, and each must be findable in a text.
void check_markup(const std::vector<std::string>& markup, const std::string& where) {
  for (std::size_t i = 0; i < markup.size(); ++i) {
    if (markup[i].empty()) {
      throw Error(where + "the dataset's special token " + std::to_string(i) + " is empty",
                  "a special token is a non-empty piece of text such as \"|end|\"");
    }
    if (markup[i].find_first_of("\r\n") != std::string::npos) {
      throw Error(
          where + "the dataset's special token \"" + markup[i] + "\" holds a line break",
          "the char tokenizer keeps special tokens one per line: choose tokens without one");
    }
    if (std::find(markup.begin(), markup.begin() + i, markup[i]) != markup.begin() + i) {
      throw Error(where + "the dataset's special token \"" + markup[i] + "\" is listed twice",
                  "list each special token once");
    }
    if (utf8::find_invalid(markup[i]) != std::string_view::npos) {
      throw Error(where + "the dataset's special token \"" + markup[i] + "\" is not UTF-8");
    }
  }
}

std::string read_whole_file(const std::filesystem::path& path) {
  return read_file(path, "check the file's permissions");  // a regular file only: never a FIFO
}

// Reads the saved file line by line; every failure names the file and the line.
class LineReader {
 public:
  LineReader(const std::string& text, std::filesystem::path file) : file_(std::move(file)) {
    std::size_t begin = 0;
    while (begin < text.size()) {
      std::size_t end = text.find('\n', begin);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(begin, end - begin);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines_.push_back(std::move(line));
      begin = end + 1;
    }
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw Error(std::string(kWho) + file_.string() + " line " + std::to_string(next_) + ": " + why,
                "the saved tokenizer is damaged; fit the tokenizer again (or restore the file)");
  }

  // The next line; `expected` says what it should hold, for the error at the end of the file.
  const std::string& next(const std::string& expected) {
    if (next_ >= lines_.size()) {
      ++next_;
      fail("expected " + expected + ", found the end of the file (is it truncated?)");
    }
    return lines_[next_++];
  }

  // The value of a "key value" line.
  std::string field(const std::string& key) {
    const std::string& line = next("\"" + key + " ...\"");
    if (line.compare(0, key.size() + 1, key + " ") != 0) {
      fail("expected \"" + key + " ...\", found \"" + line + "\"");
    }
    return line.substr(key.size() + 1);
  }

  // A "key N" line with 0 <= N <= max.
  std::size_t count(const std::string& key, std::size_t max) {
    const std::string value = field(key);
    std::size_t used = 0;
    unsigned long long n = 0;
    try {
      n = std::stoull(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != value.size() || n > max) {
      fail("\"" + key + "\" must be a whole number up to " + std::to_string(max) + ", found \"" +
           value + "\"");
    }
    return static_cast<std::size_t>(n);
  }

  bool at_end() const { return next_ >= lines_.size(); }

 private:
  std::filesystem::path file_;
  std::vector<std::string> lines_;
  std::size_t next_ = 0;  // 0-based index of the next line = 1-based number of the last one read
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction and the vocabulary

CharTokenizer::CharTokenizer(const CharOptions& options, std::vector<std::string> markup) {
  check_specials(options.special_tokens, "");
  check_markup(markup, "");
  specials_ = options.special_tokens;
  markup_ = std::move(markup);
  markup_split_ = MarkupSplit(markup_);
  if (options.vocab.empty()) return;
  const std::filesystem::path& file = options.vocab;
  const std::string problem = regular_file_problem(file);  // a FIFO would block the read
  if (!problem.empty()) {
    throw Error("vocab file " + file.string() + " " + problem,
                "set `vocab` to a UTF-8 text file holding the vocabulary's characters, or leave "
                "it out to fit the vocabulary on the training text");
  }
  const std::string text = read_whole_file(file);
  if (text.empty()) {
    throw Error("vocab file " + file.string() + " is empty",
                "write the vocabulary's characters into it, or leave `vocab` out");
  }
  build(specials_, markup_, distinct_code_points(text, "vocab file " + file.string()));
  from_vocab_file_ = true;
}

void CharTokenizer::build(std::vector<std::string> specials, std::vector<std::string> markup,
                          std::vector<char32_t> characters) {
  specials_ = std::move(specials);
  markup_ = std::move(markup);
  markup_split_ = MarkupSplit(markup_);
  characters_ = std::move(characters);
  pieces_ = specials_;
  // A markup token that is one of the own special tokens shares its id; the others follow them.
  markup_ids_.clear();
  n_added_ = 0;
  for (const auto& token : markup_) {
    const auto own = std::find(specials_.begin(), specials_.end(), token);
    if (own != specials_.end()) {
      markup_ids_.push_back(own - specials_.begin());
    } else {
      markup_ids_.push_back(static_cast<std::int64_t>(specials_.size()) + n_added_++);
      pieces_.push_back(token);
    }
  }
  const auto n_special = static_cast<std::size_t>(first_character_id());
  bmp_ids_.assign(kBmpSize, -1);
  astral_ids_.clear();
  pieces_.reserve(n_special + characters_.size());
  for (std::size_t i = 0; i < characters_.size(); ++i) {
    const char32_t cp = characters_[i];
    const auto id = static_cast<std::int32_t>(n_special + i);
    if (cp < kBmpSize) {
      bmp_ids_[cp] = id;
    } else {
      astral_ids_[cp] = id;
    }
    pieces_.push_back(utf8::encode(cp));
  }
  unk_id_ = special_id("<unk>");
  ready_ = true;
}

void CharTokenizer::require_vocabulary(const char* what) const {
  if (!ready_) {
    throw Error(std::string(kWho) + "cannot " + what + " before the tokenizer has a vocabulary",
                "call fit() on the training text or load() a saved tokenizer first");
  }
}

void CharTokenizer::fit(std::string_view text) {
  if (from_vocab_file_) return;  // the `vocab` file is the vocabulary
  if (text.empty()) {
    throw Error(std::string(kWho) + "cannot fit on an empty text",
                "check the dataset: its training split holds no text");
  }
  try {
    // Markup tokens are ids of their own: their characters are not the text's.
    build(specials_, markup_,
          distinct_code_points(markup_split_.ordinary_text(text, ""), "the training text"));
  } catch (const Error& e) {
    throw e.with_context("tokenizer 'char'");
  }
}

std::int64_t CharTokenizer::vocab_size() const {
  return first_character_id() + static_cast<std::int64_t>(characters_.size());
}

std::int64_t CharTokenizer::special_id(std::string_view token) const {
  for (std::size_t i = 0; i < specials_.size(); ++i) {
    if (specials_[i] == token) return static_cast<std::int64_t>(i);
  }
  for (std::size_t i = 0; i < markup_.size() && i < markup_ids_.size(); ++i) {
    if (markup_[i] == token) return markup_ids_[i];
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding

std::int64_t CharTokenizer::id_of(char32_t cp) const {
  if (cp < kBmpSize) return bmp_ids_[cp];
  auto it = astral_ids_.find(cp);
  return it == astral_ids_.end() ? -1 : it->second;
}

std::int64_t CharTokenizer::unknown(std::size_t offset, char32_t cp) const {
  if (unk_id_ >= 0) return unk_id_;
  std::string shown = utf8::code_point_name(cp);
  if (utf8::is_visible(cp)) shown += " '" + utf8::encode(cp) + "'";
  throw Error(std::string(kWho) + "character " + shown + " at byte offset " +
                  std::to_string(offset) + " is not in the vocabulary (" +
                  std::to_string(characters_.size()) + " characters)",
              "fit the tokenizer on text that contains it, or add \"<unk>\" to the tokenizer's "
              "special_tokens so that unknown characters map to it");
}

std::vector<std::int64_t> CharTokenizer::encode(std::string_view text) const {
  require_vocabulary("encode");
  std::vector<std::int64_t> ids;
  ids.reserve(text.size());  // at most one id per byte
  if (markup_split_.empty()) {
    encode_characters(text, 0, text.size(), ids);
    return ids;
  }
  markup_split_.split(
      text,
      [&](std::string_view piece) {
        const auto begin = static_cast<std::size_t>(piece.data() - text.data());
        encode_characters(text, begin, begin + piece.size(), ids);
      },
      [&](std::size_t token) { ids.push_back(markup_ids_[token]); });
  return ids;
}

void CharTokenizer::encode_characters(std::string_view text, std::size_t begin, std::size_t end,
                                      std::vector<std::int64_t>& ids) const {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::int32_t* bmp = bmp_ids_.data();
  std::size_t pos = begin;
  while (pos < end) {
    const std::size_t start = pos;
    char32_t cp = bytes[pos];
    if (cp < 0x80) {
      ++pos;  // ASCII: most of any English corpus
    } else {
      cp = utf8::decode(text, pos);
      if (cp == utf8::kInvalid)
        throw invalid_utf8(std::string(kWho) + "the text to encode", text, start);
    }
    std::int64_t id = cp < kBmpSize ? bmp[cp] : id_of(cp);
    if (id < 0) id = unknown(start, cp);
    ids.push_back(id);
  }
}

std::string CharTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  require_vocabulary("decode");
  const std::int64_t size = vocab_size();
  std::string text;
  text.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int64_t id = ids[i];
    if (id < 0 || id >= size) {
      throw Error(std::string(kWho) + "cannot decode id " + std::to_string(id) + " at position " +
                      std::to_string(i) + ": ids run from 0 to " + std::to_string(size - 1),
                  "the ids come from a model whose vocabulary differs from this tokenizer's");
    }
    text += pieces_[static_cast<std::size_t>(id)];
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Saving and loading: one text file,
//
//   lmrun char tokenizer
//   format_version 2   1 when there are no markup tokens (and no "markup_tokens" section)
//   lmrun_version 0.1.0
//   plugin char 0.1.0
//   special_tokens 1
//   <unk>
//   markup_tokens 2    the dataset's special tokens, one per line
//   |user|
//   |end|
//   characters 3
//   000A               one code point per line, in hex, then the character itself if visible
//   0041 A
//   00E9 é
//   end

void CharTokenizer::save(const std::filesystem::path& folder) const {
  require_vocabulary("save");
  // Version 1 when there is nothing of version 2's to write, so older builds read it.
  const int version = markup_.empty() ? 1 : kFormatVersion;
  std::string text = std::string(kMagic) + "\nformat_version " + std::to_string(version) +
                     "\nlmrun_version " + kVersion + "\nplugin char " + kPluginVersion + "\n";
  text += "special_tokens " + std::to_string(specials_.size()) + "\n";
  for (const auto& token : specials_) text += token + "\n";
  if (!markup_.empty()) {
    text += "markup_tokens " + std::to_string(markup_.size()) + "\n";
    for (const auto& token : markup_) text += token + "\n";
  }
  text += "characters " + std::to_string(characters_.size()) + "\n";
  for (char32_t cp : characters_) {
    text += utf8::code_point_name(cp).substr(2);
    if (utf8::is_visible(cp)) text += " " + utf8::encode(cp);
    text += "\n";
  }
  text += "end\n";

  write_file_atomic(folder / kFileName, text);
}

void CharTokenizer::load(const std::filesystem::path& folder) {
  const std::filesystem::path file = saved_tokenizer_file(folder, kFileName, kWho);
  LineReader reader(read_whole_file(file), file);
  if (reader.next("\"" + std::string(kMagic) + "\"") != kMagic) {
    reader.fail("not a char tokenizer file (the first line is not \"" + std::string(kMagic) +
                "\")");
  }
  const std::size_t version = reader.count("format_version", 1000000);
  if (version > static_cast<std::size_t>(kFormatVersion)) {
    throw Error(std::string(kWho) + file.string() + " has format version " +
                    std::to_string(version) + ", newer than this build reads (" +
                    std::to_string(kFormatVersion) + "; lmrun " + kVersion + ")",
                "the file comes from a newer lmrun: upgrade lmrun, or fit the tokenizer again");
  }
  if (version < 1) reader.fail("format version 0 does not exist");
  reader.field("lmrun_version");
  reader.field("plugin");

  std::vector<std::string> specials(reader.count("special_tokens", kSpecialTokens.size()));
  for (auto& token : specials) token = reader.next("a special token");
  try {
    check_specials(specials, "");
  } catch (const Error& e) {
    reader.fail(e.what());
  }
  std::vector<std::string> markup;
  if (version >= 2) {
    markup.resize(reader.count("markup_tokens", 1000000));
    for (auto& token : markup) token = reader.next("a markup token");
    try {
      check_markup(markup, "");
    } catch (const Error& e) {
      reader.fail(e.what());
    }
  }

  std::vector<char32_t> characters(reader.count("characters", utf8::kMaxCodePoint + 1));
  for (std::size_t i = 0; i < characters.size(); ++i) {
    const std::string& line = reader.next("a code point");
    std::size_t used = 0;
    unsigned long cp = utf8::kInvalid;
    try {
      cp = std::stoul(line, &used, 16);
    } catch (const std::exception&) {
      used = 0;
    }
    const std::string rest = line.substr(used);
    const bool valid_cp = used >= 4 && std::isxdigit(static_cast<unsigned char>(line[0])) &&
                          cp <= utf8::kMaxCodePoint && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!valid_cp || (!rest.empty() && rest != " " + utf8::encode(static_cast<char32_t>(cp)))) {
      reader.fail(
          "expected a code point in hex, optionally followed by a space and the "
          "character, found \"" +
          line + "\"");
    }
    if (i > 0 && cp <= characters[i - 1]) reader.fail("code points are not in increasing order");
    characters[i] = static_cast<char32_t>(cp);
  }
  if (reader.next("\"end\"") != "end") reader.fail("expected \"end\" after the last code point");
  if (!reader.at_end()) {
    reader.next("");
    reader.fail("unexpected text after \"end\"");
  }
  if (specials.empty() && markup.empty() && characters.empty())
    reader.fail("the vocabulary is empty");
  build(std::move(specials), std::move(markup), std::move(characters));
}

// ---------------------------------------------------------------------------------------------
// Registration

namespace {

Schema<CharOptions> char_schema() {
  Schema<CharOptions> schema;
  schema
      .add("special_tokens", &CharOptions::special_tokens,
           "special tokens, given ids 0..n-1 in this order before the characters")
      .choices(CharTokenizer::kSpecialTokens);
  schema
      .add("vocab", &CharOptions::vocab,
           "UTF-8 file whose characters are the vocabulary; empty: fit on the training text")
      .input_file();
  return schema;
}

void register_char(Registry& registry) {
  registry.add<Tokenizer>("char", "one token per Unicode character (code point)", char_schema(),
                          [](const CharOptions& options, const TokenizerContext& context) {
                            return std::make_shared<CharTokenizer>(options, context.special_tokens);
                          });
}

}  // namespace
}  // namespace lmrun::tokenizers

LMRUN_PLUGIN("char", lmrun::tokenizers::CharTokenizer::kPluginVersion,
             lmrun::tokenizers::register_char)
