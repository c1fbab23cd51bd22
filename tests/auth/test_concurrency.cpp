// Validations racing key rotation, API key changes, revocations and
// listener (un)subscription. Run under ThreadSanitizer in CI.
#include "auth_support.hpp"

#include <gatehouse/auth/api_key_validator.hpp>
#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/validator_chain.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;
using json = nlohmann::json;

TEST_CASE("concurrency: validations never fail while keys rotate") {
    const std::string s1(32, '1');
    const std::string s2(32, '2');
    a::jwt_options o;
    o.require_expiration = false;
    o.require_session_key = false;
    a::jwt_validator v(o, make_set({hmac_key(s1, "k1"), hmac_key(s2, "k2")}));
    std::string t1;
    std::string t2;
    REQUIRE_FALSE(a::sign_jwt(json{{"sub", "a"}}, *hmac_signer(s1, "k1"), A::hs256, t1));
    REQUIRE_FALSE(a::sign_jwt(json{{"sub", "b"}}, *hmac_signer(s2, "k2"), A::hs256, t2));

    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::atomic<long> validations{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 3; ++i) {
        readers.emplace_back([&, i] {
            a::identity id;
            while (!stop.load()) {
                const auto& t = (i % 2 == 0) ? t1 : t2;
                if (v.validate(t, id)) failures.fetch_add(1);
                validations.fetch_add(1);
            }
        });
    }
    // Every published set contains both keys (in changing order, as new objects).
    // Rotate until the readers have validated plenty while rotations ran.
    for (int round = 0; round < 300 || validations.load() < 3000; ++round) {
        if (round % 2 == 0) v.set_keys(make_set({hmac_key(s2, "k2"), hmac_key(s1, "k1")}));
        else v.rotate_keys(make_set({hmac_key(s1, "k1"), hmac_key(s2, "k2")}), std::chrono::seconds(1));
    }
    stop = true;
    for (auto& t : readers) t.join();
    CHECK(failures.load() == 0);
}

TEST_CASE("concurrency: API keys and revocations under concurrent use") {
    auto api = std::make_shared<a::api_key_validator>();
    auto revocations = std::make_shared<a::memory_revocation_list>();
    a::validator_chain chain;
    chain.set_validator(a::credential_kind::api_key, api);
    chain.set_revocation_list(revocations);
    a::identity stable;
    stable.subject = "stable";
    REQUIRE_FALSE(api->add("stable-key", stable));

    std::atomic<bool> stop{false};
    std::atomic<int> stable_failures{0};
    std::atomic<int> heard{0};
    std::atomic<long> checks{0};
    std::thread checker([&] {
        while (!stop.load()) {
            chain.async_validate({a::credential_kind::api_key, "stable-key"}, [&](std::error_code ec, a::identity) {
                if (ec) stable_failures.fetch_add(1);
            });
            checks.fetch_add(1);
        }
    });
    std::thread subscriber([&] {
        while (!stop.load()) {
            auto sub = revocations->subscribe([&](const a::revocation&) { heard.fetch_add(1); });
            std::this_thread::yield();
        }
    });
    a::revocation_subscription permanent = revocations->subscribe([&](const a::revocation&) { heard.fetch_add(1); });
    while (checks.load() == 0) std::this_thread::yield();  // overlap for certain
    for (int i = 0; i < 500; ++i) {
        const auto key = "key-" + std::to_string(i);
        a::identity id;
        id.subject = "account-" + std::to_string(i);
        REQUIRE_FALSE(api->add(key, id));
        REQUIRE_FALSE(revocations->revoke({a::revocation_scope::account, id.subject}));
        CHECK(api->revoke(key));
    }
    while (checks.load() < 100) std::this_thread::yield();
    stop = true;
    checker.join();
    subscriber.join();
    CHECK(stable_failures.load() == 0);
    CHECK(heard.load() >= 500);  // the permanent listener heard every one
    CHECK(revocations->size() == 500);
    CHECK(api->size() == 1);
}
