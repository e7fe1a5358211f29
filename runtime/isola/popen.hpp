// isola/popen.hpp — an external program running as a child process, with its
// standard streams wired as asked (Python's subprocess.Popen).
//
//   isola::popen p({"grep", "-c", "x"}, {.in = isola::stdio::pipe, .out = isola::stdio::pipe});
//   auto [out, err] = p.communicate("x\ny\nx\n");   // out == "2\n", err == ""
//   int code = *p.returncode();                      // 0
//
// What the caller and the child see:
// - The program is looked up in the PATH of the child's environment (Python
//   does the same); a program that cannot run (missing, not executable, a bad
//   cwd) is an os_error from the constructor, with errno and the program's
//   name, reported by the child over a close-on-exec pipe before it execs.
// - A string command is split like Python's shlex.split (quotes, backslash
//   escapes), or handed to /bin/sh -c with `.shell = true`. (Python runs a
//   string as one program name when shell is false; isola splits it.)
// - The child gets stdin, stdout, stderr as asked and the descriptors in
//   pass_fds, nothing else of the caller's (every other one is closed on
//   exec). Signals the caller catches start at their default, ignored ones
//   stay ignored except SIGPIPE and SIGXFSZ (back to their default, as
//   Python's restore_signals does), and the signal mask is empty.
// - returncode() is empty while the program runs, then its exit status, or
//   -N if signal N ended it.
// - The destructor closes the caller's pipe ends and never waits: a program
//   that has ended is reaped at once, one still running is left running (as
//   Python leaves it) and reaped in the background when it ends, so no zombie
//   is left behind. A fork child of the caller closes the pipe ends and
//   pidfds of every popen its parent holds (a copy of a stdin pipe's write end
//   would keep the program from ever seeing EOF).
// - One thread at a time may use a popen's pipes; poll(), wait() and the
//   signal functions may be called from other threads meanwhile.
// - Spell it isola::popen: the C library's ::popen (<stdio.h>) makes a plain
//   `popen` ambiguous after `using namespace isola;`.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "isola/detail/deadline.hpp"

namespace isola {

using duration = std::chrono::duration<double>;
class waitable;

/// Where one of the child's standard streams goes (Python's None, PIPE,
/// DEVNULL, STDOUT, or a file descriptor).
class stdio {
 public:
  enum class kind : unsigned char { inherit, pipe, devnull, to_stdout, fd };

  /// The caller's own stream (Python's None).
  constexpr stdio() = default;
  /// The caller's stream: the child writes where the caller writes.
  static const stdio inherit;
  /// A new pipe; the caller's end is popen::in(), out() or err().
  static const stdio pipe;
  /// /dev/null: reads see end-of-file, writes vanish.
  static const stdio devnull;
  /// stderr only: wherever stdout goes (Python's STDOUT).
  static const stdio to_stdout;
  /// A copy of `descriptor` (a file, a socket, a pipe end); the caller keeps
  /// the original.
  static constexpr stdio fd(int descriptor) noexcept { return stdio(kind::fd, descriptor); }

  constexpr kind how() const noexcept { return kind_; }
  constexpr int descriptor() const noexcept { return fd_; }

 private:
  constexpr explicit stdio(kind k, int fd = -1) noexcept : kind_(k), fd_(fd) {}
  kind kind_ = kind::inherit;
  int fd_ = -1;
};

inline constexpr stdio stdio::inherit{stdio::kind::inherit};
inline constexpr stdio stdio::pipe{stdio::kind::pipe};
inline constexpr stdio stdio::devnull{stdio::kind::devnull};
inline constexpr stdio stdio::to_stdout{stdio::kind::to_stdout};

struct popen_options {
  /// The child's stdin, stdout and stderr (`stdin` and friends are macros in
  /// C, hence the short names).
  stdio in{};
  stdio out{};
  stdio err{};
  /// Run the command through /bin/sh -c (a vector's first element is the
  /// script, the others become $0, $1, ...).
  bool shell = false;
  /// The program to run in place of args[0], which stays the child's argv[0].
  std::string executable{};
  /// The child's working directory; empty: the caller's. A relative program
  /// path ("./tool") is looked up from here, as in Python.
  std::string cwd{};
  /// The child's whole environment; empty optional: the caller's.
  std::optional<std::map<std::string, std::string>> env{};
  /// Variables set on top of env (or of the caller's environment): Python's
  /// `env = os.environ.copy(); env.update(...)` in one field.
  std::map<std::string, std::string> env_update{};
  /// Descriptors of the caller that the child inherits under the same numbers.
  std::vector<int> pass_fds{};
  /// setsid() in the child: a new session and process group, no terminal.
  bool start_new_session = false;
  /// The child gets SIGKILL when the thread that started it ends (isola's
  /// processes do this always; a popen child, like Python's, outlives the
  /// caller by default). Start long-lived children from a long-lived thread.
  bool die_with_parent = false;
};

class popen {
  struct state;

 public:
  /// The caller's end of the child's stdin (`.in = stdio::pipe`).
  class writer {
   public:
    /// -1 once closed. A plain blocking pipe descriptor.
    int fd() const noexcept { return fd_; }
    bool closed() const noexcept { return fd_ < 0; }
    /// Writes all of data. os_error (EPIPE) if the program closed its stdin.
    void write(std::string_view data);
    /// Waits at most timeout for room; timeout_error if not all of data went
    /// in (how much did is unknown to the caller: use try_write to know).
    void write(std::string_view data, duration timeout);
    /// Writes what fits now without waiting; returns how many bytes went in.
    std::size_t try_write(std::string_view data);
    /// Closes the caller's end: the program reads end-of-file.
    void close() noexcept;

    writer(const writer&) = delete;
    writer& operator=(const writer&) = delete;
    ~writer() { close(); }

   private:
    friend class popen;
    friend struct popen::state;
    writer() = default;
    std::size_t write_until(std::string_view data, const detail::deadline& d);
    int fd_ = -1;
  };

  /// The caller's end of the child's stdout or stderr (`stdio::pipe`).
  class reader {
   public:
    /// -1 once closed. A plain blocking pipe descriptor; bytes the reader has
    /// already taken from it (see read_line) are not there any more.
    int fd() const noexcept { return fd_; }
    bool closed() const noexcept { return fd_ < 0; }
    /// Reads until end-of-file (the program closed its end or ended).
    std::string read();
    /// timeout_error if end-of-file does not come within timeout; what was
    /// read so far is kept for the next call.
    std::string read(duration timeout);
    /// Whatever can be had without waiting (maybe ""); at_eof() tells the end.
    std::string try_read();
    /// The next line, with its '\n' (the last one may lack it); nullopt at
    /// end-of-file.
    std::optional<std::string> read_line();
    /// timeout_error if no whole line (nor end-of-file) comes within timeout.
    std::optional<std::string> read_line(duration timeout);
    /// A line that can be had without waiting, else nullopt (see at_eof()).
    std::optional<std::string> try_read_line();
    /// True once end-of-file was seen and every byte was handed out.
    bool at_eof() const noexcept { return eof_ && head_ == buf_.size(); }
    /// Ready for isola::wait() when a read would not block.
    waitable wait_handle() const;
    void close() noexcept;

    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;
    ~reader() { close(); }

   private:
    friend class popen;
    friend struct popen::state;
    reader() = default;
    /// Reads what is there once the descriptor is readable; false if the
    /// deadline passed first (nullptr: no deadline).
    bool fill(const detail::deadline& d);
    void read_available();
    std::string take_all();
    std::optional<std::string> take_line(bool at_eof_too);
    int fd_ = -1;
    std::string buf_;
    std::size_t head_ = 0;     // bytes of buf_ already handed out
    std::size_t scanned_ = 0;  // bytes of buf_ known to hold no '\n'
    bool eof_ = false;
  };

  /// What communicate() returns: everything the program wrote on the piped
  /// streams (empty for a stream that is not a pipe). Any bytes, not only
  /// text.
  struct output {
    std::string out;
    std::string err;
  };

  /// A command line, split like shlex.split (value_error on an unterminated
  /// quote or a trailing backslash), or run by /bin/sh -c with `.shell`.
  explicit popen(std::string_view command, popen_options opts = {});
  /// The program and its arguments.
  explicit popen(std::vector<std::string> args, popen_options opts = {});
  popen(std::initializer_list<std::string> args, popen_options opts = {});

  /// Never throws, never waits, leaves no zombie (see the header comment).
  ~popen();
  popen(popen&&) noexcept;
  popen& operator=(popen&&) noexcept;
  popen(const popen&) = delete;
  popen& operator=(const popen&) = delete;

  /// The arguments as given (after splitting; with /bin/sh -c for a shell).
  const std::vector<std::string>& args() const;
  int pid() const;

  /// The exit status if the program has ended (then reaped), else nullopt.
  std::optional<int> poll();
  /// Waits for the program to end; its exit status (-N for signal N).
  int wait();
  /// timeout_error if the program has not ended within timeout (it runs on).
  int wait(duration timeout);
  /// What poll() returns, without the need for a non-const object.
  std::optional<int> returncode() const;

  /// Writes input to stdin (then closes it), reads stdout and stderr to
  /// their end while writing, so that no amount of output can deadlock, and
  /// waits for the program to end. Input needs `.in = stdio::pipe`
  /// (value_error otherwise). A second call after one that finished is a
  /// value_error (the output was returned once), unless nothing is piped.
  output communicate(std::string_view input = {});
  /// timeout_error when the deadline passes first; the program runs on and
  /// nothing is lost: a later communicate() (with no new input) goes on where
  /// this one stopped, as in Python (kill() then communicate() is the idiom).
  output communicate(std::string_view input, duration timeout);
  output communicate(duration timeout) { return communicate({}, timeout); }
  /// Does the I/O that can be done now; the output once the program's
  /// streams are at their end and it has ended, else nullopt.
  std::optional<output> try_communicate(std::string_view input = {});

  /// Sends sig unless the program has already been reaped (pidfd: never
  /// another process that got its pid).
  void send_signal(int sig);
  /// SIGTERM.
  void terminate();
  /// SIGKILL.
  void kill();

  /// The pipe ends; value_error for a stream that is not a pipe. Valid while
  /// this object lives.
  writer& in();
  reader& out();
  reader& err();

  /// A pidfd of the program: readable (poll/epoll) once it has ended.
  int sentinel() const;
  /// Ready for isola::wait() once the program has ended.
  waitable wait_handle() const;

 private:
  std::optional<output> communicate_until(std::string_view input, const detail::deadline& d);
  state& st() const;
  std::unique_ptr<state> st_;
};

/// Splits a command line as Python's shlex.split does (POSIX mode): blanks
/// separate words; '...' keeps everything; "..." keeps everything but a
/// backslash before " or \; a backslash outside quotes keeps the next
/// character; with comments, # starts a comment up to the end of the line.
/// value_error on an unterminated quote or a trailing backslash.
std::vector<std::string> shlex_split(std::string_view s, bool comments = false);
/// Quotes a word for a POSIX shell (shlex.quote).
std::string shlex_quote(std::string_view word);
/// Joins words into a command line that shlex_split turns back into them.
std::string shlex_join(const std::vector<std::string>& words);

}  // namespace isola
