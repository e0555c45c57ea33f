// The log-linear histogram behind every latency and size metric, and the public
// helpers over metric snapshots (rlr/metrics.h).
#include <catch2/catch.hpp>

#include "rlr/metrics.h"
#include "util/histogram.h"

using rlr::util::LogLinearHistogram;

TEST_CASE("histogram: a value lands in the first bucket whose bound is at or above it", "[metrics]") {
  LogLinearHistogram h(10, 3);  // 10, 20..100, 200..1000, 2000..10000, +Inf
  REQUIRE(h.finite_buckets() == 28);
  CHECK(h.bound(0) == 10);
  CHECK(h.bound(1) == 20);
  CHECK(h.bound(9) == 100);
  CHECK(h.bound(10) == 200);
  CHECK(h.bound(27) == 10000);
  CHECK(h.index_of(0) == 0);
  CHECK(h.index_of(10) == 0);
  CHECK(h.index_of(11) == 1);
  CHECK(h.index_of(20) == 1);
  CHECK(h.index_of(21) == 2);
  CHECK(h.index_of(100) == 9);
  CHECK(h.index_of(101) == 10);
  CHECK(h.index_of(10000) == 27);
  CHECK(h.index_of(10001) == 28);  // overflow
  CHECK(h.index_of(~std::uint64_t{0}) == 28);
  for (std::uint64_t v = 0; v <= 20000; v += 7) {
    const std::size_t i = h.index_of(v);
    if (i < h.finite_buckets()) {
      INFO("v=" << v << " bucket " << i);
      CHECK(v <= h.bound(i));
      if (i > 0) CHECK(v > h.bound(i - 1));
    } else {
      CHECK(v > h.bound(h.finite_buckets() - 1));
    }
  }
}

TEST_CASE("histogram: a snapshot is cumulative, scaled, and its quantiles interpolate", "[metrics]") {
  LogLinearHistogram h(1000, 6);  // 1 us .. 1 s in ns
  h.observe(1500, 50);      // (1000, 2000]
  h.observe(7000, 40);      // (6000, 7000]
  h.observe(2'000'000, 10);  // (1e6, 2e6]
  h.observe(5'000'000'000);  // overflow
  CHECK(h.count() == 101);
  rlr::MetricSample s;
  h.fill(s, 1e-9);
  CHECK(s.count == 101);
  CHECK(s.sum == Approx((1500.0 * 50 + 7000.0 * 40 + 2e6 * 10 + 5e9) * 1e-9));
  REQUIRE(s.buckets.size() == h.finite_buckets());
  CHECK(s.buckets[0].upper_bound == Approx(1e-6));
  CHECK(s.buckets[0].cumulative_count == 0);
  CHECK(s.buckets[1].upper_bound == Approx(2e-6));
  CHECK(s.buckets[1].cumulative_count == 50);
  CHECK(s.buckets.back().cumulative_count == 100);  // the overflow one is only in `count`
  for (std::size_t i = 1; i < s.buckets.size(); ++i) {
    CHECK(s.buckets[i].cumulative_count >= s.buckets[i - 1].cumulative_count);
  }
  // 50 of the 101 observations are in (1 us, 2 us]: the 0.49 quantile interpolates inside
  // it, the median (rank 50.5) falls in the next occupied bucket.
  const double p49 = rlr::histogram_quantile(s, 0.49);
  CHECK(p49 > 1e-6);
  CHECK(p49 <= 2e-6);
  const double p50 = rlr::histogram_quantile(s, 0.5);
  CHECK(p50 > 6e-6);
  CHECK(p50 <= 7e-6);
  const double p90 = rlr::histogram_quantile(s, 0.85);
  CHECK(p90 > 6e-6);
  CHECK(p90 <= 7e-6);
  CHECK(rlr::histogram_quantile(s, 0.95) > 1e-3);
  CHECK(rlr::histogram_quantile(s, 1.0) == Approx(1.0));  // in +Inf: the highest finite bound
  CHECK(rlr::histogram_quantile(rlr::MetricSample{}, 0.5) == 0);
}

TEST_CASE("metrics: value() matches every label asked for, and find() by name", "[metrics]") {
  rlr::NodeMetrics m;
  rlr::MetricFamily f{"rlr_x_total", "x", rlr::MetricType::Counter, {}};
  f.samples.push_back(rlr::MetricSample{{{"node", "1"}, {"reason", "busy"}}, 3, {}, 0, 0});
  f.samples.push_back(rlr::MetricSample{{{"node", "1"}, {"reason", "timeout"}}, 5, {}, 0, 0});
  m.families.push_back(f);
  CHECK(m.find("rlr_x_total") != nullptr);
  CHECK(m.find("rlr_y") == nullptr);
  CHECK(m.value("rlr_x_total") == 3);
  CHECK(m.value("rlr_x_total", {{"reason", "timeout"}}) == 5);
  CHECK(m.value("rlr_x_total", {{"reason", "timeout"}, {"node", "2"}}) == std::nullopt);
  CHECK(m.families[0].samples[1].label("reason") == "timeout");
  CHECK(m.families[0].samples[1].label("nope").empty());
  CHECK(rlr::to_string(rlr::RoleChangeReason::QuorumLost) == "quorum_lost");
}
