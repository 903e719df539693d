// run_engine.h: `tandem run` through the engine (when --units, --strict, --inject or
// --metrics-json is given): routes with fallback, fault injection and telemetry.
#pragma once

#include <map>
#include <string>

#include "tandem/precision.h"
#include "tandem/value.h"

namespace tandem::cli {

struct EngineRunRequest {
  std::string model;
  std::string backend;  // "" : the engine's default order
  std::string units;    // "" : all
  bool strict = false;
  std::string inject;
  std::string metrics_json;  // "" : none
  std::string output_dir;    // "" : none
  std::map<std::string, Shape> shapes;
  std::map<std::string, Value> inputs;
  double load_ms = 0;
  Precision precision = Precision::fp32;
  std::string routes;  // "" : the default chain
};

// Prepares, runs once, prints outputs like `tandem run`; returns the exit code.
int run_with_engine(const EngineRunRequest& r);

}  // namespace tandem::cli
