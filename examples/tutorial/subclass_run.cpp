// Mirrors seed 004 "派生进程": a custom subclass of isola::process that
// overrides run() instead of taking a target. Five of them, joined.
//
// The seed's print("In{}".format(self.name)) glues "In" to the name; this
// twin puts a space between them: "In process-1".
//
// The child runs the object's own memory, so a subclass needs the fork start
// method (the default); under forkserver or spawn start() throws
// start_method_error.
#include <iostream>
#include <vector>

#include <isola/isola.hpp>

class worker : public isola::process {
 protected:
  void run() override {
    std::cout << "In " << name() << std::endl;
    return;
  }
};

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::vector<worker> jobs;
  for (int i = 0; i < 5; ++i) {
    worker p;
    p.start();
    jobs.push_back(std::move(p));
  }
  for (auto& j : jobs) j.join();
}
