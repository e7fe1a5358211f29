// isola::shared_memory_manager in real processes: a port of CPython's
// _TestSharedMemory cases for SharedMemoryManager
// (Lib/test/_test_multiprocessing.py: test_shared_memory_SharedMemoryManager_basics,
// test_shared_memory_SharedMemoryServer_ignores_sigint, and
// test_shared_memory_SharedMemoryManager_reuses_resource_tracker as "a manager
// used in a child and left by its destructor ends its names"), and the nasty
// ones: the owner SIGKILLed (every name still ends), the tracker killed (a
// manager_error, not a hang), a fork child's copy of the manager.
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <isola/connection.hpp>
#include <isola/process.hpp>
#include <isola/shareable_list.hpp>
#include <isola/shared_memory.hpp>
#include <isola/shared_memory_manager.hpp>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola_test::wait_until;

namespace {

isola::process_options with(isola::start_method m) { return {.method = m}; }

// Whether pid has ended (or is a zombie) within t, watched through a pidfd.
bool ends_within(int pid, std::chrono::milliseconds t) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(t.count()));
  ::close(fd);
  return r == 1;
}

bool name_resolves(const std::string& name) {
  try {
    isola::shared_memory s(name);
    return true;
  } catch (const isola::file_not_found_error&) {
    return false;
  }
}

isola::shared_memory_manager_options tracker_method(int m) {
  isola::shared_memory_manager_options o;
  if (m >= 0) o.method = static_cast<isola::start_method>(m);
  return o;
}

// --- children -------------------------------------------------------------------

// Starts a manager, makes a block and a list through it, reports the
// tracker's pid and the names, then waits to be killed.
void own_then_wait(isola::connection report, int method) {
  isola::shared_memory_manager smm(tracker_method(method));
  smm.start();
  auto block = smm.shared_memory(100);
  auto sl = smm.shareable_list<int>({1, 2, 3});
  report.send(smm.pid());
  report.send(std::vector<std::string>{block.name(), sl.shm().name()});
  for (;;) ::pause();
}

// The same, but returns: the manager's destructor shuts it down.
int own_then_return(isola::connection report) {
  isola::shared_memory_manager smm;
  smm.start();
  auto sl = smm.shareable_list<int>({4, 5, 6});
  report.send(smm.pid());
  report.send(sl.shm().name());
  // Wait until the parent has attached (it says so), so that the name is
  // proved live before we end.
  report.recv<int>();
  return 0;
}

// Writes into a block made by the manager, received as an argument.
int write_into(isola::shared_memory shm, isola::shareable_list<int> sl) {
  shm.buf()[0] = std::byte{0x42};
  sl[1] = 99;
  return 0;
}

isola::shared_memory_manager* g_smm = nullptr;

// In a fork child: the parent's manager is not ours to use or shut down.
int use_parents_manager() {
  try {
    g_smm->shared_memory(10);
  } catch (const isola::value_error&) {
    g_smm->shutdown();  // a no-op here
    return 0;
  }
  return 3;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shared_memory_manager_suite)

// CPython: test_shared_memory_SharedMemoryManager_basics.
BOOST_AUTO_TEST_CASE(basics_as_in_cpythons_shared_memory_manager_test, *utf::timeout(60)) {
  isola::shared_memory_manager smm1;
  BOOST_CHECK_THROW(smm1.shared_memory(9), isola::value_error);  // not started
  smm1.start();
  BOOST_TEST(smm1.started());
  BOOST_TEST(smm1.is_alive());
  std::vector<isola::shareable_list<int>> lol;
  for (int i = 5; i < 10; ++i) {
    std::vector<int> v(static_cast<std::size_t>(i));
    for (int j = 0; j < i; ++j) v[static_cast<std::size_t>(j)] = j;
    lol.push_back(smm1.shareable_list<int>(std::span<const int>(v)));
  }
  std::vector<isola::shared_memory> lom;
  for (std::size_t j = 32; j < 128; j += 16) lom.push_back(smm1.shared_memory(j));
  isola::shareable_list<int> doppleganger_list0(lol[0].shm().name());
  BOOST_TEST(doppleganger_list0.size() == 5u);
  isola::shared_memory doppleganger_shm0(lom[0].name());
  BOOST_TEST(doppleganger_shm0.buf().size() >= 32u);
  std::string held_name = lom[0].name();
  smm1.shutdown();
  BOOST_TEST(!smm1.started());
  BOOST_CHECK_THROW(isola::shared_memory{held_name}, isola::file_not_found_error);
  // The handles still open keep working; unlink() says the manager did it.
  doppleganger_shm0.buf()[0] = std::byte{1};
  BOOST_TEST((lom[0].buf()[0] == std::byte{1}));
  BOOST_CHECK_THROW(lom[0].unlink(), isola::file_not_found_error);

  // Python's `with SharedMemoryManager() as smm2:`: the destructor shuts down.
  {
    isola::shared_memory_manager smm2;
    smm2.start();
    auto sl = smm2.shareable_list<std::string>({"h", "o", "w", "d", "y"});
    auto shm = smm2.shared_memory(128);
    held_name = sl.shm().name();
    BOOST_TEST(sl[4] == "y");
  }
  BOOST_CHECK_THROW(isola::shareable_list<std::string>::attach(held_name),
                    isola::file_not_found_error);
  BOOST_CHECK_THROW((void)isola::shareable_list<std::string>(held_name),
                    isola::file_not_found_error);
}

BOOST_AUTO_TEST_CASE(start_twice_and_use_after_shutdown_are_errors, *utf::timeout(60)) {
  isola::shared_memory_manager smm;
  smm.shutdown();  // before start: a no-op
  smm.start();
  BOOST_CHECK_THROW(smm.start(), isola::process_error);
  BOOST_CHECK_THROW(smm.shared_memory(0), isola::value_error);
  int pid = smm.pid();
  BOOST_TEST(pid > 0);
  smm.shutdown();
  smm.shutdown();  // idempotent
  BOOST_TEST(ends_within(pid, 10s));
  BOOST_CHECK_THROW(smm.shared_memory(10), isola::value_error);
  BOOST_CHECK_THROW(smm.shareable_list<int>({1}), isola::value_error);
  BOOST_CHECK_THROW(smm.start(), isola::process_error);
}

// Python's names belong to the manager, not to the process that asked: a
// block stays attachable after that process closes its handle (a plain
// shared_memory's name ends with its creator's handle).
BOOST_AUTO_TEST_CASE(a_block_outlives_the_handle_that_asked_for_it, *utf::timeout(60)) {
  isola::shared_memory_manager smm;
  smm.start();
  auto shm = smm.shared_memory(64);
  std::string name = shm.name();
  shm.buf()[3] = std::byte{7};
  shm.close();
  isola::shared_memory again(name);
  BOOST_TEST((again.buf()[3] == std::byte{7}));
  BOOST_TEST(again.size() == 64u);
}

BOOST_AUTO_TEST_CASE(blocks_made_by_the_manager_go_to_children, *utf::timeout(120)) {
  isola::shared_memory_manager smm;
  smm.start();
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto shm = smm.shared_memory(16);
      auto sl = smm.shareable_list<int>({1, 2, 3});
      isola::process p(with(m), write_into, shm, sl);
      p.start();
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST((shm.buf()[0] == std::byte{0x42}));
      BOOST_TEST(sl[1] == 99);
    }
  }
}

// CPython: test_shared_memory_SharedMemoryServer_ignores_sigint.
BOOST_AUTO_TEST_CASE(the_tracker_ignores_sigint, *utf::timeout(60)) {
  isola::shared_memory_manager smm;
  smm.start();
  auto sl = smm.shareable_list<int>({0, 1, 2});  // it works (and has set up)
  BOOST_TEST(::kill(smm.pid(), SIGINT) == 0);
  auto sl2 = smm.shareable_list<int>({3, 4});
  BOOST_TEST(sl2[1] == 4);
  BOOST_TEST(smm.is_alive());
}

// The owner SIGKILLed: its tracker notices, unlinks every block and ends.
// Under each start method for the owner, and both ways of starting the tracker.
BOOST_AUTO_TEST_CASE(the_owner_sigkilled_still_ends_every_name, *utf::timeout(240)) {
  for (auto m : isola::all_start_methods()) {
    for (int tm : {-1, static_cast<int>(isola::start_method::spawn)}) {
      BOOST_TEST_CONTEXT("owner start method " << m << ", tracker " << tm) {
        auto [mine, theirs] = isola::pipe();
        isola::process owner(with(m), own_then_wait, std::move(theirs), tm);
        owner.start();
        BOOST_REQUIRE(mine.poll(30s));
        int tracker = mine.recv<int>();
        auto names = mine.recv<std::vector<std::string>>();
        BOOST_REQUIRE(names.size() == 2u);
        for (const auto& n : names) BOOST_TEST(name_resolves(n));
        isola::shared_memory held(names[0]);  // a sharer that outlives the owner
        owner.kill();
        BOOST_TEST(owner.join(30s));
        BOOST_TEST(ends_within(tracker, 20s));
        for (const auto& n : names) BOOST_TEST(!name_resolves(n));
        // The tracker marked it unlinked (Python: the manager unlinked it),
        // and the memory is still there for who holds it.
        BOOST_CHECK_THROW(held.unlink(), isola::file_not_found_error);
        held.buf()[0] = std::byte{5};
        BOOST_TEST((held.buf()[0] == std::byte{5}));
      }
    }
  }
}

// CPython: test_shared_memory_SharedMemoryManager_reuses_resource_tracker
// (a manager used in a child program and shut down leaves nothing behind).
BOOST_AUTO_TEST_CASE(a_manager_left_by_its_destructor_in_a_child_ends_its_names,
                     *utf::timeout(120)) {
  for (auto m : {isola::start_method::fork, isola::start_method::spawn}) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [mine, theirs] = isola::pipe();
      isola::process owner(with(m), own_then_return, std::move(theirs));
      owner.start();
      BOOST_REQUIRE(mine.poll(30s));
      int tracker = mine.recv<int>();
      auto name = mine.recv<std::string>();
      BOOST_TEST(name_resolves(name));
      mine.send(1);
      BOOST_TEST(owner.join(30s));
      BOOST_TEST(owner.exitcode() == 0);
      BOOST_TEST(ends_within(tracker, 20s));
      BOOST_TEST(!name_resolves(name));
    }
  }
}

// The tracker killed under the owner: the next request is a manager_error
// (no hang), and the names went with the tracker.
BOOST_AUTO_TEST_CASE(a_killed_tracker_is_a_manager_error_and_its_names_end, *utf::timeout(60)) {
  isola::shared_memory_manager smm;
  smm.start();
  auto shm = smm.shared_memory(32);
  std::string name = shm.name();
  BOOST_TEST(::kill(smm.pid(), SIGKILL) == 0);
  BOOST_TEST(wait_until([&] { return !smm.is_alive(); }, 20s));
  BOOST_CHECK_THROW(smm.shared_memory(10), isola::manager_error);
  BOOST_CHECK_THROW(isola::shared_memory{name}, isola::file_not_found_error);
  shm.buf()[0] = std::byte{1};  // still memory for who holds it
  smm.shutdown();               // quietly
}

// A fork child's copy of the manager may neither make blocks nor shut it down.
BOOST_AUTO_TEST_CASE(a_fork_childs_copy_of_the_manager_is_inert, *utf::timeout(60)) {
  isola::shared_memory_manager smm;
  smm.start();
  g_smm = &smm;
  isola::process p(with(isola::start_method::fork), use_parents_manager);
  p.start();
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 0);
  g_smm = nullptr;
  BOOST_TEST(smm.is_alive());
  auto shm = smm.shared_memory(8);
  BOOST_TEST(name_resolves(shm.name()));
}

BOOST_AUTO_TEST_SUITE_END()
