// kept_choices.h: the kernel choices the cpu backend times at compile (bf16 or float32,
// Winograd or direct; bf16_choice.h), kept in a file of the engine's cache folder.
//
// Why: a timed choice depends on what else ran on the cores while it was timed. Two processes
// compiling one model on a busy machine (replicas of a server, a test and the CLI it checks)
// may choose differently and then differ in the last bits of their answers. A process whose
// compile finds a choice in the file takes it without timing, so every process that shares the
// folder compiles the same kernels and gives the same bits; it also skips the timing.
//
// The file is `<folder>/cpu-choices-<16 hex digits>.tsv`, the digits a hash of the identity
// line that heads it: tandem's and oneDNN's versions, the CPU's model name and the ISA in use
// (TANDEM_CPU_ISA included). Another machine, build or ISA cap sharing the folder uses its own
// file. Each later line is `<key>\t<value>\t<timings>` (the timings for people reading it).
// Lines that do not parse are ignored, and a file that cannot be opened, read or written leaves
// the choice to the timing (noted under TANDEM_CPU_VERBOSE): the file only ever saves work.
//
// Size: the file holds at most kMaxKeptChoices lines after its header (a model with many
// input sizes adds lines for each). An append that would pass that first drops the older
// half, rewriting the file in place under the lock, so that every process keeps working on
// the one file; a dropped choice is timed again when a compile needs it.
// Processes: the file is read and appended under an exclusive flock, never while timing. Two
// processes that time one key at once both append; the first line for a key wins, and a
// process re-reads after timing, so both take the first writer's value.
//
// Thread-safety: the scope is per thread; kept_choice() is thread-safe and process-safe.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tandem::cpu {

// While one lives on a thread, choices made on that thread are kept in `dir` (empty: not
// kept). The instance build opens one with the plan's cache folder. Scopes nest; the innermost
// holds. `dir` must outlive the scope.
class KeptChoicesScope {
 public:
  explicit KeptChoicesScope(const std::filesystem::path& dir);
  ~KeptChoicesScope();
  KeptChoicesScope(const KeptChoicesScope&) = delete;
  KeptChoicesScope& operator=(const KeptChoicesScope&) = delete;

 private:
  const std::filesystem::path* outer_;
};

// The folder of the innermost scope on this thread, or null when there is none (or it is
// empty).
const std::filesystem::path* kept_choices_dir();

// The file's name in a folder: "cpu-choices-<hash of the identity>.tsv".
std::string kept_choices_file_name();

// Returns the value kept for `key` in `dir`'s file, or, when there is none (or `parse` refuses
// the kept text), decides: `decide` returns the value's text and the timings behind it, and
// the value is appended unless another process kept one meanwhile, which is then returned
// instead. `parse` says whether a kept text is a well-formed value. Keys and values must hold
// no tab or newline.
// `max_lines`: the file's bound (tests pass a small one).
inline constexpr size_t kMaxKeptChoices = 4096;
std::string kept_choice(const std::filesystem::path& dir, const std::string& key,
                        const std::function<bool(const std::string&)>& parse,
                        const std::function<std::pair<std::string, std::string>()>& decide,
                        size_t max_lines = kMaxKeptChoices);

// The reader of a file's text (kept_choices_text.cpp; no I/O, fuzzed by fuzz_kept_choices):
// the value of the first line `<key>\t<value>\t...` whose value `parse` accepts, or nullopt.
// A text that does not begin with `header` (a whole line, newline included) keeps nothing; a
// last line without its newline, or without the tab after its value, is ignored.
std::optional<std::string> find_kept_value(std::string_view text, std::string_view header, std::string_view key,
                                           const std::function<bool(const std::string&)>& parse);

// The lines after `header` that end with a newline (what find_kept_value reads); 0 for a text
// without the header.
size_t count_kept_lines(std::string_view text, std::string_view header);

// `header` and then the last `keep` lines of `text` that end with a newline, in their order:
// the text a full file is cut down to. Just `header` for a text without it (or a header that
// does not end with a newline).
std::string newest_kept_lines(std::string_view text, std::string_view header, size_t keep);

}  // namespace tandem::cpu
