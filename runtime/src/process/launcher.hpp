// Where children are started from. Linux ties PR_SET_PDEATHSIG to the
// *thread* that created a process, not to the process: a forkserver zygote or
// a spawn child started from a short-lived thread (a detached CAF actor, a
// user's worker thread) would be SIGKILLed when that thread ends, and the
// zygote's children with it. So the forkserver and spawn launches run on the
// main thread when that is the caller, and otherwise on one long-lived
// launcher thread of this process (started on first use, never ended).
#pragma once

#include <functional>

namespace isola::detail {

/// Runs f on a thread that lives as long as this process (the caller's, if
/// it is the main thread), waits for it, and rethrows what it threw.
void run_on_launcher(const std::function<void()>& f);

}  // namespace isola::detail
