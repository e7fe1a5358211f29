// isola/isola.hpp — everything isola offers, in one include.
#pragma once

#include "isola/codec.hpp"
#include "isola/connection.hpp"
#include "isola/error.hpp"
#include "isola/frame.hpp"
#include "isola/joinable_queue.hpp"
#include "isola/logging.hpp"
#include "isola/message.hpp"
#include "isola/process.hpp"
#include "isola/queue.hpp"
#include "isola/runtime.hpp"
#include "isola/simple_queue.hpp"
#include "isola/start_method.hpp"
#include "isola/type_name.hpp"
#include "isola/wait.hpp"
