// Rendering of diagnostics and the "did you mean" helper.
#include "compiler/syntax/diagnostics.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

namespace kiln {
namespace {

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kNote: return "note";
  }
  return "error";
}

// Source lines are shown as they are (UTF-8 included: the parser has validated it), with
// control bytes as '?' and tabs as one space, so each character takes one column.
std::string printable_line(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (unsigned char c : line) {
    if (c == '\t')
      out.push_back(' ');
    else if (c < 0x20 || c == 0x7f)
      out.push_back('?');
    else
      out.push_back(static_cast<char>(c));
  }
  return out;
}

// Characters in a UTF-8 string (bytes that do not continue a sequence).
std::size_t display_width(std::string_view text) {
  std::size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

Diagnostic& Diagnostics::error(Span span, std::string message, std::string hint) {
  add({Severity::kError, span, std::move(message), std::move(hint), {}});
  return kept_.size() <= kMaxKept && dropped_ == 0 ? kept_.back() : overflow_;
}

Diagnostic& Diagnostics::warning(Span span, std::string message, std::string hint) {
  add({Severity::kWarning, span, std::move(message), std::move(hint), {}});
  return kept_.size() <= kMaxKept && dropped_ == 0 ? kept_.back() : overflow_;
}

void Diagnostics::add(Diagnostic diagnostic) {
  if (diagnostic.severity == Severity::kError) ++error_count_;
  if (kept_.size() >= kMaxKept) {
    ++dropped_;
    return;
  }
  kept_.push_back(std::move(diagnostic));
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  std::vector<Diagnostic> out = kept_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.span.file != b.span.file) return a.span.file < b.span.file;
    return a.span.begin < b.span.begin;
  });
  return out;
}

std::string Diagnostics::render(const SourceManager& sources, bool color) const {
  std::string out;
  for (const Diagnostic& d : kept_) out += render_diagnostic(d, sources, color);
  if (dropped_ > 0) {
    out += "kiln: " + std::to_string(dropped_) + " more diagnostic(s) not shown (showing the first " +
           std::to_string(kMaxKept) + ")\n";
  }
  return out;
}

std::string render_diagnostic(const Diagnostic& d, const SourceManager& sources, bool color) {
  const char* bold = color ? "\x1b[1m" : "";
  const char* red = color ? "\x1b[1;31m" : "";
  const char* green = color ? "\x1b[1;32m" : "";
  const char* reset = color ? "\x1b[0m" : "";
  std::string out;
  out += bold + sources.location(d.span) + ": " + reset + red + std::string(severity_name(d.severity)) + ":" + reset +
         " " + bold + d.message + reset + "\n";
  if (d.span.valid() && d.span.file < sources.size()) {
    const SourceFile& file = sources.file(d.span.file);
    LineCol lc = file.line_col(d.span.begin);
    std::string raw(file.line_text(lc.line));
    std::string number = std::to_string(lc.line);
    std::string gutter(number.size(), ' ');
    std::size_t col = std::min<std::size_t>(lc.column - 1, raw.size());
    std::size_t end_col = raw.size();
    if (d.span.end > d.span.begin) {
      LineCol end = file.line_col(d.span.end);
      if (end.line == lc.line) end_col = std::min<std::size_t>(end.column - 1, raw.size());
    } else {
      end_col = std::min(raw.size(), col + 1);
    }
    // Very long lines (generated or minified input) are shown as a window around the caret.
    constexpr std::size_t kWindow = 100;
    std::string prefix, suffix;
    if (raw.size() > kWindow + 20) {
      auto is_continuation = [&](std::size_t i) {
        return i < raw.size() && (static_cast<unsigned char>(raw[i]) & 0xC0) == 0x80;
      };
      std::size_t from = col > kWindow / 2 ? col - kWindow / 2 : 0;
      while (from > 0 && is_continuation(from)) --from;
      std::size_t to = std::min(raw.size(), from + kWindow);
      while (to < raw.size() && is_continuation(to)) ++to;
      if (from > 0) prefix = "...";
      if (to < raw.size()) suffix = "...";
      raw = raw.substr(from, to - from);
      col = std::min(col - from, raw.size());
      end_col = std::min(end_col, to) - from;
    }
    std::string line = prefix + printable_line(raw) + suffix;
    // Carets are placed by characters, not bytes, so they line up under UTF-8 text.
    std::size_t caret_col = prefix.size() + display_width(std::string_view(raw).substr(0, col));
    std::size_t width = end_col > col ? display_width(std::string_view(raw).substr(col, end_col - col)) : 1;
    width = std::max<std::size_t>(1, width);
    out += " " + number + " | " + line + "\n";
    out +=
        " " + gutter + " | " + std::string(caret_col, ' ') + green + "^" + std::string(width - 1, '~') + reset + "\n";
  }
  if (!d.hint.empty()) out += "  hint: " + d.hint + "\n";
  for (const ExpansionStep& step : d.chain) {
    out += "  in layer " + step.layer + " called at " + sources.location(step.call_site) + "\n";
  }
  return out;
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  // A candidate that the word abbreviates or extends (acc -> accuracy, kernel_size ->
  // kernel) beats one that is merely a few edits away.
  if (word.size() >= 3) {
    std::string prefix_match;
    for (const std::string& c : candidates) {
      // "kernel_size" -> "kernel" (a suffix after '_'), not "fully_connected" -> "full".
      bool related =
          (c.size() > word.size() && c.compare(0, word.size(), word) == 0) ||
          (word.size() > c.size() + 1 && c.size() >= 3 && word.compare(0, c.size(), c) == 0 && word[c.size()] == '_');
      if (related && (prefix_match.empty() || c.size() < prefix_match.size())) prefix_match = c;
    }
    if (!prefix_match.empty()) return prefix_match;
  }
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string list_names(const std::vector<std::string>& names, std::size_t limit) {
  constexpr std::size_t kNameChars = 64;
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i > 0) out += ", ";
    out += names[i].size() <= kNameChars ? names[i] : names[i].substr(0, kNameChars) + "...";
  }
  if (names.size() > limit) out += ", ... (" + std::to_string(names.size() - limit) + " more)";
  return out;
}

}  // namespace kiln
