// kiln predict (see predict.h).
#include "runtime/train/predict.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <nlohmann/json.hpp>

#include "runtime/data/data_error.h"
#include "runtime/data/idx_reader.h"
#include "runtime/data/rows.h"
#include "runtime/exec/executor.h"
#include "runtime/train/feeds.h"
#include "runtime/train/safetensors.h"
#include "runtime/train/trainer.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The features block as the input file has it: reading `input`, without the label columns
// its header lacks. `kept[i]` is the position in `set.columns` of the reduced set's column i.
// JSON lines have no header: every column is kept, and a record may leave out its labels
// (`read.labels_optional`). The input is opened once (`read.source`), so that standard
// input ("-") or a pipe is read once: its start (the format, the header) is read, kept and
// handed to the reader again.
sema::FeatureSet input_schema(const sema::FeatureSet& set, const fs::path& input, std::vector<std::size_t>& kept,
                              data::ReadOptions& read) {
  sema::FeatureSet reduced = set;
  if (input.empty()) {
    for (std::size_t i = 0; i < set.columns.size(); ++i) kept.push_back(i);
    return reduced;
  }
  // Features read from IDX files take records too: a pixels column NAME is the columns (or
  // JSON keys, or the array) NAME_0 ... NAME_{n-1}, as an artifact's predictor reads it.
  reduced.source = sema::SourceKind::kCsv;
  reduced.csv_path = input;
  read.source = std::make_shared<data::ByteSource>(input);
  if (data::looks_like_json_lines(input, *read.source)) {
    read.json_lines = read.labels_optional = true;
    for (std::size_t i = 0; i < set.columns.size(); ++i) kept.push_back(i);
    return reduced;
  }
  read.source->keep();
  data::CsvRecord header;
  const bool any = data::CsvReader(read.source).next(header);
  read.source->rewind();
  if (!any) throw TrainError(read.source->name().string() + ": error: the file is empty");
  reduced.columns.clear();
  for (std::size_t i = 0; i < set.columns.size(); ++i) {
    const sema::FeatureColumn& col = set.columns[i];
    bool present = std::find(header.fields.begin(), header.fields.end(), col.name) != header.fields.end();
    if (col.is_label && !present) continue;  // predictions need no labels
    reduced.columns.push_back(col);
    kept.push_back(i);
  }
  return reduced;
}

// How many records `schema`'s source holds, counted before it is read: CSV, its non-empty
// lines after the header (gzip or not; JSON lines: all of them); IDX, the images file's
// item count. -1 when it cannot tell, or when `cancel` is set meanwhile. Only a guess — a
// quoted line break or a rejected record makes it wrong — used to compile the last,
// partial batch's executor while the full batch's compiles.
std::int64_t count_records(const sema::FeatureSet& schema, bool header, const std::atomic<bool>& cancel) {
  if (schema.source == sema::SourceKind::kIdx) {
    try {
      return data::IdxReader(schema.idx_images).count();
    } catch (const data::DataError&) {
      return -1;  // the reader proper reports it
    }
  }
  std::error_code ignored;
  if (data::ByteSource::is_stdin(schema.csv_path) || !fs::is_regular_file(schema.csv_path, ignored))
    return -1;  // a pipe would be drained
  gzFile file = gzopen(schema.csv_path.c_str(), "rb");
  if (file == nullptr) return -1;
  std::vector<char> chunk(std::size_t{1} << 20);
  std::int64_t lines = 0;
  bool content = false;  // the current line has something besides a carriage return
  for (;;) {
    const int got = cancel.load() ? -1 : gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got <= 0) {
      if (got < 0) lines = -1;
      break;
    }
    for (int i = 0; i < got; ++i) {
      const char ch = chunk[static_cast<std::size_t>(i)];
      if (ch == '\n') {
        lines += content ? 1 : 0;
        content = false;
      } else if (ch != '\r') {
        content = true;
      }
    }
  }
  gzclose(file);
  if (lines < 0) return -1;
  lines += content ? 1 : 0;
  return header && lines > 0 ? lines - 1 : lines;
}

using Clock = std::chrono::steady_clock;

// A reason on one line: control bytes (a quoted line break in a cell) as \xNN, as an
// artifact's predictor writes them.
std::string one_line(const std::string& reason) {
  std::string out;
  for (const char c : reason) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out;
}

// The last, partial batch's executor, made on its own thread while predict reads records
// and compiles the full batch's: the thread counts the records (count_records) and, when
// they are more than one batch and the batch does not divide them, compiles the forward
// pass for the remainder. Leaving predict early (an error) stops the count and waits for
// the thread. `graph` must outlive it.
class EarlyCompile {
 public:
  EarlyCompile(const ir::Graph& graph, sema::FeatureSet schema, bool header, std::int64_t batch)
      : schema_(std::move(schema)) {
    future_ = std::async(std::launch::async, [this, &graph, header, batch] {
      Made made;
      const std::int64_t records = count_records(schema_, header, cancel_);
      if (cancel_.load() || records <= batch || records % batch == 0) return made;
      try {
        made.start = Clock::now();
        made.executor = make_executor(graph, records % batch, Backend::kJit);
        made.end = Clock::now();
        made.rows = records % batch;
      } catch (...) {
        made.executor.reset();  // compiled again, and its error reported, where it is needed
      }
      return made;
    });
  }
  EarlyCompile(const EarlyCompile&) = delete;
  EarlyCompile& operator=(const EarlyCompile&) = delete;
  ~EarlyCompile() {
    cancel_.store(true);
    if (future_.valid()) future_.wait();
  }

  // The executor for `rows` if that is what the thread made (waiting for it), else null;
  // `span` gets when it compiled. Only for a partial batch: the full batch never waits.
  std::unique_ptr<Executor> take(std::int64_t rows, std::pair<Clock::time_point, Clock::time_point>& span) {
    if (!future_.valid()) return nullptr;
    Made made = future_.get();
    if (made.rows != rows || !made.executor) return nullptr;
    span = {made.start, made.end};
    return std::move(made.executor);
  }

 private:
  struct Made {
    std::int64_t rows = 0;
    std::unique_ptr<Executor> executor;
    Clock::time_point start, end;
  };
  const sema::FeatureSet schema_;  // the thread's own copy
  std::atomic<bool> cancel_{false};
  std::future<Made> future_;
};

}  // namespace

std::int64_t predict(const sema::Compilation& c, const sema::LoweredTrain& t, const PredictOptions& options,
                     std::ostream& out, std::ostream& errors) {
  const sema::LoweredModel* model = c.find_model(t.spec.model);
  const sema::FeatureSet* set = c.find_features(t.spec.data);
  if (model == nullptr || set == nullptr) throw TrainError("no model or features for train block " + t.spec.model);
  data::FittedPipeline pipeline;
  SafetensorsFile params;
  try {
    pipeline = data::FittedPipeline::load(options.run_dir / "pipeline.json");
    params = read_safetensors(options.run_dir / "params.safetensors");
  } catch (const data::DataError& e) {
    throw TrainError(e.what());
  } catch (const SafetensorsError& e) {
    throw TrainError(e.what());
  }

  const ir::Graph& graph = model->graph;
  const std::vector<Feed> plan = plan_feeds(c, t.spec.model, graph, pipeline);
  const std::int64_t batch_size = t.spec.batch;
  std::map<std::int64_t, std::unique_ptr<Executor>> executors;
  // When each compile that made a used executor ran: the summary reports their union, as
  // two of them may overlap.
  std::vector<std::pair<Clock::time_point, Clock::time_point>> compiles;
  // The last batch's executor, compiled beside the full batch's (made below).
  std::unique_ptr<EarlyCompile> early;
  auto executor_for = [&](std::int64_t rows) -> Executor& {
    auto& slot = executors[rows];
    if (slot) return *slot;
    if (early && rows != batch_size) {
      std::pair<Clock::time_point, Clock::time_point> span;
      slot = early->take(rows, span);
      if (slot) compiles.push_back(span);
    }
    if (!slot) {
      const Clock::time_point start = Clock::now();
      slot = make_executor(graph, rows, options.backend);
      compiles.emplace_back(start, Clock::now());
    }
    auto load = [&](const std::string& name) {
      auto it = params.tensors.find(name);
      if (it == params.tensors.end())
        throw TrainError((options.run_dir / "params.safetensors").string() + ": no tensor '" + name + "'");
      Tensor& dst = slot->variable(name);
      if (dst.dims() != it->second.dims() || dst.dtype() != it->second.dtype()) {
        throw TrainError((options.run_dir / "params.safetensors").string() + ": tensor '" + name + "' is " +
                         it->second.to_string() + ", but the model's is " + dst.to_string());
      }
      if (auto bad = non_finite_weight(options.run_dir / "params.safetensors", name, it->second))
        throw TrainError(*bad);
      std::memcpy(dst.raw(), it->second.raw(), dst.bytes());
    };
    for (const ir::NamedValue& p : graph.parameters()) load(p.name);
    for (const ir::NamedValue& s : graph.states()) load(s.name);
    return *slot;
  };

  // Class names for outputs that are logits over a category label's classes.
  std::vector<std::string> classes;
  for (const data::FittedColumn& col : pipeline.columns) {
    if (col.is_label && col.kind == sema::ColumnKind::kCategory && classes.empty()) classes = col.classes;
  }

  std::vector<std::size_t> kept;
  data::ReadOptions read;
  sema::FeatureSet schema = input_schema(*set, options.input, kept, read);
  // A source of more than one batch whose size the batch does not divide needs two JIT
  // compiles, the full batch's at the first batch and the rest's at the end: the second
  // starts now, on its own thread, so the two run at once. A wrong count only costs an
  // executor that is never used (one for the right size is then compiled at the end).
  if (options.backend == Backend::kJit)
    early = std::make_unique<EarlyCompile>(graph, schema, !read.json_lines, batch_size);
  std::int64_t written = 0;
  bool header_done = false;
  auto flush = [&](data::Batch& b, const std::vector<std::int64_t>& lines) {
    if (b.rows == 0) return;
    std::map<std::string, Tensor> feeds =
        make_feeds(plan, b, pipeline.index_columns(), pipeline.class_labels(), pipeline.number_labels());
    std::map<std::string, Tensor> outputs = executor_for(b.rows).run(feeds, StepOptions{});
    for (std::int64_t r = 0; r < b.rows; ++r) {
      json record = {{"line", lines[static_cast<std::size_t>(r)]}};
      std::vector<std::string> columns = {"line"};
      std::vector<std::string> cells = {std::to_string(lines[static_cast<std::size_t>(r)])};
      for (const ir::NamedValue& o : graph.outputs()) {
        const Tensor& tensor = outputs.at(o.name);
        const std::int64_t per_row = tensor.elements() / b.rows;
        std::vector<double> values;
        for (std::int64_t k = 0; k < per_row; ++k) {
          values.push_back(tensor.dtype() == ir::DType::kF32
                               ? tensor.data<float>()[r * per_row + k]
                               : static_cast<double>(tensor.data<std::int32_t>()[r * per_row + k]));
        }
        if (per_row == 1) {
          record[o.name] = values[0];
        } else {
          record[o.name] = values;
        }
        for (std::int64_t k = 0; k < per_row; ++k) {
          columns.push_back(per_row == 1 ? o.name : o.name + "_" + std::to_string(k));
          char cell[32];
          std::snprintf(cell, sizeof cell, "%.9g", values[static_cast<std::size_t>(k)]);
          cells.emplace_back(cell);
        }
        if (!classes.empty() && per_row == static_cast<std::int64_t>(classes.size())) {
          std::size_t best = static_cast<std::size_t>(std::max_element(values.begin(), values.end()) - values.begin());
          record[o.name + "_class"] = classes[best];
          columns.push_back(o.name + "_class");
          cells.push_back(classes[best]);
        }
      }
      if (options.format == PredictFormat::kJsonLines) {
        out << record.dump() << "\n";
      } else {
        if (!header_done) {
          for (std::size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
          out << "\n";
          header_done = true;
        }
        for (std::size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << cells[i];
        out << "\n";
      }
      ++written;
    }
  };

  data::Batch b;
  std::vector<std::int64_t> lines;
  // The last, partial batch: the buffers are sized for a full one; trim them to its rows.
  auto flush_partial = [&] {
    b.features.resize(static_cast<std::size_t>(b.rows * pipeline.width()));
    b.indices.resize(static_cast<std::size_t>(b.rows * pipeline.index_columns()));
    b.classes.resize(static_cast<std::size_t>(b.rows * pipeline.class_labels()));
    b.targets.resize(static_cast<std::size_t>(b.rows * pipeline.number_labels()));
    flush(b, lines);
    b.rows = 0;
  };
  try {
    data::SchemaReader reader(schema, read);
    data::Row reduced, full;
    data::RejectedRecord rejected;
    auto start_batch = [&] {
      b = data::Batch{};
      b.features.assign(static_cast<std::size_t>(batch_size * pipeline.width()), 0.0f);
      b.indices.assign(static_cast<std::size_t>(batch_size * pipeline.index_columns()), 0);
      b.classes.assign(static_cast<std::size_t>(batch_size * pipeline.class_labels()), 0);
      b.targets.assign(static_cast<std::size_t>(batch_size * pipeline.number_labels()), 0.0f);
      lines.clear();
    };
    start_batch();
    for (;;) {
      data::SchemaReader::Result r = reader.next(reduced, rejected);
      if (r == data::SchemaReader::Result::kEnd) break;
      if (r == data::SchemaReader::Result::kRejected) {
        errors << reader.file().string() << ":" << rejected.line << ": skipped: " << one_line(rejected.reason) << "\n";
        continue;
      }
      data::reset_row(full, set->columns.size());
      full.line = reduced.line;
      full.pixels = reduced.pixels;
      for (std::size_t i = 0; i < kept.size(); ++i) {
        full.numbers[kept[i]] = reduced.numbers[i];
        full.texts[kept[i]] = reduced.texts[i];
        full.missing[kept[i]] = reduced.missing[i];
      }
      const std::int64_t at = b.rows;
      std::string why = pipeline.transform_into(
          full, b.features.data() + at * pipeline.width(), b.indices.data() + at * pipeline.index_columns(),
          b.classes.data() + at * pipeline.class_labels(), b.targets.data() + at * pipeline.number_labels(),
          /*labels_optional=*/true);
      if (!why.empty()) {
        errors << reader.file().string() << ":" << full.line << ": skipped: " << one_line(why) << "\n";
        continue;
      }
      lines.push_back(full.line);
      if (++b.rows == batch_size) {
        flush(b, lines);
        out.flush();  // a batch's predictions as soon as they are made, for a stream read from a pipe
        start_batch();
      }
    }
    flush_partial();
  } catch (const data::DataError& e) {
    // A file that goes bad midway (a quote never closed, a read error): the records read
    // before it are predicted first, as an artifact's predictor does, then the error.
    try {
      flush_partial();
    } catch (const std::exception&) {
      // The data error is the one to report.
    }
    throw TrainError(e.what());
  }
  std::sort(compiles.begin(), compiles.end());
  double compile_wall = 0;  // the union of the compiles' spans
  Clock::time_point covered{};
  for (const auto& [start, end] : compiles) {
    const Clock::time_point from = std::max(start, covered);
    if (end > from) compile_wall += std::chrono::duration<double>(end - from).count();
    covered = std::max(covered, end);
  }
  const std::string summary = compile_summary(executors, "forward pass", compile_wall);
  if (!summary.empty()) errors << summary << "\n";
  return written;
}

}  // namespace kiln::runtime
