// isola/error.hpp — the one exception hierarchy of isola's public API.
//
// Every error isola raises derives from isola::error, mirroring the names of
// Python's multiprocessing, queue and concurrent.futures exceptions. Errors of
// the libraries underneath (cereal, CAF, errno) are translated into these in
// exactly one place each; callers never see a cereal::Exception or a bare
// std::system_error from isola.
#pragma once

#include <cerrno>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace isola {

/// Base of every exception isola throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A process could not be started, joined or queried as asked
/// (Python: AssertionError/ValueError raised by Process methods).
class process_error : public error {
 public:
  using error::error;
};

/// The start method cannot start this target (Python: the pickling error a
/// closure raises under spawn), or no runtime exists to support it.
class start_method_error : public process_error {
 public:
  using process_error::process_error;
};

/// An operating-system call failed (Python: OSError). Carries errno.
class os_error : public error {
 public:
  os_error(int code, const std::string& what) : error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// What was named does not exist (Python: FileNotFoundError, the OSError
/// with ENOENT): attaching to a shared_memory name that does not resolve,
/// unlinking one twice.
class file_not_found_error : public os_error {
 public:
  explicit file_not_found_error(const std::string& what) : os_error(ENOENT, what) {}
};

/// put on a full queue without blocking, or after the timeout (queue.Full).
class queue_full : public error {
 public:
  using error::error;
};

/// get on an empty queue without blocking, or after the timeout (queue.Empty).
class queue_empty : public error {
 public:
  using error::error;
};

/// A put on a queue that was shut down, or a get on one shut down and empty
/// (or shut down immediately) (Python 3.13: queue.ShutDown).
class queue_shut_down : public error {
 public:
  using error::error;
};

/// The other end of a channel is gone and nothing is left to read (EOFError).
class eof_error : public error {
 public:
  using error::error;
};

/// recv_bytes_into got a buffer smaller than the message. The whole message
/// travels in the exception (multiprocessing.BufferTooShort's args[0]).
class buffer_too_short : public error {
 public:
  buffer_too_short(std::vector<std::byte> message, std::size_t buffer_size)
      : error("buffer too short: the message has " + std::to_string(message.size()) +
              " bytes, the buffer " + std::to_string(buffer_size) +
              "; the message is in this exception's message()"),
        message_(std::move(message)) {}
  const std::vector<std::byte>& message() const noexcept { return message_; }

 private:
  std::vector<std::byte> message_;
};

/// SIGINT reached a child started by isola::process (process::interrupt(), a
/// Ctrl-C) while its target was blocked in a system call (Python:
/// KeyboardInterrupt). It unwinds the target, so its destructors run; the
/// child then exits with code 1, as a Python child does.
class keyboard_interrupt : public error {
 public:
  using error::error;
};

/// A blocking call ran past its deadline where Python raises TimeoutError.
class timeout_error : public error {
 public:
  using error::error;
};

/// A barrier was aborted or reset while parties waited (BrokenBarrierError).
class broken_barrier_error : public error {
 public:
  using error::error;
};

/// The previous holder of a lock died while holding it. The lock is now held
/// by the caller; the state it guards may be half-updated.
class lock_owner_died : public error {
 public:
  using error::error;
};

/// A value is out of the allowed range (ValueError).
class value_error : public error {
 public:
  using error::error;
};

/// A queue's shared memory was found inconsistent (a process sharing it wrote
/// over its positions or records): the queue is closed for every process
/// that has it, and every later call on it raises this. Python's queues have
/// no such state; it is a value_error because a closed queue raises
/// ValueError there, and this one is closed for good.
class queue_corrupt : public value_error {
 public:
  using value_error::value_error;
};

/// An exception raised in another process, carried back to this one.
class remote_error : public error {
 public:
  remote_error(std::string type_name, const std::string& what, int pid, std::string process_name)
      : error(process_name + " (pid " + std::to_string(pid) + ") raised " + type_name + ": " +
              what),
        type_name_(std::move(type_name)),
        remote_what_(what),
        pid_(pid),
        process_name_(std::move(process_name)) {}
  const std::string& type_name() const noexcept { return type_name_; }
  const std::string& remote_what() const noexcept { return remote_what_; }
  int pid() const noexcept { return pid_; }
  const std::string& process_name() const noexcept { return process_name_; }

 private:
  std::string type_name_;
  std::string remote_what_;
  int pid_;
  std::string process_name_;
};

/// A worker process died while it held a task.
class worker_died : public error {
 public:
  worker_died(const std::string& what, int pid, int exitcode, std::string task)
      : error(what), pid_(pid), exitcode_(exitcode), task_(std::move(task)) {}
  int pid() const noexcept { return pid_; }
  /// Python-style exit code: -N for signal N.
  int exitcode() const noexcept { return exitcode_; }
  const std::string& task() const noexcept { return task_; }

 private:
  int pid_;
  int exitcode_;
  std::string task_;
};

/// The actor a request was sent to exited before it answered.
class actor_exited : public error {
 public:
  explicit actor_exited(std::string reason)
      : error("actor exited: " + reason), reason_(std::move(reason)) {}
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

/// Bytes that are not a valid encoding of the expected value: truncated,
/// corrupted, oversize or with trailing garbage.
class decode_error : public error {
 public:
  using error::error;
};

/// A value of one type was expected and another arrived. The message names
/// both types.
class type_error : public error {
 public:
  using error::error;
};

/// A peer failed the authentication handshake.
class authentication_error : public error {
 public:
  using error::error;
};

/// A key that is not in a mapping (Python: KeyError), e.g. a managed dict's get().
class key_error : public error {
 public:
  using error::error;
};

/// An index out of a sequence's range (Python: IndexError), e.g. a managed list's.
class index_error : public error {
 public:
  using error::error;
};

/// A manager cannot be reached: it has shut down, died or never answered.
/// pid() is the manager process's pid when it runs on this host (0 for a
/// manager reached over TCP).
class manager_error : public error {
 public:
  explicit manager_error(const std::string& what, int pid = 0) : error(what), pid_(pid) {}
  int pid() const noexcept { return pid_; }

 private:
  int pid_;
};

}  // namespace isola
