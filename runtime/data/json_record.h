// One record of a JSON-lines file, as `kiln predict --input FILE.jsonl` reads it and as an
// artifact's standalone predictor (kiln build, NAME_main.c) reads it: the two follow this
// one grammar, so that serving and checking accept and refuse the same lines.
//
// A line is one JSON object (RFC 8259, strictly: no trailing commas, no comments, no bare
// words, no NaN or Infinity) whose values are scalars or arrays of scalars:
//
//   record := ws '{' ws [member (ws ',' ws member)*] ws '}' ws
//   member := string ws ':' ws (scalar | '[' ws [scalar (ws ',' ws scalar)*] ws ']')
//   scalar := string | number | true | false | null
//   ws     := (' ' | '\t' | '\r' | '\n')*
//
// A record maps keys to cells, as a CSV header maps names to fields: a string's cell is
// its text (escapes decoded to UTF-8), a number's the number as written, true and false the
// words; null is a missing cell. An array KEY: [a, b, ...] gives the cells KEY_0, KEY_1, ...
// (an image is {"pixels": [...]}, as a CSV of pixels has columns pixels_0 ...). When a key
// comes twice the last wins. Control characters inside a string must be escaped; \u0000
// and unpaired surrogates are refused (cells are C strings in the artifact).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::data {

struct JsonCell {
  std::string key;
  std::string text;
  bool null = false;  // a missing cell
};

struct JsonRecordError {
  std::size_t column = 0;  // 1-based byte column where the line stops being a record
  std::string reason;      // what was expected there
};

// Parses one line (without its '\n'; a '\r' before it is white space) into `cells`, in
// the order of the line. Returns the error for a line that is not a record.
std::optional<JsonRecordError> parse_json_record(std::string_view line, std::vector<JsonCell>& cells);

// The message for a line that is not a record, as both readers print it after
// "FILE:LINE: skipped: ".
std::string describe(const JsonRecordError& e);

}  // namespace kiln::data
