// Node attributes and numpy-style broadcasting. Attributes print in a fixed order and
// floats round-trip through text, so IR dumps are stable, diffable golden files.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "compiler/ir/ops.h"

namespace kiln::ir {
namespace {

// Shortest of %.15g / %.17g that reads back to the same double; always looks like a
// float ("1.0", not "1") so a dump tells float attributes from int ones.
std::string float_to_string(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string out = buf;
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

template <class T, class F>
std::string list_to_string(const std::vector<T>& values, F&& one) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += one(values[i]);
  }
  return out + "]";
}

}  // namespace

void Attrs::set(std::string name, AttrValue value) {
  auto it = std::lower_bound(items_.begin(), items_.end(), name,
                             [](const Attr& a, const std::string& n) { return a.name < n; });
  if (it != items_.end() && it->name == name) {
    it->value = std::move(value);
  } else {
    items_.insert(it, Attr{std::move(name), std::move(value)});
  }
}

const AttrValue* Attrs::find(std::string_view name) const {
  auto it = std::lower_bound(items_.begin(), items_.end(), name,
                             [](const Attr& a, std::string_view n) { return a.name < n; });
  return it != items_.end() && it->name == name ? &it->value : nullptr;
}

std::int64_t Attrs::get_int(std::string_view name, std::int64_t fallback) const {
  const AttrValue* v = find(name);
  const auto* i = v ? std::get_if<std::int64_t>(v) : nullptr;
  return i ? *i : fallback;
}

double Attrs::get_float(std::string_view name, double fallback) const {
  const AttrValue* v = find(name);
  if (v == nullptr) return fallback;
  if (const auto* d = std::get_if<double>(v)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(v)) return static_cast<double>(*i);
  return fallback;
}

bool Attrs::get_bool(std::string_view name, bool fallback) const {
  const AttrValue* v = find(name);
  const auto* b = v ? std::get_if<bool>(v) : nullptr;
  return b ? *b : fallback;
}

std::string Attrs::get_string(std::string_view name, std::string fallback) const {
  const AttrValue* v = find(name);
  const auto* s = v ? std::get_if<std::string>(v) : nullptr;
  return s ? *s : fallback;
}

std::vector<std::int64_t> Attrs::get_ints(std::string_view name) const {
  const AttrValue* v = find(name);
  const auto* ints = v ? std::get_if<std::vector<std::int64_t>>(v) : nullptr;
  return ints ? *ints : std::vector<std::int64_t>{};
}

bool Attrs::operator==(const Attrs& other) const {
  return std::equal(items_.begin(), items_.end(), other.items_.begin(), other.items_.end(),
                    [](const Attr& a, const Attr& b) { return a.name == b.name && a.value == b.value; });
}

std::string attr_value_to_string(const AttrValue& value) {
  struct Printer {
    std::string operator()(std::int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return float_to_string(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return quote(v); }
    std::string operator()(const std::vector<std::int64_t>& v) const {
      return list_to_string(v, [](std::int64_t x) { return std::to_string(x); });
    }
    std::string operator()(const std::vector<double>& v) const { return list_to_string(v, float_to_string); }
  };
  return std::visit(Printer{}, value);
}

std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.rank(), b.rank());
  std::vector<Dim> out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    // Right-aligned: a missing leading dimension acts as a static 1.
    const Dim da = i < a.rank() ? a.dims[a.rank() - 1 - i] : Dim::of(1);
    const Dim db = i < b.rank() ? b.dims[b.rank() - 1 - i] : Dim::of(1);
    Dim d;
    if (da == db) {
      d = da;
    } else if (da == Dim::of(1)) {
      d = db;
    } else if (db == Dim::of(1)) {
      d = da;
    } else {
      return std::nullopt;
    }
    out[rank - 1 - i] = d;
  }
  return Shape(std::move(out));
}

}  // namespace kiln::ir
