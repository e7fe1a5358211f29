// isola/shared_memory_manager.hpp — a process that owns shared memory blocks
// made through it and ends them all at shutdown (Python's
// multiprocessing.managers.SharedMemoryManager).
//
//   isola::shared_memory_manager smm;
//   smm.start();                                     // the tracker process
//   isola::shared_memory shm = smm.shared_memory(4096);     // smm.SharedMemory(size)
//   auto sl = smm.shareable_list<int>({1, 2, 3});            // smm.ShareableList(seq)
//   isola::process p(work, shm, sl);                 // pass them on, or their names
//   smm.shutdown();                                  // or ~shared_memory_manager()
//   // now no process can attach by those names
//
// The tracker is a small isola::process (fork from a single-threaded
// program, spawn otherwise, or the method in the options). It creates
// every block itself and keeps it open, so a block's name (see
// shared_memory.hpp) resolves as long as the manager runs, whichever process
// asked for it and whether or not that process still holds it. At
// shutdown() it unlinks them all: later attaches by name are
// file_not_found_error, and unlink() by a handle still open is
// file_not_found_error too (Python: the manager unlinked it); handles still
// open keep working, and the memory goes with the last of them.
//
// When the process that started the manager dies, even by SIGKILL, the
// tracker notices (its connection to the owner reaches EOF, or its parent's
// pidfd fires), unlinks every block and ends. Should the tracker itself be
// killed first, the names end with it anyway: a block's name resolves only
// while its creator holds it. Like Python's SharedMemoryServer, the tracker
// ignores SIGINT (a Ctrl-C aimed at the program's process group).
//
// Errors: shared_memory() / shareable_list() before start() or after
// shutdown() are value_error (Python: ValueError before start); start()
// twice, or after shutdown(), is process_error; a tracker that died or does
// not answer within 10 s is manager_error.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "isola/shareable_list.hpp"
#include "isola/shared_memory.hpp"
#include "isola/start_method.hpp"

namespace isola {

struct shared_memory_manager_options {
  /// How the tracker process starts. Default: fork from a single-threaded
  /// program, spawn otherwise. (Under forkserver, the tracker of a root
  /// process dies with the root, by the zygote's hand: the names still end,
  /// since it created them, but the blocks are not marked unlinked.)
  std::optional<start_method> method{};
  /// The tracker's process name; default "shared-memory-manager-N".
  std::string name{};
};

class shared_memory_manager {
 public:
  /// Not started yet (Python: SharedMemoryManager()).
  shared_memory_manager();
  explicit shared_memory_manager(shared_memory_manager_options opts);
  /// shutdown(); never throws.
  ~shared_memory_manager();
  shared_memory_manager(shared_memory_manager&&) noexcept;
  shared_memory_manager& operator=(shared_memory_manager&&) noexcept;
  shared_memory_manager(const shared_memory_manager&) = delete;
  shared_memory_manager& operator=(const shared_memory_manager&) = delete;

  /// Starts the tracker process. process_error if started before.
  void start();
  /// Unlinks every block made through the manager and ends the tracker.
  /// Idempotent; a no-op before start() and in a process other than the one
  /// that started it (a fork child's copy).
  void shutdown();

  /// A new block of size bytes, owned by the manager (Python:
  /// smm.SharedMemory(size)). value_error for 0.
  ::isola::shared_memory shared_memory(std::size_t size);

  /// A new shareable_list in a block owned by the manager (Python:
  /// smm.ShareableList(sequence)).
  template <class T>
  ::isola::shareable_list<T> shareable_list(std::span<const T> values, std::size_t capacity = 0) {
    using list = ::isola::shareable_list<T>;
    auto block = shared_memory(list::bytes_for(values, capacity));
    return list(typename list::in_block_t{}, std::move(block), values, capacity);
  }
  template <class T>
  ::isola::shareable_list<T> shareable_list(std::initializer_list<T> values,
                                            std::size_t capacity = 0) {
    return shareable_list<T>(std::span<const T>(values.begin(), values.size()), capacity);
  }

  /// Whether start() has run and shutdown() has not.
  bool started() const noexcept;
  /// The tracker's pid (0 before start()).
  int pid() const noexcept;
  /// Whether the tracker process runs.
  bool is_alive() const;

 private:
  struct state;
  std::unique_ptr<state> st_;
};

}  // namespace isola
