// The JSON-lines record grammar of json_record.h. tools/kiln/build_command.cpp generates
// the same parser in C for an artifact's predictor (parse_object there): a change here is a
// change there, and fuzz_artifact_reader.py runs the two side by side.
#include "runtime/data/json_record.h"

#include <cstdint>

namespace kiln::data {
namespace {

// The reasons, word for word the generated C's.
constexpr const char* kNotObject = "expected '{': a record is one JSON object";
constexpr const char* kKey = "expected a string key";
constexpr const char* kColon = "expected ':' after the key";
constexpr const char* kValue = "expected a value: a string, a number, true, false, null or an array of them";
constexpr const char* kNested = "a nested object or array: values are scalars or arrays of scalars";
constexpr const char* kAfterMember = "expected ',' or '}' after a value";
constexpr const char* kAfterElement = "expected ',' or ']' after an array element";
constexpr const char* kNumber = "not a JSON number";
constexpr const char* kUnterminated = "unterminated string";
constexpr const char* kControl = "a control character in a string (JSON escapes it, e.g. \\t)";
constexpr const char* kEscape = "not a JSON escape";
constexpr const char* kUnicode = "a \\u escape that is not 4 hex digits, is \\u0000 or an unpaired surrogate";
constexpr const char* kTrailing = "text after the object";
constexpr const char* kNul = "a NUL byte";

class Parser {
 public:
  Parser(std::string_view line, std::vector<JsonCell>& cells) : s_(line), cells_(cells) {}

  std::optional<JsonRecordError> record() {
    cells_.clear();
    ws();
    if (peek() != '{') return fail(kNotObject);
    ++at_;
    ws();
    if (peek() == '}') {
      ++at_;
      return end();
    }
    for (;;) {
      ws();
      std::string key;
      if (peek() != '"') return fail(kKey);
      if (!string(key)) return error_;
      ws();
      if (peek() != ':') return fail(kColon);
      ++at_;
      ws();
      if (peek() == '[') {
        ++at_;
        ws();
        std::size_t n = 0;
        if (peek() == ']') {
          ++at_;
        } else {
          for (;;) {
            JsonCell cell;
            cell.key = key + "_" + std::to_string(n++);
            if (!scalar(cell)) return error_;
            cells_.push_back(std::move(cell));
            ws();
            if (peek() == ',') {
              ++at_;
              ws();
              continue;
            }
            if (peek() == ']') {
              ++at_;
              break;
            }
            return fail(kAfterElement);
          }
        }
      } else {
        JsonCell cell;
        cell.key = std::move(key);
        if (!scalar(cell)) return error_;
        cells_.push_back(std::move(cell));
      }
      ws();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      if (peek() == '}') {
        ++at_;
        return end();
      }
      return fail(kAfterMember);
    }
  }

 private:
  // The byte at the cursor; 0 at the end of the line (a NUL byte inside it is an error
  // wherever the grammar meets it: see fail).
  char peek() const { return at_ < s_.size() ? s_[at_] : '\0'; }

  std::optional<JsonRecordError> fail(const char* reason) {
    error_ = JsonRecordError{at_ + 1, at_ < s_.size() && s_[at_] == '\0' ? kNul : reason};
    return error_;
  }
  bool fail_bool(const char* reason) {
    fail(reason);
    return false;
  }

  void ws() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\r' || s_[at_] == '\n')) ++at_;
  }

  std::optional<JsonRecordError> end() {
    ws();
    if (at_ < s_.size()) return fail(kTrailing);
    return std::nullopt;
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Four hex digits at the cursor (consumed), or -1 (the cursor where it stopped).
  long hex4() {
    long u = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = hex(peek());
      if (d < 0) return -1;
      u = u * 16 + d;
      ++at_;
    }
    return u;
  }

  static void utf8(std::string& out, std::uint32_t u) {
    if (u < 0x80) {
      out += static_cast<char>(u);
    } else if (u < 0x800) {
      out += static_cast<char>(0xC0 | (u >> 6));
      out += static_cast<char>(0x80 | (u & 0x3F));
    } else if (u < 0x10000) {
      out += static_cast<char>(0xE0 | (u >> 12));
      out += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (u & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (u >> 18));
      out += static_cast<char>(0x80 | ((u >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (u & 0x3F));
    }
  }

  // A string at the cursor (its opening quote) into `out`.
  bool string(std::string& out) {
    ++at_;
    for (;;) {
      if (at_ >= s_.size()) return fail_bool(kUnterminated);
      const char c = s_[at_];
      if (c == '"') {
        ++at_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return fail_bool(kControl);  // NUL included: fail names it
      if (c != '\\') {
        out += c;
        ++at_;
        continue;
      }
      ++at_;
      const char e = peek();
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const std::size_t escape = at_ - 1;
          ++at_;
          long u = hex4();
          if (u >= 0xD800 && u < 0xDC00 && peek() == '\\' && at_ + 1 < s_.size() && s_[at_ + 1] == 'u') {
            at_ += 2;
            const long low = hex4();
            u = low >= 0xDC00 && low < 0xE000 ? 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00) : -1;
          }
          if (u <= 0 || (u >= 0xD800 && u < 0xE000)) {
            at_ = escape;
            return fail_bool(kUnicode);
          }
          utf8(out, static_cast<std::uint32_t>(u));
          continue;  // hex4 moved the cursor past the digits
        }
        default:
          if (at_ >= s_.size()) return fail_bool(kUnterminated);
          --at_;  // at the backslash
          return fail_bool(kEscape);
      }
      ++at_;
    }
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }
  static bool word_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || digit(c) || c == '_'; }

  // Whether s is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  static bool json_number(std::string_view s) {
    std::size_t i = 0;
    const auto digits = [&] {
      const std::size_t from = i;
      while (i < s.size() && digit(s[i])) ++i;
      return i > from;
    };
    if (i < s.size() && s[i] == '-') ++i;
    if (i < s.size() && s[i] == '0') {
      ++i;
    } else if (!digits()) {
      return false;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      if (!digits()) return false;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (!digits()) return false;
    }
    return i == s.size();
  }

  bool scalar(JsonCell& cell) {
    const char c = peek();
    if (c == '"') return string(cell.text);
    if (c == '{' || c == '[') return fail_bool(kNested);
    const std::size_t start = at_;
    if (digit(c) || c == '-' || c == '+' || c == '.') {
      // The whole run of number characters is the token, so that 01, 1. and 1e are
      // refused as numbers rather than cut short.
      while (at_ < s_.size() &&
             (digit(s_[at_]) || s_[at_] == '-' || s_[at_] == '+' || s_[at_] == '.' || s_[at_] == 'e' || s_[at_] == 'E'))
        ++at_;
      const std::string_view token = s_.substr(start, at_ - start);
      if (!json_number(token)) {
        at_ = start;
        return fail_bool(kNumber);
      }
      cell.text = token;
      return true;
    }
    while (at_ < s_.size() && word_char(s_[at_])) ++at_;
    const std::string_view word = s_.substr(start, at_ - start);
    if (word == "true" || word == "false") {
      cell.text = word;
      return true;
    }
    if (word == "null") {
      cell.null = true;
      return true;
    }
    at_ = start;
    return fail_bool(kValue);
  }

  std::string_view s_;
  std::vector<JsonCell>& cells_;
  std::size_t at_ = 0;
  std::optional<JsonRecordError> error_;
};

}  // namespace

std::optional<JsonRecordError> parse_json_record(std::string_view line, std::vector<JsonCell>& cells) {
  return Parser(line, cells).record();
}

std::string describe(const JsonRecordError& e) {
  return "not a JSON record at column " + std::to_string(e.column) + ": " + e.reason;
}

}  // namespace kiln::data
