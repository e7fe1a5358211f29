// The manager process: a single-threaded epoll server that owns the shared
// objects and answers proxies (see isola/manager.hpp, docs/decisions.md).
//
// Everything happens on one thread, so every operation is atomic with respect
// to every other; a blocking call (lock acquire, event wait, queue get/put) is
// a waiter kept with its object and answered when it can be, or when its
// deadline passes. A peer whose connection closes (its process died) loses
// its waiters and releases its locks, which the next acquirer is told about.
#include <cxxabi.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "isola/codec.hpp"
#include "isola/logging.hpp"
#include "manager/protocol.hpp"

namespace isola::detail {

namespace {

using clk = std::chrono::steady_clock;
using timer_map = std::multimap<clk::time_point, std::pair<std::uint64_t, std::uint64_t>>;

constexpr std::uint64_t peer_base = std::uint64_t{1} << 32;

struct waiter {
  std::uint64_t wid = 0;
  std::uint64_t peer = 0;
  std::uint64_t req = 0;
  bool timed = false;
  timer_map::iterator timer;
  bytes item;  // a queue put's item
};

struct dict_entry {
  std::uint64_t seq = 0;
  bytes value;
};

struct object {
  std::uint64_t id = 0;
  mgr_kind kind{};
  std::uint64_t type = 0;
  std::string type_name;
  std::string name;
  // dict
  std::unordered_map<std::string, dict_entry> dict;
  std::uint64_t seq = 0;
  // list
  std::vector<bytes> list;
  // queue
  std::deque<bytes> items;
  std::uint64_t maxsize = 0;
  std::deque<waiter> putters;
  // lock acquirers, event waiters, queue getters
  std::deque<waiter> waiters;
  // lock
  std::uint64_t holder = 0;
  bool owner_died = false;
  // event
  bool flag = false;
  // value
  bytes value;
};

struct listener {
  int fd = -1;
  std::string authkey;
  std::string where;
};

struct peer {
  std::uint64_t id = 0;
  int fd = -1;
  std::size_t listener = 0;
  bool ready = false;
  bool dead = false;
  bool same_program = false;
  bool want_out = false;
  std::array<std::uint8_t, 32> challenge{};
  timer_map::iterator hs_timer;
  bool hs_timed = false;
  bytes in;
  std::size_t used = 0;
  bytes out;
  std::size_t out_pos = 0;
  std::string desc;
};

const char* kind_name(mgr_kind k) {
  switch (k) {
    case mgr_kind::dict: return "dict";
    case mgr_kind::list: return "list";
    case mgr_kind::queue: return "queue";
    case mgr_kind::lock: return "lock";
    case mgr_kind::event: return "event";
    case mgr_kind::value: return "value";
  }
  return "object";
}

mgr_kind kind_of(mgr_op op) {
  auto v = static_cast<unsigned>(op);
  if (v < 32) return mgr_kind::dict;
  if (v < 48) return mgr_kind::list;
  if (v < 64) return mgr_kind::queue;
  if (v < 80) return mgr_kind::lock;
  if (v < 96) return mgr_kind::event;
  return mgr_kind::value;
}

std::string demangle(const char* n) {
  int st = 0;
  char* d = abi::__cxa_demangle(n, nullptr, nullptr, &st);
  std::string s = st == 0 && d ? d : n;
  std::free(d);
  return s;
}

std::span<const std::byte> text(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

void put_u64(bytes& b, std::uint64_t v) {
  auto* p = reinterpret_cast<const std::byte*>(&v);
  b.insert(b.end(), p, p + 8);
}
void put_element(bytes& b, std::span<const std::byte> e) {
  auto n = static_cast<std::uint32_t>(e.size());
  auto* p = reinterpret_cast<const std::byte*>(&n);
  b.insert(b.end(), p, p + 4);
  b.insert(b.end(), e.begin(), e.end());
}

class server {
 public:
  server(int listen_fd, std::string authkey, std::size_t max_message)
      : max_message_(std::min(max_message, max_frame_payload)) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw os_error(errno, "manager: epoll_create1");
    add_listener(listen_fd, std::move(authkey), "local socket");
  }
  ~server() {
    for (auto& [id, p] : peers_)
      if (p->fd >= 0) ::close(p->fd);
    for (auto& l : listeners_)
      if (l.fd >= 0) ::close(l.fd);
    if (ep_ >= 0) ::close(ep_);
  }

  int run() {
    epoll_event evs[64];
    while (!stop_) {
      int timeout = -1;
      if (!timers_.empty()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(timers_.begin()->first -
                                                                          clk::now())
                        .count();
        timeout = static_cast<int>(std::clamp<long long>(left + 1, 0, 1 << 30));
      }
      int n = ::epoll_wait(ep_, evs, 64, timeout);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw os_error(errno, "manager: epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        std::uint64_t key = evs[i].data.u64;
        if (key < peer_base) {
          accept_all(static_cast<std::size_t>(key - 1));
          continue;
        }
        auto it = peers_.find(key);
        if (it == peers_.end() || it->second->dead) continue;
        peer& p = *it->second;
        if (evs[i].events & EPOLLIN)
          on_readable(p);
        else if (evs[i].events & (EPOLLERR | EPOLLHUP))
          drop(p);
        if (!p.dead && (evs[i].events & EPOLLOUT)) flush(p);
      }
      fire_timers();
      for (auto id : dirty_) {
        auto it = peers_.find(id);
        if (it != peers_.end() && !it->second->dead) flush(*it->second);
      }
      dirty_.clear();
      for (auto id : dead_) peers_.erase(id);
      dead_.clear();
    }
    // Best effort: the shutdown's reply (and any other) goes out before we close.
    for (auto& [id, p] : peers_)
      if (!p->dead) flush(*p);
    return 0;
  }

 private:
  // --- sockets ------------------------------------------------------------------

  void add_listener(int fd, std::string key, std::string where) {
    int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    listeners_.push_back({fd, std::move(key), std::move(where)});
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = listeners_.size();
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) throw os_error(errno, "manager: epoll_ctl");
  }

  void accept_all(std::size_t li) {
    for (;;) {
      sockaddr_storage ss{};
      socklen_t sl = sizeof ss;
      int fd = ::accept4(listeners_[li].fd, reinterpret_cast<sockaddr*>(&ss), &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of descriptors: try again on the next wake-up
      }
      auto p = std::make_unique<peer>();
      p->id = next_peer_++;
      p->fd = fd;
      p->listener = li;
      p->desc = describe_peer(ss);
      if (ss.ss_family != AF_UNIX) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      p->challenge = random_challenge();
      p->hs_timer = timers_.emplace(clk::now() + handshake_timeout, std::make_pair(0, p->id));
      p->hs_timed = true;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = p->id;
      if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        timers_.erase(p->hs_timer);
        ::close(fd);
        continue;
      }
      peer& ref = *p;
      peers_.emplace(p->id, std::move(p));
      ref.out.insert(ref.out.end(), reinterpret_cast<const std::byte*>(hello_magic),
                     reinterpret_cast<const std::byte*>(hello_magic) + sizeof hello_magic);
      ref.out.insert(ref.out.end(), reinterpret_cast<const std::byte*>(ref.challenge.data()),
                     reinterpret_cast<const std::byte*>(ref.challenge.data()) + 32);
      flush(ref);
    }
  }

  static std::string describe_peer(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    return "a local process";
  }

  void on_readable(peer& p) {
    if (p.in.size() < p.used + 65536) p.in.resize(p.used + 65536);
    ssize_t r = ::recv(p.fd, p.in.data() + p.used, p.in.size() - p.used, 0);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) return;
      drop(p);
      return;
    }
    if (r == 0) {
      drop(p);
      return;
    }
    p.used += static_cast<std::size_t>(r);
    std::size_t pos = 0;
    if (!p.ready) {
      if (p.used < response_size) return;
      if (!authenticate(p)) return;
      pos = response_size;
    }
    while (p.used - pos >= 4) {
      std::uint32_t len;
      std::memcpy(&len, p.in.data() + pos, 4);
      if (len < sizeof(request_header) - 4 || len > max_message_) {
        get_logger().warning("manager: dropped " + p.desc + ": a frame of " + std::to_string(len) +
                             " bytes (the limit is " + std::to_string(max_message_) + ")");
        ++dropped_;
        drop(p);
        return;
      }
      if (p.used - pos < 4 + std::size_t{len}) break;
      on_frame(p, p.in.data() + pos, 4 + std::size_t{len});
      if (p.dead) return;
      pos += 4 + std::size_t{len};
    }
    if (pos > 0) {
      std::memmove(p.in.data(), p.in.data() + pos, p.used - pos);
      p.used -= pos;
    }
    if (p.used >= 4) {  // grow towards a large frame, doubling
      std::uint32_t len;
      std::memcpy(&len, p.in.data(), 4);
      std::size_t need = 4 + std::size_t{len};
      if (p.in.size() < need) p.in.resize(std::min(need, std::max(p.in.size() * 2, p.used + 65536)));
    }
    if (p.in.size() > (std::size_t{1} << 20) && p.used < 65536) {  // give a large buffer back
      p.in.resize(65536);
      p.in.shrink_to_fit();
    }
  }

  bool authenticate(peer& p) {
    auto& key = listeners_[p.listener].authkey;
    auto expect = handshake_mac(key, client_label, p.challenge);
    auto* in = reinterpret_cast<const std::uint8_t*>(p.in.data());
    if (p.hs_timed) {
      timers_.erase(p.hs_timer);
      p.hs_timed = false;
    }
    if (!constant_time_equal(std::span(in, 32), expect)) {
      ++auth_failures_;
      get_logger().warning("manager: authentication_error: " + p.desc + " on the " +
                           listeners_[p.listener].where +
                           " failed the handshake (wrong key, or not an isola client); dropped");
      ::send(p.fd, "FAIL", 4, MSG_NOSIGNAL | MSG_DONTWAIT);
      drop(p);
      return false;
    }
    std::array<std::uint8_t, 32> theirs;
    std::memcpy(theirs.data(), in + 32, 32);
    p.same_program = std::memcmp(in + 64, program_identity().data(), 32) == 0;
    auto mac = handshake_mac(key, server_label, theirs);
    p.out.insert(p.out.end(), reinterpret_cast<const std::byte*>("OKAY"),
                 reinterpret_cast<const std::byte*>("OKAY") + 4);
    p.out.insert(p.out.end(), reinterpret_cast<const std::byte*>(mac.data()),
                 reinterpret_cast<const std::byte*>(mac.data()) + 32);
    p.ready = true;
    mark(p.id);
    return true;
  }

  void flush(peer& p) {
    while (p.out_pos < p.out.size()) {
      ssize_t r = ::send(p.fd, p.out.data() + p.out_pos, p.out.size() - p.out_pos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        drop(p);
        return;
      }
      p.out_pos += static_cast<std::size_t>(r);
    }
    bool pending = p.out_pos < p.out.size();
    if (!pending) {
      p.out.clear();
      p.out_pos = 0;
      if (p.out.capacity() > (std::size_t{1} << 20)) p.out.shrink_to_fit();
    }
    if (pending != p.want_out) {
      p.want_out = pending;
      epoll_event ev{};
      ev.events = EPOLLIN | (pending ? EPOLLOUT : 0u);
      ev.data.u64 = p.id;
      ::epoll_ctl(ep_, EPOLL_CTL_MOD, p.fd, &ev);
    }
  }

  void mark(std::uint64_t id) { dirty_.push_back(id); }

  void drop(peer& p) {
    if (p.dead) return;
    p.dead = true;
    if (p.hs_timed) {
      timers_.erase(p.hs_timer);
      p.hs_timed = false;
    }
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, p.fd, nullptr);
    ::close(p.fd);
    p.fd = -1;
    dead_.push_back(p.id);
    if (!p.ready) return;
    // Its waits end; its locks are released, and the next holder is told.
    for (auto& [id, o] : objects_) {
      forget_waiters(o->waiters, p.id);
      forget_waiters(o->putters, p.id);
      if (o->kind == mgr_kind::lock && o->holder == p.id) {
        o->holder = 0;
        o->owner_died = true;
        ++owner_deaths_;
        grant_lock(*o);
      }
    }
  }

  void forget_waiters(std::deque<waiter>& q, std::uint64_t peer_id) {
    for (auto it = q.begin(); it != q.end();) {
      if (it->peer == peer_id) {
        if (it->timed) timers_.erase(it->timer);
        it = q.erase(it);
      } else {
        ++it;
      }
    }
  }

  // --- replies ------------------------------------------------------------------

  void reply(std::uint64_t peer_id, std::uint64_t req, mgr_status st,
             std::span<const std::byte> payload = {}) {
    auto it = peers_.find(peer_id);
    if (it == peers_.end() || it->second->dead) return;
    peer& p = *it->second;
    reply_header h{};
    h.length = static_cast<std::uint32_t>(sizeof h - 4 + payload.size());
    h.id = req;
    h.status = static_cast<std::uint32_t>(st);
    auto* hp = reinterpret_cast<const std::byte*>(&h);
    p.out.insert(p.out.end(), hp, hp + sizeof h);
    p.out.insert(p.out.end(), payload.begin(), payload.end());
    mark(peer_id);
  }
  void reply_text(std::uint64_t peer_id, std::uint64_t req, mgr_status st, const std::string& s) {
    reply(peer_id, req, st, text(s));
  }
  template <class T>
  void reply_value(std::uint64_t peer_id, std::uint64_t req, const T& v) {
    scratch_.clear();
    encode_into(v, scratch_);
    reply(peer_id, req, mgr_status::ok, scratch_);
  }

  waiter& add_waiter(object& o, std::deque<waiter>& q, std::uint64_t peer_id, std::uint64_t req,
                     std::int64_t timeout_ns) {
    waiter w;
    w.wid = ++next_wid_;
    w.peer = peer_id;
    w.req = req;
    if (timeout_ns > 0) {
      w.timed = true;
      w.timer = timers_.emplace(clk::now() + std::chrono::nanoseconds(timeout_ns),
                                std::make_pair(o.id, w.wid));
    }
    q.push_back(std::move(w));
    return q.back();
  }
  waiter take_front(std::deque<waiter>& q) {
    waiter w = std::move(q.front());
    q.pop_front();
    if (w.timed) timers_.erase(w.timer);
    return w;
  }

  void fire_timers() {
    auto now = clk::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto [obj, wid] = timers_.begin()->second;
      timers_.erase(timers_.begin());
      if (obj == 0) {  // a handshake that did not come
        auto it = peers_.find(wid);
        if (it != peers_.end() && !it->second->dead) {
          it->second->hs_timed = false;
          ++auth_failures_;
          get_logger().warning("manager: " + it->second->desc +
                               " did not complete the handshake in time; dropped");
          drop(*it->second);
        }
        continue;
      }
      auto it = objects_.find(obj);
      if (it == objects_.end()) continue;
      for (auto* q : {&it->second->waiters, &it->second->putters}) {
        for (auto w = q->begin(); w != q->end(); ++w) {
          if (w->wid != wid) continue;
          w->timed = false;  // its timer is gone already
          auto peer_id = w->peer, req = w->req;
          q->erase(w);
          reply(peer_id, req, mgr_status::timeout);
          break;
        }
      }
    }
  }

  // --- requests -----------------------------------------------------------------

  void on_frame(peer& p, const std::byte* f, std::size_t n) {
    request_header h;
    std::memcpy(&h, f, sizeof h);
    std::size_t body = n - sizeof h;
    if (h.alen > body) {
      get_logger().warning("manager: dropped " + p.desc + ": a malformed request");
      ++dropped_;
      drop(p);
      return;
    }
    std::span<const std::byte> a(f + sizeof h, h.alen);
    std::span<const std::byte> b(f + sizeof h + h.alen, body - h.alen);
    auto op = static_cast<mgr_op>(h.op);
    try {
      dispatch(p, h, op, a, b);
    } catch (const std::exception& e) {
      reply_text(p.id, h.id, mgr_status::value_error,
                 std::string("the manager could not do ") + op_name(op) + ": " + e.what());
    }
  }

  object* find(std::uint64_t peer_id, std::uint64_t req, std::uint64_t id, mgr_kind kind) {
    auto it = objects_.find(id);
    if (it == objects_.end()) {
      reply_text(peer_id, req, mgr_status::value_error,
                 "the manager has no object #" + std::to_string(id) +
                     " (a proxy of another manager, or of one that restarted?)");
      return nullptr;
    }
    if (it->second->kind != kind) {
      reply_text(peer_id, req, mgr_status::type_error,
                 std::string("managed object #") + std::to_string(id) + " is a " +
                     kind_name(it->second->kind) + ", not a " + kind_name(kind));
      return nullptr;
    }
    return it->second.get();
  }

  void dispatch(peer& p, const request_header& h, mgr_op op, std::span<const std::byte> a,
                std::span<const std::byte> b) {
    const auto pid = p.id;
    const auto req = h.id;
    switch (op) {
      case mgr_op::create: return create(pid, req, a, b);
      case mgr_op::shutdown:
        stop_ = true;
        return reply(pid, req, mgr_status::ok);
      case mgr_op::serve: return serve(pid, req, a, b);
      case mgr_op::stats: {
        std::uint64_t conns = 0, waits = 0;
        for (auto& [id, q] : peers_) conns += q->ready && !q->dead;
        for (auto& [id, o] : objects_) waits += o->waiters.size() + o->putters.size();
        return reply_value(pid, req,
                           std::make_tuple(conns, std::uint64_t(objects_.size()), waits,
                                           auth_failures_, dropped_, owner_deaths_));
      }
      default:
        break;
    }
    object* o = find(pid, req, h.object, kind_of(op));
    if (!o) return;
    switch (op) {
      // dict
      case mgr_op::dict_get: {
        auto it = o->dict.find(key(a));
        if (it == o->dict.end()) return reply(pid, req, mgr_status::key_error);
        return reply(pid, req, mgr_status::ok, it->second.value);
      }
      case mgr_op::dict_set: {
        auto [it, fresh] = o->dict.try_emplace(key(a));
        if (fresh) it->second.seq = ++o->seq;
        it->second.value.assign(b.begin(), b.end());
        return reply(pid, req, mgr_status::ok);
      }
      case mgr_op::dict_erase: return reply_value(pid, req, o->dict.erase(key(a)) > 0);
      case mgr_op::dict_contains: return reply_value(pid, req, o->dict.count(key(a)) > 0);
      case mgr_op::dict_size: return reply_value(pid, req, std::uint64_t(o->dict.size()));
      case mgr_op::dict_clear:
        o->dict.clear();
        return reply(pid, req, mgr_status::ok);
      case mgr_op::dict_keys:
      case mgr_op::dict_values:
      case mgr_op::dict_items: {
        std::vector<const std::pair<const std::string, dict_entry>*> order;
        order.reserve(o->dict.size());
        for (auto& e : o->dict) order.push_back(&e);
        std::sort(order.begin(), order.end(),
                  [](auto* x, auto* y) { return x->second.seq < y->second.seq; });
        scratch_.clear();
        put_u64(scratch_, order.size());
        for (auto* e : order) {
          if (op != mgr_op::dict_values) put_element(scratch_, text(e->first));
          if (op != mgr_op::dict_keys) put_element(scratch_, e->second.value);
        }
        return reply(pid, req, mgr_status::ok, scratch_);
      }
      case mgr_op::dict_update: {
        auto k = key(a);
        auto it = o->dict.find(k);
        bytes slot;
        auto result = apply(p, req, b, it == o->dict.end() ? nullptr : &it->second.value, slot);
        if (!result) return;
        if (it == o->dict.end()) {
          it = o->dict.try_emplace(std::move(k)).first;
          it->second.seq = ++o->seq;
        }
        it->second.value = std::move(slot);
        return reply(pid, req, mgr_status::ok, *result);
      }
      // list
      case mgr_op::list_append:
        o->list.emplace_back(b.begin(), b.end());
        return reply(pid, req, mgr_status::ok);
      case mgr_op::list_get:
      case mgr_op::list_set:
      case mgr_op::list_pop: {
        std::int64_t i = 0;
        if (a.size() != 8) throw decode_error("a list index must be 8 bytes");
        std::memcpy(&i, a.data(), 8);
        auto size = static_cast<std::int64_t>(o->list.size());
        std::int64_t j = i < 0 ? i + size : i;
        if (j < 0 || j >= size)
          return reply_text(pid, req, mgr_status::index_error,
                            size == 0 && op == mgr_op::list_pop
                                ? std::string("pop from an empty managed list")
                                : "managed list index " + std::to_string(i) + " out of range (size " +
                                      std::to_string(size) + ")");
        auto idx = static_cast<std::size_t>(j);
        if (op == mgr_op::list_get) return reply(pid, req, mgr_status::ok, o->list[idx]);
        if (op == mgr_op::list_set) {
          o->list[idx].assign(b.begin(), b.end());
          return reply(pid, req, mgr_status::ok);
        }
        bytes v = std::move(o->list[idx]);
        o->list.erase(o->list.begin() + j);
        return reply(pid, req, mgr_status::ok, v);
      }
      case mgr_op::list_size: return reply_value(pid, req, std::uint64_t(o->list.size()));
      case mgr_op::list_items: {
        scratch_.clear();
        put_u64(scratch_, o->list.size());
        for (auto& e : o->list) put_element(scratch_, e);
        return reply(pid, req, mgr_status::ok, scratch_);
      }
      case mgr_op::list_clear:
        o->list.clear();
        return reply(pid, req, mgr_status::ok);
      // queue
      case mgr_op::queue_put: {
        if (!o->waiters.empty()) {  // a getter waits: hand it over
          auto w = take_front(o->waiters);
          reply(w.peer, w.req, mgr_status::ok, b);
          return reply(pid, req, mgr_status::ok);
        }
        if (o->maxsize == 0 || o->items.size() < o->maxsize) {
          o->items.emplace_back(b.begin(), b.end());
          return reply(pid, req, mgr_status::ok);
        }
        if (h.timeout_ns == 0) return reply(pid, req, mgr_status::timeout);
        auto& w = add_waiter(*o, o->putters, pid, req, h.timeout_ns);
        w.item.assign(b.begin(), b.end());
        return;
      }
      case mgr_op::queue_get: {
        if (!o->items.empty()) {
          bytes v = std::move(o->items.front());
          o->items.pop_front();
          if (!o->putters.empty()) {  // room now: the first waiting put goes in
            auto w = take_front(o->putters);
            o->items.push_back(std::move(w.item));
            reply(w.peer, w.req, mgr_status::ok);
          }
          return reply(pid, req, mgr_status::ok, v);
        }
        if (h.timeout_ns == 0) return reply(pid, req, mgr_status::timeout);
        add_waiter(*o, o->waiters, pid, req, h.timeout_ns);
        return;
      }
      case mgr_op::queue_size: return reply_value(pid, req, std::uint64_t(o->items.size()));
      case mgr_op::queue_full:
        return reply_value(pid, req, o->maxsize != 0 && o->items.size() >= o->maxsize);
      // lock
      case mgr_op::lock_acquire:
        if (o->holder == pid)
          return reply_text(pid, req, mgr_status::value_error,
                            "managed lock: acquired again by its holder (it would deadlock)");
        if (o->holder == 0 && o->waiters.empty()) {
          o->holder = pid;
          bool died = std::exchange(o->owner_died, false);
          return reply(pid, req, died ? mgr_status::owner_died : mgr_status::ok);
        }
        if (h.timeout_ns == 0) return reply(pid, req, mgr_status::timeout);
        add_waiter(*o, o->waiters, pid, req, h.timeout_ns);
        return;
      case mgr_op::lock_release:
        if (o->holder != pid)
          return reply_text(pid, req, mgr_status::value_error,
                            o->holder == 0 ? "managed lock: released while not held"
                                           : "managed lock: released by a thread or process that "
                                             "does not hold it");
        o->holder = 0;
        grant_lock(*o);
        return reply(pid, req, mgr_status::ok);
      // event
      case mgr_op::event_set:
        o->flag = true;
        while (!o->waiters.empty()) {
          auto w = take_front(o->waiters);
          reply(w.peer, w.req, mgr_status::ok);
        }
        return reply(pid, req, mgr_status::ok);
      case mgr_op::event_clear:
        o->flag = false;
        return reply(pid, req, mgr_status::ok);
      case mgr_op::event_is_set: return reply_value(pid, req, o->flag);
      case mgr_op::event_wait:
        if (o->flag) return reply(pid, req, mgr_status::ok);
        if (h.timeout_ns == 0) return reply(pid, req, mgr_status::timeout);
        add_waiter(*o, o->waiters, pid, req, h.timeout_ns);
        return;
      // value
      case mgr_op::value_load: return reply(pid, req, mgr_status::ok, o->value);
      case mgr_op::value_store:
        o->value.assign(b.begin(), b.end());
        return reply(pid, req, mgr_status::ok);
      case mgr_op::value_update: {
        bytes slot;
        auto result = apply(p, req, b, &o->value, slot);
        if (!result) return;
        o->value = std::move(slot);
        return reply(pid, req, mgr_status::ok, *result);
      }
      default:
        return reply_text(pid, req, mgr_status::value_error,
                          "unknown manager request " + std::to_string(h.op));
    }
  }

  static std::string key(std::span<const std::byte> a) {
    return std::string(reinterpret_cast<const char*>(a.data()), a.size());
  }

  void grant_lock(object& o) {
    if (o.holder != 0 || o.waiters.empty()) return;
    auto w = take_front(o.waiters);
    o.holder = w.peer;
    bool died = std::exchange(o.owner_died, false);
    reply(w.peer, w.req, died ? mgr_status::owner_died : mgr_status::ok);
  }

  /// Runs an update's trampoline on a copy of the value (current, or the
  /// spec's initial one); the result, or nothing after replying an error.
  std::optional<bytes> apply(peer& p, std::uint64_t req, std::span<const std::byte> b,
                             const bytes* current, bytes& slot) {
    if (!p.same_program) {
      reply_text(p.id, req, mgr_status::value_error,
                 "update() sends a function's address, which only a client running the same "
                 "program (the same executable) as the manager may do");
      return std::nullopt;
    }
    auto spec = decode<mgr_apply_spec>(b);
    if (!spec.trampoline.fn) throw decode_error("an update without a trampoline");
    slot = current ? *current : spec.initial;
    auto tr = reinterpret_cast<mgr_apply_fn>(const_cast<void*>(spec.trampoline.fn));
    try {
      return tr(spec.fn.fn, slot, spec.args);
    } catch (const std::exception& e) {
      reply_text(p.id, req, mgr_status::remote_error, demangle(typeid(e).name()) + "\n" + e.what());
    } catch (...) {
      reply_text(p.id, req, mgr_status::remote_error, "unknown exception\nan update function threw");
    }
    return std::nullopt;
  }

  void create(std::uint64_t pid, std::uint64_t req, std::span<const std::byte> a,
              std::span<const std::byte> b) {
    auto spec = decode<mgr_create_spec>(b);
    auto kind = static_cast<mgr_kind>(spec.kind);
    if (spec.kind < 1 || spec.kind > static_cast<std::uint8_t>(mgr_kind::value))
      return reply_text(pid, req, mgr_status::value_error, "unknown kind of managed object");
    std::string name = key(a);
    if (!name.empty()) {
      if (auto it = named_.find(name); it != named_.end()) {
        auto& o = *objects_.at(it->second);
        if (o.kind != kind || o.type != spec.type)
          return reply_text(pid, req, mgr_status::type_error,
                            "the managed object '" + name + "' is a " + kind_name(o.kind) + "<" +
                                o.type_name + ">, not a " + kind_name(kind) + "<" + spec.type_name +
                                ">");
        return reply_value(pid, req, o.id);
      }
    }
    auto o = std::make_unique<object>();
    o->id = next_object_++;
    o->kind = kind;
    o->type = spec.type;
    o->type_name = spec.type_name;
    o->name = name;
    o->maxsize = spec.maxsize;
    o->value = std::move(spec.init);
    auto id = o->id;
    objects_.emplace(id, std::move(o));
    if (!name.empty()) named_.emplace(name, id);
    reply_value(pid, req, id);
  }

  void serve(std::uint64_t pid, std::uint64_t req, std::span<const std::byte> a,
             std::span<const std::byte> b) {
    std::string host = key(a);
    auto [port, authkey] = decode<std::pair<std::uint16_t, std::string>>(b);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    std::string ps = std::to_string(port);
    std::string where = host + ":" + ps;
    if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), ps.c_str(), &hints, &res); rc != 0)
      return reply_text(pid, req, mgr_status::value_error,
                        "cannot listen on " + where + ": " + ::gai_strerror(rc));
    int err = 0, fd = -1;
    for (auto* r = res; r; r = r->ai_next) {
      fd = ::socket(r->ai_family, r->ai_socktype | SOCK_CLOEXEC, r->ai_protocol);
      if (fd < 0) {
        err = errno;
        continue;
      }
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, r->ai_addr, r->ai_addrlen) == 0 && ::listen(fd, 128) == 0) break;
      err = errno;
      ::close(fd);
      fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd < 0)
      return reply_text(pid, req, mgr_status::value_error,
                        "cannot listen on " + where + ": " + std::strerror(err));
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
    std::uint16_t bound = ss.ss_family == AF_INET6
                              ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                              : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    add_listener(fd, std::move(authkey), "TCP port " + std::to_string(bound));
    get_logger().info("manager: serving on " + host + ":" + std::to_string(bound));
    reply_value(pid, req, bound);
  }

  int ep_ = -1;
  std::size_t max_message_;
  bool stop_ = false;
  std::vector<listener> listeners_;
  std::unordered_map<std::uint64_t, std::unique_ptr<peer>> peers_;
  std::uint64_t next_peer_ = peer_base;
  std::map<std::uint64_t, std::unique_ptr<object>> objects_;
  std::unordered_map<std::string, std::uint64_t> named_;
  std::uint64_t next_object_ = 1;
  std::uint64_t next_wid_ = 0;
  timer_map timers_;
  std::vector<std::uint64_t> dirty_;
  std::vector<std::uint64_t> dead_;
  bytes scratch_;
  std::uint64_t auth_failures_ = 0, dropped_ = 0, owner_deaths_ = 0;
};

}  // namespace

int run_manager_server(int listen_fd, std::string authkey, std::size_t max_message_size) {
  server s(listen_fd, std::move(authkey), max_message_size);
  return s.run();
}

}  // namespace isola::detail
