#include "isola/detail/handle_transfer.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "isola/error.hpp"

namespace isola::detail {

namespace {
thread_local fd_export_scope* export_top = nullptr;
thread_local fd_import_scope* import_top = nullptr;
}  // namespace

fd_export_scope::fd_export_scope(bool collect_only)
    : collect_only_(collect_only), prev_(export_top) {
  export_top = this;
}
fd_export_scope::~fd_export_scope() { export_top = prev_; }

fd_import_scope::fd_import_scope(std::vector<int> fds) : fds_(std::move(fds)), prev_(import_top) {
  import_top = this;
}
fd_import_scope::~fd_import_scope() {
  import_top = prev_;
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

std::uint32_t export_fd(int fd) {
  if (!export_top)
    throw value_error(
        "pipe and queue handles can only be passed to a child as process arguments "
        "(or inherited under fork), not sent as messages");
  if (fd < 0) {
    if (export_top->collect_only_) return 0;
    throw value_error("cannot pass a closed handle to a child");
  }
  export_top->fds_.push_back(fd);
  return static_cast<std::uint32_t>(export_top->fds_.size() - 1);
}

int import_fd(std::uint32_t index) {
  if (!import_top || index >= import_top->fds_.size() || import_top->fds_[index] < 0)
    throw decode_error("a handle refers to descriptor #" + std::to_string(index) +
                       ", which this process did not receive");
  int fd = import_top->fds_[index];
  import_top->fds_[index] = -1;
  return fd;
}

namespace {
struct handle_entry {
  void* owner;
  handle_release_fn release;
};
struct handle_registry {
  std::mutex m;
  std::map<int, handle_entry> fds;
};
handle_registry& handles() {
  static auto* r = new handle_registry;  // used until the very end of the process
  return *r;
}
}  // namespace

void register_handle_fd(int fd, void* owner, handle_release_fn release) noexcept {
  if (fd < 0) return;
  auto& r = handles();
  std::lock_guard lk(r.m);
  try {
    r.fds[fd] = {owner, release};
  } catch (...) {}
}

void move_handle_fd(int fd, void* new_owner) noexcept {
  if (fd < 0) return;
  auto& r = handles();
  std::lock_guard lk(r.m);
  if (auto it = r.fds.find(fd); it != r.fds.end()) it->second.owner = new_owner;
}

void unregister_handle_fd(int fd) noexcept {
  if (fd < 0) return;
  auto& r = handles();
  std::lock_guard lk(r.m);
  r.fds.erase(fd);
}

bool any_registered_handles() noexcept {
  auto& r = handles();
  std::lock_guard lk(r.m);
  return !r.fds.empty();
}

void close_handles_except(const std::vector<int>& keep) noexcept {
  auto& r = handles();
  new (&r.m) std::mutex;  // whoever held it in the parent is not here
  for (auto it = r.fds.begin(); it != r.fds.end();) {
    if (std::find(keep.begin(), keep.end(), it->first) == keep.end()) {
      it->second.release(it->second.owner);
      ::close(it->first);
      it = r.fds.erase(it);
    } else {
      ++it;
    }
  }
}

void forget_handles() noexcept {
  auto& r = handles();
  new (&r.m) std::mutex;
  r.fds.clear();
}

}  // namespace isola::detail
