// Parses Prometheus text exposition (0.0.4) in tests: name{labels} -> value
// for every sample line. Fails the calling test on a line that is not valid
// exposition text, on a series that appears twice, or on text that does not
// end with a newline.
#pragma once

#include <doctest/doctest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

namespace gatehouse::test {

inline std::map<std::string, std::string> exposition_samples(const std::string& text) {
    static const std::regex comment(R"(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+)");
    static const std::regex sample(R"(([a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})?) (\S+))");
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        INFO(line);
        std::smatch m;
        if (line.rfind('#', 0) == 0) {
            CHECK(std::regex_match(line, comment));
            continue;
        }
        REQUIRE(std::regex_match(line, m, sample));
        CHECK(out.count(m[1]) == 0);  // every series once
        out[m[1]] = m[4];
    }
    REQUIRE_FALSE(text.empty());
    CHECK(text.back() == '\n');
    return out;
}

}  // namespace gatehouse::test
