// isola/managed.hpp — proxies to objects that live in a manager process
// (Python's multiprocessing.managers proxies): managed::dict<K,V>,
// managed::list<T>, managed::queue<T>, managed::lock, managed::event,
// managed::value<T>, managed::set<T>, managed::condition, managed::barrier,
// managed::joinable_queue<T>, managed::array<T> and managed::object<T> (a
// registered user type). Make them with an isola::manager (isola/manager.hpp).
//
//   isola::manager m;
//   auto d = m.dict<std::string, int>();
//   d.set("count", 100);
//   d.update("count", +[](int v) { return v - 1; });   // runs in the manager, atomically
//   isola::process p(worker, d, m.lock());               // proxies travel as arguments
//
// The classes are in namespace isola::managed so that they do not clash with
// isola::lock, isola::event, isola::value and isola::queue, which live in
// shared memory instead.
//
// What every process sees:
// - A proxy is a value: the manager's address, its authentication key and an
//   object id. It is cereal-serializable, so it passes to children under
//   every start method (as a process argument) and inside messages. Mind that
//   it carries the key: send it only to processes you would give the key.
// - Each process (and each thread) opens its own connection to the manager
//   on its first call, so a proxy copied by fork never shares a socket.
// - Every call is one request and one reply. Blocking calls (lock acquire,
//   event wait, a get on an empty queue, a put on a full one) are answered
//   by the manager when they can be: untimed, with a std::chrono duration,
//   and non-blocking forms, as isola's shared-memory objects have.
// - The manager dying (or shutting down) makes every call, including one
//   blocked in a wait, fail at once with isola::manager_error naming the
//   manager's pid; a call never hangs on a dead manager.
// - A process (or thread) that dies holding a managed lock releases it: the
//   next acquirer takes it and is told with isola::lock_owner_died, thrown
//   after the lock is taken, as isola::lock does.
// - Keys and values are stored encoded; two keys are the same key when their
//   encodings are equal (so keys whose encoding depends on iteration order,
//   like an unordered_set, are unsuitable).
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/deadline.hpp"
#include "isola/detail/manager_types.hpp"
#include "isola/detail/manager_wire.hpp"
#include "isola/error.hpp"
#include "isola/type_name.hpp"

namespace isola {
class manager;
}

namespace isola::managed {

using duration = std::chrono::duration<double>;

namespace detail {
using isola::detail::mgr_op;
using isola::detail::mgr_status;

/// Per-thread buffers for encoding a request's two parts.
inline bytes& scratch(int i) {
  thread_local bytes b[2];
  auto& s = b[i];
  s.clear();
  return s;
}

inline std::span<const std::byte> raw_i64(std::int64_t& v) {
  return std::as_bytes(std::span(&v, 1));
}

/// update(): decode, call the user's function, encode back.
template <class Fp>
struct fn_result;
template <class R, class... A>
struct fn_result<R (*)(A...)> {
  using type = R;
};

template <class V, class Fp, class Tuple>
bytes apply_trampoline(const void* fn, bytes& slot, std::span<const std::byte> args) {
  auto f = reinterpret_cast<Fp>(
      const_cast<void*>(isola::detail::require_registered(fn, isola::detail::fn_type_of<Fp>(),
                                                          "a manager update")));
  V v = decode<V>(slot);
  auto t = decode<Tuple>(args);
  if constexpr (std::is_void_v<typename fn_result<Fp>::type>) {
    std::apply([&](auto&... a) { f(v, a...); }, t);
  } else {
    v = std::apply([&](auto&... a) { return f(std::move(v), a...); }, t);
  }
  slot.clear();
  encode_into(v, slot);
  return slot;
}

/// value<T>::fetch_add: returns the old value.
template <class T>
bytes add_trampoline(const void*, bytes& slot, std::span<const std::byte> args) {
  T v = decode<T>(slot);
  T d = decode<T>(args);
  T old = v;
  using U = std::make_unsigned_t<T>;
  v = static_cast<T>(static_cast<U>(v) + static_cast<U>(d));
  slot.clear();
  encode_into(v, slot);
  return encode(old);
}

template <class... T>
std::uint64_t type_id() {
  std::uint64_t h = 0x9e3779b97f4a7c15ull;
  ((h = (h ^ isola::type_tag<T>()) * 0x100000001b3ull), ...);
  return h;
}
template <class... T>
std::string type_names() {
  std::string s;
  ((s += (s.empty() ? "" : ", ") + isola::type_name<T>()), ...);
  return s;
}
}  // namespace detail

/// What every proxy is: where its object lives.
class proxy {
 public:
  /// A proxy to nothing (calls are a value_error); what a load() fills in.
  proxy() = default;

  /// The object's id in its manager.
  std::uint64_t id() const noexcept { return id_; }
  /// The manager process's pid (0 when reached over TCP).
  int manager_pid() const noexcept { return addr_ ? addr_->pid : 0; }
  bool empty() const noexcept { return !addr_; }
  friend bool operator==(const proxy& a, const proxy& b) noexcept {
    return a.id_ == b.id_ && (a.addr_ == b.addr_ ||
                              (a.addr_ && b.addr_ && a.addr_->cache_key() == b.addr_->cache_key()));
  }

  template <class Archive>
  void save(Archive& ar) const {
    static const isola::detail::manager_address none{};
    ar(addr_ ? *addr_ : none, id_);
  }
  template <class Archive>
  void load(Archive& ar) {
    auto a = std::make_shared<isola::detail::manager_address>();
    ar(*a, id_);
    if (a->socket.empty() && a->host.empty())
      addr_.reset();
    else
      addr_ = std::move(a);
  }

 protected:
  friend class isola::manager;
  proxy(std::shared_ptr<const isola::detail::manager_address> a, std::uint64_t id)
      : addr_(std::move(a)), id_(id) {}

  /// The call and its status, unchecked.
  std::span<const std::byte> call_raw(detail::mgr_op op, std::int64_t timeout_ns,
                                      std::span<const std::byte> a, std::span<const std::byte> b,
                                      detail::mgr_status& st) const {
    if (!addr_) throw value_error("this managed proxy refers to no object (default-constructed)");
    return isola::detail::manager_call(*addr_, op, id_, timeout_ns, a, b, st);
  }
  /// The call; any error status is thrown.
  std::span<const std::byte> call(detail::mgr_op op, std::span<const std::byte> a = {},
                                  std::span<const std::byte> b = {}) const {
    detail::mgr_status st{};
    auto p = call_raw(op, -1, a, b, st);
    check(st, p);
    return p;
  }
  void check(detail::mgr_status st, std::span<const std::byte> p) const {
    isola::detail::check_reply(*addr_, st, p);
  }

  template <class V, class Fp, class... P, class... A>
  std::span<const std::byte> apply(detail::mgr_op op, std::span<const std::byte> key, Fp fn,
                                   A&&... args) const {
    isola::detail::mgr_apply_spec spec;
    spec.trampoline = isola::detail::function_address::of_static<
        &detail::apply_trampoline<V, Fp, std::tuple<std::decay_t<P>...>>>();
    spec.fn = isola::detail::function_address::of(fn);
    encode_into(V{}, spec.initial);
    encode_into(std::tuple<std::decay_t<P>...>(std::forward<A>(args)...), spec.args);
    auto& b = detail::scratch(1);
    encode_into(spec, b);
    return call(op, key, b);
  }

  std::shared_ptr<const isola::detail::manager_address> addr_;
  std::uint64_t id_ = 0;
};

/// A dict in the manager (Python's Manager().dict()).
template <class K, class V>
class dict : public proxy {
 public:
  // (No key_type/mapped_type: cereal would take a class with a mapped_type
  // for a std::map-like container and find two ways to serialize it.)
  dict() = default;

  /// The value at k; key_error if there is none.
  V get(const K& k) const {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::dict_get, -1, key(k), {}, st);
    check(st, p);
    return decode<V>(p);
  }
  /// The value at k, or def if there is none.
  V get(const K& k, const V& def) const {
    auto v = find(k);
    return v ? std::move(*v) : def;
  }
  /// The value at k, if any.
  std::optional<V> find(const K& k) const {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::dict_get, -1, key(k), {}, st);
    if (st == detail::mgr_status::key_error) return std::nullopt;
    check(st, p);
    return decode<V>(p);
  }
  void set(const K& k, const V& v) {
    auto& b = detail::scratch(1);
    encode_into(v, b);
    call(detail::mgr_op::dict_set, key(k), b);
  }
  /// Removes k; whether it was there.
  bool erase(const K& k) { return decode<bool>(call(detail::mgr_op::dict_erase, key(k))); }
  bool contains(const K& k) const {
    return decode<bool>(call(detail::mgr_op::dict_contains, key(k)));
  }
  std::size_t size() const { return decode<std::uint64_t>(call(detail::mgr_op::dict_size)); }
  bool empty() const { return size() == 0; }
  void clear() { call(detail::mgr_op::dict_clear); }
  /// In insertion order, as Python's dict.
  std::vector<K> keys() const { return elements<K>(call(detail::mgr_op::dict_keys)); }
  std::vector<V> values() const { return elements<V>(call(detail::mgr_op::dict_values)); }
  std::vector<std::pair<K, V>> items() const {
    isola::detail::element_reader r(call(detail::mgr_op::dict_items));
    std::vector<std::pair<K, V>> out;
    out.reserve(static_cast<std::size_t>(r.count()));
    for (std::uint64_t i = 0; i < r.count(); ++i) {  // count pairs, each a key and a value
      K k = decode<K>(r.next());
      out.emplace_back(std::move(k), decode<V>(r.next()));
    }
    return out;
  }

  /// Atomically replaces the value at k with fn(value, args...) (V{} if k is
  /// absent), running fn in the manager process; returns the new value. fn
  /// is a function pointer (or a captureless lambda with +): it travels as
  /// an address, so the caller and the manager must run the same program.
  template <class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) V update(const K& k, V (*fn)(V, P...), A&&... args) {
    using Fp = V (*)(V, P...);
    return decode<V>(
        apply<V, Fp, P...>(detail::mgr_op::dict_update, key(k), fn,
                           std::forward<A>(args)...));
  }
  /// The same with fn(value&, args...) changing the value in place.
  template <class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) V update(const K& k, void (*fn)(V&, P...), A&&... args) {
    using Fp = void (*)(V&, P...);
    return decode<V>(
        apply<V, Fp, P...>(detail::mgr_op::dict_update, key(k), fn,
                           std::forward<A>(args)...));
  }

 private:
  friend class isola::manager;
  using proxy::proxy;
  static std::span<const std::byte> key(const K& k) {
    auto& a = detail::scratch(0);
    encode_into(k, a);
    return a;
  }
  template <class T>
  static std::vector<T> elements(std::span<const std::byte> p) {
    isola::detail::element_reader r(p);
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(r.count()));
    for (std::uint64_t i = 0; i < r.count(); ++i) out.push_back(decode<T>(r.next()));
    return out;
  }
};

/// A list in the manager (Python's Manager().list()). Indices may be
/// negative, counting from the end; out of range is an index_error.
template <class T>
class list : public proxy {
 public:
  using value_type = T;
  list() = default;

  void append(const T& v) {
    auto& b = detail::scratch(1);
    encode_into(v, b);
    call(detail::mgr_op::list_append, {}, b);
  }
  T get(std::int64_t i) const {
    return decode<T>(call(detail::mgr_op::list_get, detail::raw_i64(i)));
  }
  void set(std::int64_t i, const T& v) {
    auto& b = detail::scratch(1);
    encode_into(v, b);
    call(detail::mgr_op::list_set, detail::raw_i64(i), b);
  }
  std::size_t size() const { return decode<std::uint64_t>(call(detail::mgr_op::list_size)); }
  bool empty() const { return size() == 0; }
  /// Removes and returns the element at i (the last by default).
  T pop(std::int64_t i = -1) {
    return decode<T>(call(detail::mgr_op::list_pop, detail::raw_i64(i)));
  }
  std::vector<T> items() const {
    isola::detail::element_reader r(call(detail::mgr_op::list_items));
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(r.count()));
    for (std::uint64_t i = 0; i < r.count(); ++i) out.push_back(decode<T>(r.next()));
    return out;
  }
  void clear() { call(detail::mgr_op::list_clear); }

 private:
  friend class isola::manager;
  using proxy::proxy;
};

/// A queue in the manager (Python's Manager().Queue()); maxsize 0 is
/// unbounded. get(t) throws queue_empty and put(v, t) queue_full, as
/// isola::queue does.
template <class T>
class queue : public proxy {
 public:
  using value_type = T;
  queue() = default;

  void put(const T& v) { (void)put_for(v, -1); }
  void put(const T& v, duration t) {
    if (!put_for(v, isola::detail::to_timeout_ns(t)))
      throw queue_full("managed queue: still full after the timeout");
  }
  void put_nowait(const T& v) {
    if (!put_for(v, 0)) throw queue_full("managed queue: full");
  }
  bool try_put(const T& v) { return put_for(v, 0); }

  T get() { return *get_for(-1); }
  T get(duration t) {
    auto v = get_for(isola::detail::to_timeout_ns(t));
    if (!v) throw queue_empty("managed queue: still empty after the timeout");
    return std::move(*v);
  }
  T get_nowait() {
    auto v = get_for(0);
    if (!v) throw queue_empty("managed queue: empty");
    return std::move(*v);
  }
  std::optional<T> try_get() { return get_for(0); }

  std::size_t qsize() const { return decode<std::uint64_t>(call(detail::mgr_op::queue_size)); }
  bool empty() const { return qsize() == 0; }
  bool full() const { return decode<bool>(call(detail::mgr_op::queue_full)); }

 private:
  friend class isola::manager;
  using proxy::proxy;
  bool put_for(const T& v, std::int64_t ns) {
    auto& b = detail::scratch(1);
    encode_into(v, b);
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::queue_put, ns, {}, b, st);
    if (st == detail::mgr_status::timeout) return false;
    check(st, p);
    return true;
  }
  std::optional<T> get_for(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::queue_get, ns, {}, {}, st);
    if (st == detail::mgr_status::timeout) return std::nullopt;
    check(st, p);
    return decode<T>(p);
  }
};

/// Python's Manager().JoinableQueue(): a managed queue whose items are
/// marked done. Every managed queue counts them (as Python's queue.Queue,
/// which both Manager().Queue() and JoinableQueue() serve): a joinable_queue
/// and a queue of the same name are the same object.
template <class T>
class joinable_queue : public queue<T> {
 public:
  joinable_queue() = default;
  /// One item taken is finished; value_error if called more times than
  /// items were put.
  void task_done() { this->call(detail::mgr_op::queue_task_done); }
  /// Waits until every item put has been marked done.
  void join() { (void)join_for(-1); }
  /// The same for at most t: whether every item was done.
  bool join(duration t) { return join_for(isola::detail::to_timeout_ns(t)); }

 private:
  friend class isola::manager;
  joinable_queue(std::shared_ptr<const isola::detail::manager_address> a, std::uint64_t id)
      : queue<T>(std::move(a), id) {}
  bool join_for(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = this->call_raw(detail::mgr_op::queue_join, ns, {}, {}, st);
    if (st == detail::mgr_status::timeout) return false;
    this->check(st, p);
    return true;
  }
};

/// Python's Manager().set() (3.14): a set in the manager. Elements are the
/// same when their encodings are (as dict keys); items() is a snapshot in
/// insertion order.
template <class T>
class set : public proxy {
 public:
  using value_type = T;
  set() = default;
  void add(const T& v) { call(detail::mgr_op::dict_set, key(v)); }
  /// Removes v if it is there; whether it was.
  bool discard(const T& v) { return decode<bool>(call(detail::mgr_op::dict_erase, key(v))); }
  /// Removes v; key_error if it is not there (Python's KeyError).
  void remove(const T& v) {
    if (!discard(v)) throw key_error("managed set: remove() of an element it does not hold");
  }
  bool contains(const T& v) const {
    return decode<bool>(call(detail::mgr_op::dict_contains, key(v)));
  }
  std::size_t size() const { return decode<std::uint64_t>(call(detail::mgr_op::dict_size)); }
  bool empty() const { return size() == 0; }
  void clear() { call(detail::mgr_op::dict_clear); }
  std::vector<T> items() const {
    isola::detail::element_reader r(call(detail::mgr_op::dict_keys));
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(r.count()));
    for (std::uint64_t i = 0; i < r.count(); ++i) out.push_back(decode<T>(r.next()));
    return out;
  }

 private:
  friend class isola::manager;
  using proxy::proxy;
  static std::span<const std::byte> key(const T& v) {
    auto& a = detail::scratch(0);
    encode_into(v, a);
    return a;
  }
};

/// Python's Manager().Array(): n elements of T in the manager, a size that
/// never changes; get/set bounds-checked (negative counts from the end, out
/// of range is an index_error); items() a snapshot.
template <class T>
class array : public proxy {
 public:
  using value_type = T;
  array() = default;
  T get(std::int64_t i) const {
    return decode<T>(call(detail::mgr_op::list_get, detail::raw_i64(i)));
  }
  void set(std::int64_t i, const T& v) {
    auto& b = detail::scratch(1);
    encode_into(v, b);
    call(detail::mgr_op::list_set, detail::raw_i64(i), b);
  }
  std::size_t size() const { return decode<std::uint64_t>(call(detail::mgr_op::list_size)); }
  std::vector<T> items() const {
    isola::detail::element_reader r(call(detail::mgr_op::list_items));
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(r.count()));
    for (std::uint64_t i = 0; i < r.count(); ++i) out.push_back(decode<T>(r.next()));
    return out;
  }

 private:
  friend class isola::manager;
  using proxy::proxy;
};

/// A lock in the manager (Python's Manager().Lock()). BasicLockable and
/// TimedLockable: std::scoped_lock and std::unique_lock work. The holder is
/// the calling thread's connection: release() from a thread that does not
/// hold it is a value_error, acquiring it again while holding it too (it
/// would deadlock). If the holder's process (or thread) ends holding it, the
/// next acquirer takes it and gets lock_owner_died, thrown after taking it.
/// Named plain_lock because a class cannot have a member named like itself;
/// managed::lock names it.
class plain_lock : public proxy {
 public:
  plain_lock() = default;

  void acquire() { (void)take(-1); }
  /// false if not taken by the timeout.
  bool acquire(duration t) { return take(isola::detail::to_timeout_ns(t)); }
  bool try_acquire() { return take(0); }
  void release() { call(detail::mgr_op::lock_release); }

  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return try_acquire(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& t) {
    return acquire(std::chrono::duration_cast<duration>(t));
  }
  template <class Clock, class Dur>
  bool try_lock_until(const std::chrono::time_point<Clock, Dur>& t) {
    auto left = t - Clock::now();
    return acquire(left.count() > 0 ? std::chrono::duration_cast<duration>(left)
                                    : duration::zero());
  }

 private:
  friend class isola::manager;
  using proxy::proxy;
  bool take(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::lock_acquire, ns, {}, {}, st);
    if (st == detail::mgr_status::timeout) return false;
    if (st == detail::mgr_status::owner_died)
      throw lock_owner_died(
          "managed lock: its previous holder died holding it; the lock is now held by the caller "
          "(what it guards may be half-updated)");
    check(st, p);
    return true;
  }
};
using lock = plain_lock;

/// Python's Manager().Namespace(): attributes by name, each of any
/// serializable type, held in the manager. Each value travels with its
/// type's id, so get<T> of an attribute set as another type is a type_error
/// rather than a misread; a missing attribute is a key_error (Python's
/// AttributeError).
class namespace_proxy : public proxy {
 public:
  namespace_proxy() = default;
  template <class T>
  T get(const std::string& name) const {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::dict_get, -1, key(name), {}, st);
    if (st == detail::mgr_status::key_error)
      throw key_error("managed namespace: no attribute '" + name + "'");
    check(st, p);
    auto [tid, v] = decode<std::pair<std::uint64_t, bytes>>(p);
    if (tid != detail::type_id<T>())
      throw type_error("managed namespace: attribute '" + name + "' is not a " +
                       isola::type_name<T>());
    return decode<T>(v);
  }
  template <class T>
  void set(const std::string& name, const T& v) {
    auto& b = detail::scratch(1);
    encode_into(std::pair<std::uint64_t, bytes>{detail::type_id<T>(), encode(v)}, b);
    call(detail::mgr_op::dict_set, key(name), b);
  }
  /// Python's delattr: key_error if it has no such attribute.
  void del(const std::string& name) {
    if (!decode<bool>(call(detail::mgr_op::dict_erase, key(name))))
      throw key_error("managed namespace: no attribute '" + name + "'");
  }
  bool has(const std::string& name) const {
    return decode<bool>(call(detail::mgr_op::dict_contains, key(name)));
  }

 private:
  friend class isola::manager;
  using proxy::proxy;
  static std::span<const std::byte> key(const std::string& k) {
    auto& a = detail::scratch(0);
    encode_into(k, a);
    return a;
  }
};

/// A reentrant lock in the manager (Python's Manager().RLock()): its holder
/// (the calling thread's connection) may acquire it again and releases it
/// as many times; release() by another is a value_error. If the holder's
/// process ends holding it (at any depth), the next acquirer takes it and
/// gets lock_owner_died, thrown after taking it.
class rlock : public proxy {
 public:
  rlock() = default;
  void acquire() { (void)take(-1); }
  /// false if not taken by the timeout.
  bool acquire(duration t) { return take(isola::detail::to_timeout_ns(t)); }
  bool try_acquire() { return take(0); }
  void release() { call(detail::mgr_op::rlock_release); }
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return try_acquire(); }

 private:
  friend class isola::manager;
  using proxy::proxy;
  bool take(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::rlock_acquire, ns, {}, {}, st);
    if (st == detail::mgr_status::timeout) return false;
    if (st == detail::mgr_status::owner_died)
      throw lock_owner_died(
          "managed rlock: its previous holder died holding it; the lock is now held by the "
          "caller (what it guards may be half-updated)");
    check(st, p);
    return true;
  }
};

/// A semaphore in the manager (Python's Manager().Semaphore() and
/// BoundedSemaphore()). No owner, as in Python: any process may release, and
/// a process that dies after acquiring does not give its count back.
/// release() past the initial value of a bounded one is a value_error.
class semaphore : public proxy {
 public:
  semaphore() = default;
  void acquire() { (void)take(-1); }
  /// false if not acquired by the timeout.
  bool acquire(duration t) { return take(isola::detail::to_timeout_ns(t)); }
  bool try_acquire() { return take(0); }
  void release() { call(detail::mgr_op::semaphore_release); }
  /// The count now (Python's _value; racy by nature).
  std::uint64_t get_value() const {
    return decode<std::uint64_t>(call(detail::mgr_op::semaphore_value));
  }

  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return try_acquire(); }

 private:
  friend class isola::manager;
  using proxy::proxy;
  bool take(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::semaphore_acquire, ns, {}, {}, st);
    if (st == detail::mgr_status::timeout) return false;
    check(st, p);
    return true;
  }
};
/// The same proxy; the manager enforces the bound.
using bounded_semaphore = semaphore;

/// An event in the manager (Python's Manager().Event()).
class event : public proxy {
 public:
  event() = default;
  void set() { call(detail::mgr_op::event_set); }
  void clear() { call(detail::mgr_op::event_clear); }
  bool is_set() const { return decode<bool>(call(detail::mgr_op::event_is_set)); }
  void wait() { (void)wait_for(-1); }
  /// Whether the event was set by the timeout.
  bool wait(duration t) { return wait_for(isola::detail::to_timeout_ns(t)); }

 private:
  friend class isola::manager;
  using proxy::proxy;
  bool wait_for(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::event_wait, ns, {}, {}, st);
    if (st == detail::mgr_status::timeout) return false;
    check(st, p);
    return true;
  }
};

/// A value in the manager (Python's Manager().Value()). Any serializable T.
template <class T>
class value : public proxy {
 public:
  using value_type = T;
  value() = default;
  using proxy::load;  // the cereal one, which load() below would hide
  T load() const { return decode<T>(call(detail::mgr_op::value_load)); }
  void store(const T& v) {
    auto& b = detail::scratch(1);
    encode_into(v, b);
    call(detail::mgr_op::value_store, {}, b);
  }
  /// Atomically adds d (in the manager); returns the previous value.
  T fetch_add(T d) requires std::is_integral_v<T> &&(!std::is_same_v<T, bool>) {
    isola::detail::mgr_apply_spec spec;
    spec.trampoline = isola::detail::function_address::of_static<&detail::add_trampoline<T>>();
    encode_into(d, spec.args);
    auto& b = detail::scratch(1);
    encode_into(spec, b);
    return decode<T>(call(detail::mgr_op::value_update, {}, b));
  }
  /// Atomically replaces the value with fn(value, args...), run in the
  /// manager; returns the new value (see dict::update).
  template <class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) T update(T (*fn)(T, P...), A&&... args) {
    using Fp = T (*)(T, P...);
    return decode<T>(
        apply<T, Fp, P...>(detail::mgr_op::value_update, {}, fn,
                           std::forward<A>(args)...));
  }
  template <class... P, class... A>
  requires(sizeof...(P) == sizeof...(A)) T update(void (*fn)(T&, P...), A&&... args) {
    using Fp = void (*)(T&, P...);
    return decode<T>(
        apply<T, Fp, P...>(detail::mgr_op::value_update, {}, fn,
                           std::forward<A>(args)...));
  }

 private:
  friend class isola::manager;
  using proxy::proxy;
};

/// Python's Manager().Condition(): a condition over its own reentrant lock
/// in the manager. wait() without holding the lock is a value_error (Python's
/// RuntimeError), and so is notify(). wait(t) gives the lock up, waits for a
/// notify at most t, then takes the lock back (for as long as that takes, as
/// Python's does: a holder stopped with SIGSTOP delays it) and returns
/// whether it was notified. A holder's death releases the lock: the next to
/// take it (an acquire or a returning wait) gets lock_owner_died, thrown
/// after taking it. A waiter whose process dies is dropped.
class condition : public proxy {
 public:
  condition() = default;
  void acquire() { (void)take(-1); }
  bool acquire(duration t) { return take(isola::detail::to_timeout_ns(t)); }
  bool try_acquire() { return take(0); }
  void release() { call(detail::mgr_op::condition_release); }
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return try_acquire(); }
  /// Whether anyone holds the lock (racy by nature).
  bool locked() const { return decode<bool>(call(detail::mgr_op::condition_locked)); }

  void wait() { (void)wait_ns(-1); }
  /// Whether it was notified (false: the timeout passed); the lock is held
  /// again either way.
  bool wait(duration t) { return wait_ns(isola::detail::to_timeout_ns(t)); }
  /// Waits until pred() holds (checked with the lock held).
  template <class Pred>
  bool wait_for(Pred pred) {
    while (!pred()) wait();
    return true;
  }
  /// The same for at most t in all; pred()'s last value.
  template <class Pred>
  bool wait_for(Pred pred, duration t) {
    const auto d = isola::detail::deadline::after(t);
    for (;;) {
      if (pred()) return true;
      if (d.expired()) return false;
      if (auto at = d.until()) {
        auto left = std::chrono::duration_cast<duration>(*at - isola::detail::wait_clock::now());
        (void)wait(std::max(left, duration::zero()));  // the clock moved on since expired()
      } else {
        wait();
      }
    }
  }
  /// Wakes the n longest waiters (fewer if fewer wait).
  void notify(std::size_t n = 1) {
    std::uint64_t v = n;
    call(detail::mgr_op::condition_notify, std::as_bytes(std::span(&v, 1)));
  }
  void notify_all() { notify(static_cast<std::size_t>(-1)); }

 private:
  friend class isola::manager;
  using proxy::proxy;
  [[noreturn]] static void died() {
    throw lock_owner_died(
        "managed condition: the previous holder of its lock died holding it; the lock is now "
        "held by the caller (what it guards may be half-updated)");
  }
  bool take(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::condition_acquire, ns, {}, {}, st);
    if (st == detail::mgr_status::timeout) return false;
    if (st == detail::mgr_status::owner_died) died();
    check(st, p);
    return true;
  }
  bool wait_ns(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::condition_wait, ns, {}, {}, st);
    if (st == detail::mgr_status::owner_died) died();
    check(st, p);
    if (p.size() != 1) throw decode_error("a managed condition's wait reply is malformed");
    return p[0] != std::byte{0};
  }
};

/// Python's Manager().Barrier(parties, timeout=...). wait() returns the
/// caller's arrival index (0 for the first, parties - 1 for the last).
/// broken_barrier_error if the barrier is or becomes broken: by abort(), by
/// reset() during the wait, by a wait that times out (the barrier's default
/// timeout, or wait(t)'s), or by a waiter's process dying mid-wait.
class barrier : public proxy {
 public:
  barrier() = default;
  /// With the barrier's default timeout (none: for ever).
  std::size_t wait() { return wait_ns(-1); }
  std::size_t wait(duration t) { return wait_ns(isola::detail::to_timeout_ns(t)); }
  /// Breaks the round (its waiters get broken_barrier_error); the barrier is
  /// whole again.
  void reset() { call(detail::mgr_op::barrier_reset); }
  /// Breaks the barrier until reset().
  void abort() { call(detail::mgr_op::barrier_abort); }
  std::size_t parties() const { return std::get<0>(state()); }
  std::size_t n_waiting() const { return std::get<1>(state()); }
  bool broken() const { return std::get<2>(state()); }

 private:
  friend class isola::manager;
  using proxy::proxy;
  std::tuple<std::uint64_t, std::uint64_t, bool> state() const {
    return decode<std::tuple<std::uint64_t, std::uint64_t, bool>>(
        call(detail::mgr_op::barrier_state));
  }
  std::size_t wait_ns(std::int64_t ns) {
    detail::mgr_status st{};
    auto p = call_raw(detail::mgr_op::barrier_wait, ns, {}, {}, st);
    if (st == detail::mgr_status::broken_barrier)
      throw broken_barrier_error(
          "managed barrier: broken (aborted, reset, a wait timed out, or a "
          "waiter's process died)");
    check(st, p);
    std::uint64_t index = 0;
    if (p.size() != 8) throw decode_error("a managed barrier's wait reply is malformed");
    std::memcpy(&index, p.data(), 8);
    return static_cast<std::size_t>(index);
  }
};

/// An instance of a user type in the manager (Python's BaseManager.register
/// and the proxy it makes): see manager::register_type. call<R>(name, args)
/// runs the registered method name on it in the manager and returns its
/// result. The arguments must have the method's parameter types exactly
/// (after decay: pass 1L to a long) and R its result type, or the call is a
/// type_error; a name not registered is a value_error; an exception the
/// method throws is a remote_error.
template <class T>
class object : public proxy {
 public:
  object() = default;
  template <class R = void, class... A>
  R call(const std::string& method, A&&... args) {
    auto& a = detail::scratch(0);
    auto n = std::as_bytes(std::span(method.data(), method.size()));
    a.assign(n.begin(), n.end());
    bytes encoded = encode(std::tuple<std::decay_t<A>...>(std::forward<A>(args)...));
    auto& b = detail::scratch(1);
    encode_into(
        std::tuple<std::uint64_t, std::uint64_t, bytes>{
            isola::detail::mgr_type_id<std::decay_t<A>...>(), isola::detail::mgr_result_id<R>(),
            std::move(encoded)},
        b);
    auto p = proxy::call(detail::mgr_op::object_call, a, b);
    if constexpr (!std::is_void_v<R>) return decode<R>(p);
  }

 private:
  friend class isola::manager;
  using proxy::proxy;
};

/// What manager::register_type returns: add the methods clients may call.
template <class T>
class type_registration {
 public:
  explicit type_registration(std::string name) : name_(std::move(name)) {}
  /// Registers the member function M under name (nothing else of T is
  /// callable through the manager).
  template <auto M>
  type_registration& method(const std::string& name) {
    using traits = isola::detail::mgr_member<decltype(M)>;
    static_assert(std::is_same_v<typename traits::cls, T>, "a member function of T");
    isola::detail::mgr_method_entry e;
    e.name = name;
    e.args_type = traits::args_id();
    e.result_type = isola::detail::mgr_result_id<typename traits::result>();
    e.signature = traits::signature();
    e.fn = isola::detail::function_address::of_static<&isola::detail::mgr_method_trampoline<M>>();
    isola::detail::register_manager_method(name_, std::move(e));
    return *this;
  }

 private:
  std::string name_;
};

}  // namespace isola::managed
