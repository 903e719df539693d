#include "core/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

namespace tandem {

namespace {

struct DescrEntry {
  const char* descr;
  DataType dtype;
};
constexpr DescrEntry kDescrs[] = {
    {"<f4", DataType::float32}, {"<f8", DataType::float64}, {"<f2", DataType::float16}, {"|i1", DataType::int8},
    {"|u1", DataType::uint8},   {"<i2", DataType::int16},   {"<u2", DataType::uint16},  {"<i4", DataType::int32},
    {"<u4", DataType::uint32},  {"<i8", DataType::int64},   {"<u8", DataType::uint64},  {"|b1", DataType::boolean},
    {"<c8", DataType::complex64}, {"<c16", DataType::complex128},
};

// Value of `key` in the header dict, e.g. 'descr': '<f4' -> "<f4"; "" when absent.
std::string header_field(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) return "";
  size_t start = header.find_first_not_of(" ", colon + 1);
  if (start == std::string::npos) return "";
  if (header[start] == '\'') {
    size_t end = header.find('\'', start + 1);
    return end == std::string::npos ? "" : header.substr(start + 1, end - start - 1);
  }
  if (header[start] == '(') {
    size_t end = header.find(')', start);
    return end == std::string::npos ? "" : header.substr(start, end - start + 1);
  }
  size_t end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

// Text from the file, for a message: at most 40 bytes, control bytes as '?', so it stays one line.
std::string quoted(const std::string& s) {
  std::string out = s.substr(0, 40);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out + (s.size() > 40 ? "..." : "");
}

std::string trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

}  // namespace

Result<Tensor> parse_npy(const std::string& bytes, const std::string& name) {
  auto bad = [&](const std::string& why) { return invalid_argument(name + ": " + why); };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) return bad("not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    return bad("unsupported .npy version " + std::to_string(major));
  }
  if (offset + header_len > bytes.size()) return bad("truncated header");
  const std::string header = bytes.substr(offset, header_len);
  const std::string descr = header_field(header, "descr");
  const std::string fortran = trimmed(header_field(header, "fortran_order"));
  if (fortran == "True") return bad("Fortran-order arrays are not supported");
  if (!fortran.empty() && fortran != "False") return bad("bad fortran_order '" + quoted(fortran) + "' in header");
  DataType dtype = DataType::undefined;
  for (const auto& d : kDescrs) {
    const std::string known = d.descr;
    // '=' (native order) means little-endian on every machine tandem runs on.
    if (descr == known || (descr.size() >= 3 && descr[0] == '=' && known[0] == '<' && descr.substr(1) == known.substr(1)))
      dtype = d.dtype;
  }
  if (dtype == DataType::undefined) return bad("unsupported dtype '" + quoted(descr) + "'");
  const std::string shape_text = header_field(header, "shape");
  if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')') return bad("missing shape");
  Shape shape;
  std::stringstream ss(shape_text.substr(1, shape_text.size() - 2));
  std::string item;
  bool trailing_comma = false;
  while (std::getline(ss, item, ',')) {
    item = trimmed(item);
    if (item.empty()) {
      // Only "(3,)" style: one empty item after the last dimension.
      if (shape.empty() || trailing_comma) return bad("bad shape " + quoted(shape_text));
      trailing_comma = true;
      continue;
    }
    if (trailing_comma || item.size() > 15 || item.find_first_not_of("0123456789") != std::string::npos)
      return bad("bad shape " + quoted(shape_text));
    shape.push_back(std::stoll(item));
  }
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > (int64_t{1} << 40) / d) return bad("array is too large");
    numel *= d;
  }
  const size_t data_bytes = static_cast<size_t>(numel) * dtype_size(dtype);
  const size_t data_offset = offset + header_len;
  if (bytes.size() - data_offset < data_bytes)
    return bad("holds " + std::to_string(bytes.size() - data_offset) + " data bytes, expected " + std::to_string(data_bytes));
  Tensor t(dtype, shape);
  if (dtype == DataType::boolean) {
    // numpy writes 0 or 1; any other byte is taken as true (a bool object must hold 0 or 1).
    for (int64_t i = 0; i < numel; ++i) t.data<bool>()[i] = bytes[data_offset + static_cast<size_t>(i)] != 0;
  } else if (data_bytes) {
    std::memcpy(t.raw_data(), bytes.data() + data_offset, data_bytes);
  }
  return t;
}

Result<Tensor> read_npy(const std::filesystem::path& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (st.type() == std::filesystem::file_type::not_found) return invalid_argument(path.string() + ": no such file");
  if (st.type() == std::filesystem::file_type::directory)
    return invalid_argument(path.string() + ": is a directory, not a .npy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument(path.string() + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_npy(ss.str(), path.string());
}

Status write_npy(const std::filesystem::path& path, const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& d : kDescrs)
    if (d.dtype == t.dtype()) descr = d.descr;
  if (!descr) return unsupported(path.string() + ": dtype " + std::string(dtype_name(t.dtype())) + " cannot be written as .npy");
  std::string shape = "(";
  for (size_t i = 0; i < t.rank(); ++i) shape += std::to_string(t.dim(i)) + (t.rank() == 1 ? "," : i + 1 < t.rank() ? ", " : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) return invalid_argument(path.string() + ": cannot write file");
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out << header;
  out.write(static_cast<const char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
  if (!out) return invalid_argument(path.string() + ": write failed");
  return Status::ok();
}

}  // namespace tandem
