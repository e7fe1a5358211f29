// isola/runtime.hpp — the object at the top of main() that makes the
// forkserver and spawn start methods possible and cleans up at the end.
//
//   int main(int argc, char** argv) {
//     isola::runtime rt{argc, argv};   // first line of main
//     ...
//   }
//
// In a child started by `spawn` the constructor runs the child's target and
// never returns. In the root it records argv (spawn re-executes the program
// with it) and starts the forkserver zygote while the process still has one
// thread. The destructor does what Python does at interpreter exit:
// terminates daemon children, then joins the others. A program that uses only
// the fork method works without a runtime; the same clean-up then runs from
// an atexit handler.
#pragma once

namespace isola {

struct runtime_options {
  /// Start the forkserver zygote now (cheap: one idle process). When false it
  /// is started on first use of the forkserver method, which is only safe
  /// while the process has a single thread.
  bool start_forkserver = true;
};

class runtime {
 public:
  runtime(int argc, char** argv, runtime_options opts = {});
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;
};

}  // namespace isola
