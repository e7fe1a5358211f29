// The control channel between the root and one actor process: a
// SOCK_SEQPACKET socketpair. The actor asks, the root answers (with the
// mailbox and pidfd of a peer as SCM_RIGHTS descriptors for a lookup); the
// root never writes first, so the actor's synchronous calls never meet a
// stray message. Notices from the root (down, exit_signal) go to the mailbox.
#pragma once

#include <cstdint>
#include <string>

#include "isola/exit_reason.hpp"
#include "isola/type_name.hpp"

namespace isola::detail {

struct ctl_request {
  enum class op : std::uint8_t { lookup = 1, reason, monitor, link, unlink, trap_exit, exiting, started };
  op what = op::lookup;
  std::uint64_t id = 0;   // the actor asked about / linked / monitored
  std::uint64_t ref = 0;  // monitor: the ref for the down notice
  bool flag = false;      // trap_exit
  exit_reason said;       // exiting: why
  template <class Archive>
  void serialize(Archive& ar) {
    ar(what, id, ref, flag, said);
  }
};

struct ctl_reply {
  enum class status : std::uint8_t { ok = 0, dead, unknown, pending };
  status st = status::ok;
  int pid = 0;
  bool process = true;  // false for a root thread's inbox (no pidfd attached)
  exit_reason reason;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(st, pid, process, reason);
  }
};

}  // namespace isola::detail

ISOLA_TYPE_NAME(isola::detail::ctl_request, "isola.ctl_request")
ISOLA_TYPE_NAME(isola::detail::ctl_reply, "isola.ctl_reply")
