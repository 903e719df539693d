// Tests of the REST target's path segments (src/server/rest_path.h).
#include "server/rest_path.h"

#include <gtest/gtest.h>

namespace tandem::server {
namespace {

using Segments = std::vector<std::string>;

TEST(RestPath, SplitsOnSlashesAndDropsTheQuery) {
  EXPECT_EQ(rest_path_segments("/v2/models/cls/infer"), (Segments{"v2", "models", "cls", "infer"}));
  EXPECT_EQ(rest_path_segments("/v2/models/cls/ready?verbose=1/2"), (Segments{"v2", "models", "cls", "ready"}));
  EXPECT_EQ(rest_path_segments("//v2///health/live/"), (Segments{"v2", "health", "live"}));
  EXPECT_EQ(rest_path_segments(""), Segments{});
  EXPECT_EQ(rest_path_segments("/?/a"), Segments{});
}

TEST(RestPath, DecodesPercentEscapesWithinASegment) {
  EXPECT_EQ(rest_path_segments("/v2/models/a%20b"), (Segments{"v2", "models", "a b"}));
  EXPECT_EQ(rest_path_segments("/a%2Fb/c"), (Segments{"a/b", "c"}));  // never splits
  EXPECT_EQ(rest_path_segments("/%41%4a%6b"), (Segments{"AJk"}));
  EXPECT_EQ(rest_path_segments(std::string_view("/%00x", 5)), (Segments{std::string("\0x", 2)}));
}

TEST(RestPath, KeepsAPercentThatIsNotAnEscape) {
  EXPECT_EQ(rest_path_segments("/100%"), (Segments{"100%"}));
  EXPECT_EQ(rest_path_segments("/a%4/b"), (Segments{"a%4", "b"}));  // the escape may not cross a '/'
  EXPECT_EQ(rest_path_segments("/%zz%4g"), (Segments{"%zz%4g"}));
  EXPECT_EQ(rest_path_segments("/%%41"), (Segments{"%A"}));
}

}  // namespace
}  // namespace tandem::server
