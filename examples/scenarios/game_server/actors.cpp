// The game server's actors: a room relays the moves of its tables' players
// and is the only writer to their sockets; a session reads one client's
// moves and forwards them to its room (see game_server.cpp for the design).
#include <unistd.h>

#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "protocol.hpp"

namespace game_server {
namespace {

// ---------------------------------------------------------------- room actor
struct table_state {
  int fd[2] = {-1, -1};
  std::uint32_t last[2] = {0, 0};  // last move relayed, per seat
  std::vector<record> pending[2];  // for a seat whose descriptor has not come yet
};
struct room_state {
  std::unordered_map<std::uint32_t, table_state> tables;
  room_stats stats;
};

void deliver(table_state& t, int seat, const record& r) {
  if (t.fd[seat] >= 0)
    put(t.fd[seat], r);  // a client that has gone: nothing to do
  else
    t.pending[seat].push_back(r);
}

// ---------------------------------------------------------------- session actor
[[noreturn]] void run_session(isola::connection& ctl, const session_args& a) {
  // The handshake: a fresh pipe for this incarnation only.
  auto [mine, theirs] = isola::pipe();
  mine.send(ready{isola::this_actor::self()});
  ctl.send_handle(theirs.fileno());
  theirs.close();
  const int fd = mine.recv_handle();  // the client's socket
  mine.close();
  a.room.send(joined{a.table, a.seat, static_cast<int>(::getpid())});

  alignas(record) char buf[64 * sizeof(record)];
  std::size_t have = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the client hung up
    have += static_cast<std::size_t>(n);
    std::size_t used = 0;
    for (; have - used >= sizeof(record); used += sizeof(record)) {
      record r;
      std::memcpy(&r, buf + used, sizeof r);
      if (r.type == rec_move) a.room.send(relay_move{a.table, a.seat, r.seq, r.value});
    }
    std::memmove(buf, buf + used, have - used);
    have -= used;
  }
  a.room.send(left_table{a.table, a.seat});
  ::close(fd);
  isola::exit(0);  // a normal exit: the (transient) session is not restarted
}

}  // namespace

isola::behavior make_room(shared_end ctl) {
  auto st = std::make_shared<room_state>();
  return {
      [ctl, st](const adopt& m) {
        int fd = ctl.c->recv_handle();  // sent just before this message
        auto& t = st->tables[m.table];
        if (t.fd[m.seat] >= 0) ::close(t.fd[m.seat]);
        t.fd[m.seat] = fd;
        for (auto& r : t.pending[m.seat]) put(fd, r);
        t.pending[m.seat].clear();
      },
      [st](const joined& m) {
        auto& t = st->tables[m.table];
        deliver(t, m.seat, {rec_welcome, t.last[m.seat] + 1, static_cast<std::uint64_t>(m.pid)});
      },
      [st](const relay_move& m) {
        auto& t = st->tables[m.table];
        std::uint32_t& last = t.last[m.seat];
        if (m.seq == last + 1) {
          last = m.seq;
          deliver(t, m.seat, {rec_ack, m.seq, m.t0});
          deliver(t, 1 - m.seat, {rec_opponent, m.seq, m.t0});
          ++st->stats.relayed;
        } else if (m.seq <= last) {  // already relayed: a re-send after a restart
          deliver(t, m.seat, {rec_ack, m.seq, m.t0});
          ++st->stats.duplicates;
        } else {
          ++st->stats.out_of_order;
        }
      },
      [st](const left_table& m) {
        auto it = st->tables.find(m.table);
        if (it == st->tables.end()) return;
        auto& t = it->second;
        if (t.fd[m.seat] >= 0) ::close(t.fd[m.seat]);
        t.fd[m.seat] = -1;
        if (t.fd[0] < 0 && t.fd[1] < 0 && t.pending[0].empty() && t.pending[1].empty())
          st->tables.erase(it);
      },
      [st](const stats_request&) { return st->stats; },
  };
}

isola::behavior make_session(shared_end ctl, session_args a) {
  // The session's work loop cannot run here (the supervisor waits for the
  // behavior to be built), so it runs in the handler of a message to itself.
  isola::this_actor::self().send(go{});
  return {[ctl, a](const go&) { run_session(*ctl.c, a); }};
}

}  // namespace game_server
