// auth_errc: the category, and one distinct message per code.
#include <gatehouse/auth/error.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace a = gatehouse::auth;

TEST_CASE("auth_errc: category name, distinct messages, error_code conversion") {
    CHECK(std::string(a::auth_category().name()) == "gatehouse.auth");
    std::set<std::string> messages;
    const int last = static_cast<int>(a::auth_errc::internal_error);
    for (int i = 1; i <= last; ++i) {
        const std::error_code ec = static_cast<a::auth_errc>(i);
        INFO("code " << i);
        CHECK(ec.category() == a::auth_category());
        CHECK(ec.message().find("unknown gatehouse.auth error") == std::string::npos);
        CHECK(messages.insert(ec.message()).second);
    }
    CHECK(messages.size() == static_cast<std::size_t>(last));
    CHECK(std::error_code(static_cast<a::auth_errc>(last + 1)).message() == "unknown gatehouse.auth error");
    const std::error_code ok{};
    CHECK_FALSE(ok);
    CHECK(std::error_code(a::auth_errc::bad_signature) == a::auth_errc::bad_signature);
    CHECK(std::error_code(a::auth_errc::bad_signature) != a::auth_errc::token_expired);
}
