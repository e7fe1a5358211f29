// Mirrors work.py of seed 004 ("导入第三方文件的目标函数"): a target defined in
// another file. See worker.cpp and worker_main.cpp.
#pragma once

void worker();
