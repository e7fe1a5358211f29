// The control channel between the root and one actor process: a
// SOCK_SEQPACKET socketpair. The actor asks, the root answers (with the
// mailbox and pidfd of a peer as SCM_RIGHTS descriptors for a lookup); the
// root never writes first, so the actor's synchronous calls never meet a
// stray message. Notices from the root (down, exit_signal) go to the mailbox.
//
// An actor process reaches actors of other nodes through the root, which
// holds the connections: op::remote carries the message, the root sends it
// on and puts the answer (a reply, an error reply, a down notice) into the
// actor's mailbox under the request's ref. No reply on this channel.
//
// op::spawn: an actor process starts an actor (as the root's own): the root
// spawns it on another thread and replies with its handle.
//
// op::function: an actor process asks whether the root registered a function
// (isola/detail/function_registry.hpp), for a reference that came in a
// message (a pool task); the root answers from its own registry.
#pragma once

#include <cstdint>
#include <string>

#include "isola/exit_reason.hpp"
#include "isola/type_name.hpp"

namespace isola::detail {

struct ctl_request {
  enum class op : std::uint8_t {
    lookup = 1,
    reason,
    monitor,
    link,
    unlink,
    trap_exit,
    exiting,
    started,
    remote,
    spawn,
    function  // payload: (module, offset); reply payload: the root's registered type or 0
  };
  /// op::remote: what to do with the actor of another node.
  enum class remote_op : std::uint8_t { send, stop, request, monitor, alive };
  op what = op::lookup;
  std::uint64_t id = 0;   // the actor asked about / linked / monitored
  std::uint64_t ref = 0;  // monitor, remote: the ref of the answer
  bool flag = false;      // trap_exit
  exit_reason said;       // exiting: why
  // op::remote
  remote_op rop = remote_op::send;
  std::uint64_t node = 0;        // the root's number for the connection
  std::uint64_t tag = 0;         // the message's type tag
  std::int64_t timeout_ns = -1;  // a request's time left; -1: none
  std::string payload;           // remote: encoded for that node (handles
                                 // translated); spawn: a spawn_blob
  template <class Archive>
  void serialize(Archive& ar) {
    ar(what, id, ref, flag, said, rop, node, tag, timeout_ns, payload);
  }
};

struct ctl_reply {
  enum class status : std::uint8_t { ok = 0, dead, unknown, pending, failed };
  status st = status::ok;
  int pid = 0;
  bool process = true;  // false for a root thread's inbox (no pidfd attached)
  exit_reason reason;
  std::string payload;  // spawn: the new actor (ok) or an error_info (failed)
  template <class Archive>
  void serialize(Archive& ar) {
    ar(st, pid, process, reason, payload);
  }
};

}  // namespace isola::detail

ISOLA_TYPE_NAME(isola::detail::ctl_request, "isola.ctl_request")
ISOLA_TYPE_NAME(isola::detail::ctl_reply, "isola.ctl_reply")
