#include "tandem/tensor.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

namespace tandem {

std::string_view dtype_name(DataType t) {
  switch (t) {
    case DataType::float32: return "float32";
    case DataType::uint8: return "uint8";
    case DataType::int8: return "int8";
    case DataType::uint16: return "uint16";
    case DataType::int16: return "int16";
    case DataType::int32: return "int32";
    case DataType::int64: return "int64";
    case DataType::string: return "string";
    case DataType::boolean: return "bool";
    case DataType::float16: return "float16";
    case DataType::float64: return "float64";
    case DataType::uint32: return "uint32";
    case DataType::uint64: return "uint64";
    case DataType::complex64: return "complex64";
    case DataType::complex128: return "complex128";
    case DataType::bfloat16: return "bfloat16";
    case DataType::undefined: break;
  }
  return "undefined";
}

size_t dtype_size(DataType t) {
  switch (t) {
    case DataType::uint8: case DataType::int8: case DataType::boolean: return 1;
    case DataType::uint16: case DataType::int16: case DataType::float16: case DataType::bfloat16: return 2;
    case DataType::float32: case DataType::int32: case DataType::uint32: return 4;
    case DataType::float64: case DataType::int64: case DataType::uint64: case DataType::complex64: return 8;
    case DataType::complex128: return 16;
    case DataType::string: case DataType::undefined: break;
  }
  return 0;
}

bool is_float_type(DataType t) {
  return t == DataType::float32 || t == DataType::float64 || t == DataType::float16 || t == DataType::bfloat16;
}
bool is_signed_integer_type(DataType t) {
  return t == DataType::int8 || t == DataType::int16 || t == DataType::int32 || t == DataType::int64;
}
bool is_integer_type(DataType t) {
  return is_signed_integer_type(t) || t == DataType::uint8 || t == DataType::uint16 || t == DataType::uint32 ||
         t == DataType::uint64;
}

Float16::Float16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mag = x & 0x7fffffffu;
  if (mag > 0x7f800000u) {  // NaN
    bits = static_cast<uint16_t>(sign | 0x7e00u);
    return;
  }
  if (mag >= 0x477ff000u) {  // rounds to or beyond 65520: infinity
    bits = static_cast<uint16_t>(sign | 0x7c00u);
    return;
  }
  if (mag < 0x38800000u) {  // subnormal or zero in half precision
    float a = std::bit_cast<float>(mag);
    // Scale so that the half subnormal unit (2^-24) becomes 1, then round to nearest even.
    float scaled = a * 16777216.0f;
    uint32_t q = static_cast<uint32_t>(scaled);
    float rem = scaled - static_cast<float>(q);
    if (rem > 0.5f || (rem == 0.5f && (q & 1u))) ++q;
    bits = static_cast<uint16_t>(sign | q);
    return;
  }
  uint32_t exp = ((mag >> 23) - 127 + 15) << 10;
  uint32_t mant = mag & 0x7fffffu;
  uint32_t h = exp | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  bits = static_cast<uint16_t>(sign | h);
}

Float16::operator float() const {
  uint32_t sign = (bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
  if (exp == 0) {
    float v = static_cast<float>(mant) / 16777216.0f;  // mant * 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

BFloat16::BFloat16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    bits = static_cast<uint16_t>((x >> 16) | 0x40u);
    return;
  }
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  bits = static_cast<uint16_t>(x >> 16);
}

BFloat16::operator float() const { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    // Saturate instead of overflowing: callers compare against limits and reject.
    if (__builtin_mul_overflow(n, d, &n)) return INT64_MAX;
  }
  return n;
}

std::string shape_to_string(const Shape& shape) {
  if (shape.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(shape[i]);
  }
  return s;
}

Tensor::Tensor(DataType dtype, Shape shape) : Tensor(dtype, std::move(shape), /*zeroed=*/true) {}

Tensor Tensor::uninitialized(DataType dtype, Shape shape) { return Tensor(dtype, std::move(shape), /*zeroed=*/false); }

Tensor::Tensor(DataType dtype, Shape shape, bool zeroed) : dtype_(dtype), shape_(std::move(shape)) {
  numel_ = shape_numel(shape_);
  if (numel_ < 0) numel_ = 0;
  if (dtype_ == DataType::string) {
    auto arr = std::shared_ptr<std::string[]>(new std::string[static_cast<size_t>(numel_ > 0 ? numel_ : 1)]);
    storage_ = std::shared_ptr<void>(arr, arr.get());
  } else {
    // Cache-line aligned, whatever the size: vectorized kernels that peel unaligned heads would
    // otherwise sum in a different order (and differ in the last bit) depending on where the
    // allocator happened to put a request's buffer.
    constexpr std::align_val_t kAlignment{64};
    const size_t bytes = std::max<size_t>(nbytes(), 1);
    auto* data = static_cast<std::byte*>(::operator new[](bytes, kAlignment));
    if (zeroed) std::memset(data, 0, bytes);
    storage_ = std::shared_ptr<void>(data, [](void* p) { ::operator delete[](p, kAlignment); });
  }
}

Tensor Tensor::reshaped(Shape shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t = uninitialized(dtype_, shape_);
  if (dtype_ == DataType::string) {
    for (int64_t i = 0; i < numel_; ++i) t.data<std::string>()[i] = data<std::string>()[i];
  } else if (nbytes() > 0) {
    std::memcpy(t.raw_data(), raw_data(), nbytes());
  }
  return t;
}

}  // namespace tandem
