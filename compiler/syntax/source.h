// Source files and spans. Every AST node and every Graph IR value carries a Span,
// so an error found late (a shape mismatch deep inside a stdlib layer) still points
// at the `.kiln` text that caused it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

using FileId = std::uint32_t;
inline constexpr FileId kNoFile = ~FileId{0};

// A half-open byte range [begin, end) in one source file.
struct Span {
  FileId file = kNoFile;
  std::uint32_t begin = 0;
  std::uint32_t end = 0;

  bool valid() const { return file != kNoFile; }
};

struct LineCol {
  std::uint32_t line = 0;    // 1-based
  std::uint32_t column = 0;  // 1-based, in bytes
};

class SourceFile {
 public:
  SourceFile(std::string path, std::string text);
  const std::string& path() const { return path_; }
  const std::string& text() const { return text_; }
  LineCol line_col(std::uint32_t offset) const;
  // The text of 1-based line `line`, without its newline.
  std::string_view line_text(std::uint32_t line) const;

 private:
  std::string path_;
  std::string text_;
  std::vector<std::uint32_t> line_starts_;
};

// Owns every loaded source file; FileIds index into it.
class SourceManager {
 public:
  FileId add(std::string path, std::string text);
  const SourceFile& file(FileId id) const { return *files_.at(id); }
  std::size_t size() const { return files_.size(); }
  std::string_view text(Span span) const;
  // "path:line:col"
  std::string location(Span span) const;

 private:
  std::vector<std::unique_ptr<SourceFile>> files_;
};

}  // namespace kiln
