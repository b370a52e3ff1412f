#include "gloss/eval/metric.h"

namespace gloss::eval {

void Signature::set(const std::string& name, const std::string& short_name, const std::string& value) {
  for (auto& f : fields_) {
    if (f.name == name) {
      f.value = value;
      return;
    }
  }
  fields_.push_back({name, short_name, value});
}

std::string Signature::format(bool short_form) const {
  // sacreBLEU's global fields come first, in this order, whenever they are set.
  static const char* const kGlobal[] = {"nrefs", "bs", "ar", "seed", "test", "lang", "origlang", "subset"};
  std::string out;
  auto append = [&](const SignatureField& f) {
    if (!out.empty()) out += '|';
    out += (short_form ? f.short_name : f.name) + ":" + f.value;
  };
  for (const char* name : kGlobal)
    for (const auto& f : fields_)
      if (f.name == name) append(f);
  for (const auto& f : fields_) {
    bool global = f.name == "version";
    for (const char* name : kGlobal) global = global || f.name == name;
    if (!global) append(f);
  }
  if (!out.empty()) out += '|';
  out += std::string(short_form ? "v" : "version") + ":" + kVersion;
  return out;
}

std::string nrefs_value(int nrefs) { return nrefs < 0 ? "var" : std::to_string(nrefs); }

Stats sum_stats(const std::vector<Stats>& per_segment, std::size_t width) {
  Stats total(width, 0.0);
  for (const auto& s : per_segment)
    for (std::size_t i = 0; i < width; ++i) total[i] += s[i];
  return total;
}

}  // namespace gloss::eval
