#include "isola/detail/handle_transfer.hpp"

#include <unistd.h>

#include <string>

#include "isola/error.hpp"

namespace isola::detail {

namespace {
thread_local fd_export_scope* export_top = nullptr;
thread_local fd_import_scope* import_top = nullptr;
}  // namespace

fd_export_scope::fd_export_scope() : prev_(export_top) { export_top = this; }
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
  if (fd < 0) throw value_error("cannot pass a closed handle to a child");
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

}  // namespace isola::detail
