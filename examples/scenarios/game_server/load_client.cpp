// The game server's load client, a process of its own: it opens every
// session's TCP connection, plays the moves over epoll, SIGKILLs the chosen
// sessions with a move in flight, and reports what it saw to the root.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace game_server {
namespace {

struct csession {
  int fd = -1;
  char buf[64 * sizeof(record)];
  std::size_t have = 0;
  int pid = 0, welcomes = 0;
  std::uint32_t next = 1;         // next move to send
  std::uint32_t outstanding = 0;  // move awaiting its ack (0: none)
  std::int64_t first_sent = 0, last_sent = 0;
  std::uint32_t acked = 0, opp = 0;
  int timeouts = 0;
  int kill_index = -1;  // into report.kills
  std::int64_t killed_at = 0;
  bool done = false;
};

double percentile_ms(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1e6;
}

class load_client {
 public:
  explicit load_client(const client_config& cfg)
      : cfg_(cfg), s_(static_cast<std::size_t>(cfg.sessions)) {
    rep_.sessions = cfg.sessions;
    ack_lat_.reserve(static_cast<std::size_t>(cfg.sessions) * static_cast<std::size_t>(cfg.moves));
    relay_lat_.reserve(ack_lat_.capacity());
  }
  load_client(const load_client&) = delete;
  load_client& operator=(const load_client&) = delete;

  client_report run() {
    const auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                              std::chrono::duration<double>(cfg_.deadline_s));
    plan_kills();
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw std::runtime_error("epoll_create1 failed");
    auto t_connect = steady::now();
    connect_all();

    // Phase 1: every session connected and greeted.
    while (welcomed_ < cfg_.sessions && steady::now() < deadline) pump(100);
    rep_.connect_s = std::chrono::duration<double>(steady::now() - t_connect).count();
    if (welcomed_ < cfg_.sessions)
      rep_.problems.push_back("only " + std::to_string(welcomed_) + " sessions were greeted");

    // Phase 2: play.
    auto t_play = steady::now();
    play(deadline);
    rep_.play_s = std::chrono::duration<double>(steady::now() - t_play).count();
    summarize();
    return rep_;
  }

 private:
  static constexpr std::int64_t resend_after_ = 5'000'000'000;  // ns

  // Which sessions die, and after how many acked moves: spread over the slots.
  void plan_kills() {
    for (int k = 0; k < cfg_.kills; ++k) {
      int slot =
          static_cast<int>((static_cast<long>(k) * cfg_.sessions) / cfg_.kills + 1) % cfg_.sessions;
      s_[static_cast<std::size_t>(slot)].kill_index = k;
      rep_.kills.push_back({slot, 0, 0, std::max(1, cfg_.moves / 2), -1});
    }
  }

  void connect_all() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(cfg_.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (std::size_t i = 0; i < s_.size(); ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("client: connect " + std::to_string(i) + ": " +
                                 std::strerror(errno));
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<std::uint32_t>(i);
      ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      s_[i].fd = fd;
    }
  }

  void play(steady::time_point deadline) {
    playing_ = true;
    for (auto& c : s_)
      if (c.fd >= 0) send_move(c, c.next, false);
    while (finished_ < cfg_.sessions && steady::now() < deadline) {
      pump(100);
      std::int64_t t = now_ns();
      for (auto& c : s_)
        if (c.fd >= 0 && c.outstanding != 0 && t - c.last_sent > resend_after_) {
          ++c.timeouts;
          ++rep_.timeouts;
          send_move(c, c.outstanding, true);
        }
    }
  }

  void send_move(csession& c, std::uint32_t seq, bool again) {
    std::int64_t t = now_ns();
    if (!again) c.first_sent = t;
    c.last_sent = t;
    c.outstanding = seq;
    record r{rec_move, seq, static_cast<std::uint64_t>(c.first_sent)};
    if (::send(c.fd, &r, sizeof r, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof r))
      rep_.problems.push_back("send failed on session " + std::to_string(&c - s_.data()) + ": " +
                              std::strerror(errno));
  }

  void on_welcome(csession& c, const record& r, std::int64_t t) {
    if (++c.welcomes == 1) {
      c.pid = static_cast<int>(r.value);
      ++welcomed_;
      return;
    }
    if (c.kill_index >= 0) {
      auto& k = rep_.kills[static_cast<std::size_t>(c.kill_index)];
      k.new_pid = static_cast<int>(r.value);
      k.recover_ms = static_cast<double>(t - c.killed_at) / 1e6;
    }
    c.pid = static_cast<int>(r.value);
    // The move in flight may have died with the old session.
    if (c.outstanding != 0 && c.outstanding >= r.seq) {
      send_move(c, c.outstanding, true);
      ++rep_.resent;
    }
  }

  void on_ack(csession& c, const record& r, std::int64_t t) {
    if (r.seq != c.outstanding) {
      ++rep_.duplicate_acks;
      return;
    }
    ack_lat_.push_back(t - c.first_sent);
    ++c.acked;
    c.outstanding = 0;
    if (c.acked >= static_cast<std::uint32_t>(cfg_.moves)) return;
    send_move(c, ++c.next, false);
    if (c.kill_index >= 0 && c.killed_at == 0 &&
        c.acked == static_cast<std::uint32_t>(
                       rep_.kills[static_cast<std::size_t>(c.kill_index)].at_move)) {
      // Kill the session with this move in flight.
      auto& k = rep_.kills[static_cast<std::size_t>(c.kill_index)];
      k.old_pid = c.pid;
      c.killed_at = now_ns();
      if (::kill(c.pid, SIGKILL) != 0)
        rep_.problems.push_back("kill(" + std::to_string(c.pid) + "): " + std::strerror(errno));
    }
  }

  void on_record(std::size_t i, const record& r) {
    csession& c = s_[i];
    std::int64_t t = now_ns();
    switch (r.type) {
      case rec_welcome: on_welcome(c, r, t); break;
      case rec_ack: on_ack(c, r, t); break;
      case rec_opponent:
        if (r.seq != c.opp + 1) {
          ++rep_.bad_order;
          break;
        }
        ++c.opp;
        relay_lat_.push_back(t - static_cast<std::int64_t>(r.value));
        break;
      default: rep_.problems.push_back("unknown record type " + std::to_string(r.type));
    }
    if (playing_ && !c.done && c.acked == static_cast<std::uint32_t>(cfg_.moves) &&
        c.opp == static_cast<std::uint32_t>(cfg_.moves)) {
      c.done = true;
      ++finished_;
      ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);  // the session sees EOF and ends normally
      c.fd = -1;
    }
  }

  // Reads what session i's socket has, record by record.
  void read_session(std::size_t i) {
    csession& c = s_[i];
    while (c.fd >= 0) {
      ssize_t got = ::read(c.fd, c.buf + c.have, sizeof c.buf - c.have);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (got <= 0) {
        rep_.problems.push_back("session " + std::to_string(i) +
                                ": the server closed the connection");
        ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
        break;
      }
      c.have += static_cast<std::size_t>(got);
      std::size_t used = 0;
      for (; c.have - used >= sizeof(record); used += sizeof(record)) {
        record r;
        std::memcpy(&r, c.buf + used, sizeof r);
        on_record(i, r);
        if (c.fd < 0) break;
      }
      if (c.fd < 0) break;
      std::memmove(c.buf, c.buf + used, c.have - used);
      c.have -= used;
    }
  }

  void pump(int timeout_ms) {
    epoll_event evs[256];
    int n = ::epoll_wait(ep_, evs, 256, timeout_ms);
    for (int e = 0; e < n; ++e) read_session(evs[e].data.u32);
  }

  void summarize() {
    rep_.finished = finished_;
    for (std::size_t i = 0; i < s_.size(); ++i) {
      auto& c = s_[i];
      rep_.acked += c.acked;
      rep_.relayed += c.opp;
      if (c.welcomes > 1) ++rep_.restarted_sessions;
      if (c.kill_index >= 0) {
        if (c.done) ++rep_.finished_killed;
        if (c.welcomes != 2)
          rep_.problems.push_back("killed session " + std::to_string(i) + " was greeted " +
                                  std::to_string(c.welcomes) + " times (expected 2)");
      } else {
        ++rep_.not_killed;
        if (c.done && c.welcomes == 1 && c.timeouts == 0)
          ++rep_.unaffected;
        else
          rep_.problems.push_back("session " + std::to_string(i) + " (not killed): " +
                                  std::to_string(c.acked) + " acked, " + std::to_string(c.opp) +
                                  " opponent moves, " + std::to_string(c.welcomes) + " welcomes, " +
                                  std::to_string(c.timeouts) + " timeouts");
      }
      if (c.fd >= 0) ::close(c.fd);
    }
    ::close(ep_);
    rep_.ack_p50 = percentile_ms(ack_lat_, 0.50);
    rep_.ack_p99 = percentile_ms(ack_lat_, 0.99);
    rep_.relay_p50 = percentile_ms(relay_lat_, 0.50);
    rep_.relay_p99 = percentile_ms(relay_lat_, 0.99);
  }

  client_config cfg_;
  client_report rep_;
  std::vector<csession> s_;
  std::vector<std::int64_t> ack_lat_, relay_lat_;
  int ep_ = -1;
  bool playing_ = false;
  int welcomed_ = 0, finished_ = 0;
};

}  // namespace

int run_client(client_config cfg, isola::connection report_to) {
  load_client client(cfg);
  report_to.send(client.run());
  return 0;
}

}  // namespace game_server
