// The bus envelope codec, the error category and the duplicate window.
#include <gatehouse/cluster/duplicate_window.hpp>
#include <gatehouse/cluster/envelope.hpp>
#include <gatehouse/cluster/error.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace gatehouse::cluster;

namespace {

std::string encode(message_kind kind, std::string_view target, std::string_view payload,
                   std::string_view origin = "node-1", std::uint64_t id = 0x0102030405060708ULL) {
    std::string out;
    REQUIRE_FALSE(encode_envelope({kind, id, origin, target, payload}, out));
    return out;
}

std::error_code decode(std::string_view bytes) {
    envelope_view v;
    return decode_envelope(bytes, v);
}

}  // namespace

TEST_CASE("envelope: the documented layout, byte by byte") {
    const auto bytes = encode(message_kind::to_session, "s1", "hi", "n1", 0x0102030405060708ULL);
    const std::string expected("gb\x01\x02\x01\x02\x03\x04\x05\x06\x07\x08\x02\x00\x02\x00\x00\x00\x02n1s1hi", 25);
    CHECK(bytes == expected);
    CHECK(bytes.size() == envelope_size("n1", "s1", "hi"));
}

TEST_CASE("envelope: round trip of every kind") {
    for (std::uint8_t k = min_message_kind; k <= max_message_kind; ++k) {
        const auto kind = static_cast<message_kind>(k);
        CAPTURE(to_string(kind));
        const std::string target = kind == message_kind::to_all ? "" : "target-" + std::to_string(k);
        const std::string payload(k * 100, static_cast<char>('a' + k));
        const auto bytes = encode(kind, target, payload, "origin.node:1", 0xfffffffffffffff0ULL + k);
        envelope_view v;
        REQUIRE_FALSE(decode_envelope(bytes, v));
        CHECK(v.kind == kind);
        CHECK(v.target == target);
        CHECK(v.payload == payload);
        CHECK(v.origin == "origin.node:1");
        CHECK(v.message_id == 0xfffffffffffffff0ULL + k);
        CHECK(to_string(kind) != "unknown");
    }
    // Binary payloads with NULs, empty payloads, the largest target.
    envelope_view v;
    const std::string binary("\0\x01\xff\0", 4);
    const auto b = encode(message_kind::to_group, std::string(max_target_size, 'g'), binary);
    REQUIRE_FALSE(decode_envelope(b, v));
    CHECK(v.payload == binary);
    CHECK(v.target.size() == max_target_size);
    REQUIRE_FALSE(decode_envelope(encode(message_kind::to_all, "", ""), v));
    CHECK(v.payload.empty());
}

TEST_CASE("envelope: encoding refuses what a receiver would reject") {
    std::string out = "kept";
    CHECK(encode_envelope({message_kind::to_all, 1, "", "", ""}, out) == cluster_errc::invalid_node_id);
    CHECK(encode_envelope({message_kind::to_all, 1, "bad id", "", ""}, out) == cluster_errc::invalid_node_id);
    CHECK(encode_envelope({message_kind::to_all, 1, std::string(65, 'n'), "", ""}, out) ==
          cluster_errc::invalid_node_id);
    CHECK(encode_envelope({message_kind::to_all, 1, "n", "t", ""}, out) == cluster_errc::invalid_target);
    CHECK(encode_envelope({message_kind::to_session, 1, "n", "", ""}, out) == cluster_errc::invalid_target);
    CHECK(encode_envelope({message_kind::to_group, 1, "n", std::string(max_target_size + 1, 'g'), ""}, out) ==
          cluster_errc::invalid_target);
    CHECK(encode_envelope({static_cast<message_kind>(0), 1, "n", "t", ""}, out) == cluster_errc::invalid_target);
    CHECK(encode_envelope({static_cast<message_kind>(9), 1, "n", "t", ""}, out) == cluster_errc::invalid_target);
    CHECK(encode_envelope({message_kind::to_all, 1, "n", "", std::string(11, 'p')}, out, 10) ==
          cluster_errc::payload_too_large);
    CHECK(out == "kept");  // nothing appended on error
    CHECK_FALSE(encode_envelope({message_kind::to_all, 1, "n", "", std::string(10, 'p')}, out, 10));
    CHECK(out.substr(0, 4) == "kept");  // appends
}

TEST_CASE("envelope: each malformed input has its own error") {
    const auto good = encode(message_kind::to_node, "node-2", "payload");
    REQUIRE_FALSE(decode(good));
    CHECK(decode("") == cluster_errc::envelope_truncated);
    CHECK(decode("gb") == cluster_errc::envelope_truncated);
    CHECK(decode(good.substr(0, envelope_header_size - 1)) == cluster_errc::envelope_truncated);
    CHECK(decode(good.substr(0, good.size() - 1)) == cluster_errc::envelope_truncated);
    CHECK(decode(good + '\0') == cluster_errc::envelope_trailing_bytes);
    CHECK(decode("{\"json\":true}") == cluster_errc::envelope_bad_magic);
    auto m = good;
    m[1] = 'B';
    CHECK(decode(m) == cluster_errc::envelope_bad_magic);
    m = good;
    m[2] = 0;
    CHECK(decode(m) == cluster_errc::envelope_version_obsolete);
    CHECK(decode(m.substr(0, 3)) == cluster_errc::envelope_version_obsolete);  // says what it is even when short
    m[2] = 2;
    CHECK(decode(m) == cluster_errc::envelope_version_unknown);
    m[2] = static_cast<char>(0xff);
    CHECK(decode(m) == cluster_errc::envelope_version_unknown);
    m = good;
    m[3] = 0;
    CHECK(decode(m) == cluster_errc::envelope_unknown_kind);
    m[3] = 9;
    CHECK(decode(m) == cluster_errc::envelope_unknown_kind);
    m = good;
    m[12] = 0;
    CHECK(decode(m) == cluster_errc::envelope_bad_origin);
    m[12] = 65;
    CHECK(decode(m) == cluster_errc::envelope_bad_origin);
    // An origin of a valid length but with a space in it.
    auto spaced = encode(message_kind::to_node, "node-2", "p", "ab");
    spaced[envelope_header_size] = ' ';
    CHECK(decode(spaced) == cluster_errc::envelope_bad_origin);
    m = good;
    m[13] = 0;
    m[14] = 0;
    CHECK(decode(m) == cluster_errc::envelope_bad_target);  // to_node without a target
    m[13] = 0x04;
    m[14] = 0x01;  // 1025
    CHECK(decode(m) == cluster_errc::envelope_bad_target);
    auto all = encode(message_kind::to_all, "", "p");
    all[14] = 1;  // to_all with a target
    CHECK(decode(all) == cluster_errc::envelope_bad_target);
    m = good;
    m[15] = 0x00;
    m[16] = 0x10;  // 1 MiB + payload declared
    m[17] = 0x00;
    m[18] = 0x01;
    CHECK(decode(m) == cluster_errc::envelope_payload_too_large);
    envelope_view v;
    CHECK(decode_envelope(good, v, 3) == cluster_errc::envelope_payload_too_large);  // the bus's own limit
    m[15] = static_cast<char>(0xff);  // 4 GiB declared: never read past the input
    CHECK(decode(m) == cluster_errc::envelope_payload_too_large);
}

TEST_CASE("cluster_errc: category, distinct messages") {
    CHECK(std::string(cluster_category().name()) == "gatehouse.cluster");
    std::set<std::string> messages;
    for (int e = 1; e <= static_cast<int>(cluster_errc::bus_closed); ++e) {
        const std::error_code ec = static_cast<cluster_errc>(e);
        CHECK(ec.category() == cluster_category());
        CHECK(ec.message() != "unknown gatehouse.cluster error");
        messages.insert(ec.message());
    }
    CHECK(messages.size() == static_cast<std::size_t>(cluster_errc::bus_closed));
    CHECK(std::error_code(static_cast<cluster_errc>(999)).message() == "unknown gatehouse.cluster error");
}

TEST_CASE("node ids") {
    CHECK(valid_node_id("node-1"));
    CHECK(valid_node_id("eu-west.gw:7_a"));
    CHECK(valid_node_id(std::string(max_node_id_size, 'n')));
    CHECK_FALSE(valid_node_id(""));
    CHECK_FALSE(valid_node_id(std::string(max_node_id_size + 1, 'n')));
    CHECK_FALSE(valid_node_id("a b"));
    CHECK_FALSE(valid_node_id("a/b"));
    CHECK_FALSE(valid_node_id("a\nb"));
}

TEST_CASE("duplicate_window: remembers the last N pairs, per origin") {
    duplicate_window w(3);
    CHECK(w.first_time("a", 1));
    CHECK_FALSE(w.first_time("a", 1));
    CHECK(w.first_time("b", 1));  // same id, other origin
    CHECK(w.first_time("a", 2));
    CHECK(w.size() == 3);
    CHECK(w.first_time("a", 3));  // forgets ("a", 1)
    CHECK(w.size() == 3);
    CHECK(w.first_time("a", 1));
    CHECK_FALSE(w.first_time("a", 3));
    duplicate_window one(0);  // at least one
    CHECK(one.capacity() == 1);
    CHECK(one.first_time("x", 5));
    CHECK_FALSE(one.first_time("x", 5));
    // Bounded under a long stream of distinct ids.
    duplicate_window big(1000);
    for (std::uint64_t i = 0; i < 100000; ++i) REQUIRE(big.first_time("o", i));
    CHECK(big.size() == 1000);
    CHECK_FALSE(big.first_time("o", 99999));
    CHECK(big.first_time("o", 98999));
}
