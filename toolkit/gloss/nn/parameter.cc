#include "gloss/nn/parameter.h"

#include <stdexcept>

namespace gloss::nn {

Parameter& ParameterSet::add(const std::string& name, std::vector<std::int64_t> shape) {
  if (contains(name)) throw std::logic_error("parameter '" + name + "' registered twice");
  auto p = std::make_unique<Parameter>();
  p->name = name;
  p->value = Tensor(shape);
  p->grad = Tensor(shape);
  params_.push_back(std::move(p));
  ++version_;
  return *params_.back();
}

Parameter& ParameterSet::get(const std::string& name) {
  for (auto& p : params_)
    if (p->name == name) return *p;
  throw std::logic_error("no parameter '" + name + "'");
}

const Parameter& ParameterSet::get(const std::string& name) const {
  return const_cast<ParameterSet*>(this)->get(name);
}

bool ParameterSet::contains(const std::string& name) const {
  for (const auto& p : params_)
    if (p->name == name) return true;
  return false;
}

void ParameterSet::zero_grad() {
  for (auto& p : params_) p->grad.zero();
}

std::int64_t ParameterSet::num_values() const {
  std::int64_t n = 0;
  for (const auto& p : params_) n += p->value.size();
  return n;
}

}  // namespace gloss::nn
