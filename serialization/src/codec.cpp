#include "isola/codec.hpp"

#include <new>
#include <stdexcept>

namespace isola::detail {

// The one place where failures below the codec become isola errors.
void rethrow_as_decode_error() {
  try {
    throw;
  } catch (const decode_error&) {
    throw;
  } catch (const cereal::Exception& e) {
    throw decode_error(std::string("corrupt input: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw decode_error("corrupt input: decoding would exhaust memory");
  } catch (const std::length_error& e) {
    throw decode_error(std::string("corrupt input: impossible length (") + e.what() + ")");
  } catch (const std::exception& e) {
    throw decode_error(std::string("decoding failed: ") + e.what());
  }
}

}  // namespace isola::detail
