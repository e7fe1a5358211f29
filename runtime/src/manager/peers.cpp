// The manager's connections (see peers.hpp): accepting, the challenge
// exchange, reading frames off a peer and writing its replies back.
#include "manager/peers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "isola/logging.hpp"
#include "manager/protocol.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

peer_table::peer_table(int epoll_fd, std::size_t max_message, deadlines& timers,
                       frame_handler on_frame, lost_handler on_lost, int owner_pid)
    : ep_(epoll_fd),
      max_message_(max_message),
      out_cap_(std::size_t{4} << 20),
      timers_(timers),
      on_frame_(std::move(on_frame)),
      on_lost_(std::move(on_lost)),
      owner_pid_(owner_pid) {
  if (handshake::response_size(manager_handshake) > peer{}.response.size())
    throw error("manager: the handshake's response does not fit a peer's buffer");
}

peer_table::~peer_table() {
  for (auto& [id, p] : peers_)
    if (p->fd >= 0) ::close(p->fd);
  for (auto& l : listeners_)
    if (l.fd >= 0) ::close(l.fd);
}

void peer_table::add_listener(int fd, std::string key, std::string where, bool tls) {
  int fl = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  listeners_.push_back({fd, std::move(key), std::move(where), false, tls});
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = listeners_.size();
  if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("manager: epoll_ctl");
}

void peer_table::on_event(std::uint64_t key, std::uint32_t events) {
  if (key < peer_base) {
    accept_all(static_cast<std::size_t>(key - 1));
    return;
  }
  auto it = peers_.find(key);
  if (it == peers_.end() || it->second->dead) return;
  peer& p = *it->second;
  if (p.tls && !p.tls->established()) {
    // The TLS handshake: a step whenever the socket is ready either way
    // (an error or hang-up surfaces in the step).
    if (p.out_pos < p.out.size()) {  // the verdict, in clear, goes first
      flush(p);
      if (p.dead || p.out_pos < p.out.size()) return;
    }
    if (events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP)) tls_handshake(p);
    return;
  }
  if (events & EPOLLIN)
    on_readable(p);
  else if (events & (EPOLLERR | EPOLLHUP))
    drop(p);
  if (!p.dead && (events & EPOLLOUT)) flush(p);
}

void peer_table::accept_all(std::size_t li) {
  for (;;) {
    sockaddr_storage ss{};
    int fd = -1;
    switch (reserve_.accept(listeners_[li].fd, fd, ss, handshake::busy_notice)) {
      case net::accept_reserve::result::accepted: admit(li, fd, ss); continue;
      case net::accept_reserve::result::shed:
        ++refused_;
        continue;
      case net::accept_reserve::result::empty: return;
      case net::accept_reserve::result::failed: {
        const int e = errno;
        get_logger().warning(std::string("manager: accept on the ") + listeners_[li].where +
                             ": " + std::strerror(e) + "; not accepting for 100 ms");
        pause_listener(li);
        return;
      }
    }
  }
}

void peer_table::pause_listener(std::size_t li) {
  // Level-triggered: a listener whose accept keeps failing stays readable;
  // out of epoll for a moment, so the loop sleeps instead of spinning.
  auto& l = listeners_[li];
  if (l.paused) return;
  l.paused = true;
  ::epoll_ctl(ep_, EPOLL_CTL_DEL, l.fd, nullptr);
  timers_.add(clk::now() + std::chrono::milliseconds(100), {0, li + 1});
}

void peer_table::admit(std::size_t li, int fd, const sockaddr_storage& ss) {
  std::string source = net::source_of(ss);
  auto& from_source = pending_by_source_[source];
  if (pending_ >= max_pending_handshakes || from_source >= max_pending_per_source) {
    // Refused, not queued and not evicting anyone: the client is told busy
    // and tries again; the handshakes under way go on.
    if (from_source == 0) pending_by_source_.erase(source);
    ++refused_;
    handshake::send_busy(fd);
    ::close(fd);
    return;
  }
  auto p = std::make_unique<peer>();
  p->id = next_peer_++;
  p->fd = fd;
  p->listener = li;
  p->desc = describe_peer(ss);
  if (ss.ss_family == AF_UNIX) {
    ucred cred{};
    socklen_t cl = sizeof cred;
    // The kernel's word on who connected, not the peer's.
    p->owner = owner_pid_ > 0 && ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
               cred.pid == owner_pid_;
  } else {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  p->challenge = handshake::new_challenge();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = p->id;
  if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    if (from_source == 0) pending_by_source_.erase(source);
    ::close(fd);
    return;
  }
  p->hs_timer = timers_.add(clk::now() + handshake_timeout, {0, p->id});
  p->hs_timed = true;
  p->pending = true;
  p->source = std::move(source);
  ++from_source;
  ++pending_;
  peer& ref = *p;
  peers_.emplace(p->id, std::move(p));
  const auto hello = handshake::make_hello(manager_spec(listeners_[li].tls), ref.challenge);
  ref.out.insert(ref.out.end(), reinterpret_cast<const std::byte*>(hello.data()),
                 reinterpret_cast<const std::byte*>(hello.data()) + hello.size());
  flush(ref);
}

void peer_table::leave_pending(peer& p) {
  if (!p.pending) return;
  p.pending = false;
  --pending_;
  auto it = pending_by_source_.find(p.source);
  if (it != pending_by_source_.end() && --it->second == 0) pending_by_source_.erase(it);
}

std::string peer_table::describe_peer(const sockaddr_storage& ss) {
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

// One recv for a peer: the bytes read, or nothing when there is nothing to
// do now (EINTR, EAGAIN) or the peer is gone (closed, or an error: dropped).
std::optional<std::size_t> peer_table::receive(peer& p, void* into, std::size_t n) {
  ssize_t r = ::recv(p.fd, into, n, 0);
  if (r > 0) return static_cast<std::size_t>(r);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return std::nullopt;
  drop(p);
  return std::nullopt;
}

void peer_table::on_readable(peer& p) {
  if (!p.ready) {
    // Exactly the response's bytes, into the peer's fixed buffer; whatever
    // follows stays in the kernel until the peer has proved the key.
    const std::size_t want = handshake::response_size(manager_handshake);
    auto r = receive(p, p.response.data() + p.response_have, want - p.response_have);
    if (!r) return;
    p.response_have += *r;
    if (p.response_have == want) authenticate(p);
    return;  // frames, if any came, wake the loop again (level-triggered)
  }
  if (p.throttled) return;  // an event from before it was taken off EPOLLIN
  if (p.tls) {
    if (!tls_read(p)) return;
  } else {
    if (p.in.size() < p.used + 65536) p.in.resize(p.used + 65536);
    auto r = receive(p, p.in.data() + p.used, p.in.size() - p.used);
    if (!r) return;
    p.used += *r;
  }
  consume(p);
}

/// Hands on the whole frames read so far, unless the peer's unsent replies
/// are past the cap: then the rest waits in its buffer, and its socket is not
/// read, until flush() has sent enough (a client that never reads its
/// replies holds at most the cap, not everything it asked for).
void peer_table::consume(peer& p) {
  std::size_t pos = take_frames(p, 0);
  if (p.dead) return;
  if (pos > 0) {
    std::memmove(p.in.data(), p.in.data() + pos, p.used - pos);
    p.used -= pos;
  }
  resize_input(p);
}

/// Reads what the TLS session has: one record from the socket, and every
/// byte libssl still holds after it, so none waits for a socket event that
/// may not come. False when nothing came (or the peer was dropped).
bool peer_table::tls_read(peer& p) {
  bool got = false;
  for (;;) {
    if (p.in.size() < p.used + 65536) p.in.resize(p.used + 65536);
    std::size_t n = 0;
    switch (p.tls->read_some(p.in.data() + p.used, p.in.size() - p.used, n)) {
      case tls_io::done:
        p.used += n;
        got = true;
        if (!p.tls->has_pending()) return true;
        continue;
      case tls_io::want_read:
      case tls_io::want_write: return got;
      case tls_io::closed: drop(p); return false;
      case tls_io::failed:
        reject(p, "its TLS record did not decrypt (" + p.tls->why() +
                      "): bytes altered on the way, or not its session");
        return false;
    }
  }
}

void peer_table::tls_handshake(peer& p) {
  switch (p.tls->handshake_step()) {
    case tls_io::done:
      // Authenticated and private: frames from here on.
      if (p.hs_timed) {
        timers_.cancel(p.hs_timer);
        p.hs_timed = false;
      }
      leave_pending(p);
      p.ready = true;
      want_output(p, false);
      return;
    case tls_io::want_read: want_output(p, false); return;
    case tls_io::want_write: want_output(p, true); return;
    case tls_io::closed:
      ++dropped_;
      get_logger().warning("manager: " + p.desc + " closed during the TLS handshake (" +
                           p.tls->why() + "; does it use TLS?); dropped");
      drop(p);
      return;
    case tls_io::failed:
      ++auth_failures_;
      get_logger().warning("manager: authentication_error: " + p.desc +
                           ": the TLS handshake failed (" + p.tls->why() +
                           "): a relay in between, or bytes altered on the way; dropped");
      drop(p);
      return;
  }
}

void peer_table::want_output(peer& p, bool on) {
  if (on == p.want_out) return;
  p.want_out = on;
  update_events(p);
}

void peer_table::update_events(peer& p) {
  epoll_event ev{};
  ev.events = (p.throttled ? 0u : EPOLLIN) | (p.want_out ? EPOLLOUT : 0u);
  ev.data.u64 = p.id;
  ::epoll_ctl(ep_, EPOLL_CTL_MOD, p.fd, &ev);
}

/// Hands on every whole frame from pos on; returns where the rest begins.
std::size_t peer_table::take_frames(peer& p, std::size_t pos) {
  while (p.used - pos >= 4) {
    std::uint32_t len;
    std::memcpy(&len, p.in.data() + pos, 4);
    if (len < sizeof(request_header) - 4 || len > max_message_) {
      reject(p, "a frame of " + std::to_string(len) + " bytes (the limit is " +
                    std::to_string(max_message_) + ")");
      return pos;
    }
    if (p.used - pos < 4 + std::size_t{len}) break;
    if (unsent(p) > out_cap_) {
      p.throttled = true;
      update_events(p);
      break;
    }
    on_frame_(p, std::span<const std::byte>(p.in.data() + pos, 4 + std::size_t{len}));
    if (p.dead) return pos;
    pos += 4 + std::size_t{len};
  }
  return pos;
}

void peer_table::resize_input(peer& p) {
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

bool peer_table::authenticate(peer& p) {
  auto& key = listeners_[p.listener].authkey;
  const bool tls = listeners_[p.listener].tls;
  const auto response = std::span<const std::uint8_t>(
      p.response.data(), handshake::response_size(manager_handshake));
  auto verdict = handshake::make_verdict(manager_handshake, key, p.challenge, response);
  // With TLS the handshake's deadline and the caps hold until TLS is up.
  if (!tls || !verdict) {
    if (p.hs_timed) {
      timers_.cancel(p.hs_timer);
      p.hs_timed = false;
    }
    leave_pending(p);
  }
  if (!verdict) {
    ++auth_failures_;
    get_logger().warning("manager: authentication_error: " + p.desc + " on the " +
                         listeners_[p.listener].where +
                         " failed the handshake (wrong key, or not an isola client); dropped");
    ::send(p.fd, "FAIL", 4, MSG_NOSIGNAL | MSG_DONTWAIT);
    drop(p);
    return false;
  }
  p.same_program = std::memcmp(handshake::response_extra(manager_handshake, response).data(),
                               program_identity().data(), 32) == 0;
  p.out.insert(p.out.end(), reinterpret_cast<const std::byte*>(verdict->data()),
               reinterpret_cast<const std::byte*>(verdict->data()) + verdict->size());
  if (tls) {
    // The verdict goes out in clear (flush sends plainly until TLS is up:
    // the client sends its ClientHello only once it has read it all), then
    // the client starts TLS keyed by this handshake.
    try {
      handshake::challenge client{};
      std::memcpy(client.data(), response.data() + 32, 32);
      p.tls = std::make_unique<tls_session>(
          p.fd, tls_session::role::server,
          derive_tls_psk(key, manager_tls_handshake.magic, p.challenge, client));
    } catch (const std::exception& e) {
      get_logger().warning(std::string("manager: no TLS for ") + p.desc + ": " + e.what());
      drop(p);
      return false;
    }
  } else {
    p.ready = true;
  }
  mark(p.id);
  return true;
}

void peer_table::flush(peer& p) {
  while (p.out_pos < p.out.size()) {
    if (p.tls && p.tls->established()) {
      std::size_t n = 0;
      const auto r = p.tls->write_some(p.out.data() + p.out_pos, p.out.size() - p.out_pos, n);
      if (r == tls_io::done) {
        p.out_pos += n;
        continue;
      }
      if (r == tls_io::want_write || r == tls_io::want_read) break;
      drop(p);
      return;
    }
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
  // (While TLS is being set up its handshake decides what to wait for.)
  if (!p.tls || p.tls->established() || pending) want_output(p, pending);
  if (p.throttled && unsent(p) <= out_cap_) {
    // Room again: the requests that waited go on, and so does reading.
    p.throttled = false;
    update_events(p);
    consume(p);
  }
}

void peer_table::drop(peer& p) {
  if (p.dead) return;
  p.dead = true;
  if (p.hs_timed) {
    timers_.cancel(p.hs_timer);
    p.hs_timed = false;
  }
  leave_pending(p);
  ::epoll_ctl(ep_, EPOLL_CTL_DEL, p.fd, nullptr);
  p.tls.reset();
  ::close(p.fd);
  p.fd = -1;
  dead_.push_back(p.id);
  if (p.ready) on_lost_(p.id);
}

void peer_table::reject(peer& p, const std::string& why) {
  get_logger().warning("manager: dropped " + p.desc + ": " + why);
  ++dropped_;
  drop(p);
}

void peer_table::timer_fired(std::uint64_t peer_id) {
  if (peer_id < peer_base) {  // a paused listener's pause is over
    auto& l = listeners_.at(static_cast<std::size_t>(peer_id - 1));
    if (!l.paused) return;
    l.paused = false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = peer_id;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, l.fd, &ev) != 0) throw_errno("manager: epoll_ctl");
    return;
  }
  auto it = peers_.find(peer_id);
  if (it == peers_.end() || it->second->dead) return;
  it->second->hs_timed = false;
  ++auth_failures_;
  get_logger().warning("manager: " + it->second->desc +
                       " did not complete the handshake in time; dropped");
  drop(*it->second);
}

void peer_table::reply(std::uint64_t peer_id, std::uint64_t req, mgr_status st,
                       std::span<const std::byte> payload) {
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

void peer_table::flush_marked() {
  // By index: a failed send drops its peer, which may release a lock and so
  // mark the next holder, appending to dirty_ while we walk it.
  for (std::size_t i = 0; i < dirty_.size(); ++i) {
    auto it = peers_.find(dirty_[i]);
    if (it != peers_.end() && !it->second->dead) flush(*it->second);
  }
  dirty_.clear();
}

void peer_table::reap_dead() {
  for (auto id : dead_) peers_.erase(id);
  dead_.clear();
}

void peer_table::flush_all() {
  for (auto& [id, p] : peers_)
    if (!p->dead) flush(*p);
}

std::uint64_t peer_table::connections() const {
  std::uint64_t n = 0;
  for (auto& [id, p] : peers_) n += p->ready && !p->dead;
  return n;
}

}  // namespace isola::detail::mgr
