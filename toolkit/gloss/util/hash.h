#pragma once
// Fingerprints: 64-bit FNV-1a over bytes, written as 16 hex digits. Used for run stamps,
// reports and the names of reusable subword models; not for security.
#include <cstdint>
#include <string>
#include <string_view>

namespace gloss {

inline constexpr std::uint64_t kFnvOffset = 14695981039346656037ull;  // FNV-1a's offset basis
// What fingerprint() starts from: a digit short of kFnvOffset since gloss run's first stamps,
// kept so that existing run folders stay up to date.
inline constexpr std::uint64_t kStampSeed = 1469598103934665603ull;

// Continues hash h over `bytes`.
inline std::uint64_t fnv1a(std::uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}
std::string hex16(std::uint64_t h);
// fnv1a of the bytes (from kStampSeed) as hex.
std::string fingerprint(std::string_view bytes);
// fnv1a of a file's content (from kStampSeed) as hex, read in chunks ("-" for an empty path; an unreadable
// file hashes as empty).
std::string file_fingerprint(const std::string& path);

}  // namespace gloss
