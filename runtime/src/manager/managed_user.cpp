// Instances of user types (manager::register_type) in the manager: the
// table the starting process handed over, checked against this process's
// registry at start-up, and the one op, a call of a method by name.
#include <map>
#include <string>
#include <tuple>
#include <typeinfo>

#include <cxxabi.h>

#include <cstdlib>

#include "isola/detail/manager_types.hpp"
#include "isola/logging.hpp"
#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

struct user_method {
  std::uint64_t args_type = 0, result_type = 0;
  std::string signature;
  mgr_method_fn fn = nullptr;
};

struct user_type {
  std::string name;
  std::uint64_t type = 0, ctor_args_type = 0;
  std::string ctor_signature;
  mgr_new_fn make = nullptr;
  mgr_delete_fn destroy = nullptr;
  std::map<std::string, user_method> methods;
};

namespace {

// The manager process runs one thread: set once at start-up, read after.
std::map<std::string, user_type>& table() {
  static std::map<std::string, user_type> t;
  return t;
}

std::string demangle(const char* n) {
  int st = 0;
  char* d = abi::__cxa_demangle(n, nullptr, nullptr, &st);
  std::string s = st == 0 && d ? d : n;
  std::free(d);
  return s;
}

std::string method_list(const user_type& t) {
  std::string s;
  for (auto& [name, m] : t.methods) s += (s.empty() ? "" : ", ") + name;
  return s.empty() ? "none" : s;
}

}  // namespace

void install_user_types(const std::vector<mgr_type_entry>& entries) {
  auto& t = table();
  t.clear();
  for (auto& e : entries) {
    // Each reference is checked against this process's registry, for the
    // type it is called through: a bad one leaves its type out (a
    // value_error when a client makes one), never a jump.
    try {
      user_type u;
      u.name = e.name;
      u.type = e.type;
      u.ctor_args_type = e.ctor_args_type;
      u.ctor_signature = e.ctor_signature;
      u.make = e.make.as<mgr_new_fn>("a managed type's constructor");
      u.destroy = e.destroy.as<mgr_delete_fn>("a managed type's deleter");
      for (auto& m : e.methods)
        u.methods[m.name] = {m.args_type, m.result_type, m.signature,
                             m.fn.as<mgr_method_fn>("a managed type's method")};
      t[e.name] = std::move(u);
    } catch (const value_error& x) {
      get_logger().warning("manager: left out the registered type '" + e.name + "': " + x.what());
    }
  }
}

managed_user::managed_user(mgr_create_spec& spec) {
  auto it = table().find(spec.type_name);
  if (it == table().end())
    throw value_error("no type '" + spec.type_name +
                      "' was registered (manager::register_type) before this manager started");
  const user_type& t = it->second;
  if (t.type != spec.type)
    throw type_error("the registered type '" + spec.type_name +
                     "' is another C++ type than the one asked for");
  auto [args_type, args] = decode<std::pair<std::uint64_t, bytes>>(spec.init);
  if (args_type != t.ctor_args_type)
    throw type_error("the managed type '" + t.name + "' is constructed from (" + t.ctor_signature +
                     "), not from the arguments given");
  type_ = &t;
  self_ = {t.make(args), t.destroy};
}

void managed_user::handle(object_context& cx, const request& r) {
  if (r.op != mgr_op::object_call) return cx.reply_unknown(r);
  const std::string name = key(r.a);
  auto m = type_->methods.find(name);
  if (m == type_->methods.end())
    return cx.reply_text(r, mgr_status::value_error,
                         "the managed '" + type_->name + "' has no registered method '" + name +
                             "' (registered: " + method_list(*type_) + ")");
  std::tuple<std::uint64_t, std::uint64_t, bytes> call;
  try {
    call = decode<std::tuple<std::uint64_t, std::uint64_t, bytes>>(r.b);
  } catch (const std::exception& e) {
    return cx.reply_text(r, mgr_status::type_error,
                         "a call of '" + name + "' that does not decode: " + e.what());
  }
  auto& [args_type, result_type, args] = call;
  const auto& meth = m->second;
  if (args_type != meth.args_type || result_type != meth.result_type)
    return cx.reply_text(r, mgr_status::type_error,
                         "the managed '" + type_->name + "' method '" + name + "' is " +
                             meth.signature + ": called with other argument or result types");
  bytes out;
  try {
    out = meth.fn(self_.get(), args);
  } catch (const decode_error& e) {
    return cx.reply_text(
        r, mgr_status::type_error,
        "the arguments of '" + name + "' do not decode as " + meth.signature + ": " + e.what());
  } catch (const std::exception& e) {
    return cx.reply_text(r, mgr_status::remote_error, demangle(typeid(e).name()) + "\n" + e.what());
  } catch (...) {
    return cx.reply_text(r, mgr_status::remote_error,
                         "unknown exception\nthe method '" + name + "' threw");
  }
  cx.reply(r, mgr_status::ok, out);
}

}  // namespace isola::detail::mgr
