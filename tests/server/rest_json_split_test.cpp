// Tests of the REST decoder's split path (src/server/rest_json_split.h): decoding with large
// JSON tensors parsed in pieces gives the same tensors and the same errors as decoding the
// document whole, for every datatype, for faults anywhere in the pieces and around them; and
// the span finder takes only flat "data" arrays outside strings.
#include "server/rest_json_split.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "server/rest_codec.h"

namespace tandem::server {
namespace {

// Small sizes, so that short test bodies are split into several pieces.
struct SplitFixture {
  SideTasks helpers{2};
  JsonSplitOptions options;
  SplitFixture() {
    options.helpers = &helpers;
    options.min_span_bytes = 32;
    options.min_piece_bytes = 16;
    options.max_pieces = 5;
  }
};

std::string one_input(const std::string& datatype, size_t count, const std::string& data) {
  return R"({"id":"r","inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":[)" + std::to_string(count) +
         R"(],"data":)" + data + "}]}";
}

std::string join(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + "]";
}

std::string describe(const std::optional<ProtocolError>& error, const InferRequest& request) {
  if (error) return std::to_string(error->http_status) + " " + error->message;
  std::string out = "ok id=" + request.id;
  for (const InferTensor& t : request.inputs) {
    out += " " + t.name + ":" + std::to_string(static_cast<int>(t.tensor.dtype())) + ":" +
           std::to_string(t.tensor.numel());
    if (t.tensor.dtype() == DataType::string) {
      for (int64_t i = 0; i < t.tensor.numel(); ++i) out += "," + t.tensor.data<std::string>()[i];
    } else {
      const auto* bytes = static_cast<const unsigned char*>(t.tensor.raw_data());
      for (size_t i = 0; i < t.tensor.nbytes(); ++i) out += std::to_string(bytes[i]) + ".";
    }
  }
  return out;
}

// The decode with pieces and the decode of the whole document, as comparable text.
void expect_same_decode(const std::string& body, const JsonSplitOptions& options, const std::string& what) {
  InferRequest whole, split;
  const auto whole_error = decode_rest_infer_request(body, std::nullopt, RequestLimits{}, &whole);
  const auto split_error = decode_rest_infer_request(body, std::nullopt, RequestLimits{}, &split, &options);
  EXPECT_EQ(describe(split_error, split), describe(whole_error, whole)) << what;
}

std::string printed(double v) {
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

TEST(RestJsonSplit, TensorsOfEveryDatatypeMatchTheWholeDecode) {
  SplitFixture f;
  std::mt19937_64 rng(7);
  const size_t n = 301;
  auto numbers = [&](double lo, double hi, bool integers) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<std::string> items;
    for (size_t i = 0; i < n; ++i) {
      const double v = dist(rng);
      if (!integers)
        items.push_back(printed(v));
      else if (lo >= 0)
        items.push_back(std::to_string(static_cast<unsigned long long>(v)));
      else
        items.push_back(std::to_string(static_cast<long long>(v)));
    }
    return items;
  };
  std::vector<std::string> floats = numbers(-3, 3, false);
  floats[3] = "-0.0";
  floats[5] = "1e-45";
  floats[8] = "3.4028234663852886e38";
  floats[13] = " \n 2.5E+3 ";
  for (const auto& [datatype, items] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"FP32", floats},
           {"FP64", numbers(-1e300, 1e300, false)},
           {"FP16", numbers(-60000, 60000, false)},
           {"BF16", numbers(-1e30, 1e30, false)},
           {"INT8", numbers(-128, 127, true)},
           {"UINT8", numbers(0, 255, true)},
           {"INT16", numbers(-32768, 32767, true)},
           {"UINT16", numbers(0, 65535, true)},
           {"INT32", numbers(-2e9, 2e9, true)},
           {"UINT32", numbers(0, 4e9, true)},
           {"INT64", numbers(-9e18, 9e18, true)},
           {"UINT64", numbers(0, 1.8e19, true)},
       }) {
    const std::string body = one_input(datatype, n, join(items));
    EXPECT_FALSE(find_split_spans(body, f.options).empty()) << datatype;
    expect_same_decode(body, f.options, datatype);
    InferRequest request;
    EXPECT_FALSE(decode_rest_infer_request(body, std::nullopt, RequestLimits{}, &request, &f.options)) << datatype;
  }
  // No split path: decoded whole, through the same call.
  std::vector<std::string> bools(n, "true");
  bools[7] = "false";
  expect_same_decode(one_input("BOOL", n, join(bools)), f.options, "BOOL");
  expect_same_decode(one_input("BYTES", 3, R"(["a,b", "[c]", "d"])"), f.options, "BYTES");
}

TEST(RestJsonSplit, FaultsAnywhereGiveTheWholeDecodesError) {
  SplitFixture f;
  std::vector<std::string> items;
  for (int i = 0; i < 120; ++i) items.push_back(std::to_string(i % 100) + ".25");
  const std::string good = join(items);
  // Every position of the array gets each fault in turn, so some land on piece boundaries.
  const std::vector<std::string> replacements = {"",   " ",     "x",   "true", "null", "1e400", "-",    "01",
                                                 "1.", "\"7\"", "7 8", "1,",   ",1",   "\xff",  "1e39", "-1e39"};
  for (size_t at = 0; at < items.size(); at += 7)
    for (const std::string& r : replacements) {
      std::vector<std::string> bad = items;
      bad[at] = r;
      expect_same_decode(one_input("FP32", items.size(), join(bad)), f.options,
                         "element " + std::to_string(at) + " = '" + r + "'");
      expect_same_decode(one_input("INT8", items.size(), join(bad)), f.options,
                         "INT8 element " + std::to_string(at) + " = '" + r + "'");
    }
  const std::string data = good.substr(1, good.size() - 2);
  // An empty element that is a long run of blanks: a whole piece of it parses as an empty
  // array, and with a shape one short, the counts would add up.
  JsonSplitOptions many_pieces = f.options;
  many_pieces.max_pieces = 64;
  for (size_t at = 0; at < items.size(); ++at) {
    std::vector<std::string> blank = items;
    blank[at] = std::string(100, ' ');
    expect_same_decode(one_input("FP32", items.size() - 1, join(blank)), many_pieces,
                       "an empty element of blanks at " + std::to_string(at));
  }
  std::vector<std::string> broken = items;
  broken[60] = "1,,2";
  const std::string invalid = join(broken);
  for (const std::string& body : {
           one_input("FP32", items.size() - 1, good),                 // one element too many
           one_input("FP32", items.size() + 1, good),                 // one too few
           one_input("FP32", items.size(), "[" + data + ",]"),        // trailing comma
           one_input("FP32", items.size(), "[," + data + "]"),        // leading comma
           one_input("FP32", items.size(), "[" + data + "]]"),        // a bracket too many
           one_input("FP32", items.size(), good).substr(0, 200),      // cut inside the array
           one_input("FP32", items.size(), good + "}"),               // a brace too many
           one_input("FP32", items.size(), good) + "x",               // text after the document
           one_input("INT8", items.size(), good),                     // not integers
           one_input("FP32", items.size(), good + R"(,"data":[1])"),  // a second "data" key
           one_input("FP32", items.size(), R"([1],"data":)" + good),  // the first "data" key is short
           R"({"parameters":{"data":)" + good + "}," + one_input("FP32", items.size(), good).substr(1),
           // Invalid arrays that no input takes as its data.
           R"({"parameters":{"data":)" + invalid + "}," + one_input("FP32", items.size(), good).substr(1),
           one_input("FP32", items.size(), good + R"(,"data":)" + invalid),
           one_input("FP32", items.size(), good).substr(0, 100) + R"(,"data":)" + invalid + "}",
           R"({"id":"\u0000","inputs":[{"name":"x","datatype":"FP32","shape":[120],"data":)" + good + "}]}",
           R"({"id":"\"data\":)" + good + R"(\"","inputs":[{"name":"x","datatype":"FP32","shape":[120],"data":)" +
               good + "}]}",
           R"({"inputs":[{"name":"x","datatype":"FP32","shape":[120],"data":)" + good +
               R"(},{"name":"y","datatype":"FP64","shape":[120],"data":)" + good + "}]}",
           R"({"inputs":[{"name":"x","datatype":"FP32","shape":[120],"data":)" + good +
               R"(},{"name":"x","datatype":"FP32","shape":[120],"data":)" + good + "}]}",
       })
    expect_same_decode(body, f.options, body.substr(0, 60));
}

// Data nested as the shape, as Python's x.tolist() writes it.
std::string nested(const std::vector<int64_t>& shape, size_t level, size_t* next,
                   const std::vector<std::string>& items) {
  std::string out = "[";
  for (int64_t i = 0; i < shape[level]; ++i) {
    if (i) out += ", ";
    out += level + 1 == shape.size() ? items[(*next)++ % items.size()] : nested(shape, level + 1, next, items);
  }
  return out + "]";
}

std::string nested_input(const std::string& datatype, const std::vector<int64_t>& shape, const std::string& data) {
  std::string dims;
  for (int64_t d : shape) dims += (dims.empty() ? "" : ",") + std::to_string(d);
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":[)" + dims + R"(],"data":)" + data + "}]}";
}

TEST(RestJsonSplit, NestedDataMatchesTheWholeDecode) {
  SplitFixture f;
  std::vector<std::string> items;
  for (int i = 0; i < 97; ++i) items.push_back(printed(0.37 * i - 11));
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{1, 3, 4, 5}, {6, 7}, {2, 1, 3, 1, 8}}) {
    size_t next = 0;
    const std::string body = nested_input("FP32", shape, nested(shape, 0, &next, items));
    const std::vector<JsonSpan> spans = find_split_spans(body, f.options);
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_FALSE(spans[0].brackets.empty());
    // The pieces path itself takes it (the decode would fall back to the whole parse if not).
    Tensor direct(DataType::float32, shape);
    EXPECT_TRUE(parse_split_span(std::string_view(body).substr(spans[0].begin, spans[0].end - spans[0].begin),
                                 spans[0].brackets, f.options, &direct));
    InferRequest request;
    ASSERT_FALSE(decode_rest_infer_request(body, std::nullopt, RequestLimits{}, &request, &f.options));
    expect_same_decode(body, f.options, body.substr(0, 80));
    // The same tensor as the flat form.
    InferRequest flat;
    const std::vector<std::string> first(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(next));
    std::string flat_data = "[";
    for (size_t i = 0; i < next; ++i) flat_data += (i ? "," : "") + items[i % items.size()];
    ASSERT_FALSE(
        decode_rest_infer_request(nested_input("FP32", shape, flat_data + "]"), std::nullopt, RequestLimits{}, &flat));
    EXPECT_EQ(std::memcmp(flat.inputs[0].tensor.raw_data(), request.inputs[0].tensor.raw_data(),
                          request.inputs[0].tensor.nbytes()),
              0);
  }
}

TEST(RestJsonSplit, NestedLayoutFaultsGiveTheWholeDecodesError) {
  SplitFixture f;
  std::vector<std::string> items;
  for (int i = 0; i < 60; ++i) items.push_back(std::to_string(i) + ".5");
  const std::vector<int64_t> shape{2, 3, 10};
  size_t next = 0;
  const std::string good = nested(shape, 0, &next, items);
  // Each fault replaces the first occurrence of `from` after position `after` by `to`.
  struct Fault {
    std::string from, to;
    size_t after;
  };
  std::vector<Fault> faults = {
      {"], [", "], , [", 0},  {"], [", "] [", 0},       {"], [", "], 7, [", 0}, {"]], [[", "]], 1, [[", 0},
      {"]], [[", "]] [[", 0}, {"[[", "[1, [", 0},       {"]]", "], 1]", 0},     {", ", ", [1], ", 40},
      {"]", "]]", 0},         {"[[[", "[[[[", 0},       {"5, ", "5, , ", 100},  {"5, ", "[5], ", 100},
      {"]", ", ]", 0},        {"[[", "[[[", 0},         {"]]", "]", 0},         {"5, 2", "5 2", 0},
      {"], [", "],\n[", 0},   {"], [", "]\t,\r\n[", 0},
  };
  for (const Fault& fault : faults) {
    std::string data = good;
    const size_t at = data.find(fault.from, fault.after);
    ASSERT_NE(at, std::string::npos) << fault.from;
    data.replace(at, fault.from.size(), fault.to);
    expect_same_decode(nested_input("FP32", shape, data), f.options, fault.from + " -> " + fault.to);
  }
  // A leaf one short and another one long: the counts add up, the layout does not.
  std::string ragged = good;
  ragged.replace(ragged.find(", 9.5]"), 6, "]");
  ragged.replace(ragged.find("[10.5"), 5, "[9.5, 10.5");
  expect_same_decode(nested_input("FP32", shape, ragged), f.options, "ragged leaves");
  for (const std::vector<int64_t>& other : std::vector<std::vector<int64_t>>{{3, 2, 10}, {2, 30}, {60}, {2, 3, 10, 1}})
    expect_same_decode(nested_input("FP32", other, good), f.options, "another shape");
  expect_same_decode(nested_input("INT8", shape, good), f.options, "INT8 of non-integers");
}

TEST(RestJsonSplit, TheSpanFinderTakesFlatDataArraysOutsideStrings) {
  SplitFixture f;
  const std::string big = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]";  // 44 bytes
  const std::string body = R"({"id":"\"data\":)" + big + R"(","data" :  )" + big + R"(,"x":{"data":[[1,2],[3]]},)" +
                           R"("data":[1,2],"data":)" + big + "}";
  const std::vector<JsonSpan> spans = find_split_spans(body, f.options);
  ASSERT_EQ(spans.size(), 2u);
  for (const JsonSpan& span : spans) EXPECT_EQ(body.substr(span.begin, span.end - span.begin), big);
  EXPECT_LT(spans[0].end, spans[1].begin);

  JsonSplitOptions larger = f.options;
  larger.min_span_bytes = big.size() + 1;
  EXPECT_TRUE(find_split_spans(body, larger).empty());
  JsonSplitOptions without_helpers = f.options;
  without_helpers.helpers = nullptr;
  EXPECT_TRUE(find_split_spans(body, without_helpers).empty());
  EXPECT_TRUE(find_split_spans(R"({"id":"\u0000",)" + body.substr(1), f.options).empty());
  EXPECT_TRUE(find_split_spans(R"({"data":)" + big, f.options).size() == 1u);  // the finder does not validate
  EXPECT_TRUE(find_split_spans(R"({"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16)", f.options).empty());
}

TEST(RestJsonSplit, PlaceholdersReadBackAsTheirIndex) {
  std::string text = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]";
  write_placeholder(text.data(), JsonSpan{0, text.size(), {}}, 12);
  EXPECT_EQ(text.substr(0, 10), "\"\\u000012\"");
  EXPECT_EQ(text.find_first_not_of(' ', 10), std::string::npos);
  EXPECT_EQ(placeholder_index(std::string("\0"
                                          "12",
                                          3)),
            std::optional<size_t>(12));
  EXPECT_FALSE(placeholder_index("12"));
  EXPECT_FALSE(placeholder_index(std::string("\0", 1)));
  EXPECT_FALSE(
      placeholder_index(std::string("\0"
                                    "1x",
                                    3)));
}

TEST(RestJsonSplit, PiecesFillTheTensorInOrder) {
  SplitFixture f;
  std::vector<std::string> items;
  for (int i = 0; i < 100; ++i) items.push_back(std::to_string(i));
  Tensor t(DataType::int32, {100});
  ASSERT_TRUE(parse_split_span(join(items), f.options, &t));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(t.data<int32_t>()[i], i);
  Tensor short_one(DataType::int32, {101});
  EXPECT_FALSE(parse_split_span(join(items), f.options, &short_one));
  Tensor strings(DataType::string, {100});
  EXPECT_FALSE(parse_split_span(join(items), f.options, &strings));
}

}  // namespace
}  // namespace tandem::server
