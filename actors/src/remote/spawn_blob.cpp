// Spawning on another node or for an actor process: the wire form of a spawn
// request (a spawn_blob: the entry point, the function, the options and the
// encoded arguments).
//
// What another process sees: a spawn request it sends runs only an entry
// point and a make_behavior registered in this process
// (isola/detail/function_registry.hpp), with options checked one by one (a
// corrupt or forged request is a value_error, never a jump to an arbitrary
// address, never a child without a pidfd); fork is refused as a start method
// for actors.
#include <cstdint>
#include <string>
#include <tuple>

#include "core/mailbox.hpp"
#include "isola/node.hpp"

namespace isola {
namespace detail {

namespace {
// What a spawn request may ask for: a mailbox is a shared-memory ring of at
// least one page; more than this is a request to exhaust /dev/shm.
constexpr std::uint64_t min_mailbox = 4096;
constexpr std::uint64_t max_mailbox = std::uint64_t{1} << 30;
constexpr std::size_t max_name = 256;

void check_name(const std::string& name) {
  if (name.size() > max_name)
    throw value_error("isola::spawn: the request's actor name is " + std::to_string(name.size()) +
                      " bytes long (at most " + std::to_string(max_name) + ")");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      throw value_error("isola::spawn: the request's actor name has a control character");
}
}  // namespace

bytes spawn_blob(const spawn_options& o, function_address entry, function_address fn, bytes args) {
  if (o.method && *o.method == start_method::fork)
    throw start_method_error("isola::spawn: actors never start with fork; use forkserver or spawn");
  // Not carried (yet): silently dropping it would start the actor unsandboxed.
  if (o.sandbox)
    throw value_error(
        "isola::spawn: a sandbox is applied only by the root's own spawns (not on another node, "
        "nor asked for from an actor process, whose children get its own sandbox)");
  std::int32_t method = o.method ? static_cast<std::int32_t>(*o.method) : -1;
  return encode(std::make_tuple(entry, fn, o.name, method, o.daemon,
                                static_cast<std::uint64_t>(o.mailbox_bytes), std::move(args)));
}

actor spawn_from_blob(std::span<const std::byte> blob, const std::optional<isola::sandbox>& imposed) {
  function_address entry, fn;
  std::string name;
  std::int32_t method = -1;
  bool daemon = true;
  std::uint64_t mailbox = 0;
  bytes args;
  auto t = decode<std::tuple<function_address, function_address, std::string, std::int32_t, bool,
                             std::uint64_t, bytes>>(blob);
  std::tie(entry, fn, name, method, daemon, mailbox, args) = std::move(t);
  // Field by field, before anything runs: the request comes from another
  // node or from an actor process, and either may be hostile or broken.
  auto e = entry.as<remote_spawn_fn>("isola::spawn: the request's entry point");
  if (method != -1 && method != static_cast<std::int32_t>(start_method::forkserver) &&
      method != static_cast<std::int32_t>(start_method::spawn))
    throw value_error("isola::spawn: the request's start method (" + std::to_string(method) +
                      ") is not forkserver or spawn");
  if (mailbox != 0 && (mailbox < min_mailbox || mailbox > max_mailbox))
    throw value_error("isola::spawn: the request's mailbox size (" + std::to_string(mailbox) +
                      " bytes) is outside 4 KiB .. 1 GiB");
  check_name(name);
  spawn_options o;
  o.name = std::move(name);
  if (method >= 0) o.method = static_cast<start_method>(method);
  o.daemon = daemon;
  if (mailbox) o.mailbox_bytes = static_cast<std::size_t>(mailbox);
  o.sandbox = imposed;
  return e(o, fn, args);
}

}  // namespace detail
}  // namespace isola
