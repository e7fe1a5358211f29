// Mirrors work.py of seed 004: the target function, in a file of its own.
#include "worker.hpp"

#include <iostream>

void worker() {
  std::cout << "worker" << std::endl;
  return;
}
