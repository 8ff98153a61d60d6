// Metric arithmetic. Probabilities for AUC come from a numerically stable softmax of the
// logits; AUC ranks them with average ranks for ties.
#include "runtime/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln::runtime {

double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  const std::size_t n = scores.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  double positives = 0, rank_sum = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    double average_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;  // 1-based ranks i+1..j
    for (std::size_t k = i; k < j; ++k) {
      if (positive[order[k]]) {
        rank_sum += average_rank;
        positives += 1;
      }
    }
    i = j;
  }
  double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) return 0.5;
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

ClassificationMetrics::ClassificationMetrics(int classes)
    : classes_(classes),
      confusion_(static_cast<std::size_t>(classes), std::vector<std::int64_t>(static_cast<std::size_t>(classes))),
      probabilities_(static_cast<std::size_t>(classes)) {}

void ClassificationMetrics::add_logits(const float* logits, const std::int32_t* labels, std::int64_t rows) {
  std::vector<double> p(static_cast<std::size_t>(classes_));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = logits + r * classes_;
    int best = 0;
    double top = row[0];
    for (int c = 1; c < classes_; ++c) {
      if (row[c] > top) {
        top = row[c];
        best = c;
      }
    }
    double sum = 0;
    for (int c = 0; c < classes_; ++c) sum += p[static_cast<std::size_t>(c)] = std::exp(row[c] - top);
    for (int c = 0; c < classes_; ++c)
      probabilities_[static_cast<std::size_t>(c)].push_back(p[static_cast<std::size_t>(c)] / sum);
    std::int32_t label = labels[r];
    labels_.push_back(label);
    if (label >= 0 && label < classes_) ++confusion_[static_cast<std::size_t>(label)][static_cast<std::size_t>(best)];
    ++rows_;
  }
}

void ClassificationMetrics::add_loss(double loss_sum, std::int64_t rows) {
  loss_sum_ += loss_sum;
  loss_rows_ += rows;
}

double ClassificationMetrics::accuracy() const {
  std::int64_t right = 0;
  for (int c = 0; c < classes_; ++c) right += confusion_[static_cast<std::size_t>(c)][static_cast<std::size_t>(c)];
  return rows_ == 0 ? 0 : static_cast<double>(right) / static_cast<double>(rows_);
}

double ClassificationMetrics::auc() const {
  auto one_vs_rest = [&](int c) {
    std::vector<bool> positive(labels_.size());
    for (std::size_t i = 0; i < labels_.size(); ++i) positive[i] = labels_[i] == c;
    return roc_auc(probabilities_[static_cast<std::size_t>(c)], positive);
  };
  if (classes_ == 2) return one_vs_rest(1);
  double sum = 0;
  for (int c = 0; c < classes_; ++c) sum += one_vs_rest(c);
  return sum / classes_;
}

double ClassificationMetrics::class_precision(int c) const {
  std::int64_t predicted = 0;
  for (int t = 0; t < classes_; ++t) predicted += confusion_[static_cast<std::size_t>(t)][static_cast<std::size_t>(c)];
  return predicted == 0 ? 0
                        : static_cast<double>(confusion_[static_cast<std::size_t>(c)][static_cast<std::size_t>(c)]) /
                              static_cast<double>(predicted);
}

double ClassificationMetrics::class_recall(int c) const {
  std::int64_t actual = 0;
  for (int p = 0; p < classes_; ++p) actual += confusion_[static_cast<std::size_t>(c)][static_cast<std::size_t>(p)];
  return actual == 0 ? 0
                     : static_cast<double>(confusion_[static_cast<std::size_t>(c)][static_cast<std::size_t>(c)]) /
                           static_cast<double>(actual);
}

double ClassificationMetrics::precision() const {
  if (classes_ == 2) return class_precision(1);
  double sum = 0;
  for (int c = 0; c < classes_; ++c) sum += class_precision(c);
  return sum / classes_;
}

double ClassificationMetrics::recall() const {
  if (classes_ == 2) return class_recall(1);
  double sum = 0;
  for (int c = 0; c < classes_; ++c) sum += class_recall(c);
  return sum / classes_;
}

double ClassificationMetrics::f1() const {
  auto f1_of = [](double p, double r) { return p + r == 0 ? 0 : 2 * p * r / (p + r); };
  if (classes_ == 2) return f1_of(class_precision(1), class_recall(1));
  double sum = 0;
  for (int c = 0; c < classes_; ++c) sum += f1_of(class_precision(c), class_recall(c));
  return sum / classes_;
}

double ClassificationMetrics::mean_loss() const {
  return loss_rows_ == 0 ? 0 : loss_sum_ / static_cast<double>(loss_rows_);
}

std::map<std::string, double> ClassificationMetrics::all() const {
  return {{"accuracy", accuracy()}, {"auc", auc()}, {"precision", precision()},
          {"recall", recall()},     {"f1", f1()},   {"loss", mean_loss()}};
}

void RegressionMetrics::add(const float* predictions, const float* targets, std::int64_t rows) {
  for (std::int64_t i = 0; i < rows; ++i) {
    double d = static_cast<double>(predictions[i]) - static_cast<double>(targets[i]);
    squared_ += d * d;
    absolute_ += std::fabs(d);
  }
  rows_ += rows;
}

void RegressionMetrics::add_loss(double loss_sum, std::int64_t rows) {
  loss_sum_ += loss_sum;
  loss_rows_ += rows;
}

double RegressionMetrics::rmse() const {
  return rows_ == 0 ? 0 : std::sqrt(squared_ / static_cast<double>(rows_));
}
double RegressionMetrics::mae() const {
  return rows_ == 0 ? 0 : absolute_ / static_cast<double>(rows_);
}
double RegressionMetrics::mean_loss() const {
  return loss_rows_ == 0 ? 0 : loss_sum_ / static_cast<double>(loss_rows_);
}

std::map<std::string, double> RegressionMetrics::all() const {
  return {{"rmse", rmse()}, {"mae", mae()}, {"loss", mean_loss()}};
}

}  // namespace kiln::runtime
