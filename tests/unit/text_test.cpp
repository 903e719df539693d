// Unit tests for the reference text kernels: StringNormalizer, TfIdfVectorizer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::attr_floats;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

Attribute attr_strings(std::vector<std::string> v) {
  Attribute a;
  a.type = AttrType::strings;
  a.strings = std::move(v);
  return a;
}

using Strings = std::vector<std::string>;

TEST(StringNormalizerKernel, StopwordsAndCase) {
  Tensor x = Tensor::from_vector<std::string>({1, 4}, {"Monday", "tuesday", "MONDAY", "Straße"});
  Tensor y = run_op1("StringNormalizer", {x},
                     {{"case_change_action", attr_string("UPPER")}, {"stopwords", attr_strings({"monday"})}}, 10);
  EXPECT_EQ(y.shape(), (Shape{1, 2}));
  EXPECT_EQ(values_of<std::string>(y), (Strings{"TUESDAY", "STRAßE"}));
  Tensor s = run_op1("StringNormalizer", {x},
                     {{"is_case_sensitive", attr_int(1)}, {"stopwords", attr_strings({"monday", "MONDAY"})},
                      {"case_change_action", attr_string("LOWER")}},
                     10);
  EXPECT_EQ(values_of<std::string>(s), (Strings{"monday", "tuesday", "straße"}));
  Tensor u = run_op1("StringNormalizer", {Tensor::from_vector<std::string>({2}, {"ÀÉÎ Ωμέγα", "Привет"})},
                     {{"case_change_action", attr_string("LOWER")}}, 10);
  EXPECT_EQ(values_of<std::string>(u), (Strings{"àéî ωμέγα", "привет"}));
}

TEST(StringNormalizerKernel, AllDroppedGivesOneEmptyString) {
  Tensor x1 = Tensor::from_vector<std::string>({2}, {"a", "A"});
  Tensor y1 = run_op1("StringNormalizer", {x1}, {{"stopwords", attr_strings({"a"})}}, 10);
  EXPECT_EQ(y1.shape(), (Shape{1}));
  EXPECT_EQ(values_of<std::string>(y1), (Strings{""}));
  Tensor x2 = Tensor::from_vector<std::string>({1, 1}, {"a"});
  Tensor y2 = run_op1("StringNormalizer", {x2}, {{"stopwords", attr_strings({"a"})}}, 10);
  EXPECT_EQ(y2.shape(), (Shape{1, 1}));
}

TEST(StringNormalizerKernel, RejectsBadInput) {
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("StringNormalizer", {Tensor::from_vector<std::string>({2, 2}, {"a", "b", "c", "d"})}, {}, &outs, 1,
                      10)
                   .is_ok());
  EXPECT_FALSE(run_op("StringNormalizer", {Tensor(DataType::float32, {2})}, {}, &outs, 1, 10).is_ok());
  EXPECT_FALSE(run_op("StringNormalizer", {Tensor::from_vector<std::string>({1}, {"a"})},
                      {{"case_change_action", attr_string("TITLE")}}, &outs, 1, 10)
                   .is_ok());
}

std::map<std::string, Attribute> bigram_attrs(int64_t min_n, int64_t skip, const std::string& mode = "TF") {
  return {{"min_gram_length", attr_int(min_n)},
          {"max_gram_length", attr_int(2)},
          {"max_skip_count", attr_int(skip)},
          {"mode", attr_string(mode)},
          {"ngram_counts", attr_ints({0, 4})},
          {"ngram_indexes", attr_ints({0, 1, 2, 3, 4, 5, 6})},
          {"pool_int64s", attr_ints({2, 3, 5, 4, 5, 6, 7, 8, 6, 7})}};
}

TEST(TfIdfVectorizerKernel, CountsWithSkips) {
  Tensor x = Tensor::from_vector<int64_t>({12}, {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8});
  EXPECT_EQ(values_of<float>(run_op1("TfIdfVectorizer", {x}, bigram_attrs(2, 0), 9)),
            (std::vector<float>{0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(values_of<float>(run_op1("TfIdfVectorizer", {x}, bigram_attrs(2, 5), 9)),
            (std::vector<float>{0, 0, 0, 0, 1, 3, 1}));
  EXPECT_EQ(values_of<float>(run_op1("TfIdfVectorizer", {x}, bigram_attrs(1, 5), 9)),
            (std::vector<float>{0, 3, 1, 0, 1, 3, 1}));
  Tensor b = Tensor::from_vector<int32_t>({2, 6}, {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8});
  Tensor y = run_op1("TfIdfVectorizer", {b}, bigram_attrs(1, 5), 9);
  EXPECT_EQ(y.shape(), (Shape{2, 7}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1}));
}

TEST(TfIdfVectorizerKernel, IdfAndTfidfWeights) {
  Tensor x = Tensor::from_vector<int64_t>({12}, {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8});
  auto attrs = bigram_attrs(1, 5, "IDF");
  attrs["weights"] = attr_floats({1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(values_of<float>(run_op1("TfIdfVectorizer", {x}, attrs, 9)), (std::vector<float>{0, 2, 3, 0, 5, 6, 7}));
  attrs["mode"] = attr_string("TFIDF");
  EXPECT_EQ(values_of<float>(run_op1("TfIdfVectorizer", {x}, attrs, 9)), (std::vector<float>{0, 6, 3, 0, 5, 18, 7}));
}

TEST(TfIdfVectorizerKernel, StringPool) {
  Tensor x = Tensor::from_vector<std::string>({5}, {"a", "b", "a", "b", "c"});
  std::map<std::string, Attribute> attrs = {{"min_gram_length", attr_int(1)},
                                            {"max_gram_length", attr_int(2)},
                                            {"max_skip_count", attr_int(0)},
                                            {"mode", attr_string("TF")},
                                            {"ngram_counts", attr_ints({0, 2})},
                                            {"ngram_indexes", attr_ints({2, 0, 1})},
                                            {"pool_strings", attr_strings({"a", "c", "a", "b"})}};
  EXPECT_EQ(values_of<float>(run_op1("TfIdfVectorizer", {x}, attrs, 9)), (std::vector<float>{1, 2, 2}));
}

TEST(TfIdfVectorizerKernel, HugeSkipAndGramLengthAreClamped) {
  Tensor x = Tensor::from_vector<int64_t>({12}, {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8});
  auto attrs = bigram_attrs(2, int64_t{1} << 62);
  attrs["max_gram_length"] = attr_int(int64_t{1} << 62);
  EXPECT_EQ(values_of<float>(run_op1("TfIdfVectorizer", {x}, attrs, 9)), (std::vector<float>{0, 0, 0, 0, 1, 3, 1}));
}

TEST(TfIdfVectorizerKernel, RejectsBadAttributes) {
  std::vector<Value> outs;
  Tensor x = Tensor::from_vector<int64_t>({3}, {1, 2, 3});
  auto attrs = bigram_attrs(1, 0);
  attrs["ngram_indexes"] = attr_ints({0, 1, 2});
  EXPECT_FALSE(run_op("TfIdfVectorizer", {x}, attrs, &outs, 1, 9).is_ok());
  attrs = bigram_attrs(1, 0);
  attrs["ngram_counts"] = attr_ints({0, 5});
  EXPECT_FALSE(run_op("TfIdfVectorizer", {x}, attrs, &outs, 1, 9).is_ok());
  EXPECT_FALSE(run_op("TfIdfVectorizer", {Tensor::from_vector<std::string>({1}, {"a"})}, bigram_attrs(1, 0), &outs, 1, 9)
                   .is_ok());
  attrs = bigram_attrs(1, 0);
  attrs["max_gram_length"] = attr_int(0);
  EXPECT_FALSE(run_op("TfIdfVectorizer", {x}, attrs, &outs, 1, 9).is_ok());
}

}  // namespace
}  // namespace tandem
