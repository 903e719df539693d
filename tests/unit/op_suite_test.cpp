// op_suite_test.cpp: runs the generic op suite (op_suite_util.h) family by family, and checks
// that every op in every backend's op table has cases that really run it.
#include <gtest/gtest.h>

#include <iostream>
#include <set>
#include <sstream>

#include "backends/backend.h"
#include "backends/cpu/op_table.h"
#include "kernels/registry.h"
#include "op_suite_util.h"

namespace tandem::testing {
namespace {

// Runs every case of a family and fails the test once per failing case and backend.
void run_family(const std::vector<OpCase>& cases) {
  ASSERT_FALSE(cases.empty());
  for (const OpCase& c : cases) {
    const CaseOutcome o = run_case(c);
    EXPECT_TRUE(o.reference.is_ok()) << c.label() << " on the reference backend: " << o.reference.to_string();
    for (const auto& [backend, status] : o.backends)
      EXPECT_TRUE(status.is_ok()) << c.label() << " on " << backend << ": " << status.to_string();
    if (c.every_backend)
      for (const auto& [backend, why] : o.declined)
        ADD_FAILURE() << c.label() << " declined by " << backend << ": " << why;
  }
}

TEST(OpSuite, Elementwise) { run_family(elementwise_cases()); }
TEST(OpSuite, Activation) { run_family(activation_cases()); }
TEST(OpSuite, NeuralNetwork) { run_family(nn_cases()); }
TEST(OpSuite, Recurrent) { run_family(recurrent_cases()); }
TEST(OpSuite, Reduce) { run_family(reduce_cases()); }
TEST(OpSuite, Shape) { run_family(shape_cases()); }
TEST(OpSuite, Indexing) { run_family(indexing_cases()); }
TEST(OpSuite, SequenceAndControlFlow) { run_family(sequence_and_control_cases()); }
TEST(OpSuite, Misc) { run_family(misc_cases()); }
TEST(OpSuite, RandomAndHalf) { run_family(random_and_half_cases()); }
TEST(OpSuite, Quantize) { run_family(quantize_cases()); }
TEST(OpSuite, Int8) { run_family(int8_cases()); }

std::vector<OpCase> all_cases() {
  std::vector<OpCase> all;
  for (auto family : {elementwise_cases, activation_cases, nn_cases, recurrent_cases, reduce_cases, shape_cases, indexing_cases,
                      sequence_and_control_cases, misc_cases, random_and_half_cases, quantize_cases, int8_cases}) {
    std::vector<OpCase> f = family();
    all.insert(all.end(), f.begin(), f.end());
  }
  return all;
}

std::string op_key(const std::string& domain, const std::string& op) { return domain.empty() ? op : domain + "." + op; }

// Every op of the reference kernel table needs a case that runs on the reference backend, and
// every op of the cpu op table a case the cpu backend accepts and runs. A case counts only when
// it ran; failures themselves are reported by the family tests.
TEST(OpSuite, EveryRegisteredOpHasARunningCase) {
  std::set<std::string> ran_on_reference;
  std::map<std::string, std::set<std::string>> ran_on;  // backend -> ops
  std::map<std::string, int> cases_on;                  // backend -> cases run there
  const std::vector<OpCase> cases = all_cases();
  for (const OpCase& c : cases) {
    const CaseOutcome o = run_case(c);
    if (!o.reference.is_ok()) continue;
    ran_on_reference.insert(op_key(c.domain, c.op));
    ++cases_on["reference"];
    for (const auto& [backend, status] : o.backends)
      if (status.is_ok()) {
        ran_on[backend].insert(op_key(c.domain, c.op));
        ++cases_on[backend];
      }
  }
  std::cout << cases.size() << " cases;";
  for (const auto& [backend, n] : cases_on) std::cout << " " << n << " ran on " << backend << ",";
  std::cout << " " << ran_on_reference.size() << " ops on the reference backend\n";
  std::vector<std::string> missing;
  for (const auto& [domain, op] : reference_kernels().ops())
    if (!ran_on_reference.count(op_key(domain, op))) missing.push_back("reference: " + op_key(domain, op));
  if (find_backend("cpu")) {
    for (const std::string& op : cpu::cpu_ops().ops())
      if (!ran_on["cpu"].count(op)) missing.push_back("cpu: " + op);
  }
  std::ostringstream list;
  for (const std::string& m : missing) list << "\n  " << m;
  EXPECT_TRUE(missing.empty()) << missing.size() << " registered ops have no case that runs them (add cases in "
                               << "tests/unit/op_cases_*.cpp):" << list.str();
}

}  // namespace
}  // namespace tandem::testing
