// kept_choices.cpp: the file of kept kernel choices (kept_choices.h).
#include "backends/cpu/kept_choices.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dnnl.hpp>
#include <fstream>
#include <optional>
#include <string>

#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

thread_local const std::filesystem::path* t_dir = nullptr;

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    const size_t start = line.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return "unknown cpu";
}

// The identity line of this process's file (without its leading "# ").
const std::string& identity() {
  static const std::string id = [] {
    const dnnl_version_t* v = dnnl_version();
    std::string s = "tandem " TANDEM_VERSION ", oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) +
                    "." + std::to_string(v->patch) + ", " + cpu_model_name() + ", " + cpu_isa_description();
    for (char& c : s)
      if (c == '\n' || c == '\t') c = ' ';
    return s;
  }();
  return id;
}

// FNV-1a, 64 bits: a stable name for the identity (not a security measure).
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// An open, exclusively locked file; unlocked and closed when it goes.
class LockedFile {
 public:
  explicit LockedFile(const std::filesystem::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return;
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
  ~LockedFile() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  LockedFile(const LockedFile&) = delete;
  LockedFile& operator=(const LockedFile&) = delete;

  bool ok() const { return fd_ >= 0; }

  // The whole file, or nullopt on a read error.
  std::optional<std::string> read_all() const {
    std::string text;
    char buf[16384];
    off_t at = 0;
    for (;;) {
      const ssize_t n = ::pread(fd_, buf, sizeof buf, at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return std::nullopt;
      if (n == 0) return text;
      text.append(buf, static_cast<size_t>(n));
      at += n;
    }
  }

  // Replaces the whole file with `text` (the descriptor appends, so writes land at the new end).
  bool rewrite(const std::string& text) const {
    int r;
    do r = ::ftruncate(fd_, 0);
    while (r != 0 && errno == EINTR);
    return r == 0 && append(text);
  }

  bool append(const std::string& text) const {
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

 private:
  int fd_ = -1;
};

std::string header_line() { return "# " + identity() + "\n"; }

void note_failure(const std::filesystem::path& path, const char* what) {
  if (verbose())
    note("kept choices: " + path.string() + ": cannot " + what + " (" + std::strerror(errno) + "); timing");
}

}  // namespace

KeptChoicesScope::KeptChoicesScope(const std::filesystem::path& dir) : outer_(t_dir) { t_dir = &dir; }

KeptChoicesScope::~KeptChoicesScope() { t_dir = outer_; }

const std::filesystem::path* kept_choices_dir() { return t_dir != nullptr && !t_dir->empty() ? t_dir : nullptr; }

std::string kept_choices_file_name() {
  char name[48];
  std::snprintf(name, sizeof name, "cpu-choices-%016" PRIx64 ".tsv", fnv1a(identity()));
  return name;
}

std::string kept_choice(const std::filesystem::path& dir, const std::string& key,
                        const std::function<bool(const std::string&)>& parse,
                        const std::function<std::pair<std::string, std::string>()>& decide, size_t max_lines) {
  const std::filesystem::path path = dir / kept_choices_file_name();
  {
    LockedFile f(path);
    if (!f.ok()) {
      note_failure(path, "open");
      return decide().first;
    }
    auto text = f.read_all();
    if (!text) {
      note_failure(path, "read");
      return decide().first;
    }
    if (auto kept = find_kept_value(*text, header_line(), key, parse)) return *kept;
  }  // unlocked while timing
  auto [value, timings] = decide();
  LockedFile f(path);
  if (!f.ok()) return value;
  auto text = f.read_all();
  if (!text) return value;
  if (auto kept = find_kept_value(*text, header_line(), key, parse)) return *kept;  // another process kept one first
  const std::string header = header_line();
  if (!text->empty() && text->compare(0, header.size(), header) != 0)
    return value;  // another identity's file under our name: leave it alone
  const std::string line = key + "\t" + value + "\t" + timings + "\n";
  if (max_lines > 0 && count_kept_lines(*text, header) + 1 > max_lines) {
    // Full: keep the newer half (the new line included).
    if (!f.rewrite(newest_kept_lines(*text, header, std::max<size_t>(max_lines / 2, 1) - 1) + line))
      note_failure(path, "rewrite");
    return value;
  }
  std::string lines;
  if (text->empty()) lines.append(header);
  if (!text->empty() && text->back() != '\n') lines.push_back('\n');  // end a line cut short
  lines.append(line);
  if (!f.append(lines)) note_failure(path, "write");
  return value;
}

}  // namespace tandem::cpu
