// isola/sandbox.hpp — what a child process may do: rlimits, a seccomp-bpf
// syscall policy, an empty network namespace, a cgroup v2 memory cap.
//
//   isola::sandbox box;
//   box.syscalls = isola::syscall_policy::compute;  // serve a mailbox, nothing else
//   box.address_space = 512 << 20;
//   box.network = false;
//   spawn({.sandbox = box}, make_parser);
//
// Applied in the child after its start-up and before it runs its target (an
// actor: before it builds its behavior and reads its first message). The
// child cannot loosen it: PR_SET_NO_NEW_PRIVS is set, rlimits have hard =
// soft, and seccomp filters only ever add restrictions. What each preset
// allows, and what needs privileges, is in docs/sandbox.md.
//
// A forbidden syscall kills the child with SIGSYS (an actor's exit_reason is
// sandbox_violation, text the syscall's name); a limit reached is
// exit_reason limit with text "cpu", "file_size", "address_space",
// "open_files" or "memory" where it can be told.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace isola {

enum class syscall_policy : std::uint8_t {
  unrestricted,  ///< no seccomp filter (rlimits, network and memory still apply)
  compute,       ///< what serving a mailbox needs: memory, futexes, I/O on open descriptors, clocks
  read_files,    ///< compute + opening files read-only, stat, seek, directory listing
};

struct sandbox {
  std::optional<std::size_t> address_space;         ///< bytes (RLIMIT_AS)
  std::optional<std::chrono::duration<double>> cpu;  ///< CPU time (RLIMIT_CPU, whole seconds, rounded up)
  std::optional<std::size_t> open_files;            ///< RLIMIT_NOFILE
  std::optional<std::size_t> file_size;             ///< bytes (RLIMIT_FSIZE)
  std::optional<std::size_t> memory;  ///< bytes: cgroup v2 memory.max where a cgroup is delegated
  syscall_policy syscalls = syscall_policy::unrestricted;  ///< seccomp-bpf via libseccomp
  /// Syscall names added to / taken from the policy (deny wins). An unknown
  /// name is a value_error at spawn, in the parent.
  std::vector<std::string> allow, deny;
  bool network = true;  ///< false: an empty network namespace
  bool core_dumps = false;
  /// What the machine cannot honour (`memory` without a delegated cgroup v2,
  /// `network = false` without user namespaces or CAP_SYS_ADMIN) is an error
  /// at spawn; with best_effort it is left out with a logged warning.
  bool best_effort = false;

  template <class Archive>
  void serialize(Archive& ar) {
    std::optional<double> cpu_s;
    if (cpu) cpu_s = cpu->count();
    ar(address_space, cpu_s, open_files, file_size, memory, syscalls, allow, deny, network,
       core_dumps, best_effort);
    if (cpu_s) cpu = std::chrono::duration<double>(*cpu_s);
    else cpu.reset();
  }
};

}  // namespace isola
