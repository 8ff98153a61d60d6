// Diagnostics for people: `file:line:col: error: message`, the source line, a caret under
// the span, a hint, and the chain of layer expansions that led there. User errors are
// values collected here; they never abort the process.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "compiler/syntax/source.h"

namespace kiln {

enum class Severity : unsigned char { kError, kWarning, kNote };

// "in layer nn.dense called at model.kiln:7:9"
struct ExpansionStep {
  std::string layer;
  Span call_site;
};

struct Diagnostic {
  Severity severity = Severity::kError;
  Span span;
  std::string message;
  std::string hint;
  std::vector<ExpansionStep> chain;  // innermost call first
};

class Diagnostics {
 public:
  // Past this many errors the rest are counted but not kept: one bad file must not
  // flood a terminal.
  static constexpr std::size_t kMaxKept = 50;

  Diagnostic& error(Span span, std::string message, std::string hint = {});
  Diagnostic& warning(Span span, std::string message, std::string hint = {});
  void add(Diagnostic diagnostic);

  bool has_errors() const { return error_count_ > 0; }
  std::size_t error_count() const { return error_count_; }
  const std::vector<Diagnostic>& all() const { return kept_; }
  // Sorted by file and offset, stable for diagnostics at one place.
  std::vector<Diagnostic> sorted() const;

  // Renders every kept diagnostic, plus a line for dropped ones.
  std::string render(const SourceManager& sources, bool color = false) const;

 private:
  std::vector<Diagnostic> kept_;
  Diagnostic overflow_;  // absorbs writes past kMaxKept
  std::size_t error_count_ = 0;
  std::size_t dropped_ = 0;
};

std::string render_diagnostic(const Diagnostic& diagnostic, const SourceManager& sources, bool color = false);

// The closest candidate by edit distance, or "" when none is close enough
// (for "did you mean ...?" hints).
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// Names for a message: the first `limit`, each cut short past 64 characters, then
// ", ... (N more)" (a wide CSV header has hundreds of thousands).
std::string list_names(const std::vector<std::string>& names, std::size_t limit);

}  // namespace kiln
