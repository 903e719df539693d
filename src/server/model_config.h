// model_config.h: a model's optional `config.json` in the model repository, and the defaults
// that apply without one.
//
// Example (every field optional):
//   {
//     "backends": ["cpu", "reference"],      // route chain (PrepareOptions::routes), or
//     "precision": "fp32",                   // "fp32" | "bf16" | "fp16" | "int8"
//     "strict": false,                       // true: no fallback (FallbackPolicy::strict)
//     "required": true,                      // server readiness waits for this model
//     "default_timeout_ms": 1000,            // deadline of requests that bring none (0: none)
//     "parity_sample_rate": 0.01,
//     "fault_injection": "error=0.3",        // for drills (PrepareOptions::fault_injection)
//     "input_shapes": {"x": [1, 3, 48, 192]},  // -1: a dim left as the model declares it
//                                               // ([-1, 3, 48, 192]: the batch dim stays free)
//     "threads": 1,                          // engine threads per call (EngineOptions::threads)
//     "instances": 2,                        // engine calls in flight at once for this model
//     "shape_cache_mb": 512,                 // plans kept per route for the input shapes seen
//                                            // (PrepareOptions::shape_cache_mb; 0: default)
//     "max_queue_size": 64,                  // requests waiting beyond those in flight
//     "dynamic_batching": {                  // absent: no batching
//       "max_batch_size": 8,
//       "max_queue_delay_us": 500,
//       "preferred_batch_sizes": [4, 8]
//     },
//     "version_policy": "latest",            // "latest" (serve the newest ready) | "all"
//     "latency_sla_ms": 0,                   // PrepareOptions::latency_sla_ms
//     "breaker": {"cooldown_ms": 1000, ...}  // PrepareOptions::breaker: window_size,
//                                            // window_seconds, min_requests, failure_rate,
//                                            // strict_failure_rate, sla_breach_rate,
//                                            // parity_violations, cooldown_ms, max_cooldown_ms,
//                                            // backoff_multiplier, half_open_probes,
//                                            // half_open_calls
//   }
// "backends" may also be one comma-separated string ("cpu@bf16,reference"). An empty
// "dynamic_batching" object enables batching with max_batch_size 8 and no queue delay.
// Unknown fields are an error (a misspelt field must not be silently ignored).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/engine.h"
#include "tandem/status.h"

namespace tandem::server {

struct BatchingConfig {
  bool enabled = false;
  int max_batch_size = 1;            // requests (batch rows) merged into one engine call
  int64_t max_queue_delay_us = 0;    // how long the first queued request may wait for others
  std::vector<int> preferred_batch_sizes;  // sizes dispatched as soon as reached
};

// The first-dim sizes a model's warm-up covers when batching is on (besides 1, which it always
// covers): every size from 2 to max_batch_size up to 16, then the preferred sizes and
// max_batch_size; a larger size between those runs its first batch cold. Ascending, distinct.
std::vector<int64_t> warm_batch_sizes(const BatchingConfig& batching);

struct ModelConfig {
  PrepareOptions prepare;           // routes, precision, fallback, parity, input shapes, faults
  int threads = 0;                  // 0: the server's default
  bool required = true;             // counts toward server readiness
  double default_timeout_ms = 0;    // 0: none
  int instances = 0;                // 0: the server's default (one per core)
  int max_queue_size = 64;
  BatchingConfig batching;
  std::string version_policy = "latest";
};

// Parses config.json text. `model` names the model in messages. Errors: invalid_argument with
// one line naming the field ("model 'cls': config.json: dynamic_batching.max_batch_size must be >= 1").
Result<ModelConfig> parse_model_config(std::string_view model, std::string_view json_text);

}  // namespace tandem::server
