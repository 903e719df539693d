#include "engine/routes.h"

#include <algorithm>
#include <cmath>

#include "backends/backend.h"
#include "tandem/engine.h"

namespace tandem {

std::string RouteSpec::name() const {
  if (precision == Precision::fp32) return backend;
  return backend + "@" + std::string(precision_name(precision));
}

Result<RouteSpec> parse_route(std::string_view text) {
  RouteSpec r;
  const size_t at = text.find('@');
  r.backend = std::string(text.substr(0, at));
  if (r.backend.empty()) return invalid_argument("route '" + std::string(text) + "' names no backend");
  if (at != std::string_view::npos) {
    auto p = parse_precision(text.substr(at + 1));
    if (!p) return invalid_argument("route '" + std::string(text) + "': " + p.status().message());
    r.precision = *p;
  }
  return r;
}

Result<std::vector<RouteSpec>> parse_routes(std::string_view text) {
  std::vector<RouteSpec> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    TANDEM_ASSIGN_OR_RETURN(RouteSpec r, parse_route(item));
    out.push_back(std::move(r));
  }
  if (out.empty()) return invalid_argument("no routes in '" + std::string(text) + "'");
  return out;
}

Result<std::vector<std::string>> parse_route_chain(std::string_view text) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<RouteSpec> routes, parse_routes(text));
  std::vector<std::string> names;
  for (const RouteSpec& r : routes) names.push_back(r.name());
  return names;
}

std::vector<RouteSpec> default_chain(const std::vector<Backend*>& backends, Precision precision,
                                     std::vector<std::string>* notes) {
  std::vector<RouteSpec> chain;
  for (Backend* b : backends) {
    const std::string name(b->name());
    if (precision != Precision::fp32) {
      Status s = b->supports_precision(precision);
      if (s.is_ok()) chain.push_back({name, precision});
      else if (notes) notes->push_back("route " + RouteSpec{name, precision}.name() + " left out: " + s.message());
    }
    chain.push_back({name, Precision::fp32});
  }
  chain.push_back({std::string(reference_backend()->name()), Precision::fp32});
  return chain;
}

double fallback_reserve_ms(double typical_ms, double multiplier) {
  return typical_ms > 0 ? typical_ms * multiplier + 0.5 : 0.0;
}

double attempt_time_ms(size_t index, size_t routes, double remaining_ms, double own_budget_ms,
                       const std::vector<double>& later_reserve_ms) {
  if (index + 1 >= routes) return remaining_ms;  // the last resort takes what remains
  for (double r : later_reserve_ms)
    if (r > 0 && r < remaining_ms) return std::min(own_budget_ms, remaining_ms - r);
  return std::min(own_budget_ms, remaining_ms);
}

}  // namespace tandem
