// The coordinators behind isola/distributed/: actors that hold the state of
// an event, a condition, a barrier or a queue, and answer waits later
// (response_promise). See isola/detail/coordination.hpp for the protocol.
//
// A coordinator monitors every process that waits on it, so a waiter that
// dies is forgotten (an event, a queue), releases what it held (a
// condition's lock), or breaks what it was part of (a barrier).
#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "isola/detail/coordination.hpp"
#include "isola/function_registry.hpp"
#include "isola/response_promise.hpp"
#include "sys/random.hpp"

namespace isola::detail::coord {

namespace {

std::uint64_t random_u64() { return random_value<std::uint64_t>(); }

/// Monitors each requester once: its death reaches the behavior as a down.
class watcher {
 public:
  void watch(std::uint64_t id) {
    if (!id || !seen_.insert(id).second) return;
    try {
      this_actor::monitor(actor(id, 0, {}));
    } catch (const std::exception&) {
      // Not monitorable (already gone): its wait is answered to nobody.
    }
  }
  void forget(std::uint64_t id) { seen_.erase(id); }

 private:
  std::unordered_set<std::uint64_t> seen_;
};

}  // namespace

std::uint64_t new_ticket() {
  static const std::uint64_t base = random_u64();
  static std::atomic<std::uint64_t> n{0};
  return base + n.fetch_add(1, std::memory_order_relaxed) * 0x9e3779b97f4a7c15ull;
}

std::uint64_t caller_token() {
  thread_local const std::uint64_t t = random_u64() | 1;
  return t;
}

// ------------------------------------------------------------------ event

behavior event_coordinator() {
  struct waiter {
    std::uint64_t ticket;
    response_promise<bool> p;
  };
  struct state {
    bool flag = false;
    std::vector<waiter> waiting;
    watcher w;
  };
  auto s = std::make_shared<state>();
  return {
      [s](const ev_set&) {
        s->flag = true;
        for (auto& w : s->waiting) w.p.deliver(true);
        s->waiting.clear();
      },
      [s](const ev_clear&) { s->flag = false; },
      [s](const ev_is_set&) { return s->flag; },
      [s](const ev_wait& m) {
        if (s->flag) return true;
        auto p = this_actor::make_response_promise<bool>();
        s->w.watch(p.requester_id());
        s->waiting.push_back({m.ticket, std::move(p)});
        return false;  // not sent: the promise answers
      },
      [s](const ev_forget& m) {
        // The waiter's deadline passed; answer the withdrawn wait (the
        // requester drops it) and tell it the flag as it is now.
        auto it = std::find_if(s->waiting.begin(), s->waiting.end(),
                               [&](const waiter& w) { return w.ticket == m.ticket; });
        if (it != s->waiting.end()) {
          it->p.deliver(false);
          s->waiting.erase(it);
        }
        return s->flag;
      },
      [s](const down& d) {
        std::erase_if(s->waiting, [&](waiter& w) {
          if (w.p.requester_id() != d.who.id()) return false;
          w.p.deliver(false);
          return true;
        });
        s->w.forget(d.who.id());
      },
  };
}

// -------------------------------------------------------------- condition

behavior condition_coordinator() {
  // One queue of those who want the lock: acquirers, and waiters that were
  // notified or timed out (who get the lock back at their saved depth).
  struct want {
    std::uint64_t owner, ticket;
    std::int32_t depth;
    std::int32_t answer;  // what the grant answers: ok, or not_now for a timed-out wait
    response_promise<std::int32_t> p;
  };
  struct waiter {
    std::uint64_t owner, ticket;
    std::int32_t depth;
    response_promise<std::int32_t> p;
  };
  struct state {
    std::uint64_t holder = 0, holder_ticket = 0, holder_requester = 0;
    std::int32_t depth = 0;
    std::deque<want> queue;
    std::deque<waiter> waiting;
    watcher w;

    void grant_next() {
      while (holder == 0 && !queue.empty()) {
        want x = std::move(queue.front());
        queue.pop_front();
        holder = x.owner;
        holder_ticket = x.ticket;
        holder_requester = x.p.requester_id();
        depth = x.depth;
        x.p.deliver(x.answer);
      }
    }
    void release_all() {
      holder = 0;
      holder_ticket = 0;
      holder_requester = 0;
      depth = 0;
      grant_next();
    }
  };
  auto s = std::make_shared<state>();
  return {
      [s](const cv_acquire& m) -> std::int32_t {
        if (s->holder == m.owner) {
          ++s->depth;
          return ok;
        }
        if (s->holder == 0 && s->queue.empty()) {
          s->holder = m.owner;
          s->holder_ticket = m.ticket;
          s->holder_requester = this_request().sender;
          s->w.watch(s->holder_requester);
          s->depth = 1;
          return ok;
        }
        if (!m.blocking) return not_now;
        auto p = this_actor::make_response_promise<std::int32_t>();
        s->w.watch(p.requester_id());
        s->queue.push_back({m.owner, m.ticket, 1, ok, std::move(p)});
        return ok;  // not sent
      },
      [s](const cv_release& m) -> std::int32_t {
        if (s->holder != m.owner) return not_owner;
        if (--s->depth == 0) s->release_all();
        return ok;
      },
      [s](const cv_wait& m) -> std::int32_t {
        if (s->holder != m.owner) return not_owner;
        auto p = this_actor::make_response_promise<std::int32_t>();
        s->w.watch(p.requester_id());
        s->waiting.push_back({m.owner, m.ticket, s->depth, std::move(p)});
        s->release_all();
        return ok;  // not sent
      },
      [s](const cv_notify& m) -> std::int32_t {
        if (s->holder != m.owner) return not_owner;
        for (std::int64_t i = 0; (m.n < 0 || i < m.n) && !s->waiting.empty(); ++i) {
          waiter x = std::move(s->waiting.front());
          s->waiting.pop_front();
          s->queue.push_back({x.owner, x.ticket, x.depth, ok, std::move(x.p)});
        }
        return ok;
      },
      [s](const cv_timed_out& m) -> std::int32_t {
        if (s->holder_ticket == m.ticket) return ok;  // granted meanwhile
        auto q = std::find_if(s->queue.begin(), s->queue.end(),
                              [&](const want& x) { return x.ticket == m.ticket; });
        if (!m.was_wait) {
          // An acquire: withdraw it.
          if (q != s->queue.end()) {
            q->p.deliver(not_now);
            s->queue.erase(q);
          }
          return not_now;
        }
        auto p = this_actor::make_response_promise<std::int32_t>();
        if (q != s->queue.end()) {
          // Notified, not yet holding the lock: answer "notified" once it does.
          q->p.deliver(ok);
          q->p = std::move(p);
          return ok;  // not sent
        }
        auto w = std::find_if(s->waiting.begin(), s->waiting.end(),
                              [&](const waiter& x) { return x.ticket == m.ticket; });
        if (w == s->waiting.end()) {
          p.deliver(not_now);  // unknown (the coordinator forgot it): no lock either
          return ok;
        }
        w->p.deliver(not_now);
        s->queue.push_back({w->owner, w->ticket, w->depth, not_now, std::move(p)});
        s->waiting.erase(w);
        s->grant_next();
        return ok;  // not sent
      },
      [s](const down& d) {
        const std::uint64_t who = d.who.id();
        auto gone = [&](auto& x) {
          if (x.p.requester_id() != who) return false;
          x.p.deliver(not_now);
          return true;
        };
        std::erase_if(s->queue, gone);
        std::erase_if(s->waiting, gone);
        s->w.forget(who);
        // A holder that died cannot release: the lock goes to the next.
        if (s->holder != 0 && s->holder_requester == who) s->release_all();
      },
  };
}

// ---------------------------------------------------------------- barrier

behavior barrier_coordinator(std::int32_t parties) {
  struct waiter {
    std::uint64_t ticket;
    std::int32_t index;
    response_promise<br_result> p;
  };
  struct state {
    std::int32_t parties = 0;
    bool broken = false;
    bool in_action = false;       // the last party is running the action
    std::vector<waiter> waiting;  // this cycle's parties
    std::vector<waiter> next;     // arrived while the action ran: the next cycle's
    std::unordered_map<std::uint64_t, br_result> last;  // the last release, by ticket
    std::uint64_t action_requester = 0;
    watcher w;

    void arrive(std::uint64_t ticket, response_promise<br_result> p) {
      if (in_action) {
        next.push_back({ticket, 0, std::move(p)});
        return;
      }
      auto index = static_cast<std::int32_t>(waiting.size());
      if (index + 1 < parties) {
        waiting.push_back({ticket, index, std::move(p)});
        return;
      }
      // The last party runs the action (if any: the client says done at
      // once otherwise); the others are released after it.
      in_action = true;
      action_requester = p.requester_id();
      last.clear();
      last.emplace(ticket, br_result{run_action, index});
      p.deliver(br_result{run_action, index});
    }
    void release(std::int32_t st) {
      if (!in_action || st != ok) last.clear();
      for (auto& x : waiting) {
        br_result r{st, x.index};
        last.emplace(x.ticket, r);
        x.p.deliver(r);
      }
      waiting.clear();
      in_action = false;
      action_requester = 0;
      auto n = std::move(next);
      next.clear();
      for (auto& x : n) {
        if (broken)
          x.p.deliver(br_result{coord::broken, 0});
        else
          arrive(x.ticket, std::move(x.p));
      }
    }
    void brk() {
      broken = true;
      release(coord::broken);
    }
    bool has(std::uint64_t ticket) const {
      auto t = [&](const waiter& x) { return x.ticket == ticket; };
      return std::any_of(waiting.begin(), waiting.end(), t) ||
             std::any_of(next.begin(), next.end(), t);
    }
  };
  auto s = std::make_shared<state>();
  s->parties = parties;
  return {
      [s](const br_wait& m) -> br_result {
        if (s->broken) return {broken, 0};
        auto p = this_actor::make_response_promise<br_result>();
        s->w.watch(p.requester_id());
        s->arrive(m.ticket, std::move(p));
        return {};  // not sent
      },
      [s](const br_action_done& m) {
        if (!s->in_action) return;
        if (m.ok)
          s->release(ok);
        else
          s->brk();
      },
      [s](const br_timed_out& m) -> br_result {
        if (s->has(m.ticket)) {
          // A waiter gave up: as in Python, the barrier breaks for everyone.
          s->brk();
          return {broken, 0};
        }
        if (auto r = s->last.find(m.ticket); r != s->last.end()) return r->second;
        return {broken, 0};
      },
      [s](const br_reset&) {
        s->broken = true;
        s->release(broken);
        s->broken = false;
      },
      [s](const br_abort&) { s->brk(); },
      [s](const br_query&) {
        return br_state{
            s->parties,
            static_cast<std::int32_t>(s->waiting.size() + s->next.size()) + (s->in_action ? 1 : 0),
            s->broken};
      },
      [s](const down& d) {
        const std::uint64_t who = d.who.id();
        s->w.forget(who);
        bool part = s->in_action && s->action_requester == who;
        for (auto& x : s->waiting) part = part || x.p.requester_id() == who;
        for (auto& x : s->next) part = part || x.p.requester_id() == who;
        if (part) s->brk();
      },
  };
}

// ------------------------------------------------------------------ queue

behavior queue_coordinator(std::int64_t maxsize) {
  struct putter {
    std::uint64_t ticket;
    bytes item;
    response_promise<std::int32_t> p;
  };
  struct getter {
    std::uint64_t ticket;
    response_promise<q_item> p;
  };
  struct state {
    std::int64_t maxsize = 0;
    std::deque<bytes> items;
    std::deque<putter> putters;
    std::deque<getter> getters;
    // Items handed to getters that had waited or had a deadline, kept until
    // later ones push them out, so that a getter whose deadline passed as the
    // item was on its way gets it again instead of losing it. Likewise the
    // tickets of puts accepted after a wait or with a deadline.
    std::deque<std::pair<std::uint64_t, bytes>> handed;  // the last 1024
    std::unordered_set<std::uint64_t> accepted;          // putters that had waited and got in
    std::deque<std::uint64_t> accepted_order;
    watcher w;

    bool full() const { return maxsize > 0 && static_cast<std::int64_t>(items.size()) >= maxsize; }
    void remember_hand(std::uint64_t ticket, const bytes& b) {
      handed.emplace_back(ticket, b);
      if (handed.size() > 1024) handed.pop_front();
    }
    void remember_accept(std::uint64_t ticket) {
      accepted.insert(ticket);
      accepted_order.push_back(ticket);
      if (accepted_order.size() > 1024) {
        accepted.erase(accepted_order.front());
        accepted_order.pop_front();
      }
    }
    /// Moves items to waiting getters and waiting putters' items in.
    void settle() {
      for (;;) {
        if (!items.empty() && !getters.empty()) {
          getter g = std::move(getters.front());
          getters.pop_front();
          remember_hand(g.ticket, items.front());
          g.p.deliver(q_item{ok, std::move(items.front())});
          items.pop_front();
          continue;
        }
        if (!putters.empty() && !full()) {
          putter x = std::move(putters.front());
          putters.pop_front();
          items.push_back(std::move(x.item));
          remember_accept(x.ticket);
          x.p.deliver(ok);
          continue;
        }
        return;
      }
    }
  };
  auto s = std::make_shared<state>();
  s->maxsize = maxsize;
  return {
      [s](q_put m) -> std::int32_t {
        if (!s->full() && s->putters.empty()) {
          if (m.timed) s->remember_accept(m.ticket);
          s->items.push_back(std::move(m.item));
          s->settle();
          return ok;
        }
        if (!m.blocking) return not_now;
        auto p = this_actor::make_response_promise<std::int32_t>();
        s->w.watch(p.requester_id());
        s->putters.push_back({m.ticket, std::move(m.item), std::move(p)});
        return ok;  // not sent
      },
      [s](const q_get& m) -> q_item {
        if (!s->items.empty() && s->getters.empty()) {
          if (m.timed) s->remember_hand(m.ticket, s->items.front());
          q_item r{ok, std::move(s->items.front())};
          s->items.pop_front();
          s->settle();
          return r;
        }
        if (!m.blocking) return {not_now, {}};
        auto p = this_actor::make_response_promise<q_item>();
        s->w.watch(p.requester_id());
        s->getters.push_back({m.ticket, std::move(p)});
        return {};  // not sent
      },
      [s](const q_put_timed_out& m) -> std::int32_t {
        auto it = std::find_if(s->putters.begin(), s->putters.end(),
                               [&](const putter& x) { return x.ticket == m.ticket; });
        if (it != s->putters.end()) {
          it->p.deliver(not_now);
          s->putters.erase(it);
          return not_now;
        }
        return s->accepted.count(m.ticket) ? ok : not_now;
      },
      [s](const q_get_timed_out& m) -> q_item {
        auto it = std::find_if(s->getters.begin(), s->getters.end(),
                               [&](const getter& x) { return x.ticket == m.ticket; });
        if (it != s->getters.end()) {
          it->p.deliver(q_item{not_now, {}});
          s->getters.erase(it);
          return {not_now, {}};
        }
        for (auto h = s->handed.begin(); h != s->handed.end(); ++h) {
          if (h->first != m.ticket) continue;
          q_item r{ok, std::move(h->second)};
          s->handed.erase(h);
          return r;
        }
        return {not_now, {}};
      },
      [s](const q_size&) { return static_cast<std::int64_t>(s->items.size()); },
      [s](const q_maxsize&) { return s->maxsize; },
      [s](const down& d) {
        const std::uint64_t who = d.who.id();
        s->w.forget(who);
        std::erase_if(s->getters, [&](getter& g) {
          if (g.p.requester_id() != who) return false;
          g.p.deliver(q_item{not_now, {}});
          return true;
        });
        // A putter that died while waiting: its item is not put (it never
        // returned from put).
        std::erase_if(s->putters, [&](putter& x) {
          if (x.p.requester_id() != who) return false;
          x.p.deliver(not_now);
          return true;
        });
      },
  };
}

// Another node creates these on this one (event::create(node) ...): its
// spawn request names them, so they are registered at start-up.
ISOLA_REGISTER_FUNCTION(event_coordinator);
ISOLA_REGISTER_FUNCTION(condition_coordinator);
ISOLA_REGISTER_FUNCTION(barrier_coordinator);
ISOLA_REGISTER_FUNCTION(queue_coordinator);

}  // namespace isola::detail::coord
