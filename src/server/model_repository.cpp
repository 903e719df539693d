// model_repository.cpp: see model_repository.h.
#include "model_repository.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <system_error>

namespace tandem::server {

namespace fs = std::filesystem;

namespace {

// A positive decimal integer without sign or leading zeros; 0 otherwise.
int parse_version(const std::string& text) {
  if (text.empty() || text.size() > 9 || text[0] == '0') return 0;
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() ? v : 0;
}

// The size and modification time (ns) of `file`, or "" when it cannot be read.
std::string file_stamp(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) return "";
  const auto time = fs::last_write_time(file, ec);
  if (ec) return "";
  return std::to_string(size) + "@" + std::to_string(time.time_since_epoch().count());
}

bool plain_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos;
}

}  // namespace

ModelOnDisk scan_model(const fs::path& repository, const std::string& name, bool* found) {
  ModelOnDisk m;
  m.name = name;
  std::error_code ec;
  const fs::path folder = repository / name;
  *found = plain_name(name) && fs::is_directory(folder, ec);
  if (!*found) return m;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    std::error_code file_ec;
    if (entry.empty() || entry[0] == '.' || !fs::is_directory(it->path(), file_ec)) continue;
    const int version = parse_version(entry);
    if (version <= 0) {
      m.not_versions.push_back("'" + entry + "' (a version is a positive integer, at most 9 digits, no leading 0)");
    } else if (!fs::is_regular_file(it->path() / "model.onnx", file_ec)) {
      m.not_versions.push_back("'" + entry + "' (no model.onnx in it)");
    } else {
      m.versions[version] = it->path() / "model.onnx";
      m.stamps[version] = file_stamp(it->path() / "model.onnx");
    }
  }
  const fs::path config_path = folder / "config.json";
  if (fs::exists(config_path, ec)) {
    std::ifstream in(config_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      m.config_error = "model '" + name + "': config.json cannot be read";
    } else {
      m.config_text = text.str();
      auto config = parse_model_config(name, m.config_text);
      if (config) m.config = std::move(*config);
      else m.config_error = config.status().message();
    }
  }
  return m;
}

std::map<std::string, ModelOnDisk> scan_repository(const fs::path& repository) {
  std::map<std::string, ModelOnDisk> models;
  std::error_code ec;
  for (fs::directory_iterator it(repository, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    bool found = false;
    ModelOnDisk m = scan_model(repository, name, &found);
    if (found) models.emplace(name, std::move(m));
  }
  return models;
}

}  // namespace tandem::server
