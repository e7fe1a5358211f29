// isola/detail/launch.hpp — turning a target and its arguments into what each
// start method needs.
//
// fork runs the target from memory: any callable, any arguments. forkserver
// and spawn rebuild the call in another address space, so they need the
// target as *code* and the arguments as *bytes*: a function pointer (sent as
// module + offset) or a captureless lambda (default-constructed in the
// child), and a tuple of cereal-serializable arguments. A trampoline
// instantiated for the exact types decodes the tuple and makes the call.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "isola/detail/function_registry.hpp"

#include "isola/codec.hpp"
#include "isola/detail/callable_traits.hpp"
#include "isola/detail/handle_transfer.hpp"

namespace isola::detail {

/// Decodes arguments, calls the target, returns the exit code.
using trampoline_fn = int (*)(const void* target, std::span<const std::byte> args);

/// A call that can be rebuilt in another process of the same program.
struct portable_call {
  trampoline_fn trampoline = nullptr;
  const void* target = nullptr;  // function pointer, or null for functors
  bytes args;
};

struct launch_spec {
  std::function<int()> run;                      // the call, for fork
  std::function<std::vector<int>()> handle_fds;  // descriptors of handles in the arguments
  std::function<portable_call()> portable;       // empty when not portable
  std::string not_portable_reason;
  bool empty() const { return !run; }
};

template <class R>
constexpr int to_exit_code(R r) {
  if constexpr (std::is_integral_v<R>)
    return static_cast<int>(r);
  else
    return 0;
}

// How an argument is stored: as the parameter type without references, and a
// string literal as std::string so it can travel.
template <class A>
using stored_arg_t = std::conditional_t<std::is_same_v<std::decay_t<A>, const char*> ||
                                            std::is_same_v<std::decay_t<A>, char*>,
                                        std::string, std::decay_t<A>>;

template <class F, class Params, class... A>
struct args_of;

template <class F, class... Ps, class... A>
struct args_of<F, std::tuple<Ps...>, A...> {
  static_assert(sizeof...(Ps) == sizeof...(A),
                "isola::process: the number of arguments does not match the target's parameters");
  using type = std::tuple<stored_arg_t<Ps>...>;
  template <class Fn, class Tuple, std::size_t... I>
  static decltype(auto) call(Fn& f, Tuple& t, std::index_sequence<I...>) {
    return f(static_cast<Ps&&>(std::get<I>(t))...);
  }
};

template <class F, class... A>
struct stored_args {
  using traits = callable_traits_t<F>;
  static constexpr bool typed = [] {
    if constexpr (traits::known)
      return traits::arity == sizeof...(A);
    else
      return false;
  }();
  using type = typename decltype([] {
    if constexpr (typed)
      return std::type_identity<typename args_of<F, typename traits::args_tuple, A...>::type>{};
    else
      return std::type_identity<std::tuple<stored_arg_t<A>...>>{};
  }())::type;

  template <class Fn>
  static int invoke(Fn& f, type& t) {
    auto call = [&]() -> decltype(auto) {
      if constexpr (typed)
        return args_of<F, typename traits::args_tuple, A...>::call(
            f, t, std::make_index_sequence<sizeof...(A)>{});
      else
        return std::apply(f, t);
    };
    using R = decltype(call());
    if constexpr (std::is_void_v<R>) {
      call();
      return 0;
    } else {
      return to_exit_code(call());
    }
  }
};

template <class Fp, class... A>
int function_trampoline(const void* target, std::span<const std::byte> in) {
  using S = stored_args<Fp, A...>;
  auto args = decode<typename S::type>(in);
  auto f = reinterpret_cast<Fp>(
      const_cast<void*>(require_registered(target, fn_type_of<Fp>(), "a process target")));
  return S::invoke(f, args);
}

template <class L, class... A>
int functor_trampoline(const void*, std::span<const std::byte> in) {
  using S = stored_args<L, A...>;
  auto args = decode<typename S::type>(in);
  L f{};
  return S::invoke(f, args);
}

template <class F, class... A>
launch_spec make_launch_spec(F&& f, A&&... a) {
  using Fd = std::decay_t<F>;
  using S = stored_args<Fd, A...>;
  using tuple_t = typename S::type;
  auto args = std::make_shared<tuple_t>(std::forward<A>(a)...);
  launch_spec spec;
  Fd fn(std::forward<F>(f));

  constexpr bool is_fn_ptr = std::is_pointer_v<Fd> && std::is_function_v<std::remove_pointer_t<Fd>>;
  constexpr bool is_stateless =
      std::is_class_v<Fd> && std::is_empty_v<Fd> && std::is_default_constructible_v<Fd>;
  if constexpr (!is_fn_ptr && !is_stateless) {
    spec.not_portable_reason =
        "the target is a closure or functor that carries state, which forkserver and spawn "
        "cannot rebuild in the child; pass a function (or a captureless lambda) with the "
        "state as arguments, or use the fork start method";
  } else if constexpr (!is_serializable_v<tuple_t>) {
    spec.not_portable_reason =
        "an argument type is not cereal-serializable (or not default-constructible), so "
        "forkserver and spawn cannot send it to the child; give it a serialize() function, "
        "or use the fork start method";
  } else {
    trampoline_fn tr;
    const void* target = nullptr;
    if constexpr (is_fn_ptr) {
      (void)static_function_registered<&function_trampoline<Fd, A...>>;
      tr = &function_trampoline<Fd, A...>;
      // Registered in this process: the child this spec starts inherits it.
      register_function_address(reinterpret_cast<const void*>(fn), fn_type_of<Fd>(), nullptr,
                                true);
      target = reinterpret_cast<const void*>(fn);
    } else {
      (void)static_function_registered<&functor_trampoline<Fd, A...>>;
      tr = &functor_trampoline<Fd, A...>;
    }
    spec.portable = [tr, target, args] { return portable_call{tr, target, encode(*args)}; };
  }
  if constexpr (is_serializable_v<tuple_t>) {
    // Which handles the child is given: their save() reports their fds.
    spec.handle_fds = [args] {
      fd_export_scope collect(true);
      bytes scratch;
      encode_into(*args, scratch);
      return collect.fds();
    };
  }
  spec.run = [fn = std::move(fn), args]() mutable { return S::invoke(fn, *args); };
  return spec;
}

}  // namespace isola::detail
