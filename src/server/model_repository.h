// model_repository.h (private to src/server): what the model repository folder holds, read
// from disk without loading anything (server.cpp decides what to load).
//
// Layout: DIR/<model>/<version>/model.onnx, versions positive integers (other folders are
// ignored), with an optional DIR/<model>/config.json. Thread-safety: plain functions.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "model_config.h"

namespace tandem::server {

struct ModelOnDisk {
  std::string name;
  std::map<int, std::filesystem::path> versions;  // version -> model.onnx, ascending
  // version -> what model.onnx is now (device and inode, size, modification and status-change
  // times): a different stamp at a later scan means the file was written or replaced again.
  std::map<int, std::string> stamps;
  ModelConfig config;        // defaults when there is no config.json
  std::string config_error;  // one line when config.json is unreadable or invalid
  std::string config_text;   // config.json as read ("" when there is none)
  // Folders in the model's folder that are not versions, each with why ("'v2' (not a
  // version: ...)", "'3' (no model.onnx)"), for the reason a model without versions gives.
  std::vector<std::string> not_versions;
};

// The model folders under `repository`, by name. A model folder without any version is listed
// with no versions (the server reports it as failed).
std::map<std::string, ModelOnDisk> scan_repository(const std::filesystem::path& repository);

// One model folder; `found` false when DIR/<name> is not a folder (or the name is not a plain
// folder name: empty, ".", "..", or containing a '/').
ModelOnDisk scan_model(const std::filesystem::path& repository, const std::string& name, bool* found);

}  // namespace tandem::server
