// What the manager's client and server share: frame headers and the
// handshake's parameters. Internal; never installed.
//
// Handshake: sys/handshake.hpp's, with the magic "ISOLAMG1", the labels
// "isola-manager-client"/"isola-manager-server", and the client's program
// identity (32 bytes) as the extra bytes of its response; no confirmation.
// Before it ends nothing a peer sends is decoded; after it both sides talk
// frames (isola/detail/manager_wire.hpp).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "isola/detail/manager_types.hpp"
#include "isola/detail/manager_wire.hpp"
#include "sys/handshake.hpp"
#include "sys/net.hpp"

namespace isola::detail {

#pragma pack(push, 1)
struct request_header {
  std::uint32_t length;  // of everything after this field
  std::uint64_t id;
  std::uint8_t op;
  std::uint8_t pad1;
  std::uint16_t pad2;
  std::uint32_t alen;
  std::uint64_t object;
  std::int64_t timeout_ns;
};
struct reply_header {
  std::uint32_t length;
  std::uint64_t id;
  std::uint32_t status;
};
#pragma pack(pop)
static_assert(sizeof(request_header) == 36);
static_assert(sizeof(reply_header) == 16);

inline constexpr std::size_t max_frame_payload = (std::size_t{1} << 30) - 64;
/// A TCP listener of a manager started with manager_options::tls opens its
/// hello with another magic, so a client in the other mode sees the
/// disagreement at once; after it, TLS 1.3 keyed by the handshake
/// (sys/tls.hpp), then frames inside TLS.
inline const handshake::spec manager_handshake{{'I', 'S', 'O', 'L', 'A', 'M', 'G', '1'},
                                               "isola-manager-client",
                                               "isola-manager-server",
                                               32,
                                               false,
                                               {'I', 'S', 'O', 'L', 'A', 'M', 'G', 'T'}};
inline const handshake::spec manager_tls_handshake{{'I', 'S', 'O', 'L', 'A', 'M', 'G', 'T'},
                                                   "isola-manager-client",
                                                   "isola-manager-server",
                                                   32,
                                                   false,
                                                   {'I', 'S', 'O', 'L', 'A', 'M', 'G', '1'}};
inline const handshake::spec& manager_spec(bool tls) {
  return tls ? manager_tls_handshake : manager_handshake;
}
inline constexpr auto handshake_timeout = std::chrono::seconds(10);
/// Handshakes the manager lets wait at once: in all, and from one source
/// address (all local processes are one source). Beyond either, a new
/// connection is told busy and closed; its client tries again.
inline constexpr std::size_t max_pending_handshakes = 256;
inline constexpr std::size_t max_pending_per_source = 32;

inline const char* op_name(mgr_op op) {
  switch (op) {
    case mgr_op::create: return "create";
    case mgr_op::shutdown: return "shutdown";
    case mgr_op::serve: return "serve";
    case mgr_op::stats: return "stats";
    case mgr_op::dict_get: return "dict get";
    case mgr_op::dict_set: return "dict set";
    case mgr_op::dict_erase: return "dict erase";
    case mgr_op::dict_contains: return "dict contains";
    case mgr_op::dict_size: return "dict size";
    case mgr_op::dict_keys: return "dict keys";
    case mgr_op::dict_items: return "dict items";
    case mgr_op::dict_values: return "dict values";
    case mgr_op::dict_clear: return "dict clear";
    case mgr_op::dict_update: return "dict update";
    case mgr_op::list_append: return "list append";
    case mgr_op::list_get: return "list get";
    case mgr_op::list_set: return "list set";
    case mgr_op::list_size: return "list size";
    case mgr_op::list_pop: return "list pop";
    case mgr_op::list_items: return "list items";
    case mgr_op::list_clear: return "list clear";
    case mgr_op::queue_put: return "queue put";
    case mgr_op::queue_get: return "queue get";
    case mgr_op::queue_size: return "queue qsize";
    case mgr_op::queue_full: return "queue full";
    case mgr_op::lock_acquire: return "lock acquire";
    case mgr_op::lock_release: return "lock release";
    case mgr_op::event_set: return "event set";
    case mgr_op::event_clear: return "event clear";
    case mgr_op::event_is_set: return "event is_set";
    case mgr_op::event_wait: return "event wait";
    case mgr_op::value_load: return "value load";
    case mgr_op::value_store: return "value store";
    case mgr_op::value_update: return "value update";
    case mgr_op::semaphore_acquire: return "semaphore acquire";
    case mgr_op::semaphore_release: return "semaphore release";
    case mgr_op::semaphore_value: return "semaphore value";
    case mgr_op::rlock_acquire: return "rlock acquire";
    case mgr_op::rlock_release: return "rlock release";
    case mgr_op::queue_task_done: return "queue task_done";
    case mgr_op::queue_join: return "queue join";
    case mgr_op::condition_acquire: return "condition acquire";
    case mgr_op::condition_release: return "condition release";
    case mgr_op::condition_wait: return "condition wait";
    case mgr_op::condition_notify: return "condition notify";
    case mgr_op::condition_locked: return "condition locked";
    case mgr_op::barrier_wait: return "barrier wait";
    case mgr_op::barrier_reset: return "barrier reset";
    case mgr_op::barrier_abort: return "barrier abort";
    case mgr_op::barrier_state: return "barrier state";
    case mgr_op::object_call: return "registered type's method call";
  }
  return "a request";
}

namespace mgr {
/// In the manager process, before it serves: the user types its starting
/// process registered (managed_user.cpp), each reference checked.
void install_user_types(const std::vector<mgr_type_entry>& entries);
}  // namespace mgr

/// The manager process's entry point (runtime/src/manager/server.cpp).
/// owner_pid: the process that started it; only its local connections may
/// serve or shut the manager down. tls: its TCP listeners (serve) use TLS.
int run_manager_server(int listen_fd, std::string authkey, std::size_t max_message_size,
                       int owner_pid, bool tls);

}  // namespace isola::detail
