// isola/detail/pool_task.hpp — what a pool sends its workers, and the
// trampolines that turn encoded arguments into a call of the user's function
// in the worker process.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "isola/actor.hpp"
#include "isola/behavior.hpp"
#include "isola/codec.hpp"
#include "isola/detail/function_address.hpp"
#include "isola/type_name.hpp"

namespace isola::detail {

/// Runs the function at fn on the encoded arguments; returns the encoded result.
using task_trampoline = bytes (*)(const void* fn, std::span<const std::byte> args);

struct task_msg {
  std::uint64_t id = 0;
  function_address trampoline;
  function_address fn;
  bytes args;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, trampoline, fn, args);
  }
};

struct task_result {
  std::uint64_t id = 0;
  bool ok = false;
  bytes value;
  std::string type_name;  // of the exception, when !ok
  std::string what;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, ok, value, type_name, what);
  }
};

/// Tasks a worker runs in order; it sends one task_result per task to
/// reply_to as each finishes, so that the dispatcher knows which task a
/// worker that died was running (the first whose result did not come).
struct task_batch {
  actor reply_to;
  std::vector<task_msg> tasks;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(reply_to, tasks);
  }
};

/// The initializer a worker runs once before its first task.
struct worker_init {
  bool has = false;
  function_address trampoline;
  function_address fn;
  bytes args;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(has, trampoline, fn, args);
  }
};

template <class R>
using task_value_t = std::conditional_t<std::is_void_v<R>, unit, R>;

/// f(args...) for one task.
template <class Fp, class... A>
bytes call_trampoline(const void* fn, std::span<const std::byte> in) {
  auto f = reinterpret_cast<Fp>(
      const_cast<void*>(require_registered(fn, fn_type_of<Fp>(), "a pool task")));
  auto args = decode<std::tuple<A...>>(in);
  using R = decltype(std::apply(f, std::move(args)));
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(args));
    return encode(unit{});
  } else {
    return encode(std::apply(f, std::move(args)));
  }
}

/// f(x) for every x of a chunk (map).
template <class Fp, class A>
bytes map_trampoline(const void* fn, std::span<const std::byte> in) {
  auto f = reinterpret_cast<Fp>(
      const_cast<void*>(require_registered(fn, fn_type_of<Fp>(), "a pool task")));
  auto items = decode<std::vector<A>>(in);
  using R = task_value_t<decltype(f(std::move(items[0])))>;
  std::vector<R> out;
  out.reserve(items.size());
  for (auto& x : items) {
    if constexpr (std::is_void_v<decltype(f(std::move(x)))>) {
      f(std::move(x));
      out.push_back(unit{});
    } else {
      out.push_back(f(std::move(x)));
    }
  }
  return encode(out);
}

/// f(args...) for every tuple of a chunk (starmap).
template <class Fp, class Tuple>
bytes starmap_trampoline(const void* fn, std::span<const std::byte> in) {
  auto f = reinterpret_cast<Fp>(
      const_cast<void*>(require_registered(fn, fn_type_of<Fp>(), "a pool task")));
  auto items = decode<std::vector<Tuple>>(in);
  using R0 = decltype(std::apply(f, std::move(items[0])));
  std::vector<task_value_t<R0>> out;
  out.reserve(items.size());
  for (auto& t : items) {
    if constexpr (std::is_void_v<R0>) {
      std::apply(f, std::move(t));
      out.push_back(unit{});
    } else {
      out.push_back(std::apply(f, std::move(t)));
    }
  }
  return encode(out);
}

/// The behavior of a pool worker process.
behavior pool_worker(worker_init init);

}  // namespace isola::detail

ISOLA_TYPE_NAME(isola::detail::task_msg, "isola.task")
ISOLA_TYPE_NAME(isola::detail::task_result, "isola.task_result")
ISOLA_TYPE_NAME(isola::detail::task_batch, "isola.task_batch")
