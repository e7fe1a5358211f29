// shlex_split, shlex_quote and shlex_join: POSIX shell words, as Python's
// shlex module splits and quotes them (popen(string) splits its command
// line with shlex_split; messages name a program by shlex_join).
//
// Pure functions of their arguments: nothing here touches a descriptor,
// a process or shared state.
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "isola/error.hpp"
#include "isola/popen.hpp"

namespace isola {

std::vector<std::string> shlex_split(std::string_view s, bool comments) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  auto fail = [&](const char* why) {
    throw value_error(std::string("shlex_split: ") + why + " in: " + std::string(s));
  };
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;  // a word has begun (an empty '' counts)
  auto end_word = [&] {
    if (in_word) words.push_back(std::move(word));
    word.clear();
    in_word = false;
  };
  std::size_t i = 0, n = s.size();
  while (i < n) {
    char c = s[i];
    if (blank(c)) {
      end_word();
      ++i;
    } else if (comments && c == '#') {
      end_word();
      while (i < n && s[i] != '\n') ++i;
    } else if (c == '\\') {
      if (i + 1 >= n) fail("no escaped character");
      word += s[i + 1];
      i += 2;
      in_word = true;
    } else if (c == '\'') {
      auto close = s.find('\'', i + 1);
      if (close == std::string_view::npos) fail("no closing quotation");
      word.append(s.substr(i + 1, close - i - 1));
      i = close + 1;
      in_word = true;
    } else if (c == '"') {
      ++i;
      for (;;) {
        if (i >= n) fail("no closing quotation");
        char d = s[i];
        if (d == '"') {
          ++i;
          break;
        }
        if (d == '\\') {
          if (i + 1 >= n) fail("no escaped character");
          char e = s[i + 1];
          if (e == '"' || e == '\\') {
            word += e;
            i += 2;
          } else {
            word += '\\';
            ++i;
          }
        } else {
          word += d;
          ++i;
        }
      }
      in_word = true;
    } else {
      word += c;
      ++i;
      in_word = true;
    }
  }
  end_word();
  return words;
}

std::string shlex_quote(std::string_view w) {
  if (w.empty()) return "''";
  bool safe = std::all_of(w.begin(), w.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && std::strchr("_@%+=:,./-", c) != nullptr);
  });
  if (safe) return std::string(w);
  std::string q = "'";
  for (char c : w) {
    if (c == '\'')
      q += "'\"'\"'";
    else
      q += c;
  }
  return q + "'";
}

std::string shlex_join(const std::vector<std::string>& words) {
  std::string out;
  for (auto& w : words) {
    if (!out.empty()) out += ' ';
    out += shlex_quote(w);
  }
  return out;
}

}  // namespace isola
