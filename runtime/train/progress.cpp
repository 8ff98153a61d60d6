// Progress display (see progress.h). The bar is redrawn at most 10 times a second; plain
// mode prints a line at most every 5 seconds, so logs stay readable.
#include "runtime/train/progress.h"

#include <algorithm>
#include <cstdio>

namespace kiln::runtime {

std::string Progress::human(double x) {
  char buffer[32];
  if (x >= 1e6)
    std::snprintf(buffer, sizeof buffer, "%.1fM", x / 1e6);
  else if (x >= 1e3)
    std::snprintf(buffer, sizeof buffer, "%.1fk", x / 1e3);
  else
    std::snprintf(buffer, sizeof buffer, "%.0f", x);
  return buffer;
}

void Progress::start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t samples) {
  epoch_ = epoch;
  epochs_ = epochs;
  total_ = samples;
  done_ = 0;
  loss_sum_ = 0;
  loss_count_ = 0;
  started_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::advance(std::int64_t samples, double loss) {
  done_ += samples;
  loss_sum_ += loss;
  ++loss_count_;
  draw(false);
}

void Progress::draw(bool force) {
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since < (terminal_ ? 0.1 : 5.0)) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - started_).count();
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
  double loss = loss_count_ ? loss_sum_ / static_cast<double>(loss_count_) : 0;
  char line[160];
  if (terminal_) {
    constexpr int kWidth = 30;
    int filled = total_ > 0 ? static_cast<int>(kWidth * done_ / total_) : 0;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::snprintf(line, sizeof line, "\r\x1b[Kepoch %lld/%lld [%s] %3d%%  loss %.4f  %s samples/s  eta %.0fs",
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_), bar.c_str(),
                  total_ > 0 ? static_cast<int>(100 * done_ / total_) : 0, loss, human(rate).c_str(), eta);
  } else {
    std::snprintf(line, sizeof line, "epoch %lld/%lld: %lld/%lld samples  loss %.4f  %s samples/s  eta %.0fs\n",
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_), static_cast<long long>(done_),
                  static_cast<long long>(total_), loss, human(rate).c_str(), eta);
  }
  out_ << line << std::flush;
}

void Progress::end_epoch(const std::string& summary) {
  if (terminal_) out_ << "\r\x1b[K";
  out_ << summary << "\n" << std::flush;
}

}  // namespace kiln::runtime
