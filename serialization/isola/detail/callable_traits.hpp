// isola/detail/callable_traits.hpp — what a callable takes and returns.
//
// Used where isola must know a target's parameter types without calling it:
// to pick a message handler by type, and to store process arguments as the
// types the target takes (so "Jam" becomes the std::string a target wants,
// and travels under spawn as one).
#pragma once

#include <tuple>
#include <type_traits>

namespace isola::detail {

template <class F, class = void>
struct callable_traits {
  static constexpr bool known = false;  // generic lambda or overloaded functor
};

template <class R, class... Ps>
struct callable_traits<R (*)(Ps...), void> {
  static constexpr bool known = true;
  using result_type = R;
  using args_tuple = std::tuple<Ps...>;
  static constexpr std::size_t arity = sizeof...(Ps);
};

template <class R, class... Ps>
struct callable_traits<R (*)(Ps...) noexcept, void> : callable_traits<R (*)(Ps...)> {};

template <class R, class... Ps>
struct callable_traits<R(Ps...), void> : callable_traits<R (*)(Ps...)> {};

template <class R, class... Ps>
struct callable_traits<R(Ps...) noexcept, void> : callable_traits<R (*)(Ps...)> {};

template <class C, class R, class... Ps>
struct callable_traits<R (C::*)(Ps...) const, void> : callable_traits<R (*)(Ps...)> {};

template <class C, class R, class... Ps>
struct callable_traits<R (C::*)(Ps...) const noexcept, void> : callable_traits<R (*)(Ps...)> {};

template <class C, class R, class... Ps>
struct callable_traits<R (C::*)(Ps...), void> : callable_traits<R (*)(Ps...)> {};

template <class C, class R, class... Ps>
struct callable_traits<R (C::*)(Ps...) noexcept, void> : callable_traits<R (*)(Ps...)> {};

// A functor with exactly one, non-template call operator.
template <class F>
struct callable_traits<F, std::void_t<decltype(&F::operator())>>
    : callable_traits<decltype(&F::operator())> {};

template <class F>
using callable_traits_t = callable_traits<std::remove_cvref_t<F>>;

}  // namespace isola::detail
