// isola/manager.hpp — a server process that owns shared objects, reached
// through proxies (Python's multiprocessing.Manager() and BaseManager).
//
//   isola::manager m;                                   // starts the manager process
//   auto d = m.dict<std::string, int>();                // managed::dict<std::string, int>
//   auto l = m.lock();                                  // managed::lock
//   isola::process p(worker, d, l);                     // proxies pass to children
//
//   // Python's BaseManager: serve over TCP, connect from elsewhere.
//   std::uint16_t port = m.serve(5000, "secret");       // also listen on 127.0.0.1:5000
//   auto q = m.queue<job>("jobs");                      // a named object
//   ...elsewhere:
//   auto r = isola::manager::connect("127.0.0.1", 5000, "secret");
//   auto jobs = r.queue<job>("jobs");                   // opens the same queue
//
// The manager is an isola::process (the current start method, or the one in
// manager_options) running a single-threaded epoll server. It listens on an
// abstract AF_UNIX socket (nothing on disk to clean up) and, after serve(),
// on TCP. Every connection, local or TCP, first passes an HMAC-SHA256
// challenge in both directions over the authentication key, before any byte
// of it is decoded; a wrong key is an authentication_error on both sides.
// A key shorter than 16 bytes is stretched with PBKDF2 first (see
// runtime/src/sys/handshake.hpp); use 16 random bytes or more for a key that
// travels over a network.
//
// What the key grants: the shared objects (make, open, read, change, wait).
// Only the process that started the manager, over its local socket, may
// serve() it on TCP or shut it down; any other client (TCP, or another local
// process) asking is refused with value_error, and the manager goes on.
//
// Floods: at most 256 connections wait in the handshake at once, 32 from one
// source address; beyond that a connection is told "busy" and closed (its
// client tries again until its 10 s deadline, then manager_error), and each
// waits at most 10 s. Out of descriptors, the manager sheds connections
// instead of spinning.
//
// Lifetime: ~manager() (and shutdown()) stops the manager process, like
// leaving Python's `with Manager() as m:` block; proxies used afterwards fail
// with manager_error. The manager dies with the process that started it
// (PR_SET_PDEATHSIG, like every isola child: start it from the main thread
// or a thread that lives as long). Objects live until the manager ends (no
// reference counting across processes, unlike Python's proxies).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "isola/managed.hpp"
#include "isola/start_method.hpp"

namespace isola {

class process;

struct manager_options {
  /// Default: get_start_method(), except that a program running threads
  /// uses forkserver rather than fork (docs/decisions.md).
  std::optional<start_method> method{};
  /// The key of the local socket; empty: 32 random bytes (each manager its own).
  std::string authkey{};
  /// The manager process's name; default "manager-N".
  std::string name{};
  /// Largest request or reply frame; a larger one from a peer drops it.
  std::size_t max_message_size = std::size_t{256} << 20;
  /// Every TCP connection (serve()) runs inside TLS 1.3 keyed by its
  /// handshake (no certificates; docs/security.md). Clients connect with
  /// manager_connect_options::tls; one that does not is refused. The local
  /// socket stays as it is (the kernel carries it).
  bool tls = false;
};

struct manager_connect_options {
  /// TLS on the connection: the manager must serve with manager_options::tls;
  /// a mismatch either way is a manager_error naming it, at once.
  bool tls = false;
};

/// What a manager reports about itself (mostly for tests and monitoring).
struct manager_stats {
  std::uint64_t connections = 0;    ///< authenticated connections open now
  std::uint64_t objects = 0;        ///< shared objects it holds
  std::uint64_t waiters = 0;        ///< calls blocked in a lock, event or queue wait
  std::uint64_t auth_failures = 0;  ///< peers that failed the handshake
  std::uint64_t dropped_peers = 0;  ///< peers dropped for malformed or oversize input
  std::uint64_t owner_deaths = 0;   ///< locks released because their holder's connection closed
  std::uint64_t refused_busy = 0;   ///< connections refused at a cap of pending handshakes
};

class manager {
 public:
  /// Starts a manager process.
  manager();
  explicit manager(manager_options opts);
  /// Shuts the manager down if this handle started it; never throws.
  ~manager();
  manager(manager&&) noexcept;
  manager& operator=(manager&&) noexcept;
  manager(const manager&) = delete;
  manager& operator=(const manager&) = delete;

  /// A handle on a manager that serves on host:port (serve()), authenticated
  /// with authkey: authentication_error if the key is wrong, manager_error if
  /// nothing answers (or it stays busy) within 10 s. Its proxies talk TCP.
  /// Its destructor leaves the manager running; it cannot serve or shut the
  /// manager down.
  static manager connect(const std::string& host, std::uint16_t port, std::string authkey);
  static manager connect(const std::string& host, std::uint16_t port, std::string authkey,
                         const manager_connect_options& opts);
  /// The same with "host:port".
  static manager connect(const std::string& endpoint, std::string authkey);

  /// Makes the manager also listen on TCP host:port (port 0: any free one),
  /// where connections must prove authkey; returns the port. "0.0.0.0" listens
  /// on every address; the default host is the loopback. os_error if the
  /// address cannot be bound; value_error from any handle but the one that
  /// started the manager (in the process that started it).
  std::uint16_t serve(std::uint16_t port, std::string authkey) {
    return serve("127.0.0.1", port, std::move(authkey));
  }
  std::uint16_t serve(const std::string& host, std::uint16_t port, std::string authkey);

  /// Stops the manager process (if this handle started it): pending calls in
  /// other processes fail with manager_error. Idempotent.
  void shutdown();

  /// The manager process's pid (0 for a connected handle).
  int pid() const noexcept;
  /// Whether the manager process runs (false for a connected handle).
  bool is_alive() const;
  /// The key proxies of this handle authenticate with.
  const std::string& authkey() const noexcept;
  manager_stats stats() const;

  // Shared objects. The unnamed forms make a new object; the named forms
  // open the object of that name, making it first if there is none (how
  // processes that connect() find what the server made). A named object
  // opened with other types (or as another kind) is a type_error.
  template <class K, class V>
  managed::dict<K, V> dict() {
    return {addr_, create(isola::detail::mgr_kind::dict, {}, type_of<K, V>(), 0, {})};
  }
  template <class K, class V>
  managed::dict<K, V> dict(const std::string& name) {
    return {addr_, create(isola::detail::mgr_kind::dict, name, type_of<K, V>(), 0, {})};
  }
  template <class T>
  managed::list<T> list(const std::string& name = {}) {
    return {addr_, create(isola::detail::mgr_kind::list, name, type_of<T>(), 0, {})};
  }
  /// maxsize 0: unbounded.
  template <class T>
  managed::queue<T> queue(std::size_t maxsize = 0) {
    return {addr_, create(isola::detail::mgr_kind::queue, {}, type_of<T>(), maxsize, {})};
  }
  template <class T>
  managed::queue<T> queue(const std::string& name, std::size_t maxsize = 0) {
    return {addr_, create(isola::detail::mgr_kind::queue, name, type_of<T>(), maxsize, {})};
  }
  managed::lock lock(const std::string& name = {}) {
    return {addr_, create(isola::detail::mgr_kind::lock, name, type_of<>(), 0, {})};
  }
  /// Python's Manager().Namespace() (held as a dict of typed values).
  managed::namespace_proxy namespace_() {
    return {addr_, create(isola::detail::mgr_kind::dict, {}, type_of<std::string, std::pair<std::uint64_t, bytes>>(), 0,
                          {})};
  }
  /// Python's Manager().Semaphore(value): value_error if value < 0.
  managed::semaphore semaphore(std::ptrdiff_t value = 1) { return make_semaphore(value, false); }
  /// Python's Manager().BoundedSemaphore(value): release() past value fails.
  managed::bounded_semaphore bounded_semaphore(std::ptrdiff_t value = 1) {
    return make_semaphore(value, true);
  }
  managed::rlock rlock(const std::string& name = {}) {
    return {addr_, create(isola::detail::mgr_kind::rlock, name, type_of<>(), 0, {})};
  }
  managed::event event(const std::string& name = {}) {
    return {addr_, create(isola::detail::mgr_kind::event, name, type_of<>(), 0, {})};
  }
  /// Python's Manager().set().
  template <class T>
  managed::set<T> set(const std::string& name = {}) {
    return {addr_, create(isola::detail::mgr_kind::dict, name,
                          {managed::detail::type_id<set_tag, T>(),
                           "set of " + managed::detail::type_names<T>()},
                          0, {})};
  }
  /// Python's Manager().Condition() (over its own reentrant lock).
  managed::condition condition(const std::string& name = {}) {
    return {addr_, create(isola::detail::mgr_kind::condition, name, type_of<>(), 0, {})};
  }
  /// Python's Manager().Barrier(parties, timeout=None): value_error for 0
  /// parties; timeout: the default for wait().
  managed::barrier barrier(std::size_t parties,
                           std::optional<std::chrono::duration<double>> timeout = std::nullopt) {
    if (parties == 0) throw value_error("a barrier needs at least one party");
    std::int64_t ns = timeout ? isola::detail::to_timeout_ns(*timeout) : -1;
    auto p = std::as_bytes(std::span(&ns, 1));
    return {addr_, create(isola::detail::mgr_kind::barrier, {}, type_of<>(), parties,
                          bytes(p.begin(), p.end()))};
  }
  /// Python's Manager().JoinableQueue(maxsize); maxsize 0: unbounded.
  template <class T>
  managed::joinable_queue<T> joinable_queue(std::size_t maxsize = 0) {
    return {addr_, create(isola::detail::mgr_kind::queue, {}, type_of<T>(), maxsize, {})};
  }
  template <class T>
  managed::joinable_queue<T> joinable_queue(const std::string& name, std::size_t maxsize = 0) {
    return {addr_, create(isola::detail::mgr_kind::queue, name, type_of<T>(), maxsize, {})};
  }
  /// Python's Manager().Array(): n copies of fill, a size that never
  /// changes (value_error for n == 0; one array holds at most 256 MiB).
  template <class T>
  managed::array<T> array(std::size_t n, const T& fill = T{}) {
    if (n == 0) throw value_error("a managed array needs at least one element");
    return {addr_, create(isola::detail::mgr_kind::list, {},
                          {managed::detail::type_id<array_tag, T>(),
                           "array of " + managed::detail::type_names<T>()},
                          n, encode(fill))};
  }

  /// Python's BaseManager.register(name, T): managers started afterwards by
  /// this process (or by its fork children, which inherit the table) serve T
  /// under name, constructed from CtorArgs. Add the callable methods to what
  /// it returns:
  ///   isola::manager::register_type<counter, int>("counter")
  ///       .method<&counter::inc>("inc")
  ///       .method<&counter::get>("get");
  /// Registering a name again replaces it (as Python's register).
  template <class T, class... CtorArgs>
  static managed::type_registration<T> register_type(const std::string& name) {
    isola::detail::mgr_type_entry e;
    e.name = name;
    e.type = managed::detail::type_id<T>();
    e.ctor_args_type = isola::detail::mgr_type_id<std::decay_t<CtorArgs>...>();
    e.ctor_signature = isola::detail::mgr_type_names<std::decay_t<CtorArgs>...>();
    e.make = isola::detail::function_address::of_static<
        &isola::detail::mgr_new_trampoline<T, std::decay_t<CtorArgs>...>>();
    e.destroy =
        isola::detail::function_address::of_static<&isola::detail::mgr_delete_trampoline<T>>();
    isola::detail::register_manager_type(std::move(e));
    return managed::type_registration<T>(name);
  }
  /// A new T registered as type_name, constructed in the manager from args
  /// (their types exactly the registered CtorArgs, else type_error;
  /// value_error if no such type was registered before the manager started).
  template <class T, class... A>
  managed::object<T> make(const std::string& type_name, A&&... args) {
    bytes init = encode(std::pair<std::uint64_t, bytes>{
        isola::detail::mgr_type_id<std::decay_t<A>...>(),
        encode(std::tuple<std::decay_t<A>...>(std::forward<A>(args)...))});
    return {addr_, create(isola::detail::mgr_kind::object, {},
                          {managed::detail::type_id<T>(), type_name}, 0, std::move(init))};
  }

  template <class T>
  managed::value<T> value(const T& init = T{}) {
    return {addr_, create(isola::detail::mgr_kind::value, {}, type_of<T>(), 0, encode(init))};
  }
  /// Named: init is used only if the value does not exist yet.
  template <class T>
  managed::value<T> value(const std::string& name, const T& init) {
    return {addr_, create(isola::detail::mgr_kind::value, name, type_of<T>(), 0, encode(init))};
  }

 private:
  manager(std::shared_ptr<const isola::detail::manager_address> addr);
  managed::semaphore make_semaphore(std::ptrdiff_t value, bool bounded) {
    if (value < 0) throw value_error("semaphore initial value must be >= 0");
    return {addr_, create(isola::detail::mgr_kind::semaphore, {}, type_of<>(),
                          static_cast<std::size_t>(value),
                          bytes{static_cast<std::byte>(bounded ? 1 : 0)})};
  }
  struct type_info {
    std::uint64_t id;
    std::string names;
  };
  // Tell a set from a dict, and an array from a list, of the same name.
  struct set_tag {};
  struct array_tag {};
  template <class... T>
  static type_info type_of() {
    return {managed::detail::type_id<T...>(), managed::detail::type_names<T...>()};
  }
  std::uint64_t create(isola::detail::mgr_kind kind, const std::string& name, const type_info& t,
                       std::size_t maxsize, bytes init);

  std::shared_ptr<const isola::detail::manager_address> addr_;
  std::unique_ptr<process> proc_;  // set when this handle started the manager
  int owner_ = 0;                  // the process that started it (a fork child's copy does nothing)
};

}  // namespace isola
