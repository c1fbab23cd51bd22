// Runs a shell command for a test (e.g. a Python client we did not write)
// and returns what it printed on stdout; `status` gets pclose's status.
#pragma once

#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <string>

namespace gatehouse::test {

inline std::string run_command(const std::string& command, int& status) {
    std::string output;
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe)) output += buffer.data();
    status = ::pclose(pipe);
    return output;
}

}  // namespace gatehouse::test
