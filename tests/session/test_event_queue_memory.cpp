// memory_event_queue_store: the event queue conformance kit.
#include <gatehouse/session/memory_event_queue_store.hpp>
#include <gatehouse/testing/event_queue_conformance.hpp>

#include <doctest/doctest.h>

#include <memory>

using namespace gatehouse::session;
namespace kit = gatehouse::testing::queue_conformance;

struct memory_queue_factory {
    std::shared_ptr<event_queue_store> make() { return std::make_shared<memory_event_queue_store>(); }
};
TYPE_TO_STRING(memory_queue_factory);
GATEHOUSE_EVENT_QUEUE_STORE_CONFORMANCE(memory_queue_factory);

TEST_CASE("memory event queue: completions run inline; expired queues are freed") {
    memory_event_queue_store store;
    event_queue_limits limits;
    limits.retention = std::chrono::milliseconds(100);
    bool called = false;
    const auto id = random_session_id();
    store.park(id, "n", {"e"}, limits, [&](std::error_code ec, queue_status status) {
        called = true;
        CHECK_FALSE(ec);
        CHECK(status.queued);
    });
    CHECK(called);
    CHECK(store.size() == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the retention and the sweep period
    CHECK(kit::take(store, random_session_id(), "n").value.events.empty());
    CHECK(store.size() == 1);  // the expired queue is gone; the take's holder record remains
    CHECK_FALSE(kit::discard(store, id));
}
