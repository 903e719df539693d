// cpu_qrows_test.cpp: the cpu backend's row quantizer (int8.h, quantize_rows), which stores
// every 8-bit result of its elementwise and Concat kernels, against QuantizeLinear's formula
// y = saturate(round_half_even(x / scale) + zero_point), NaN to the zero point: rows shorter
// and longer than a vector, strided rows, ties, infinities and values past the range, scales
// whose reciprocal is exact and ones whose is not, both signs of bytes; and the row
// dequantizer. Runs at each ISA cap.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "backends/cpu/int8.h"

namespace tandem {
namespace {

int expected(float x, float scale, float zp, bool to_signed) {
  float q = x / scale;
  if (std::isnan(q)) q = 0.0f;
  const float r = std::nearbyint(q) + zp;
  const float lo = to_signed ? -128.0f : 0.0f, hi = to_signed ? 127.0f : 255.0f;
  return static_cast<int>(std::fmin(std::fmax(r, lo), hi));
}

TEST(CpuBackendQuantizeRows, RowsOfAnyLengthFollowQuantizeLinear) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  std::mt19937 gen(7);
  for (bool to_signed : {false, true})
    for (float scale : {0.25f, 0.0173f})
      for (int64_t lanes : {7, 16, 40, 96, 130}) {
        SCOPED_TRACE(std::to_string(lanes) + " lanes, scale " + std::to_string(scale) + (to_signed ? ", s8" : ", u8"));
        const float zp = to_signed ? -3.0f : 121.0f;
        const int64_t rows = 5, x_rs = lanes + 3, y_rs = lanes + 5;
        std::vector<float> x(static_cast<size_t>(rows * x_rs));
        std::uniform_real_distribution<float> wide(-300.0f * scale, 300.0f * scale);
        std::uniform_int_distribution<int> steps(-140, 140);
        for (size_t i = 0; i < x.size(); ++i)
          x[i] = i % 3 == 0 ? (static_cast<float>(steps(gen)) + 0.5f) * scale : wide(gen);  // ties every third
        x[1] = std::nanf("");
        x[2] = kInf;
        x[static_cast<size_t>(x_rs + 1)] = -kInf;
        std::vector<uint8_t> y(static_cast<size_t>(rows * y_rs), 0xAB);
        cpu::quantize_rows(x.data(), x_rs, rows, lanes, y.data(), y_rs, to_signed, scale, zp);
        int wrong = 0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t l = 0; l < lanes; ++l) {
            const uint8_t byte = y[static_cast<size_t>(r * y_rs + l)];
            const int got = to_signed ? static_cast<int>(static_cast<int8_t>(byte)) : static_cast<int>(byte);
            const float v = x[static_cast<size_t>(r * x_rs + l)];
            if (got != expected(v, scale, zp, to_signed) && wrong++ < 5)
              ADD_FAILURE() << "row " << r << " lane " << l << ": " << v << " -> " << got << ", want "
                            << expected(v, scale, zp, to_signed);
          }
          for (int64_t l = lanes; l < y_rs; ++l)
            EXPECT_EQ(y[static_cast<size_t>(r * y_rs + l)], 0xAB) << "wrote past the row, lane " << l;
        }
      }
}

// The inverse, y = (x - zero_point) * scale (exact in float32: x - zero_point has 9 bits).
TEST(CpuBackendQuantizeRows, DequantizedRowsOfAnyLengthAreExact) {
  std::mt19937 gen(8);
  std::uniform_int_distribution<int> byte(0, 255);
  for (bool from_signed : {false, true})
    for (int64_t lanes : {7, 16, 40, 96, 130}) {
      SCOPED_TRACE(std::to_string(lanes) + " lanes" + (from_signed ? ", s8" : ", u8"));
      const int64_t rows = 4, x_rs = lanes + 9, y_rs = lanes + 2;
      const int32_t zp = from_signed ? 5 : 130;
      const float scale = 0.0173f;
      std::vector<uint8_t> x(static_cast<size_t>(rows * x_rs));
      for (auto& v : x) v = static_cast<uint8_t>(byte(gen));
      std::vector<float> y(static_cast<size_t>(rows * y_rs), -7.0f);
      cpu::dequantize_rows(x.data(), x_rs, from_signed, rows, lanes, y.data(), y_rs, scale, zp);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t l = 0; l < lanes; ++l) {
          const uint8_t b = x[static_cast<size_t>(r * x_rs + l)];
          const int q = from_signed ? static_cast<int>(static_cast<int8_t>(b)) : static_cast<int>(b);
          ASSERT_EQ(y[static_cast<size_t>(r * y_rs + l)], static_cast<float>(q - zp) * scale) << r << ", " << l;
        }
        for (int64_t l = lanes; l < y_rs; ++l) ASSERT_EQ(y[static_cast<size_t>(r * y_rs + l)], -7.0f) << "past the row";
      }
    }
}

}  // namespace
}  // namespace tandem
