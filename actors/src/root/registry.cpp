// The root's registry and CAF system. See node.hpp.
#include "root/registry.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/event_handler.hpp>

#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "actor/control.hpp"
#include "actor/seqpacket.hpp"
#include "core/parking.hpp"
#include "isola/detail/function_registry.hpp"
#include "isola/logging.hpp"
#include "process/launcher.hpp"
#include "process/registry.hpp"
#include "process/shutdown_hook.hpp"
#include "sandbox/sandbox.hpp"
#include "sys/os.hpp"

namespace isola::detail {

namespace {

namespace net = caf::io::network;

/// The descriptors the root watches (pidfds of actor processes, the root
/// ends of their control channels) live in one epoll set of our own, and
/// that set's descriptor is the one event handler in CAF's multiplexer: CAF
/// wakes us on its thread, and adding, removing and closing descriptors
/// stays under our control (CAF's own handlers close late and may name a
/// descriptor after it was removed).
class watch_set final : public net::event_handler {
 public:
  using callback = std::function<void(int fd)>;

  explicit watch_set(net::default_multiplexer& dm) : event_handler(dm, make_epoll()) {}

  void start() { activate(); }

  /// Watches fd for readability (takes ownership); returns a token.
  std::uint64_t add(int fd, callback cb) {
    std::uint64_t token;
    {
      std::lock_guard lk(m_);
      token = next_++;
      watched_.emplace(token, item{fd, std::move(cb)});
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = token;
    if (::epoll_ctl(fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      int err = errno;
      std::lock_guard lk(m_);
      watched_.erase(token);
      ::close(fd);
      throw_errno("epoll_ctl (watching an actor)", err);
    }
    return token;
  }

  /// Runs the callback of a watched descriptor now, if it is still watched
  /// (on the multiplexer thread).
  void poke(std::uint64_t token) {
    callback cb;
    int fd = -1;
    {
      std::lock_guard lk(m_);
      auto it = watched_.find(token);
      if (it == watched_.end()) return;
      cb = it->second.cb;
      fd = it->second.fd;
    }
    cb(fd);
  }

  /// Stops watching and closes the descriptor (any thread; idempotent).
  void remove(std::uint64_t token) {
    int fd = -1;
    {
      std::lock_guard lk(m_);
      auto it = watched_.find(token);
      if (it == watched_.end()) return;
      fd = it->second.fd;
      watched_.erase(it);
    }
    ::epoll_ctl(fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
  }

  void handle_event(net::operation op) override {
    if (op != net::operation::read) return;
    epoll_event evs[64];
    int n;
    do n = ::epoll_wait(fd_, evs, 64, 0);
    while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; ++i) {
      callback cb;
      int fd = -1;
      {
        std::lock_guard lk(m_);
        auto it = watched_.find(evs[i].data.u64);
        if (it == watched_.end()) continue;  // removed by an earlier callback
        cb = it->second.cb;
        fd = it->second.fd;
      }
      cb(fd);
    }
  }
  void removed_from_loop(net::operation) override {}
  void graceful_shutdown() override { passivate(); }

 private:
  static int make_epoll() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw_errno("epoll_create1");
    return fd;
  }
  struct item {
    int fd;
    callback cb;
  };
  std::mutex m_;
  std::unordered_map<std::uint64_t, item> watched_;
  std::uint64_t next_ = 1;
};

struct entry final : peer {
  std::string name;
  bool is_process = true;
  bool daemon = true;
  std::unique_ptr<process> proc;
  std::atomic<bool> ended{false};
  // Guarded by the node's mutex:
  exit_reason why;
  std::optional<exit_reason> said, imposed;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> monitors;  // watcher, ref
  std::set<std::uint64_t> links;
  bool trap_exit = false;
  bool started = false;
  exit_callback on_exit;
  std::uint64_t pid_watch = 0, ctl_watch = 0;
  std::optional<isola::sandbox> box;  // what it runs under (its children get it too)

  bool dead() override { return ended.load(std::memory_order_acquire); }
  exit_reason reason() override;
};

struct dead_record {
  int pid = 0;
  exit_reason why;
  bool started = false;
};

exit_reason classify(int code, const std::optional<exit_reason>& said,
                     const std::optional<exit_reason>& imposed,
                     const std::optional<std::string>& limit) {
  if (imposed) return *imposed;
  // The SIGSYS handler reported the call before the process died by SIGSYS.
  if (said && said->what == exit_reason::kind::sandbox_violation && code == -SIGSYS) return *said;
  if (limit) return {exit_reason::kind::limit, 0, *limit};
  if (said && said->what == exit_reason::kind::limit) return *said;
  if (said && said->what == exit_reason::kind::exception) return *said;
  if (said && said->what == exit_reason::kind::shutdown && code == 0) return *said;
  if (said && said->what == exit_reason::kind::linked) return *said;
  // A normal exit the actor explained (ignore_child while starting).
  if (said && said->what == exit_reason::kind::normal && code == 0) return *said;
  if (code == INT_MIN) return {exit_reason::kind::unknown, 0, "the exit status was lost"};
  if (code == 0) return {};
  if (code > 0) return {exit_reason::kind::exit_code, code, {}};
  return {exit_reason::kind::signal, -code, {}};
}

class node final : public context {
 public:
  explicit node(const actor_system_options& o) {
    cfg_.load<caf::io::middleman>();
    const char* policy = std::getenv("ISOLA_CAF_SCHEDULER");
    std::string p = policy && *policy ? policy : o.scheduler_policy;
    if (p != "sharing" && p != "stealing")
      throw value_error("isola: unknown CAF scheduler policy '" + p + "' (sharing or stealing)");
    cfg_.set("scheduler.policy", caf::atom_from_string(p));
    if (o.max_threads > 0) cfg_.set("scheduler.max-threads", o.max_threads);
    // Heartbeats between nodes (isola/node.hpp, remote.cpp): without them a
    // stopped peer is never noticed. With no node connected they cost one
    // timer tick in the BASP broker per interval.
    if (o.heartbeat_interval.count() > 0) {
      cfg_.set("middleman.heartbeat-interval", caf::timespan{o.heartbeat_interval});
      if (o.connection_timeout.count() > 0)
        cfg_.set("middleman.connection-timeout", caf::timespan{o.connection_timeout});
    }
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    dm_ = &dynamic_cast<net::default_multiplexer&>(sys_->middleman().backend());
    watch_ = new watch_set(*dm_);  // lives as long as the process: CAF may call it until exit
    dm_->post([w = watch_] { w->start(); });
    add_shutdown_hook(&node::shutdown_hook);
  }

  caf::actor_system& system() { return *sys_; }

  // ---------------------------------------------------------------- context
  std::shared_ptr<peer> lookup(std::uint64_t id) override {
    std::lock_guard lk(m_);
    auto it = entries_.find(id);
    if (it != entries_.end()) return it->second;
    auto d = dead_.find(id);
    if (d != dead_.end()) {
      auto e = std::make_shared<entry>();
      e->id = id;
      e->pid = d->second.pid;
      e->why = d->second.why;
      e->ended = true;
      return e;
    }
    if (forgotten_locked(id)) {
      auto e = std::make_shared<entry>();
      e->id = id;
      e->why = forgotten_reason();
      e->ended = true;
      return e;
    }
    throw value_error("isola::actor: no actor with id " + std::to_string(id));
  }

  std::shared_ptr<inbox> my_inbox() override {
    thread_local inbox_holder holder;
    if (!holder.ib) {
      auto e = std::make_shared<entry>();
      e->id = next_id_.fetch_add(1);
      e->pid = static_cast<int>(::getpid());
      e->is_process = false;
      e->name = "root-thread";
      ring_config cfg;
      cfg.type_tag = mailbox_tag();
      cfg.single_consumer = true;  // only this thread reads its inbox
      e->ring = shm_ring::create(cfg);
      holder.ib = std::make_shared<inbox>(e->id, e->ring, /*keep_others=*/false);
      holder.id = e->id;
      std::lock_guard lk(m_);
      entries_.emplace(e->id, std::move(e));
    }
    return holder.ib;
  }

  void add_monitor(std::uint64_t target, std::uint64_t watcher, std::uint64_t ref) override {
    std::optional<dead_record> gone;
    {
      std::lock_guard lk(m_);
      auto it = entries_.find(target);
      if (it != entries_.end() && !it->second->dead()) {
        it->second->monitors.emplace_back(watcher, ref);
        return;
      }
      auto d = dead_.find(target);
      gone = d != dead_.end()         ? d->second
             : forgotten_locked(target) ? dead_record{0, forgotten_reason()}
                                        : dead_record{0, {exit_reason::kind::unknown, 0, "no such actor"}};
    }
    down dn{actor(target, gone->pid, {}), gone->why};
    notify(watcher, env_kind::down, ref, encode(dn));
  }

  void link(std::uint64_t, bool) override {
    throw value_error("isola::this_actor::link: only an actor process can link itself");
  }
  void trap_exit(bool) override {
    throw value_error("isola::this_actor::trap_exit: only an actor process traps exits");
  }
  actor self() override {
    auto ib = my_inbox();
    return actor(ib->id(), static_cast<int>(::getpid()), "root-thread");
  }

  // ---------------------------------------------------------------- spawning
  actor spawn(const spawn_options& o, const make_process_fn& make, exit_callback on_exit) {
    start_method method = o.method.value_or(start_method::forkserver);
    if (method == start_method::fork)
      throw start_method_error(
          "isola::spawn: actors never start with fork (the root runs CAF threads, and a fork of "
          "a multi-threaded process is unsafe); use forkserver (the default) or spawn");
    auto e = std::make_shared<entry>();
    e->id = next_id_.fetch_add(1);
    e->name = o.name.empty() ? "actor-" + std::to_string(e->id) : o.name;
    e->daemon = o.daemon;
    e->on_exit = std::move(on_exit);
    ring_config cfg;
    cfg.ring_bytes = o.mailbox_bytes;
    cfg.type_tag = mailbox_tag();
    cfg.single_consumer = true;  // only the actor's process reads its mailbox
    e->ring = shm_ring::create(cfg);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      throw_errno("socketpair (actor control channel)");
    unique_fd mine(sv[0]), theirs(sv[1]);
    actor_boot boot{e->id, e->name, e->ring, theirs.get(), static_cast<int>(::getpid())};
    process_options po;
    po.name = e->name;
    po.daemon = o.daemon;
    po.method = method;
    po.sandbox = o.sandbox;
    e->box = o.sandbox;
    e->proc = std::make_unique<process>(make(boot, po));
    {
      std::lock_guard lk(m_);
      entries_.emplace(e->id, e);
    }
    try {
      e->proc->start();
    } catch (...) {
      std::lock_guard lk(m_);
      entries_.erase(e->id);
      throw;
    }
    theirs.reset();
    e->pid = e->proc->pid();
    actor a(e->id, e->pid, e->name);

    int pidfd = -1;
    try {
      pidfd = pidfd_open(e->pid);
    } catch (const std::exception&) {
      pidfd = -1;  // already gone and reaped by the zygote: the status pipe still tells
    }
    std::weak_ptr<entry> w = e;
    e->ctl_watch = watch_->add(mine.release(), [this, w](int fd) {
      if (auto en = w.lock()) on_control(*en, fd);
    });
    if (pidfd >= 0) {
      e->pid_watch = watch_->add(pidfd, [this, w](int) {
        if (auto en = w.lock()) {
          watch_->remove(en->pid_watch);
          handle_exit(en);
        }
      });
    } else {
      // Already ended: learn how on the multiplexer thread, like any exit.
      dm_->post([this, w] {
        if (auto en = w.lock()) handle_exit(en);
      });
    }
    return a;
  }

  void kill(std::uint64_t id, const exit_reason& why, int sig) {
    std::shared_ptr<entry> e;
    {
      std::lock_guard lk(m_);
      auto it = entries_.find(id);
      if (it == entries_.end() || it->second->dead() || !it->second->proc) return;
      e = it->second;
      if (!e->imposed) e->imposed = why;
      // Signalled under the mutex: the multiplexer resets e->proc under it.
      if (sig == SIGKILL)
        e->proc->kill();
      else
        e->proc->terminate();
    }
  }

  void signal(std::uint64_t id, int sig) {
    std::shared_ptr<entry> e;
    {
      std::lock_guard lk(m_);
      auto it = entries_.find(id);
      if (it == entries_.end() || it->second->dead() || !it->second->proc) return;
      e = it->second;
      // Signalled under the mutex: the multiplexer resets e->proc under it.
      if (sig == SIGKILL)
        e->proc->kill();
      else
        e->proc->terminate();
    }
  }

  bool join(std::uint64_t id, std::optional<clock::time_point> deadline) {
    std::unique_lock lk(m_);
    auto done = [&] {
      auto it = entries_.find(id);
      return it == entries_.end() || it->second->dead();
    };
    if (deadline) return reaped_cv_.wait_until(lk, *deadline, done);
    reaped_cv_.wait(lk, done);
    return true;
  }

  /// Until the actor has built its behavior (nullopt) or ended (its reason).
  std::optional<exit_reason> wait_started(std::uint64_t id, clock::time_point deadline) {
    std::unique_lock lk(m_);
    for (;;) {
      auto it = entries_.find(id);
      if (it == entries_.end()) {
        auto d = dead_.find(id);
        if (d != dead_.end()) {
          if (d->second.started) return std::nullopt;  // started, then ended: its exit tells
          return d->second.why;
        }
        if (forgotten_locked(id)) return forgotten_reason();
        return exit_reason{exit_reason::kind::unknown, 0, "no such actor"};
      }
      if (it->second->started) return std::nullopt;
      if (reaped_cv_.wait_until(lk, deadline) == std::cv_status::timeout &&
          clock::now() >= deadline)
        return exit_reason{exit_reason::kind::unknown, 0, "did not start in time"};
    }
  }

  /// Whether an actor's process has ended, even if its exit has not been
  /// handled yet (its pidfd is readable from the moment it dies).
  bool process_ended(std::uint64_t id) {
    // Under the mutex throughout: the multiplexer resets e->proc (under it)
    // once it has reaped the process; a check then a use outside it raced
    // with that reset (a null process, seen by UBSan).
    std::lock_guard lk(m_);
    if (dead_.count(id)) return true;
    auto it = entries_.find(id);
    if (it == entries_.end()) return true;
    const std::shared_ptr<entry>& e = it->second;
    if (e->dead()) return true;
    if (!e->is_process || !e->proc) return false;
    try {
      pollfd p{e->proc->sentinel(), POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) return true;
      // A pidfd turns readable only once the whole thread group is gone; a
      // killed process whose leader is already a zombie (another thread
      // still exiting: seen under TSan, whose runtime adds one) has ended
      // too: it will never run the user's code again.
      return leader_is_zombie(e->proc->pid());
    } catch (const std::exception&) {
      return true;  // closed: reaped
    }
  }

  static bool leader_is_zombie(int pid) {
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;  // gone
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return true;
    buf[n] = 0;
    const char* paren = std::strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
  }

  std::optional<exit_reason> reason_of(std::uint64_t id) {
    std::lock_guard lk(m_);
    auto d = dead_.find(id);
    if (d != dead_.end()) return d->second.why;
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second->dead()) return it->second->why;
    return std::nullopt;
  }

  void on_shutdown(std::function<void()> fn) {
    std::lock_guard lk(m_);
    shutdown_fns_.push_back(std::move(fn));
  }

  exit_reason reason_locked_wait(entry& e) {
    std::unique_lock lk(m_);
    reaped_cv_.wait_for(lk, std::chrono::milliseconds(500), [&] { return e.dead(); });
    return e.dead() ? e.why : exit_reason{exit_reason::kind::unknown, 0, "not reaped in time"};
  }

  /// An answer the root passes on to a mailbox (see notify).
  void post_answer(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
                   bytes payload) {
    notify(target, kind, ref, tag, std::move(payload));
  }

 private:
  struct inbox_holder {
    std::shared_ptr<inbox> ib;
    std::uint64_t id = 0;
    ~inbox_holder();
  };

  static void shutdown_hook() noexcept;

  void forget(std::uint64_t id) {
    std::lock_guard lk(m_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    // A root thread's inbox ends without an exit to handle: its partners
    // drop their links to it here (they would keep the id forever).
    for (auto l : it->second->links) {
      auto p = entries_.find(l);
      if (p != entries_.end()) p->second->links.erase(id);
    }
    it->second->links.clear();
    // Nobody reads its inbox any more: what still holds the entry (a cached
    // peer, parked notices) sees it ended.
    it->second->ended.store(true, std::memory_order_release);
    entries_.erase(it);
  }

  /// Posts a notice from the root into a mailbox without blocking the
  /// caller (often the multiplexer thread): at once if there is room and
  /// nothing is parked for it, else it is parked (core/parking.hpp) and one
  /// worker thread, the notices' for all mailboxes, retries it until it gets
  /// in or the target ends. The parking is bounded (notice_parking): beyond
  /// it a notice is dropped, and logged, rather than the root's memory grown.
  void notify(std::uint64_t target, env_kind kind, std::uint64_t ref, bytes payload) {
    notify(target, kind, ref, kind == env_kind::down ? type_tag<down>() : type_tag<exit_msg>(),
           std::move(payload));
  }
  void notify(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
              bytes payload) {
    std::shared_ptr<entry> t;
    {
      std::lock_guard lk(m_);
      auto it = entries_.find(target);
      if (it == entries_.end() || it->second->dead()) return;
      t = it->second;
    }
    envelope_header h;
    h.kind = static_cast<std::uint8_t>(kind);
    h.ref = ref;
    h.tag = tag;
    try {
      auto r = notices_.offer(t, h, payload, std::nullopt, &notice_dropped);
      if (r == parking::result::parked) wake_notice_worker();
    } catch (const std::exception& ex) {
      get_logger().warning(std::string("isola: could not post a notice: ") + ex.what());
    }
  }

  static void notice_dropped(parking::drop_reason why) noexcept {
    if (why == parking::drop_reason::full)
      get_logger().warning(
          "isola: a notice (down, exit or answer) was dropped: the mailbox is full, and so are "
          "the notices waiting for room in it");
  }

  void wake_notice_worker() {
    {
      std::lock_guard lk(notice_m_);
      notice_wake_ = true;
      if (!notice_worker_) {
        notice_worker_ = true;
        // One thread for all parked notices, for the life of the process
        // (the node is never destroyed).
        std::thread([this] { notice_loop(); }).detach();
      }
    }
    notice_cv_.notify_one();
  }

  void notice_loop() {
    auto every = std::chrono::milliseconds(1);
    for (;;) {
      {
        std::unique_lock lk(notice_m_);
        notice_cv_.wait(lk, [&] { return notice_wake_; });
        notice_wake_ = false;
      }
      for (;;) {
        std::size_t before = notices_.parked();
        if (!notices_.retry()) break;
        // Soon again while notices get in; back off while nothing moves.
        every = notices_.parked() < before ? std::chrono::milliseconds(1)
                                            : std::min(every * 2, std::chrono::milliseconds(16));
        std::unique_lock lk(notice_m_);
        notice_cv_.wait_for(lk, every);
        notice_wake_ = false;
      }
    }
  }

  /// dead_ is bounded: past dead_cap_ records the oldest is forgotten. An id
  /// below next_id_ that is in neither table has ended (ids are never
  /// reused), so it still reads as ended, with an unknown reason.
  void remember_dead_locked(std::uint64_t id, dead_record rec) {
    if (dead_.insert_or_assign(id, std::move(rec)).second) dead_order_.push_back(id);
    while (dead_.size() > dead_cap_ && !dead_order_.empty()) {
      dead_.erase(dead_order_.front());
      dead_order_.pop_front();
    }
  }
  bool forgotten_locked(std::uint64_t id) const {
    return id != 0 && id < next_id_.load(std::memory_order_relaxed) && !entries_.count(id) &&
           !dead_.count(id);
  }
  static exit_reason forgotten_reason() {
    return {exit_reason::kind::unknown, 0, "exited (the record of how was forgotten)"};
  }

  void on_control(entry& e, int fd) {
    for (;;) {
      bytes buf;
      std::vector<int> fds;
      std::optional<std::size_t> n;
      try {
        n = recv_packet(fd, buf, fds, true);
      } catch (const std::exception&) {
        n = 0;
      }
      for (int fd : fds) ::close(fd);
      if (!n) return;
      if (*n == 0) {
        watch_->remove(e.ctl_watch);
        return;
      }
      if (auto nr = parse_violation(buf.data(), *n)) {
        std::lock_guard lk(m_);
        e.said = exit_reason{exit_reason::kind::sandbox_violation, *nr, syscall_name(*nr)};
        continue;
      }
      try {
        auto rq = decode<ctl_request>(std::span<const std::byte>(buf.data(), *n));
        handle(e, fd, rq);
      } catch (const std::exception& ex) {
        get_logger().error("isola: a malformed request on " + e.name +
                           "'s control channel: " + ex.what());
        watch_->remove(e.ctl_watch);
        return;
      }
    }
  }

  void reply(int fd, const ctl_reply& r, std::span<const int> fds = {}) {
    try {
      send_with_fds(fd, encode(r), fds);
    } catch (const std::exception&) {
      // The actor died while asking; its exit is handled by its pidfd.
    }
  }

  void handle(entry& e, int fd, const ctl_request& rq) {
    using op = ctl_request::op;
    ctl_reply r;
    switch (rq.what) {
      case op::lookup: {
        std::shared_ptr<entry> t;
        {
          std::lock_guard lk(m_);
          auto it = entries_.find(rq.id);
          if (it != entries_.end() && !it->second->dead())
            t = it->second;
          else
            fill_dead_locked(rq.id, r);
        }
        if (!t) return reply(fd, r);
        r.pid = t->pid;
        r.process = t->is_process;
        std::vector<int> fds{t->ring->mem_fd(), t->ring->event_fd()};
        unique_fd pfd;
        if (t->is_process) {
          try {
            pfd = unique_fd(pidfd_open(t->pid));
            fds.push_back(pfd.get());
          } catch (const std::exception&) {
            r.st = ctl_reply::status::dead;
            r.reason = {exit_reason::kind::unknown, 0, "exited"};
            return reply(fd, r);
          }
        }
        return reply(fd, r, fds);
      }
      case op::reason: {
        std::lock_guard lk(m_);
        auto it = entries_.find(rq.id);
        if (it != entries_.end() && !it->second->dead())
          r.st = ctl_reply::status::pending;
        else
          fill_dead_locked(rq.id, r);
        break;
      }
      case op::monitor: add_monitor(rq.id, e.id, rq.ref); break;
      case op::link:
      case op::unlink: {
        std::lock_guard lk(m_);
        auto it = entries_.find(rq.id);
        if (it == entries_.end() || it->second->dead()) {
          fill_dead_locked(rq.id, r);
          break;
        }
        if (rq.what == op::link) {
          it->second->links.insert(e.id);
          e.links.insert(rq.id);
        } else {
          it->second->links.erase(e.id);
          e.links.erase(rq.id);
        }
        break;
      }
      case op::trap_exit: {
        std::lock_guard lk(m_);
        e.trap_exit = rq.flag;
        break;
      }
      case op::exiting: {
        std::lock_guard lk(m_);
        e.said = rq.said;
        return;  // no reply
      }
      case op::remote: forward_for_actor(e.id, rq); return;  // answered through the mailbox
      case op::spawn: spawn_for_actor(fd, rq, e.box); return;       // answered from another thread
      case op::function: {
        auto [module, offset] = decode<std::tuple<std::string, std::uint64_t>>(
            std::as_bytes(std::span(rq.payload.data(), rq.payload.size())));
        auto b = encode(static_cast<std::uint64_t>(registered_type_for_root(module, offset)));
        r.payload.assign(reinterpret_cast<const char*>(b.data()), b.size());
        break;
      }
      case op::started: {
        {
          std::lock_guard lk(m_);
          e.started = true;
        }
        reaped_cv_.notify_all();
        return;  // no reply
      }
    }
    reply(fd, r);
  }

  /// An actor process asked for a new actor. Spawning can take
  /// milliseconds (and uses this thread's multiplexer), so a detached CAF
  /// actor does it and answers on a duplicate of the control socket: the
  /// asker waits for that one reply, and its process may be gone by then.
  void spawn_for_actor(int fd, const ctl_request& rq, const std::optional<isola::sandbox>& box) {
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
      ctl_reply r;
      r.st = ctl_reply::status::failed;
      auto b = encode(
          describe_failure(std::make_exception_ptr(os_error(errno, "dup (control channel)"))));
      r.payload.assign(reinterpret_cast<const char*>(b.data()), b.size());
      return reply(fd, r);
    }
    sys_->spawn<caf::detached>(
        [box](caf::event_based_actor* self, int dup, std::string blob) {
          unique_fd answer_on(dup);
          ctl_reply r;
          bytes b;
          try {
            actor a = spawn_from_blob(std::span<const std::byte>(
                                    reinterpret_cast<const std::byte*>(blob.data()), blob.size()),
                                box);
            b = encode(a);
          } catch (...) {
            r.st = ctl_reply::status::failed;
            b = encode(describe_failure(std::current_exception()));
          }
          r.payload.assign(reinterpret_cast<const char*>(b.data()), b.size());
          try {
            send_with_fds(answer_on.get(), encode(r), {});
          } catch (const std::exception&) {
            // The asker died meanwhile; the actor it asked for runs on.
          }
          self->quit();
        },
        dup, rq.payload);
  }

  void fill_dead_locked(std::uint64_t id, ctl_reply& r) {
    auto d = dead_.find(id);
    if (d != dead_.end()) {
      r.st = ctl_reply::status::dead;
      r.pid = d->second.pid;
      r.reason = d->second.why;
      return;
    }
    auto it = entries_.find(id);
    if (it != entries_.end()) {
      r.st = ctl_reply::status::dead;
      r.pid = it->second->pid;
      r.reason = it->second->why;
      return;
    }
    if (forgotten_locked(id)) {
      r.st = ctl_reply::status::dead;
      r.reason = forgotten_reason();
      return;
    }
    r.st = ctl_reply::status::unknown;
  }

  /// On the multiplexer thread: the actor's process ended.
  void handle_exit(const std::shared_ptr<entry>& e) {
    int code = INT_MIN;
    std::optional<std::string> limit;
    try {
      e->proc->join();
      code = e->proc->exitcode().value_or(INT_MIN);
      limit = sandbox_limit_of(*e->proc, code);
    } catch (const std::exception& ex) {
      get_logger().error("isola: could not reap " + e->name + ": " + ex.what());
    }
    // What the actor said on its way out may still be unread (its pidfd and
    // its control channel became readable together): read it first.
    if (e->ctl_watch) watch_->poke(e->ctl_watch);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> monitors;
    std::vector<std::shared_ptr<entry>> linked;
    exit_callback cb;
    exit_reason r;
    {
      std::lock_guard lk(m_);
      r = classify(code, e->said, e->imposed, limit);
      e->why = r;
      cb = std::move(e->on_exit);
    }
    actor who(e->id, e->pid, e->name);
    // The supervisor hears first, before anyone can see the actor dead: a
    // client that saw its request fail and asks the supervisor for the child
    // then finds the exit already queued there (and gets the next incarnation).
    if (cb) {
      try {
        cb(who, r);
      } catch (const std::exception& ex) {
        get_logger().error(std::string("isola: an exit callback threw: ") + ex.what());
      }
    }
    {
      std::lock_guard lk(m_);
      e->ended.store(true, std::memory_order_release);
      monitors.swap(e->monitors);
      for (auto l : e->links) {
        auto it = entries_.find(l);
        if (it != entries_.end() && !it->second->dead()) {
          it->second->links.erase(e->id);
          linked.push_back(it->second);
        }
      }
      e->links.clear();
      remember_dead_locked(e->id, dead_record{e->pid, r, e->started});
      entries_.erase(e->id);
    }
    reaped_cv_.notify_all();
    watch_->remove(e->ctl_watch);
    for (auto& [watcher, ref] : monitors)
      notify(watcher, env_kind::down, ref, encode(down{who, r}));
    if (r.abnormal()) {
      for (auto& l : linked) {
        bool trap;
        {
          std::lock_guard lk(m_);
          trap = l->trap_exit;
        }
        if (trap) {
          notify(l->id, env_kind::exit_signal, 0, encode(exit_msg{who, r}));
        } else {
          kill(l->id,
               {exit_reason::kind::linked, 0,
                "linked actor " + e->name + " (id " + std::to_string(e->id) +
                    ") exited: " + r.to_string()},
               SIGKILL);
        }
      }
    }
    // The process handle is no longer needed; the entry may live on in
    // pending requests, its mailbox with it. Taken under the mutex (others
    // read e->proc under it), destroyed outside it.
    std::unique_ptr<process> gone;
    {
      std::lock_guard lk(m_);
      gone = std::move(e->proc);
    }
  }

  void shutdown() noexcept {
    std::vector<std::function<void()>> fns;
    {
      std::lock_guard lk(m_);
      fns.swap(shutdown_fns_);
    }
    for (auto it = fns.rbegin(); it != fns.rend(); ++it) {
      try {
        (*it)();
      } catch (...) {}
    }
    // Non-daemon actors are asked to stop, so that the runtime's join of its
    // children ends; daemon ones are terminated by the runtime.
    std::vector<std::shared_ptr<entry>> all;
    {
      std::lock_guard lk(m_);
      for (auto& [id, e] : entries_)
        if (e->is_process && !e->dead()) all.push_back(e);
    }
    for (auto& e : all) {
      if (e->daemon) continue;
      envelope_header h;
      h.kind = static_cast<std::uint8_t>(env_kind::stop);
      try {
        e->ring->put({reinterpret_cast<const std::byte*>(&h), sizeof h}, {},
                     deadline::at_time(clock::now() + std::chrono::seconds(1)));
      } catch (...) {}
    }
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  net::default_multiplexer* dm_ = nullptr;
  watch_set* watch_ = nullptr;
  std::mutex m_;
  std::condition_variable reaped_cv_;
  std::unordered_map<std::uint64_t, std::shared_ptr<entry>> entries_;
  std::unordered_map<std::uint64_t, dead_record> dead_;
  std::deque<std::uint64_t> dead_order_;  // dead_'s ids, oldest first
  std::size_t dead_cap_ = default_dead_records;
  std::vector<std::function<void()>> shutdown_fns_;
  parking notices_{{notice_parking, std::size_t{64} << 20}};
  std::mutex notice_m_;
  std::condition_variable notice_cv_;
  bool notice_wake_ = false, notice_worker_ = false;  // under notice_m_

 public:
  registry_tables tables() {
    registry_tables t;
    {
      std::lock_guard lk(m_);
      t.entries = entries_.size();
      t.dead = dead_.size();
      for (auto& [id, e] : entries_) t.links += e->links.size();
    }
    t.parked_notices = notices_.parked();
    {
      std::lock_guard lk(notice_m_);
      t.notice_threads = notice_worker_ ? 1 : 0;
    }
    return t;
  }
  void set_dead_cap(std::size_t n) {
    std::lock_guard lk(m_);
    dead_cap_ = std::max<std::size_t>(n, 1);
    while (dead_.size() > dead_cap_ && !dead_order_.empty()) {
      dead_.erase(dead_order_.front());
      dead_order_.pop_front();
    }
  }
  std::atomic<std::uint64_t> next_id_{1};
};

std::atomic<node*> the_node{nullptr};
std::mutex the_node_m;
actor_system_options the_options;

// The pid of the process whose actor system a fork child copied (0: none).
// A fork copies the node, its supervisors and pools, but not the CAF threads
// that run them: in the child they are dead objects that never answer. So
// the child leaves them alone (its shutdown hooks are forgotten, see
// process/shutdown_hook.hpp) and refuses to use them, with an error that
// names the fix, instead of waiting for them forever.
std::atomic<int> inherited_from{0};

void note_fork_in_child() noexcept {
  if (the_node.load(std::memory_order_relaxed) && inherited_from.load() == 0)
    inherited_from.store(static_cast<int>(::getppid()));
  // The parent's threads may have held it at the fork.
  new (&the_node_m) std::mutex;
}

[[noreturn]] void refuse_inherited(const char* what) {
  throw start_method_error(
      std::string(what) + ": this process is a fork child of process " +
      std::to_string(inherited_from.load()) +
      ", whose actor system (CAF threads, supervisors, pools, actors) did not come with the "
      "fork; start this process with the forkserver or spawn method to use actors in it");
}

node& get_node() {
  if (in_actor_process())
    throw value_error("isola: this runs only in the root process (not inside an actor)");
  if (inherited_from.load(std::memory_order_relaxed)) refuse_inherited("isola");
  if (node* n = the_node.load(std::memory_order_acquire)) return *n;
  std::lock_guard lk(the_node_m);
  if (!the_node.load()) {
    static const bool atfork = [] {
      ::pthread_atfork(nullptr, nullptr, &note_fork_in_child);
      return true;
    }();
    (void)atfork;
    // The zygote first, while this process may still have no thread: the
    // actors start from it, and a zygote forked later would be a copy of a
    // process in the middle of CAF's threads (locks held by them stay held
    // in the copy). A spawn child, whose runtime never started one, is
    // where this matters (a node that listens, then spawns). On the
    // launcher: the zygote's PDEATHSIG follows the thread that forks it.
    run_on_launcher([] { ensure_forkserver(); });
    the_node.store(new node(the_options));  // lives until exit
  }
  return *the_node.load();
}

node::inbox_holder::~inbox_holder() {
  if (ib && the_node) the_node.load()->forget(id);
}

void node::shutdown_hook() noexcept {
  // Forgotten by a fork child anyway (the runtime drops its hooks); checked
  // again here so that no path runs the parent's shutdown in a copy.
  if (the_node && !inherited_from.load()) the_node.load()->shutdown();
}

exit_reason entry::reason() {
  if (dead()) {
    if (the_node) return the_node.load()->reason_locked_wait(*this);
    return why;
  }
  return the_node ? the_node.load()->reason_locked_wait(*this) : exit_reason{};
}

}  // namespace

context& root_context() { return get_node(); }

void require_actor_system_here(const char* what) {
  if (inherited_from.load(std::memory_order_relaxed)) refuse_inherited(what);
}

bool actor_system_inherited() noexcept {
  return inherited_from.load(std::memory_order_relaxed) != 0;
}

}  // namespace isola::detail

void isola::configure_actor_system(const actor_system_options& opts) {
  std::lock_guard lk(detail::the_node_m);
  if (detail::the_node.load())
    throw value_error("isola::configure_actor_system: the actor system is already running");
  detail::the_options = opts;
}

namespace isola::detail {

actor spawn_actor(const spawn_options& opts, const make_process_fn& make) {
  return get_node().spawn(opts, make, {});
}

actor node_spawn(const spawn_options& opts, const make_process_fn& make, exit_callback on_exit) {
  return get_node().spawn(opts, make, std::move(on_exit));
}

caf::actor_system& node_system() { return get_node().system(); }

void node_kill(std::uint64_t id, const exit_reason& why) { get_node().kill(id, why, SIGKILL); }
void node_terminate(std::uint64_t id, const exit_reason& why) { get_node().kill(id, why, SIGTERM); }
void node_signal(std::uint64_t id, int sig) { get_node().signal(id, sig); }
bool node_join(std::uint64_t id, std::optional<clock::time_point> deadline) {
  return get_node().join(id, deadline);
}
std::optional<exit_reason> node_reason(std::uint64_t id) { return get_node().reason_of(id); }
bool node_process_ended(std::uint64_t id) { return get_node().process_ended(id); }
std::optional<exit_reason> node_wait_started(std::uint64_t id, clock::time_point deadline) {
  return get_node().wait_started(id, deadline);
}
void node_on_shutdown(std::function<void()> fn) { get_node().on_shutdown(std::move(fn)); }
void node_post_answer(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
                      bytes payload) {
  get_node().post_answer(target, kind, ref, tag, std::move(payload));
}
registry_tables node_tables() { return get_node().tables(); }
void node_set_dead_records_cap(std::size_t n) { get_node().set_dead_cap(n); }

}  // namespace isola::detail
