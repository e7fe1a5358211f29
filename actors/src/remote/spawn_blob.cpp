// Spawning on another node: the wire form of a spawn request (a spawn_blob:
// the entry point, the function, the options and the encoded arguments), and
// the set of entry points this program registered at start-up.
//
// What another process sees: a spawn request it sends runs only an entry
// point this program registered (a corrupt or forged request is a
// value_error, never a jump to an arbitrary address); fork is refused as a
// start method for actors.
#include <cstdint>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_set>

#include "core/mailbox.hpp"
#include "isola/node.hpp"

namespace isola {
namespace detail {

namespace {
struct spawn_entries {
  std::mutex m;
  std::unordered_set<const void*> known;
};
spawn_entries& entries() {
  static spawn_entries e;  // registered into during static initialisation
  return e;
}
}  // namespace

bool register_spawn_entry(remote_spawn_fn e) noexcept {
  try {
    auto& r = entries();
    std::lock_guard lk(r.m);
    r.known.insert(reinterpret_cast<const void*>(e));
  } catch (...) {}
  return true;
}

bool known_spawn_entry(const void* e) noexcept {
  auto& r = entries();
  std::lock_guard lk(r.m);
  return r.known.count(e) != 0;
}

bytes spawn_blob(const spawn_options& o, function_address entry, function_address fn, bytes args) {
  if (o.method && *o.method == start_method::fork)
    throw start_method_error("isola::spawn: actors never start with fork; use forkserver or spawn");
  std::int32_t method = o.method ? static_cast<std::int32_t>(*o.method) : -1;
  return encode(std::make_tuple(entry, fn, o.name, method, o.daemon,
                                static_cast<std::uint64_t>(o.mailbox_bytes), std::move(args)));
}

actor spawn_from_blob(std::span<const std::byte> blob) {
  function_address entry, fn;
  std::string name;
  std::int32_t method = -1;
  bool daemon = true;
  std::uint64_t mailbox = 0;
  bytes args;
  auto t = decode<std::tuple<function_address, function_address, std::string, std::int32_t, bool,
                             std::uint64_t, bytes>>(blob);
  std::tie(entry, fn, name, method, daemon, mailbox, args) = std::move(t);
  if (!entry.fn || !known_spawn_entry(entry.fn))
    throw value_error(
        "isola::spawn: the request names no spawn entry point of this program "
        "(corrupt, or from another build)");
  spawn_options o;
  o.name = std::move(name);
  if (method >= 0) o.method = static_cast<start_method>(method);
  o.daemon = daemon;
  if (mailbox) o.mailbox_bytes = static_cast<std::size_t>(mailbox);
  auto e = reinterpret_cast<remote_spawn_fn>(const_cast<void*>(entry.fn));
  return e(o, fn, args);
}

}  // namespace detail
}  // namespace isola
