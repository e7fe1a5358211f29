// isola/detail/shutdown_hook.hpp — work a higher layer must do before the
// runtime stops its children.
//
// The actor layer supervises processes: if the runtime terminated them first,
// their supervisors would see deaths and restart them while the program ends.
// A hook registered here runs at the start of the runtime's shutdown (the
// runtime's destructor, or the atexit handler), before any child is
// terminated or joined; hooks run once, in reverse order of registration.
//
// Hooks belong to the process that registered them: a fork child (any
// fork(), through pthread_atfork) starts with none, since the threads and
// objects they would talk to stayed in the parent.
#pragma once

namespace isola::detail {

using shutdown_hook_fn = void (*)() noexcept;

/// Registers fn (once per distinct fn) to run at the start of shutdown.
void add_shutdown_hook(shutdown_hook_fn fn) noexcept;

/// Runs and forgets the registered hooks (called by the runtime's shutdown).
void run_shutdown_hooks() noexcept;

}  // namespace isola::detail
