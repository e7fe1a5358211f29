// Sandboxes (isola/sandbox.hpp): the parent's checks and probes, and what
// the child applies to itself before its target runs. docs/sandbox.md has
// the policy table and what needs which privilege.
#include "sandbox/sandbox.hpp"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "isola/error.hpp"
#include "isola/logging.hpp"
#include "sys/os.hpp"

namespace isola::detail {

namespace {

// ------------------------------------------------------------- the policies

// What serving a mailbox needs, found with strace -f on the actor test
// children after start-up (docs/sandbox.md): I/O on descriptors the process
// already has, memory, futexes, clocks, polling, signals to itself, threads
// (clone with CLONE_THREAD, below), exit.
const char* const compute_calls[] = {
    "read", "write", "readv", "writev", "recvmsg", "sendmsg", "recvfrom", "sendto", "recvmmsg",
    "sendmmsg", "mmap", "munmap", "mprotect", "madvise", "brk", "mremap", "msync", "mincore",
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
    "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl",
    "epoll_create1", "eventfd2", "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid",
    "getegid", "getresuid", "getresgid", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigsuspend", "sigaltstack", "exit", "sched_yield",
    "sched_getaffinity", "getrusage", "times", "restart_syscall", "close", "close_range", "dup",
    "dup2", "dup3", "fcntl", "getrandom", "membarrier", "fstat", "uname", "getcwd", "sysinfo",
    "getpriority", "arch_prctl", "seccomp",
    // A pipe reaches nothing outside the process; the sanitizers' runtime
    // makes one to test whether memory is readable.
    "pipe", "pipe2",
    // kill, tgkill, tkill, rt_sigaction, prctl, clone, newfstatat, statx,
    // ioctl, exit_group: with argument filters below.
};
// read_files adds these (open/openat only read-only, below).
const char* const read_calls[] = {
    "lseek", "pread64", "preadv", "preadv2", "getdents64", "getdents", "readlink", "readlinkat",
    "access", "faccessat", "faccessat2", "stat", "lstat", "fstatfs", "statfs", "chdir", "fchdir",
};

sandbox* active = nullptr;
std::atomic<int> report_fd{-1};
pid_t self_pid = 0;
// The handler's last act: a call the filter turns into a kill by SIGSYS
// (SECCOMP_RET_KILL_PROCESS), whatever the target did to SIGSYS meanwhile.
constexpr unsigned long die_marker = 0x15014a51u;

int resolve_or_throw(const std::string& name) {
  int nr = seccomp_syscall_resolve_name(name.c_str());
  if (nr == __NR_SCMP_ERROR)
    throw value_error("isola::sandbox: unknown system call name \"" + name + "\"");
  return nr;
}

void write_str(const char* s) noexcept {
  ssize_t r = ::write(2, s, std::strlen(s));
  (void)r;
}

// SIGSYS from SECCOMP_RET_TRAP: report the syscall, then die by SIGSYS.
// Async-signal-safe: a write and a send of fixed buffers.
void on_sigsys(int, siginfo_t* si, void*) {
  const int saved = errno;
  int nr = si->si_syscall;
  int fd = report_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    violation_packet p{};
    std::memcpy(p.magic, violation_magic, sizeof p.magic);
    p.nr = nr;
    p.arch = static_cast<std::int32_t>(si->si_arch);
    ssize_t r = ::send(fd, &p, sizeof p, MSG_NOSIGNAL);
    (void)r;
  }
  // The number only: libseccomp's name lookup allocates. The parent names it.
  char num[16];
  char* e = num + sizeof num;
  *--e = '\0';
  unsigned v = nr < 0 ? 0u : static_cast<unsigned>(nr);
  do *--e = static_cast<char>('0' + v % 10);
  while (v /= 10);
  write_str("isola: sandbox violation: system call ");
  write_str(e);
  write_str(" is not allowed; the process dies by SIGSYS\n");
  ::syscall(SYS_exit_group, die_marker);
  errno = saved;
}

void add(scmp_filter_ctx f, uint32_t action, int nr, std::initializer_list<scmp_arg_cmp> args = {}) {
  int rc = seccomp_rule_add_array(f, action, nr, static_cast<unsigned>(args.size()),
                                  args.size() ? args.begin() : nullptr);
  if (rc != 0 && rc != -EACCES)  // EACCES: the action is the default's already
    throw_errno("seccomp_rule_add (" + syscall_name(nr) + ")", -rc);
}

// The filter is built once per policy in the parent (libseccomp takes about
// a millisecond for it: most of a spawn) with this in place of the child's
// pid; the child puts its pid in and loads the program.
constexpr std::uint32_t pid_placeholder = 0x7eadbeefu;

bool needs_filter(const sandbox& box) {
  return box.syscalls != syscall_policy::unrestricted || !box.deny.empty();
}

std::string build_filter(const sandbox& box) {
  const bool restricted = box.syscalls != syscall_policy::unrestricted;
  scmp_filter_ctx f = seccomp_init(restricted ? SCMP_ACT_TRAP : SCMP_ACT_ALLOW);
  if (!f) throw os_error(ENOMEM, "seccomp_init failed");
  struct guard {
    scmp_filter_ctx f;
    ~guard() { seccomp_release(f); }
  } g{f};
  seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  std::set<int> deny;
  for (auto& n : box.deny) deny.insert(resolve_or_throw(n));
  auto allow = [&](int nr, std::initializer_list<scmp_arg_cmp> args = {}) {
    if (!deny.count(nr)) add(f, SCMP_ACT_ALLOW, nr, args);
  };
  auto allow_name = [&](const char* n, std::initializer_list<scmp_arg_cmp> args = {}) {
    int nr = seccomp_syscall_resolve_name(n);
    if (nr != __NR_SCMP_ERROR && nr >= 0) allow(nr, args);
  };
  const auto self = static_cast<scmp_datum_t>(pid_placeholder);
  if (restricted) {
    for (const char* n : compute_calls) allow_name(n);
    // Signals only to this process (the filter is built in the child, so
    // its pid is known; it forks nothing it could signal).
    allow_name("kill", {SCMP_A0(SCMP_CMP_EQ, self)});
    allow_name("kill", {SCMP_A0(SCMP_CMP_EQ, 0)});
    allow_name("tgkill", {SCMP_A0(SCMP_CMP_EQ, self)});
    allow_name("tkill", {SCMP_A0(SCMP_CMP_EQ, self)});
    allow_name("rt_sigqueueinfo", {SCMP_A0(SCMP_CMP_EQ, self)});
    allow_name("rt_tgsigqueueinfo", {SCMP_A0(SCMP_CMP_EQ, self)});
    // Its own rlimits: reading, or lowering (hard = soft: raising is EPERM).
    allow_name("getrlimit");
    allow_name("setrlimit");
    allow_name("prlimit64", {SCMP_A0(SCMP_CMP_EQ, 0)});
    allow_name("prlimit64", {SCMP_A0(SCMP_CMP_EQ, self)});
    // Threads, never processes: clone only with CLONE_THREAD; clone3 keeps
    // its flags in memory a filter cannot read, so it says ENOSYS and glibc
    // falls back to clone.
    allow_name("clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
    add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3));
    // fstat(fd) is newfstatat(fd, "", AT_EMPTY_PATH) in glibc >= 2.33.
    allow_name("newfstatat", {SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)});
    allow_name("statx", {SCMP_A2(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)});
    allow_name("ioctl", {SCMP_A1(SCMP_CMP_EQ, TCGETS)});  // isatty
    allow_name("ioctl", {SCMP_A1(SCMP_CMP_EQ, FIONREAD)});
    // prctl: reading state and naming threads. Setting no_new_privs or a
    // seccomp mode again fails with EPERM (the seccomp syscall may add a
    // filter: filters only ever restrict); any other option is a violation.
    for (int opt : {PR_SET_NAME, PR_GET_NAME, PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_GET_PDEATHSIG,
                    PR_GET_DUMPABLE, PR_SET_VMA})
      allow_name("prctl", {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(opt))});
    if (!deny.count(SCMP_SYS(prctl)))
      for (int opt : {PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP})
        add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(prctl),
            {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(opt))});
    if (box.syscalls == syscall_policy::read_files) {
      for (const char* n : read_calls) allow_name(n);
      // Read-only opens: no write access, no O_CREAT, no O_TRUNC. openat2
      // keeps its flags in memory: ENOSYS, glibc does not need it.
      const scmp_datum_t mask = O_ACCMODE | O_CREAT | O_TRUNC;
      allow_name("open", {SCMP_A1(SCMP_CMP_MASKED_EQ, mask, O_RDONLY)});
      allow_name("openat", {SCMP_A2(SCMP_CMP_MASKED_EQ, mask, O_RDONLY)});
      add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2));
      allow_name("newfstatat");
      allow_name("statx");
    }
  }
  // The handler keeps SIGSYS: a target cannot turn violations into no-ops.
  if (restricted) allow_name("rt_sigaction", {SCMP_A0(SCMP_CMP_NE, SIGSYS)});
  add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(rt_sigaction), {SCMP_A0(SCMP_CMP_EQ, SIGSYS)});
  // libseccomp does not let a conditional rule override an unconditional
  // one: exit_group is allowed for every code but the handler's marker.
  if (restricted) allow_name("exit_group", {SCMP_A0(SCMP_CMP_NE, die_marker)});
  for (auto& n : box.allow) allow(resolve_or_throw(n));
  for (int nr : deny) add(f, SCMP_ACT_TRAP, nr);
  // Last, and above everything: the handler's death.
  int rc = seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, SCMP_SYS(exit_group), 1,
                            SCMP_A0(SCMP_CMP_EQ, die_marker));
  if (rc != 0) throw_errno("seccomp_rule_add (exit_group)", -rc);
  unique_fd mem(static_cast<int>(::syscall(SYS_memfd_create, "isola-seccomp", MFD_CLOEXEC)));
  if (!mem) throw_errno("memfd_create (seccomp program)");
  rc = seccomp_export_bpf(f, mem.get());
  if (rc != 0) throw_errno("seccomp_export_bpf", -rc);
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  std::string prog(static_cast<std::size_t>(size), '\0');
  if (size <= 0 || ::pread(mem.get(), prog.data(), prog.size(), 0) != size)
    throw_errno("reading the seccomp program");
  return prog;
}

const std::string& cached_filter(const sandbox& box) {
  static std::mutex m;
  static std::map<std::string, std::string> cache;
  std::string key = std::to_string(static_cast<int>(box.syscalls));
  for (auto& n : box.allow) key += "+" + n;
  for (auto& n : box.deny) key += "-" + n;
  std::lock_guard lk(m);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, build_filter(box)).first;
  return it->second;
}

void load_filter(std::string prog) {
  if (prog.empty() || prog.size() % sizeof(sock_filter) != 0)
    throw value_error("isola::sandbox: a malformed seccomp program");
  auto* insns = reinterpret_cast<sock_filter*>(prog.data());
  const std::size_t n = prog.size() / sizeof(sock_filter);
  for (std::size_t i = 0; i < n; ++i)
    if (insns[i].code == (BPF_JMP | BPF_JEQ | BPF_K) && insns[i].k == pid_placeholder)
      insns[i].k = static_cast<std::uint32_t>(self_pid);
  sock_fprog fp{static_cast<unsigned short>(n), insns};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0) != 0)
    throw_errno("prctl (PR_SET_SECCOMP)");
}

void install_sigsys_handler() {
  // The handler runs on its own stack: a violation may come from a thread
  // whose stack is nearly full.
  static char stack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = stack;
  ss.ss_size = sizeof stack;
  if (::sigaltstack(&ss, nullptr) != 0) throw_errno("sigaltstack");
  struct sigaction sa {};
  sa.sa_sigaction = &on_sigsys;
  // Not SA_NODEFER: a violation inside the handler (a deny of sendto or
  // write) finds SIGSYS blocked, and the kernel then kills by SIGSYS at once.
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGSYS, &sa, nullptr) != 0) throw_errno("sigaction (SIGSYS)");
}

void set_limit(int res, rlim_t v, const char* what) {
  rlimit r{v, v};
  if (::setrlimit(res, &r) != 0) throw_errno(std::string("setrlimit (") + what + ")");
}

// ------------------------------------------------------------------ probes

// Whether this process may make a new network namespace (alone, as root with
// CAP_SYS_ADMIN; or with a user namespace). Probed once in a fork child that
// does nothing else (async-signal-safe: the root runs threads).
int network_probe() {
  static const int result = [] {
    for (int flags : {CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET}) {
      pid_t pid = ::fork();
      if (pid < 0) return 0;
      if (pid == 0) ::_exit(::unshare(flags) == 0 ? 0 : 1);
      int st = 0;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
      if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return flags;
    }
    return 0;
  }();
  return result;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool write_file(const std::string& path, const std::string& s) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  ::close(fd);
  return ok;
}

// The delegated cgroup v2 under which children get a cgroup each:
// ISOLA_CGROUP, or this process's own cgroup. Empty (and *why says why) if
// there is none the program may use.
std::string delegated_cgroup(std::string* why) {
  if (::access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0) {
    *why = "/sys/fs/cgroup is not a cgroup v2 hierarchy";
    return {};
  }
  std::string base;
  if (const char* env = std::getenv("ISOLA_CGROUP")) {
    base = env;
  } else {
    std::istringstream in(read_file("/proc/self/cgroup"));
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("0::", 0) == 0) base = "/sys/fs/cgroup" + line.substr(3);
  }
  if (base.empty()) {
    *why = "this process is in no cgroup v2";
    return {};
  }
  if (read_file(base + "/cgroup.subtree_control").find("memory") == std::string::npos &&
      !write_file(base + "/cgroup.subtree_control", "+memory")) {
    *why = "the memory controller is not enabled for the children of " + base +
           " (and cannot be: delegate a cgroup to this program, e.g. systemd-run --user "
           "--scope -p Delegate=yes, and set ISOLA_CGROUP to a cgroup under it)";
    return {};
  }
  if (::access(base.c_str(), W_OK) != 0) {
    *why = base + " is not writable by this program";
    return {};
  }
  return base;
}

}  // namespace

std::string syscall_name(int nr) {
  char* n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (!n) return "syscall " + std::to_string(nr);
  std::string s(n);
  ::free(n);
  return s;
}

std::optional<int> parse_violation(const void* data, std::size_t n) noexcept {
  if (n != sizeof(violation_packet)) return std::nullopt;
  violation_packet p;
  std::memcpy(&p, data, sizeof p);
  if (std::memcmp(p.magic, violation_magic, sizeof p.magic) != 0) return std::nullopt;
  return p.nr;
}

sandbox prepare_sandbox(const sandbox& in, std::string* cgroup, std::string* filter) {
  sandbox box = in;
  for (auto* v : {&box.allow, &box.deny})
    for (auto& n : *v) resolve_or_throw(n);
  auto positive = [](const std::optional<std::size_t>& v, const char* what) {
    if (v && *v == 0) throw value_error(std::string("isola::sandbox: ") + what + " must be positive");
  };
  positive(box.address_space, "address_space");
  positive(box.open_files, "open_files");
  positive(box.file_size, "file_size");
  positive(box.memory, "memory");
  if (box.cpu && !(box.cpu->count() > 0))
    throw value_error("isola::sandbox: cpu must be positive");
  auto cannot = [&](const std::string& what) {
    if (!box.best_effort) throw os_error(EPERM, "isola::sandbox: " + what);
    get_logger().warning("isola::sandbox: " + what + "; left out (best_effort)");
  };
  if (!box.network && network_probe() == 0) {
    cannot(
        "network = false needs a new network namespace, which this process may not make "
        "(neither CAP_SYS_ADMIN nor unprivileged user namespaces)");
    box.network = true;
  }
  if (box.memory) {
    std::string why;
    std::string base = delegated_cgroup(&why);
    static std::atomic<unsigned> counter{0};
    std::string dir;
    if (!base.empty()) {
      dir = base + "/isola-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
      if (::mkdir(dir.c_str(), 0755) != 0) {
        why = "cannot create " + dir + ": " + std::strerror(errno);
        dir.clear();
      } else if (!write_file(dir + "/memory.max", std::to_string(*box.memory))) {
        why = "cannot write " + dir + "/memory.max";
        ::rmdir(dir.c_str());
        dir.clear();
      } else {
        write_file(dir + "/memory.swap.max", "0");  // absent without swap accounting
      }
    }
    if (dir.empty()) {
      cannot("memory needs a delegated cgroup v2: " + why);
      box.memory.reset();
    }
    if (cgroup) *cgroup = dir;
  }
  if (filter && needs_filter(box)) *filter = cached_filter(box);
  return box;
}

void apply_sandbox(const sandbox& box, const std::string& cgroup, const std::string& filter) {
  static sandbox kept;
  kept = box;
  active = &kept;
  self_pid = ::getpid();
  // Namespaces first: unshare(CLONE_NEWUSER) needs a single-threaded process,
  // which a child is until its target runs.
  if (!box.network && ::unshare(CLONE_NEWNET) != 0) {
    if (errno != EPERM || ::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
      throw_errno("unshare (sandbox network = false)");
  }
  if (box.memory && !cgroup.empty() && !write_file(cgroup + "/cgroup.procs", "0"))
    throw_errno("joining the sandbox's cgroup " + cgroup);
  if (box.address_space) set_limit(RLIMIT_AS, *box.address_space, "address_space");
  if (box.open_files) set_limit(RLIMIT_NOFILE, *box.open_files, "open_files");
  if (box.file_size) set_limit(RLIMIT_FSIZE, *box.file_size, "file_size");
  if (box.cpu) {
    // At the soft limit the kernel sends SIGXCPU, at the hard limit SIGKILL;
    // equal limits would be SIGKILL at once, which cannot be told from any
    // other kill. So the hard limit is one second above: SIGXCPU (death,
    // reported as limit "cpu") first.
    auto s = static_cast<rlim_t>(std::ceil(box.cpu->count()));
    rlimit r{s, s + 1};
    if (::setrlimit(RLIMIT_CPU, &r) != 0) throw_errno("setrlimit (cpu)");
  }
  if (!box.core_dumps) set_limit(RLIMIT_CORE, 0, "core_dumps");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("prctl (PR_SET_NO_NEW_PRIVS)");
  if (needs_filter(box)) {
    install_sigsys_handler();
    load_filter(filter.empty() ? build_filter(box) : filter);
  }
}

const sandbox* current_sandbox() noexcept { return active; }

void set_violation_report_fd(int fd) noexcept { report_fd.store(fd, std::memory_order_relaxed); }

bool cgroup_oom_killed_and_remove(const std::string& cgroup) noexcept {
  if (cgroup.empty()) return false;
  bool oom = false;
  try {
    std::istringstream in(read_file(cgroup + "/memory.events"));
    std::string k;
    long long v = 0;
    while (in >> k >> v)
      if (k == "oom_kill" && v > 0) oom = true;
  } catch (...) {}
  ::rmdir(cgroup.c_str());
  return oom;
}

}  // namespace isola::detail
