// Checking the type of a value read from a JSON file (a run's pipeline.json, a checkpoint's
// manifest) before Kiln reads it, so that a file of the wrong form gets a message naming the
// field ("columns[2].width is string; expected an integer") instead of the JSON library's
// exception text.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace kiln::data {

enum class JsonKind { kInteger, kUnsigned, kNumber, kString, kBool, kObject, kArray };

// An integer is a number without a fraction that fits std::int64_t; an unsigned one is also
// not negative.
inline bool json_is(const nlohmann::json& v, JsonKind kind) {
  switch (kind) {
    case JsonKind::kInteger:
      return v.is_number_integer() && !(v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX);
    case JsonKind::kUnsigned: return v.is_number_unsigned();
    case JsonKind::kNumber: return v.is_number();
    case JsonKind::kString: return v.is_string();
    case JsonKind::kBool: return v.is_boolean();
    case JsonKind::kObject: return v.is_object();
    case JsonKind::kArray: return v.is_array();
  }
  return false;
}

// Empty when `v` is of `kind`, else "WHERE is TYPE; expected KIND".
inline std::string json_kind_problem(const nlohmann::json& v, JsonKind kind, const std::string& where) {
  static const char* const kExpected[] = {
      "an integer", "a non-negative integer", "a number", "a string", "true or false", "an object", "an array"};
  if (json_is(v, kind)) return {};
  return where + " is " + v.type_name() + "; expected " + kExpected[static_cast<int>(kind)];
}

// The path of member `key` of the value at `where` ("" for the document itself).
inline std::string json_path(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}

}  // namespace kiln::data
