// The manager process: a single-threaded epoll loop over its connections
// (peers.hpp), the deadlines of blocked calls (timers.hpp) and the objects it
// owns (objects.hpp), and the manager's own ops: create, shutdown, serve,
// stats. See isola/manager.hpp, docs/decisions.md.
//
// Everything happens on one thread, so every operation is atomic with respect
// to every other; a blocking call (lock acquire, event wait, queue get/put) is
// a waiter kept with its object and answered when it can be, or when its
// deadline passes. A peer whose connection closes (its process died) loses
// its waiters and releases its locks, which the next acquirer is told about.
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <tuple>

#include "isola/codec.hpp"
#include "isola/logging.hpp"
#include "manager/object_context.hpp"
#include "manager/objects.hpp"
#include "manager/peers.hpp"
#include "manager/protocol.hpp"
#include "manager/timers.hpp"

namespace isola::detail {

namespace {

using namespace mgr;

/// Owns the epoll descriptor; declared first in server, so closed last.
struct epoll_handle {
  int fd;
  epoll_handle() : fd(::epoll_create1(EPOLL_CLOEXEC)) {
    if (fd < 0) throw_errno("manager: epoll_create1");
  }
  ~epoll_handle() { ::close(fd); }
  epoll_handle(const epoll_handle&) = delete;
  epoll_handle& operator=(const epoll_handle&) = delete;
};

class server {
 public:
  server(int listen_fd, std::string authkey, std::size_t max_message, int owner_pid, bool tls)
      : tls_(tls),
        peers_(
            ep_.fd, std::min(max_message, max_frame_payload), timers_,
            [this](peer& p, std::span<const std::byte> f) { on_frame(p, f); },
            [this](std::uint64_t id) { objects_.peer_lost(cx_, id); }, owner_pid),
        cx_(peers_, timers_) {
    peers_.add_listener(listen_fd, std::move(authkey), "local socket", false);
  }

  int run();

 private:
  void fire_timers();
  void on_frame(peer& p, std::span<const std::byte> f);
  void dispatch(const request& r);
  void serve(const request& r);

  epoll_handle ep_;
  bool tls_;
  deadlines timers_;
  peer_table peers_;
  object_context cx_;
  object_store objects_;
  bool stop_ = false;
};

int server::run() {
  epoll_event evs[64];
  while (!stop_) {
    int n = ::epoll_wait(ep_.fd, evs, 64, timers_.wait_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("manager: epoll_wait");
    }
    for (int i = 0; i < n; ++i) peers_.on_event(evs[i].data.u64, evs[i].events);
    fire_timers();
    peers_.flush_marked();
    peers_.reap_dead();
  }
  // Best effort: the shutdown's reply (and any other) goes out before we close.
  peers_.flush_all();
  return 0;
}

void server::fire_timers() {
  auto now = clk::now();
  while (auto t = timers_.pop_due(now)) {
    if (t->object == 0)  // a handshake that did not come, or a listener's pause
      peers_.timer_fired(t->id);
    else
      objects_.expire(cx_, t->object, t->id);
  }
}

void server::on_frame(peer& p, std::span<const std::byte> f) {
  request_header h;
  std::memcpy(&h, f.data(), sizeof h);
  std::size_t body = f.size() - sizeof h;
  if (h.alen > body) return peers_.reject(p, "a malformed request");
  request r;
  r.peer = p.id;
  r.id = h.id;
  r.raw_op = h.op;
  r.op = static_cast<mgr_op>(h.op);
  r.object = h.object;
  r.timeout_ns = h.timeout_ns;
  r.a = f.subspan(sizeof h, h.alen);
  r.b = f.subspan(sizeof h + h.alen);
  r.same_program = p.same_program;
  if ((r.op == mgr_op::serve || r.op == mgr_op::shutdown) && !p.owner) {
    // What a key grants: the objects. Opening the manager to the network or
    // ending it is for the process that started it, on its local socket;
    // a TCP client or any other process is refused and the manager goes on.
    get_logger().warning(std::string("manager: refused ") + op_name(r.op) + " from " + p.desc +
                         ": only the process that started the manager may");
    return cx_.reply_text(r, mgr_status::value_error,
                          std::string("permission denied: only the process that started the "
                                      "manager may ") +
                              op_name(r.op) + " it (this connection is " + p.desc + ")");
  }
  try {
    dispatch(r);
  } catch (const std::exception& e) {
    cx_.reply_text(r, mgr_status::value_error,
                   std::string("the manager could not do ") + op_name(r.op) + ": " + e.what());
  }
}

void server::dispatch(const request& r) {
  switch (r.op) {
    case mgr_op::create: return objects_.create(cx_, r);
    case mgr_op::shutdown: stop_ = true; return cx_.reply(r, mgr_status::ok);
    case mgr_op::serve: return serve(r);
    case mgr_op::stats:
      return cx_.reply_value(
          r, std::make_tuple(peers_.connections(), objects_.size(), objects_.waiting(),
                             peers_.auth_failures(), peers_.dropped(), cx_.owner_deaths,
                             peers_.refused()));
    default: return objects_.handle(cx_, r);
  }
}

void server::serve(const request& r) {
  std::string host = key(r.a);
  auto [port, authkey] = decode<std::pair<std::uint16_t, std::string>>(r.b);
  auto listener = net::tcp_listen(host, port, false);
  if (!listener) return cx_.reply_text(r, mgr_status::value_error, listener.what);
  const std::uint16_t bound = listener.port;
  const int fd = listener.fd.release();
  peers_.add_listener(fd, std::move(authkey),
                      "TCP port " + std::to_string(bound) + (tls_ ? " (TLS)" : ""), tls_);
  get_logger().info("manager: serving on " + host + ":" + std::to_string(bound));
  cx_.reply_value(r, bound);
}

}  // namespace

int run_manager_server(int listen_fd, std::string authkey, std::size_t max_message_size,
                       int owner_pid, bool tls) {
  server s(listen_fd, std::move(authkey), max_message_size, owner_pid, tls);
  return s.run();
}

}  // namespace isola::detail
