#include "core/parking.hpp"

#include <string>

#include "isola/logging.hpp"

namespace isola::detail {

namespace {
std::span<const std::byte> header_span(const envelope_header& h) {
  return {reinterpret_cast<const std::byte*>(&h), sizeof h};
}
}  // namespace

void parking::tell(std::vector<dropping>& out) noexcept {
  for (auto& d : out) {
    try {
      if (d.fn) d.fn(d.why);
    } catch (const std::exception& ex) {
      get_logger().warning(std::string("isola: parking: a drop callback threw: ") + ex.what());
    } catch (...) {}
  }
}

parking::result parking::offer(const std::shared_ptr<peer>& target, const envelope_header& h,
                               std::span<const std::byte> payload,
                               std::optional<time_point> until, on_drop_fn on_drop) {
  std::unique_lock lk(m_);
  auto it = lanes_.find(target->id);
  // Behind what is parked already: never overtake it.
  if (it == lanes_.end() && target->ring->put(header_span(h), payload, deadline::now()))
    return result::put;
  if ((it != lanes_.end() && it->second.q.size() >= limits_.per_target) ||
      bytes_ + payload.size() > limits_.total_bytes) {
    lk.unlock();
    if (on_drop) on_drop(drop_reason::full);
    return result::dropped;
  }
  if (it == lanes_.end()) it = lanes_.emplace(target->id, lane{target, {}}).first;
  it->second.q.push_back({h, bytes(payload.begin(), payload.end()), until, std::move(on_drop)});
  ++count_;
  bytes_ += payload.size();
  return result::parked;
}

bool parking::retry() {
  std::vector<dropping> dropped;
  bool left;
  {
    std::lock_guard lk(m_);
    if (lanes_.empty()) return false;
    auto now = clock::now();
    for (auto it = lanes_.begin(); it != lanes_.end();) {
      lane& l = it->second;
      bool dead = l.target->dead();
      while (!l.q.empty()) {
        parked_env& e = l.q.front();
        drop_reason why{};
        bool drop = false;
        if (dead) {
          drop = true;
          why = drop_reason::dead;
        } else if (e.until && now >= *e.until) {
          drop = true;
          why = drop_reason::timeout;
        } else {
          bool in = false;
          try {
            in = l.target->ring->put(header_span(e.h), e.payload, deadline::now());
          } catch (const std::exception& ex) {
            // A mailbox that cannot take it ever (closed, corrupt): as if ended.
            get_logger().warning(std::string("isola: a parked message was dropped: ") + ex.what());
            drop = true;
            why = drop_reason::dead;
          }
          if (!in && !drop) break;  // still full: the rest waits behind it
        }
        if (drop) dropped.push_back({std::move(e.on_drop), why});
        bytes_ -= e.payload.size();
        --count_;
        l.q.pop_front();
      }
      // Expired ones behind a full head are dropped too (their owners are
      // told on time); the others keep their order.
      if (!l.q.empty()) {
        for (auto q = l.q.begin() + 1; q != l.q.end();) {
          if (q->until && now >= *q->until) {
            dropped.push_back({std::move(q->on_drop), drop_reason::timeout});
            bytes_ -= q->payload.size();
            --count_;
            q = l.q.erase(q);
          } else {
            ++q;
          }
        }
      }
      if (l.q.empty())
        it = lanes_.erase(it);
      else
        ++it;
    }
    left = !lanes_.empty();
  }
  tell(dropped);
  return left;
}

std::size_t parking::parked() const {
  std::lock_guard lk(m_);
  return count_;
}

std::size_t parking::parked_bytes() const {
  std::lock_guard lk(m_);
  return bytes_;
}

}  // namespace isola::detail
