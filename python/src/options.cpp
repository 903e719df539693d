// options.cpp: see options.h.
#include "options.h"

#include <pybind11/stl.h>

#include <string>

namespace tandem::python {

namespace {

template <class T>
Status get(const std::string& key, py::handle v, T* out) {
  try {
    *out = v.cast<T>();
    return Status::ok();
  } catch (const py::cast_error&) {
    return invalid_argument("prepare option '" + key + "': cannot use a " +
                            py::str(py::type::handle_of(v).attr("__name__")).cast<std::string>());
  }
}

Status breaker_from_dict(py::handle v, BreakerOptions* b) {
  if (!py::isinstance<py::dict>(v)) return invalid_argument("prepare option 'breaker': expected a dict");
  for (auto item : py::reinterpret_borrow<py::dict>(v)) {
    const std::string k = py::str(item.first).cast<std::string>();
    const std::string key = "breaker." + k;
    py::handle x = item.second;
    if (k == "window_size") TANDEM_RETURN_IF_ERROR(get(key, x, &b->window_size));
    else if (k == "window_seconds") TANDEM_RETURN_IF_ERROR(get(key, x, &b->window_seconds));
    else if (k == "min_requests") TANDEM_RETURN_IF_ERROR(get(key, x, &b->min_requests));
    else if (k == "failure_rate") TANDEM_RETURN_IF_ERROR(get(key, x, &b->failure_rate));
    else if (k == "strict_failure_rate") TANDEM_RETURN_IF_ERROR(get(key, x, &b->strict_failure_rate));
    else if (k == "sla_breach_rate") TANDEM_RETURN_IF_ERROR(get(key, x, &b->sla_breach_rate));
    else if (k == "parity_violations") TANDEM_RETURN_IF_ERROR(get(key, x, &b->parity_violations));
    else if (k == "cooldown_ms") TANDEM_RETURN_IF_ERROR(get(key, x, &b->cooldown_ms));
    else if (k == "backoff_multiplier") TANDEM_RETURN_IF_ERROR(get(key, x, &b->backoff_multiplier));
    else if (k == "max_cooldown_ms") TANDEM_RETURN_IF_ERROR(get(key, x, &b->max_cooldown_ms));
    else if (k == "half_open_probes") TANDEM_RETURN_IF_ERROR(get(key, x, &b->half_open_probes));
    else if (k == "half_open_calls")
      TANDEM_RETURN_IF_ERROR(get(key, x, &b->half_open_calls));
    else return invalid_argument("unknown breaker option '" + k + "'");
  }
  return Status::ok();
}

Status budget_from_dict(py::handle v, ParityBudget* b) {
  if (!py::isinstance<py::dict>(v)) return invalid_argument("prepare option 'parity_budget': expected a dict");
  for (auto item : py::reinterpret_borrow<py::dict>(v)) {
    const std::string k = py::str(item.first).cast<std::string>();
    if (k == "max_abs") TANDEM_RETURN_IF_ERROR(get("parity_budget.max_abs", item.second, &b->max_abs));
    else if (k == "max_rel") TANDEM_RETURN_IF_ERROR(get("parity_budget.max_rel", item.second, &b->max_rel));
    else if (k == "rmse") TANDEM_RETURN_IF_ERROR(get("parity_budget.rmse", item.second, &b->rmse));
    else return invalid_argument("unknown parity_budget field '" + k + "'");
  }
  return Status::ok();
}

}  // namespace

Status prepare_options_from_kwargs(const py::kwargs& kw, PrepareOptions* o) {
  for (auto item : kw) {
    const std::string k = py::str(item.first).cast<std::string>();
    py::handle v = item.second;
    if (v.is_none()) continue;  // None: the default
    if (k == "name") TANDEM_RETURN_IF_ERROR(get(k, v, &o->name));
    else if (k == "compute_units") {
      std::string s;
      TANDEM_RETURN_IF_ERROR(get(k, v, &s));
      TANDEM_ASSIGN_OR_RETURN(o->compute_units, parse_compute_units(s));
    } else if (k == "precision") {
      std::string s;
      TANDEM_RETURN_IF_ERROR(get(k, v, &s));
      TANDEM_ASSIGN_OR_RETURN(o->precision, parse_precision(s));
    } else if (k == "latency_sla_ms") TANDEM_RETURN_IF_ERROR(get(k, v, &o->latency_sla_ms));
    else if (k == "default_deadline_ms") TANDEM_RETURN_IF_ERROR(get(k, v, &o->default_deadline_ms));
    else if (k == "fallback") {
      std::string s;
      TANDEM_RETURN_IF_ERROR(get(k, v, &s));
      if (s == "fallback") o->fallback = FallbackPolicy::fallback;
      else if (s == "strict") o->fallback = FallbackPolicy::strict;
      else return invalid_argument("prepare option 'fallback': expected 'fallback' or 'strict', got '" + s + "'");
    } else if (k == "strict") {
      bool s = false;
      TANDEM_RETURN_IF_ERROR(get(k, v, &s));
      o->fallback = s ? FallbackPolicy::strict : FallbackPolicy::fallback;
    } else if (k == "parity_sample_rate") TANDEM_RETURN_IF_ERROR(get(k, v, &o->parity_sample_rate));
    else if (k == "parity_budget") {
      ParityBudget b = default_parity_budget(o->precision);
      TANDEM_RETURN_IF_ERROR(budget_from_dict(v, &b));
      o->parity_budget = b;
    } else if (k == "parity_trips_breaker") TANDEM_RETURN_IF_ERROR(get(k, v, &o->parity_trips_breaker));
    else if (k == "parity_queue_capacity") TANDEM_RETURN_IF_ERROR(get(k, v, &o->parity_queue_capacity));
    else if (k == "output_guard") TANDEM_RETURN_IF_ERROR(get(k, v, &o->output_guard));
    else if (k == "input_shapes") TANDEM_RETURN_IF_ERROR(get(k, v, &o->input_shapes));
    else if (k == "breaker") TANDEM_RETURN_IF_ERROR(breaker_from_dict(v, &o->breaker));
    else if (k == "routes") {
      if (py::isinstance<py::str>(v)) {
        TANDEM_ASSIGN_OR_RETURN(o->routes, parse_route_chain(v.cast<std::string>()));
      } else {
        TANDEM_RETURN_IF_ERROR(get(k, v, &o->routes));
      }
    } else if (k == "hedging") TANDEM_RETURN_IF_ERROR(get(k, v, &o->hedging));
    else if (k == "hedge_quantile") TANDEM_RETURN_IF_ERROR(get(k, v, &o->hedge_quantile));
    else if (k == "same_route_retries")
      TANDEM_RETURN_IF_ERROR(get(k, v, &o->same_route_retries));
    else if (k == "fault_injection") TANDEM_RETURN_IF_ERROR(get(k, v, &o->fault_injection));
    else if (k == "warmup_runs") TANDEM_RETURN_IF_ERROR(get(k, v, &o->warmup_runs));
    else if (k == "warmup_concurrency") TANDEM_RETURN_IF_ERROR(get(k, v, &o->warmup_concurrency));
    else if (k == "warmup_batch_sizes")
      TANDEM_RETURN_IF_ERROR(get(k, v, &o->warmup_batch_sizes));
    else if (k == "check_batch_rows")
      TANDEM_RETURN_IF_ERROR(get(k, v, &o->check_batch_rows));
    else if (k == "warmup_time_cap_ms")
      TANDEM_RETURN_IF_ERROR(get(k, v, &o->warmup_time_cap_ms));
    else if (k == "shape_cache_mb")
      TANDEM_RETURN_IF_ERROR(get(k, v, &o->shape_cache_mb));
    else if (k == "attempt_budget_multiplier") TANDEM_RETURN_IF_ERROR(get(k, v, &o->attempt_budget_multiplier));
    else if (k == "min_attempt_budget_ms") TANDEM_RETURN_IF_ERROR(get(k, v, &o->min_attempt_budget_ms));
    else if (k == "unmeasured_budget_ms") TANDEM_RETURN_IF_ERROR(get(k, v, &o->unmeasured_budget_ms));
    else if (k == "fallback_reserve_multiplier") TANDEM_RETURN_IF_ERROR(get(k, v, &o->fallback_reserve_multiplier));
    else if (k == "seed") TANDEM_RETURN_IF_ERROR(get(k, v, &o->seed));
    else return invalid_argument("unknown prepare option '" + k + "'");
  }
  return Status::ok();
}

}  // namespace tandem::python
