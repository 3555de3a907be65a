#pragma once
// Element types as safetensors names them. Sizes are in bytes; sub-byte formats (NVFP4) are stored as U8.
#include <cstddef>
#include <string>

namespace flux2 {

enum class DType { BF16, F16, F32, F64, I8, I16, I32, I64, U8, BOOL, F8_E4M3, F8_E5M2 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);           // the safetensors spelling, e.g. "F8_E4M3"
bool parse_dtype(const std::string& name, DType* out);  // false for names safetensors does not define
bool is_float_dtype(DType dtype);               // BF16, F16, F32, F64 (not the F8 storage formats)

}  // namespace flux2
