// isola/serialization.hpp — the serialization layer in one include.
#pragma once

#include "isola/codec.hpp"
#include "isola/error.hpp"
#include "isola/frame.hpp"
#include "isola/message.hpp"
#include "isola/type_name.hpp"
