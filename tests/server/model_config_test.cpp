// model_config_test.cpp: config.json parsing (model_config.h).
#include "server/model_config.h"

#include <gtest/gtest.h>

#include <string>

namespace tandem::server {
namespace {

TEST(ModelConfig, EmptyObjectGivesDefaults) {
  auto c = parse_model_config("m", "{}");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_TRUE(c->required);
  EXPECT_EQ(c->threads, 0);
  EXPECT_EQ(c->instances, 0);
  EXPECT_EQ(c->max_queue_size, 64);
  EXPECT_FALSE(c->batching.enabled);
  EXPECT_EQ(c->version_policy, "latest");
  EXPECT_EQ(c->prepare.fallback, FallbackPolicy::fallback);
  EXPECT_TRUE(c->prepare.routes.empty());
}

TEST(ModelConfig, EveryFieldIsRead) {
  auto c = parse_model_config("cls", R"({
    "backends": ["cpu", "reference"], "precision": "bf16", "strict": true, "required": false,
    "default_timeout_ms": 250, "parity_sample_rate": 0.5, "fault_injection": "error=0.3",
    "input_shapes": {"x": [1, 3, 48, 192]}, "threads": 2, "instances": 3, "max_queue_size": 10,
    "dynamic_batching": {"max_batch_size": 8, "max_queue_delay_us": 500, "preferred_batch_sizes": [4, 8]},
    "version_policy": "all", "latency_sla_ms": 20, "same_route_retries": 3, "shape_cache_mb": 256,
    "breaker": {"cooldown_ms": 100, "min_requests": 4, "failure_rate": 0.4, "strict_failure_rate": 0.5,
                "sla_breach_rate": 0.3, "parity_violations": 0, "half_open_calls": 7}
  })");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->prepare.routes, (std::vector<std::string>{"cpu", "reference"}));
  EXPECT_EQ(c->prepare.precision, Precision::bf16);
  EXPECT_EQ(c->prepare.fallback, FallbackPolicy::strict);
  EXPECT_FALSE(c->required);
  EXPECT_EQ(c->default_timeout_ms, 250);
  EXPECT_EQ(c->prepare.default_deadline_ms, 250);
  EXPECT_EQ(c->prepare.parity_sample_rate, 0.5);
  EXPECT_EQ(c->prepare.fault_injection, "error=0.3");
  EXPECT_EQ(c->prepare.input_shapes.at("x"), (std::vector<int64_t>{1, 3, 48, 192}));
  EXPECT_EQ(c->threads, 2);
  EXPECT_EQ(c->instances, 3);
  EXPECT_EQ(c->max_queue_size, 10);
  EXPECT_TRUE(c->batching.enabled);
  EXPECT_EQ(c->batching.max_batch_size, 8);
  EXPECT_EQ(c->batching.max_queue_delay_us, 500);
  EXPECT_EQ(c->batching.preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_EQ(c->version_policy, "all");
  EXPECT_EQ(c->prepare.latency_sla_ms, 20);
  EXPECT_EQ(c->prepare.same_route_retries, 3);
  EXPECT_EQ(c->prepare.shape_cache_mb, 256);
  EXPECT_EQ(c->prepare.breaker.cooldown_ms, 100);
  EXPECT_EQ(c->prepare.breaker.min_requests, 4);
  EXPECT_EQ(c->prepare.breaker.failure_rate, 0.4);
  EXPECT_EQ(c->prepare.breaker.strict_failure_rate, 0.5);
  EXPECT_EQ(c->prepare.breaker.sla_breach_rate, 0.3);
  EXPECT_EQ(c->prepare.breaker.parity_violations, 0);
  EXPECT_EQ(c->prepare.breaker.half_open_calls, 7);
}

TEST(ModelConfig, BackendsAsCommaSeparatedString) {
  auto c = parse_model_config("m", R"({"backends": "cpu@fp32,reference"})");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->prepare.routes, (std::vector<std::string>{"cpu", "reference"}));
}

TEST(ModelConfig, EmptyBatchingObjectEnablesBatchingWithDefaults) {
  auto c = parse_model_config("m", R"({"dynamic_batching": {}})");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_TRUE(c->batching.enabled);
  EXPECT_GE(c->batching.max_batch_size, 1);
}

TEST(ModelConfig, MinusOneLeavesAnInputDimAsTheModelDeclaresIt) {
  auto c = parse_model_config("cls", R"({"input_shapes": {"x": [-1, 3, 48, 192]}})");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->prepare.input_shapes.at("x"), (std::vector<int64_t>{-1, 3, 48, 192}));
}

TEST(ModelConfig, WarmBatchSizesCoverWhatBatchingCanMake) {
  BatchingConfig b;
  b.enabled = true;
  b.max_batch_size = 1;
  EXPECT_TRUE(warm_batch_sizes(b).empty());  // size 1 is the engine's own warm-up
  b.max_batch_size = 5;
  EXPECT_EQ(warm_batch_sizes(b), (std::vector<int64_t>{2, 3, 4, 5}));
  // Past 16: every size up to 16, then only the preferred ones and the largest.
  b.max_batch_size = 64;
  b.preferred_batch_sizes = {32, 8};
  std::vector<int64_t> want;
  for (int64_t size = 2; size <= 16; ++size) want.push_back(size);
  want.push_back(32);
  want.push_back(64);
  EXPECT_EQ(warm_batch_sizes(b), want);
}

struct BadCase {
  const char* json;
  const char* expected;  // a part of the one-line message
};

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, GivesOneLineNamingTheField) {
  auto c = parse_model_config("cls", GetParam().json);
  ASSERT_FALSE(c) << GetParam().json;
  EXPECT_EQ(c.status().code(), StatusCode::invalid_argument);
  const std::string m = c.status().message();
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_EQ(m.rfind("model 'cls': config.json: ", 0), 0u) << m;
  EXPECT_NE(m.find(GetParam().expected), std::string::npos) << m;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, BadConfig,
    ::testing::Values(
        BadCase{"{", "not valid JSON"}, BadCase{"[1]", "must be a JSON object"},
        BadCase{R"({"backend": ["cpu"]})", "backend is not a known field"},
        BadCase{R"({"backends": 3})", "backends must be"}, BadCase{R"({"backends": []})", "backends must be"},
        BadCase{R"({"backends": [1]})", "backends must be"}, BadCase{R"({"backends": "cpu@fp99"})", "backends:"},
        BadCase{R"({"precision": "fp8"})", "precision must be one of"},
        BadCase{R"({"precision": 32})", "precision must be a string"},
        BadCase{R"({"strict": "yes"})", "strict must be true or false"},
        BadCase{R"({"required": 1})", "required must be true or false"},
        BadCase{R"({"default_timeout_ms": -1})", "default_timeout_ms must be between"},
        BadCase{R"({"default_timeout_ms": "1s"})", "default_timeout_ms must be a number"},
        BadCase{R"({"parity_sample_rate": 2})", "parity_sample_rate must be between 0 and 1"},
        BadCase{R"({"fault_injection": 0.3})", "fault_injection must be a string"},
        BadCase{R"({"input_shapes": [1]})", "input_shapes must be an object"},
        BadCase{R"({"input_shapes": {"x": [1, -3]}})",
                "input_shapes.x must be a list of dims, each a non-negative integer or -1"},
        BadCase{R"({"input_shapes": {"x": 5}})", "input_shapes.x must be a list of dims"},
        BadCase{R"({"threads": 1.5})", "threads must be an integer"},
        BadCase{R"({"same_route_retries": -1})", "same_route_retries must be >= 0"},
        BadCase{R"({"shape_cache_mb": -1})", "shape_cache_mb must be between"},
        BadCase{R"({"threads": -1})", "threads must be >= 0"},
        BadCase{R"({"instances": 100000})", "instances must be <= 1024"},
        BadCase{R"({"max_queue_size": -2})", "max_queue_size must be >= 0"},
        BadCase{R"({"dynamic_batching": true})", "dynamic_batching must be an object"},
        BadCase{R"({"dynamic_batching": {"max_batch_size": 0}})", "dynamic_batching.max_batch_size must be >= 1"},
        BadCase{R"({"dynamic_batching": {"max_queue_delay_us": -5}})",
                "dynamic_batching.max_queue_delay_us must be >= 0"},
        BadCase{R"({"dynamic_batching": {"max_batch_size": 4, "preferred_batch_sizes": [8]}})",
                "dynamic_batching.preferred_batch_sizes must hold"},
        BadCase{R"({"dynamic_batching": {"size": 4}})", "dynamic_batching.size is not a known field"},
        BadCase{R"({"version_policy": "newest"})", "version_policy must be \"latest\" or \"all\""},
        BadCase{R"({"breaker": {"cooldown": 5}})", "breaker.cooldown is not a known field"},
        BadCase{R"({"breaker": {"failure_rate": 1.5}})", "breaker.failure_rate must be between 0 and 1"},
        BadCase{R"({"breaker": {"close_after_successes": 5}})", "breaker.close_after_successes is not a known field"},
        BadCase{R"({"breaker": 5})", "breaker must be an object"}));

}  // namespace
}  // namespace tandem::server
