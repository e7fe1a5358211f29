// isola/shared_memory.hpp — a block of bytes shared by processes (Python's
// multiprocessing.shared_memory.SharedMemory).
//
//   isola::shared_memory shm(1 << 20);               // SharedMemory(create=True, size=...)
//   std::span<std::byte> b = shm.buf();              // shm.buf
//   isola::process p(worker, shm);                   // a copy goes to the child
//   auto other = isola::shared_memory(shm.name());   // SharedMemory(name=...), any process
//   shm.close(); shm.unlink();
//
// The block is a memfd: it has no name in /dev/shm or any file system, so
// nothing can leak — the kernel frees it when the last process holding it
// closes it or ends, even if every process is SIGKILLed (a /dev/shm block
// would outlive them; Python's resource tracker unlinks it only if it
// survives itself).
//
// What every process sees:
// - buf() is the same size() bytes everywhere, zero-filled at creation, page
//   aligned. Nothing synchronizes access: use a lock, or atomics on
//   suitably aligned words (std::atomic_ref).
// - A handle travels to a child as a process argument under every start
//   method (fork shares the mapping, forkserver and spawn receive the memfd).
// - name() identifies the block to any process of the same user, which can
//   attach with shared_memory(name). The name says which process created the
//   block and which of its descriptors holds it ("isola-shm-<pid>-<fd>-
//   <token>"), and attaching opens /proc/<pid>/fd/<fd> and checks the random
//   token: a name can be resolved while the creating process still has its
//   handle open (not after its close() or exit, even if other processes still
//   hold the block: they can pass it on as a process argument). Attaching by
//   a name that does not resolve is file_not_found_error (an os_error with
//   ENOENT; Python: FileNotFoundError).
// - unlink() ends the name: later attaches fail, handles already open keep
//   working, and the memory goes with the last of them (as after Python's
//   unlink). It works after close() too (Python's close(); unlink() order):
//   it then reaches the block through its name. A second unlink() (by any
//   handle), or one whose name no longer resolves, is file_not_found_error,
//   as in Python.
//   close() ends this handle (and its copies) in this process: buf() then
//   throws value_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/sync_segment.hpp"

namespace isola {

class shared_memory {
 public:
  /// An empty handle (closed); for decoding.
  shared_memory() = default;
  /// Creates a new block of size bytes (value_error for 0, as in Python).
  explicit shared_memory(std::size_t size);
  /// Attaches to the block called name (Python: SharedMemory(name=name)).
  explicit shared_memory(std::string_view name);
  explicit shared_memory(const char* name) : shared_memory(std::string_view(name)) {}
  explicit shared_memory(const std::string& name) : shared_memory(std::string_view(name)) {}

  /// Copies share the block (and, in this process, its closed state).
  shared_memory(const shared_memory&) = default;
  shared_memory& operator=(const shared_memory&) = default;
  shared_memory(shared_memory&&) noexcept = default;
  shared_memory& operator=(shared_memory&&) noexcept = default;

  /// The bytes; value_error once closed.
  std::span<std::byte> buf() const;
  /// The size asked for at creation.
  std::size_t size() const;
  /// A name another process can attach with (see the header comment).
  const std::string& name() const;
  /// Ends this handle and its copies in this process. Idempotent.
  void close() noexcept;
  bool closed() const noexcept;
  /// Ends the name: later attaches fail; open handles keep working.
  void unlink();

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    ar(segment().export_fd());
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    ar(index);
    adopt(index);
  }

 private:
  struct state;
  void adopt(std::uint32_t index);
  detail::sync_segment& segment() const;
  std::shared_ptr<state> st_;
};

}  // namespace isola
