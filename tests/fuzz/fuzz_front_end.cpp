// libFuzzer entry point for the front end. For any input: parsing never crashes; a file
// that parses formats to text that parses again without errors and formats to itself;
// sema never crashes or throws, whatever the AST.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "compiler/sema/sema.h"
#include "compiler/syntax/formatter.h"
#include "compiler/syntax/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  kiln::SourceManager sources;
  kiln::Diagnostics diags;
  kiln::FileId id = sources.add("fuzz.kiln", text);
  kiln::ast::File file = kiln::parse_file(sources, id, diags);
  (void)diags.render(sources);
  if (!diags.has_errors()) {
    std::string formatted = kiln::format_file(file, sources);
    kiln::SourceManager again_sources;
    kiln::Diagnostics again_diags;
    kiln::FileId again = again_sources.add("fuzz-formatted.kiln", formatted);
    kiln::ast::File reparsed = kiln::parse_file(again_sources, again, again_diags);
    if (again_diags.has_errors()) {
      std::fprintf(stderr, "formatted text does not parse:\n%s\n%s", formatted.c_str(),
                   again_diags.render(again_sources).c_str());
      std::abort();
    }
    if (kiln::format_file(reparsed, again_sources) != formatted) {
      std::fprintf(stderr, "formatting is not idempotent:\n%s", formatted.c_str());
      std::abort();
    }
  }
  // Sema over the same text: imports resolve against the stdlib only.
  auto c = kiln::sema::compile_source("fuzz.kiln", std::move(text));
  (void)c->diags.render(c->sources);
  return 0;
}
