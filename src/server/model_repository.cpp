// model_repository.cpp: see model_repository.h.
#include "model_repository.h"

#include <sys/stat.h>

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

// What `file` is now: its device and inode, size, and modification and status-change times
// (ns), or "" when it cannot be read. Every write or rename changes the status-change time,
// which no tool can set back (a copy that keeps the old size and modification time, as
// `cp -p` or `rsync -t` can make, is still seen); a file moved into place has a new inode.
std::string file_stamp(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "";
  auto ns = [](const timespec& t) { return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec); };
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + " " + std::to_string(st.st_size) + " m" +
         ns(st.st_mtim) + " c" + ns(st.st_ctim);
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
    if (entry.empty() || entry[0] == '.' || entry == "config.json") continue;
    const int version = parse_version(entry);
    const fs::path model_file = it->path() / "model.onnx";
    if (!fs::is_directory(it->path(), file_ec)) {
      // Other files beside config.json (notes, labels) are the owner's business; a file named
      // as a version is a mistake worth naming.
      if (version > 0) m.not_versions.push_back("'" + entry + "' (a file; a version is a folder)");
    } else if (version <= 0) {
      m.not_versions.push_back("'" + entry + "' (a version is a positive integer, at most 9 digits, no leading 0)");
    } else if (!fs::exists(model_file, file_ec)) {
      m.not_versions.push_back("'" + entry + "' (no model.onnx in it)");
    } else if (!fs::is_regular_file(model_file, file_ec)) {
      m.not_versions.push_back("'" + entry + "' (its model.onnx is not a file)");
    } else {
      m.versions[version] = model_file;
      m.stamps[version] = file_stamp(model_file);
    }
  }
  const fs::path config_path = folder / "config.json";
  if (fs::exists(config_path, ec) && !fs::is_regular_file(config_path, ec)) {
    m.config_error = "model '" + name + "': config.json is not a file";
  } else if (fs::exists(config_path, ec)) {
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
