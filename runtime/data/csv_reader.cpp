// CsvReader: a byte-at-a-time state machine over a fixed buffer.
//
//   file   = record *(line-break record) [line-break]
//   record = field *("," field)
//   field  = quoted / plain
//   quoted = DQUOTE *(any byte except DQUOTE / DQUOTE DQUOTE) DQUOTE
//   plain  = *(any byte except "," / DQUOTE at the start / CR LF / LF)
//
// Leniencies, each documented in docs/data.md: a quote inside a plain field is kept as a
// character; a bare CR is data; text after a closing quote makes the record malformed
// (rejected by the caller, reading goes on); a UTF-8 byte-order mark is skipped.
#include "runtime/data/csv_reader.h"

#include "runtime/data/data_error.h"

namespace kiln::data {

CsvReader::CsvReader(const std::filesystem::path& path) : CsvReader(std::make_shared<ByteSource>(path)) {}

CsvReader::CsvReader(std::shared_ptr<ByteSource> source) : source_(std::move(source)) {
  buffer_.resize(kBufferBytes);
  // A UTF-8 byte-order mark is not part of the first header name.
  if (refill() && len_ >= 3 && static_cast<unsigned char>(buffer_[0]) == 0xEF &&
      static_cast<unsigned char>(buffer_[1]) == 0xBB && static_cast<unsigned char>(buffer_[2]) == 0xBF) {
    pos_ = 3;
  }
}

bool CsvReader::refill() {
  if (eof_) return false;
  const std::size_t n = source_->read(buffer_.data(), buffer_.size(), line_);
  if (n == 0) {
    eof_ = true;
    return false;
  }
  hash_.update(buffer_.data(), n);
  bytes_read_ += n;
  pos_ = 0;
  len_ = n;
  return true;
}

int CsvReader::get() {
  if (pos_ == len_ && !refill()) return -1;
  return static_cast<unsigned char>(buffer_[pos_++]);
}

int CsvReader::peek() {
  if (pos_ == len_ && !refill()) return -1;
  return static_cast<unsigned char>(buffer_[pos_]);
}

bool CsvReader::next(CsvRecord& record) {
  record.fields.clear();
  record.raw.clear();
  record.malformed.clear();
  std::string field;
  for (;;) {
    // Skip completely empty lines between records.
    int c = peek();
    if (c == -1) return false;
    if (c == '\n') {
      get();
      ++line_;
      continue;
    }
    if (c == '\r') {
      get();
      if (peek() == '\n') {
        get();
        ++line_;
        continue;
      }
      record.raw.push_back('\r');
      field.push_back('\r');
    }
    break;
  }
  record.line = line_;
  auto too_long = [&] {
    if (record.raw.size() > kMaxRecordBytes) {
      throw DataError(path(), record.line,
                      "record is longer than " + std::to_string(kMaxRecordBytes >> 20) + " MiB; is a quote left open?");
    }
  };
  enum class State { kFieldStart, kPlain, kQuoted, kAfterQuote } state = State::kFieldStart;
  if (!field.empty()) state = State::kPlain;
  std::int64_t quote_line = 0;
  for (;;) {
    int c = get();
    if (c == -1) {
      if (state == State::kQuoted) {
        throw DataError(path(), record.line,
                        "unterminated quoted field: the quote opened on line " + std::to_string(quote_line) +
                            " is never closed before the end of the file");
      }
      record.fields.push_back(std::move(field));
      return true;
    }
    char ch = static_cast<char>(c);
    if (state == State::kQuoted) {
      if (ch == '"') {
        record.raw.push_back(ch);
        if (peek() == '"') {
          get();
          record.raw.push_back('"');
          field.push_back('"');
        } else {
          state = State::kAfterQuote;
        }
        continue;
      }
      if (ch == '\n') ++line_;
      record.raw.push_back(ch);
      field.push_back(ch);
      if ((record.raw.size() & 0xFFFF) == 0) too_long();
      continue;
    }
    // Outside quotes: a line break ends the record.
    if (ch == '\n' || (ch == '\r' && peek() == '\n')) {
      if (ch == '\r') get();
      ++line_;
      record.fields.push_back(std::move(field));
      return true;
    }
    record.raw.push_back(ch);
    if ((record.raw.size() & 0xFFFF) == 0) too_long();
    if (ch == ',') {
      record.fields.push_back(std::move(field));
      field.clear();
      state = State::kFieldStart;
      continue;
    }
    switch (state) {
      case State::kFieldStart:
        if (ch == '"') {
          state = State::kQuoted;
          quote_line = line_;
        } else {
          field.push_back(ch);
          state = State::kPlain;
        }
        break;
      case State::kPlain: field.push_back(ch); break;
      case State::kAfterQuote:
        if (record.malformed.empty()) {
          record.malformed =
              "unexpected text after the closing quote of field " + std::to_string(record.fields.size() + 1);
        }
        field.push_back(ch);
        break;
      case State::kQuoted: break;  // handled above
    }
  }
}

}  // namespace kiln::data
