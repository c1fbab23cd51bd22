// The cluster layer's public headers compile as C++20 too (this file is built
// with CXX_STANDARD 20).
#include <gatehouse/cluster/duplicate_window.hpp>
#include <gatehouse/cluster/envelope.hpp>
#include <gatehouse/cluster/error.hpp>
#include <gatehouse/cluster/event_bus.hpp>
#include <gatehouse/cluster/memory_event_bus.hpp>
#include <gatehouse/testing/event_bus_conformance.hpp>
#if defined(GATEHOUSE_TEST_WITH_REDIS)
#include <gatehouse/adapters/redis/redis_event_bus.hpp>
#include <gatehouse/adapters/redis/redis_session_store.hpp>  // both adapters in one program
#endif

#include <doctest/doctest.h>

TEST_CASE("cluster headers under C++20") {
    static_assert(__cplusplus >= 202002L);
    std::string out;
    CHECK_FALSE(gatehouse::cluster::encode_envelope({.kind = gatehouse::cluster::message_kind::to_all,
                                                     .message_id = 1,
                                                     .origin = "n",
                                                     .target = {},
                                                     .payload = "p"},
                                                    out));
    gatehouse::cluster::envelope_view v;
    CHECK_FALSE(gatehouse::cluster::decode_envelope(out, v));
}
