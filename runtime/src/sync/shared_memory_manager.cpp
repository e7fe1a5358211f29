// shared_memory_manager: the owner talks to its tracker over a duplex pipe,
// one request at a time. Request: a u64 size (0: shut down). Reply: a code
// (0: the block's name follows; -1: value_error; > 0: an errno) and a text.
// The tracker creates each block itself and keeps it, so the names resolve
// through it (shared_memory.cpp) until it unlinks them.
#include "isola/shared_memory_manager.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <vector>

#include "isola/connection.hpp"
#include "isola/error.hpp"
#include "isola/process.hpp"
#include "process/registry.hpp"

namespace isola {

namespace detail {

namespace {

using reply = std::pair<std::int32_t, std::string>;

std::atomic<int> tracker_counter{0};

// Ends every name; the tracker's handles close with it.
void unlink_all(std::vector<shared_memory>& held) noexcept {
  for (auto& s : held) {
    try {
      s.unlink();
    } catch (...) {}  // unlinked already by someone: nothing left to end
    s.close();
  }
  held.clear();
}

}  // namespace

int shm_tracker_main(connection owner) {
  // A Ctrl-C aimed at the program's process group is not for us (Python's
  // SharedMemoryServer ignores SIGINT too); the owner says when to stop.
  ::signal(SIGINT, SIG_IGN);
  // Outlive a SIGKILLed owner long enough to end its blocks' names: we watch
  // it ourselves (EOF on the connection, or the parent's pidfd) instead of
  // dying with it. Before this line nothing has been created.
  ::prctl(PR_SET_PDEATHSIG, 0);
  auto parent = parent_process();
  const int parent_fd = parent ? parent->sentinel() : -1;
  std::vector<shared_memory> held;
  for (;;) {
    if (!owner.has_buffered_message()) {
      pollfd fds[2] = {{owner.fileno(), POLLIN, 0}, {parent_fd, POLLIN, 0}};
      int r = ::poll(fds, parent_fd >= 0 ? 2 : 1, -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        unlink_all(held);
        return 1;
      }
      // The owner ended (its last words, if any, are read first).
      if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && (fds[1].revents & POLLIN)) {
        unlink_all(held);
        return 0;
      }
    }
    std::uint64_t size = 0;
    try {
      size = owner.recv<std::uint64_t>();
    } catch (const eof_error&) {  // the owner ended without a shutdown
      unlink_all(held);
      return 0;
    } catch (const std::exception&) {
      unlink_all(held);
      return 1;
    }
    try {
      if (size == 0) {
        unlink_all(held);
        owner.send(reply{0, {}});
        return 0;
      }
      reply r;
      try {
        shared_memory s(static_cast<std::size_t>(size));
        r = {0, s.name()};
        held.push_back(std::move(s));
      } catch (const os_error& e) {
        r = {e.code() > 0 ? e.code() : EIO, e.what()};
      } catch (const std::exception& e) {
        r = {-1, e.what()};
      }
      owner.send(r);
    } catch (const std::exception&) {  // the owner is gone mid-request
      unlink_all(held);
      return 0;
    }
  }
}

}  // namespace detail

struct shared_memory_manager::state {
  shared_memory_manager_options opts;
  std::unique_ptr<process> tracker;
  connection conn;
  int owner = 0;
  bool shut_down = false;
  std::mutex m;
};

namespace {
constexpr std::chrono::seconds reply_deadline{10};
}

shared_memory_manager::shared_memory_manager()
    : shared_memory_manager(shared_memory_manager_options{}) {}

shared_memory_manager::shared_memory_manager(shared_memory_manager_options opts)
    : st_(std::make_unique<state>()) {
  st_->opts = std::move(opts);
}

shared_memory_manager::~shared_memory_manager() {
  try {
    shutdown();
  } catch (...) {}
}

shared_memory_manager::shared_memory_manager(shared_memory_manager&&) noexcept = default;

shared_memory_manager& shared_memory_manager::operator=(shared_memory_manager&& o) noexcept {
  if (this != &o) {
    try {
      shutdown();
    } catch (...) {}
    st_ = std::move(o.st_);
  }
  return *this;
}

void shared_memory_manager::start() {
  if (!st_) throw value_error("shared_memory_manager: this handle was moved from");
  std::lock_guard lk(st_->m);
  if (st_->shut_down) throw process_error("shared_memory_manager: the manager has shut down");
  if (st_->tracker) throw process_error("shared_memory_manager: already started");
  process_options po;
  po.name = st_->opts.name.empty()
                ? "shared-memory-manager-" + std::to_string(++detail::tracker_counter)
                : st_->opts.name;
  po.daemon = true;
  po.method = st_->opts.method;
  // The tracker must be our own child (it watches us as its parent) and must
  // not be forked in the middle of other threads (a lock one of them held
  // would stay locked in it): fork when alone, spawn otherwise.
  if (!po.method) po.method = detail::thread_count() > 1 ? start_method::spawn : start_method::fork;
  auto [mine, theirs] = pipe(true);
  auto p = std::make_unique<process>(std::move(po), &detail::shm_tracker_main, std::move(theirs));
  p->start();
  st_->tracker = std::move(p);
  st_->conn = std::move(mine);
  st_->owner = ::getpid();
}

void shared_memory_manager::shutdown() {
  if (!st_) return;
  std::lock_guard lk(st_->m);
  if (!st_->tracker || st_->shut_down || st_->owner != ::getpid()) return;
  st_->shut_down = true;
  try {
    st_->conn.send(std::uint64_t{0});
    if (st_->conn.poll(reply_deadline)) st_->conn.recv<std::pair<std::int32_t, std::string>>();
  } catch (const std::exception&) {}  // the tracker is gone: the names went with it
  st_->conn.close();
  // It has unlinked everything and ends now; a tracker that hangs is killed
  // (its names end with it).
  if (!st_->tracker->join(reply_deadline)) {
    st_->tracker->kill();
    st_->tracker->join(reply_deadline);
  }
}

::isola::shared_memory shared_memory_manager::shared_memory(std::size_t size) {
  if (size == 0)
    throw value_error("shared_memory_manager: size must be a positive number of bytes");
  if (!st_) throw value_error("shared_memory_manager: this handle was moved from");
  std::lock_guard lk(st_->m);
  if (!st_->tracker)
    throw value_error("shared_memory_manager: the manager has not been started (call start())");
  if (st_->shut_down) throw value_error("shared_memory_manager: the manager has shut down");
  if (st_->owner != ::getpid())
    throw value_error(
        "shared_memory_manager: only the process that started the manager may make blocks "
        "through it");
  const int pid = st_->tracker->pid();
  std::pair<std::int32_t, std::string> r;
  try {
    st_->conn.send(static_cast<std::uint64_t>(size));
    if (!st_->conn.poll(reply_deadline))
      throw manager_error("shared_memory_manager: the tracker process did not answer in 10 s", pid);
    r = st_->conn.recv<std::pair<std::int32_t, std::string>>();
  } catch (const manager_error&) {
    throw;
  } catch (const std::exception& e) {
    throw manager_error(
        std::string("shared_memory_manager: the tracker process has ended (") + e.what() + ")",
        pid);
  }
  if (r.first == -1) throw value_error(r.second);
  if (r.first > 0) throw os_error(r.first, r.second);
  return ::isola::shared_memory(std::string_view(r.second));
}

bool shared_memory_manager::started() const noexcept {
  return st_ && st_->tracker && !st_->shut_down;
}

int shared_memory_manager::pid() const noexcept {
  return st_ && st_->tracker ? st_->tracker->pid() : 0;
}

bool shared_memory_manager::is_alive() const {
  return st_ && st_->tracker && st_->tracker->is_alive();
}

}  // namespace isola
