// tandem/tensor.h: dense tensors, the unit of data every backend exchanges.
//
// A Tensor is a dtype, a shape and a reference-counted host buffer. Copying a Tensor is cheap
// and shares the buffer (like a shared_ptr); use clone() for a deep copy. Element storage is
// dense, row-major (C order). Strings are stored as std::string elements.
// Thread-safety: concurrent reads of one buffer are safe; writes need external ordering.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// Numbering matches onnx.TensorProto.DataType so values can be cast across.
enum class DataType : int32_t {
  undefined = 0,
  float32 = 1,
  uint8 = 2,
  int8 = 3,
  uint16 = 4,
  int16 = 5,
  int32 = 6,
  int64 = 7,
  string = 8,
  boolean = 9,
  float16 = 10,
  float64 = 11,
  uint32 = 12,
  uint64 = 13,
  complex64 = 14,
  complex128 = 15,
  bfloat16 = 16,
};

// Lowercase name as printed by the CLI ("float32", "int64", ...).
std::string_view dtype_name(DataType t);
// Size of one element in bytes; 0 for string and undefined.
size_t dtype_size(DataType t);
bool is_float_type(DataType t);    // float16, bfloat16, float32, float64
bool is_integer_type(DataType t);  // signed or unsigned integers, not bool
bool is_signed_integer_type(DataType t);

// IEEE half precision, stored as its bit pattern.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(float f);
  operator float() const;  // NOLINT: implicit widening is exact
};
// bfloat16 (the top 16 bits of a float32), stored as its bit pattern. Rounds to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f);
  operator float() const;  // NOLINT: implicit widening is exact
};

using Shape = std::vector<int64_t>;
// Product of dims (1 for a scalar); INT64_MAX when the product overflows.
int64_t shape_numel(const Shape& shape);
// "1x3x640x640", or "scalar" for rank 0.
std::string shape_to_string(const Shape& shape);

// Maps a C++ element type to its DataType.
template <class T> constexpr DataType dtype_of();
template <> constexpr DataType dtype_of<float>() { return DataType::float32; }
template <> constexpr DataType dtype_of<double>() { return DataType::float64; }
template <> constexpr DataType dtype_of<uint8_t>() { return DataType::uint8; }
template <> constexpr DataType dtype_of<int8_t>() { return DataType::int8; }
template <> constexpr DataType dtype_of<uint16_t>() { return DataType::uint16; }
template <> constexpr DataType dtype_of<int16_t>() { return DataType::int16; }
template <> constexpr DataType dtype_of<int32_t>() { return DataType::int32; }
template <> constexpr DataType dtype_of<int64_t>() { return DataType::int64; }
template <> constexpr DataType dtype_of<uint32_t>() { return DataType::uint32; }
template <> constexpr DataType dtype_of<uint64_t>() { return DataType::uint64; }
template <> constexpr DataType dtype_of<bool>() { return DataType::boolean; }
template <> constexpr DataType dtype_of<std::string>() { return DataType::string; }
template <> constexpr DataType dtype_of<Float16>() { return DataType::float16; }
template <> constexpr DataType dtype_of<BFloat16>() { return DataType::bfloat16; }
template <> constexpr DataType dtype_of<std::complex<float>>() { return DataType::complex64; }
template <> constexpr DataType dtype_of<std::complex<double>>() { return DataType::complex128; }

class Tensor {
 public:
  Tensor() = default;  // undefined dtype, no storage

  // A new zero-filled (strings: empty) tensor that owns its buffer.
  Tensor(DataType dtype, Shape shape);
  // The same without the zero fill, for a caller that writes every element before anything
  // reads one (a decoder copying a request's bytes in). Strings start empty as above.
  static Tensor uninitialized(DataType dtype, Shape shape);
  // A new tensor holding a copy of `values`.
  template <class T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values) {
    Tensor t(dtype_of<T>(), std::move(shape));
    T* out = t.data<T>();
    for (size_t i = 0; i < values.size() && static_cast<int64_t>(i) < t.numel(); ++i) out[i] = values[i];
    return t;
  }
  template <class T>
  static Tensor scalar(T value) { return from_vector<T>({}, {value}); }
  // A tensor over memory the caller owns, shared through `buffer` (its deleter runs when the
  // last tensor sharing it is gone): nothing is copied. `buffer` must point at numel * size
  // bytes of a fixed-size dtype (not string), aligned for it, and stay unchanged while any
  // tensor reads it. Used to take an application's arrays (numpy, ...) without a copy.
  static Tensor adopt(DataType dtype, Shape shape, std::shared_ptr<void> buffer) {
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = std::move(shape);
    t.numel_ = shape_numel(t.shape_) < 0 ? 0 : shape_numel(t.shape_);
    t.storage_ = std::move(buffer);
    return t;
  }

  bool defined() const { return dtype_ != DataType::undefined; }
  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  // Typed element access. T must match dtype() (not checked here; callers dispatch on dtype()).
  template <class T> T* data() { return static_cast<T*>(storage_.get()); }
  template <class T> const T* data() const { return static_cast<const T*>(storage_.get()); }
  void* raw_data() { return storage_.get(); }
  const void* raw_data() const { return storage_.get(); }

  // True when no other Tensor shares this one's buffer, so writing to it is seen by nobody else.
  // Backends use it to write outputs into tensors the caller hands back for reuse.
  bool buffer_unshared() const { return storage_ && storage_.use_count() == 1; }

  // Same buffer, new shape with the same element count (the caller checks the count).
  Tensor reshaped(Shape shape) const;
  // Deep copy into a new buffer.
  Tensor clone() const;

 private:
  Tensor(DataType dtype, Shape shape, bool zeroed);
  DataType dtype_ = DataType::undefined;
  Shape shape_;
  int64_t numel_ = 0;
  std::shared_ptr<void> storage_;
};

}  // namespace tandem
