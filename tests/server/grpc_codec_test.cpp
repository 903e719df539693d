// Tests of the gRPC codec (src/server/grpc_codec.h): raw and typed contents of every datatype,
// BYTES, the response encoding, and the malformed requests it must refuse with one clear line.
#include "server/grpc_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <initializer_list>
#include <type_traits>

namespace tandem::server {
namespace {

using inference::ModelInferRequest;

ModelInferRequest::InferInputTensor* add_input(ModelInferRequest* r, const std::string& name, const std::string& dtype,
                                               std::vector<int64_t> shape) {
  auto* in = r->add_inputs();
  in->set_name(name);
  in->set_datatype(dtype);
  for (int64_t d : shape) in->add_shape(d);
  return in;
}

template <class T>
void add_all(google::protobuf::RepeatedField<T>* field, std::initializer_list<std::type_identity_t<T>> values) {
  for (const T& v : values) field->Add(v);
}

ModelInferRequest request_for(const std::string& model = "m") {
  ModelInferRequest r;
  r.set_model_name(model);
  return r;
}

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

std::string length_prefixed(const std::vector<std::string>& values) {
  std::string s;
  for (const std::string& v : values) {
    const uint32_t n = static_cast<uint32_t>(v.size());
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    s += v;
  }
  return s;
}

std::optional<ProtocolError> decode(ModelInferRequest r, InferRequest* out, RequestLimits limits = {}) {
  return decode_grpc_infer_request(&r, limits, out);
}

// Decodes a one-input request and checks the tensor's dtype, shape and elements.
template <class T>
void expect_decoded(const ModelInferRequest& r, DataType dtype, const std::vector<T>& expected) {
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_FALSE(err) << err->message;
  ASSERT_EQ(out.inputs.size(), 1u);
  const Tensor& t = out.inputs[0].tensor;
  EXPECT_EQ(t.dtype(), dtype);
  ASSERT_EQ(t.numel(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(t.data<T>()[i], expected[i]) << "element " << i;
}

template <class T>
void check_raw(const std::string& dtype_name, DataType dtype, const std::vector<T>& values) {
  SCOPED_TRACE(dtype_name + " raw");
  auto r = request_for();
  add_input(&r, "x", dtype_name, {static_cast<int64_t>(values.size())});
  r.add_raw_input_contents(raw_bytes(values));
  expect_decoded(r, dtype, values);
}

TEST(GrpcCodec, RawContentsOfEveryFixedSizeDatatype) {
  check_raw<uint8_t>("UINT8", DataType::uint8, {0, 7, 255});
  check_raw<uint16_t>("UINT16", DataType::uint16, {0, 65535});
  check_raw<uint32_t>("UINT32", DataType::uint32, {1, 4000000000u});
  check_raw<uint64_t>("UINT64", DataType::uint64, {1, 18000000000000000000ull});
  check_raw<int8_t>("INT8", DataType::int8, {-128, 127});
  check_raw<int16_t>("INT16", DataType::int16, {-32768, 5});
  check_raw<int32_t>("INT32", DataType::int32, {-2, 2000000000});
  check_raw<int64_t>("INT64", DataType::int64, {-1, 1ll << 60});
  check_raw<float>("FP32", DataType::float32, {1.5f, -0.25f, 3e38f});
  check_raw<double>("FP64", DataType::float64, {1e300, -2.5});
  check_raw<uint16_t>("FP16", DataType::float16, {0x3c00, 0xc000});  // bit patterns
  check_raw<uint16_t>("BF16", DataType::bfloat16, {0x3f80});
}

TEST(GrpcCodec, RawBoolBytesBecomeBools) {
  auto r = request_for();
  add_input(&r, "b", "BOOL", {3});
  r.add_raw_input_contents(std::string("\x00\x01\x07", 3));
  expect_decoded<bool>(r, DataType::boolean, {false, true, true});
}

TEST(GrpcCodec, RawContentsAreTakenOverWithoutACopy) {
  std::vector<float> values(27648);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.5f;
  InferRequest out;
  const void* bytes_in_message = nullptr;
  {
    auto r = request_for();
    add_input(&r, "x", "FP32", {1, 3, 48, 192});
    r.add_raw_input_contents(raw_bytes(values));
    bytes_in_message = r.raw_input_contents(0).data();
    auto err = decode_grpc_infer_request(&r, {}, &out);
    ASSERT_FALSE(err) << err->message;
    EXPECT_TRUE(r.raw_input_contents(0).empty());  // moved out, as the header says
  }                                                // the message is gone; the tensor still holds its bytes
  ASSERT_EQ(out.inputs.size(), 1u);
  const Tensor& t = out.inputs[0].tensor;
  EXPECT_EQ(t.raw_data(), bytes_in_message);
  ASSERT_EQ(t.numel(), static_cast<int64_t>(values.size()));
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(t.data<float>()[i], values[i]) << "element " << i;
}

TEST(GrpcCodec, RawBoolAndBytesContentsStayInTheMessage) {
  auto r = request_for();
  add_input(&r, "b", "BOOL", {3});
  add_input(&r, "s", "BYTES", {1});
  r.add_raw_input_contents(std::string("\x00\x01\x07", 3));
  r.add_raw_input_contents(length_prefixed({"hello"}));
  InferRequest out;
  auto err = decode_grpc_infer_request(&r, {}, &out);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(r.raw_input_contents(0).size(), 3u);  // converted to bools, not taken over
  EXPECT_EQ(r.raw_input_contents(1).size(), 9u);
  ASSERT_EQ(out.inputs.size(), 2u);
  EXPECT_EQ(out.inputs[1].tensor.data<std::string>()[0], "hello");
}

TEST(GrpcCodec, TypedContentsOfEveryDatatypeWithATypedField) {
  {
    auto r = request_for();
    add_all(add_input(&r, "x", "FP32", {2, 2})->mutable_contents()->mutable_fp32_contents(), {1, 2, 3, 4});
    expect_decoded<float>(r, DataType::float32, {1, 2, 3, 4});
  }
  {
    auto r = request_for();
    add_input(&r, "x", "FP64", {1})->mutable_contents()->add_fp64_contents(0.125);
    expect_decoded<double>(r, DataType::float64, {0.125});
  }
  {
    auto r = request_for();
    add_all(add_input(&r, "x", "INT8", {2})->mutable_contents()->mutable_int_contents(), {-128, 127});
    expect_decoded<int8_t>(r, DataType::int8, {-128, 127});
  }
  {
    auto r = request_for();
    add_input(&r, "x", "INT16", {1})->mutable_contents()->add_int_contents(-300);
    expect_decoded<int16_t>(r, DataType::int16, {-300});
  }
  {
    auto r = request_for();
    add_input(&r, "x", "INT32", {1})->mutable_contents()->add_int_contents(-70000);
    expect_decoded<int32_t>(r, DataType::int32, {-70000});
  }
  {
    auto r = request_for();
    add_input(&r, "x", "INT64", {1})->mutable_contents()->add_int64_contents(-(1ll << 40));
    expect_decoded<int64_t>(r, DataType::int64, {-(1ll << 40)});
  }
  {
    auto r = request_for();
    add_all(add_input(&r, "x", "UINT8", {2})->mutable_contents()->mutable_uint_contents(), {0, 255});
    expect_decoded<uint8_t>(r, DataType::uint8, {0, 255});
  }
  {
    auto r = request_for();
    add_input(&r, "x", "UINT16", {1})->mutable_contents()->add_uint_contents(65535);
    expect_decoded<uint16_t>(r, DataType::uint16, {65535});
  }
  {
    auto r = request_for();
    add_input(&r, "x", "UINT32", {1})->mutable_contents()->add_uint_contents(4000000000u);
    expect_decoded<uint32_t>(r, DataType::uint32, {4000000000u});
  }
  {
    auto r = request_for();
    add_input(&r, "x", "UINT64", {1})->mutable_contents()->add_uint64_contents(1ull << 63);
    expect_decoded<uint64_t>(r, DataType::uint64, {1ull << 63});
  }
  {
    auto r = request_for();
    add_all(add_input(&r, "x", "BOOL", {2})->mutable_contents()->mutable_bool_contents(), {true, false});
    expect_decoded<bool>(r, DataType::boolean, {true, false});
  }
  {
    auto r = request_for();
    auto* c = add_input(&r, "x", "BYTES", {2})->mutable_contents();
    c->add_bytes_contents("ab");
    c->add_bytes_contents(std::string("\0z", 2));
    expect_decoded<std::string>(r, DataType::string, {"ab", std::string("\0z", 2)});
  }
}

TEST(GrpcCodec, NarrowIntegersOutOfRangeAreRefused) {
  auto r = request_for();
  add_input(&r, "x", "INT8", {1})->mutable_contents()->add_int_contents(128);
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 400);
  EXPECT_NE(err->message.find("does not fit INT8"), std::string::npos) << err->message;

  auto u = request_for();
  add_input(&u, "x", "UINT16", {1})->mutable_contents()->add_uint_contents(65536);
  ASSERT_TRUE(decode(u, &out));
}

TEST(GrpcCodec, HalfPrecisionOnlyRaw) {
  auto r = request_for();
  add_input(&r, "x", "FP16", {1})->mutable_contents()->add_fp32_contents(1);
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "input 'x': FP16 data must come in raw_input_contents");
}

TEST(GrpcCodec, RawBytesAreLengthPrefixed) {
  auto r = request_for();
  add_input(&r, "s", "BYTES", {1, 3});
  r.add_raw_input_contents(length_prefixed({"hello", "", std::string(300, 'q')}));
  expect_decoded<std::string>(r, DataType::string, {"hello", "", std::string(300, 'q')});
}

TEST(GrpcCodec, MalformedRawBytesAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {length_prefixed({"ab"}).substr(0, 5), "declares 2 bytes, 1 remain"},  // truncated element
      {length_prefixed({"ab", "c"}), "bytes left after"},                      // one element too many
      {std::string("\x01\x00", 2), "need at least"},                           // no room for a prefix
      {std::string("\xff\xff\xff\xff", 4) + "x", "declares 4294967295 bytes"},  // huge length
  };
  for (const auto& [raw, expected] : cases) {
    auto r = request_for();
    add_input(&r, "s", "BYTES", {1});
    r.add_raw_input_contents(raw);
    InferRequest out;
    auto err = decode(r, &out);
    ASSERT_TRUE(err) << expected;
    EXPECT_EQ(err->http_status, 400);
    EXPECT_NE(err->message.find(expected), std::string::npos) << err->message;
  }
}

TEST(GrpcCodec, ManyBytesElementsWithLittleDataAreRefusedBeforeAllocating) {
  auto r = request_for();
  add_input(&r, "s", "BYTES", {50000000});
  r.add_raw_input_contents(std::string(8, '\0'));
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("length prefixes"), std::string::npos) << err->message;
}

TEST(GrpcCodec, ByteCountMustMatchTheShape) {
  auto r = request_for();
  add_input(&r, "x", "FP32", {1, 3});
  r.add_raw_input_contents(std::string(8, '\0'));
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 400);
  EXPECT_EQ(err->message, "input 'x': expected 12 bytes, got 8");
}

TEST(GrpcCodec, ElementCountMustMatchTheShape) {
  auto r = request_for();
  add_all(add_input(&r, "x", "FP32", {4})->mutable_contents()->mutable_fp32_contents(), {1, 2, 3});
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "input 'x': expected 4 elements in contents.fp32_contents, got 3 there and 0 in other fields");

  auto wrong_field = request_for();
  add_input(&wrong_field, "x", "FP32", {1})->mutable_contents()->add_int_contents(1);
  err = decode(wrong_field, &out);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("got 0 there and 1 in other fields"), std::string::npos) << err->message;
}

TEST(GrpcCodec, UnknownDatatypeIsRefused) {
  auto r = request_for();
  add_input(&r, "x", "FLOAT32", {1});
  r.add_raw_input_contents(std::string(4, '\0'));
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 400);
  EXPECT_EQ(err->message, "input 'x': unknown datatype 'FLOAT32'");
}

TEST(GrpcCodec, ClientTextInMessagesStaysOnOneLine) {
  auto r = request_for();
  add_input(&r, "x", std::string("FP\n32\0", 6) + std::string(100, 'Z'), {1});
  r.add_raw_input_contents(std::string(4, '\0'));
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "input 'x': unknown datatype 'FP\\x0a32\\x00" + std::string(58, 'Z') + "'...");
}

TEST(GrpcCodec, DuplicateInputsAndOutputsAreRefused) {
  auto r = request_for();
  add_input(&r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  add_input(&r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(2);
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "input 'x' appears twice");

  auto o = request_for();
  add_input(&o, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  o.add_outputs()->set_name("y");
  o.add_outputs()->set_name("y");
  err = decode(o, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "output 'y' is requested twice");
}

TEST(GrpcCodec, NegativeAndOverflowingDimsAreRefused) {
  InferRequest out;
  auto negative = request_for();
  add_input(&negative, "x", "FP32", {2, -1});
  negative.add_raw_input_contents("");
  auto err = decode(negative, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 400);
  EXPECT_NE(err->message.find("negative"), std::string::npos) << err->message;

  auto overflow = request_for();
  add_input(&overflow, "x", "FP32", {1ll << 40, 1ll << 40});
  overflow.add_raw_input_contents("");
  err = decode(overflow, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 413);

  auto deep = request_for();
  add_input(&deep, "x", "FP32", std::vector<int64_t>(20, 1));
  deep.add_raw_input_contents(std::string(4, '\0'));
  err = decode(deep, &out);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("rank 20"), std::string::npos) << err->message;
}

TEST(GrpcCodec, RawCountMustEqualTheInputs) {
  auto r = request_for();
  add_input(&r, "a", "FP32", {1});
  add_input(&r, "b", "FP32", {1});
  r.add_raw_input_contents(std::string(4, '\0'));
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "raw_input_contents has 1 entries for 2 inputs");
}

TEST(GrpcCodec, RawAndTypedContentsTogetherAreRefused) {
  auto r = request_for();
  add_input(&r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  r.add_raw_input_contents(std::string(4, '\0'));
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "input 'x': has both contents and raw_input_contents");
}

TEST(GrpcCodec, LimitsOnTensorsAndSizes) {
  RequestLimits limits;
  limits.max_tensors = 2;
  limits.max_tensor_bytes = 16;
  InferRequest out;
  auto many = request_for();
  for (const char* name : {"a", "b", "c"}) add_input(&many, name, "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  auto err = decode(many, &out, limits);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 413);

  auto big = request_for();
  add_input(&big, "x", "FP32", {5});
  big.add_raw_input_contents(std::string(20, '\0'));
  err = decode(big, &out, limits);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 413);
}

TEST(GrpcCodec, RequestFieldsAndTimeoutInMicroseconds) {
  auto r = request_for("cls");
  r.set_model_version("2");
  r.set_id("req-7");
  (*r.mutable_parameters())["timeout"].set_int64_param(2500);
  add_input(&r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  r.add_outputs()->set_name("y");
  InferRequest out;
  auto err = decode(r, &out);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(out.model, "cls");
  EXPECT_EQ(out.version, "2");
  EXPECT_EQ(out.id, "req-7");
  ASSERT_TRUE(out.timeout_ms);
  EXPECT_DOUBLE_EQ(*out.timeout_ms, 2.5);
  ASSERT_EQ(out.outputs.size(), 1u);
  EXPECT_EQ(out.outputs[0].name, "y");

  (*r.mutable_parameters())["timeout"].set_int64_param(-1);
  ASSERT_TRUE(decode(r, &out));
  (*r.mutable_parameters())["timeout"].set_string_param("soon");
  err = decode(r, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "parameter 'timeout' must be an integer number of microseconds");
}

TEST(GrpcCodec, EmptyModelNameAndInputNameAreRefused) {
  InferRequest out;
  ModelInferRequest r;
  ASSERT_TRUE(decode(r, &out));
  auto unnamed = request_for();
  add_input(&unnamed, "", "FP32", {0});
  EXPECT_EQ(decode(unnamed, &out)->message, "input 0: name is empty");
}

TEST(GrpcCodec, ResponseOutputsAreRawAndLengthPrefixed) {
  InferResponse response;
  response.model = "cls";
  response.version = "1";
  response.id = "abc";
  response.backend = "cpu";
  response.outputs.push_back({"probs", Tensor::from_vector<float>({1, 2}, {0.25f, 0.75f})});
  response.outputs.push_back({"flag", Tensor::from_vector<bool>({2}, {true, false})});
  response.outputs.push_back({"text", Tensor::from_vector<std::string>({2}, {"hi", ""})});
  inference::ModelInferResponse out;
  encode_grpc_infer_response(response, &out);
  EXPECT_EQ(out.model_name(), "cls");
  EXPECT_EQ(out.model_version(), "1");
  EXPECT_EQ(out.id(), "abc");
  EXPECT_EQ(out.parameters().at("backend").string_param(), "cpu");
  ASSERT_EQ(out.outputs_size(), 3);
  ASSERT_EQ(out.raw_output_contents_size(), 3);
  EXPECT_EQ(out.outputs(0).name(), "probs");
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  ASSERT_EQ(out.outputs(0).shape_size(), 2);
  EXPECT_EQ(out.outputs(0).shape(1), 2);
  EXPECT_EQ(out.raw_output_contents(0), raw_bytes<float>({0.25f, 0.75f}));
  EXPECT_EQ(out.outputs(1).datatype(), "BOOL");
  EXPECT_EQ(out.raw_output_contents(1), std::string("\x01\x00", 2));
  EXPECT_EQ(out.outputs(2).datatype(), "BYTES");
  EXPECT_EQ(out.raw_output_contents(2), length_prefixed({"hi", ""}));

  // What the encoder writes, the decoder reads back.
  ModelInferRequest again = request_for();
  for (int i = 0; i < out.outputs_size(); ++i) {
    auto* in = again.add_inputs();
    in->set_name(out.outputs(i).name());
    in->set_datatype(out.outputs(i).datatype());
    *in->mutable_shape() = out.outputs(i).shape();
    again.add_raw_input_contents(out.raw_output_contents(i));
  }
  InferRequest decoded;
  auto err = decode(again, &decoded);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(decoded.inputs[2].tensor.data<std::string>()[0], "hi");
  EXPECT_FLOAT_EQ(decoded.inputs[0].tensor.data<float>()[1], 0.75f);
}

}  // namespace
}  // namespace tandem::server
