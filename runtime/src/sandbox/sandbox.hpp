// The sandbox's mechanism (isola/sandbox.hpp): checked in the parent at
// start(), applied in the child by child_main before the target runs.
// Internal; never installed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "isola/sandbox.hpp"

namespace isola {
class process;
}

namespace isola::detail {

/// In the parent, at start(): value_error for an unknown syscall name or a
/// negative/zero limit; probes what needs privileges (network = false,
/// memory) and throws os_error when the machine cannot honour it, unless
/// best_effort (then it is dropped from the returned copy, with a warning).
/// For memory, creates the child's cgroup and returns its path in *cgroup;
/// the seccomp program (built once per policy) in *filter.
sandbox prepare_sandbox(const sandbox& box, std::string* cgroup, std::string* filter);

/// In the child, single-threaded, before the target: network namespace,
/// cgroup, rlimits, no_new_privs, the seccomp filter (last). Throws on failure.
/// `filter`: what prepare_sandbox made (built here if empty).
void apply_sandbox(const sandbox& box, const std::string& cgroup, const std::string& filter);

/// The sandbox this process runs under (null if none).
const sandbox* current_sandbox() noexcept;

/// Where the SIGSYS handler reports a violation before the process dies: a
/// SOCK_SEQPACKET (an actor's control channel) that gets one violation_packet.
void set_violation_report_fd(int fd) noexcept;

/// What the SIGSYS handler sends: magic, then the syscall number.
struct violation_packet {
  char magic[8];
  std::int32_t nr;
  std::int32_t arch;
};
inline constexpr char violation_magic[8] = {'I', 'S', 'B', 'X', 'S', 'Y', 'S', '!'};
/// Whether a packet read from a control channel is a violation_packet.
std::optional<int> parse_violation(const void* data, std::size_t n) noexcept;

/// The name of native syscall nr ("syscall N" if unknown).
std::string syscall_name(int nr);

/// Which sandbox limit ended a reaped child whose exit code was `code`:
/// "cpu" (SIGXCPU under a cpu limit), "file_size" (SIGXFSZ under a
/// file_size limit), "memory" (killed by its cgroup's OOM killer), or none.
/// Removes the child's cgroup.
std::optional<std::string> sandbox_limit_of(const process& p, int code);

/// After the child in cgroup ended: whether the cgroup's OOM killer killed
/// in it (memory.events oom_kill). Removes the cgroup.
bool cgroup_oom_killed_and_remove(const std::string& cgroup) noexcept;

}  // namespace isola::detail
