// kiln build (see build_command.h and docs/deploy.md).
#include "tools/kiln/build_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "compiler/codegen/codegen.h"
#include "compiler/ir/program.h"
#include "compiler/sema/sema.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/data/data_error.h"
#include "runtime/data/pipeline.h"
#include "runtime/exec/executor.h"
#include "runtime/train/feeds.h"
#include "runtime/train/safetensors.h"
#include "runtime/train/trainer.h"

extern char** environ;

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using sema::ColumnKind;

constexpr std::size_t kAlign = 64;
constexpr std::size_t kWeightsHeader = 64;
constexpr std::int64_t kSmokeDistinctRows = 8;

struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::size_t align_up(std::size_t n, std::size_t a = kAlign) {
  return (n + a - 1) / a * a;
}

// A double as a C literal that reads back bit for bit.
std::string c_double(double v) {
  if (std::isnan(v)) return "NAN";
  if (std::isinf(v)) return v > 0 ? "INFINITY" : "(-INFINITY)";
  std::string s = fmt::format("{:.17g}", v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string c_float(float v) {
  if (!std::isfinite(v)) return c_double(v);
  std::string s = fmt::format("{:.9g}", v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s + "f";
}

std::string c_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      out += fmt::format("\\{:03o}", ch);
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::uint32_t crc32c(const unsigned char* p, std::size_t n) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return h;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw BuildError("cannot write '" + path.string() + "'");
}

// ---------------------------------------------------------------------------------------
// Running the C toolchain.

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

std::string tool(const char* env, const char* fallback) {
  const char* v = std::getenv(env);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(fallback);
}

bool on_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && access((fs::path(dir) / program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

struct Job {
  std::string what;     // for messages
  std::string command;  // run by /bin/sh -c in the output folder
};

// Runs the jobs at the same time; throws BuildError with the first failure's output.
void run_jobs(const std::vector<Job>& jobs, const fs::path& dir) {
  std::vector<pid_t> pids;
  std::vector<fs::path> logs;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    fs::path log = dir / fmt::format(".kiln-build-{}.log", i);
    logs.push_back(log);
    std::string script =
        "cd " + shell_quote(dir.string()) + " && " + jobs[i].command + " >" + shell_quote(log.string()) + " 2>&1";
    const char* argv[] = {"/bin/sh", "-c", script.c_str(), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) {
      throw BuildError("cannot start /bin/sh for: " + jobs[i].command);
    }
    pids.push_back(pid);
  }
  std::string failure;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    waitpid(pids[i], &status, 0);
    std::ifstream in(logs[i]);
    std::stringstream text;
    text << in.rdbuf();
    std::error_code ec;
    fs::remove(logs[i], ec);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && failure.empty()) {
      failure = jobs[i].what + " failed:\n  " + jobs[i].command + "\n" + text.str();
    }
  }
  if (!failure.empty()) throw BuildError(failure);
}

// ---------------------------------------------------------------------------------------
// What is being built.

struct OutputInfo {
  std::string name;
  std::int64_t width = 0;   // floats per row
  std::int64_t column = 0;  // where it starts in the concatenated output row
};

struct Variable {
  std::string name;
  std::size_t offset = 0;  // into the weights payload
  std::size_t bytes = 0;
};

struct Model {
  std::string name;  // C prefix
  std::string input_name;
  std::vector<std::int64_t> input_row_dims;
  std::int64_t input_width = 0;
  std::vector<OutputInfo> outputs;
  std::int64_t output_width = 0;
  std::vector<std::int64_t> batches;
  std::vector<codegen::CodegenReport> reports;
  std::string cpu;                            // the target CPU of NAME.o
  std::vector<codegen::CpuCheck> cpu_checks;  // its extensions that the runtime tests at init
  std::vector<codegen::Slot> slots;           // the same in every entry
  std::vector<std::size_t> slot_arg;          // variable: payload offset; assign: workspace offset; output: index
  std::vector<Variable> variables;
  std::size_t weights_payload = 0;
  std::uint64_t fingerprint = 0;
  std::size_t arena_bytes = 0;    // the largest entry's
  std::size_t assign_offset = 0;  // in the workspace
  std::size_t assign_bytes = 0;
  std::size_t staging_offset = 0;  // multi-output staging (max * output_width floats)
  std::size_t staging_bytes = 0;
  std::size_t features_offset = 0;  // predict_records: max * input_width floats
  std::size_t workspace_bytes = 0;
  std::vector<std::string> classes;  // of the category label, for *_class columns
  bool embedded = true;
  int threads = 1;                                 // of one predict call (the library's worker threads + the caller)
  std::vector<float> smoke_input, smoke_expected;  // kSmokeDistinctRows rows
  std::int64_t smoke_rows = 0;
};

// ---------------------------------------------------------------------------------------
// The feature pipeline in C.

struct RawColumn {
  std::string name;  // a header / JSON key
};

// Code of <P>_transform_row: cells[] (one per raw column; NULL or "" = missing) -> one
// feature row. Also fills the raw column list. Throws BuildError for what it cannot do.
std::string pipeline_code(const data::FittedPipeline& pipeline, const sema::FeatureSet& set,
                          std::vector<RawColumn>& raw) {
  std::ostringstream o;
  for (std::size_t c = 0; c < pipeline.columns.size(); ++c) {
    const data::FittedColumn& col = pipeline.columns[c];
    if (col.is_label) continue;
    if (col.is_index) {
      throw BuildError("column '" + col.name +
                       "' ends in index(...): models with index inputs are not supported by kiln build yet");
    }
    const sema::FeatureColumn* declared = nullptr;
    for (const sema::FeatureColumn& f : set.columns) {
      if (f.name == col.name) declared = &f;
    }
    if (declared == nullptr)
      throw BuildError("the pipeline's column '" + col.name + "' is not in features " + set.name);
    std::string chain;
    for (const data::FittedStage& s : col.stages) chain += (chain.empty() ? "" : " -> ") + s.op;
    o << "  /* " << col.name << ": " << (chain.empty() ? "(no transforms)" : chain) << " */\n  {\n";
    const std::string cname = c_string(col.name);
    bool has_fill = false;
    for (const data::FittedStage& s : col.stages) has_fill = has_fill || s.op == "fill";
    auto number_stages = [&](const std::string& x, bool pixels) {
      std::ostringstream n;
      for (const data::FittedStage& s : col.stages) {
        if (s.op == "fill") {
          n << "    if (isnan(" << x << ")) " << x << " = " << c_double(s.value) << ";\n";
        } else if (s.op == "standardize") {
          n << "    " << x << " = (" << x << " - " << c_double(s.mean) << ") / " << c_double(s.stddev) << ";\n";
        } else if (s.op == "min_max") {
          if (s.high > s.low) {
            n << "    " << x << " = (" << x << " - " << c_double(s.low) << ") / " << c_double(s.high - s.low) << ";\n";
          } else {
            n << "    " << x << " = 0.0;\n";
          }
        } else if (s.op == "log1p") {
          n << "    " << x << " = log1p(" << x << ");\n";
        } else if (s.op == "clip") {
          n << "    if (!isnan(" << x << ")) " << x << " = " << x << " < " << c_double(s.low) << " ? "
            << c_double(s.low) << " : (" << x << " > " << c_double(s.high) << " ? " << c_double(s.high) << " : " << x
            << ");\n";
        } else if (s.op == "scale") {
          n << "    " << x << " = " << x << " * " << c_double(s.value) << ";\n";
        } else if (s.op == "passthrough") {
        } else if (s.op == "bucketize" && !pixels) {
          break;
        } else {
          throw BuildError("column '" + col.name + "': the transform " + s.op +
                           " is not supported by kiln build's C pipeline");
        }
      }
      return n.str();
    };
    if (col.kind == ColumnKind::kPixels) {
      const std::size_t base = raw.size();
      for (std::int64_t i = 0; i < col.width; ++i) raw.push_back({col.name + "_" + std::to_string(i)});
      o << "    for (int i = 0; i < " << col.width << "; ++i) {\n"
        << "      double x;\n"
        << "      if (!@P@_parse_number(cells[" << base << " + i], " << cname
        << ", i, 0, &x, why, why_len)) return 0;\n"
        << "      x = (double)(float)x; /* a pixel is a float, as Kiln holds it */\n"
        << replace_all(number_stages("x", true), "    ", "      ") << "      f[" << col.offset << " + i] = (float)x;\n"
        << "      if (!isfinite(f[" << col.offset << " + i])) {\n"
        << "        @P@_reason(why, why_len, \"column '%s': pixel %d becomes %g after its transforms\", " << cname
        << ", i, (double)f[" << col.offset << " + i]);\n        return 0;\n      }\n    }\n  }\n";
      continue;
    }
    const std::size_t cell = raw.size();
    raw.push_back({col.name});
    if (col.kind == ColumnKind::kNumber) {
      o << "    double x;\n"
        << "    if (!@P@_parse_number(cells[" << cell << "], " << cname << ", -1, " << (has_fill ? 1 : 0)
        << ", &x, why, why_len)) return 0;\n"
        << number_stages("x", false) << "    if (!isfinite(x)) {\n"
        << "      @P@_reason(why, why_len, \"column '%s': the value %s becomes %g after its transforms\", " << cname
        << ", @P@_shown(cells[" << cell << "]), x);\n      return 0;\n    }\n";
      const data::FittedStage* bucketize = nullptr;
      for (const data::FittedStage& s : col.stages) {
        if (s.op == "bucketize") bucketize = &s;
      }
      if (bucketize != nullptr) {
        o << "    static const double edges[] = {";
        for (std::size_t i = 0; i < bucketize->edges.size(); ++i) o << (i ? ", " : "") << c_double(bucketize->edges[i]);
        if (bucketize->edges.empty()) o << "0.0";
        o << "};\n    int bucket = 0;\n    while (bucket < " << bucketize->edges.size()
          << " && edges[bucket] <= x) ++bucket;\n"
          << "    for (int i = 0; i < " << col.width << "; ++i) f[" << col.offset << " + i] = 0.0f;\n"
          << "    f[" << col.offset << " + bucket] = 1.0f;\n  }\n";
      } else {
        o << "    f[" << col.offset << "] = (float)x;\n  }\n";
      }
      continue;
    }
    // Category.
    const data::FittedStage& last = col.stages.back();
    if (last.op != "one_hot") {
      throw BuildError("column '" + col.name + "': a category column must end in one_hot for kiln build");
    }
    std::string fill_text;
    bool fills = false;
    for (const data::FittedStage& s : col.stages) {
      if (s.op == "fill") {
        fills = true;
        fill_text = s.text;
      }
    }
    o << "    char norm[32];\n    const char* s;\n    size_t len;\n"
      << "    int missing = @P@_cell(cells[" << cell << "], &s, &len);\n";
    if (!declared->levels.empty()) {
      o << "    static const char* const levels[] = {";
      for (std::size_t i = 0; i < declared->levels.size(); ++i) o << (i ? ", " : "") << c_string(declared->levels[i]);
      std::string listed;
      for (std::size_t i = 0; i < declared->levels.size() && i < 12; ++i)
        listed += (i ? ", " : "") + declared->levels[i];
      o << "};\n    if (!missing && @P@_lookup(levels, " << declared->levels.size() << ", s, len) < 0) {\n"
        << "      @P@_reason(why, why_len, \"'%.*s' is not a level of column '%s' (%s)\", (int)(len > 40 ? 40 : len), "
           "s, "
        << cname << ", " << c_string(listed) << ");\n      return 0;\n    }\n";
    } else if (declared->class_count > 0) {
      o << "    if (!missing && !@P@_class_text(s, len, " << declared->class_count << ", norm, &s, &len)) {\n"
        << "      @P@_reason(why, why_len, \"'%.*s' in column '%s' is not a class of category[" << declared->class_count
        << "] (an integer 0.." << declared->class_count - 1 << ")\", (int)(len > 40 ? 40 : len), s, " << cname
        << ");\n      return 0;\n    }\n";
    }
    o << "    (void)norm;\n";
    if (fills)
      o << "    if (missing) { s = " << c_string(fill_text) << "; len = " << fill_text.size() << "; missing = 0; }\n";
    o << "    static const char* const vocabulary[] = {";
    for (std::size_t i = 0; i < col.vocabulary.size(); ++i) o << (i ? ", " : "") << c_string(col.vocabulary[i]);
    if (col.vocabulary.empty()) o << "\"\"";
    o << "};\n    int slot = missing ? -1 : @P@_lookup(vocabulary, " << col.vocabulary.size() << ", s, len);\n"
      << "    if (slot < 0) slot = " << last.levels << ";\n"
      << "    for (int i = 0; i < " << col.width << "; ++i) f[" << col.offset << " + i] = 0.0f;\n"
      << "    f[" << col.offset << " + slot] = 1.0f;\n  }\n";
  }
  return o.str();
}

// Label columns the input may carry: checked like kiln predict checks them (a row with a
// missing or undeclared label is skipped), never used.
std::string label_check_code(const sema::FeatureSet& set, std::vector<std::string>& labels) {
  std::ostringstream o;
  for (const sema::FeatureColumn& col : set.columns) {
    if (!col.is_label) continue;
    const std::size_t k = labels.size();
    labels.push_back(col.name);
    const std::string cname = c_string(col.name);
    o << "  {\n    const char* s;\n    size_t len;\n    char norm[32];\n    (void)norm;\n"
      << "    if (present[" << k << "]) {\n"
      << "      if (@P@_cell(cells[" << k << "], &s, &len)) {\n"
      << "        @P@_reason(why, why_len, \"missing value in label column '%s'\", " << cname << ");\n"
      << "        return 0;\n      }\n";
    if (col.kind == ColumnKind::kNumber) {
      o << "      double x;\n      if (!@P@_parse_number(cells[" << k << "], " << cname
        << ", -1, 0, &x, why, why_len)) return 0;\n";
    } else if (!col.levels.empty()) {
      o << "      static const char* const levels[] = {";
      std::string listed;
      for (std::size_t i = 0; i < col.levels.size(); ++i) {
        o << (i ? ", " : "") << c_string(col.levels[i]);
        if (i < 12) listed += (i ? ", " : "") + col.levels[i];
      }
      o << "};\n      if (@P@_lookup(levels, " << col.levels.size() << ", s, len) < 0) {\n"
        << "        @P@_reason(why, why_len, \"'%.*s' is not a level of column '%s' (%s)\", (int)(len > 40 ? 40 : "
           "len), s, "
        << cname << ", " << c_string(listed) << ");\n        return 0;\n      }\n";
    } else if (col.class_count > 0) {
      o << "      if (!@P@_class_text(s, len, " << col.class_count << ", norm, &s, &len)) {\n"
        << "        @P@_reason(why, why_len, \"'%.*s' in column '%s' is not a class of category[" << col.class_count
        << "] (an integer 0.." << col.class_count - 1 << ")\", (int)(len > 40 ? 40 : len), s, " << cname
        << ");\n        return 0;\n      }\n";
    }
    o << "    }\n  }\n";
  }
  return o.str();
}

// ---------------------------------------------------------------------------------------
// Generated sources. @P@ is the model name, @UP@ its upper-case form.

const char* kHeaderTop = R"C(/* @P@.h: the C API of the deployable artifact of model @P@, generated by `kiln build`.
 *
 * Link with libP.a or libP.so (and -lm; -pthread when @UP@_THREADS > 1, whose library
 * starts @UP@_THREADS - 1 worker threads on the first call). Nothing else is allocated by
 * the library: the caller
 * hands @P@_init an aligned workspace of @UP@_WORKSPACE_BYTES bytes (one per context; a
 * context is used by one thread at a time) and, unless the weights are embedded, the
 * bytes of @P@.weights. Inputs are row-major f32 feature rows (after the feature pipeline),
 * outputs row-major f32 rows of @UP@_OUTPUT_WIDTH floats. See docs/deploy.md.
 */
#ifndef @UP@_H_
#define @UP@_H_

#include <stddef.h>
#include <stdint.h>

)C";

const char* kHeaderApi = R"C(
typedef struct @P@_ctx {
  const unsigned char* weights; /* the weights file's bytes (header + payload) */
  unsigned char* workspace;     /* @UP@_WORKSPACE_BYTES, @UP@_ALIGNMENT-aligned */
  void* slots[@UP@_SLOTS];
  uint32_t ready;
} @P@_ctx;

/* Error codes (0 is success). */
#define @UP@_E_ARGUMENT 1          /* a NULL pointer where one is needed */
#define @UP@_E_ALIGNMENT 2         /* workspace or weights not @UP@_ALIGNMENT-aligned */
#define @UP@_E_NO_WEIGHTS 3        /* weights are not embedded: pass the weights file's bytes */
#define @UP@_E_WEIGHTS_FORMAT 4    /* not a kiln weights file */
#define @UP@_E_WEIGHTS_SIZE 5      /* a weights file of another size */
#define @UP@_E_WEIGHTS_MODEL 6     /* weights of another model (tensor layout differs) */
#define @UP@_E_WEIGHTS_CHECKSUM 7  /* the CRC32C of the weights does not match */
#define @UP@_E_NOT_INITIALIZED 8   /* @P@_init did not succeed on this context */
#define @UP@_E_RECORD 9            /* a record the feature pipeline rejects */
#define @UP@_E_IO 10               /* the weights file cannot be read */
#define @UP@_E_CPU 11              /* this CPU lacks an extension @P@.o was compiled for (@UP@_CPU_EXTENSIONS) */

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of workspace one context needs (= @UP@_WORKSPACE_BYTES). */
size_t @P@_workspace_bytes(void);
/* Bytes of the weights file (= @UP@_WEIGHTS_BYTES). */
size_t @P@_weights_bytes(void);
/* Binds a context to its workspace and the weights. `weights`: NULL for the embedded
 * weights (when @UP@_WEIGHTS_EMBEDDED), else the @UP@_WEIGHTS_BYTES bytes of @P@.weights,
 * @UP@_ALIGNMENT-aligned, kept alive and unchanged while the context is used; their
 * size, model fingerprint and CRC32C are checked. Returns 0 or an error code. */
int @P@_init(@P@_ctx* ctx, void* workspace, const void* weights);
/* Reads a weights file into `buffer` (@UP@_WEIGHTS_BYTES bytes, aligned). 0 or an error code. */
int @P@_load_weights(const char* path, void* buffer, size_t buffer_bytes);
/* Predicts n rows: input holds n * @UP@_INPUT_WIDTH floats, output receives
 * n * @UP@_OUTPUT_WIDTH floats. Any n works; n is split into power-of-two chunks of at most
 * @UP@_MAX_BATCH rows, each run by the entry compiled for that batch size. 0 or an error code. */
int @P@_predict(@P@_ctx* ctx, const float* input, size_t n, float* output);
/* The feature pipeline on one raw record: cells[i] is the text of raw column i
 * (@P@_raw_columns; NULL or "" when missing). Writes @UP@_INPUT_WIDTH floats to `features`.
 * Returns 1, or 0 with the reason in `why` when the record cannot be used. */
int @P@_transform_row(const char* const* cells, float* features, char* why, size_t why_len);
/* The label columns a record may carry (in the feature set's order; present[k] says whether
 * the input has label k): checked as `kiln predict` checks them, never used. 1, or 0 and why. */
int @P@_check_labels(const char* const* cells, const int* present, char* why, size_t why_len);
/* Raw records to predictions: cells holds n * @UP@_RAW_COLUMNS strings (row-major). Uses
 * the workspace for the feature rows. Returns 0, or @UP@_E_RECORD with the reason in `why`
 * (and the bad row's index in *bad_row when bad_row is not NULL). */
int @P@_predict_records(@P@_ctx* ctx, const char* const* cells, size_t n, float* output, char* why, size_t why_len,
                        size_t* bad_row);
/* A message for an error code. */
const char* @P@_strerror(int code);

extern const char* const @P@_raw_columns[@UP@_RAW_COLUMNS];
extern const char* const @P@_output_names[@UP@_OUTPUTS];
extern const int @P@_output_widths[@UP@_OUTPUTS];

#ifdef __cplusplus
} /* extern "C" */

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace @P@ {

/* RAII: owns an aligned workspace (and, with a weights path, the weights' bytes). One
 * Model per thread; Models may share weights. */
class Model {
 public:
  /* Embedded weights (or `weights`: the bytes of @P@.weights, aligned, outliving the Model). */
  explicit Model(const void* weights = nullptr) { open(weights); }
  /* Loads @P@.weights from `weights_path`. */
  explicit Model(const std::string& weights_path) {
    weights_ = std::aligned_alloc(@UP@_ALIGNMENT, round(@UP@_WEIGHTS_BYTES));
    if (weights_ == nullptr) throw std::bad_alloc();
    int rc = @P@_load_weights(weights_path.c_str(), weights_, @UP@_WEIGHTS_BYTES);
    if (rc != 0) {
      std::free(weights_);
      throw std::runtime_error(weights_path + ": " + @P@_strerror(rc));
    }
    open(weights_);
  }
  ~Model() {
    std::free(workspace_);
    std::free(weights_);
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  void predict(const float* input, size_t n, float* output) {
    int rc = @P@_predict(&ctx_, input, n, output);
    if (rc != 0) throw std::runtime_error(@P@_strerror(rc));
  }
  /* rows of @UP@_INPUT_WIDTH floats in, rows of @UP@_OUTPUT_WIDTH floats out */
  std::vector<float> predict(const std::vector<float>& input) {
    if (input.size() % @UP@_INPUT_WIDTH != 0) throw std::invalid_argument("input is not whole rows");
    size_t n = input.size() / @UP@_INPUT_WIDTH;
    std::vector<float> out(n * @UP@_OUTPUT_WIDTH);
    predict(input.data(), n, out.data());
    return out;
  }
  @P@_ctx* context() { return &ctx_; }

 private:
  static size_t round(size_t n) { return (n + @UP@_ALIGNMENT - 1) / @UP@_ALIGNMENT * @UP@_ALIGNMENT; }
  void open(const void* weights) {
    workspace_ = std::aligned_alloc(@UP@_ALIGNMENT, round(@UP@_WORKSPACE_BYTES));
    if (workspace_ == nullptr) throw std::bad_alloc();
    int rc = @P@_init(&ctx_, workspace_, weights);
    if (rc != 0) {
      std::free(workspace_);
      workspace_ = nullptr;
      throw std::runtime_error(@P@_strerror(rc));
    }
  }
  @P@_ctx ctx_{};
  void* workspace_ = nullptr;
  void* weights_ = nullptr;
};

}  /* namespace @P@ */
#endif /* __cplusplus */

#endif /* @UP@_H_ */
)C";

const char* kRuntimeHelpers = R"C(
#define @UP@_API __attribute__((visibility("default")))
#define @UP@_READY 0x4b494c4eu

typedef struct {
  uint64_t seed, step, training;
} @P@_run_state;
typedef void (*@P@_entry_fn)(void* arena, void* const* slots, const @P@_run_state* state);

static uint32_t @P@_crc32c(const unsigned char* p, size_t n) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

static int @P@_check_weights(const unsigned char* w, int full) {
  uint64_t size, fingerprint;
  uint32_t crc;
  if ((uintptr_t)w % @UP@_ALIGNMENT != 0) return @UP@_E_ALIGNMENT;
  if (memcmp(w, "KILNWTS1", 8) != 0) return @UP@_E_WEIGHTS_FORMAT;
  memcpy(&size, w + 8, 8);
  memcpy(&fingerprint, w + 16, 8);
  memcpy(&crc, w + 24, 4);
  if (size != @UP@_WEIGHTS_BYTES - 64) return @UP@_E_WEIGHTS_SIZE;
  if (fingerprint != @UP@_WEIGHTS_FINGERPRINT) return @UP@_E_WEIGHTS_MODEL;
  if (full && crc != @P@_crc32c(w + 64, (size_t)size)) return @UP@_E_WEIGHTS_CHECKSUM;
  return 0;
}

@UP@_API size_t @P@_workspace_bytes(void) { return @UP@_WORKSPACE_BYTES; }
@UP@_API size_t @P@_weights_bytes(void) { return @UP@_WEIGHTS_BYTES; }

@UP@_API const char* @P@_strerror(int code) {
  switch (code) {
    case 0: return "ok";
    case @UP@_E_ARGUMENT: return "a required pointer is NULL";
    case @UP@_E_ALIGNMENT: return "workspace or weights are not 64-byte aligned";
    case @UP@_E_NO_WEIGHTS: return "the weights are not embedded: pass the bytes of @P@.weights";
    case @UP@_E_WEIGHTS_FORMAT: return "not a kiln weights file";
    case @UP@_E_WEIGHTS_SIZE: return "the weights file has the wrong size";
    case @UP@_E_WEIGHTS_MODEL: return "the weights belong to another model";
    case @UP@_E_WEIGHTS_CHECKSUM: return "the weights' CRC32C does not match (corrupt file)";
    case @UP@_E_NOT_INITIALIZED: return "the context is not initialised";
    case @UP@_E_RECORD: return "a record the feature pipeline rejects";
    case @UP@_E_IO: return "cannot read the weights file";
    case @UP@_E_CPU: {
      const char* missing = @P@_cpu_missing();
      return missing != NULL ? missing
                             : "this CPU lacks an instruction set extension @P@.o was compiled for (" @UP@_CPU_EXTENSIONS
                               ", for the CPU " @UP@_TARGET_CPU "): build the artifact for this CPU with kiln build --cpu";
    }
  }
  return "unknown error";
}

@UP@_API int @P@_load_weights(const char* path, void* buffer, size_t buffer_bytes) {
  FILE* f;
  size_t got;
  int extra;
  if (path == NULL || buffer == NULL) return @UP@_E_ARGUMENT;
  if (buffer_bytes < @UP@_WEIGHTS_BYTES) return @UP@_E_WEIGHTS_SIZE;
  f = fopen(path, "rb");
  if (f == NULL) return @UP@_E_IO;
  got = fread(buffer, 1, @UP@_WEIGHTS_BYTES, f);
  extra = fgetc(f);
  fclose(f);
  if (got != @UP@_WEIGHTS_BYTES || extra != EOF) return @UP@_E_WEIGHTS_SIZE;
  return @P@_check_weights((const unsigned char*)buffer, 1);
}

@UP@_API int @P@_init(@P@_ctx* ctx, void* workspace, const void* weights) {
  const unsigned char* w = (const unsigned char*)weights;
  int full = 1, rc;
  if (ctx == NULL || workspace == NULL) return @UP@_E_ARGUMENT;
  ctx->ready = 0;
  if (@P@_cpu_missing() != NULL) return @UP@_E_CPU;
  if ((uintptr_t)workspace % @UP@_ALIGNMENT != 0) return @UP@_E_ALIGNMENT;
  if (w == NULL) {
#if @UP@_WEIGHTS_EMBEDDED
    w = @P@_weights_blob;
    full = 0; /* linked in: trusted, and the check would touch every byte */
#else
    return @UP@_E_NO_WEIGHTS;
#endif
  }
  rc = @P@_check_weights(w, full);
  if (rc != 0) return rc;
  ctx->weights = w;
  ctx->workspace = (unsigned char*)workspace;
  for (int k = 0; k < @UP@_SLOTS; ++k) {
    ctx->slots[k] = NULL;
    if (@P@_slot_kind[k] == 1) ctx->slots[k] = (void*)(w + 64 + @P@_slot_arg[k]);
    if (@P@_slot_kind[k] == 2) ctx->slots[k] = (void*)(ctx->workspace + @P@_slot_arg[k]);
  }
  ctx->ready = @UP@_READY;
  return 0;
}

@UP@_API int @P@_predict(@P@_ctx* ctx, const float* input, size_t n, float* output) {
  static const @P@_run_state state = {0, 0, 0}; /* inference: if_training takes its second operand */
  size_t done = 0;
  if (ctx == NULL || ctx->ready != @UP@_READY) return @UP@_E_NOT_INITIALIZED;
  if (n == 0) return 0;
  if (input == NULL || output == NULL) return @UP@_E_ARGUMENT;
  while (done < n) {
    size_t left = n - done;
    int e = @UP@_ENTRIES - 1;
    while (@P@_entry_batch[e] > left) --e;
    @P@_run(ctx, e, input + done * @UP@_INPUT_WIDTH, output + done * @UP@_OUTPUT_WIDTH, &state);
    done += @P@_entry_batch[e];
  }
  return 0;
}

/* ---- the feature pipeline ---- */

/* The reason, on one line whatever the cells it quotes hold: control bytes as \xNN. */
static void @P@_reason(char* why, size_t why_len, const char* format, ...) {
  char raw[512];
  size_t o = 0;
  va_list args;
  if (why == NULL || why_len == 0) return;
  va_start(args, format);
  vsnprintf(raw, sizeof raw, format, args);
  va_end(args);
  for (const unsigned char* p = (const unsigned char*)raw; *p != 0 && o + 1 < why_len; ++p) {
    if (*p >= 0x20 && *p != 0x7f) {
      why[o++] = (char)*p;
    } else if (o + 5 < why_len) {
      snprintf(why + o, 5, "\\x%02x", *p);
      o += 4;
    } else {
      break;
    }
  }
  why[o] = 0;
}

/* Trims spaces and tabs; returns 1 when the cell is missing (NULL or empty). */
static int @P@_cell(const char* cell, const char** s, size_t* len) {
  size_t n;
  if (cell == NULL) cell = "";
  while (*cell == ' ' || *cell == '\t') ++cell;
  n = strlen(cell);
  while (n > 0 && (cell[n - 1] == ' ' || cell[n - 1] == '\t')) --n;
  *s = cell;
  *len = n;
  return n == 0;
}

/* The helpers below serve some feature pipelines and not others. */
__attribute__((unused)) static const char* @P@_shown(const char* cell) {
  const char* s;
  size_t len;
  return @P@_cell(cell, &s, &len) ? "(missing)" : s;
}

__attribute__((unused)) static int @P@_lookup(const char* const* table, int count, const char* s, size_t len) {
  for (int i = 0; i < count; ++i) {
    if (strlen(table[i]) == len && memcmp(table[i], s, len) == 0) return i;
  }
  return -1;
}

/* category[N]: an integer 0..N-1, normalised ("07" is "7"). */
__attribute__((unused)) static int @P@_class_text(const char* s, size_t len, long long classes, char* norm,
                                                 const char** out, size_t* out_len) {
  long long k = 0;
  size_t i = 0;
  int negative = 0;
  if (len > 0 && s[0] == '-') {
    negative = 1;
    i = 1;
  }
  if (i == len) return 0;
  for (; i < len; ++i) {
    if (s[i] < '0' || s[i] > '9' || k > 1000000000000LL) return 0;
    k = k * 10 + (s[i] - '0');
  }
  if (negative || k >= classes) return 0;
  snprintf(norm, 32, "%lld", k);
  *out = norm;
  *out_len = strlen(norm);
  return 1;
}

/* A cell's name in a reason: "number column 'NAME'", or "pixel i of pixels column 'NAME'"
 * for pixel i >= 0 (the CSV column NAME_i, or element i of the JSON array NAME). */
__attribute__((unused)) static const char* @P@_cell_name(char* what, size_t what_len, const char* column, int pixel) {
  if (pixel < 0) {
    snprintf(what, what_len, "number column '%s'", column);
  } else {
    snprintf(what, what_len, "pixel %d of pixels column '%s'", pixel, column);
  }
  return what;
}

/* A number cell (pixel < 0) or pixel `pixel` of a pixels column: NaN when missing (allowed
 * only with a fill). Returns 0 with the reason. */
__attribute__((unused)) static int @P@_parse_number(const char* cell, const char* column, int pixel, int has_fill,
                                                    double* x, char* why, size_t why_len) {
  const char* s;
  size_t len;
  char* end;
  char what[512]; /* the cell's name, made only for a reason */
  if (@P@_cell(cell, &s, &len)) {
    *x = NAN;
    if (has_fill) return 1;
    if (pixel < 0) {
      @P@_reason(why, why_len, "missing value in %s, which has no fill(...)",
                 @P@_cell_name(what, sizeof what, column, pixel));
    } else {
      @P@_reason(why, why_len, "missing value in %s", @P@_cell_name(what, sizeof what, column, pixel));
    }
    return 0;
  }
  if (len > 0 && s[0] == '+') {
    ++s;
    --len;
  }
  /* strtod reads the cell in place (a C string: it stops at the NUL at the latest), however
   * many digits it has; it must end where the trimmed cell does. An underflow reads as the
   * nearest double, an overflow as infinite (refused), as Kiln's own reader does. */
  if (len == 0 || memchr(s, 'x', len) || memchr(s, 'X', len) || s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r') ||
      s[0] == '+') { /* strtod would skip white space, which Kiln's reader refuses */
    @P@_reason(why, why_len, "'%.*s' in %s is not a number", (int)(len > 40 ? 40 : len), s,
               @P@_cell_name(what, sizeof what, column, pixel));
    return 0;
  }
  *x = strtod(s, &end);
  if (end != s + len) {
    @P@_reason(why, why_len, "'%.*s' in %s is not a number", (int)(len > 40 ? 40 : len), s,
               @P@_cell_name(what, sizeof what, column, pixel));
    return 0;
  }
  if (!isfinite(*x)) {
    @P@_reason(why, why_len, "'%.*s' in %s is not a finite number", (int)len, s,
               @P@_cell_name(what, sizeof what, column, pixel));
    return 0;
  }
  return 1;
}

@UP@_API int @P@_predict_records(@P@_ctx* ctx, const char* const* cells, size_t n, float* output, char* why,
                                   size_t why_len, size_t* bad_row) {
  size_t done = 0;
  if (ctx == NULL || ctx->ready != @UP@_READY) return @UP@_E_NOT_INITIALIZED;
  if (n > 0 && (cells == NULL || output == NULL)) return @UP@_E_ARGUMENT;
  while (done < n) {
    float* features = (float*)(ctx->workspace + @UP@_FEATURES_OFFSET);
    size_t rows = n - done < @UP@_MAX_BATCH ? n - done : @UP@_MAX_BATCH;
    for (size_t r = 0; r < rows; ++r) {
      if (!@P@_transform_row(cells + (done + r) * @UP@_RAW_COLUMNS, features + r * @UP@_INPUT_WIDTH, why, why_len)) {
        if (bad_row != NULL) *bad_row = done + r;
        return @UP@_E_RECORD;
      }
    }
    @P@_predict(ctx, features, rows, output + done * @UP@_OUTPUT_WIDTH);
    done += rows;
  }
  return 0;
}
)C";

// Header: constants and the memory summary.
std::string header_source(const Model& m, const std::vector<RawColumn>& raw) {
  std::ostringstream o;
  o << kHeaderTop;
  o << "/* Memory summary (bytes)\n";
  o << fmt::format(" *   weights         {:>12}  ({} tensors, {}; 64-byte header + payload)\n",
                   kWeightsHeader + m.weights_payload, m.variables.size(),
                   m.embedded ? "embedded in the library" : "in @P@.weights beside it");
  o << fmt::format(" *   workspace       {:>12}  per context, caller-owned, 64-byte aligned:\n", m.workspace_bytes);
  o << fmt::format(" *     arena         {:>12}  at 0 (the largest entry's temporaries and kernel scratch)\n",
                   m.arena_bytes);
  if (m.assign_bytes > 0) {
    o << fmt::format(" *     state writes  {:>12}  at {} (state updates an inference run discards)\n", m.assign_bytes,
                     m.assign_offset);
  }
  if (m.staging_bytes > 0) {
    o << fmt::format(" *     output stage  {:>12}  at {}\n", m.staging_bytes, m.staging_offset);
  }
  o << fmt::format(" *     feature rows  {:>12}  at {} (@P@_predict_records only)\n",
                   static_cast<std::size_t>(m.batches.back() * m.input_width * 4), m.features_offset);
  o << fmt::format(" *   input           {:>12}  per row ({} f32), caller-owned\n", m.input_width * 4, m.input_width);
  o << fmt::format(" *   output          {:>12}  per row ({} f32), caller-owned\n", m.output_width * 4, m.output_width);
  o << " * Entries (one per batch size; @P@_predict picks them):\n";
  for (std::size_t e = 0; e < m.batches.size(); ++e) {
    const codegen::CodegenReport& r = m.reports[e];
    o << fmt::format(" *   {:<24} arena {:>10} (kernel scratch {}), {} instructions, {} kernel calls, {} fused\n",
                     r.entry, r.arena_bytes, r.scratch_bytes, r.instructions, r.kernel_calls, r.fused);
  }
  o << " */\n";
  o << "#define @UP@_INPUT_WIDTH " << m.input_width << " /* f32 per input row: " << m.input_name << " [n";
  for (std::int64_t d : m.input_row_dims) o << ", " << d;
  o << "] */\n";
  o << "#define @UP@_OUTPUT_WIDTH " << m.output_width << " /* f32 per output row:";
  for (const OutputInfo& out : m.outputs) o << " " << out.name << " [" << out.column << ", +" << out.width << ")";
  o << " */\n";
  o << "#define @UP@_OUTPUTS " << m.outputs.size() << "\n";
  for (const OutputInfo& out : m.outputs) {
    o << "#define @UP@_OUTPUT_" << out.name << "_OFFSET " << out.column << "\n";
    o << "#define @UP@_OUTPUT_" << out.name << "_WIDTH " << out.width << "\n";
  }
  o << "#define @UP@_MAX_BATCH " << m.batches.back() << "\n";
  o << "#define @UP@_THREADS " << m.threads
    << (m.threads > 1 ? " /* threads per predict call: the caller and library workers (link with -pthread) */\n"
                      : " /* predict runs on the calling thread only */\n");
  o << "#define @UP@_TARGET_CPU \"" << m.cpu << "\" /* @P@.o runs on this CPU and those with its instruction set"
    << " extensions (kernels: " << m.reports.front().kernels << "); kiln build --cpu picks another */\n";
  o << "#define @UP@_CPU_EXTENSIONS \"";
  for (std::size_t i = 0; i < m.cpu_checks.size(); ++i) o << (i ? " " : "") << m.cpu_checks[i].name;
  o << "\" /* of those, what @P@_init checks the CPU for (else @UP@_E_CPU) */\n";
  o << "#define @UP@_ALIGNMENT " << kAlign << "\n";
  o << "#define @UP@_WORKSPACE_BYTES " << m.workspace_bytes << "u\n";
  o << "#define @UP@_ARENA_BYTES " << m.arena_bytes << "u\n";
  o << "#define @UP@_FEATURES_OFFSET " << m.features_offset << "u\n";
  o << "#define @UP@_WEIGHTS_BYTES " << kWeightsHeader + m.weights_payload << "u\n";
  o << "#define @UP@_WEIGHTS_FINGERPRINT 0x" << fmt::format("{:016x}", m.fingerprint) << "ull\n";
  o << "#define @UP@_WEIGHTS_EMBEDDED " << (m.embedded ? 1 : 0) << "\n";
  o << "#define @UP@_SLOTS " << m.slots.size() << "\n";
  o << "#define @UP@_RAW_COLUMNS " << raw.size() << " /* raw record columns the feature pipeline reads */\n";
  o << "#define @UP@_CLASSES " << m.classes.size() << "\n";
  o << kHeaderApi;
  return o.str();
}

// The worker pool of a threaded artifact (--threads N > 1): @P@_parallel_for, which the
// kernels in @P@.o call. N-1 workers, started on first use, take tasks with the caller,
// each thread its own contiguous block first (a batch-1 layer's columns: the same weights
// stay in the same core's cache call after call), then what is left of the others'; between
// calls they poll for a few milliseconds (spinning briefly, then yielding the core
// between polls, as the caller does while it waits for the last tasks), then sleep on a
// condition variable. A call that finds the pool busy (another context predicting at the
// same time) runs serially.
const char* kPoolSource = R"C(
/* The worker pool behind @P@_parallel_for (@UP@_THREADS threads per call, the caller's
 * included). A call's tasks are cut into one contiguous block per thread (the caller's is
 * block 0, worker w's block w), so that a thread runs the same tasks call after call and
 * finds their data in its own core's cache; a thread that has finished its block takes
 * what is left of the others'. Each block's cursor carries the call's generation in its top
 * 32 bits, so a worker that wakes late for an earlier call can never take a task of the
 * current one. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

typedef void (*@P@_task_fn)(void* ctx, int64_t index);
void @P@_parallel_for(int64_t count, @P@_task_fn fn, void* ctx);

static struct {
  pthread_once_t once;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  atomic_int busy, sleepers, started;
  atomic_uint generation;
  atomic_ullong cursor[@UP@_THREADS]; /* generation << 32 | next task of the block */
  atomic_llong done;
  _Atomic(@P@_task_fn) fn;
  _Atomic(void*) ctx;
  atomic_llong count;
} @P@_pool = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void @P@_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* The first task of thread `t`'s block of `count` tasks. */
static long long @P@_block_begin(long long count, int t) {
  return count / @UP@_THREADS * t + (t < count % @UP@_THREADS ? t : count % @UP@_THREADS);
}

/* Runs tasks of call `gen`, block `self` first, until none is left. */
static void @P@_take_tasks(unsigned gen, int self, @P@_task_fn fn, void* ctx, long long count) {
  for (int o = 0; o < @UP@_THREADS; ++o) {
    const int b = (self + o) % @UP@_THREADS;
    const long long end = @P@_block_begin(count, b + 1);
    for (;;) {
      unsigned long long t = atomic_load(&@P@_pool.cursor[b]);
      if ((unsigned)(t >> 32) != gen || (long long)(t & 0xffffffffull) >= end) break;
      if (!atomic_compare_exchange_weak(&@P@_pool.cursor[b], &t, t + 1)) continue;
      fn(ctx, (int64_t)(t & 0xffffffffull));
      atomic_fetch_add(&@P@_pool.done, 1);
    }
  }
}

static void* @P@_worker(void* arg) {
  const int self = (int)(intptr_t)arg;
  unsigned seen = atomic_load(&@P@_pool.generation);
  for (;;) {
    unsigned gen;
    long spins = 0;
    while ((gen = atomic_load(&@P@_pool.generation)) == seen) {
      if (++spins < 256) {
        @P@_relax();
        continue;
      }
      if (spins < 20000) { /* a few milliseconds, giving the core away between polls */
        sched_yield();
        continue;
      }
      pthread_mutex_lock(&@P@_pool.lock);
      atomic_fetch_add(&@P@_pool.sleepers, 1);
      while (atomic_load(&@P@_pool.generation) == seen) pthread_cond_wait(&@P@_pool.wake, &@P@_pool.lock);
      atomic_fetch_sub(&@P@_pool.sleepers, 1);
      pthread_mutex_unlock(&@P@_pool.lock);
      spins = 0;
    }
    seen = gen;
    @P@_take_tasks(gen, self, atomic_load(&@P@_pool.fn), atomic_load(&@P@_pool.ctx), atomic_load(&@P@_pool.count));
  }
  return NULL;
}

static void @P@_start_workers(void) {
  int started = 0;
  for (int w = 1; w < @UP@_THREADS; ++w) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, @P@_worker, (void*)(intptr_t)w) == 0) ++started;
    pthread_attr_destroy(&attr);
  }
  atomic_store(&@P@_pool.started, started);
}

void @P@_parallel_for(int64_t count, @P@_task_fn fn, void* ctx) {
  int expected = 0;
  if (count > 1) pthread_once(&@P@_pool.once, @P@_start_workers);
  if (count <= 1 || count > 0xffffffffll || atomic_load(&@P@_pool.started) == 0 ||
      !atomic_compare_exchange_strong(&@P@_pool.busy, &expected, 1)) {
    for (int64_t i = 0; i < count; ++i) fn(ctx, i);
    return;
  }
  unsigned gen = atomic_load(&@P@_pool.generation) + 1;
  atomic_store(&@P@_pool.fn, fn);
  atomic_store(&@P@_pool.ctx, ctx);
  atomic_store(&@P@_pool.count, (long long)count);
  atomic_store(&@P@_pool.done, 0);
  for (int b = 0; b < @UP@_THREADS; ++b)
    atomic_store(&@P@_pool.cursor[b], (unsigned long long)gen << 32 | (unsigned long long)@P@_block_begin(count, b));
  atomic_store(&@P@_pool.generation, gen);
  if (atomic_load(&@P@_pool.sleepers) > 0) {
    pthread_mutex_lock(&@P@_pool.lock);
    pthread_cond_broadcast(&@P@_pool.wake);
    pthread_mutex_unlock(&@P@_pool.lock);
  }
  @P@_take_tasks(gen, 0, fn, ctx, (long long)count);
  /* The last tasks run elsewhere: poll, and yield between polls after a while, so that a
   * worker the OS has not scheduled yet gets this core instead of waiting for it. */
  for (long polls = 0; atomic_load(&@P@_pool.done) < (long long)count; ++polls) {
    if (polls < 256) {
      @P@_relax();
    } else {
      sched_yield();
    }
  }
  /* Close the call's blocks before the next call may change fn, ctx and count: a worker
   * still holding this generation then finds no task to take. */
  for (int b = 0; b < @UP@_THREADS; ++b) atomic_store(&@P@_pool.cursor[b], (unsigned long long)gen << 32 | 0xffffffffull);
  atomic_store(&@P@_pool.busy, 0);
}
)C";

std::string runtime_source(const Model& m, const std::vector<RawColumn>& raw, const std::string& pipeline,
                           const std::string& labels) {
  std::ostringstream o;
  o << "/* @P@_runtime.c: the glue around @P@.o, generated by `kiln build`. */\n"
    << "#include <math.h>\n#include <stdarg.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
    << "#include <string.h>\n#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))\n#include "
       "<cpuid.h>\n#endif\n"
    << "\n#include \"@P@.h\"\n\n";
  if (m.threads > 1) o << kPoolSource << "\n";
  if (m.embedded) {
    o << "/* The weights file, linked in (64-byte aligned, read-only). */\n"
      << "__asm__(\".section .rodata\\n.balign 64\\n.globl @P@_weights_blob\\n.hidden @P@_weights_blob\\n"
      << "@P@_weights_blob:\\n.incbin \\\"@P@.weights\\\"\\n.previous\\n\");\n"
      << "extern const unsigned char @P@_weights_blob[];\n";
  }
  // Entries.
  std::ostringstream tables;
  tables << "\n/* Entry points in @P@.o, one per batch size. */\n";
  for (const codegen::CodegenReport& r : m.reports) {
    tables << "void " << r.entry << "(void* arena, void* const* slots, const @P@_run_state* state);\n";
  }
  tables << "#define @UP@_ENTRIES " << m.reports.size() << "\n";
  tables << "static const @P@_entry_fn @P@_entries[@UP@_ENTRIES] = {";
  for (std::size_t e = 0; e < m.reports.size(); ++e) tables << (e ? ", " : "") << m.reports[e].entry;
  tables << "};\nstatic const size_t @P@_entry_batch[@UP@_ENTRIES] = {";
  for (std::size_t e = 0; e < m.batches.size(); ++e) tables << (e ? ", " : "") << m.batches[e];
  tables << "};\n\n/* Slots, in the entries' order: 0 input, 1 variable (offset into the weights payload), 2 state "
            "write (workspace offset), 3 output (its index). */\n";
  tables << "static const unsigned char @P@_slot_kind[@UP@_SLOTS] = {";
  for (std::size_t k = 0; k < m.slots.size(); ++k) tables << (k ? ", " : "") << static_cast<int>(m.slots[k].kind);
  tables << "};\nstatic const size_t @P@_slot_arg[@UP@_SLOTS] = {";
  for (std::size_t k = 0; k < m.slots.size(); ++k) tables << (k ? ", " : "") << m.slot_arg[k];
  tables << "};\n";
  for (std::size_t k = 0; k < m.slots.size(); ++k) {
    tables << "/*   slot " << k << ": " << m.slots[k].name << " */\n";
  }
  // One chunk: bind the input and output slots, run the entry.
  tables << "\nstatic void @P@_run(@P@_ctx* ctx, int e, const float* in, float* out, const @P@_run_state* state) {\n";
  const bool staged = m.outputs.size() > 1;
  if (staged) tables << "  const size_t b = @P@_entry_batch[e];\n";
  for (std::size_t k = 0; k < m.slots.size(); ++k) {
    if (m.slots[k].kind == codegen::SlotKind::kInput) tables << "  ctx->slots[" << k << "] = (void*)in;\n";
    if (m.slots[k].kind == codegen::SlotKind::kOutput) {
      if (!staged) {
        tables << "  ctx->slots[" << k << "] = out;\n";
      } else {
        const OutputInfo& oi = m.outputs[m.slot_arg[k]];
        tables << "  ctx->slots[" << k << "] = ctx->workspace + " << m.staging_offset << " + "
               << oi.column * m.batches.back() * 4 << ";\n";
      }
    }
  }
  tables << "  @P@_entries[e](ctx->workspace, ctx->slots, state);\n";
  if (staged) {
    tables << "  for (size_t r = 0; r < b; ++r) {\n";
    for (const OutputInfo& oi : m.outputs) {
      tables << "    memcpy(out + r * @UP@_OUTPUT_WIDTH + " << oi.column << ", (const float*)(ctx->workspace + "
             << m.staging_offset << " + " << oi.column * m.batches.back() * 4 << ") + r * " << oi.width << ", "
             << oi.width * 4 << ");\n";
    }
    tables << "  }\n";
  } else {
    tables << "  (void)out;\n";
  }
  tables << "}\n";
  // The CPU check: code compiled for extensions the CPU lacks would fault, so @P@_init
  // refuses such a CPU. CPUID is read directly (cpuid.h, GCC and clang; other compilers skip
  // the check), with XGETBV for the register state the OS must save: __builtin_cpu_supports
  // knows only some of the extensions LLVM may use, and a different set in each compiler.
  tables << "\n/* The first extension @P@.o was compiled for (@UP@_CPU_EXTENSIONS) that this CPU lacks, as\n"
         << " * @P@_strerror's message; NULL when it has them all. */\n"
         << "static const char* @P@_cpu_missing(void) {\n";
  if (!m.cpu_checks.empty()) {
    tables << "#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))\n"
           << "  static const struct {\n    unsigned leaf, subleaf, reg, bit, xcr0;\n    const char* message;\n"
           << "  } need[] = {\n";
    for (const codegen::CpuCheck& c : m.cpu_checks) {
      tables << "      {0x" << fmt::format("{:x}", c.leaf) << "u, " << c.subleaf << ", " << c.reg << ", " << c.bit
             << ", 0x" << fmt::format("{:x}", c.xcr0) << "u, \"this CPU lacks " << c.name
             << ", an instruction set extension @P@.o was compiled for (the CPU \" @UP@_TARGET_CPU \"): \"\n"
             << "        \"build the artifact for this CPU with kiln build --cpu\"},\n";
    }
    tables << "  };\n  unsigned r[4], xcr0 = 0;\n"
           << "  if (__get_cpuid(1, &r[0], &r[1], &r[2], &r[3]) && (r[2] >> 27 & 1u)) { /* OSXSAVE: XGETBV works */\n"
           << "    unsigned lo, hi;\n    __asm__ volatile(\"xgetbv\" : \"=a\"(lo), \"=d\"(hi) : \"c\"(0));\n"
           << "    (void)hi;\n    xcr0 = lo;\n  }\n"
           << "  for (size_t i = 0; i < sizeof need / sizeof need[0]; ++i) {\n"
           << "    if (!__get_cpuid_count(need[i].leaf, need[i].subleaf, &r[0], &r[1], &r[2], &r[3]) ||\n"
           << "        !(r[need[i].reg] >> need[i].bit & 1u) || (xcr0 & need[i].xcr0) != need[i].xcr0)\n"
           << "      return need[i].message;\n  }\n#endif\n";
  }
  tables << "  return NULL;\n}\n";
  // Helpers, with the tables spliced in after the run-state typedef.
  std::string helpers = kRuntimeHelpers;
  const std::string marker = "static uint32_t @P@_crc32c";
  helpers.insert(helpers.find(marker), tables.str() + "\n");
  o << helpers;
  // Names.
  o << "\n@UP@_API const char* const @P@_raw_columns[@UP@_RAW_COLUMNS] = {";
  for (std::size_t i = 0; i < raw.size(); ++i) o << (i ? ", " : "") << c_string(raw[i].name);
  o << "};\n@UP@_API const char* const @P@_output_names[@UP@_OUTPUTS] = {";
  for (std::size_t i = 0; i < m.outputs.size(); ++i) o << (i ? ", " : "") << c_string(m.outputs[i].name);
  o << "};\n@UP@_API const int @P@_output_widths[@UP@_OUTPUTS] = {";
  for (std::size_t i = 0; i < m.outputs.size(); ++i) o << (i ? ", " : "") << m.outputs[i].width;
  o << "};\n\n";
  o << "@UP@_API int @P@_transform_row(const char* const* cells, float* f, char* why, size_t why_len) {\n"
    << "  if (cells == NULL || f == NULL) return 0;\n"
    << pipeline << "  return 1;\n}\n\n";
  o << "@UP@_API int @P@_check_labels(const char* const* cells, const int* present, char* why, size_t why_len) {\n"
    << "  (void)cells;\n  (void)present;\n  (void)why;\n  (void)why_len;\n"
    << labels << "  return 1;\n}\n";
  return o.str();
}

std::string float_array(const std::string& name, const std::vector<float>& values) {
  std::ostringstream o;
  o << "static const float " << name << "[" << values.size() << "] = {";
  for (std::size_t i = 0; i < values.size(); ++i) o << (i % 8 == 0 ? "\n  " : " ") << c_float(values[i]) << ",";
  o << "\n};\n";
  return o.str();
}

std::string smoke_source(const Model& m) {
  std::ostringstream o;
  o << "/* @P@_smoke.c: runs a fixed input through @P@_predict and compares with the outputs Kiln's reference kernels\n"
       " * computed at build time. Exit 0 when every value agrees within 1e-4 (relative to max(1, |expected|)). */\n"
       "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n\n#include \"@P@.h\"\n\n"
    << "#define DISTINCT " << m.smoke_rows << "\n"
    << float_array("smoke_input", m.smoke_input) << float_array("smoke_expected", m.smoke_expected) << R"C(
static unsigned char workspace[@UP@_WORKSPACE_BYTES] __attribute__((aligned(64)));
static float input[@UP@_MAX_BATCH * @UP@_INPUT_WIDTH];
static float output[@UP@_MAX_BATCH * @UP@_OUTPUT_WIDTH];

static double check(size_t n, const char* what) {
  double worst = 0;
  for (size_t r = 0; r < n; ++r) {
    for (int k = 0; k < @UP@_OUTPUT_WIDTH; ++k) {
      double e = smoke_expected[(r % DISTINCT) * @UP@_OUTPUT_WIDTH + k];
      double got = output[r * @UP@_OUTPUT_WIDTH + k];
      double err = fabs(got - e) / (fabs(e) > 1 ? fabs(e) : 1);
      if (!(err <= worst)) worst = err;
      if (!(err <= 1e-4)) {
        fprintf(stderr, "@P@_smoke: %s: row %zu output %d is %.9g, expected %.9g\n", what, r, k, got, e);
        exit(1);
      }
    }
  }
  return worst;
}

int main(int argc, char** argv) {
  @P@_ctx ctx;
  void* weights = NULL;
  double worst = 0, w;
  int rc;
#if !@UP@_WEIGHTS_EMBEDDED
  const char* path = argc > 1 ? argv[1] : "@P@.weights";
  weights = aligned_alloc(64, (@UP@_WEIGHTS_BYTES + 63) / 64 * 64);
  rc = weights ? @P@_load_weights(path, weights, @UP@_WEIGHTS_BYTES) : @UP@_E_IO;
  if (rc != 0) {
    fprintf(stderr, "@P@_smoke: %s: %s\n", path, @P@_strerror(rc));
    return 1;
  }
#else
  (void)argc;
  (void)argv;
#endif
  rc = @P@_init(&ctx, workspace, weights);
  if (rc != 0) {
    fprintf(stderr, "@P@_smoke: init: %s\n", @P@_strerror(rc));
    return 1;
  }
  for (size_t r = 0; r < @UP@_MAX_BATCH; ++r)
    for (int k = 0; k < @UP@_INPUT_WIDTH; ++k)
      input[r * @UP@_INPUT_WIDTH + k] = smoke_input[(r % DISTINCT) * @UP@_INPUT_WIDTH + k];
  /* n = max: the largest entry; n = max - 1: every smaller one. */
  size_t sizes[3] = {@UP@_MAX_BATCH, @UP@_MAX_BATCH - 1, 1};
  for (int i = 0; i < 3; ++i) {
    if (sizes[i] == 0) continue;
    rc = @P@_predict(&ctx, input, sizes[i], output);
    if (rc != 0) {
      fprintf(stderr, "@P@_smoke: predict: %s\n", @P@_strerror(rc));
      return 1;
    }
    w = check(sizes[i], sizes[i] == @UP@_MAX_BATCH ? "n=max" : "n<max");
    if (w > worst) worst = w;
  }
  printf("{\"smoke\": \"ok\", \"rows\": %d, \"max_relative_error\": %.3g}\n", @UP@_MAX_BATCH, worst);
  free(weights);
  return 0;
}
)C";
  return o.str();
}

// Batch-1 timing, shared by <P>_bench.c and the predictor's --latency (inserted at @LATENCY@).
const char* kLatencySource = R"C(/* ---- batch-1 latency ---- */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  double median, p99; /* seconds a call, the clock's two reads included */
  double clock_read;  /* what reading the clock twice costs */
} latency_t;

/* Times `calls` calls of @P@_predict with one row each, after 1000 untimed ones: call i takes
 * row i % count of `rows`, copied first (untimed) into an aligned staging row, as a request's
 * row arrives fresh in cache. Adds each call's output[0] to *sink. 0, -1 where the call times
 * (8 bytes a call) cannot be allocated, or @P@_predict's error code. */
static int time_batch1(@P@_ctx* ctx, const float* rows, long count, long calls, float* output, double* sink,
                       latency_t* r) {
  static float stage[@UP@_INPUT_WIDTH] __attribute__((aligned(64)));
  double* times = (double*)malloc(sizeof(double) * (size_t)calls);
  long i;
  int rc;
  if (times == NULL) return -1;
  for (i = 0; i < 1000; ++i) {
    memcpy(stage, rows + (i % count) * @UP@_INPUT_WIDTH, sizeof stage);
    rc = @P@_predict(ctx, stage, 1, output);
    if (rc != 0) {
      free(times);
      return rc;
    }
  }
  for (i = 0; i < calls; ++i) {
    memcpy(stage, rows + (i % count) * @UP@_INPUT_WIDTH, sizeof stage);
    double t0 = now();
    @P@_predict(ctx, stage, 1, output);
    times[i] = now() - t0;
    *sink += output[0];
  }
  r->clock_read = now();
  for (i = 0; i < 1000; ++i) now();
  r->clock_read = (now() - r->clock_read) / 1000.0;
  qsort(times, (size_t)calls, sizeof(double), by_value);
  r->median = times[calls / 2];
  i = (long)((double)calls * 0.99);
  r->p99 = times[i < calls ? i : calls - 1];
  free(times);
  return 0;
}
)C";

const char* kBenchSource = R"C(/* @P@_bench.c: batch-1 latency (median and p99 over N calls, default 100000) and
 * batch-max throughput of @P@_predict. Prints JSON. Usage: @P@_bench [CALLS] [WEIGHTS] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "@P@.h"

static unsigned char workspace[@UP@_WORKSPACE_BYTES] __attribute__((aligned(64)));
static float input[@UP@_MAX_BATCH * @UP@_INPUT_WIDTH] __attribute__((aligned(64)));
static float output[@UP@_MAX_BATCH * @UP@_OUTPUT_WIDTH] __attribute__((aligned(64)));

@LATENCY@
int main(int argc, char** argv) {
  long calls = argc > 1 ? atol(argv[1]) : 100000;
  void* weights = NULL;
  @P@_ctx ctx;
  latency_t latency;
  double start, elapsed, sink = 0;
  long rows = 0, i;
  int rc;
  if (calls < 1) calls = 1;
#if !@UP@_WEIGHTS_EMBEDDED
  const char* path = argc > 2 ? argv[2] : "@P@.weights";
  weights = aligned_alloc(64, (@UP@_WEIGHTS_BYTES + 63) / 64 * 64);
  rc = weights ? @P@_load_weights(path, weights, @UP@_WEIGHTS_BYTES) : @UP@_E_IO;
  if (rc != 0) {
    fprintf(stderr, "@P@_bench: %s: %s\n", path, @P@_strerror(rc));
    return 1;
  }
#endif
  rc = @P@_init(&ctx, workspace, weights);
  if (rc != 0) {
    fprintf(stderr, "@P@_bench: %s\n", @P@_strerror(rc));
    return 1;
  }
  for (i = 0; i < @UP@_MAX_BATCH * @UP@_INPUT_WIDTH; ++i) input[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
  rc = time_batch1(&ctx, input, @UP@_MAX_BATCH, calls, output, &sink, &latency);
  if (rc != 0) {
    fprintf(stderr, "@P@_bench: %s\n", rc < 0 ? "out of memory for the call times (8 bytes a call)" : @P@_strerror(rc));
    return 1;
  }
  /* The same calls timed as one block: the mean without the clock's own cost per call. */
  start = now();
  for (i = 0; i < calls; ++i) {
    @P@_predict(&ctx, input + (i % @UP@_MAX_BATCH) * @UP@_INPUT_WIDTH, 1, output);
    sink += output[0];
  }
  double block_mean = (now() - start) / (double)calls;
  start = now();
  do {
    for (i = 0; i < 16; ++i) @P@_predict(&ctx, input, @UP@_MAX_BATCH, output);
    rows += 16L * @UP@_MAX_BATCH;
    elapsed = now() - start;
  } while (elapsed < 0.5);
  sink += output[0];
  printf("{\"model\": \"@P@\", \"batch1_calls\": %ld, \"batch1_median_us\": %.3f, \"batch1_p99_us\": %.3f, "
         "\"batch1_mean_us_block\": %.3f, \"clock_read_us\": %.3f, "
         "\"max_batch\": %d, \"max_batch_rows_per_s\": %.0f, \"checksum\": %.6g}\n",
         calls, latency.median * 1e6, latency.p99 * 1e6, block_mean * 1e6, latency.clock_read * 1e6, @UP@_MAX_BATCH,
         (double)rows / elapsed, sink);
  free(weights);
  return 0;
}
)C";

}  // namespace
}  // namespace kiln::cli

namespace kiln::cli {
namespace {

const char* kMainSource = R"C(/* @P@_main.c: the standalone predictor, generated by `kiln build`.
 *
 *   @P@ [--format csv|jsonl] [--weights FILE] [--latency CALLS] [INPUT]
 *
 * Reads raw records from INPUT (or standard input): CSV with a header row, or JSON lines
 * (one object per line; chosen by a .jsonl/.ndjson/.json name or a first character '{'). Applies
 * the fitted feature pipeline compiled into the library, predicts in batches of up to
 * @UP@_MAX_BATCH rows and writes one prediction per record, as `kiln predict` does. Records
 * the pipeline rejects are reported on standard error and skipped.
 *
 * --latency CALLS: instead of predictions, the batch-1 latency of @P@_predict on these
 * records (the first LATENCY_RECORDS, 100000, of them; each call one record, cycling): median and
 * p99 over CALLS calls as one JSON line, like @P@_bench's on its synthetic rows.
 */
#define _POSIX_C_SOURCE 200809L /* getline, also under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "@P@.h"

@TABLES@

typedef struct {
  char* data;
  size_t len, cap;
} text_t;

static void put(text_t* t, char c) {
  if (t->len + 1 >= t->cap) {
    t->cap = t->cap ? t->cap * 2 : 4096;
    t->data = (char*)realloc(t->data, t->cap);
    if (t->data == NULL) {
      fprintf(stderr, "@P@: out of memory\n");
      exit(2);
    }
  }
  t->data[t->len++] = c;
}

typedef struct {
  size_t* at;
  size_t count, cap;
} offsets_t;

static void push(offsets_t* o, size_t v) {
  if (o->count == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 64;
    o->at = (size_t*)realloc(o->at, o->cap * sizeof(size_t));
    if (o->at == NULL) {
      fprintf(stderr, "@P@: out of memory\n");
      exit(2);
    }
  }
  o->at[o->count++] = v;
}

/* One RFC 4180 record: fields NUL-terminated in `text` at `fields`. Returns 1 for a record
 * (*malformed says why it is not one, or is NULL), 0 at the end, and 2 for a quote still open
 * at the end of the file (opened in the record that starts on *start_line). */
static int next_csv(FILE* in, long* line, text_t* text, offsets_t* fields, long* start_line, const char** malformed) {
  int c;
  for (;;) {
    c = getc(in);
    if (c == EOF) return 0;
    if (c == '\n') {
      ++*line;
      continue;
    }
    if (c == '\r') {
      int d = getc(in);
      if (d != '\n' && d != EOF) ungetc(d, in);
      ++*line;
      continue;
    }
    break;
  }
  text->len = 0;
  fields->count = 0;
  *malformed = NULL;
  *start_line = *line;
  push(fields, 0);
  for (;;) {
    if (c == '"' && text->len == fields->at[fields->count - 1]) {
      for (;;) {
        c = getc(in);
        if (c == EOF) return 2;
        if (c == '\n') ++*line;
        if (c == '"') {
          c = getc(in);
          if (c != '"') break;
        }
        if (c == 0) *malformed = "a NUL byte in a field";
        put(text, (char)c);
      }
      if (c != ',' && c != '\n' && c != '\r' && c != EOF) *malformed = "text after a closing quote";
      if (c != ',' && c != '\n' && c != '\r' && c != EOF) {
        put(text, (char)c);
        c = getc(in);
        continue;
      }
    }
    if (c == ',') {
      put(text, 0);
      push(fields, text->len);
      c = getc(in);
      continue;
    }
    if (c == '\r') {
      int d = getc(in);
      if (d != '\n' && d != EOF) ungetc(d, in);
      c = '\n';
    }
    if (c == '\n' || c == EOF) {
      if (c == '\n') ++*line;
      put(text, 0);
      return 1;
    }
    if (c == 0) *malformed = "a NUL byte in a field";
    put(text, (char)c);
    c = getc(in);
  }
}

/* ---- JSON lines: one object per line whose values are scalars or arrays of scalars (an
 * array KEY: [...] gives KEY_0, KEY_1, ...). The grammar and the reasons are those of Kiln's
 * runtime/data/json_record.cpp, which kiln predict reads JSON lines with: the two accept
 * and refuse the same lines. ---- */

#define JSON_NOT_OBJECT "expected '{': a record is one JSON object"
#define JSON_KEY "expected a string key"
#define JSON_COLON "expected ':' after the key"
#define JSON_VALUE "expected a value: a string, a number, true, false, null or an array of them"
#define JSON_NESTED "a nested object or array: values are scalars or arrays of scalars"
#define JSON_AFTER_MEMBER "expected ',' or '}' after a value"
#define JSON_AFTER_ELEMENT "expected ',' or ']' after an array element"
#define JSON_NUMBER "not a JSON number"
#define JSON_UNTERMINATED "unterminated string"
#define JSON_CONTROL "a control character in a string (JSON escapes it, e.g. \\t)"
#define JSON_ESCAPE "not a JSON escape"
#define JSON_UNICODE "a \\u escape that is not 4 hex digits, is \\u0000 or an unpaired surrogate"
#define JSON_TRAILING "text after the object"
#define JSON_NUL "a NUL byte"

typedef struct {
  const char* s;
  size_t len, at;  /* the line's bytes, and the cursor */
  const char* why; /* why the line is not a record (at the cursor), or NULL */
} json_t;

/* The byte at the cursor; 0 at the end of the line. */
static char jpeek(const json_t* j) {
  return j->at < j->len ? j->s[j->at] : 0;
}

/* Fails at the cursor: a NUL byte there is named as such, whatever the grammar expected. */
static int jfail(json_t* j, const char* why) {
  j->why = j->at < j->len && j->s[j->at] == 0 ? JSON_NUL : why;
  return 0;
}

static void skip_ws(json_t* j) {
  while (j->at < j->len && (j->s[j->at] == ' ' || j->s[j->at] == '\t' || j->s[j->at] == '\r' || j->s[j->at] == '\n'))
    ++j->at;
}

static void utf8(text_t* t, unsigned u) {
  if (u < 0x80) {
    put(t, (char)u);
  } else if (u < 0x800) {
    put(t, (char)(0xC0 | (u >> 6)));
    put(t, (char)(0x80 | (u & 0x3F)));
  } else if (u < 0x10000) {
    put(t, (char)(0xE0 | (u >> 12)));
    put(t, (char)(0x80 | ((u >> 6) & 0x3F)));
    put(t, (char)(0x80 | (u & 0x3F)));
  } else {
    put(t, (char)(0xF0 | (u >> 18)));
    put(t, (char)(0x80 | ((u >> 12) & 0x3F)));
    put(t, (char)(0x80 | ((u >> 6) & 0x3F)));
    put(t, (char)(0x80 | (u & 0x3F)));
  }
}

/* Four hex digits at the cursor (consumed), or -1. */
static long hex4(json_t* j) {
  long u = 0;
  for (int i = 0; i < 4; ++i) {
    const char h = jpeek(j);
    const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
    if (d < 0) return -1;
    u = u * 16 + d;
    ++j->at;
  }
  return u;
}

/* The string at the cursor (its opening quote), decoded into t with a closing NUL. */
static int json_string(json_t* j, text_t* t) {
  ++j->at;
  for (;;) {
    char c;
    if (j->at >= j->len) return jfail(j, JSON_UNTERMINATED);
    c = j->s[j->at];
    if (c == '"') {
      ++j->at;
      put(t, 0);
      return 1;
    }
    if ((unsigned char)c < 0x20) return jfail(j, JSON_CONTROL);
    if (c != '\\') {
      put(t, c);
      ++j->at;
      continue;
    }
    ++j->at;
    switch (jpeek(j)) {
      case '"': put(t, '"'); break;
      case '\\': put(t, '\\'); break;
      case '/': put(t, '/'); break;
      case 'b': put(t, '\b'); break;
      case 'f': put(t, '\f'); break;
      case 'n': put(t, '\n'); break;
      case 'r': put(t, '\r'); break;
      case 't': put(t, '\t'); break;
      case 'u': { /* a surrogate pair makes one code point; NUL and unpaired surrogates are refused */
        const size_t escape = j->at - 1;
        long u;
        ++j->at;
        u = hex4(j);
        if (u >= 0xD800 && u < 0xDC00 && jpeek(j) == '\\' && j->at + 1 < j->len && j->s[j->at + 1] == 'u') {
          long low;
          j->at += 2;
          low = hex4(j);
          u = low >= 0xDC00 && low < 0xE000 ? 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00) : -1;
        }
        if (u <= 0 || (u >= 0xD800 && u < 0xE000)) {
          j->at = escape;
          return jfail(j, JSON_UNICODE);
        }
        utf8(t, (unsigned)u);
        continue; /* hex4 moved past the digits */
      }
      default:
        if (j->at >= j->len) return jfail(j, JSON_UNTERMINATED);
        --j->at; /* at the backslash */
        return jfail(j, JSON_ESCAPE);
    }
    ++j->at;
  }
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* Whether the n bytes at s are a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(const char* s, size_t n) {
  size_t i = 0, from;
  if (i < n && s[i] == '-') ++i;
  if (i < n && s[i] == '0') {
    ++i;
  } else {
    for (from = i; i < n && is_digit(s[i]); ++i) {}
    if (i == from) return 0;
  }
  if (i < n && s[i] == '.') {
    for (from = ++i; i < n && is_digit(s[i]); ++i) {}
    if (i == from) return 0;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    for (from = i; i < n && is_digit(s[i]); ++i) {}
    if (i == from) return 0;
  }
  return i == n;
}

/* A scalar at the cursor into t (with a closing NUL): a string's text, a number's token as
 * written, true or false; *null set for null. */
static int json_scalar(json_t* j, text_t* t, int* null) {
  const char c = jpeek(j);
  const size_t start = j->at;
  size_t n;
  *null = 0;
  if (c == '"') return json_string(j, t);
  if (c == '{' || c == '[') return jfail(j, JSON_NESTED);
  if (is_digit(c) || c == '-' || c == '+' || c == '.') {
    /* The whole run of number characters is the token: 01, 1. and 1e are not numbers. */
    while (j->at < j->len && (is_digit(j->s[j->at]) || j->s[j->at] == '-' || j->s[j->at] == '+' ||
                              j->s[j->at] == '.' || j->s[j->at] == 'e' || j->s[j->at] == 'E'))
      ++j->at;
    if (!json_number(j->s + start, j->at - start)) {
      j->at = start;
      return jfail(j, JSON_NUMBER);
    }
  } else {
    while (j->at < j->len && ((j->s[j->at] >= 'a' && j->s[j->at] <= 'z') || (j->s[j->at] >= 'A' && j->s[j->at] <= 'Z') ||
                              is_digit(j->s[j->at]) || j->s[j->at] == '_'))
      ++j->at;
    n = j->at - start;
    if (n == 4 && memcmp(j->s + start, "null", 4) == 0) {
      *null = 1;
      put(t, 0);
      return 1;
    }
    if (!((n == 4 && memcmp(j->s + start, "true", 4) == 0) || (n == 5 && memcmp(j->s + start, "false", 5) == 0))) {
      j->at = start;
      return jfail(j, JSON_VALUE);
    }
  }
  for (n = start; n < j->at; ++n) put(t, j->s[n]);
  put(t, 0);
  return 1;
}

/* After the closing brace: white space to the end of the line. */
static int json_end(json_t* j) {
  skip_ws(j);
  return j->at < j->len ? jfail(j, JSON_TRAILING) : 1;
}

/* Parses one line into keys and values (offsets into `text`; value SIZE_MAX = null); 0 if it
 * is not a record, with j->why and j->at saying why and where. */
static int parse_object_at(json_t* jp, text_t* text, offsets_t* keys, offsets_t* values) {
  text->len = 0;
  keys->count = values->count = 0;
  skip_ws(jp);
  if (jpeek(jp) != '{') return jfail(jp, JSON_NOT_OBJECT);
  ++jp->at;
  skip_ws(jp);
  if (jpeek(jp) == '}') {
    ++jp->at;
    return json_end(jp);
  }
  for (;;) {
    size_t key = text->len;
    int null;
    skip_ws(jp);
    if (jpeek(jp) != '"') return jfail(jp, JSON_KEY);
    if (!json_string(jp, text)) return 0;
    skip_ws(jp);
    if (jpeek(jp) != ':') return jfail(jp, JSON_COLON);
    ++jp->at;
    skip_ws(jp);
    if (jpeek(jp) == '[') {
      size_t n = 0;
      ++jp->at;
      skip_ws(jp);
      if (jpeek(jp) == ']') {
        ++jp->at;
      } else {
        for (;;) {
          char name[32];
          size_t k = text->len, v;
          snprintf(name, sizeof name, "_%zu", n++);
          for (size_t q = key; text->data[q]; ++q) put(text, text->data[q]); /* put may move text->data */
          for (const char* p = name; *p; ++p) put(text, *p);
          put(text, 0);
          v = text->len;
          if (!json_scalar(jp, text, &null)) return 0;
          push(keys, k);
          push(values, null ? (size_t)-1 : v);
          skip_ws(jp);
          if (jpeek(jp) == ',') {
            ++jp->at;
            skip_ws(jp);
            continue;
          }
          if (jpeek(jp) == ']') {
            ++jp->at;
            break;
          }
          return jfail(jp, JSON_AFTER_ELEMENT);
        }
      }
    } else {
      size_t v = text->len;
      if (!json_scalar(jp, text, &null)) return 0;
      push(keys, key);
      push(values, null ? (size_t)-1 : v);
    }
    skip_ws(jp);
    if (jpeek(jp) == ',') {
      ++jp->at;
      continue;
    }
    if (jpeek(jp) == '}') {
      ++jp->at;
      return json_end(jp);
    }
    return jfail(jp, JSON_AFTER_MEMBER);
  }
}

/* parse_object_at on the line's `len` bytes; *column (1-based) and *why say where and why a
 * line that is not a record goes wrong. */
static int parse_object(const char* line, size_t len, text_t* text, offsets_t* keys, offsets_t* values,
                        size_t* column, const char** why) {
  json_t j = {line, len, 0, NULL};
  const int ok = parse_object_at(&j, text, keys, values);
  *column = j.at + 1;
  *why = j.why;
  return ok;
}

/* ---- batches ---- */

static float features[@UP@_MAX_BATCH * @UP@_INPUT_WIDTH];
static float outputs[@UP@_MAX_BATCH * @UP@_OUTPUT_WIDTH];
static long lines[@UP@_MAX_BATCH];
static size_t rows = 0;
static int jsonl_out = 0, header_done = 0;
/* --latency: the records' feature rows, kept instead of predicted. */
#define LATENCY_RECORDS 100000
static long latency_calls = 0;
static float* kept = NULL;
static long kept_rows = 0, kept_cap = 0, not_kept = 0;
static unsigned char workspace[@UP@_WORKSPACE_BYTES] __attribute__((aligned(64)));
static @P@_ctx ctx;

/* json_text and best_class serve models with class outputs. */
__attribute__((unused)) static void json_text(const char* s) {
  putchar('"');
  for (; *s; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      putchar('\\');
      putchar(c);
    } else if (c < 0x20) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

__attribute__((unused)) static const char* best_class(const float* v, int n) {
  int best = 0;
  for (int k = 1; k < n; ++k)
    if (v[k] > v[best]) best = k;
  return classes[best];
}

static void flush(void) {
  int rc;
  if (rows == 0) return;
  rc = @P@_predict(&ctx, features, rows, outputs);
  if (rc != 0) {
    fprintf(stderr, "@P@: error: %s\n", @P@_strerror(rc));
    exit(2);
  }
  if (!jsonl_out && !header_done) {
    fputs(csv_header, stdout);
    header_done = 1;
  }
  for (size_t r = 0; r < rows; ++r) {
    const float* v = outputs + r * @UP@_OUTPUT_WIDTH;
    long line = lines[r];
    (void)v;
    if (jsonl_out) {
@JSON_ROW@
    } else {
@CSV_ROW@
    }
  }
  rows = 0;
}

static void record(const char* file, long line, const char* const* cells, const char* const* label_cells,
                   const int* present) {
  char why[512];
  float* row = features + rows * @UP@_INPUT_WIDTH;
  if (latency_calls > 0) {
    if (kept_rows == LATENCY_RECORDS) {
      ++not_kept;
      return;
    }
    if (kept_rows == kept_cap) {
      kept_cap = kept_cap ? 2 * kept_cap : 256;
      if (kept_cap > LATENCY_RECORDS) kept_cap = LATENCY_RECORDS;
      kept = (float*)realloc(kept, sizeof(float) * (size_t)kept_cap * @UP@_INPUT_WIDTH);
      if (kept == NULL) {
        fprintf(stderr, "@P@: out of memory\n");
        exit(2);
      }
    }
    row = kept + kept_rows * @UP@_INPUT_WIDTH;
  }
  if (!@P@_check_labels(label_cells, present, why, sizeof why) || !@P@_transform_row(cells, row, why, sizeof why)) {
    fprintf(stderr, "%s:%ld: skipped: %s\n", file, line, why);
    return;
  }
  if (latency_calls > 0) {
    ++kept_rows;
    return;
  }
  lines[rows++] = line;
  if (rows == @UP@_MAX_BATCH) flush();
}

@LATENCY@
/* --latency: times the kept records and prints one JSON line. 0, or the exit status. */
static int report_latency(const char* file) {
  latency_t r;
  double sink = 0;
  int rc;
  if (kept_rows == 0) {
    fprintf(stderr, "%s: error: --latency needs at least one record the model can read; none was\n", file);
    return 1;
  }
  if (not_kept > 0)
    fprintf(stderr, "@P@: --latency times the first %d records; %ld more were read and left out\n", LATENCY_RECORDS,
            not_kept);
  rc = time_batch1(&ctx, kept, kept_rows, latency_calls, outputs, &sink, &r);
  if (rc != 0) {
    fprintf(stderr, "@P@: error: %s\n",
            rc < 0 ? "out of memory for the call times (8 bytes a call): ask for fewer --latency calls" : @P@_strerror(rc));
    return 2;
  }
  printf("{\"model\": \"@P@\", \"records\": %ld, \"batch1_calls\": %ld, \"batch1_median_us\": %.3f, "
         "\"batch1_p99_us\": %.3f, \"clock_read_us\": %.3f, \"checksum\": %.6g}\n",
         kept_rows, latency_calls, r.median * 1e6, r.p99 * 1e6, r.clock_read * 1e6, sink);
  return 0;
}

/* The raw columns' indices sorted by name, so that a JSON record's keys are looked up in
 * log time (an image record has a key per pixel). */
static int raw_order[@UP@_RAW_COLUMNS];

static int by_name(const void* a, const void* b) {
  return strcmp(@P@_raw_columns[*(const int*)a], @P@_raw_columns[*(const int*)b]);
}

static void sort_raw_columns(void) {
  for (int k = 0; k < @UP@_RAW_COLUMNS; ++k) raw_order[k] = k;
  qsort(raw_order, @UP@_RAW_COLUMNS, sizeof raw_order[0], by_name);
}

/* The raw column named `key`, or -1. */
static int raw_column(const char* key) {
  size_t lo = 0, hi = @UP@_RAW_COLUMNS;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const int c = strcmp(key, @P@_raw_columns[raw_order[mid]]);
    if (c == 0) return raw_order[mid];
    if (c < 0) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return -1;
}

static int ends_with(const char* s, const char* suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

int main(int argc, char** argv) {
  const char* path = NULL;
  const char* weights_path = NULL;
  void* weights = NULL;
  FILE* in;
  int rc, jsonl_in = 0, status = 0;
  long blank_lines = 0;
  size_t lead = 0;
  const char* file = NULL;
  char* buf = NULL; /* a JSON line */
  text_t text = {0};
  offsets_t fields = {0}, keys = {0}, values = {0};
  const char* cells[@UP@_RAW_COLUMNS + 1];
  const char* label_cells[LABELS + 1];
  int present[LABELS + 1] = {0};
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
      const char* f = argv[++i];
      if (strcmp(f, "jsonl") == 0) {
        jsonl_out = 1;
      } else if (strcmp(f, "csv") != 0) {
        fprintf(stderr, "@P@: error: --format is csv or jsonl\n");
        return 1;
      }
    } else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
      weights_path = argv[++i];
    } else if (strcmp(argv[i], "--latency") == 0 && i + 1 < argc) {
      const char* n = argv[++i];
      char* end = NULL;
      latency_calls = strtol(n, &end, 10);
      if (*n < '0' || *n > '9' || *end != 0 || latency_calls < 1 || latency_calls > 1000000000L) {
        fprintf(stderr, "@P@: error: --latency takes a number of calls from 1 to 1000000000, not '%s'\n", n);
        return 1;
      }
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: %s [--format csv|jsonl] [--weights FILE] [--latency CALLS] [INPUT.csv|INPUT.jsonl]\n", argv[0]);
      return 0;
    } else if (path == NULL) {
      path = argv[i];
    } else {
      fprintf(stderr, "@P@: error: unexpected argument '%s'\n", argv[i]);
      return 1;
    }
  }
  /* From here on every way out goes through `done`, which writes what is pending and frees. */
  in = NULL;
#if !@UP@_WEIGHTS_EMBEDDED
  {
    static char beside[4096];
    if (weights_path == NULL) {
      const char* slash = strrchr(argv[0], '/');
      snprintf(beside, sizeof beside, "%.*s@P@.weights", slash ? (int)(slash - argv[0] + 1) : 0, argv[0]);
      weights_path = beside;
    }
    weights = aligned_alloc(64, (@UP@_WEIGHTS_BYTES + 63) / 64 * 64);
    rc = weights ? @P@_load_weights(weights_path, weights, @UP@_WEIGHTS_BYTES) : @UP@_E_IO;
    if (rc != 0) {
      fprintf(stderr, "@P@: error: %s: %s\n", weights_path, @P@_strerror(rc));
      status = 1;
      goto done;
    }
  }
#else
  (void)weights_path;
#endif
  rc = @P@_init(&ctx, workspace, weights);
  if (rc != 0) {
    fprintf(stderr, "@P@: error: %s\n", @P@_strerror(rc));
    status = 1;
    goto done;
  }
  in = path == NULL || strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (in == NULL) {
    fprintf(stderr, "@P@: error: cannot open '%s'\n", path);
    status = 1;
    goto done;
  }
  file = in == stdin ? "<stdin>" : path;
  {
    /* The first non-blank byte decides. What is read past still counts: the blank lines
     * in line numbers, the blanks before that byte in the first line's columns. */
    int c = getc(in);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      lead = c == '\n' ? 0 : lead + 1;
      if (c == '\n') ++blank_lines;
      c = getc(in);
    }
    jsonl_in = c == '{' || (path != NULL && (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") ||
                                             ends_with(path, ".json")));
    if (c != EOF) ungetc(c, in);
  }
  if (!jsonl_in) {
    long line = 1 + blank_lines, start = 0;
    const char* malformed;
    int header_fields, got;
    int where[@UP@_RAW_COLUMNS + 1], label_where[LABELS + 1];
    got = next_csv(in, &line, &text, &fields, &start, &malformed);
    if (got != 1 || malformed != NULL) {
      if (got == 0)
        fprintf(stderr, "%s: error: the file is empty; expected a header row\n", file);
      else if (got == 2)
        fprintf(stderr, "%s:%ld: error: unterminated quoted field: the quote opened in the header is never closed before the end of the file\n", file, start);
      else
        fprintf(stderr, "%s:%ld: error: the header row is malformed: %s\n", file, start, malformed);
      status = 1;
      goto done;
    }
    header_fields = (int)fields.count;
    for (int k = 0; k < @UP@_RAW_COLUMNS; ++k) {
      where[k] = -1;
      for (size_t f = 0; f < fields.count; ++f) {
        const char* name = text.data + fields.at[f];
        while (*name == ' ' || *name == '\t') ++name;
        size_t n = strlen(name);
        while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t')) --n;
        if (n == strlen(@P@_raw_columns[k]) && memcmp(name, @P@_raw_columns[k], n) == 0) {
          where[k] = (int)f;
          break;
        }
      }
      if (where[k] < 0) {
        fprintf(stderr, "%s:%ld: error: column '%s' is not in the header\n", file, start, @P@_raw_columns[k]);
        status = 1;
        goto done;
      }
    }
    for (int k = 0; k < LABELS; ++k) {
      label_where[k] = -1;
      for (size_t f = 0; f < fields.count; ++f)
        if (strcmp(text.data + fields.at[f], label_names[k]) == 0) label_where[k] = (int)f;
      present[k] = label_where[k] >= 0;
    }
    while ((got = next_csv(in, &line, &text, &fields, &start, &malformed)) != 0) {
      if (got == 2) { /* every record before it is predicted (at done) */
        fprintf(stderr,
                "%s:%ld: error: unterminated quoted field: the quote opened in the record on line %ld is never "
                "closed before the end of the file\n",
                file, start, start);
        status = 1;
        break;
      }
      if (malformed != NULL) {
        fprintf(stderr, "%s:%ld: skipped: %s\n", file, start, malformed);
        continue;
      }
      if ((int)fields.count != header_fields) {
        fprintf(stderr, "%s:%ld: skipped: expected %d fields as in the header, found %zu\n", file, start,
                header_fields, fields.count);
        continue;
      }
      for (int k = 0; k < @UP@_RAW_COLUMNS; ++k) cells[k] = text.data + fields.at[where[k]];
      for (int k = 0; k < LABELS; ++k) label_cells[k] = present[k] ? text.data + fields.at[label_where[k]] : NULL;
      record(file, start, cells, label_cells, present);
    }
  } else {
    size_t cap = 0;
    long line = blank_lines;
    sort_raw_columns();
    ssize_t got;
    while ((got = getline(&buf, &cap, in)) >= 0) {
      size_t column;
      const char* why;
      ++line;
      const char* p = buf;
      while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') ++p;
      if (*p == 0 && (size_t)(p - buf) == (size_t)got) continue;
      if (got > 0 && buf[got - 1] == '\n') --got; /* the line without its end, as kiln predict reads it */
      if (!parse_object(buf, (size_t)got, &text, &keys, &values, &column, &why)) {
        fprintf(stderr, "%s:%ld: skipped: not a JSON record at column %zu: %s\n", file, line,
                column + (line == blank_lines + 1 ? lead : 0), why);
        continue;
      }
      for (int k = 0; k < @UP@_RAW_COLUMNS; ++k) cells[k] = NULL;
      for (size_t i = 0; i < keys.count; ++i) { /* in order: where a key comes twice, the last wins */
        const int k = raw_column(text.data + keys.at[i]);
        if (k >= 0) cells[k] = values.at[i] == (size_t)-1 ? NULL : text.data + values.at[i];
      }
      for (int k = 0; k < LABELS; ++k) {
        label_cells[k] = NULL;
        present[k] = 0;
        for (size_t i = 0; i < keys.count; ++i)
          if (strcmp(text.data + keys.at[i], label_names[k]) == 0) {
            present[k] = 1;
            label_cells[k] = values.at[i] == (size_t)-1 ? NULL : text.data + values.at[i];
          }
      }
      record(file, line, cells, label_cells, present);
    }
  }
done:
  if (latency_calls > 0) {
    if (status == 0) status = report_latency(file);
  } else {
    flush();
  }
  free(kept);
  if (in != NULL && in != stdin) fclose(in);
  free(buf);
  free(text.data);
  free(fields.at);
  free(keys.at);
  free(values.at);
  free(weights);
  return status;
}
)C";

// The tables and row writers of <P>_main.c.
std::string main_source(const Model& m, const std::vector<std::string>& labels) {
  std::ostringstream t;
  t << "#define LABELS " << labels.size() << "\nstatic const char* const label_names[LABELS + 1] = {";
  for (const std::string& l : labels) t << c_string(l) << ", ";
  t << "NULL};\nstatic const char* const classes[" << m.classes.size() + 1 << "] = {";
  for (const std::string& c : m.classes) t << c_string(c) << ", ";
  t << "NULL};\n";
  // CSV: the header and one row, columns as kiln predict writes them.
  std::string header = "line";
  std::ostringstream csv;
  csv << "      printf(\"%ld\", line);\n";
  // JSON: keys in sorted order (kiln predict's JSON objects sort their keys).
  std::vector<std::pair<std::string, std::string>> json_members;
  json_members.emplace_back("line", "printf(\"\\\"line\\\":%ld\", line);");
  for (const OutputInfo& out : m.outputs) {
    const bool scalar = out.width == 1;
    for (std::int64_t k = 0; k < out.width; ++k) {
      header += "," + (scalar ? out.name : out.name + "_" + std::to_string(k));
      csv << "      printf(\",%.9g\", (double)v[" << out.column + k << "]);\n";
    }
    std::string value;
    if (scalar) {
      value = "printf(\"" + replace_all(c_string(out.name), "\"", "\\\"") + ":%.17g\", (double)v[" +
              std::to_string(out.column) + "]);";
    } else {
      value = "printf(\"" + replace_all(c_string(out.name), "\"", "\\\"") + ":[\"); for (int k = 0; k < " +
              std::to_string(out.width) + "; ++k) printf(\"%s%.17g\", k ? \",\" : \"\", (double)v[" +
              std::to_string(out.column) + " + k]); putchar(']');";
    }
    json_members.emplace_back(out.name, value);
    if (!m.classes.empty() && out.width == static_cast<std::int64_t>(m.classes.size())) {
      header += "," + out.name + "_class";
      csv << "      printf(\",%s\", best_class(v + " << out.column << ", " << out.width << "));\n";
      json_members.emplace_back(out.name + "_class",
                                "printf(\"" + replace_all(c_string(out.name + "_class"), "\"", "\\\"") +
                                    ":\"); json_text(best_class(v + " + std::to_string(out.column) + ", " +
                                    std::to_string(out.width) + "));");
    }
  }
  csv << "      putchar('\\n');";
  std::sort(json_members.begin(), json_members.end());
  std::ostringstream json;
  json << "      putchar('{');\n";
  for (std::size_t i = 0; i < json_members.size(); ++i) {
    if (i > 0) json << "      putchar(',');\n";
    json << "      " << json_members[i].second << "\n";
  }
  json << "      putchar('}');\n      putchar('\\n');";
  t << "static const char csv_header[] = " << c_string(header + "\n") << ";\n";
  std::string src = replace_all(kMainSource, "@LATENCY@", kLatencySource);
  src = replace_all(src, "@TABLES@", t.str());
  src = replace_all(src, "@JSON_ROW@", json.str());
  src = replace_all(src, "@CSV_ROW@", csv.str());
  return src;
}

}  // namespace
}  // namespace kiln::cli

namespace kiln::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string upper(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

// The graph as inference runs it: every if_training(a, b) replaced by b, so that what only training
// needs (dropout's random masks) is dead and left out of the Programs. Same results as running the
// graph with training = 0.
ir::Graph inference_graph(const ir::Graph& graph) {
  ir::Graph g = graph;
  const ir::OpId if_training = ir::core_ops().id_of("if_training");
  auto resolve = [&](ir::ValueId v) {
    while (g.node(v).op == if_training) v = g.node(v).operands.at(1);
    return v;
  };
  for (std::size_t i = 0; i < g.size(); ++i) {
    for (ir::ValueId& operand : g.node(static_cast<ir::ValueId>(i)).operands) operand = resolve(operand);
  }
  // Outputs are registered by value; rebuild the list with the resolved values.
  ir::Graph rebuilt(g.name());
  for (const ir::Node& n : g.nodes()) rebuilt.add(n);
  for (const ir::NamedValue& v : g.inputs()) rebuilt.add_input(v.name, v.value);
  for (const ir::NamedValue& v : g.parameters()) rebuilt.add_parameter(v.name, v.value);
  for (const ir::NamedValue& v : g.states()) rebuilt.add_state(v.name, v.value);
  for (const ir::NamedValue& v : g.outputs()) rebuilt.add_output(v.name, resolve(v.value));
  return rebuilt;
}

// Builds the artifact; throws BuildError (user-facing) for anything that stops it.
void build(const BuildArgs& args, const sema::Compilation& c, const sema::LoweredTrain& t, const fs::path& run_dir) {
  const Clock::time_point start = Clock::now();
  const sema::LoweredModel* lowered = c.find_model(t.spec.model);
  const sema::FeatureSet* set = c.find_features(t.spec.data);
  if (lowered == nullptr || set == nullptr) throw BuildError("no model or features for train block " + t.spec.model);
  if (args.max_batch < 1 || (args.max_batch & (args.max_batch - 1)) != 0) {
    throw BuildError(fmt::format("--max-batch must be a power of two >= 1, not {}", args.max_batch));
  }
  Model m;
  m.name = lowered->name;
  for (char ch : m.name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
      throw BuildError("model name '" + m.name + "' is not a C identifier");
    }
  }
  m.embedded = args.weights == "embedded";
  m.threads = args.threads;
  data::FittedPipeline pipeline;
  runtime::SafetensorsFile params;
  try {
    pipeline = data::FittedPipeline::load(run_dir / "pipeline.json");
    params = runtime::read_safetensors(run_dir / "params.safetensors");
  } catch (const std::exception& e) {
    throw BuildError(e.what());
  }
  const ir::Graph graph = inference_graph(lowered->graph);
  std::vector<runtime::Feed> plan;
  try {
    plan = runtime::plan_feeds(c, t.spec.model, graph, pipeline);
  } catch (const std::exception& e) {
    throw BuildError(e.what());
  }
  if (plan.size() != 1 || plan[0].kind != runtime::FeedKind::kFeatures || plan[0].dtype != ir::DType::kF32) {
    throw BuildError("model " + m.name +
                     ": kiln build supports models with one input, the feature set's f32 rows (this one has " +
                     std::to_string(plan.size()) + " inputs)");
  }
  m.input_name = plan[0].name;
  m.input_row_dims = plan[0].row_dims;
  m.input_width = 1;
  for (std::int64_t d : m.input_row_dims) m.input_width *= d;
  for (const ir::NamedValue& out : graph.outputs()) {
    const ir::Node& node = graph.node(out.value);
    if (node.type.dtype != ir::DType::kF32) throw BuildError("output '" + out.name + "' is not f32");
    OutputInfo info{out.name, 1, m.output_width};
    for (std::size_t i = 1; i < node.type.shape.rank(); ++i) info.width *= node.type.shape[i].size;
    m.output_width += info.width;
    m.outputs.push_back(info);
  }
  for (const data::FittedColumn& col : pipeline.columns) {
    if (col.is_label && col.kind == ColumnKind::kCategory && m.classes.empty()) m.classes = col.classes;
  }

  // The forward Program at every power-of-two batch size, into one object.
  std::vector<ir::Program> programs;
  for (std::int64_t b = 1; b <= args.max_batch; b *= 2) {
    m.batches.push_back(b);
    programs.push_back(ir::lower_to_program(graph, b, ir::ProgramKind::kStep));
    if (auto why = codegen::unsupported_reason(programs.back())) {
      throw BuildError("model " + m.name + " cannot be compiled to native code: " + *why);
    }
  }
  std::vector<codegen::ObjectEntry> entries;
  for (std::size_t e = 0; e < programs.size(); ++e) {
    entries.push_back({&programs[e], fmt::format("{}_fwd_b{}", m.name, m.batches[e])});
  }
  fs::path out_dir(args.out);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw BuildError("cannot create '" + out_dir.string() + "': " + ec.message());
  out_dir = fs::absolute(out_dir);
  const std::string P = m.name;
  const Clock::time_point codegen_start = Clock::now();
  try {
    codegen::CodegenOptions options;
    options.threads = m.threads;
    options.parallel_for_name = P + "_parallel_for";
    options.cpu = args.cpu;
    m.cpu = codegen::target_cpu_name(options);
    m.cpu_checks = codegen::target_cpu_checks(options);
    m.reports = codegen::emit_object(entries, options, (out_dir / (P + ".o")).string());
  } catch (const std::runtime_error& e) {
    throw BuildError(std::string("code generation failed: ") + e.what());
  }
  const double codegen_seconds = seconds_since(codegen_start);

  // Slots: the same list in every entry (only the batch dimension differs).
  m.slots = m.reports.front().slots;
  for (const codegen::CodegenReport& r : m.reports) {
    if (r.slots.size() != m.slots.size()) throw BuildError("internal: entries disagree on their slots");
    for (std::size_t k = 0; k < m.slots.size(); ++k) {
      if (r.slots[k].kind != m.slots[k].kind || r.slots[k].name != m.slots[k].name) {
        throw BuildError("internal: entries disagree on their slots");
      }
    }
  }
  for (const codegen::CodegenReport& r : m.reports) m.arena_bytes = std::max(m.arena_bytes, r.arena_bytes);
  m.arena_bytes = align_up(std::max<std::size_t>(m.arena_bytes, 1));
  std::string layout;
  std::size_t assign_at = 0;
  m.slot_arg.assign(m.slots.size(), 0);
  for (std::size_t k = 0; k < m.slots.size(); ++k) {
    const codegen::Slot& s = m.slots[k];
    switch (s.kind) {
      case codegen::SlotKind::kInput:
        if (s.name != m.input_name) throw BuildError("internal: unexpected input slot '" + s.name + "'");
        break;
      case codegen::SlotKind::kVariable: {
        auto it = params.tensors.find(s.name);
        if (it == params.tensors.end()) {
          throw BuildError((run_dir / "params.safetensors").string() + ": no tensor '" + s.name + "'");
        }
        if (it->second.dims() != s.dims || it->second.dtype() != s.dtype) {
          throw BuildError((run_dir / "params.safetensors").string() + ": tensor '" + s.name + "' is " +
                           it->second.to_string() + ", but the model's is " + std::string(ir::dtype_name(s.dtype)) +
                           fmt::format("[{}]", fmt::join(s.dims, ", ")));
        }
        if (auto bad = runtime::non_finite_weight(run_dir / "params.safetensors", s.name, it->second))
          throw BuildError(*bad);
        Variable v{s.name, m.weights_payload, it->second.bytes()};
        m.slot_arg[k] = v.offset;
        m.weights_payload = align_up(v.offset + v.bytes);
        m.variables.push_back(v);
        layout += s.name + ":" + std::string(ir::dtype_name(s.dtype)) + ":";
        for (std::int64_t d : s.dims) layout += std::to_string(d) + ",";
        layout += ";";
        break;
      }
      case codegen::SlotKind::kAssign: {
        std::size_t bytes = 0;
        for (const codegen::CodegenReport& r : m.reports) bytes = std::max(bytes, r.slots[k].bytes);
        m.slot_arg[k] = assign_at;  // relative for now
        assign_at = align_up(assign_at + std::max<std::size_t>(bytes, 1));
        break;
      }
      case codegen::SlotKind::kOutput: {
        auto it =
            std::find_if(m.outputs.begin(), m.outputs.end(), [&](const OutputInfo& o) { return o.name == s.name; });
        if (it == m.outputs.end()) throw BuildError("internal: unexpected output slot '" + s.name + "'");
        m.slot_arg[k] = static_cast<std::size_t>(it - m.outputs.begin());
        break;
      }
    }
  }
  m.fingerprint = fnv1a(layout);
  // Workspace: arena | state writes | output staging | feature rows.
  m.assign_offset = m.arena_bytes;
  m.assign_bytes = assign_at;
  for (std::size_t k = 0; k < m.slots.size(); ++k) {
    if (m.slots[k].kind == codegen::SlotKind::kAssign) m.slot_arg[k] += m.assign_offset;
  }
  m.staging_offset = m.assign_offset + m.assign_bytes;
  m.staging_bytes =
      m.outputs.size() > 1 ? align_up(static_cast<std::size_t>(m.batches.back() * m.output_width * 4)) : 0;
  m.features_offset = m.staging_offset + m.staging_bytes;
  m.workspace_bytes = m.features_offset + align_up(static_cast<std::size_t>(m.batches.back() * m.input_width * 4));

  // The weights file: a 64-byte header (magic, payload bytes, layout fingerprint, CRC32C), then each tensor at a
  // 64-byte boundary.
  std::string blob(kWeightsHeader + m.weights_payload, '\0');
  for (const Variable& v : m.variables) {
    std::memcpy(blob.data() + kWeightsHeader + v.offset, params.tensors.at(v.name).raw(), v.bytes);
  }
  std::uint64_t payload = m.weights_payload;
  std::uint32_t crc = crc32c(reinterpret_cast<const unsigned char*>(blob.data()) + kWeightsHeader, m.weights_payload);
  std::memcpy(blob.data(), "KILNWTS1", 8);
  std::memcpy(blob.data() + 8, &payload, 8);
  std::memcpy(blob.data() + 16, &m.fingerprint, 8);
  std::memcpy(blob.data() + 24, &crc, 4);
  write_file(out_dir / (P + ".weights"), blob);

  // Expected outputs for the smoke test, from Kiln's reference kernels: the oracle, independent of the code
  // generator whose output the smoke test checks.
  const Clock::time_point jit_start = Clock::now();
  m.smoke_rows = std::min(kSmokeDistinctRows, args.max_batch);
  {
    std::unique_ptr<runtime::Executor> exec =
        runtime::make_executor(lowered->graph, m.smoke_rows, runtime::Backend::kReference);
    for (const Variable& v : m.variables) {
      runtime::Tensor& dst = exec->variable(v.name);
      std::memcpy(dst.raw(), params.tensors.at(v.name).raw(), dst.bytes());
    }
    std::vector<std::int64_t> dims = {m.smoke_rows};
    dims.insert(dims.end(), m.input_row_dims.begin(), m.input_row_dims.end());
    runtime::Tensor input(ir::DType::kF32, dims);
    std::uint64_t state = 0x9E3779B97F4A7C15ull;
    for (std::int64_t i = 0; i < input.elements(); ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      input.data<float>()[i] =
          static_cast<float>(static_cast<double>(state >> 40) / static_cast<double>(1 << 24)) * 2 - 1;
    }
    m.smoke_input.assign(input.data<float>(), input.data<float>() + input.elements());
    std::map<std::string, runtime::Tensor> feeds;
    feeds.emplace(m.input_name, std::move(input));
    std::map<std::string, runtime::Tensor> outs = exec->run(feeds, runtime::StepOptions{});
    m.smoke_expected.assign(static_cast<std::size_t>(m.smoke_rows * m.output_width), 0.0f);
    for (const OutputInfo& o : m.outputs) {
      const float* p = outs.at(o.name).data<float>();
      for (std::int64_t r = 0; r < m.smoke_rows; ++r) {
        for (std::int64_t k = 0; k < o.width; ++k) {
          m.smoke_expected[static_cast<std::size_t>(r * m.output_width + o.column + k)] = p[r * o.width + k];
        }
      }
    }
  }
  const double jit_seconds = seconds_since(jit_start);

  // Sources.
  std::vector<RawColumn> raw;
  std::string pipeline_c = pipeline_code(pipeline, *set, raw);
  std::vector<std::string> labels;
  std::string labels_c = label_check_code(*set, labels);
  auto finish = [&](const std::string& text) { return replace_all(replace_all(text, "@UP@", upper(P)), "@P@", P); };
  write_file(out_dir / (P + ".h"), finish(header_source(m, raw)));
  write_file(out_dir / (P + "_runtime.c"), finish(runtime_source(m, raw, pipeline_c, labels_c)));
  write_file(out_dir / (P + "_smoke.c"), finish(smoke_source(m)));
  write_file(out_dir / (P + "_bench.c"), finish(replace_all(kBenchSource, "@LATENCY@", kLatencySource)));
  write_file(out_dir / (P + "_main.c"), finish(main_source(m, labels)));

  // The C toolchain.
  const std::string cc = tool("CC", "cc"), ar = tool("AR", "ar");
  if (!on_path(cc)) throw BuildError("no C compiler: kiln build needs '" + cc + "' on PATH (or set CC)");
  if (!on_path(ar)) throw BuildError("no archiver: kiln build needs '" + ar + "' on PATH (or set AR; binutils)");
  const Clock::time_point cc_start = Clock::now();
  const std::string pthread = m.threads > 1 ? " -pthread" : "";
  const std::string cflags = "-O2 -fPIC -fvisibility=hidden" + pthread;
  const std::string libs = " -lm" + pthread;
  // A threaded library's workers run its code until the process ends: never unload it.
  const std::string shared_flags = m.threads > 1 ? " -Wl,-z,nodelete" : "";
  const std::string objects = P + ".o " + P + "_runtime.o";
  // Stage 1: every C file to an object (they need only the header); stage 2: archive and link.
  std::vector<Job> first;
  for (const char* part : {"_runtime", "_main", "_smoke", "_bench"}) {
    first.push_back(
        {"compiling " + P + part + ".c", cc + " " + cflags + " -c " + P + part + ".c -o " + P + part + ".o"});
  }
  // The kernels inside NAME.o are internal; drop their local symbols so that nm shows the entries only.
  const std::string strip = tool("STRIP", "strip");
  if (on_path(strip)) first.push_back({"stripping " + P + ".o", strip + " --discard-all " + P + ".o"});
  run_jobs(first, out_dir);
  fs::remove(out_dir / ("lib" + P + ".a"), ec);
  std::vector<Job> second = {
      {"archiving lib" + P + ".a", ar + " rcs lib" + P + ".a " + objects},
      {"linking lib" + P + ".so", cc + " -shared" + shared_flags + " -o lib" + P + ".so " + objects + libs}};
  for (const char* part : {"", "_smoke", "_bench"}) {
    const std::string main_object = P + (*part ? std::string(part) : std::string("_main")) + ".o";
    second.push_back({"linking " + P + part, cc + " -o " + P + part + " " + main_object + " " + objects + libs});
  }
  run_jobs(second, out_dir);
  for (const char* part : {"_main", "_smoke", "_bench"}) fs::remove(out_dir / (P + part + ".o"), ec);
  const double cc_seconds = seconds_since(cc_start);
  if (!args.no_smoke) {
    try {
      run_jobs({{"the smoke test " + P + "_smoke", "./" + P + "_smoke >/dev/null"}}, out_dir);
    } catch (const BuildError& e) {
      const std::string what = e.what();
      if (what.find(", an instruction set extension ") == std::string::npos) throw;
      throw BuildError(what + "hint: this machine cannot run code for --cpu " + m.cpu +
                       "; the artifact is in place, and --no-smoke builds it without running the smoke test");
    }
  }

  std::cout << fmt::format(
      "built {} in {:.2f} s (codegen {:.2f} s for {} entries, reference outputs {:.2f} s, cc {:.2f} s{})\n"
      "  {}/\n"
      "    {}.h lib{}.a lib{}.so {}.o {}_runtime.c   the library and its C API\n"
      "    {}                                        CSV / JSON-lines predictor (raw columns in)\n"
      "    {}_smoke {}_bench                          smoke test, benchmark\n"
      "    {}.weights                                 {} bytes, {}\n"
      "  input {} f32 per row, output {} f32 per row, batch 1..{} per entry call; workspace {} bytes\n",
      P, seconds_since(start), codegen_seconds, m.batches.size(), jit_seconds, cc_seconds,
      args.no_smoke ? "" : ", smoke test passed", out_dir.string(), P, P, P, P, P, P, P, P, P,
      kWeightsHeader + m.weights_payload, m.embedded ? "also linked into the library" : "loaded at run time",
      m.input_width, m.output_width, m.batches.back(), m.workspace_bytes);
}

}  // namespace

CLI::App* add_build_command(CLI::App& app, BuildArgs& args) {
  CLI::App* build =
      app.add_subcommand("build", "Build a deployable C artifact (library, header, executable) of a trained model");
  build->add_option("FILE", args.file, "The .kiln file")->required();
  auto* run = build->add_option("--run", args.run, "The run folder written by kiln train");
  auto* ckpt = build->add_option("--checkpoint", args.checkpoint, "A checkpoint folder (verified first)");
  run->excludes(ckpt);
  build->add_option("-o,--output", args.out, "The output folder")->required();
  build->add_option("--max-batch", args.max_batch, "The largest batch one entry runs (a power of two; default 64)");
  build->add_option("--weights", args.weights, "embedded (in the library) or file (NAME.weights, checksummed)")
      ->check(CLI::IsMember({"embedded", "file"}));
  build->add_option("--model", args.model, "Which model's train block (default: the first)");
  build
      ->add_option("--threads", args.threads,
                   "Threads one predict call may use, the caller's included (default 1; more starts worker "
                   "threads in the library)")
      ->check(CLI::Range(1, 64));
  build->add_option("--cpu", args.cpu,
                    "The CPU NAME.o is compiled for, an LLVM name (x86-64, x86-64-v3, znver3, skylake-avx512, ...; "
                    "default: this machine's)");
  build->add_flag("--no-smoke", args.no_smoke, "Do not run the generated smoke test");
  return build;
}

int run_build(const BuildArgs& args, const std::vector<std::string>& stdlib_dirs, bool color) {
  std::error_code ec;
  if (!fs::is_regular_file(args.file, ec)) {
    std::cerr << "kiln build: error: cannot open '" << args.file << "'\n";
    return 1;
  }
  if (args.run.empty() == args.checkpoint.empty()) {
    std::cerr << "kiln build: error: --run or --checkpoint is required\n";
    return 1;
  }
  const fs::path run_dir = args.run.empty() ? fs::path(args.checkpoint) : fs::path(args.run);
  if (!args.checkpoint.empty()) {
    std::vector<std::string> problems = checkpoint::verify_checkpoint(run_dir);
    for (const std::string& p : problems) std::cerr << "kiln build: error: " << p << "\n";
    if (!problems.empty()) return 1;
  }
  sema::SemaOptions options;
  for (const std::string& d : stdlib_dirs) options.stdlib_dirs.emplace_back(d);
  auto c = sema::compile_file(args.file, options);
  std::cerr << c->diags.render(c->sources, color);
  if (c->internal_error) return 2;
  if (c->diags.has_errors()) return 1;
  const sema::LoweredTrain* t = nullptr;
  for (const sema::LoweredTrain& candidate : c->trains) {
    if (args.model.empty() || candidate.spec.model == args.model) {
      t = &candidate;
      break;
    }
  }
  if (t == nullptr) {
    std::cerr << "kiln build: error: no train block" << (args.model.empty() ? "" : " for model '" + args.model + "'")
              << " in " << args.file << "\n";
    return 1;
  }
  try {
    build(args, *c, *t, run_dir);
  } catch (const BuildError& e) {
    std::cerr << "kiln build: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace kiln::cli
