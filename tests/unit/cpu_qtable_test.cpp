// cpu_qtable_test.cpp: the byte lookup tables of the cpu backend's quantized kernels
// (backends/cpu/qtable.h) against plain loops, on sizes that leave partial vectors and on
// pixel ranges split the way threads split them. Named CpuBackend* so that ctest also runs it
// under each lower instruction-set cap (their scalar paths).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <random>
#include <vector>

#include "backends/cpu/qtable.h"

namespace tandem::cpu {
namespace {

std::vector<uint8_t> random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(d(rng));
  return v;
}

TEST(CpuBackendTables, ByteMapMatchesALoopAtEveryLength) {
  std::vector<uint8_t> table(256);
  for (int i = 0; i < 256; ++i) table[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 37 + 11) % 256);
  // A permutation, then tables that are not (repeated and random entries): every byte value
  // in every lane, on lengths that leave partial vectors of 32 and 64.
  std::vector<uint8_t> random_table = random_bytes(256, 9);
  std::vector<uint8_t> steps(256);
  for (int i = 0; i < 256; ++i) steps[static_cast<size_t>(i)] = static_cast<uint8_t>(i < 100 ? 0 : i < 200 ? 7 : 255);
  for (std::vector<uint8_t>* t : {&table, &random_table, &steps})
    for (int64_t n : {0, 1, 31, 32, 33, 63, 64, 65, 200, 4099}) {
      const std::vector<uint8_t> x = random_bytes(static_cast<size_t>(n), 3);
      std::vector<uint8_t> y(static_cast<size_t>(n), 0);
      lut_map(x.data(), y.data(), n, t->data());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], (*t)[x[i]]) << "n=" << n << " i=" << i;
    }
  EXPECT_TRUE(is_identity(all_bytes()));
  EXPECT_FALSE(is_identity(table.data()));
}

TEST(CpuBackendTables, ChannelsLastBytesBecomePlanarFloats) {
  std::vector<float> table(256);
  for (int i = 0; i < 256; ++i) table[static_cast<size_t>(i)] = 0.25f * static_cast<float>(i) - 17.0f;
  struct Case {
    int64_t pixels, channels;
  };
  for (Case c : {Case{1, 1}, Case{5, 3}, Case{16, 4}, Case{17, 4}, Case{33, 24}, Case{300, 96}, Case{1000, 7}}) {
    SCOPED_TRACE("pixels " + std::to_string(c.pixels) + ", channels " + std::to_string(c.channels));
    // The bytes exactly fill their buffer, so a read past its end would show under ASan.
    const std::vector<uint8_t> x = random_bytes(static_cast<size_t>(c.pixels * c.channels), 5);
    // Whole, and in uneven pieces as threads would take them.
    for (int64_t piece : {c.pixels, int64_t{13}, int64_t{16}}) {
      std::vector<float> y(x.size(), -1.0f);
      for (int64_t p = 0; p < c.pixels; p += piece)
        lut_to_planar_float(x.data(), y.data(), c.pixels, c.channels, table.data(), p, std::min(c.pixels, p + piece));
      for (int64_t p = 0; p < c.pixels; ++p)
        for (int64_t ch = 0; ch < c.channels; ++ch)
          ASSERT_EQ(y[static_cast<size_t>(ch * c.pixels + p)], table[x[static_cast<size_t>(p * c.channels + ch)]])
              << "pixel " << p << " channel " << ch << " piece " << piece;
    }
  }
}

}  // namespace
}  // namespace tandem::cpu
