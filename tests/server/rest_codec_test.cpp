// Tests of the REST codec (src/server/rest_codec.h): JSON and binary request decoding of every
// datatype, nested data, response encoding (FP32 exact through JSON), and bad bodies.
#include "server/rest_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "server/side_tasks.h"

namespace tandem::server {
namespace {

using nlohmann::json;

InferRequest decode_ok(const std::string& body, std::optional<std::string_view> header_length = std::nullopt,
                       RequestLimits limits = {}) {
  InferRequest request;
  auto error = decode_rest_infer_request(body, header_length, limits, &request);
  EXPECT_FALSE(error) << error->message;
  return request;
}

std::string one_input(const std::string& datatype, const std::string& shape, const std::string& data) {
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":)" + shape + R"(,"data":)" + data + "}]}";
}

template <class T>
std::vector<T> elements(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

TEST(RestCodec, DecodesJsonTensorsOfEveryDatatype) {
  auto check_ints = [](const std::string& dt, DataType dtype, const std::string& data) -> Tensor {
    InferRequest r = decode_ok(one_input(dt, "[3]", data));
    if (r.inputs.size() != 1u) {
      ADD_FAILURE() << dt << " did not decode";
      return Tensor(dtype, {3});
    }
    EXPECT_EQ(r.inputs[0].tensor.dtype(), dtype) << dt;
    EXPECT_EQ(r.inputs[0].tensor.shape(), Shape{3});
    return r.inputs[0].tensor;
  };
  EXPECT_EQ(elements<uint8_t>(check_ints("UINT8", DataType::uint8, "[0,7,255]")), (std::vector<uint8_t>{0, 7, 255}));
  EXPECT_EQ(elements<uint16_t>(check_ints("UINT16", DataType::uint16, "[0,7,65535]")), (std::vector<uint16_t>{0, 7, 65535}));
  EXPECT_EQ(elements<uint32_t>(check_ints("UINT32", DataType::uint32, "[0,7,4294967295]")),
            (std::vector<uint32_t>{0, 7, 4294967295u}));
  EXPECT_EQ(elements<uint64_t>(check_ints("UINT64", DataType::uint64, "[0,7,18446744073709551615]")),
            (std::vector<uint64_t>{0, 7, std::numeric_limits<uint64_t>::max()}));
  EXPECT_EQ(elements<int8_t>(check_ints("INT8", DataType::int8, "[-128,0,127]")), (std::vector<int8_t>{-128, 0, 127}));
  EXPECT_EQ(elements<int16_t>(check_ints("INT16", DataType::int16, "[-32768,0,32767]")),
            (std::vector<int16_t>{-32768, 0, 32767}));
  EXPECT_EQ(elements<int32_t>(check_ints("INT32", DataType::int32, "[-2147483648,0,2147483647]")),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 0, 2147483647}));
  EXPECT_EQ(elements<int64_t>(check_ints("INT64", DataType::int64, "[-9223372036854775808,0,9223372036854775807]")),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 0, std::numeric_limits<int64_t>::max()}));
  EXPECT_EQ(elements<bool>(check_ints("BOOL", DataType::boolean, "[true,false,true]")), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(elements<float>(check_ints("FP32", DataType::float32, "[1.5,-2,3e-3]")), (std::vector<float>{1.5f, -2.f, 3e-3f}));
  EXPECT_EQ(elements<double>(check_ints("FP64", DataType::float64, "[1.5,-2,1e300]")), (std::vector<double>{1.5, -2, 1e300}));
  Tensor half = check_ints("FP16", DataType::float16, "[1.5,-2,65504]");
  EXPECT_EQ(float(half.data<Float16>()[0]), 1.5f);
  EXPECT_EQ(float(half.data<Float16>()[2]), 65504.f);
  Tensor bf = check_ints("BF16", DataType::bfloat16, "[1.5,-2,256]");
  EXPECT_EQ(float(bf.data<BFloat16>()[1]), -2.f);
  EXPECT_EQ(float(bf.data<BFloat16>()[2]), 256.f);
  EXPECT_EQ(elements<std::string>(check_ints("BYTES", DataType::string, R"(["a","","h\u00e9"])")),
            (std::vector<std::string>{"a", "", "h\xc3\xa9"}));
}

TEST(RestCodec, NestedDataFollowsTheShape) {
  InferRequest r = decode_ok(one_input("INT32", "[2,3]", "[[1,2,3],[4,5,6]]"));
  EXPECT_EQ(elements<int32_t>(r.inputs[0].tensor), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  r = decode_ok(one_input("INT32", "[2,1,2]", "[[[1,2]],[[3,4]]]"));
  EXPECT_EQ(elements<int32_t>(r.inputs[0].tensor), (std::vector<int32_t>{1, 2, 3, 4}));
  r = decode_ok(one_input("INT32", "[2,3]", "[1,2,3,4,5,6]"));  // flat is fine too
  EXPECT_EQ(r.inputs[0].tensor.numel(), 6);
  r = decode_ok(one_input("FP32", "[]", "[7]"));  // a scalar
  EXPECT_EQ(r.inputs[0].tensor.rank(), 0u);
  EXPECT_EQ(r.inputs[0].tensor.data<float>()[0], 7.f);
  r = decode_ok(one_input("FP32", "[0,4]", "[]"));
  EXPECT_EQ(r.inputs[0].tensor.numel(), 0);
}

TEST(RestCodec, DecodesRequestFields) {
  InferRequest r = decode_ok(R"({"id":"r1","parameters":{"timeout":2500,"binary_data_output":true,"other":1},
    "inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]},{"name":"b","datatype":"INT64","shape":[1],"data":[2]}],
    "outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":false}}]})");
  EXPECT_EQ(r.id, "r1");
  ASSERT_TRUE(r.timeout_ms);
  EXPECT_DOUBLE_EQ(*r.timeout_ms, 2.5);
  EXPECT_TRUE(r.binary_outputs);
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[1].name, "b");
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_TRUE(r.outputs[0].binary);   // the request-wide default
  EXPECT_FALSE(r.outputs[1].binary);  // overridden per output
  EXPECT_FALSE(decode_ok(one_input("FP32", "[1]", "[1]")).timeout_ms);
}

// Binary request: the JSON, then each binary input's bytes in order.
struct BinaryBody {
  std::string json_part;
  std::string binary;
  std::string body() const { return json_part + binary; }
  std::string length() const { return std::to_string(json_part.size()); }
};

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

TEST(RestCodec, DecodesBinaryTensorsOfEveryDatatype) {
  struct Case {
    std::string datatype;
    DataType dtype;
    std::string bytes;  // 4 elements
  };
  std::vector<Case> cases = {
      {"BOOL", DataType::boolean, std::string("\x01\x00\x01\x00", 4)},
      {"UINT8", DataType::uint8, raw_bytes<uint8_t>({1, 2, 3, 255})},
      {"UINT16", DataType::uint16, raw_bytes<uint16_t>({1, 2, 3, 65535})},
      {"UINT32", DataType::uint32, raw_bytes<uint32_t>({1, 2, 3, 4})},
      {"UINT64", DataType::uint64, raw_bytes<uint64_t>({1, 2, 3, ~0ull})},
      {"INT8", DataType::int8, raw_bytes<int8_t>({-1, 2, 3, 4})},
      {"INT16", DataType::int16, raw_bytes<int16_t>({-1, 2, 3, 4})},
      {"INT32", DataType::int32, raw_bytes<int32_t>({-1, 2, 3, 4})},
      {"INT64", DataType::int64, raw_bytes<int64_t>({-1, 2, 3, 4})},
      {"FP16", DataType::float16, raw_bytes<uint16_t>({0x3c00, 0xc000, 0x7bff, 0})},
      {"BF16", DataType::bfloat16, raw_bytes<uint16_t>({0x3f80, 0xc000, 0x4380, 0})},
      {"FP32", DataType::float32, raw_bytes<float>({1.f, -2.f, 0.1f, 3e38f})},
      {"FP64", DataType::float64, raw_bytes<double>({1., -2., 0.1, 1e300})},
  };
  for (const Case& c : cases) {
    BinaryBody b;
    b.json_part = R"({"inputs":[{"name":"x","datatype":")" + c.datatype +
                  R"(","shape":[2,2],"parameters":{"binary_data_size":)" + std::to_string(c.bytes.size()) + "}}]}";
    b.binary = c.bytes;
    std::string length = b.length();
    InferRequest r = decode_ok(b.body(), length);
    ASSERT_EQ(r.inputs.size(), 1u) << c.datatype;
    const Tensor& t = r.inputs[0].tensor;
    EXPECT_EQ(t.dtype(), c.dtype) << c.datatype;
    EXPECT_EQ(t.shape(), (Shape{2, 2}));
    ASSERT_EQ(t.nbytes(), c.bytes.size());
    EXPECT_EQ(std::memcmp(t.raw_data(), c.bytes.data(), c.bytes.size()), 0) << c.datatype;
  }
}

// With the body's owner given, aligned binary inputs share the body's bytes (no copy) and keep
// it alive; misaligned ones, BOOL and BYTES are copied. The values are the same either way.
TEST(RestCodec, AlignedBinaryInputsShareTheBodyTheyCameIn) {
  BinaryBody b;
  b.json_part = R"({"inputs":[{"name":"f","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},
    {"name":"b","datatype":"BOOL","shape":[2],"parameters":{"binary_data_size":2}},
    {"name":"odd","datatype":"INT32","shape":[1],"parameters":{"binary_data_size":4}},
    {"name":"u","datatype":"UINT8","shape":[3],"parameters":{"binary_data_size":3}}]})";
  b.binary = raw_bytes<float>({1.5f, -2.f}) + std::string("\x01\x00", 2) + raw_bytes<int32_t>({-7}) + "xyz";
  const std::string whole = b.body();
  // The body in a buffer of its own, the binary data starting 64-byte aligned (as the
  // transport places it).
  auto owner = std::shared_ptr<char[]>(new char[whole.size() + 64]);
  const auto binary_at = reinterpret_cast<uintptr_t>(owner.get()) + b.json_part.size();
  char* start = owner.get() + (64 - binary_at % 64) % 64;
  std::memcpy(start, whole.data(), whole.size());
  const std::string_view body(start, whole.size());
  const std::string length = b.length();
  InferRequest shared;
  ASSERT_FALSE(decode_rest_infer_request(body, length, RequestLimits{}, &shared, nullptr, owner));
  const InferRequest copied = decode_ok(whole, length);
  ASSERT_EQ(shared.inputs.size(), 4u);
  const char* binary = start + b.json_part.size();
  EXPECT_EQ(shared.inputs[0].tensor.raw_data(), binary);       // FP32 at offset 0: shared
  EXPECT_NE(shared.inputs[1].tensor.raw_data(), binary + 8);   // BOOL: copied
  EXPECT_NE(shared.inputs[2].tensor.raw_data(), binary + 10);  // INT32 at offset 10: misaligned, copied
  EXPECT_EQ(shared.inputs[3].tensor.raw_data(), binary + 14);  // UINT8: any address will do
  for (size_t i = 0; i < shared.inputs.size(); ++i) {
    const Tensor& a = shared.inputs[i].tensor;
    const Tensor& c = copied.inputs[i].tensor;
    EXPECT_EQ(a.dtype(), c.dtype());
    EXPECT_EQ(a.shape(), c.shape());
    ASSERT_EQ(a.nbytes(), c.nbytes());
    EXPECT_EQ(std::memcmp(a.raw_data(), c.raw_data(), a.nbytes()), 0) << shared.inputs[i].name;
  }
  // The tensors keep the body alive once the caller lets go of it.
  const std::weak_ptr<char[]> watch = owner;
  owner.reset();
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(shared.inputs[0].tensor.data<float>()[1], -2.f);
  shared.inputs.clear();
  EXPECT_TRUE(watch.expired());
}

TEST(RestCodec, DecodesBinaryStringsAndMixedInputs) {
  // BYTES: 4-byte little-endian length, then the bytes; a JSON input between two binary ones.
  std::string strings = std::string("\x02\x00\x00\x00hi", 6) + std::string("\x00\x00\x00\x00", 4);
  BinaryBody b;
  b.json_part = R"({"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":10}},
    {"name":"j","datatype":"INT8","shape":[1],"data":[5]},
    {"name":"f","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]})";
  b.binary = strings + raw_bytes<float>({0.25f});
  std::string length = b.length();
  InferRequest r = decode_ok(b.body(), length);
  ASSERT_EQ(r.inputs.size(), 3u);
  EXPECT_EQ(elements<std::string>(r.inputs[0].tensor), (std::vector<std::string>{"hi", ""}));
  EXPECT_EQ(r.inputs[1].tensor.data<int8_t>()[0], 5);
  EXPECT_EQ(r.inputs[2].tensor.data<float>()[0], 0.25f);
}

InferResponse response_of(std::vector<InferTensor> outputs) {
  InferResponse response;
  response.model = "m";
  response.version = "2";
  response.id = "abc";
  response.outputs = std::move(outputs);
  return response;
}

TEST(RestCodec, EncodesJsonOutputs) {
  Tensor half(DataType::float16, {2});
  half.data<Float16>()[0] = Float16(1.5f);
  half.data<Float16>()[1] = Float16(-3.f);
  InferResponse response = response_of({
      {"b", Tensor::from_vector<bool>({2}, {true, false}), false},
      {"i", Tensor::from_vector<int64_t>({2, 1}, {-5, 9}), false},
      {"h", half, false},
      {"s", Tensor::from_vector<std::string>({1}, {"x\"y"}), false},
      {"u", Tensor::from_vector<uint64_t>({1}, {~0ull}), false},
  });
  RestBody body = encode_rest_infer_response(response);
  EXPECT_FALSE(body.header_length);
  json doc = json::parse(body.body);
  EXPECT_EQ(doc["model_name"], "m");
  EXPECT_EQ(doc["model_version"], "2");
  EXPECT_EQ(doc["id"], "abc");
  ASSERT_EQ(doc["outputs"].size(), 5u);
  EXPECT_EQ(doc["outputs"][0], json::parse(R"({"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]})"));
  EXPECT_EQ(doc["outputs"][1], json::parse(R"({"name":"i","datatype":"INT64","shape":[2,1],"data":[-5,9]})"));
  EXPECT_EQ(doc["outputs"][2], json::parse(R"({"name":"h","datatype":"FP16","shape":[2],"data":[1.5,-3.0]})"));
  EXPECT_EQ(doc["outputs"][3]["data"][0], "x\"y");
  EXPECT_EQ(doc["outputs"][4]["data"][0].get<uint64_t>(), ~0ull);
}

TEST(RestCodec, Fp32RoundTripsExactlyThroughJson) {
  std::vector<float> values = {0.1f, 1.f / 3.f, std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
                               std::numeric_limits<float>::denorm_min(), -0.f, 16777217.f, 3.14159274f};
  std::mt19937 rng(7);
  while (values.size() < 20000) {
    uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isfinite(f)) values.push_back(f);
  }
  Shape shape{static_cast<int64_t>(values.size())};
  RestBody out = encode_rest_infer_response(response_of({{"y", Tensor::from_vector<float>(shape, values), false}}));
  // The response's JSON data, sent back as a request, decodes to the same bits.
  json doc = json::parse(out.body);
  json request = {{"inputs", {{{"name", "y"}, {"datatype", "FP32"}, {"shape", shape}, {"data", doc["outputs"][0]["data"]}}}}};
  InferRequest back = decode_ok(request.dump());
  ASSERT_EQ(back.inputs[0].tensor.numel(), static_cast<int64_t>(values.size()));
  EXPECT_EQ(std::memcmp(back.inputs[0].tensor.data<float>(), values.data(), values.size() * 4), 0);
}

TEST(RestCodec, FloatsKeepTheirTypeAndNonFiniteValuesBecomeNull) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  RestBody out = encode_rest_infer_response(response_of({
      {"d", Tensor::from_vector<double>({7}, {2.0, -0.0, 1e300, 5e-324, inf, -inf, nan}), false},
      {"f", Tensor::from_vector<float>({3}, {1.f, 0.1f, std::numeric_limits<float>::infinity()}), false},
  }));
  json doc = json::parse(out.body);
  const json& d = doc["outputs"][0]["data"];
  EXPECT_TRUE(d[0].is_number_float()) << out.body.substr(0, 200);  // "2.0", not "2"
  EXPECT_EQ(d[0].get<double>(), 2.0);
  EXPECT_TRUE(std::signbit(d[1].get<double>()));
  EXPECT_EQ(d[2].get<double>(), 1e300);
  EXPECT_EQ(d[3].get<double>(), 5e-324);
  for (int i = 4; i < 7; ++i) EXPECT_TRUE(d[i].is_null()) << i;
  const json& f = doc["outputs"][1]["data"];
  EXPECT_TRUE(f[0].is_number_float());
  EXPECT_EQ(f[1].get<double>(), static_cast<double>(0.1f));  // the float's own value, widened
  EXPECT_TRUE(f[2].is_null());
}

TEST(RestCodec, LargeTensorsWrittenInPiecesGiveTheSameText) {
  SideTasks helpers(2);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-100.f, 100.f);
  std::vector<float> floats(50001);
  for (float& v : floats) v = dist(rng);
  std::vector<int64_t> ints(30000);
  for (int64_t& v : ints) v = static_cast<int64_t>(rng()) - (int64_t{1} << 31);
  std::vector<double> doubles(20000);
  for (double& v : doubles) v = static_cast<double>(dist(rng)) / 3.0;
  Tensor half(DataType::float16, {17000});
  for (int64_t i = 0; i < half.numel(); ++i) half.data<Float16>()[i] = Float16(dist(rng));
  InferResponse response = response_of({
      {"f", Tensor::from_vector<float>({1, 50001}, floats), false},
      {"bin", Tensor::from_vector<float>({3}, {1.f, 2.f, 3.f}), true},
      {"i", Tensor::from_vector<int64_t>({30000}, ints), false},
      {"d", Tensor::from_vector<double>({20000}, doubles), false},
      {"h", half, false},
  });
  const RestBody whole = encode_rest_infer_response(response);
  const RestBody pieces = encode_rest_infer_response(response, &helpers);
  EXPECT_EQ(pieces.body, whole.body);
  EXPECT_EQ(pieces.header_length, whole.header_length);
  json doc = json::parse(whole.body.substr(0, *whole.header_length));
  ASSERT_EQ(doc["outputs"][0]["data"].size(), floats.size());
  for (size_t i = 0; i < floats.size(); ++i)
    ASSERT_EQ(doc["outputs"][0]["data"][i].get<double>(), static_cast<double>(floats[i])) << i;
  for (size_t i = 0; i < ints.size(); ++i) ASSERT_EQ(doc["outputs"][2]["data"][i].get<int64_t>(), ints[i]) << i;
  for (size_t i = 0; i < doubles.size(); ++i) ASSERT_EQ(doc["outputs"][3]["data"][i].get<double>(), doubles[i]) << i;
}

TEST(RestCodec, EncodesBinaryOutputsAfterTheJson) {
  InferResponse response = response_of({
      {"f", Tensor::from_vector<float>({2}, {1.f, -0.5f}), true},
      {"j", Tensor::from_vector<int32_t>({1}, {4}), false},
      {"s", Tensor::from_vector<std::string>({2}, {"ab", ""}), true},
  });
  RestBody body = encode_rest_infer_response(response);
  ASSERT_TRUE(body.header_length);
  json doc = json::parse(body.body.substr(0, *body.header_length));
  EXPECT_EQ(doc["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_FALSE(doc["outputs"][0].contains("data"));
  EXPECT_EQ(doc["outputs"][1]["data"], json::array({4}));
  EXPECT_EQ(doc["outputs"][2]["parameters"]["binary_data_size"], 10);
  std::string expected = raw_bytes<float>({1.f, -0.5f}) + std::string("\x02\x00\x00\x00" "ab" "\x00\x00\x00\x00", 10);
  EXPECT_EQ(body.body.substr(*body.header_length), expected);
}

TEST(RestCodec, ErrorsAreOneLineJson) {
  std::string text = encode_rest_error(bad_request("bad\nthing \xff"));
  EXPECT_EQ(text.find('\n'), std::string::npos);
  json doc = json::parse(text);  // valid UTF-8 JSON even from invalid bytes
  EXPECT_EQ(doc["error"].get<std::string>().substr(0, 12), "bad\\x0athing");
}

struct BadBody {
  std::string label;
  std::string body;
  std::optional<std::string> header_length;
  int status;
  std::string message_part;
};

TEST(RestCodec, BadBodiesGiveOneClearError) {
  const std::string f4 = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  const std::string eight(8, '\0');
  std::vector<BadBody> table = {
      {"empty", "", std::nullopt, 400, "invalid JSON"},
      {"not json", "{x", std::nullopt, 400, "invalid JSON"},
      {"invalid utf-8", "{\"id\":\"\xff\xfe\",\"inputs\":[]}", std::nullopt, 400, "invalid JSON"},
      {"too deep", std::string(100, '[') + std::string(100, ']'), std::nullopt, 400, "nested deeper"},
      {"not an object", "[1]", std::nullopt, 400, "must be a JSON object"},
      {"no inputs", "{}", std::nullopt, 400, "'inputs' must be an array"},
      {"id not string", R"({"id":5,"inputs":[]})", std::nullopt, 400, "'id' must be a string"},
      {"input not object", R"({"inputs":[1]})", std::nullopt, 400, "must be an object"},
      {"no name", R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})", std::nullopt, 400, "no string 'name'"},
      {"unknown dtype", one_input("FP8", "[1]", "[1]"), std::nullopt, 400, "unknown datatype 'FP8'"},
      {"no shape", R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})", std::nullopt, 400, "'shape' is missing"},
      {"shape of strings", one_input("FP32", "[\"1\"]", "[1]"), std::nullopt, 400, "array of integers"},
      {"fractional dim", one_input("FP32", "[1.5]", "[1]"), std::nullopt, 400, "array of integers"},
      {"negative dim", one_input("FP32", "[-1]", "[1]"), std::nullopt, 400, "negative"},
      {"dim past int64", one_input("FP32", "[9223372036854775808]", "[1]"), std::nullopt, 400, "out of range"},
      {"overflowing dims", one_input("FP32", "[4294967296,4294967296,4294967296]", "[1]"), std::nullopt, 413, "size limit"},
      {"rank too high", one_input("FP32", "[1,1,1,1,1,1,1,1,1]", "[1]"), std::nullopt, 400, "rank 9"},
      {"too few elements", one_input("FP32", "[3]", "[1,2]"), std::nullopt, 400, "has 2 elements"},
      {"too many elements", one_input("FP32", "[1]", "[1,2]"), std::nullopt, 400, "has 2 elements"},
      {"nested mismatch", one_input("FP32", "[2,2]", "[[1,2],[3]]"), std::nullopt, 400, "does not match shape"},
      {"nested too deep", one_input("FP32", "[2]", "[[1],[2]]"), std::nullopt, 400, "does not match shape"},
      {"data not array", one_input("FP32", "[1]", "1"), std::nullopt, 400, "'data' must be an array"},
      {"string as number", one_input("FP32", "[1]", "[\"1\"]"), std::nullopt, 400, "element 0 is not a number"},
      {"null element", one_input("FP64", "[1]", "[null]"), std::nullopt, 400, "not a number"},
      {"fp32 overflow", one_input("FP32", "[1]", "[1e39]"), std::nullopt, 400, "out of range"},
      // A bad element past the first gets its index; an array among flat numbers is a shape error.
      {"fp32 bad element in flat data", one_input("FP32", "[4]", "[1,2,true,4]"), std::nullopt, 400,
       "element 2 is not a number"},
      {"fp32 array among flat numbers", one_input("FP32", "[3]", "[1,[2],3]"), std::nullopt, 400,
       "does not match shape"},
      {"fp16 overflow", one_input("FP16", "[1]", "[70000]"), std::nullopt, 400, "out of range"},
      {"uint8 overflow", one_input("UINT8", "[1]", "[256]"), std::nullopt, 400, "out of range"},
      {"uint negative", one_input("UINT32", "[1]", "[-1]"), std::nullopt, 400, "out of range"},
      {"int8 underflow", one_input("INT8", "[1]", "[-129]"), std::nullopt, 400, "out of range"},
      {"fractional int", one_input("INT32", "[1]", "[1.5]"), std::nullopt, 400, "not an integer"},
      {"bool as number", one_input("BOOL", "[1]", "[1]"), std::nullopt, 400, "not true or false"},
      {"bytes as number", one_input("BYTES", "[1]", "[1]"), std::nullopt, 400, "not a string"},
      {"no data", R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})", std::nullopt, 400, "neither 'data'"},
      {"name with an escaped newline", R"({"inputs":[{"name":"a\nb","datatype":"FP32","shape":[1],"data":[]}]})",
       std::nullopt, 400, "input 'a\\x0ab': 'data' has 0 elements"},
      {"duplicate input", R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},
         {"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})", std::nullopt, 400, "given twice"},
      {"duplicate output", R"({"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]})", std::nullopt, 400, "requested twice"},
      {"output not object", R"({"inputs":[],"outputs":["y"]})", std::nullopt, 400, "must be an object"},
      {"binary_data not bool", R"({"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":1}}]})", std::nullopt,
       400, "binary_data must be"},
      {"negative timeout", R"({"inputs":[],"parameters":{"timeout":-1}})", std::nullopt, 400, "parameters.timeout"},
      {"timeout string", R"({"inputs":[],"parameters":{"timeout":"1"}})", std::nullopt, 400, "parameters.timeout"},
      {"binary without header", f4 + eight, std::nullopt, 400, "invalid JSON"},
      {"binary size without header", f4, std::nullopt, 400, "needs the Inference-Header-Content-Length"},
      {"header longer than body", f4 + eight, std::to_string(f4.size() + 9), 400, "exceeds the body"},
      {"header not numeric", f4 + eight, std::string("abc"), 400, "not a byte count"},
      {"header negative", f4 + eight, std::string("-5"), 400, "not a byte count"},
      {"header empty", f4 + eight, std::string(""), 400, "not a byte count"},
      {"header huge", f4 + eight, std::string("99999999999999999999999"), 400, "not a byte count"},
      {"header cuts the JSON", f4 + eight, std::to_string(f4.size() - 3), 400, "invalid JSON"},
      {"binary truncated", f4 + std::string(5, '\0'), std::to_string(f4.size()), 400, "exceeds the 5 bytes"},
      {"binary byte count wrong", R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":6}}]})"
                                      + std::string(6, '\0'), std::to_string(f4.size() - 2 + 2), 400, "expected 8 bytes"},
      {"binary bytes left over", f4 + std::string(12, '\0'), std::to_string(f4.size()), 400, "12 bytes of binary data"},
      {"binary size negative", R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":-8}}]})",
       std::string("93"), 400, "non-negative integer"},
      {"data and binary", R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,2],"parameters":{"binary_data_size":8}}]})" + eight,
       std::string("101"), 400, "both 'data'"},
      {"binary strings truncated", R"({"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]})"
                                       + std::string("\x09\x00\x00\x00hi", 6), std::string("93"), 400, "declares 9 bytes"},
  };
  for (BadBody& c : table) {
    // Header lengths written as literals above are recomputed from the JSON part where they refer to it.
    if (c.header_length && (c.label == "binary size negative" || c.label == "data and binary" ||
                            c.label == "binary strings truncated" || c.label == "binary byte count wrong"))
      c.header_length = std::to_string(c.body.find("}]}") + 3);
    InferRequest request;
    std::optional<std::string_view> header;
    if (c.header_length) header = *c.header_length;
    auto error = decode_rest_infer_request(c.body, header, RequestLimits{}, &request);
    ASSERT_TRUE(error) << c.label;
    EXPECT_EQ(error->http_status, c.status) << c.label << ": " << error->message;
    EXPECT_NE(error->message.find(c.message_part), std::string::npos) << c.label << ": " << error->message;
    EXPECT_EQ(error->message.find('\n'), std::string::npos) << c.label;
  }
}

TEST(RestCodec, LimitsAreEnforced) {
  RequestLimits limits;
  limits.max_body_bytes = 100;
  limits.max_tensors = 2;
  limits.max_tensor_bytes = 16;
  InferRequest request;
  auto error = decode_rest_infer_request(std::string(101, ' '), std::nullopt, limits, &request);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->http_status, 413);
  std::string three = R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]},
    {"name":"b","datatype":"FP32","shape":[1],"data":[1]},{"name":"c","datatype":"FP32","shape":[1],"data":[1]}]})";
  limits.max_body_bytes = 1000;
  error = decode_rest_infer_request(three, std::nullopt, limits, &request);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->http_status, 413);
  error = decode_rest_infer_request(one_input("FP32", "[5]", "[1,2,3,4,5]"), std::nullopt, limits, &request);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->http_status, 413);
  EXPECT_FALSE(decode_rest_infer_request(one_input("FP32", "[4]", "[1,2,3,4]"), std::nullopt, limits, &request));
}

}  // namespace
}  // namespace tandem::server
