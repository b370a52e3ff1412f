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

const Parameter& ParameterSet::get(const std::string& name) const { return const_cast<ParameterSet*>(this)->get(name); }

bool ParameterSet::contains(const std::string& name) const {
  for (const auto& p : params_)
    if (p->name == name) return true;
  return false;
}

void ParameterSet::zero_grad() {
  for (auto& p : params_) p->grad.zero();
}

void ParameterSet::share_values_of(ParameterSet& master) {
  if (master.params_.size() != params_.size()) throw std::logic_error("replica and master models differ in parameters");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& mine = *params_[i];
    Parameter& theirs = *master.params_[i];
    if (mine.name != theirs.name || mine.value.shape() != theirs.value.shape())
      throw std::logic_error("replica parameter '" + mine.name + "' differs from the master's");
    mine.value = Tensor::view(theirs.value.data(), theirs.value.shape());
  }
  follows_ = &master;
}

void ParameterSet::release_grads() {
  for (auto& p : params_) p->grad = Tensor();
}

std::int64_t ParameterSet::num_values() const {
  std::int64_t n = 0;
  for (const auto& p : params_) n += p->value.size();
  return n;
}

}  // namespace gloss::nn
