#include "onnx/loader.h"

#include <onnx/onnx_pb.h>
#include <onnx/onnx-data.pb.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <new>
#include <set>
#include <sstream>

namespace tandem {

namespace fs = std::filesystem;

namespace {

// Shared state while converting one model file.
struct LoadContext {
  std::string display_name;  // prefix of every error message
  fs::path base_dir;         // folder for external data; empty refuses external data
  std::string where;         // what is being converted, e.g. "[Constant 'c'] attribute 'value': "
  Status error(const std::string& msg) const { return invalid_model(display_name + ": " + where + msg); }
};

Result<std::string> read_file(const fs::path& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) return invalid_argument(path.string() + ": no such file");
  if (st.type() == fs::file_type::directory)
    return invalid_argument(path.string() + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument(path.string() + ": cannot open file");
  // A regular file is read in one piece into a string of its size: through a string stream a
  // 100 MB model was copied several times as the buffer grew (2.1 s to load ResNet-50 here,
  // half of it page faults of the copies). Anything else (a pipe) goes through the stream.
  if (st.type() == fs::file_type::regular) {
    const auto size = fs::file_size(path, ec);
    if (!ec) {
      std::string bytes(static_cast<size_t>(size), '\0');
      in.read(bytes.data(), static_cast<std::streamsize>(size));
      if (static_cast<uintmax_t>(in.gcount()) != size || in.bad())
        return invalid_argument(path.string() + ": read error (the file changed while it was read?)");
      return bytes;
    }
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return invalid_argument(path.string() + ": read error");
  return ss.str();
}

bool known_dtype(int32_t t) { return t >= 1 && t <= 16; }

// Parses a decimal external-data offset or length; false when it is not a non-negative integer.
bool parse_size(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 18) return false;  // 18 digits cannot overflow int64
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// Reads the external-data bytes of a tensor, refusing locations outside base_dir.
Result<std::string> read_external(const LoadContext& lc, const onnx::TensorProto& tp, size_t expected_bytes) {
  std::string location;
  int64_t offset = 0;
  int64_t length = -1;
  const std::string who = "initializer '" + tp.name() + "'";
  for (const auto& kv : tp.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      int64_t v = 0;
      if (!parse_size(kv.value(), &v))
        return lc.error(who + " external data " + kv.key() + " '" + kv.value() + "' is not a byte count");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (lc.base_dir.empty()) return lc.error(who + " uses external data but the model was not loaded from a file");
  if (location.empty()) return lc.error(who + " has external data without a location");
  if (location.find('\0') != std::string::npos)
    return lc.error(who + " external data path contains a NUL byte; refused");
  fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
    return lc.error(who + " external data path '" + location + "' is absolute, which leaves the model's folder; refused");
  // Resolve both paths (symlinks included) and require the file to lie inside the folder.
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(lc.base_dir, ec);
  if (ec) return lc.error(who + " cannot resolve the model's folder: " + ec.message());
  const fs::path full = fs::weakly_canonical(lc.base_dir / rel, ec);
  if (ec) return lc.error(who + " external data path '" + location + "' cannot be resolved: " + ec.message());
  auto [base_end, full_it] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (base_end != base.end() || full_it == full.end())
    return lc.error(who + " external data path '" + location + "' leaves the model's folder; refused");
  if (!fs::exists(full, ec)) return lc.error(who + " external data file '" + location + "' does not exist");
  if (!fs::is_regular_file(full, ec)) return lc.error(who + " external data '" + location + "' is not a regular file");
  const auto size = fs::file_size(full, ec);
  if (ec) return lc.error(who + " external data file '" + location + "' cannot be read: " + ec.message());
  const int64_t file_size = static_cast<int64_t>(size);
  if (length < 0) length = static_cast<int64_t>(expected_bytes);
  if (offset > file_size || length > file_size - offset)
    return lc.error(who + " external data range [" + std::to_string(offset) + ", +" + std::to_string(length) +
                    ") is outside '" + location + "' (" + std::to_string(file_size) + " bytes)");
  if (static_cast<size_t>(length) != expected_bytes)
    return lc.error(who + " external data has " + std::to_string(length) + " bytes, expected " +
                    std::to_string(expected_bytes));
  std::ifstream in(full, std::ios::binary);
  if (!in) return lc.error(who + " external data file '" + location + "' cannot be opened");
  std::string bytes(static_cast<size_t>(length), '\0');
  in.seekg(offset);
  in.read(bytes.data(), length);
  if (!in) return lc.error(who + " external data file '" + location + "' could not be read");
  return bytes;
}

// Checks a tensor's dims: none negative, and at most 2^40 elements in all (a corrupt file must
// not make the loader allocate terabytes). Returns the element count.
Result<int64_t> checked_numel(const LoadContext& lc, const std::string& what, const Shape& shape) {
  for (int64_t d : shape)
    if (d < 0) return lc.error(what + " has negative dimension in " + shape_to_string(shape));
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > (int64_t{1} << 40) / d)
      return lc.error(what + " is too large (" + shape_to_string(shape) + ")");
    numel *= d;
  }
  return numel;
}

// The number of values a typed field must hold for `numel` elements of `dtype`, and the field's size.
int64_t typed_field_size(const onnx::TensorProto& tp, DataType dtype) {
  switch (dtype) {
    case DataType::float32: case DataType::complex64: return tp.float_data_size();
    case DataType::float64: case DataType::complex128: return tp.double_data_size();
    case DataType::int64: return tp.int64_data_size();
    case DataType::uint32: case DataType::uint64: return tp.uint64_data_size();
    case DataType::string: return tp.string_data_size();
    default: return tp.int32_data_size();
  }
}

Result<Tensor> convert_tensor(const LoadContext& lc, const onnx::TensorProto& tp) {
  if (!known_dtype(tp.data_type()))
    return lc.error("tensor '" + tp.name() + "' has unknown data type " + std::to_string(tp.data_type()));
  Shape shape(tp.dims().begin(), tp.dims().end());
  TANDEM_ASSIGN_OR_RETURN(const int64_t numel, checked_numel(lc, "tensor '" + tp.name() + "'", shape));
  auto dtype = static_cast<DataType>(tp.data_type());
  if (tp.has_segment()) return lc.error("tensor '" + tp.name() + "' uses segments, which are not supported");
  const size_t elem = dtype_size(dtype);
  const bool external = tp.data_location() == onnx::TensorProto::EXTERNAL;
  if (dtype == DataType::string && external)
    return lc.error("tensor '" + tp.name() + "' is a string tensor with external data, which is not supported");
  if (dtype != DataType::string && (external || tp.has_raw_data())) {
    std::string external_bytes;
    const std::string* raw = &tp.raw_data();
    if (external) {
      TANDEM_ASSIGN_OR_RETURN(external_bytes, read_external(lc, tp, static_cast<size_t>(numel) * elem));
      raw = &external_bytes;
    }
    if (raw->size() != static_cast<size_t>(numel) * elem)
      return lc.error("tensor '" + tp.name() + "' has " + std::to_string(raw->size()) + " raw bytes, expected " +
                      std::to_string(static_cast<size_t>(numel) * elem) + " for " +
                      std::string(dtype_name(dtype)) + "[" + shape_to_string(shape) + "]");
    Tensor t(dtype, shape);
    if (dtype == DataType::boolean) {
      // Any non-zero byte is true; a bool object must hold exactly 0 or 1.
      for (int64_t i = 0; i < numel; ++i) t.data<bool>()[i] = (*raw)[static_cast<size_t>(i)] != 0;
    } else if (!raw->empty()) {
      std::memcpy(t.raw_data(), raw->data(), raw->size());
    }
    return t;
  }
  // Typed fields: check the count before allocating, so a huge shape with no data is refused.
  const int64_t per_element = (dtype == DataType::complex64 || dtype == DataType::complex128) ? 2 : 1;
  const int64_t have = typed_field_size(tp, dtype);
  if (have != numel * per_element)
    return lc.error("tensor '" + tp.name() + "' has " + std::to_string(have / per_element) + " values, expected " +
                    std::to_string(numel) + " for " + std::string(dtype_name(dtype)) + "[" +
                    shape_to_string(shape) + "]");
  Tensor t(dtype, shape);
  switch (dtype) {
    case DataType::float32:
      std::copy(tp.float_data().begin(), tp.float_data().end(), t.data<float>());
      break;
    case DataType::complex64:
      std::copy(tp.float_data().begin(), tp.float_data().end(), reinterpret_cast<float*>(t.raw_data()));
      break;
    case DataType::float64:
      std::copy(tp.double_data().begin(), tp.double_data().end(), t.data<double>());
      break;
    case DataType::complex128:
      std::copy(tp.double_data().begin(), tp.double_data().end(), reinterpret_cast<double*>(t.raw_data()));
      break;
    case DataType::int64:
      std::copy(tp.int64_data().begin(), tp.int64_data().end(), t.data<int64_t>());
      break;
    case DataType::uint32:
    case DataType::uint64:
      for (int64_t i = 0; i < numel; ++i) {
        if (dtype == DataType::uint32) t.data<uint32_t>()[i] = static_cast<uint32_t>(tp.uint64_data(i));
        else t.data<uint64_t>()[i] = tp.uint64_data(i);
      }
      break;
    case DataType::string:
      for (int64_t i = 0; i < numel; ++i) t.data<std::string>()[i] = tp.string_data(i);
      break;
    default: {  // int32 and the narrower types travel in int32_data
      for (int64_t i = 0; i < numel; ++i) {
        const int32_t v = tp.int32_data(i);
        switch (dtype) {
          case DataType::int32: t.data<int32_t>()[i] = v; break;
          case DataType::int16: t.data<int16_t>()[i] = static_cast<int16_t>(v); break;
          case DataType::int8: t.data<int8_t>()[i] = static_cast<int8_t>(v); break;
          case DataType::uint16: t.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
          case DataType::uint8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
          case DataType::boolean: t.data<bool>()[i] = v != 0; break;
          case DataType::float16: t.data<Float16>()[i].bits = static_cast<uint16_t>(v); break;
          case DataType::bfloat16: t.data<BFloat16>()[i].bits = static_cast<uint16_t>(v); break;
          default: return lc.error("tensor '" + tp.name() + "' has unsupported data type");
        }
      }
    }
  }
  return t;
}

// The largest dense form of a sparse tensor the loader builds.
constexpr int64_t kMaxSparseDenseBytes = int64_t{1} << 30;

// A sparse tensor (COO: values plus linear or per-dim indices) as a dense tensor.
Result<Tensor> convert_sparse(const LoadContext& lc, const onnx::SparseTensorProto& sp) {
  const std::string what = "sparse tensor '" + sp.values().name() + "'";
  Shape shape(sp.dims().begin(), sp.dims().end());
  TANDEM_ASSIGN_OR_RETURN(const int64_t total, checked_numel(lc, what, shape));
  TANDEM_ASSIGN_OR_RETURN(Tensor values, convert_tensor(lc, sp.values()));
  TANDEM_ASSIGN_OR_RETURN(Tensor indices, convert_tensor(lc, sp.indices()));
  const size_t elem = dtype_size(values.dtype());
  if (elem == 0) return lc.error(what + ": sparse string tensors are not supported");
  if (values.rank() != 1) return lc.error(what + " values must be 1-D, got " + shape_to_string(values.shape()));
  if (indices.dtype() != DataType::int64) return lc.error(what + " indices must be int64");
  const int64_t n = values.numel();
  const int64_t rank = static_cast<int64_t>(shape.size());
  const bool linear = indices.rank() == 1;
  if (!(linear && indices.numel() == n) &&
      !(indices.rank() == 2 && indices.dim(0) == n && indices.dim(1) == rank))
    return lc.error(what + " has indices of shape " + shape_to_string(indices.shape()) + " for " +
                    std::to_string(n) + " values of a rank-" + std::to_string(rank) + " tensor");
  // The dense form is the one allocation not bounded by the file's size: a few bytes of sparse
  // tensor may declare terabytes. Cap it.
  if (total > kMaxSparseDenseBytes / static_cast<int64_t>(elem))
    return lc.error(what + " expands to " + std::to_string(total) + " " + std::string(dtype_name(values.dtype())) +
                    " elements dense, over the " + std::to_string(kMaxSparseDenseBytes >> 20) + " MiB limit");
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t i = rank - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];  // <= total <= 2^40
  const int64_t* idx = indices.data<int64_t>();
  Tensor dense;
  try {
    dense = Tensor(values.dtype(), shape);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::out_of_memory, lc.display_name + ": " + lc.where + what + ": cannot allocate " +
                                                 std::to_string(total * static_cast<int64_t>(elem)) + " bytes");
  }
  for (int64_t k = 0; k < n; ++k) {
    int64_t pos = 0;
    if (linear) {
      pos = idx[k];
    } else {
      for (int64_t d = 0; d < rank; ++d) {
        const int64_t i = idx[k * rank + d];
        if (i < 0 || i >= shape[d]) { pos = -1; break; }
        pos += i * strides[d];
      }
    }
    if (pos < 0 || pos >= total) return lc.error(what + " index out of range");
    std::memcpy(static_cast<char*>(dense.raw_data()) + pos * elem,
                static_cast<const char*>(values.raw_data()) + k * elem, elem);
  }
  return dense;
}

TypeInfo convert_type(const onnx::TypeProto& tp) {
  TypeInfo t;
  auto convert_shape = [&](const onnx::TensorShapeProto* shape) {
    if (!shape) return;
    t.has_shape = true;
    for (const auto& d : shape->dim()) {
      Dim dim;
      if (d.has_dim_value()) dim.value = d.dim_value();
      else if (d.has_dim_param()) dim.symbol = d.dim_param();
      t.dims.push_back(dim);
    }
  };
  if (tp.has_tensor_type()) {
    t.kind = TypeInfo::Kind::tensor;
    t.elem = static_cast<DataType>(tp.tensor_type().elem_type());
    convert_shape(tp.tensor_type().has_shape() ? &tp.tensor_type().shape() : nullptr);
  } else if (tp.has_sparse_tensor_type()) {
    t.kind = TypeInfo::Kind::tensor;
    t.elem = static_cast<DataType>(tp.sparse_tensor_type().elem_type());
    convert_shape(tp.sparse_tensor_type().has_shape() ? &tp.sparse_tensor_type().shape() : nullptr);
  } else if (tp.has_sequence_type()) {
    t.kind = TypeInfo::Kind::sequence;
    t.inner = std::make_shared<TypeInfo>(convert_type(tp.sequence_type().elem_type()));
  } else if (tp.has_optional_type()) {
    t.kind = TypeInfo::Kind::optional;
    t.inner = std::make_shared<TypeInfo>(convert_type(tp.optional_type().elem_type()));
  } else if (tp.has_map_type()) {
    t.kind = TypeInfo::Kind::map;
  }
  return t;
}

ValueInfo convert_value_info(const onnx::ValueInfoProto& vi) { return {vi.name(), convert_type(vi.type())}; }

Result<std::shared_ptr<Graph>> convert_graph(const LoadContext& lc, const onnx::GraphProto& gp,
                                             const std::map<std::string, int64_t>& opsets);

Result<Attribute> convert_attribute(const LoadContext& lc, const onnx::AttributeProto& ap, const Node& node,
                                    const std::map<std::string, int64_t>& opsets) {
  Attribute a;
  // Errors inside an attribute (a bad tensor, a bad node of a subgraph) name the node it belongs to.
  LoadContext alc = lc;
  alc.where = lc.where + node.label() + " attribute '" + ap.name() + "': ";
  switch (ap.type()) {
    case onnx::AttributeProto::FLOAT: a.type = AttrType::f; a.f = ap.f(); break;
    case onnx::AttributeProto::INT: a.type = AttrType::i; a.i = ap.i(); break;
    case onnx::AttributeProto::STRING: a.type = AttrType::s; a.s = ap.s(); break;
    case onnx::AttributeProto::TENSOR: {
      a.type = AttrType::t;
      auto t = convert_tensor(alc, ap.t());
      if (!t) return t.status();
      a.t = std::move(t).value();
      break;
    }
    case onnx::AttributeProto::SPARSE_TENSOR: {
      a.type = AttrType::sparse;
      auto t = convert_sparse(alc, ap.sparse_tensor());
      if (!t) return t.status();
      a.t = std::move(t).value();
      break;
    }
    case onnx::AttributeProto::GRAPH: {
      a.type = AttrType::g;
      auto g = convert_graph(alc, ap.g(), opsets);
      if (!g) return g.status();
      a.g = std::move(g).value();
      break;
    }
    case onnx::AttributeProto::FLOATS: a.type = AttrType::floats; a.floats.assign(ap.floats().begin(), ap.floats().end()); break;
    case onnx::AttributeProto::INTS: a.type = AttrType::ints; a.ints.assign(ap.ints().begin(), ap.ints().end()); break;
    case onnx::AttributeProto::STRINGS: a.type = AttrType::strings; a.strings.assign(ap.strings().begin(), ap.strings().end()); break;
    case onnx::AttributeProto::TENSORS:
      a.type = AttrType::tensors;
      for (const auto& t : ap.tensors()) {
        auto c = convert_tensor(alc, t);
        if (!c) return c.status();
        a.tensors.push_back(std::move(c).value());
      }
      break;
    case onnx::AttributeProto::GRAPHS:
      a.type = AttrType::graphs;
      for (const auto& g : ap.graphs()) {
        auto c = convert_graph(alc, g, opsets);
        if (!c) return c.status();
        a.graphs.push_back(std::move(c).value());
      }
      break;
    case onnx::AttributeProto::TYPE_PROTO:
      a.type = AttrType::type_proto;
      a.tp = std::make_shared<TypeInfo>(convert_type(ap.tp()));
      break;
    default:
      return lc.error(node.label() + " attribute '" + ap.name() + "' has unsupported type " +
                      std::to_string(static_cast<int>(ap.type())));
  }
  return a;
}

// Names (of values, nodes, ops, domains, attributes, graphs) may not hold control bytes: they
// end up in every message about the model, which must stay one line.
bool has_control_byte(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

Status check_names(const LoadContext& lc, const onnx::GraphProto& gp) {
  auto bad = [&](const std::string& what, const std::string& name) {
    return lc.error(what + " name '" + name + "' contains a control character");
  };
  if (has_control_byte(gp.name())) return bad("graph", gp.name());
  for (const auto& t : gp.initializer())
    if (has_control_byte(t.name())) return bad("initializer", t.name());
  for (const auto& t : gp.sparse_initializer())
    if (has_control_byte(t.values().name())) return bad("initializer", t.values().name());
  for (const auto* list : {&gp.input(), &gp.output(), &gp.value_info()})
    for (const auto& vi : *list)
      if (has_control_byte(vi.name())) return bad("value", vi.name());
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    const std::string node = "node #" + std::to_string(i);
    if (has_control_byte(np.name())) return bad(node, np.name());
    if (has_control_byte(np.op_type())) return bad(node + " op", np.op_type());
    if (has_control_byte(np.domain())) return bad(node + " domain", np.domain());
    for (const auto& v : np.input())
      if (has_control_byte(v)) return bad(node + " input", v);
    for (const auto& v : np.output())
      if (has_control_byte(v)) return bad(node + " output", v);
    for (const auto& a : np.attribute())
      if (has_control_byte(a.name())) return bad(node + " attribute", a.name());
  }
  return Status::ok();
}

Result<std::shared_ptr<Graph>> convert_graph(const LoadContext& lc, const onnx::GraphProto& gp,
                                             const std::map<std::string, int64_t>& opsets) {
  TANDEM_RETURN_IF_ERROR(check_names(lc, gp));
  auto g = std::make_shared<Graph>();
  g->name = gp.name();
  g->opsets = opsets;
  for (const auto& init : gp.initializer()) {
    if (init.name().empty()) return lc.error("an initializer has no name");
    auto t = convert_tensor(lc, init);
    if (!t) return t.status();
    g->initializers[init.name()] = std::move(t).value();
  }
  for (const auto& sp : gp.sparse_initializer()) {
    if (sp.values().name().empty()) return lc.error("a sparse initializer has no name");
    auto t = convert_sparse(lc, sp);
    if (!t) return t.status();
    g->initializers[sp.values().name()] = std::move(t).value();
  }
  for (const auto& vi : gp.input()) g->inputs.push_back(convert_value_info(vi));
  for (const auto& vi : gp.output()) g->outputs.push_back(convert_value_info(vi));
  for (const auto& vi : gp.value_info()) g->value_infos.push_back(convert_value_info(vi));
  g->nodes.reserve(gp.node_size());
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node n;
    n.index = i;
    n.name = np.name();
    n.op_type = np.op_type();
    n.domain = canonical_domain(np.domain());
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    if (n.op_type.empty()) return lc.error("node #" + std::to_string(i) + " has no op_type");
    auto it = opsets.find(n.domain);
    if (it == opsets.end())
      return lc.error(n.label() + " uses domain '" + np.domain() + "', which the model does not import");
    n.opset = it->second;
    for (const auto& ap : np.attribute()) {
      auto a = convert_attribute(lc, ap, n, opsets);
      if (!a) return a.status();
      n.attrs[ap.name()] = std::move(a).value();
    }
    g->nodes.push_back(std::move(n));
  }
  return g;
}

// Checks that every node input is defined in scope, that no value has two producers, and that
// the graph has no cycle. `outer` holds the names visible from enclosing graphs; `lc.where`
// names the subgraph ("[If 'if'] attribute 'then_branch': ") for nested graphs.
Status validate_graph(const LoadContext& lc, const Graph& g, const std::set<std::string>& outer) {
  std::set<std::string> defined = outer;
  std::map<std::string, int> producer;
  for (const auto& [name, t] : g.initializers) defined.insert(name);
  for (const auto& vi : g.inputs) defined.insert(vi.name);
  for (const Node& n : g.nodes)
    for (const std::string& o : n.outputs) {
      if (o.empty()) continue;
      auto it = producer.find(o);
      if (it != producer.end())
        return lc.error(n.label() + " output '" + o + "' is also produced by " + g.nodes[it->second].label());
      producer[o] = n.index;
    }
  // Every input must be defined; subgraph reads are checked by the subgraph's own pass below.
  for (const Node& n : g.nodes)
    for (const std::string& in : n.inputs)
      if (!in.empty() && !producer.count(in) && !defined.count(in))
        return lc.error(n.label() + " input '" + in +
                        "' is not a graph input, an initializer or the output of any node");
  if (auto order = topological_order(g); !order.is_ok()) return lc.error(order.status().message());
  for (const auto& vi : g.outputs)
    if (!producer.count(vi.name) && !defined.count(vi.name))
      return lc.error("graph output '" + vi.name + "' is not produced by any node");
  // Recurse into subgraphs with everything visible at this level.
  std::set<std::string> visible = defined;
  for (const auto& [name, idx] : producer) visible.insert(name);
  for (const Node& n : g.nodes)
    for (const auto& [key, a] : n.attrs) {
      LoadContext sub_lc = lc;
      sub_lc.where = lc.where + n.label() + " attribute '" + key + "': ";
      if (a.g) TANDEM_RETURN_IF_ERROR(validate_graph(sub_lc, *a.g, visible));
      for (const auto& sub : a.graphs) TANDEM_RETURN_IF_ERROR(validate_graph(sub_lc, *sub, visible));
    }
  return Status::ok();
}

std::string display_name_of(const fs::path& path) { return path.filename().string(); }

}  // namespace

Result<Model> load_model_from_bytes(std::string_view bytes, const fs::path& base_dir, const std::string& display_name) {
  LoadContext lc{display_name, base_dir, {}};
  onnx::ModelProto mp;
  if (bytes.empty()) return lc.error("file is empty, not an ONNX model");
  if (bytes.size() > static_cast<size_t>(INT32_MAX))
    return lc.error("file is larger than 2 GiB; store the weights as external data");
  if (!mp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return lc.error("not a valid ONNX model (protobuf parsing failed: truncated or corrupt file?)");
  if (!mp.has_graph()) return lc.error("the model has no graph");
  Model m;
  m.ir_version = mp.ir_version();
  m.producer_name = mp.producer_name();
  m.producer_version = mp.producer_version();
  for (const auto& op : mp.opset_import()) m.opsets[canonical_domain(op.domain())] = op.version();
  // IR version 2 models predate opset_import and mean ai.onnx version 1.
  if (m.opsets.empty()) m.opsets[""] = 1;
  for (const auto& p : mp.metadata_props()) m.metadata[p.key()] = p.value();
  auto g = convert_graph(lc, mp.graph(), m.opsets);
  if (!g) return g.status();
  m.graph = std::move(g).value();
  TANDEM_RETURN_IF_ERROR(validate_graph(lc, *m.graph, {}));
  return m;
}

Result<Model> load_model(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return invalid_argument(path.string() + ": is a directory, not an ONNX model file");
  TANDEM_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  fs::path base = path.parent_path();
  if (base.empty()) base = ".";
  auto m = load_model_from_bytes(bytes, base, display_name_of(path));
  if (!m) return m.status();
  m->path = path;
  return m;
}

Result<Tensor> load_tensor_pb(const fs::path& path) {
  TANDEM_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  onnx::TensorProto tp;
  LoadContext lc{display_name_of(path), path.parent_path(), {}};
  if (!tp.ParseFromString(bytes)) return lc.error("not a serialized onnx TensorProto");
  return convert_tensor(lc, tp);
}

namespace {

Result<Value> convert_sequence(const LoadContext& lc, const onnx::SequenceProto& sp) {
  std::vector<Tensor> items;
  for (const auto& tp : sp.tensor_values()) {
    auto t = convert_tensor(lc, tp);
    if (!t) return t.status();
    items.push_back(std::move(t).value());
  }
  if (sp.sequence_values_size() > 0 || sp.map_values_size() > 0 || sp.optional_values_size() > 0)
    return lc.error("sequences of sequences, maps or optionals are not supported");
  return Value::of_sequence(std::move(items), DataType::undefined);
}

}  // namespace

Result<Value> load_value_pb(const fs::path& path, const TypeInfo& type) {
  LoadContext lc{display_name_of(path), path.parent_path(), {}};
  TANDEM_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  if (type.kind == TypeInfo::Kind::sequence) {
    onnx::SequenceProto sp;
    if (!sp.ParseFromString(bytes)) return lc.error("not a serialized onnx SequenceProto");
    auto v = convert_sequence(lc, sp);
    if (v && type.inner) v->sequence_dtype = type.inner->elem;
    return v;
  }
  if (type.kind == TypeInfo::Kind::optional) {
    onnx::OptionalProto op;
    if (!op.ParseFromString(bytes)) return lc.error("not a serialized onnx OptionalProto");
    if (op.has_tensor_value()) {
      auto t = convert_tensor(lc, op.tensor_value());
      if (!t) return t.status();
      return Value::of(std::move(t).value());
    }
    if (op.has_sequence_value()) return convert_sequence(lc, op.sequence_value());
    return Value{};
  }
  onnx::TensorProto tp;
  if (!tp.ParseFromString(bytes)) return lc.error("not a serialized onnx TensorProto");
  auto t = convert_tensor(lc, tp);
  if (!t) return t.status();
  // ONNX 1.12's test data stores bfloat16 tensors as uint16 bit patterns.
  if (type.kind == TypeInfo::Kind::tensor && type.elem == DataType::bfloat16 && t->dtype() == DataType::uint16) {
    Tensor bf(DataType::bfloat16, t->shape());
    std::memcpy(bf.raw_data(), t->raw_data(), t->nbytes());
    return Value::of(std::move(bf));
  }
  return Value::of(std::move(t).value());
}

Result<std::string> serialize_tensor_pb(const Tensor& t, const std::string& name) {
  onnx::TensorProto tp;
  tp.set_name(name);
  tp.set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) tp.add_dims(d);
  if (t.dtype() == DataType::string) {
    for (int64_t i = 0; i < t.numel(); ++i) tp.add_string_data(t.data<std::string>()[i]);
  } else {
    tp.set_raw_data(std::string(static_cast<const char*>(t.raw_data()), t.nbytes()));
  }
  std::string out;
  if (!tp.SerializeToString(&out)) return internal_error("could not serialize tensor '" + name + "'");
  return out;
}

}  // namespace tandem
