// Scenario 3 of DESIGN.md: a producer-consumer pipeline that loses nothing
// when a stage is killed.
//
//   read files (the root) -> transform (N worker processes) -> write (a writer process)
//
// The root reads each input file and hands it, as an `item` (id, name,
// bytes), to a transform worker; each worker puts its `result` into one
// bounded joinable_queue read by the writer, which writes the output file and
// a MANIFEST line (id, checksum of the input, checksum of the output, name)
// and acknowledges the id to the root on a small `acks` queue. Every queue on
// the data path is a bounded joinable_queue, so a slow writer stalls the
// workers (their put blocks) and busy workers stall the reader (no room in
// their queues): back-pressure, with memory bounded by the queue sizes. The
// root draws a progress bar (rate, ETA) on a terminal, plain lines otherwise.
//
// How a killed worker loses nothing and duplicates nothing.
//
// A queue's get() takes the item out of the queue in one atomic step: a
// worker SIGKILLed after get() and before its result is put has the only copy.
// With one queue shared by all the workers nobody could tell which item that
// was (the dead worker cannot say, and "I took item X" sent after get() has
// the same window). So each worker has its own bounded input queue, and the
// root keeps a ledger:
//
// 1. The root alone puts into a worker's queue and remembers, per worker, the
//    ids it put there in order. The worker takes them in that order, puts the
//    result for the writer, and only then calls task_done() on its queue.
// 2. When the root sees a worker die (its pidfd, in the same isola::wait as
//    the acks), nothing else touches that queue, so its counters are exact:
//    unfinished_tasks() - qsize() is the number of items the dead worker had
//    taken and not finished: 0 or 1, and if 1 it is the item put just before
//    the qsize() items still waiting. The root calls task_done() for it (so
//    the queue's join() accounting stays exact for the next worker) and, if
//    the writer has not acknowledged that id, dispatches it again, before
//    any new file. The items still in the queue stay there for the
//    replacement worker, which the root starts on the same queue.
// 3. The dead worker may have put its result before dying (it died between
//    the put and task_done()): then the item is done twice. The writer keeps
//    the set of ids it has written and drops a second result for an id. So
//    every id is written exactly once.
// 4. The run ends when the writer has acknowledged every id; then every
//    worker gets a stop item, the root waits for the writer's queue to drain
//    (joinable_queue::join()), tells the writer to finish, and checks the
//    MANIFEST against the inputs: each id exactly once, both checksums right.
//
// The writer itself is the commit point and is not restarted here: if it
// died the run would stop with an error (making it restartable needs its
// seen-set on disk: read the MANIFEST back on start).
//
// Faults on purpose: --kill N makes the root SIGKILL a busy transform worker
// each time another N items have been written; --fault get:ID (or put:ID)
// makes the worker that takes item ID kill itself right after get() (or
// right after putting its result), the two worst moments, the first time
// only.
//
//   pipeline [--count N] [--workers N] [--kill N] [--work N] [--queue N]
//            [--fault get:ID|put:ID]... [--input DIR] [--output DIR] [--keep]
//            [--interval S]
//
// Short mode (the ctest):
//   pipeline --count 2000 --workers 3 --kill 700 --fault get:100 --fault put:200
// Long mode (a live progress bar on a terminal, a minute or two; the files go
// to $TMPDIR, TMPDIR=/dev/shm spares a slow disk):
//   pipeline --count 100000 --workers 4 --work 200 --kill 25000
// Own files: pipeline --input ~/photos --output /tmp/out --workers 8
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <isola/joinable_queue.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>
#include <isola/runtime.hpp>
#include <isola/wait.hpp>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t stop_id = UINT32_MAX;

struct item {
  std::uint32_t id = 0;
  std::uint32_t attempt = 0;  // 0 the first time, +1 each time it is put again
  std::string name;
  std::string data;
  template <class A>
  void serialize(A& ar) {
    ar(id, attempt, name, data);
  }
};

struct result {
  std::uint32_t id = 0;
  std::string name;
  std::string data;
  std::uint64_t in_sum = 0, out_sum = 0;
  template <class A>
  void serialize(A& ar) {
    ar(id, name, data, in_sum, out_sum);
  }
};

// Where a worker kills itself on purpose (the first time it sees the item).
struct fault {
  std::uint32_t id = 0;
  bool after_put = false;  // false: right after get()
  template <class A>
  void serialize(A& ar) {
    ar(id, after_put);
  }
};

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// The transformation: ROT13 of the letters, and a digest line computed with
// `work` rounds of hashing over the data (the CPU cost knob).
std::string transform(const std::string& in, int work) {
  std::string out = in;
  for (char& c : out) {
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>('a' + (c - 'a' + 13) % 26);
    else if (c >= 'A' && c <= 'Z')
      c = static_cast<char>('A' + (c - 'A' + 13) % 26);
  }
  std::uint64_t h = fnv1a(in);
  for (int r = 0; r < work; ++r) h = fnv1a(in, h);
  char line[48];
  std::snprintf(line, sizeof line, "# digest %016" PRIx64 "\n", h);
  return out + line;
}

// ---------------------------------------------------------------- stages

int transform_worker(isola::joinable_queue<item> in, isola::joinable_queue<result> out, int work,
                     std::vector<fault> faults) {
  auto faulty = [&](const item& it, bool after_put) {
    if (it.attempt != 0) return false;
    return std::any_of(faults.begin(), faults.end(),
                       [&](const fault& f) { return f.id == it.id && f.after_put == after_put; });
  };
  for (;;) {
    item it = in.get();
    if (it.id == stop_id) {
      in.task_done();
      return 0;
    }
    if (faulty(it, false)) ::raise(SIGKILL);  // the item is taken and nobody else has it
    result r;
    r.id = it.id;
    r.name = std::move(it.name);
    r.in_sum = fnv1a(it.data);
    r.data = transform(it.data, work);
    r.out_sum = fnv1a(r.data);
    out.put(r);
    if (faulty(it, true)) ::raise(SIGKILL);  // the result is out, task_done() is not
    in.task_done();
  }
}

bool write_file(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(f);
}

int writer(isola::joinable_queue<result> in, isola::queue<std::uint32_t> acks, std::string outdir) {
  std::vector<bool> seen;
  std::string manifest;
  std::size_t written = 0, dropped = 0;
  for (;;) {
    result r = in.get();
    if (r.id == stop_id) {
      in.task_done();
      break;
    }
    if (r.id >= seen.size()) seen.resize(std::max<std::size_t>(r.id + 1, seen.size() * 2));
    if (seen[r.id]) {  // a worker died after putting this result: it was done again
      ++dropped;
      in.task_done();
      continue;
    }
    if (!write_file(fs::path(outdir) / r.name, r.data)) {
      std::cerr << "writer: cannot write " << r.name << "\n";
      return 1;
    }
    char line[64];
    std::snprintf(line, sizeof line, "%u %016" PRIx64 " %016" PRIx64 " ", r.id, r.in_sum,
                  r.out_sum);
    manifest += line + r.name + "\n";
    seen[r.id] = true;
    ++written;
    acks.put(r.id);
    in.task_done();
  }
  if (!write_file(fs::path(outdir) / "MANIFEST", manifest)) {
    std::cerr << "writer: cannot write the MANIFEST\n";
    return 1;
  }
  std::cout << "writer: " << written << " written, " << dropped << " duplicates dropped"
            << std::endl;
  return 0;
}

// ---------------------------------------------------------------- progress

class progress {
 public:
  progress(std::size_t total, double interval)
      : total_(total), tty_(::isatty(1) == 1), interval_(interval), t0_(clock_type::now()) {}

  // Called often; draws when due (or when forced).
  void update(std::size_t done, bool force = false) {
    auto now = clock_type::now();
    double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.1 : interval_)) return;
    last_ = now;
    double elapsed = std::chrono::duration<double>(now - t0_).count();
    double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    double pct = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100;
    char tail[96];
    if (done >= total_)
      std::snprintf(tail, sizeof tail, "%.0f items/s, %.1f s", rate, elapsed);
    else if (rate > 0)
      std::snprintf(tail, sizeof tail, "%.0f items/s, ETA %.1f s", rate,
                    static_cast<double>(total_ - done) / rate);
    else
      std::snprintf(tail, sizeof tail, "ETA ?");
    if (tty_) {
      constexpr int width = 30;
      int fill = static_cast<int>(pct / 100 * width);
      std::string bar(static_cast<std::size_t>(fill), '#');
      bar.resize(width, '.');
      std::printf("\r\033[K[%s] %zu/%zu %5.1f%% %s", bar.c_str(), done, total_, pct, tail);
      drawn_ = true;
    } else {
      std::printf("progress: %zu/%zu (%.1f%%) %s\n", done, total_, pct, tail);
    }
    std::fflush(stdout);
  }

  // A line of its own, above the bar.
  void say(const std::string& line) {
    if (tty_ && drawn_) std::printf("\r\033[K");
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (tty_ && drawn_) last_ = {};  // redraw the bar at the next update
  }

  void finish(std::size_t done) {
    update(done, true);
    if (tty_) std::printf("\n");
    std::fflush(stdout);
  }

 private:
  std::size_t total_;
  bool tty_;
  double interval_;
  clock_type::time_point t0_, last_{};
  bool drawn_ = false;
};

// ---------------------------------------------------------------- the root

struct options {
  std::size_t count = 2000;
  std::size_t workers = 3;
  std::size_t kill_every = 0;
  int work = 4;
  std::size_t queue = 4;
  std::vector<fault> faults;
  std::string input, output;
  bool keep = false;
  double interval = 1.0;
};

// --fault get:ID|put:ID: a worker kills itself right after get() of item ID,
// or right after putting its result.
fault to_fault(const std::string& v) {
  auto colon = v.find(':');
  return {static_cast<std::uint32_t>(std::stoul(v.substr(colon + 1))), v.substr(0, colon) == "put"};
}

const CLI::Validator fault_spec(
    [](std::string& v) -> std::string {
      auto colon = v.find(':');
      std::string id = colon == std::string::npos ? "" : v.substr(colon + 1);
      bool ok = (v.substr(0, colon) == "get" || v.substr(0, colon) == "put") && !id.empty() &&
                id.size() <= 9 && id.find_first_not_of("0123456789") == std::string::npos;
      return ok ? "" : "takes get:ID or put:ID";
    },
    "get:ID|put:ID");

void add_options(CLI::App& app, options& o) {
  app.add_option("--count", o.count, "files to generate (without --input)");
  app.add_option("--workers", o.workers, "transform workers")->check(CLI::PositiveNumber);
  app.add_option("--kill", o.kill_every, "SIGKILL a busy worker every N items written (0: never)");
  app.add_option("--work", o.work, "rounds of hashing per item (the CPU cost)");
  app.add_option("--queue", o.queue, "bound of each queue")->check(CLI::PositiveNumber);
  app.add_option_function<std::vector<std::string>>(
         "--fault",
         [&o](const std::vector<std::string>& specs) {
           for (const auto& v : specs) o.faults.push_back(to_fault(v));
         },
         "a worker kills itself after get() of item ID, or after putting its result")
      ->check(fault_spec);
  app.add_option("--input", o.input, "read the files of this directory");
  app.add_option("--output", o.output, "write the results into this directory");
  app.add_flag("--keep", o.keep, "keep the generated files");
  app.add_option("--interval", o.interval, "seconds between progress lines when not on a terminal");
}

// count files of 64..2048 bytes of text, deterministic.
void generate_inputs(const fs::path& dir, std::size_t count) {
  std::mt19937 rng(12345);
  static const char* words[] = {"isola", "process", "queue", "pipe", "actor",     "supervisor",
                                "pool",  "fork",    "spawn", "join", "task_done", "back-pressure"};
  std::uniform_int_distribution<int> size(64, 2048), word(0, 11);
  for (std::size_t i = 0; i < count; ++i) {
    std::string text;
    int n = size(rng);
    while (static_cast<int>(text.size()) < n) {
      text += words[word(rng)];
      text += (rng() % 8 == 0) ? '\n' : ' ';
    }
    char name[32];
    std::snprintf(name, sizeof name, "f%06zu.txt", i);
    if (!write_file(dir / name, text))
      throw std::runtime_error("cannot write inputs in " + dir.string());
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

struct slot {
  std::unique_ptr<isola::joinable_queue<item>> q;
  std::unique_ptr<isola::process> proc;
  std::deque<std::uint32_t> sent;  // the last ids put into q, in order
  int number = 0;
};

// The files: a generated temporary directory (base), or --input/--output.
struct file_set {
  fs::path base, indir, outdir;
  std::vector<std::string> names;  // in indir, sorted: an item's id is its index
};

file_set prepare_files(const options& o) {
  file_set f;
  if (o.input.empty() || o.output.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "isola-pipeline-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    f.base = tmpl;
  }
  f.indir = o.input.empty() ? f.base / "in" : fs::path(o.input);
  f.outdir = o.output.empty() ? f.base / "out" : fs::path(o.output);
  if (o.input.empty()) {
    fs::create_directories(f.indir);
    generate_inputs(f.indir, o.count);
  }
  fs::create_directories(f.outdir);
  for (const auto& e : fs::directory_iterator(f.indir))
    if (e.is_regular_file()) f.names.push_back(e.path().filename().string());
  std::sort(f.names.begin(), f.names.end());
  if (f.names.size() >= stop_id) throw std::runtime_error("too many files");
  return f;
}

// The root's side of the scheme above: it dispatches the files to the
// workers' queues, keeps the ledger, recovers and restarts dead workers
// (steps 1 and 2) and stops everything at the end (step 4).
class pipeline_root {
 public:
  pipeline_root(const options& o, const file_set& f)
      : o_(o),
        f_(f),
        total_(f.names.size()),
        results_(16 * o.workers),
        // Daemons: if the root gives up with an error, they are terminated
        // instead of joined (a worker waits in get() for ever).
        writer_proc_(isola::process_options{.name = "writer", .daemon = true}, writer, results_,
                     acks_, f.outdir.string()),
        slots_(o.workers),
        bar_(total_, o.interval),
        acked_(total_, false),
        attempts_(total_, 0),
        next_kill_(o.kill_every ? o.kill_every : SIZE_MAX),
        max_restarts_(100 + total_ / 10) {
    writer_proc_.start();
    for (auto& s : slots_) {
      s.q = std::make_unique<isola::joinable_queue<item>>(o.queue);
      start_worker(s);
    }
  }

  // Until the writer has acknowledged every file.
  void run() {
    std::vector<isola::waitable> waitables;
    while (done_ < total_) {
      dispatch();
      while (auto id = acks_.try_get()) {
        if (!acked_[*id]) {
          acked_[*id] = true;
          ++done_;
        }
      }
      bar_.update(done_);

      // Step 2: a worker died (on purpose or not).
      for (auto& s : slots_)
        if (s.proc->exitcode()) recover(s, true);
      if (auto code = writer_proc_.exitcode())
        throw std::runtime_error("the writer ended early with " + std::to_string(*code));

      // --kill: SIGKILL a busy worker each time another kill_every items are written.
      if (done_ >= next_kill_ && done_ < total_) kill_one();
      if (done_ >= total_) break;

      // Sleep until an ack or a death (or the next progress line is due).
      waitables.clear();
      waitables.emplace_back(acks_);
      waitables.emplace_back(writer_proc_);
      for (auto& s : slots_) waitables.emplace_back(*s.proc);
      isola::wait(std::span<const isola::waitable>(waitables), 50ms);
    }
    bar_.finish(done_);
  }

  // Step 4: stop the workers (a worker that dies now is recovered and
  // restarted so that its stop item is taken), drain the writer.
  void stop() {
    for (auto& s : slots_) {
      s.q->put(item{stop_id, 0, {}, {}});
      s.sent.push_back(stop_id);
    }
    for (auto& s : slots_) {
      for (;;) {
        s.proc->join();
        if (*s.proc->exitcode() == 0) break;
        recover(s, true);
      }
    }
    results_.join();  // every result the workers put has been written (or dropped)
    results_.put(result{stop_id, {}, {}, 0, 0});
    writer_proc_.join();
    if (*writer_proc_.exitcode() != 0)
      throw std::runtime_error("the writer ended with " + std::to_string(*writer_proc_.exitcode()));
  }

  std::size_t restarts() const { return restarts_; }
  std::size_t requeued() const { return requeued_; }

 private:
  void start_worker(slot& s) {
    s.number = ++next_number_;
    s.proc = std::make_unique<isola::process>(
        isola::process_options{.name = "transform-" + std::to_string(s.number), .daemon = true},
        transform_worker, *s.q, results_, o_.work, o_.faults);
    s.proc->start();
  }

  item make_item(std::uint32_t id) {
    return item{id, attempts_[id], f_.names[id], read_file(f_.indir / f_.names[id])};
  }

  // Step 2 of the scheme: the worker of s has ended (and been reaped).
  void recover(slot& s, bool restart) {
    int code = *s.proc->exitcode();
    int pid = s.proc->pid();
    std::size_t unfinished = s.q->unfinished_tasks(), queued = s.q->qsize();
    std::size_t held = unfinished - queued;  // 0 or 1: nobody else uses this queue now
    if (held > 1 || s.sent.size() < queued + held)
      throw std::runtime_error("ledger out of step with the queue of transform-" +
                               std::to_string(s.number));
    std::string what = "holding nothing";
    bool held_stop = false;
    if (held == 1) {
      s.q->task_done();  // on the dead worker's behalf
      // It took the items in the order they were put: the one it held was
      // put just before the `queued` ones still waiting.
      std::uint32_t id = s.sent[s.sent.size() - queued - 1];
      held_stop = id == stop_id;
      what = held_stop ? "holding its stop item" : put_again(id);
    }
    std::string line = "recovered: transform-" + std::to_string(s.number) + " (pid " +
                       std::to_string(pid) + ") ended with " + std::to_string(code) + ", " + what;
    if (restart) {
      if (++restarts_ > max_restarts_)
        throw std::runtime_error("transform workers keep dying: giving up");
      start_worker(s);
      line += "; restarted as transform-" + std::to_string(s.number) + " (pid " +
              std::to_string(s.proc->pid()) + ")";
      if (held_stop) {  // the new worker needs one too
        s.q->put(item{stop_id, 0, {}, {}});
        s.sent.push_back(stop_id);
      }
    }
    bar_.say(line);
  }

  // The item id a dead worker held: dispatched again unless already written.
  std::string put_again(std::uint32_t id) {
    std::string what = "holding item " + std::to_string(id) + " (" + f_.names[id] + ")";
    if (acked_[id]) return what + ": already written";
    ++attempts_[id];
    again_.push_front(id);
    ++requeued_;
    return what + ": put again";
  }

  bool put_to(slot& s, std::uint32_t id, const item& it) {
    if (!s.q->try_put(it)) return false;
    s.sent.push_back(id);
    while (s.sent.size() > o_.queue + 2) s.sent.pop_front();
    return true;
  }

  // Dispatch while some worker's queue has room: the emptiest first.
  void dispatch() {
    for (;;) {
      if (!pending_) {
        if (!again_.empty()) {
          pending_ = make_item(again_.front());
          again_.pop_front();
        } else if (next_file_ < total_) {
          pending_ = make_item(static_cast<std::uint32_t>(next_file_++));
        } else {
          break;
        }
      }
      if (acked_[pending_->id]) {  // put again, but its first result arrived meanwhile
        pending_.reset();
        continue;
      }
      // (a snapshot: the workers change the sizes while we look)
      std::vector<std::pair<std::size_t, std::size_t>> order(slots_.size());  // (qsize, slot)
      for (std::size_t k = 0; k < slots_.size(); ++k) {
        std::size_t i = (rr_ + k) % slots_.size();
        order[k] = {slots_[i].q->qsize(), i};
      }
      std::stable_sort(order.begin(), order.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      bool put = false;
      for (auto [size, k] : order)
        if (put_to(slots_[k], pending_->id, *pending_)) {
          put = true;
          rr_ = k + 1;
          break;
        }
      if (!put) break;  // every queue is full: back-pressure
      pending_.reset();
    }
  }

  void kill_one() {
    next_kill_ += o_.kill_every;
    slot* victim = &slots_[0];
    for (auto& s : slots_)
      if (s.q->unfinished_tasks() > s.q->qsize()) {  // it holds an item now
        victim = &s;
        break;
      }
    bar_.say("killing transform-" + std::to_string(victim->number) + " (pid " +
             std::to_string(victim->proc->pid()) + ") on purpose after " + std::to_string(done_) +
             " items written");
    victim->proc->kill();
    victim->proc->join();
    recover(*victim, true);
  }

  const options& o_;
  const file_set& f_;
  const std::size_t total_;
  isola::joinable_queue<result> results_;
  isola::queue<std::uint32_t> acks_;  // unbounded: ids only, drained all the time
  isola::process writer_proc_;
  int next_number_ = 0;
  std::vector<slot> slots_;
  progress bar_;
  std::vector<bool> acked_;
  std::vector<std::uint32_t> attempts_;
  std::size_t done_ = 0, next_file_ = 0, requeued_ = 0, restarts_ = 0;
  std::deque<std::uint32_t> again_;  // ids to put again, before any new file
  std::size_t next_kill_;
  const std::size_t max_restarts_;
  std::optional<item> pending_;  // read, not yet accepted by any worker
  std::size_t rr_ = 0;
};

std::string hex(std::uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016" PRIx64, v);
  return std::string(b);
}

// The manifest: every input id exactly once, with the right checksums.
// Prints what it found; true if all is well.
bool check_manifest(const file_set& f, int work) {
  const std::size_t total = f.names.size();
  std::vector<int> seen(total, 0);
  std::size_t entries = 0, bad = 0, unknown = 0;
  std::istringstream manifest(read_file(f.outdir / "MANIFEST"));
  std::string line;
  while (std::getline(manifest, line)) {
    ++entries;
    std::istringstream fields(line);
    std::uint64_t id = 0;
    std::string in_hex, out_hex, name;
    fields >> id >> in_hex >> out_hex >> name;
    if (!fields || id >= total || f.names[id] != name) {
      ++unknown;
      continue;
    }
    ++seen[id];
    std::string in = read_file(f.indir / name);
    std::string out = read_file(f.outdir / name);
    if (hex(fnv1a(in)) != in_hex || hex(fnv1a(out)) != out_hex || out != transform(in, work)) ++bad;
  }
  std::size_t missing = 0, duplicated = 0, distinct = 0;
  for (int n : seen) {
    if (n == 0) ++missing;
    if (n > 0) ++distinct;
    if (n > 1) ++duplicated;
  }
  bool ok = missing == 0 && duplicated == 0 && bad == 0 && unknown == 0 && entries == total;
  std::cout << "manifest: " << entries << " entries, " << distinct << " distinct ids, " << missing
            << " missing, " << duplicated << " duplicated, " << bad << " bad checksums, " << unknown
            << " unknown: " << (ok ? "OK" : "BAD") << "\n";
  return ok;
}

int run(const options& o) {
  file_set f = prepare_files(o);
  std::cout << "pipeline: " << f.names.size() << " files in " << f.indir.string() << " -> "
            << o.workers << " transform workers -> writer -> " << f.outdir.string()
            << " (queues: " << o.queue << " per worker, " << 16 * o.workers << " to the writer)"
            << std::endl;
  pipeline_root root(o, f);
  root.run();
  root.stop();
  bool ok = check_manifest(f, o.work);
  std::cout << "transform workers: " << o.workers << ", restarts: " << root.restarts()
            << ", items put again: " << root.requeued() << std::endl;

  if (!f.base.empty() && !o.keep)
    fs::remove_all(f.base);
  else if (!f.base.empty())
    std::cout << "kept " << f.base.string() << std::endl;
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  options o;
  CLI::App app{
      "files through bounded queues and restartable workers; a manifest proves that "
      "nothing was lost or duplicated"};
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "pipeline: " << e.what() << std::endl;
    return 1;
  }
}
