// rest_path.h: the path of a REST request target, as the routes (rest_routes.h) match it.
// Thread-safety: a pure function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem::server {

// The non-empty '/'-separated segments of `target`'s path (the part before any '?'), each
// percent-decoded: "/v2/models/a%20b/infer?x=1" -> {"v2", "models", "a b", "infer"}. A '%' not
// followed by two hex digits stays as it is; a decoded "%2F" is a '/' inside its segment (it
// never splits one). Every byte is accepted; the result is never longer than the path.
std::vector<std::string> rest_path_segments(std::string_view target);

}  // namespace tandem::server
