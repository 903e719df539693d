// status_test.cpp: Status messages stay one line whatever text they quote (tandem/status.h).
#include <gtest/gtest.h>

#include <string>

#include "graph/window_geometry.h"
#include "tandem/status.h"

namespace tandem {
namespace {

TEST(Status, ControlBytesInAMessageAreEscaped) {
  const Status s = invalid_model(std::string("[Conv 'c'] auto_pad 'SAME\nLOWER\t\x01\x7f' is wrong"));
  EXPECT_EQ(s.message(), "[Conv 'c'] auto_pad 'SAME\\x0aLOWER\\x09\\x01\\x7f' is wrong");
  EXPECT_EQ(s.with_prefix("model\r: ").message(), "model\\x0d: " + s.message());
  // Printable text, UTF-8 included, is kept as it is.
  EXPECT_EQ(invalid_argument("größe 'x' \xe2\x9c\x93").message(), "größe 'x' \xe2\x9c\x93");
  EXPECT_EQ(one_line(std::string("a\0b", 3)), "a\\x00b");
}

TEST(Status, AModelStringInAnErrorStaysOnOneLine) {
  // A string attribute is the model's own text: a fuzzed auto_pad with a newline once made
  // shape inference's message two lines.
  Node node;
  node.op_type = "Conv";
  node.name = "c";
  Attribute a;
  a.type = AttrType::s;
  a.s = "SAME_L\nOWER";
  node.attrs["auto_pad"] = a;
  auto pad = read_auto_pad(node);
  ASSERT_FALSE(pad.is_ok());
  EXPECT_EQ(pad.status().message().find('\n'), std::string::npos) << pad.status().message();
  EXPECT_NE(pad.status().message().find("SAME_L\\x0aOWER"), std::string::npos) << pad.status().message();
}

}  // namespace
}  // namespace tandem
