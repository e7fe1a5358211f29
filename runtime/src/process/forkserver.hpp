// The forkserver zygote: a process forked from the root while it has one
// thread, which forks every forkserver child on request. Internal.
//
// Protocol over a SOCK_STREAM socketpair, one request at a time:
//   root -> zygote: u64 length, the child_payload bytes; attached (SCM_RIGHTS)
//                   the root's current stdin, stdout, stderr and the write end
//                   of a status pipe for this child.
//   zygote -> root: i32 pid (or -errno); attached a pidfd of the child.
// The zygote reaps its children and writes each one's wait status (i32) to
// its status pipe, then closes it. When the root closes the socket the
// zygote waits for its remaining children, then exits. Its children have no
// PDEATHSIG: a killed zygote leaves them running (as Python's forkserver
// does), and the root, which holds their pidfds, joins them with exit code
// 255. When the root dies, the zygote's PDEATHSIG (SIGUSR1, caught) makes it
// SIGKILL its children first.
#pragma once

#include <sys/types.h>

#include <mutex>

#include "isola/codec.hpp"
#include "sys/os.hpp"

namespace isola::detail {

class forkserver {
 public:
  struct launched {
    pid_t pid;
    unique_fd pidfd;
    unique_fd status;
  };

  /// Forks the zygote. Must be called while the process has one thread.
  forkserver();
  ~forkserver();

  /// Sends one payload; returns the child. Throws process_error if the
  /// zygote is gone.
  launched launch(const bytes& payload, const std::vector<int>& handle_fds);

  bool alive() const;
  pid_t pid() const noexcept { return pid_; }
  /// In a fork child: let go of our copy without touching the zygote.
  void abandon(bool close_fds) noexcept;

 private:
  pid_t pid_ = 0;
  unique_fd pidfd_;
  unique_fd sock_;
};

void forget_forkserver_after_fork(bool close_fds);

}  // namespace isola::detail
