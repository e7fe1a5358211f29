// isola/detail/handle_transfer.hpp — how handles (pipe ends, queues) travel as
// process arguments under forkserver and spawn.
//
// A handle is a file descriptor plus some state. Under fork the child simply
// has both. Under forkserver and spawn the arguments are encoded: while they
// are, a handle's save() calls export_fd(), which records the descriptor for
// the start method to send along (SCM_RIGHTS) and writes only its index; in
// the child, while the arguments are decoded, load() calls import_fd(index)
// and gets the descriptor the child received, which it then owns.
//
// Outside those two moments a handle cannot be serialized: as in Python,
// queues and pipes are shared by inheritance, not sent as messages.
//
// Under fork the child is a copy of the parent, with every descriptor. So that
// a child holds only the pipe ends it was given (and a reader sees EOF when
// the writers it knows of are gone), connections register here, and a fork
// child closes every registered one that is not among its arguments (found by
// running the arguments' save() in collect mode). The objects themselves are
// marked closed too, so a connection the child can still reach (a global, a
// capture) fails cleanly instead of using a descriptor number that may be
// reused. Queues do not register: their memory is shared under fork anyway.
#pragma once

#include <cstdint>
#include <vector>

namespace isola::detail {

/// Active while a process's arguments are encoded; collects descriptors.
/// In collect mode (used under fork to learn which handles a child keeps)
/// closed handles are skipped instead of refused.
class fd_export_scope {
 public:
  explicit fd_export_scope(bool collect_only = false);
  ~fd_export_scope();
  fd_export_scope(const fd_export_scope&) = delete;
  fd_export_scope& operator=(const fd_export_scope&) = delete;
  const std::vector<int>& fds() const noexcept { return fds_; }

 private:
  friend std::uint32_t export_fd(int fd);
  std::vector<int> fds_;
  bool collect_only_;
  fd_export_scope* prev_;
};

/// Active while a child decodes its arguments; hands out what it received.
class fd_import_scope {
 public:
  explicit fd_import_scope(std::vector<int> fds);
  ~fd_import_scope();  // closes descriptors nobody imported
  fd_import_scope(const fd_import_scope&) = delete;
  fd_import_scope& operator=(const fd_import_scope&) = delete;

 private:
  friend int import_fd(std::uint32_t index);
  std::vector<int> fds_;
  fd_import_scope* prev_;
};

/// Records fd for the child; returns its index. Throws isola::value_error
/// outside an export scope (a handle serialized as a message).
std::uint32_t export_fd(int fd);

/// The descriptor received for index, now owned by the caller. Throws
/// isola::decode_error outside an import scope or for a bad index.
int import_fd(std::uint32_t index);

/// Marks the owner of a handle closed (its descriptor is closed for it).
using handle_release_fn = void (*)(void* owner) noexcept;

/// A handle at `owner` took ownership of fd / moved / gave it up (closed it).
void register_handle_fd(int fd, void* owner, handle_release_fn release) noexcept;
void move_handle_fd(int fd, void* new_owner) noexcept;
void unregister_handle_fd(int fd) noexcept;

/// Whether any handle is registered in this process (if not, a fork child
/// has nothing to close and the arguments need not be scanned).
bool any_registered_handles() noexcept;

/// In a fork child: closes every registered handle descriptor not in keep.
void close_handles_except(const std::vector<int>& keep) noexcept;
/// In the zygote, which closed them all by number: forget them.
void forget_handles() noexcept;

}  // namespace isola::detail
