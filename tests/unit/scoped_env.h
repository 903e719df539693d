// scoped_env.h: an environment variable set for one scope (the cpu backend's TANDEM_CPU_*
// switches in tests), restored to its earlier value, or unset, when the scope ends.
// Not thread-safe: setenv while another thread reads the environment is undefined.
#pragma once

#include <cstdlib>
#include <string>

namespace tandem::testing {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

}  // namespace tandem::testing
