// isola::manager: starting the manager process, shutting it down, serving it
// over TCP and connecting to one.
#include "isola/manager.hpp"

#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "isola/detail/handle_transfer.hpp"
#include "isola/process.hpp"
#include "manager/protocol.hpp"
#include "process/registry.hpp"
#include "sys/random.hpp"

namespace isola {

namespace detail {

/// The listening socket, as a process argument: inherited under fork, sent
/// with SCM_RIGHTS under forkserver and spawn.
struct manager_listen_fd {
  int fd = -1;
  template <class Archive>
  void save(Archive& ar) const {
    ar(export_fd(fd));
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    ar(index);
    fd = import_fd(index);
  }
};

struct manager_boot {
  manager_listen_fd listen;
  std::string authkey;
  std::uint64_t max_message_size = 0;
  std::int32_t owner_pid = 0;  // may serve and shut down (its local connections only)
  bool tls = false;            // TCP listeners use TLS
  // The types register_type() made before the start (the manager serves them).
  std::vector<mgr_type_entry> types;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(listen, authkey, max_message_size, owner_pid, tls, types);
  }
};

int manager_process_main(manager_boot boot) {
  // Ctrl-C reaches the whole process group; the manager stops when the
  // program that owns it says so (Python's manager ignores SIGINT too).
  ::signal(SIGINT, SIG_IGN);
  mgr::install_user_types(boot.types);
  return run_manager_server(boot.listen.fd, std::move(boot.authkey),
                            static_cast<std::size_t>(boot.max_message_size), boot.owner_pid,
                            boot.tls);
}

namespace {
std::mutex types_mutex;
std::vector<mgr_type_entry>& types_table() {
  static std::vector<mgr_type_entry> t;
  return t;
}
}  // namespace

std::vector<mgr_type_entry> registered_manager_types() {
  std::lock_guard g(types_mutex);
  return types_table();
}

void register_manager_type(mgr_type_entry e) {
  std::lock_guard g(types_mutex);
  for (auto& t : types_table()) {
    if (t.name != e.name) continue;
    // Python's register() replaces; the same type keeps its methods.
    if (t.type == e.type && e.methods.empty()) e.methods = std::move(t.methods);
    t = std::move(e);
    return;
  }
  types_table().push_back(std::move(e));
}

void register_manager_method(const std::string& type_name, mgr_method_entry m) {
  std::lock_guard g(types_mutex);
  for (auto& t : types_table()) {
    if (t.name != type_name) continue;
    for (auto& old : t.methods)
      if (old.name == m.name) {
        old = std::move(m);
        return;
      }
    t.methods.push_back(std::move(m));
    return;
  }
  throw value_error("manager::register_type: no type '" + type_name + "' is registered");
}

namespace {
std::string random_string(std::size_t n) {
  std::string s(n, '\0');
  random_bytes(std::as_writable_bytes(std::span(s.data(), s.size())));
  return s;
}
std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}
std::atomic<int> manager_counter{0};
}  // namespace

}  // namespace detail

manager::manager() : manager(manager_options{}) {}

manager::manager(manager_options opts) {
  auto addr = std::make_shared<detail::manager_address>();
  addr->authkey = opts.authkey.empty() ? detail::random_string(32) : opts.authkey;
  addr->socket =
      "isola-mgr-" + std::to_string(::getpid()) + "-" + detail::hex(detail::random_string(8));
  auto listener = detail::net::unix_listen(addr->socket);
  if (!listener) throw os_error(listener.err, "manager: " + listener.what);
  int fd = listener.fd.release();
  // Clients may connect at once: the kernel queues them until the manager
  // process accepts.
  process_options po;
  po.name = opts.name.empty() ? "manager-" + std::to_string(++detail::manager_counter) : opts.name;
  po.daemon = true;
  po.method = opts.method;
  // The manager is isola's own server, and its target needs no fork: from a
  // program that runs threads (the actor layer's CAF threads, a popen
  // reaper) it starts off the forkserver rather than being forked in the
  // middle of them, where a lock another thread held (an allocator's, under
  // a sanitizer) stays locked in the child forever.
  if (!po.method && get_start_method() == start_method::fork && detail::thread_count() > 1)
    po.method = start_method::forkserver;
  detail::manager_boot boot{{fd}, addr->authkey, opts.max_message_size, ::getpid(), opts.tls, {}};
  boot.types = detail::registered_manager_types();
  try {
    proc_ =
        std::make_unique<process>(std::move(po), &detail::manager_process_main, std::move(boot));
    proc_->start();
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // the manager process has its own copy now
  owner_ = ::getpid();
  addr->pid = proc_->pid();
  addr_ = std::move(addr);
}

manager::manager(std::shared_ptr<const detail::manager_address> addr) : addr_(std::move(addr)) {}

manager::~manager() {
  try {
    shutdown();
  } catch (...) {}
}

manager::manager(manager&&) noexcept = default;
manager& manager::operator=(manager&& o) noexcept {
  if (this != &o) {
    try {
      shutdown();
    } catch (...) {}
    addr_ = std::move(o.addr_);
    proc_ = std::move(o.proc_);
    owner_ = o.owner_;
  }
  return *this;
}

manager manager::connect(const std::string& host, std::uint16_t port, std::string authkey) {
  return connect(host, port, std::move(authkey), manager_connect_options{});
}

manager manager::connect(const std::string& host, std::uint16_t port, std::string authkey,
                         const manager_connect_options& opts) {
  auto addr = std::make_shared<detail::manager_address>();
  addr->host = host;
  addr->port = port;
  addr->authkey = std::move(authkey);
  addr->tls = opts.tls;
  manager m(std::shared_ptr<const detail::manager_address>(std::move(addr)));
  (void)m.stats();  // connects and authenticates now: a wrong key fails here
  return m;
}

manager manager::connect(const std::string& endpoint, std::string authkey) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon + 1 == endpoint.size())
    throw value_error("manager::connect: '" + endpoint + "' is not host:port");
  std::string host = endpoint.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(endpoint.substr(colon + 1), &used);
    if (used != endpoint.size() - colon - 1 || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    throw value_error("manager::connect: '" + endpoint + "' has no valid port");
  }
  return connect(host, static_cast<std::uint16_t>(port), std::move(authkey));
}

std::uint16_t manager::serve(const std::string& host, std::uint16_t port, std::string authkey) {
  if (!addr_) throw value_error("manager::serve on a moved-from manager");
  if (!proc_ || owner_ != ::getpid())
    throw value_error(
        "manager::serve: permission denied: only the process that started the manager may serve "
        "it (a connected handle, or a copy in a child process, may not)");
  if (authkey.empty()) throw value_error("manager::serve needs a non-empty authentication key");
  bytes b = encode(std::make_pair(port, std::move(authkey)));
  detail::mgr_status st{};
  auto p = detail::manager_call(*addr_, detail::mgr_op::serve, 0, -1,
                                std::as_bytes(std::span(host.data(), host.size())), b, st);
  if (st == detail::mgr_status::value_error)
    throw os_error(
        0, "manager::serve: " + std::string(reinterpret_cast<const char*>(p.data()), p.size()));
  detail::check_reply(*addr_, st, p);
  return decode<std::uint16_t>(p);
}

void manager::shutdown() {
  if (!proc_ || owner_ != ::getpid()) return;
  auto proc = std::move(proc_);
  try {
    detail::mgr_status st{};
    detail::manager_call(*addr_, detail::mgr_op::shutdown, 0, 0, {}, {}, st);
  } catch (const error&) {
    // Already gone.
  }
  detail::manager_forget(*addr_);
  if (!proc->join(std::chrono::seconds(5))) {
    proc->kill();
    proc->join();
  }
}

int manager::pid() const noexcept {
  return proc_ ? proc_->pid() : (addr_ && addr_->socket.size() ? addr_->pid : 0);
}

bool manager::is_alive() const { return proc_ && proc_->is_alive(); }

const std::string& manager::authkey() const noexcept {
  static const std::string none;
  return addr_ ? addr_->authkey : none;
}

manager_stats manager::stats() const {
  if (!addr_) throw value_error("manager::stats on a moved-from manager");
  detail::mgr_status st{};
  auto p = detail::manager_call(*addr_, detail::mgr_op::stats, 0, -1, {}, {}, st);
  detail::check_reply(*addr_, st, p);
  auto t = decode<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                             std::uint64_t, std::uint64_t, std::uint64_t>>(p);
  manager_stats s;
  std::tie(s.connections, s.objects, s.waiters, s.auth_failures, s.dropped_peers, s.owner_deaths,
           s.refused_busy) = t;
  return s;
}

std::uint64_t manager::create(detail::mgr_kind kind, const std::string& name, const type_info& t,
                              std::size_t maxsize, bytes init) {
  if (!addr_) throw value_error("a moved-from manager cannot make objects");
  detail::mgr_create_spec spec;
  spec.kind = static_cast<std::uint8_t>(kind);
  spec.type = t.id;
  spec.type_name = t.names;
  spec.maxsize = maxsize;
  spec.init = std::move(init);
  bytes b = encode(spec);
  detail::mgr_status st{};
  auto p = detail::manager_call(*addr_, detail::mgr_op::create, 0, -1,
                                std::as_bytes(std::span(name.data(), name.size())), b, st);
  detail::check_reply(*addr_, st, p);
  return decode<std::uint64_t>(p);
}

}  // namespace isola
