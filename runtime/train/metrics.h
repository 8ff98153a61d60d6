// Evaluation metrics, accumulated over batches: accuracy, AUC (binary, or macro one-vs-rest
// for more classes), precision/recall/F1 (binary: class 1 is positive; more classes: macro
// averages), a confusion matrix; RMSE and MAE for regression. Pure functions of predictions
// and labels, so every backend's results are judged the same way.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln::runtime {

// Area under the ROC curve of `scores` for the positives in `positive` (ties count half:
// the Mann-Whitney statistic). 0.5 when one of the two classes is absent.
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive);

class ClassificationMetrics {
 public:
  explicit ClassificationMetrics(int classes);

  // Adds `rows` examples: logits [rows, classes] (row-major) and integer labels.
  void add_logits(const float* logits, const std::int32_t* labels, std::int64_t rows);
  void add_loss(double loss_sum, std::int64_t rows);

  std::int64_t rows() const { return rows_; }
  double accuracy() const;
  double auc() const;
  double precision() const;
  double recall() const;
  double f1() const;
  double mean_loss() const;
  // confusion()[true_class][predicted_class]
  const std::vector<std::vector<std::int64_t>>& confusion() const { return confusion_; }
  // Every metric by name (accuracy, auc, precision, recall, f1, loss).
  std::map<std::string, double> all() const;

 private:
  double class_precision(int c) const;
  double class_recall(int c) const;

  int classes_;
  std::int64_t rows_ = 0;
  double loss_sum_ = 0;
  std::int64_t loss_rows_ = 0;
  std::vector<std::vector<std::int64_t>> confusion_;
  std::vector<std::vector<double>> probabilities_;  // per class, one per row (for AUC)
  std::vector<std::int32_t> labels_;
};

class RegressionMetrics {
 public:
  void add(const float* predictions, const float* targets, std::int64_t rows);
  void add_loss(double loss_sum, std::int64_t rows);
  std::int64_t rows() const { return rows_; }
  double rmse() const;
  double mae() const;
  double mean_loss() const;
  std::map<std::string, double> all() const;  // rmse, mae, loss

 private:
  std::int64_t rows_ = 0;
  double squared_ = 0;
  double absolute_ = 0;
  double loss_sum_ = 0;
  std::int64_t loss_rows_ = 0;
};

}  // namespace kiln::runtime
