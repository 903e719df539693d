// npy_test.cpp: .npy round trips, and malformed .npy bytes failing with one clear line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/npy.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("tandem-npy-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};
using NpyRoundTrip = NpyTest;
using NpyMalformed = NpyTest;

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A version-1 .npy with the given header dict (padded as numpy pads it) and data bytes.
std::string npy_bytes(const std::string& dict, const std::string& data, int version = 1) {
  std::string header = dict;
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  const size_t len = header.size();
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (version != 1) out += std::string(2, '\0');
  return out + header + data;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

void expect_bad(const Result<Tensor>& r, const std::string& needle) {
  ASSERT_FALSE(r.is_ok()) << "expected an error about " << needle;
  const std::string m = r.status().message();
  EXPECT_EQ(r.status().code(), StatusCode::invalid_argument) << r.status().to_string();
  EXPECT_EQ(m.rfind("x.npy: ", 0), 0u) << m;
  EXPECT_NE(m.find(needle), std::string::npos) << "'" << needle << "' not in: " << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

// Writes `t`, reads it back and compares dtype, shape and bytes.
void round_trip(const fs::path& dir, const Tensor& t, const std::string& name) {
  SCOPED_TRACE(name);
  const fs::path p = dir / (name + ".npy");
  Status w = write_npy(p, t);
  ASSERT_TRUE(w.is_ok()) << w.to_string();
  const std::string bytes = file_bytes(p);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ((bytes.size() - t.nbytes()) % 64, 0u) << "header not padded to 64 bytes";
  auto r = read_npy(p);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->dtype(), t.dtype());
  EXPECT_EQ(r->shape(), t.shape());
  ASSERT_EQ(r->nbytes(), t.nbytes());
  if (t.nbytes()) {
    EXPECT_EQ(std::memcmp(r->raw_data(), t.raw_data(), t.nbytes()), 0);
  }
}

TEST_F(NpyRoundTrip, DtypesAndShapes) {
  round_trip(dir_, Tensor::from_vector<float>({2, 3}, {1, -2, 3.5f, 4, 5, 6}), "f32");
  round_trip(dir_, Tensor::from_vector<double>({3}, {1e300, -0.0, 3}), "f64");
  round_trip(dir_, Tensor::from_vector<int64_t>({2, 1, 2}, {INT64_MIN, -1, 0, INT64_MAX}), "i64");
  round_trip(dir_, Tensor::from_vector<int32_t>({4}, {INT32_MIN, -1, 0, INT32_MAX}), "i32");
  round_trip(dir_, Tensor::from_vector<int16_t>({2}, {-300, 300}), "i16");
  round_trip(dir_, Tensor::from_vector<int8_t>({3}, {-128, 0, 127}), "i8");
  round_trip(dir_, Tensor::from_vector<uint8_t>({1, 3}, {0, 128, 255}), "u8");
  round_trip(dir_, Tensor::from_vector<uint16_t>({2}, {0, 65535}), "u16");
  round_trip(dir_, Tensor::from_vector<uint32_t>({2}, {0, 4000000000u}), "u32");
  round_trip(dir_, Tensor::from_vector<uint64_t>({1}, {UINT64_MAX}), "u64");
  round_trip(dir_, Tensor::from_vector<bool>({2, 2}, {true, false, false, true}), "bool");
  round_trip(dir_, Tensor::from_vector<Float16>({2}, {Float16(1.5f), Float16(-2.0f)}), "f16");
  round_trip(dir_, Tensor::from_vector<std::complex<float>>({2}, {{1, 2}, {-3, 4}}), "c64");
  round_trip(dir_, Tensor::from_vector<std::complex<double>>({1}, {{1e-3, -7}}), "c128");
}

TEST_F(NpyRoundTrip, ScalarZeroSizeAndHighRank) {
  round_trip(dir_, Tensor::scalar<float>(3.25f), "scalar");
  round_trip(dir_, Tensor::scalar<int64_t>(-9), "scalar_i64");
  round_trip(dir_, Tensor(DataType::float32, {0}), "empty1");
  round_trip(dir_, Tensor(DataType::int32, {3, 0, 2}), "empty3");
  round_trip(dir_, Tensor(DataType::uint8, {1, 1, 1, 1, 1, 1, 1, 2}), "rank8");
  // The shape text numpy expects: "()" for a scalar, "(3,)" for rank 1.
  ASSERT_TRUE(write_npy(dir_ / "s.npy", Tensor::scalar<float>(1)).is_ok());
  EXPECT_NE(file_bytes(dir_ / "s.npy").find("'shape': ()"), std::string::npos);
  ASSERT_TRUE(write_npy(dir_ / "v.npy", Tensor(DataType::float32, {3})).is_ok());
  EXPECT_NE(file_bytes(dir_ / "v.npy").find("'shape': (3,)"), std::string::npos);
}

TEST_F(NpyRoundTrip, UnwritableDtypes) {
  Status s = write_npy(dir_ / "s.npy", Tensor::from_vector<std::string>({1}, {"a"}));
  EXPECT_EQ(s.code(), StatusCode::unsupported) << s.to_string();
  s = write_npy(dir_ / "no_such_dir" / "x.npy", Tensor::scalar<float>(1));
  EXPECT_FALSE(s.is_ok());
}

TEST_F(NpyRoundTrip, ParsesWhatNumpyWrites) {
  // Header variants numpy produces or accepts: version 2, '=' byte order, spacing.
  auto r = parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", raw<float>({1, 2, 3, 4}), 2),
                     "x.npy");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->shape(), (Shape{2, 2}));
  r = parse_npy(npy_bytes("{'descr':'=i8','fortran_order':False,'shape':(1,)}", raw<int64_t>({7})), "x.npy");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->dtype(), DataType::int64);
  EXPECT_EQ(r->data<int64_t>()[0], 7);
  r = parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw<double>({2.5})), "x.npy");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rank(), 0u);
  // A 1-D array in Fortran order is the same bytes; numpy writes fortran_order False for it
  // anyway, but a zero-size or scalar header with spaces around False must also work.
  r = parse_npy(npy_bytes("{'descr': '|u1', 'fortran_order':  False , 'shape': (0,), }", ""), "x.npy");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->numel(), 0);
}

TEST_F(NpyRoundTrip, BoolBytesAreNormalized) {
  auto r = parse_npy(npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", std::string("\x00\x05\x01", 3)),
                     "x.npy");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto* b = static_cast<const unsigned char*>(r->raw_data());
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[1], 1);
  EXPECT_EQ(b[2], 1);
}

const std::string kGoodDict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";

TEST_F(NpyMalformed, BadMagic) {
  expect_bad(parse_npy("", "x.npy"), "not a .npy file");
  expect_bad(parse_npy("\x93NUMP", "x.npy"), "not a .npy file");
  std::string b = npy_bytes(kGoodDict, raw<float>({1, 2}));
  b[1] = 'M';
  expect_bad(parse_npy(b, "x.npy"), "not a .npy file");
  expect_bad(parse_npy("PK\x03\x04 this is a zip, an .npz maybe", "x.npy"), "not a .npy file");
}

TEST_F(NpyMalformed, UnsupportedVersion) {
  std::string b = npy_bytes(kGoodDict, raw<float>({1, 2}));
  b[6] = 9;
  expect_bad(parse_npy(b, "x.npy"), "unsupported .npy version 9");
}

TEST_F(NpyMalformed, TruncatedHeader) {
  const std::string b = npy_bytes(kGoodDict, raw<float>({1, 2}));
  for (size_t cut : {size_t{10}, size_t{11}, size_t{30}, size_t{63}})
    expect_bad(parse_npy(b.substr(0, cut), "x.npy"), "truncated header");
  const std::string b2 = npy_bytes(kGoodDict, raw<float>({1, 2}), 2);
  expect_bad(parse_npy(b2.substr(0, 11), "x.npy"), "truncated header");
  // A header length field of 4 GiB.
  std::string b3 = b2;
  b3[8] = b3[9] = b3[10] = b3[11] = '\xff';
  expect_bad(parse_npy(b3, "x.npy"), "truncated header");
}

TEST_F(NpyMalformed, TruncatedData) {
  const std::string b = npy_bytes(kGoodDict, raw<float>({1, 2}));
  expect_bad(parse_npy(b.substr(0, b.size() - 1), "x.npy"), "holds 7 data bytes, expected 8");
  expect_bad(parse_npy(b.substr(0, b.size() - 8), "x.npy"), "holds 0 data bytes, expected 8");
  // A huge shape with no data: refused without allocating.
  expect_bad(parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }", ""), "x.npy"),
             "expected 8796093022208");
  expect_bad(parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", ""),
                       "x.npy"),
             "too large");
}

TEST_F(NpyMalformed, UnsupportedDtype) {
  for (const char* d : {"<U3", ">f4", "|O", "<M8[s]", "", "<f4\n"}) {
    const std::string dict = std::string("{'descr': '") + d + "', 'fortran_order': False, 'shape': (2,), }";
    expect_bad(parse_npy(npy_bytes(dict, std::string(32, '\0')), "x.npy"), "unsupported dtype");
  }
  // A structured dtype (a list, not a string).
  expect_bad(parse_npy(npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0')),
                       "x.npy"),
             "unsupported dtype");
}

TEST_F(NpyMalformed, FortranOrder) {
  expect_bad(parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", raw<float>({1, 2, 3, 4})),
                       "x.npy"),
             "Fortran-order");
  expect_bad(parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': True , 'shape': (2, 2), }", raw<float>({1, 2, 3, 4})),
                       "x.npy"),
             "Fortran-order");
  expect_bad(parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", raw<float>({1, 2})), "x.npy"),
             "fortran_order");
}

TEST_F(NpyMalformed, BadShape) {
  for (const char* s : {"(2", "2", "(-2,)", "(2x,)", "(,)", "(2,,3)", "(a, b)", "(1e3,)", "(99999999999999999999,)"}) {
    SCOPED_TRACE(s);
    const std::string dict = std::string("{'descr': '<f4', 'fortran_order': False, 'shape': ") + s + ", }";
    auto r = parse_npy(npy_bytes(dict, std::string(64, '\0')), "x.npy");
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
  expect_bad(parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': False, }", raw<float>({1})), "x.npy"), "missing shape");
}

TEST_F(NpyMalformed, FilesThatAreNotThere) {
  auto r = read_npy(dir_ / "nothere.npy");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("nothere.npy: no such file"), std::string::npos) << r.status().message();
  r = read_npy(dir_);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("directory"), std::string::npos) << r.status().message();
}

TEST_F(NpyMalformed, RandomAndMutatedBytes) {
  std::mt19937 rng(777);
  const std::string good = npy_bytes(kGoodDict, raw<float>({1, 2}));
  for (int i = 0; i < 2000; ++i) {
    std::string b = good;
    const size_t flips = 1 + rng() % 6;
    for (size_t k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    auto r = parse_npy(b, "x.npy");
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().message().rfind("x.npy: ", 0), 0u) << r.status().message();
      EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
    }
  }
}

}  // namespace
}  // namespace tandem
