// Strict UTF-8 (RFC 3629) for plugins that read text: decoding one code point at a time, encoding
// one, finding the first invalid byte, and saying precisely why a byte sequence is not UTF-8.
//
//   std::size_t bad = lmrun::utf8::find_invalid(text);   // npos when the text is valid
//   if (bad != std::string_view::npos) throw lmrun::Error(lmrun::utf8::why_invalid(text, bad));
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace lmrun::utf8 {

inline constexpr char32_t kInvalid = 0xFFFFFFFF;
inline constexpr char32_t kMaxCodePoint = 0x10FFFF;

// Decodes the code point that starts at text[pos] and moves `pos` past it. On a malformed
// sequence returns kInvalid and leaves `pos` where it was. Requires pos < text.size().
inline char32_t decode(std::string_view text, std::size_t& pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char lead = s[pos];
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  std::size_t length;
  char32_t cp;
  char32_t smallest;  // below it the sequence is overlong
  if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1F, smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0F, smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07, smallest = 0x10000;
  } else {
    return kInvalid;
  }
  if (text.size() - pos < length) return kInvalid;
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char next = s[pos + i];
    if ((next & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (next & 0x3F);
  }
  if (cp < smallest || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  pos += length;
  return cp;
}

// Byte offset of the first byte that is not strict UTF-8, or std::string_view::npos.
inline std::size_t find_invalid(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = pos;
    if (decode(text, pos) == kInvalid) return start;
  }
  return std::string_view::npos;
}

// The text with each byte that is not strict UTF-8 replaced by U+FFFD (one per byte), so that it
// can be written where UTF-8 is required (JSON).
inline std::string replace_invalid(std::string_view text) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = pos;
    if (decode(text, pos) == kInvalid) {
      out += "\xEF\xBF\xBD";
      pos = start + 1;
    } else {
      out.append(text.substr(start, pos - start));
    }
  }
  return out;
}

inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline std::string encode(char32_t cp) {
  std::string out;
  append(out, cp);
  return out;
}

// "U+00E9".
inline std::string code_point_name(char32_t cp) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "U+%04X", static_cast<unsigned>(cp));
  return buffer;
}

// True for characters that print as themselves in a message or a file line (not controls,
// not spaces, not the C1 block).
inline bool is_visible(char32_t cp) {
  return cp > 0x20 && cp != 0x7F && !(cp >= 0x80 && cp <= 0xA0) && cp != 0xFEFF;
}

// Why decode() refused the sequence at text[pos]: "byte 0xFF never occurs in UTF-8", ...
inline std::string why_invalid(std::string_view text, std::size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  char buffer[96];
  const unsigned char lead = s[pos];
  if ((lead & 0xC0) == 0x80) {
    std::snprintf(buffer, sizeof buffer, "continuation byte 0x%02X without a lead byte", lead);
  } else if (lead >= 0xF8) {
    std::snprintf(buffer, sizeof buffer, "byte 0x%02X never occurs in UTF-8", lead);
  } else {
    const std::size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    std::size_t i = 1;
    while (i < length && pos + i < text.size() && (s[pos + i] & 0xC0) == 0x80) ++i;
    if (i < length && pos + i >= text.size()) {
      std::snprintf(buffer, sizeof buffer,
                    "lead byte 0x%02X starts a %zu-byte sequence cut off "
                    "by the end of the text",
                    lead, length);
    } else if (i < length) {
      std::snprintf(buffer, sizeof buffer,
                    "lead byte 0x%02X followed by 0x%02X, not a "
                    "continuation byte",
                    lead, s[pos + i]);
    } else {
      std::snprintf(buffer, sizeof buffer,
                    "overlong encoding, surrogate or code point beyond "
                    "U+10FFFF (lead byte 0x%02X)",
                    lead);
    }
  }
  return buffer;
}

}  // namespace lmrun::utf8
