// The session record helpers and the error category.
#include <gatehouse/session/error.hpp>
#include <gatehouse/session/session.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace gatehouse::session;

TEST_CASE("session_errc: category, distinct messages") {
    std::set<std::string> messages;
    const int last = static_cast<int>(session_errc::invalid_queue_limits);
    for (int i = 1; i <= last; ++i) {
        const std::error_code ec = static_cast<session_errc>(i);
        CHECK(std::string(ec.category().name()) == "gatehouse.session");
        CHECK(ec.message() != "unknown gatehouse.session error");
        messages.insert(ec.message());
    }
    CHECK(messages.size() == static_cast<std::size_t>(last));
    CHECK(std::error_code(static_cast<session_errc>(last + 1)).message() == "unknown gatehouse.session error");
    CHECK_FALSE(std::error_code{});
    CHECK(std::error_code(session_errc::not_found) == session_errc::not_found);
    CHECK(std::error_code(session_errc::not_found) != session_errc::expired);
}

TEST_CASE("session ids: random ones are lowercase GUID v4 text; only that form is accepted") {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        const auto id = random_session_id();
        CHECK(is_session_id(id));
        CHECK(id[14] == '4');
        seen.insert(id);
    }
    CHECK(seen.size() == 100);
    CHECK(is_session_id("00000000-0000-0000-0000-000000000000"));
    CHECK_FALSE(is_session_id("00000000-0000-0000-0000-00000000000A"));
    CHECK_FALSE(is_session_id("000000000000000000000000000000000000"));
    CHECK_FALSE(is_session_id("00000000000000000000000000000000"));
    CHECK_FALSE(is_session_id("{0000000-0000-0000-0000-000000000000}"));
    CHECK_FALSE(is_session_id(""));
}

TEST_CASE("reconnection tokens: 32 random bytes in base64, hashed for storage") {
    const auto token = random_reconnect_token();
    CHECK(token.size() == reconnect_token_size);
    CHECK(is_reconnect_token(token));
    CHECK(random_reconnect_token() != token);
    CHECK_FALSE(is_reconnect_token(token.substr(1)));
    CHECK_FALSE(is_reconnect_token(std::string(44, 'A')));  // no padding
    auto bad = token;
    bad[3] = '!';
    CHECK_FALSE(is_reconnect_token(bad));
    // Known SHA-256 of "abc".
    CHECK(reconnect_token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(reconnect_token_hash(token).size() == 64);
    CHECK(reconnect_token_hash(token).find(token) == std::string::npos);
}

TEST_CASE("validate_record: each limit has its own error") {
    session_limits limits;
    session_record r;
    r.account_id = "a";
    CHECK_FALSE(validate_record(r, limits));
    r.session_id = random_session_id();
    CHECK_FALSE(validate_record(r, limits));
    r.session_id = "x";
    CHECK(validate_record(r, limits) == session_errc::invalid_session_id);
    r.session_id.clear();
    r.account_id.clear();
    CHECK(validate_record(r, limits) == session_errc::invalid_account_id);
    r.account_id = "a";
    r.roles.assign(limits.max_roles, "r");
    CHECK_FALSE(validate_record(r, limits));
    r.roles.push_back("r");
    CHECK(validate_record(r, limits) == session_errc::record_too_large);
    r.roles.clear();
    r.permissions.assign(limits.max_permissions + 1, "p");
    CHECK(validate_record(r, limits) == session_errc::record_too_large);
    r.permissions = {std::string(limits.max_name_size, 'p')};
    CHECK_FALSE(validate_record(r, limits));
    r.permissions = {std::string(limits.max_name_size + 1, 'p')};
    CHECK(validate_record(r, limits) == session_errc::record_too_large);
    r.permissions.clear();
    r.attributes["k"] = std::string(limits.max_attribute_value_size + 1, 'v');
    CHECK(validate_record(r, limits) == session_errc::attribute_too_large);
    r.attributes.clear();
    for (std::size_t i = 0; i <= limits.max_attributes; ++i) r.attributes[std::to_string(i)] = "";
    CHECK(validate_record(r, limits) == session_errc::too_many_attributes);
}
