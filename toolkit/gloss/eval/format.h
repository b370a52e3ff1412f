#pragma once
// Number and string formatting with Python's exact conventions, for byte-identical output.
#include <string>
#include <string_view>

namespace gloss::eval {

// f"{value:.{precision}f}" (correctly rounded, like printf).
std::string format_fixed(double value, int precision);
// repr(value) of a Python float: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string python_float_repr(double value);
// json.dumps of a string, with or without ensure_ascii.
std::string json_string(std::string_view utf8, bool ensure_ascii);

}  // namespace gloss::eval
