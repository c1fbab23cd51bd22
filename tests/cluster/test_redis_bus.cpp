// redis_event_bus against a real redis-server: the conformance kit, then what
// only a networked bus has (outages, lost connections, crashed nodes).
#include "../support/redis_server.hpp"
#include "io_runner.hpp"

#include <gatehouse/adapters/redis/redis_event_bus.hpp>
#include <gatehouse/testing/event_bus_conformance.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

namespace {

using namespace gatehouse::cluster;
using gatehouse::adapters::redis::redis_event_bus;
using gatehouse::adapters::redis::redis_event_bus_options;

gatehouse::test::redis_server& shared_redis() {
    static gatehouse::test::redis_server server;
    return server;
}

std::string fresh_prefix() {
    static std::atomic<int> n{0};
    return "gh-bus-test:" + std::to_string(::getpid()) + ":" + std::to_string(n++) + ":";
}

struct redis_bus_factory {
    gatehouse::test::io_runner io{2};
    std::string prefix = fresh_prefix();

    redis_event_bus_options options(const std::string& node_id) const {
        redis_event_bus_options o;
        o.node_id = node_id;
        o.port = shared_redis().port();
        o.key_prefix = prefix;
        o.max_payload_size = max_payload_size;
        return o;
    }
    std::shared_ptr<event_bus> make(const std::string& node_id) {
        return std::make_shared<redis_event_bus>(io.executor(), options(node_id));
    }
    void inject(const std::string& node_id, const std::string& bytes) {
        const auto r = shared_redis().command({"XADD", prefix + "n:" + node_id, "*", "e", bytes});
        REQUIRE(r.rfind("ERR", 0) != 0);
    }
};

}  // namespace

TYPE_TO_STRING(redis_bus_factory);
GATEHOUSE_EVENT_BUS_CONFORMANCE(redis_bus_factory);
