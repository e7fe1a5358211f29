// The actor process side: its context (peers found through the control
// channel to the root) and the loop that serves the mailbox.
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <thread>
#include <typeinfo>
#include <tuple>
#include <unordered_map>

#include "actor/control.hpp"
#include "actor/seqpacket.hpp"
#include "core/mailbox.hpp"
#include "isola/behavior.hpp"
#include "isola/detail/function_registry.hpp"
#include "isola/logging.hpp"
#include "isola/process.hpp"
#include "isola/supervisor.hpp"
#include "sandbox/sandbox.hpp"
#include "sys/os.hpp"

namespace isola::detail {

namespace {

context* child_ctx = nullptr;
// Set in a fork child of an actor process: the control channel and the
// mailbox are the parent's (the root would take the child's words for the
// actor's), so the copy of the context is never used.
bool ctx_forked = false;

class child_context;

class child_peer final : public peer {
 public:
  child_peer(child_context& c, unique_fd pidfd, bool process)
      : c_(c), pidfd_(std::move(pidfd)), process_(process) {}
  bool dead() override;
  exit_reason reason() override;
  bool signal(int sig) override {
    if (!pidfd_) return false;
    return ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) == 0;
  }
  void mark_dead(exit_reason r) {
    dead_ = true;
    reason_ = std::move(r);
    have_reason_ = true;
  }

 private:
  child_context& c_;
  unique_fd pidfd_;
  bool process_;
  bool dead_ = false;
  bool have_reason_ = false;
  exit_reason reason_;
  coarse_time next_check_ = 0;
};

class child_context final : public context {
 public:
  explicit child_context(const actor_boot& boot)
      : id_(boot.id),
        name_(boot.name),
        control_(boot.control_fd),
        inbox_(std::make_shared<inbox>(boot.id, boot.mailbox, /*keep_others=*/true)) {}

  std::shared_ptr<peer> lookup(std::uint64_t id) override {
    std::lock_guard lk(m_);
    auto it = peers_.find(id);
    if (it != peers_.end()) return it->second;
    ctl_request rq;
    rq.what = ctl_request::op::lookup;
    rq.id = id;
    std::vector<int> fds;
    ctl_reply r = call_locked(rq, &fds);
    std::vector<unique_fd> owned;
    for (int fd : fds) owned.emplace_back(fd);
    if (r.st == ctl_reply::status::unknown)
      throw value_error("isola::actor: no actor with id " + std::to_string(id));
    std::shared_ptr<child_peer> p;
    if (r.st == ctl_reply::status::dead) {
      p = std::make_shared<child_peer>(*this, unique_fd{}, true);
      p->mark_dead(r.reason);
    } else {
      if (owned.size() < 2) throw decode_error("control channel: a lookup reply without a mailbox");
      int pidfd = owned.size() > 2 ? owned[2].release() : -1;
      p = std::make_shared<child_peer>(*this, unique_fd(pidfd), r.process);
      fd_import_scope scope({owned[0].release(), owned[1].release()});
      p->ring = shm_ring::adopt(0, 1, mailbox_tag());
    }
    p->id = id;
    p->pid = r.pid;
    peers_.emplace(id, p);
    return p;
  }

  std::shared_ptr<inbox> my_inbox() override { return inbox_; }

  void add_monitor(std::uint64_t target, std::uint64_t watcher, std::uint64_t ref) override {
    ctl_request rq;
    rq.what = ctl_request::op::monitor;
    rq.id = target;
    rq.ref = ref;
    (void)watcher;  // always this actor's own mailbox
    call(rq);
  }
  void link(std::uint64_t a, bool on) override {
    ctl_request rq;
    rq.what = on ? ctl_request::op::link : ctl_request::op::unlink;
    rq.id = a;
    ctl_reply r = call(rq);
    if (on && r.st == ctl_reply::status::dead && r.reason.abnormal()) {
      // Erlang: linking to a dead process is an exit signal with noproc.
      // We apply the same rule the root applies to live links.
      if (!trapping_) {
        say_exiting(
            {exit_reason::kind::linked, 0,
             "actor " + std::to_string(a) + " had already exited: " + r.reason.to_string()});
        std::_Exit(1);
      }
    }
  }
  void trap_exit(bool on) override {
    ctl_request rq;
    rq.what = ctl_request::op::trap_exit;
    rq.flag = on;
    call(rq);
    trapping_ = on;
  }
  actor self() override { return actor(id_, static_cast<int>(::getpid()), name_); }
  std::uint64_t self_id() override { return id_; }

  exit_reason reason_of(std::uint64_t id) {
    auto until = clock::now() + std::chrono::milliseconds(500);
    for (;;) {
      ctl_request rq;
      rq.what = ctl_request::op::reason;
      rq.id = id;
      ctl_reply r = call(rq);
      if (r.st == ctl_reply::status::dead) return r.reason;
      if (clock::now() >= until)
        return {exit_reason::kind::unknown, 0, "the root did not report it in time"};
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  /// Tells the root the behavior is built (no reply): supervisors wait for it.
  void say_started() noexcept {
    try {
      ctl_request rq;
      rq.what = ctl_request::op::started;
      auto b = encode(rq);
      std::lock_guard lk(m_);
      send_with_fds(control_.get(), b, {});
    } catch (...) {}
  }

  /// Tells the root why we are about to exit (no reply).
  void say_exiting(const exit_reason& why) noexcept {
    try {
      ctl_request rq;
      rq.what = ctl_request::op::exiting;
      rq.said = why;
      auto b = encode(rq);
      std::lock_guard lk(m_);
      send_with_fds(control_.get(), b, {});
    } catch (...) {}
  }

  /// One packet to the root, no reply: the answer comes to the mailbox.
  void forward_remote(const ctl_request& rq) override {
    auto b = encode(rq);
    if (b.size() > max_control_packet)
      throw value_error("isola::actor: a message of " + std::to_string(rq.payload.size()) +
                        " bytes to an actor of another node is over what an actor process can "
                        "pass through its root (" +
                        std::to_string(max_control_packet / 1024) +
                        " KiB in all); send it from the root process");
    std::lock_guard lk(m_);
    send_with_fds(control_.get(), b, {});
  }

  /// The root spawns for us and answers with the handle (or the error).
  actor spawn_through_root(bytes blob) {
    ctl_request rq;
    rq.what = ctl_request::op::spawn;
    rq.payload.assign(reinterpret_cast<const char*>(blob.data()), blob.size());
    if (encode(rq).size() > max_control_packet)
      throw value_error("isola::spawn: the arguments (" + std::to_string(blob.size()) +
                        " bytes) are over what an actor process can pass to its root (" +
                        std::to_string(max_control_packet / 1024) + " KiB)");
    ctl_reply r = call(rq);
    auto payload = std::span<const std::byte>(reinterpret_cast<const std::byte*>(r.payload.data()),
                                              r.payload.size());
    if (r.st == ctl_reply::status::failed)
      std::rethrow_exception(to_exception(decode<error_info>(payload)));
    if (r.st != ctl_reply::status::ok)
      throw decode_error("control channel: a spawn reply of the wrong kind");
    return decode<actor>(payload);
  }

  const std::string& name() const { return name_; }

  /// Whether the root registered the function at (module, offset): its type,
  /// or 0 (function_registry.hpp).
  std::uint64_t root_function_type(const std::string& module, std::uint64_t offset) {
    ctl_request rq;
    rq.what = ctl_request::op::function;
    auto b = encode(std::make_tuple(module, offset));
    rq.payload.assign(reinterpret_cast<const char*>(b.data()), b.size());
    ctl_reply r = call(rq);
    if (r.st != ctl_reply::status::ok) return 0;
    return decode<std::uint64_t>(std::as_bytes(std::span(r.payload.data(), r.payload.size())));
  }

 private:
  ctl_reply call(const ctl_request& rq) {
    std::lock_guard lk(m_);
    std::vector<int> fds;
    ctl_reply r = call_locked(rq, &fds);
    for (int fd : fds) ::close(fd);
    return r;
  }
  ctl_reply call_locked(const ctl_request& rq, std::vector<int>* fds) {
    auto b = encode(rq);
    send_with_fds(control_.get(), b, {});
    bytes buf;
    std::size_t n = recv_packet(control_.get(), buf, *fds, false).value_or(0);
    if (n == 0) {
      // The root is gone: PDEATHSIG is about to end us too.
      std::_Exit(70);
    }
    return decode<ctl_reply>(std::span<const std::byte>(buf.data(), n));
  }

  std::uint64_t id_;
  std::string name_;
  unique_fd control_;
  std::shared_ptr<inbox> inbox_;
  std::mutex m_;
  std::unordered_map<std::uint64_t, std::shared_ptr<child_peer>> peers_;
  bool trapping_ = false;
};

bool child_peer::dead() {
  if (dead_) return true;
  if (!process_ || !pidfd_) return false;
  // Once per tick of the coarse clock (~1-4 ms), not once per message.
  auto now = coarse_now();
  if (now < next_check_) return false;
  next_check_ = now + coarse_ms(2);
  pollfd pfd{pidfd_.get(), POLLIN, 0};
  if (::poll(&pfd, 1, 0) > 0) dead_ = true;
  return dead_;
}

exit_reason child_peer::reason() {
  if (!have_reason_) {
    reason_ = c_.reason_of(id);
    have_reason_ = true;
  }
  return reason_;
}

// Why an exception ends this actor: a sandbox limit where the exception
// says one was hit (bad_alloc under address_space, EMFILE under
// open_files), else the exception itself.
exit_reason reason_for(const std::exception& ex) {
  if (const sandbox* box = current_sandbox()) {
    if (box->address_space && dynamic_cast<const std::bad_alloc*>(&ex))
      return {exit_reason::kind::limit, 0, "address_space"};
    auto* oe = dynamic_cast<const os_error*>(&ex);
    if (box->open_files && oe && oe->code() == EMFILE)
      return {exit_reason::kind::limit, 0, "open_files"};
  }
  return {exit_reason::kind::exception, 0, ex.what()};
}

fn_type ask_root_registry(const std::string& module, std::uint64_t offset) {
  return child_ctx && !ctx_forked
             ? static_cast<child_context*>(child_ctx)->root_function_type(module, offset)
             : 0;
}

}  // namespace

actor spawn_through_root(const spawn_options& o, function_address entry, function_address fn,
                         bytes args) {
  if (!in_actor_process()) throw value_error("isola::spawn: not in an actor process");
  return static_cast<child_context*>(&ctx())->spawn_through_root(
      spawn_blob(o, entry, fn, std::move(args)));
}

context& ctx() {
  if (child_ctx) {
    if (ctx_forked)
      throw start_method_error(
          "isola: this process is a fork child of an actor process; the actor's mailbox and its "
          "channel to the root stay the actor's; start this process with the forkserver or spawn "
          "method to use actors in it");
    return *child_ctx;
  }
  return root_context();
}

void set_child_context(context* c) noexcept {
  static const bool atfork = [] {
    ::pthread_atfork(nullptr, nullptr, [] { ctx_forked = true; });
    return true;
  }();
  (void)atfork;
  child_ctx = c;
}

bool in_actor_process() noexcept { return child_ctx != nullptr; }

int run_actor(const actor_boot& boot, const std::function<behavior()>& make_behavior) {
  // SIGINT ends an actor process as by default (-SIGINT, reported as a
  // signal exit): the keyboard_interrupt of process targets would unwind
  // through the actor loop, which is not a target.
  {
    struct sigaction old {};
    if (::sigaction(SIGINT, nullptr, &old) == 0 && old.sa_handler != SIG_IGN)
      ::signal(SIGINT, SIG_DFL);
  }
  static child_context c(boot);  // lives until the process exits
  set_child_context(&c);
  // A sandbox violation is reported on the control channel (one packet
  // from the SIGSYS handler) before the process dies.
  set_violation_report_fd(boot.control_fd);
  set_registry_query(&ask_root_registry);
  auto& log = get_logger();
  auto ib = c.my_inbox();
  behavior b;
  try {
    b = make_behavior();
  } catch (const ignore_child&) {
    // OTP's `ignore`: not an error; the supervisor keeps the spec, not running.
    c.say_exiting({exit_reason::kind::normal, 0, detail::ignored_start_text});
    return 0;
  } catch (const std::exception& ex) {
    c.say_exiting(reason_for(ex));
    throw;
  }
  c.say_started();
  const std::uint64_t down_tag = type_tag<down>();
  const std::uint64_t exit_tag = type_tag<exit_msg>();
  envelope env;  // reused: its payload buffer keeps its capacity
  bytes reply;   // likewise
  auto* e = &env;
  // After answering a request, the requester's next message tends to follow
  // within microseconds: poll briefly before sleeping. A stream of sends is
  // better served by sleeping (the sender fills the mailbox meanwhile).
  bool replied = false;
  for (;;) {
    if (!ib->next_into(env, std::nullopt, replied)) continue;
    replied = false;
    env_kind k = e->kind();
    if (k == env_kind::stop) {
      c.say_exiting({exit_reason::kind::shutdown, 0, {}});
      return 0;
    }
    if (k != env_kind::send && k != env_kind::request && k != env_kind::down &&
        k != env_kind::exit_signal)
      continue;
    std::uint64_t tag = k == env_kind::down          ? down_tag
                        : k == env_kind::exit_signal ? exit_tag
                                                     : e->h.tag;
    behavior::handler* h = b.find(tag);
    const bool is_request = k == env_kind::request;
    if (!h || (h->tag == 0 && (k == env_kind::down || k == env_kind::exit_signal))) {
      if (is_request) {
        error_info ei{
            error_info::kind::no_handler, type_name_for_tag(tag), {}, ::getpid(), c.name()};
        post(e->h.sender, env_kind::error_reply, e->h.ref, type_tag<error_info>(), encode(ei));
      } else if (k == env_kind::send) {
        log.warning(c.name() + ": no handler for a message of type " + type_name_for_tag(tag) +
                    "; dropped");
      }
      continue;
    }
    auto& cur = this_request();
    cur = current_request{e->h.sender, e->h.ref, is_request, false};
    try {
      reply.clear();
      std::uint64_t reply_tag = h->call(tag, e->payload, is_request ? &reply : nullptr);
      const bool deferred = cur.deferred;
      cur = current_request{};
      if (is_request && !deferred) {
        post(e->h.sender, env_kind::reply, e->h.ref, reply_tag, reply);
        replied = true;
        if (reply.capacity() > (std::size_t{1} << 20)) bytes().swap(reply);
      }
    } catch (const payload_decode_error& ex) {
      // Junk with a valid tag (a corrupt or forged message): the user's
      // function never ran, so nothing is wrong with this actor. Dropped,
      // counted and logged, as a malformed envelope is; a requester learns why.
      cur = current_request{};
      c.undecodable.fetch_add(1, std::memory_order_relaxed);
      log.warning(c.name() + ": dropped a message of type " + type_name_for_tag(tag) +
                  " whose payload does not decode: " + ex.what());
      if (is_request) {
        error_info ei{error_info::kind::decode, type_name_for_tag(tag), ex.what(), ::getpid(),
                      c.name()};
        post(e->h.sender, env_kind::error_reply, e->h.ref, type_tag<error_info>(), encode(ei));
        replied = true;
      }
    } catch (const std::exception& ex) {
      const bool deferred = cur.deferred;
      cur = current_request{};
      if (is_request && !deferred) {
        error_info ei{error_info::kind::exception, demangle(typeid(ex).name()), ex.what(),
                      ::getpid(), c.name()};
        post(e->h.sender, env_kind::error_reply, e->h.ref, type_tag<error_info>(), encode(ei));
      }
      c.say_exiting(reason_for(ex));
      throw;
    }
  }
}

}  // namespace isola::detail
