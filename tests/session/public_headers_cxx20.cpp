// The session layer's public headers compile as C++20 too (this file is built
// with CXX_STANDARD 20).
#include <gatehouse/session/error.hpp>
#include <gatehouse/session/event_queue_store.hpp>
#include <gatehouse/session/memory_event_queue_store.hpp>
#include <gatehouse/session/memory_session_store.hpp>
#include <gatehouse/session/session.hpp>
#include <gatehouse/session/session_store.hpp>
#include <gatehouse/testing/event_queue_conformance.hpp>
#include <gatehouse/testing/session_store_conformance.hpp>
#if defined(GATEHOUSE_TEST_WITH_REDIS)
#include <gatehouse/adapters/redis/redis_session_store.hpp>
#endif

#include <doctest/doctest.h>

TEST_CASE("session headers under C++20") {
    static_assert(__cplusplus >= 202002L);
    gatehouse::session::memory_session_store store;
    std::error_code result = gatehouse::session::session_errc::store_closed;
    store.create({.session_id = {}, .account_id = "a"}, [&](std::error_code ec, gatehouse::session::session_record) {
        result = ec;
    });
    CHECK_FALSE(result);
}
