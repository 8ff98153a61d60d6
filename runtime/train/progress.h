// Training progress for people: on a terminal, one redrawn bar per epoch with throughput
// and ETA; when output is not a terminal (CI, logs), plain lines at a bounded rate.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace kiln::runtime {

class Progress {
 public:
  Progress(std::ostream& out, bool terminal) : out_(out), terminal_(terminal) {}

  void start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t samples);
  void advance(std::int64_t samples, double loss);
  // Ends the epoch's line with a summary ("epoch 3/10  loss 0.41  acc 0.87  12.3k samples/s  4.1s").
  void end_epoch(const std::string& summary);

  // "12.3k" style, for throughput.
  static std::string human(double x);

 private:
  void draw(bool force);

  std::ostream& out_;
  bool terminal_;
  std::int64_t epoch_ = 0, epochs_ = 0, total_ = 0, done_ = 0;
  double loss_sum_ = 0;
  std::int64_t loss_count_ = 0;
  std::chrono::steady_clock::time_point started_, last_draw_;
};

}  // namespace kiln::runtime
