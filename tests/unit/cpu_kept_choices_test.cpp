// cpu_kept_choices_test.cpp: timed kernel choices kept in the cache folder (kept_choices.h).
// A kept choice is taken without deciding again, by this process and by others (threads with
// their own file handles stand in for processes here); the first writer of a key wins; lines
// that do not parse, a file of another identity and a folder that cannot be written never
// break a compile; a full file keeps its newer half. Through the cpu backend: a compile with a
// cache folder writes the Winograd timing there, and the value found there decides the kernel
// of the next compile.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/bf16_choice.h"
#include "backends/cpu/kept_choices.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"
#include "bf16_test_util.h"
#include "cpu_int8_test_util.h"
#include "engine/placement.h"
#include "graph_build_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using namespace int8_test;
using testing::attr_ints;

class KeptChoices : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("tandem-kept-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path file() const { return dir_ / cpu::kept_choices_file_name(); }
  std::string read_file() const {
    std::ifstream in(file());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // The header line a fresh file gets (made by keeping one throwaway choice elsewhere).
  std::string header() const {
    const fs::path other = dir_ / "header";
    fs::create_directories(other);
    cpu::kept_choice(other, "k", any_value, [] { return std::make_pair(std::string("v"), std::string("t")); });
    std::ifstream in(other / cpu::kept_choices_file_name());
    std::string line;
    std::getline(in, line);
    return line + "\n";
  }
  static bool any_value(const std::string& v) { return !v.empty(); }

  fs::path dir_;
};

auto decides(const std::string& value, int* calls) {
  return [value, calls] {
    ++*calls;
    return std::make_pair(value, std::string("timed"));
  };
}

TEST_F(KeptChoices, AKeptValueIsTakenWithoutDecidingAgain) {
  int calls = 0;
  EXPECT_EQ(cpu::kept_choice(dir_, "conv a @1t", any_value, decides("1", &calls)), "1");
  EXPECT_EQ(calls, 1);
  // Another process (no in-memory cache here) reading the same folder: the kept value.
  EXPECT_EQ(cpu::kept_choice(dir_, "conv a @1t", any_value, decides("0", &calls)), "1");
  EXPECT_EQ(calls, 1);
  // Other keys (a key that merely starts like a kept one included) are decided and kept too.
  EXPECT_EQ(cpu::kept_choice(dir_, "conv a @1", any_value, decides("0", &calls)), "0");
  EXPECT_EQ(cpu::kept_choice(dir_, "conv b @1t", any_value, decides("2.5 3", &calls)), "2.5 3");
  EXPECT_EQ(calls, 3);
  const std::string text = read_file();
  EXPECT_EQ(text.rfind("# tandem ", 0), 0u) << text;
  EXPECT_NE(text.find("\nconv a @1t\t1\ttimed\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nconv b @1t\t2.5 3\ttimed\n"), std::string::npos) << text;
  // The file is named by its identity, which names this build and CPU.
  EXPECT_EQ(cpu::kept_choices_file_name().rfind("cpu-choices-", 0), 0u);
  EXPECT_NE(text.find(cpu::cpu_isa_description()), std::string::npos) << text;
}

TEST_F(KeptChoices, TheFirstWriterWinsAcrossConcurrentDecisions) {
  // Eight "processes" decide one key at once, each wanting its own value; every one must come
  // away with the same value, the one the file keeps.
  std::vector<std::string> got(8);
  std::vector<std::thread> threads;
  std::atomic<int> started{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      ++started;
      while (started.load() < 8) std::this_thread::yield();
      got[i] = cpu::kept_choice(dir_, "race @2t", any_value,
                                [i] { return std::make_pair(std::to_string(i), std::string("timed")); });
    });
  for (auto& t : threads) t.join();
  for (const std::string& g : got) EXPECT_EQ(g, got[0]);
  const std::string text = read_file();
  EXPECT_NE(text.find("\nrace @2t\t" + got[0] + "\t"), std::string::npos) << text;
}

TEST_F(KeptChoices, LinesThatDoNotParseAreIgnored) {
  int calls = 0;
  {
    std::ofstream out(file());
    out << header() << "garbage without tabs\n"
        << "k @1t\tnot-a-value\ttimed\n"  // refused by the parser below
        << "k @1t\t7\n"                   // cut short before its timings
        << "\t\t\n"
        << "k @1t\t8";  // cut short, no newline
  }
  const auto digit = [](const std::string& v) { return v.size() == 1 && v[0] >= '0' && v[0] <= '9'; };
  EXPECT_EQ(cpu::kept_choice(dir_, "k @1t", digit, decides("3", &calls)), "3");
  EXPECT_EQ(calls, 1);
  // The new line starts a line of its own after the cut one, and is found from then on.
  EXPECT_NE(read_file().find("\nk @1t\t8\nk @1t\t3\ttimed\n"), std::string::npos) << read_file();
  EXPECT_EQ(cpu::kept_choice(dir_, "k @1t", digit, decides("4", &calls)), "3");
  EXPECT_EQ(calls, 1);
}

TEST_F(KeptChoices, AFileOfAnotherIdentityIsLeftAlone) {
  const std::string other = "# tandem 0.0.0, oneDNN 0.0.0, another cpu\nk @1t\t1\ttimed\n";
  {
    std::ofstream out(file());
    out << other;
  }
  int calls = 0;
  EXPECT_EQ(cpu::kept_choice(dir_, "k @1t", any_value, decides("0", &calls)), "0");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(read_file(), other);
}

TEST_F(KeptChoices, AFullFileKeepsItsNewerHalf) {
  // A bound of 8 lines: the ninth key's append cuts the file to its newest 3 lines and the new
  // one; then it grows again.
  int calls = 0;
  const auto key = [](int i) { return "conv " + std::to_string(i) + " @1t"; };
  for (int i = 0; i < 20; ++i) {
    cpu::kept_choice(dir_, key(i), any_value, decides(std::to_string(i), &calls), 8);
    const std::string text = read_file();
    ASSERT_EQ(text.rfind(header(), 0), 0u) << "after key " << i << ":\n" << text;
    ASSERT_LE(cpu::count_kept_lines(text, header()), 8u) << "after key " << i << ":\n" << text;
    ASSERT_NE(text.find("\n" + key(i) + "\t" + std::to_string(i) + "\ttimed\n"), std::string::npos) << text;
  }
  EXPECT_EQ(calls, 20);
  // Cut at keys 8 (to 5..8), 13 (to 10..13) and 18 (to 15..18); then 19 appended.
  const std::string text = read_file();
  EXPECT_EQ(cpu::count_kept_lines(text, header()), 5u) << text;
  EXPECT_EQ(text.find("\n" + key(14) + "\t"), std::string::npos) << text;
  EXPECT_NE(text.find("\n" + key(15) + "\t15\t"), std::string::npos) << text;
  // A kept key is taken without deciding; a dropped one is decided again.
  EXPECT_EQ(cpu::kept_choice(dir_, key(16), any_value, decides("x", &calls), 8), "16");
  EXPECT_EQ(calls, 20);
  EXPECT_EQ(cpu::kept_choice(dir_, key(3), any_value, decides("x", &calls), 8), "x");
  EXPECT_EQ(calls, 21);
}

TEST(KeptChoicesText, TheNewestLinesAreTheLastWholeOnes) {
  const std::string header = "# h\n";
  const std::string text = header + "a\t1\tt\nb\t2\tt\nc\t3\tt\nd\t4";  // d is cut short
  EXPECT_EQ(cpu::count_kept_lines(text, header), 3u);
  EXPECT_EQ(cpu::newest_kept_lines(text, header, 2), header + "b\t2\tt\nc\t3\tt\n");
  EXPECT_EQ(cpu::newest_kept_lines(text, header, 3), header + "a\t1\tt\nb\t2\tt\nc\t3\tt\n");
  EXPECT_EQ(cpu::newest_kept_lines(text, header, 9), header + "a\t1\tt\nb\t2\tt\nc\t3\tt\n");
  EXPECT_EQ(cpu::newest_kept_lines(text, header, 0), header);
  EXPECT_EQ(cpu::newest_kept_lines(header, header, 2), header);
  EXPECT_EQ(cpu::newest_kept_lines("# other\na\t1\tt\n", header, 2), header);
  EXPECT_EQ(cpu::count_kept_lines("# other\na\t1\tt\n", header), 0u);
  EXPECT_EQ(cpu::newest_kept_lines(header + "\n\nx\n", header, 2), header + "\nx\n");
}

TEST_F(KeptChoices, AFolderThatCannotBeUsedLeavesTheChoiceToTheTiming) {
  int calls = 0;
  EXPECT_EQ(cpu::kept_choice(dir_ / "missing" / "deeper", "k @1t", any_value, decides("1", &calls)), "1");
  EXPECT_EQ(calls, 1);
  // A folder where the file's name is taken by a folder: cannot be opened as a file.
  fs::create_directories(file());
  EXPECT_EQ(cpu::kept_choice(dir_, "k @1t", any_value, decides("0", &calls)), "0");
  EXPECT_EQ(calls, 2);
}

TEST_F(KeptChoices, ScopesNestAndEmptyFoldersKeepNothing) {
  EXPECT_EQ(cpu::kept_choices_dir(), nullptr);
  const fs::path empty;
  {
    cpu::KeptChoicesScope outer(dir_);
    ASSERT_NE(cpu::kept_choices_dir(), nullptr);
    EXPECT_EQ(*cpu::kept_choices_dir(), dir_);
    {
      cpu::KeptChoicesScope inner(empty);
      EXPECT_EQ(cpu::kept_choices_dir(), nullptr);
    }
    EXPECT_EQ(*cpu::kept_choices_dir(), dir_);
  }
  EXPECT_EQ(cpu::kept_choices_dir(), nullptr);
}

// Within a folder its file decides, over what this process decided before without one; a
// choice the process made before is written into a folder that keeps none, so that other
// processes take it too; compiles without a folder keep the process's own.
TEST_F(KeptChoices, TheFolderDecidesOverTheProcessCache) {
  cpu::ThreadScope one(1);
  const dnnl::primitive small = testing::conv_primitive(16, 28), large = testing::conv_primitive(128, 112);
  EXPECT_TRUE(cpu::candidate_pays_off("test: folder over cache", small, large, 0.9));  // no folder: timed
  {
    cpu::KeptChoicesScope scope(dir_);
    EXPECT_TRUE(cpu::candidate_pays_off("test: folder over cache", large, small, 0.9));
  }
  const std::string text = read_file();
  EXPECT_NE(text.find("\ntest: folder over cache @1t\t"), std::string::npos) << text;
  EXPECT_NE(text.find("\tdecided earlier in this process\n"), std::string::npos) << text;
  const fs::path other = dir_ / "other";
  fs::create_directories(other);
  {
    std::ofstream out(other / cpu::kept_choices_file_name());
    out << header() << "test: folder over cache @1t\t1000 0.001\tset by the test\n";
  }
  {
    cpu::KeptChoicesScope scope(other);
    EXPECT_FALSE(cpu::candidate_pays_off("test: folder over cache", small, large, 0.9));
  }
  EXPECT_TRUE(cpu::candidate_pays_off("test: folder over cache", large, small, 0.9));  // the process's own
}

// A 3x3 stride-1 convolution whose channel counts (80) oneDNN's Winograd kernels take. The keys
// are read back from the file, so the test holds at any team size (a build under TSan has
// OpenMP teams of one).
GraphBuilder winograd_candidate() {
  GraphBuilder q;
  q.input("x", random_floats({1, 80, 36, 36}, 11, -1.0f, 1.0f))
      .init("w", random_floats({80, 80, 3, 3}, 12, -0.1f, 0.1f))
      .node("Conv", {"x", "w"}, {"y"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .output("y");
  return q;
}

std::string compile_and_describe(const GraphBuilder& q, int threads, const fs::path& cache_dir) {
  CompileOptions options;
  options.threads = threads;
  options.cache_dir = cache_dir;
  auto placed = PlacedModel::create(q.graph(), {cpu_backend()}, options);
  EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
  return placed.is_ok() ? (*placed)->describe() : std::string();
}

TEST_F(KeptChoices, TheKeptWinogradTimingDecidesTheKernel) {
  REQUIRE_CPU();
  if (cpu::cpu_isa_level() < 2) GTEST_SKIP() << "oneDNN 2.6 has Winograd kernels on AVX-512 only";
  const GraphBuilder q = winograd_candidate();
  // Timed at one thread and kept.
  compile_and_describe(q, 1, dir_);
  const std::string text = read_file();
  const size_t at = text.find("\nconv winograd ");
  ASSERT_NE(at, std::string::npos) << text;
  const std::string line = text.substr(at + 1, text.find('\n', at + 1) - at - 1);
  const std::string key = line.substr(0, line.find('\t'));
  // Other folders whose kept times for that key say Winograd is far faster and far slower: each
  // later compile follows its folder, over what this process timed.
  const fs::path fast = dir_ / "fast", slow = dir_ / "slow";
  for (const auto& [folder, value] :
       {std::pair{fast, std::string("0.001 1000")}, std::pair{slow, std::string("1000 0.001")}}) {
    fs::create_directories(folder);
    std::ofstream out(folder / cpu::kept_choices_file_name());
    out << header() << key << "\t" << value << "\tset by the test\n";
  }
  const std::string with_fast = compile_and_describe(q, 1, fast);
  EXPECT_NE(with_fast.find("wino"), std::string::npos) << with_fast;
  const std::string with_slow = compile_and_describe(q, 1, slow);
  EXPECT_EQ(with_slow.find("wino"), std::string::npos) << with_slow;
}

}  // namespace
}  // namespace tandem
