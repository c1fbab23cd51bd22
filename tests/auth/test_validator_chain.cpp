// validator_chain: routing by credential kind, revocation after validation,
// host validators that complete later or misbehave.
#include "auth_support.hpp"

#include <gatehouse/auth/api_key_validator.hpp>
#include <gatehouse/auth/authorization_header.hpp>
#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/validator_chain.hpp>

#include <doctest/doctest.h>

#include <future>
#include <thread>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;
using json = nlohmann::json;

namespace {

constexpr long long now_s = 1700000000;

// A reconnect validator like the gateway's: completes later, on another
// thread, as a session-store lookup would.
class deferred_reconnect_validator final : public a::token_validator {
public:
    void async_validate(const a::credential& cred, completion done) override {
        const std::string token = cred.value;  // copied: the credential is only valid during the call
        worker_ = std::thread([token, done = std::move(done)] {
            if (token != "reconnect-token-1") return done(auth_errc::unknown_api_key, a::identity{});
            a::identity id;
            id.subject = "account-r";
            id.session_key = "session-r";
            done({}, id);
        });
    }
    void join() {
        if (worker_.joinable()) worker_.join();
    }
    ~deferred_reconnect_validator() override { join(); }

private:
    std::thread worker_;
};

class throwing_validator final : public a::token_validator {
public:
    explicit throwing_validator(bool complete_first) : complete_first_(complete_first) {}
    void async_validate(const a::credential&, completion done) override {
        if (complete_first_) done({}, a::identity{});
        throw std::runtime_error("host bug");
    }

private:
    bool complete_first_;
};

struct result {
    int calls = 0;
    std::error_code ec;
    a::identity id;
};

a::token_validator::completion record(result& r) {
    return [&r](std::error_code ec, a::identity id) {
        ++r.calls;
        r.ec = ec;
        r.id = std::move(id);
    };
}

}  // namespace

TEST_CASE("validator_chain: routes by kind and consults the revocation list") {
    a::manual_clock clock{std::chrono::system_clock::time_point(std::chrono::seconds(now_s))};
    a::jwt_options o;
    o.clock = clock.source();
    const std::string secret(32, 's');
    auto jwt = std::make_shared<a::jwt_validator>(o, make_set({hmac_key(secret, "k")}));
    auto api_keys = std::make_shared<a::api_key_validator>();
    a::identity svc;
    svc.subject = "service-account";
    REQUIRE_FALSE(api_keys->add("api-key-1", svc));
    a::memory_revocation_options ro;
    ro.clock = clock.source();
    auto revocations = std::make_shared<a::memory_revocation_list>(ro);
    auto reconnect = std::make_shared<deferred_reconnect_validator>();

    a::validator_chain chain;
    result r;
    chain.async_validate({a::credential_kind::bearer, "x.y.z"}, record(r));
    CHECK(r.ec == auth_errc::unsupported_credential_kind);

    chain.set_validator(a::credential_kind::bearer, jwt);
    chain.set_validator(a::credential_kind::api_key, api_keys);
    chain.set_validator(a::credential_kind::reconnect, reconnect);
    chain.set_revocation_list(revocations);
    CHECK(chain.validator(a::credential_kind::bearer) == jwt);
    CHECK(chain.revocations() == revocations);

    std::string token;
    REQUIRE_FALSE(a::sign_jwt(json{{"sub", "acc"}, {"session_key", "sess"}, {"jti", "j"}, {"exp", now_s + 60}},
                              *hmac_signer(secret, "k"), A::hs256, token));

    // The gateway's path: header -> credential -> chain.
    a::credential cred;
    REQUIRE_FALSE(a::parse_authorization_header("Bearer " + token, cred));
    r = {};
    chain.async_validate(cred, record(r));
    CHECK(r.calls == 1);  // inline: no I/O on this path
    CHECK_FALSE(r.ec);
    CHECK(r.id.subject == "acc");
    CHECK(r.id.expiry_leeway == o.leeway);  // passed through, for the gateway's session deadline

    r = {};
    chain.async_validate({a::credential_kind::api_key, "api-key-1"}, record(r));
    CHECK_FALSE(r.ec);
    CHECK(r.id.subject == "service-account");

    r = {};
    chain.async_validate({a::credential_kind::api_key, "wrong"}, record(r));
    CHECK(r.ec == auth_errc::unknown_api_key);

    r = {};
    chain.async_validate({a::credential_kind::bearer, ""}, record(r));
    CHECK(r.ec == auth_errc::empty_credential);

    // Revoked after issue: refused by the chain, although the token is valid.
    REQUIRE_FALSE(revocations->revoke({a::revocation_scope::session, "sess"}));
    r = {};
    chain.async_validate(cred, record(r));
    CHECK(r.ec == auth_errc::session_revoked);
    CHECK(r.id.subject.empty());
    REQUIRE_FALSE(revocations->revoke({a::revocation_scope::account, "service-account"}));
    r = {};
    chain.async_validate({a::credential_kind::api_key, "api-key-1"}, record(r));
    CHECK(r.ec == auth_errc::account_revoked);

    // The reconnect validator completes on its own thread.
    std::promise<result> done;
    chain.async_validate({a::credential_kind::reconnect, "reconnect-token-1"}, [&](std::error_code ec, a::identity id) {
        done.set_value(result{1, ec, std::move(id)});
    });
    const auto later = done.get_future().get();
    reconnect->join();
    CHECK_FALSE(later.ec);
    CHECK(later.id.session_key == "session-r");

    // Removing a route.
    chain.set_validator(a::credential_kind::api_key, nullptr);
    r = {};
    chain.async_validate({a::credential_kind::api_key, "api-key-1"}, record(r));
    CHECK(r.ec == auth_errc::unsupported_credential_kind);

    // A kind outside the enumeration is never routed.
    const auto bogus = static_cast<a::credential_kind>(7);
    r = {};
    chain.async_validate({bogus, "api-key-1"}, record(r));
    CHECK(r.ec == auth_errc::unsupported_credential_kind);
    CHECK(chain.validator(bogus) == nullptr);
    CHECK_THROWS_AS(chain.set_validator(bogus, api_keys), std::invalid_argument);
}

TEST_CASE("validator_chain: a throwing host validator still completes exactly once") {
    a::validator_chain chain;
    chain.set_validator(a::credential_kind::bearer, std::make_shared<throwing_validator>(false));
    result r;
    chain.async_validate({a::credential_kind::bearer, "t"}, record(r));
    CHECK(r.calls == 1);
    CHECK(r.ec == auth_errc::internal_error);

    chain.set_validator(a::credential_kind::bearer, std::make_shared<throwing_validator>(true));
    r = {};
    chain.async_validate({a::credential_kind::bearer, "t"}, record(r));
    CHECK(r.calls == 1);
    CHECK_FALSE(r.ec);
}
