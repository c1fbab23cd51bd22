// memory_event_bus: the conformance kit, plus what only the in-process bus has
// (its hub, its start-up checks).
#include <gatehouse/cluster/memory_event_bus.hpp>
#include <gatehouse/testing/event_bus_conformance.hpp>

#include "io_runner.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace {

using namespace gatehouse::cluster;

struct memory_bus_factory {
    gatehouse::test::io_runner io{2};
    std::shared_ptr<memory_event_hub> hub = std::make_shared<memory_event_hub>();

    std::shared_ptr<event_bus> make(const std::string& node_id) {
        memory_event_bus_options o;
        o.node_id = node_id;
        o.max_payload_size = max_payload_size;
        return std::make_shared<memory_event_bus>(hub, io.executor(), o);
    }
    void inject(const std::string& node_id, const std::string& bytes) { REQUIRE(hub->inject(node_id, bytes)); }
};

}  // namespace

TYPE_TO_STRING(memory_bus_factory);
GATEHOUSE_EVENT_BUS_CONFORMANCE(memory_bus_factory);

TEST_CASE("memory_event_bus: start-up configuration is checked") {
    gatehouse::test::io_runner io;
    auto hub = std::make_shared<memory_event_hub>();
    auto make = [&](std::string id) {
        memory_event_bus_options o;
        o.node_id = std::move(id);
        return std::make_unique<memory_event_bus>(hub, io.executor(), o);
    };
    CHECK_THROWS_AS(make(""), std::invalid_argument);
    CHECK_THROWS_AS(make("has space"), std::invalid_argument);
    CHECK_THROWS_AS(make(std::string(65, 'n')), std::invalid_argument);
    auto first = make("n1");
    CHECK_THROWS_AS(make("n1"), std::invalid_argument);
    CHECK(hub->nodes() == std::vector<std::string>{"n1"});
    first.reset();
    CHECK(hub->nodes().empty());
    CHECK_FALSE(hub->inject("n1", "x"));
    CHECK_NOTHROW(make("n1"));  // the id is free again
    memory_event_bus_options zero_window;
    zero_window.node_id = "n2";
    zero_window.duplicate_window = 0;
    CHECK_THROWS_AS(memory_event_bus(hub, io.executor(), zero_window), std::invalid_argument);
    CHECK_THROWS_AS(memory_event_bus(nullptr, io.executor(), memory_event_bus_options{"n3"}), std::invalid_argument);
}

TEST_CASE("memory_event_bus: payload limit of the options") {
    gatehouse::test::io_runner io;
    auto hub = std::make_shared<memory_event_hub>();
    memory_event_bus_options o;
    o.node_id = "n1";
    o.max_payload_size = 16;
    memory_event_bus bus(hub, io.executor(), o);
    using gatehouse::testing::bus_conformance::publish;
    CHECK(publish(bus, message_kind::to_all, "", std::string(16, 'x')).ec == std::error_code{});
    CHECK(publish(bus, message_kind::to_all, "", std::string(17, 'x')).ec == cluster_errc::payload_too_large);
}
