#include "status_page.h"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

#include "rlr/version.h"

namespace rlr::admin {

namespace {

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string clock_time(std::chrono::system_clock::time_point t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string seconds_text(double s) {
  if (s >= 1) return fmt::format("{:.2f} s", s);
  if (s >= 1e-3) return fmt::format("{:.2f} ms", s * 1e3);
  return fmt::format("{:.0f} us", s * 1e6);
}

/// One line chart: each series a polyline over the same time axis, scaled to the
/// largest value; the axis labels are the latest value of each series.
struct Series {
  std::string name;
  std::string color;
  std::vector<double> values;
  std::string (*format)(double);
};

std::string chart(const std::string& id, const std::string& title, const std::vector<Series>& series) {
  constexpr int kW = 560;
  constexpr int kH = 140;
  double top = 0;
  std::size_t n = 0;
  for (const auto& s : series) {
    for (double v : s.values) top = std::max(top, v);
    n = std::max(n, s.values.size());
  }
  std::string out = fmt::format(
      "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption>"
      "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">"
      "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" class=\"plot\"/>",
      id, escape(title), kW, kH + 20, kW, kH + 20, escape(title), kW, kH);
  for (const auto& s : series) {
    if (s.values.size() < 2 || top <= 0) continue;
    std::string points;
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      const double x = static_cast<double>(i) * (kW - 1) / static_cast<double>(std::max<std::size_t>(n - 1, 1));
      const double y = kH - 2 - (s.values[i] / top) * (kH - 6);
      points += fmt::format("{:.1f},{:.1f} ", x, y);
    }
    out += fmt::format("<polyline class=\"series\" data-series=\"{}\" fill=\"none\" stroke=\"{}\" "
                       "stroke-width=\"1.5\" points=\"{}\"/>",
                       escape(s.name), s.color, points);
  }
  std::string legend;
  double x = 4;
  for (const auto& s : series) {
    const std::string last = s.values.empty() ? "-" : s.format(s.values.back());
    const std::string text = fmt::format("{} {}", s.name, last);
    legend += fmt::format("<text x=\"{:.0f}\" y=\"{}\" fill=\"{}\">{}</text>", x, kH + 15, s.color, escape(text));
    x += 9.0 * static_cast<double>(text.size()) + 16;
  }
  out += legend;
  out += fmt::format("<text x=\"{}\" y=\"12\" text-anchor=\"end\" class=\"axis\">max {}</text>", kW - 4,
                     escape(series.empty() ? "" : series.front().format(top)));
  out += "</svg></figure>\n";
  return out;
}

std::string rate_text(double v) { return fmt::format("{:.0f}/s", v); }
std::string latency_text(double v) { return seconds_text(v); }

}  // namespace

std::vector<std::string> status_warnings(const StatusInputs& in) {
  std::vector<std::string> w;
  const ClusterInfo& ci = in.cluster;
  if (!in.metrics.value("rlr_term")) {
    w.push_back("the node's raft thread did not answer within 2 s: it is stuck or stopping");
  }
  if (in.metrics.value("rlr_storage_failed").value_or(0) != 0) {
    w.push_back("storage failed: this node refused a write and stopped taking part; see its log");
  }
  if (ci.leader == kNoNode) w.push_back("no leader known: an election is under way, or this node is cut off");
  if (ci.diverged) {
    for (const MemberInfo& m : ci.members) {
      if (!m.diverged_at.is_zero()) {
        w.push_back(fmt::format("divergence: node {}'s output digest differs from this node's at index {}",
                                m.id.value(), m.diverged_at.value()));
      }
    }
  }
  if (ci.role == Role::Leader) {
    for (const MemberInfo& m : ci.members) {
      if (m.id != ci.id && m.lag > in.max_lag) {
        w.push_back(fmt::format("lagging: node {} trails the leader by {} entries", m.id.value(), m.lag));
      }
    }
  } else if (auto lc = in.metrics.value("rlr_leader_commit_index"); lc && *lc > static_cast<double>(ci.applied.value()) &&
                                                                   *lc - static_cast<double>(ci.applied.value()) >
                                                                       static_cast<double>(in.max_lag)) {
    w.push_back(fmt::format("lagging: this node trails its leader's commit by {:.0f} entries",
                            *lc - static_cast<double>(ci.applied.value())));
  }
  if (const MetricFamily* f = in.metrics.find("rlr_state_machine_healthy")) {
    for (const auto& s : f->samples) {
      const std::string name(s.label("state_machine"));
      if (s.value == 0) {
        w.push_back(fmt::format("state machine {} failed: its apply loop stopped", name));
        continue;
      }
      const double applied = in.metrics.value("rlr_state_machine_applied_index", {{"state_machine", name}}).value_or(0);
      if (static_cast<double>(ci.applied.value()) - applied > static_cast<double>(in.max_lag)) {
        w.push_back(fmt::format("state machine {} stalled: {:.0f} committed entries not applied", name,
                                static_cast<double>(ci.applied.value()) - applied));
      }
    }
  }
  return w;
}

std::string render_status_page(const StatusInputs& in) {
  const ClusterInfo& ci = in.cluster;
  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta http-equiv=\"refresh\" content=\"5\">";
  out += fmt::format("<title>rlr {} node {}</title>", escape(ci.cluster_id), ci.id.value());
  out += R"(<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em} h2{font-size:1.05em;margin:1.2em 0 .4em}
.summary span{margin-right:1.4em} .role-leader{color:#0a6d2c;font-weight:600}
.banner{background:#fde8e8;border:1px solid #d33;color:#811;padding:.5em .8em;margin:.8em 0;border-radius:4px}
.banner li{margin:.15em 0} .ok{background:#e8f6ec;border:1px solid #3a3;color:#164;padding:.4em .8em;border-radius:4px;margin:.8em 0}
table{border-collapse:collapse;background:#fff} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eee} td.l,th.l{text-align:left} tr.leader td{font-weight:600}
.diverged{color:#b00;font-weight:600} .charts{display:flex;flex-wrap:wrap;gap:1em}
figure.chart{margin:0;background:#fff;border:1px solid #ccc;padding:.4em}
figcaption{font-weight:600;margin-bottom:.3em} rect.plot{fill:#fcfcfc;stroke:#ddd}
svg text{font:12px system-ui,sans-serif} text.axis{fill:#666}
.bar{display:inline-block;height:.7em;background:#4a8;vertical-align:middle}
</style></head><body>
)";
  out += fmt::format("<h1>rlr cluster <code>{}</code>, node {}</h1>\n", escape(ci.cluster_id), ci.id.value());
  out += fmt::format(
      "<p class=\"summary\"><span>role <b class=\"role-{}\" id=\"role\">{}</b></span><span>term <b>{}</b></span>"
      "<span>leader <b id=\"leader\">{}</b></span><span>commit <b>{}</b></span><span>applied <b>{}</b></span>"
      "<span>log <b>{}..{}</b></span><span>librlr {}</span></p>\n",
      to_string(ci.role), to_string(ci.role), ci.term.value(),
      ci.leader == kNoNode ? std::string("none") : std::to_string(ci.leader.value()), ci.commit.value(),
      ci.applied.value(), ci.first_index.value(), ci.last_index.value(), version());

  const auto warnings = status_warnings(in);
  if (warnings.empty()) {
    out += "<div class=\"ok\" id=\"no-warnings\">No warnings.</div>\n";
  } else {
    out += "<div class=\"banner\" id=\"warnings\" role=\"alert\"><b>Warnings</b><ul>";
    for (const auto& w : warnings) out += "<li>" + escape(w) + "</li>";
    out += "</ul></div>\n";
  }

  out += "<h2>Cluster</h2>\n";
  if (ci.role != Role::Leader) {
    out += "<p>Match, lag and last contact are the leader's view: open the leader's page for them.</p>\n";
  }
  out += "<table id=\"cluster-table\"><thead><tr><th>node</th><th class=\"l\">address</th><th class=\"l\">kind</th>"
         "<th class=\"l\">role</th><th>match</th><th>lag</th><th>last contact</th><th>catch-up</th>"
         "<th>digest at</th><th class=\"l\">digest</th></tr></thead><tbody>\n";
  for (const MemberInfo& m : ci.members) {
    const bool leader_view = ci.role == Role::Leader;
    const double progress = ci.last_index.value() == 0
                                ? 100.0
                                : 100.0 * static_cast<double>(m.match.value()) / static_cast<double>(ci.last_index.value());
    out += fmt::format("<tr class=\"{}\" data-node=\"{}\"><td>{}{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>"
                       "<td class=\"l\">{}</td>",
                       m.is_leader ? "leader" : "member", m.id.value(), m.id.value(), m.id == ci.id ? " (this)" : "",
                       escape(m.address.to_string()), m.voter ? "voter" : "learner",
                       m.is_leader ? "leader" : (m.voter ? "follower" : "learner"));
    if (leader_view) {
      out += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td><span class=\"bar\" style=\"width:{:.0f}px\"></span> "
                         "{:.1f}%</td>",
                         m.match.value(), m.lag,
                         m.last_contact.count() < 0 ? std::string("-") : fmt::format("{} ms", m.last_contact.count()),
                         std::clamp(progress, 0.0, 100.0) * 0.6, std::clamp(progress, 0.0, 100.0));
    } else {
      out += "<td>-</td><td>-</td><td>-</td><td>-</td>";
    }
    out += fmt::format("<td>{}</td>", m.digest.index.value());
    if (!m.diverged_at.is_zero()) {
      out += fmt::format("<td class=\"l diverged\">differs at {}</td>", m.diverged_at.value());
    } else {
      out += fmt::format("<td class=\"l\">{}</td>",
                         m.digest.index.is_zero() ? std::string("-") : fmt::format("{:016x} agrees", m.digest.digest));
    }
    out += "</tr>\n";
  }
  out += "</tbody></table>\n";

  out += "<h2>Last minutes</h2>\n<div class=\"charts\">\n";
  Series rate{"commits", "#2a6fb0", {}, &rate_text};
  Series p50{"p50", "#2a6fb0", {}, &latency_text};
  Series p99{"p99", "#c0392b", {}, &latency_text};
  for (const HistoryPoint& p : in.history) {
    rate.values.push_back(p.commit_rate);
    p50.values.push_back(p.commit_p50);
    p99.values.push_back(p.commit_p99);
  }
  const std::string span = in.history.empty() ? std::string(" (no samples yet)")
                                              : fmt::format(", {} to {} UTC", clock_time(in.history.front().at),
                                                            clock_time(in.history.back().at));
  out += chart("chart-commit-rate", "Commit rate (entries/s)" + span, {rate});
  out += chart("chart-commit-latency", "Commit latency, proposal to commit on the leader" + span, {p99, p50});
  out += "</div>\n";

  out += "<h2>Recent role changes</h2>\n<table id=\"role-changes\"><thead><tr><th class=\"l\">time (UTC)</th>"
         "<th>term</th><th class=\"l\">role</th><th>leader</th><th class=\"l\">reason</th></tr></thead><tbody>\n";
  for (auto it = in.metrics.role_changes.rbegin(); it != in.metrics.role_changes.rend(); ++it) {
    out += fmt::format("<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>\n",
                       clock_time(it->at), it->term.value(), to_string(it->role),
                       it->leader == kNoNode ? std::string("none") : std::to_string(it->leader.value()),
                       to_string(it->reason));
  }
  out += "</tbody></table>\n";
  out += "<p><a href=\"/metrics\">/metrics</a> &middot; <a href=\"/healthz\">/healthz</a> &middot; "
         "<a href=\"/readyz\">/readyz</a></p>\n</body></html>\n";
  return out;
}

}  // namespace rlr::admin
