// Metrics against hand-computed values, and schedules at known points.
#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/train/metrics.h"
#include "runtime/train/schedule.h"

using namespace kiln::runtime;

TEST_CASE("roc_auc: perfect, inverted, ties, and the Mann-Whitney count", "[metrics]") {
  CHECK(roc_auc({0.1, 0.2, 0.8, 0.9}, {false, false, true, true}) == Approx(1.0));
  CHECK(roc_auc({0.9, 0.8, 0.2, 0.1}, {false, false, true, true}) == Approx(0.0));
  CHECK(roc_auc({0.5, 0.5, 0.5, 0.5}, {false, true, false, true}) == Approx(0.5));
  // positives {0.4, 0.8}, negatives {0.1, 0.35, 0.8}: pairs won 2+2.5... = (3 + 1.5) / 6
  CHECK(roc_auc({0.1, 0.4, 0.35, 0.8, 0.8}, {false, true, false, true, false}) == Approx(4.5 / 6));
  CHECK(roc_auc({0.3, 0.4}, {true, true}) == Approx(0.5));  // one class absent
}

TEST_CASE("binary classification metrics from logits", "[metrics]") {
  ClassificationMetrics m(2);
  // rows: predicted 1,1,0,0,1 ; labels 1,0,0,1,1
  const float logits[] = {0, 2, 0, 1, 3, 0, 1, 0, -1, 1};
  const std::int32_t labels[] = {1, 0, 0, 1, 1};
  m.add_logits(logits, labels, 5);
  CHECK(m.accuracy() == Approx(3.0 / 5));
  CHECK(m.precision() == Approx(2.0 / 3));  // TP 2, FP 1
  CHECK(m.recall() == Approx(2.0 / 3));     // TP 2, FN 1
  CHECK(m.f1() == Approx(2.0 / 3));
  CHECK(m.confusion()[0][1] == 1);
  CHECK(m.confusion()[1][0] == 1);
  CHECK(m.confusion()[1][1] == 2);
  // Scores for class 1: sigmoid of (l1 - l0) = 2, 1, -3, -1, 2 -> positives {2, -1, 2}, negatives {1, -3}
  CHECK(m.auc() == Approx((2 + 1 + 2) / 6.0));
  m.add_loss(2.5, 5);
  CHECK(m.all().at("loss") == Approx(0.5));
}

TEST_CASE("multi-class metrics are macro averages", "[metrics]") {
  ClassificationMetrics m(3);
  const float logits[] = {5, 0, 0, 0, 5, 0, 0, 0, 5, 5, 0, 0};
  const std::int32_t labels[] = {0, 1, 2, 2};
  m.add_logits(logits, labels, 4);
  CHECK(m.accuracy() == Approx(0.75));
  CHECK(m.precision() == Approx((0.5 + 1 + 1) / 3));
  CHECK(m.recall() == Approx((1 + 1 + 0.5) / 3));
}

TEST_CASE("regression metrics", "[metrics]") {
  RegressionMetrics m;
  const float pred[] = {1, 2, 3};
  const float target[] = {1, 4, 0};
  m.add(pred, target, 3);
  CHECK(m.rmse() == Approx(std::sqrt((0 + 4 + 9) / 3.0)));
  CHECK(m.mae() == Approx(5.0 / 3));
}

TEST_CASE("learning-rate schedules", "[metrics][schedule]") {
  kiln::sema::ScheduleSpec constant;
  CHECK(learning_rate(constant, 0.1, 3.5, 10) == Approx(0.1));
  kiln::sema::ScheduleSpec step;
  step.kind = "step";
  step.every = 2;
  step.factor = 0.5;
  CHECK(learning_rate(step, 0.1, 1.9, 10) == Approx(0.1));
  CHECK(learning_rate(step, 0.1, 2.0, 10) == Approx(0.05));
  CHECK(learning_rate(step, 0.1, 5.0, 10) == Approx(0.025));
  kiln::sema::ScheduleSpec cosine;
  cosine.kind = "cosine";
  cosine.warmup = 2;
  CHECK(learning_rate(cosine, 0.1, 1.0, 10) == Approx(0.05));
  CHECK(learning_rate(cosine, 0.1, 2.0, 10) == Approx(0.1));
  CHECK(learning_rate(cosine, 0.1, 6.0, 10) == Approx(0.05));
  CHECK(learning_rate(cosine, 0.1, 10.0, 10) == Approx(0.0).margin(1e-12));
}
