// Every entry of tests/data/protocol.json that concerns the codec.
#include "../support/vectors.hpp"

#include <gatehouse/protocol.hpp>

#include <doctest/doctest.h>

#include <map>

namespace p = gatehouse::protocol;
using gatehouse::test::from_hex;
using gatehouse::test::parse_u64;
using gatehouse::test::to_hex;
using gatehouse::test::vectors;

TEST_CASE("vectors: header sizes") {
    for (const auto& c : vectors().at("constants")) {
        CHECK(c.at("request_header_size").get<std::size_t>() == p::request_header_size);
        CHECK(c.at("response_header_size").get<std::size_t>() == p::response_header_size);
    }
}

TEST_CASE("vectors: message flags") {
    const auto& mf = vectors().at("message_flags");
    const std::map<std::string, p::message_flags> ours = {
        {"None", p::message_flags::none},         {"Binary", p::message_flags::binary},
        {"Reserved0x02", p::message_flags::reserved_0x02}, {"Compressed", p::message_flags::compressed},
        {"Reserved0x08", p::message_flags::reserved_0x08}, {"Event", p::message_flags::event},
        {"Client", p::message_flags::client},     {"Response", p::message_flags::response},
        {"Meta", p::message_flags::meta},
    };
    REQUIRE(mf.at("values").size() == ours.size());
    for (const auto& item : mf.at("values").items()) {
        const std::string name = item.key();
        const auto& value = item.value();
        INFO(name);
        REQUIRE(ours.count(name) == 1);
        CHECK(p::to_byte(ours.at(name)) == value.get<int>());
        if (name != "None") CHECK(p::flag_name(ours.at(name)) == name);
    }
    for (const auto& combo : mf.at("combinations")) {
        p::message_flags f = p::message_flags::none;
        if (combo.at("flags").is_string()) {
            for (const auto& [name, v] : ours) f |= v;  // "all eight bits"
        } else {
            for (const auto& n : combo.at("flags")) f |= ours.at(n.get<std::string>());
        }
        CHECK(p::to_byte(f) == combo.at("value").get<int>());
    }
}

TEST_CASE("vectors: response codes, names and HTTP mappings") {
    const auto& codes = vectors().at("response_codes").at("values");
    int known = 0;
    for (const auto& c : codes) {
        const auto code = c.at("code").get<int>();
        INFO(code);
        CHECK(p::is_known_response_code(static_cast<std::uint8_t>(code)));
        CHECK(p::response_code_name(static_cast<p::response_code>(code)) == c.at("name").get<std::string>());
        ++known;
    }
    int ours = 0;
    for (int v = 0; v < 256; ++v) ours += p::is_known_response_code(static_cast<std::uint8_t>(v)) ? 1 : 0;
    CHECK(ours == known);  // nothing invented beyond the protocol's table

    const auto& maps = vectors().at("response_code_to_http");
    for (const auto& item : maps.at(0).at("map").items()) {
        const std::string code = item.key();
        const auto& status = item.value();
        INFO(code);
        CHECK(p::to_http_status(static_cast<p::response_code>(std::stoi(code))) == status.get<int>());
    }
    for (const auto& item : vectors().at("server_http_status_to_code").at("map").items()) {
        const std::string status = item.key();
        const auto& code = item.value();
        if (status.find('/') != std::string::npos) {  // "null/0/anything else"
            for (int s : {0, 100, 302, 418, 429, 500, 502, 503, 599, -1})
                CHECK(p::to_byte(p::from_http_status(s)) == code.get<int>());
            continue;
        }
        INFO(status);
        CHECK(p::to_byte(p::from_http_status(std::stoi(status))) == code.get<int>());
    }
}

TEST_CASE("vectors: big-endian integers") {
    const auto& ints = vectors().at("integers_big_endian");
    for (const auto& c : ints.at("u16")) {
        const auto v = static_cast<std::uint16_t>(parse_u64(c.at(0)));
        std::uint8_t buf[2];
        p::store_be16(buf, v);
        CHECK(to_hex(buf) == c.at(1).get<std::string>());
        CHECK(p::load_be16(buf) == v);
    }
    for (const auto& c : ints.at("u32")) {
        const auto v = static_cast<std::uint32_t>(parse_u64(c.at(0)));
        std::uint8_t buf[4];
        p::store_be32(buf, v);
        CHECK(to_hex(buf) == c.at(1).get<std::string>());
        CHECK(p::load_be32(buf) == v);
    }
    for (const auto& c : ints.at("u64")) {
        const auto v = parse_u64(c.at(0));
        std::uint8_t buf[8];
        p::store_be64(buf, v);
        CHECK(to_hex(buf) == c.at(1).get<std::string>());
        CHECK(p::load_be64(buf) == v);
    }
}

TEST_CASE("vectors: GUID wire encoding") {
    const auto& g = vectors().at("guid_wire_encoding");
    for (const auto& c : g.at("cases")) {
        const auto text = c.at("text").get<std::string>();
        INFO(text);
        p::guid id;
        REQUIRE_FALSE(p::parse_guid(text, id));
        CHECK(to_hex(id.bytes) == c.at("wire").get<std::string>());
        const auto back = c.contains("read_back_text") ? c.at("read_back_text").get<std::string>() : text;
        CHECK(id.to_string() == back);
        const auto wire = from_hex(c.at("wire").get<std::string>());
        CHECK(p::guid::from_wire(wire.data()) == id);
        if (c.contains("dotnet_ToByteArray_for_contrast"))
            CHECK(to_hex(id.bytes) != c.at("dotnet_ToByteArray_for_contrast").get<std::string>());
    }
    for (const auto& bad : g.at("invalid_text_rejected_by_client").at("inputs")) {
        p::guid id;
        CHECK(p::parse_guid(bad.get<std::string>(), id));
    }
}

TEST_CASE("vectors: request frames encode and decode") {
    for (const auto& c : vectors().at("request_frames")) {
        INFO(c.at("from").get<std::string>());
        p::request_header h;
        h.flags = static_cast<p::message_flags>(c.at("flags").get<int>());
        h.channel = static_cast<std::uint16_t>(c.at("channel").get<int>());
        h.sequence = c.at("sequence").get<std::uint32_t>();
        h.service = p::guid_from_string(c.at("guid").get<std::string>());
        h.message_id = parse_u64(c.at("messageId"));
        const auto payload = from_hex(c.at("payloadHex").get<std::string>());

        std::vector<std::uint8_t> encoded;
        p::append_frame(encoded, h, payload);
        CHECK(encoded.size() == c.at("length").get<std::size_t>());
        CHECK(to_hex(encoded) == c.at("hex").get<std::string>());
        CHECK(from_hex(c.at("hex_spaced").get<std::string>()) == encoded);

        const auto wire = from_hex(c.at("hex").get<std::string>());
        p::frame_view f;
        REQUIRE_FALSE(p::decode_frame(wire, f));
        CHECK_FALSE(f.is_response());
        CHECK(f.request() == h);
        CHECK(f.payload.size() == payload.size());
        CHECK(std::equal(f.payload.begin(), f.payload.end(), payload.begin(), payload.end()));
        CHECK(f.payload.data() == wire.data() + p::request_header_size);  // a view, not a copy
    }
}

TEST_CASE("vectors: response frames encode and decode") {
    for (const auto& c : vectors().at("response_frames")) {
        INFO(c.at("from").get<std::string>());
        p::response_header h;
        h.flags = static_cast<p::message_flags>(c.at("flags").get<int>());
        h.channel = static_cast<std::uint16_t>(c.at("channel").get<int>());
        h.sequence = c.at("sequence").get<std::uint32_t>();
        h.message_id = parse_u64(c.at("messageId"));
        h.code = static_cast<p::response_code>(c.at("code").get<int>());
        const auto payload = from_hex(c.at("payloadHex").get<std::string>());

        std::vector<std::uint8_t> encoded;
        p::append_frame(encoded, h, payload);
        CHECK(encoded.size() == c.at("length").get<std::size_t>());
        CHECK(to_hex(encoded) == c.at("hex").get<std::string>());

        const auto wire = from_hex(c.at("hex").get<std::string>());
        p::frame_view f;
        REQUIRE_FALSE(p::decode_frame(wire, f));
        CHECK(f.is_response());
        CHECK(f.response() == h);
        CHECK(f.service.is_nil());
        CHECK(f.payload.size() == payload.size());
        CHECK(f.payload.data() == wire.data() + p::response_header_size);
    }
}

TEST_CASE("vectors: parse rules") {
    const std::map<std::string, p::protocol_errc> expected = {
        {"Expected at least 1 byte", p::protocol_errc::empty_frame},
        {"Expected at least 31 bytes", p::protocol_errc::truncated_request_header},
        {"Expected at least 16 bytes", p::protocol_errc::truncated_response_header},
    };
    for (const auto& c : vectors().at("parse_rules").at("cases")) {
        const auto bytes = from_hex(c.at("bytes").get<std::string>());
        INFO(c.at("bytes").get<std::string>());
        p::frame_view f;
        f.channel = 0xbeef;
        const auto ec = p::decode_frame(bytes, f);
        CHECK(ec == expected.at(c.at("error").get<std::string>()));
        CHECK(f.channel == 0xbeef);  // untouched on error
    }
}

TEST_CASE("vectors: message ids") {
    for (const auto& c : vectors().at("message_ids")) {
        const auto& ex = c.at("example");
        const auto ms = ex.contains("date_now_ms") ? ex.at("date_now_ms").get<std::uint64_t>()
                                                    : ex.at("unix_ms").get<std::uint64_t>();
        const auto low = ex.contains("counter") ? ex.at("counter").get<std::uint16_t>()
                                                : ex.at("random16").get<std::uint16_t>();
        const auto id = p::make_message_id(ms, low);
        CHECK(id == std::stoull(ex.at("message_id").get<std::string>()));
        std::uint8_t buf[8];
        p::store_be64(buf, id);
        CHECK(to_hex(buf) == ex.at("hex").get<std::string>());
        CHECK(p::message_id_unix_ms(id) == ms);
        CHECK(p::message_id_low16(id) == low);
    }
}

TEST_CASE("vectors: meta requests") {
    const auto& m = vectors().at("meta_requests");
    for (const auto& t : m.at("types")) {
        const auto channel = t.at("channel").get<std::uint16_t>();
        const auto type = p::meta_type_from_channel(channel);
        CHECK(static_cast<int>(type) == channel);
        CHECK(p::meta_type_name(type) == t.at("server_metaType").get<std::string>());
        CHECK(p::meta_path_suffix(type) == t.at("companion_path_suffix").get<std::string>());
    }
    // "unknown_channel": "treated as endpoint-info"
    for (std::uint16_t ch : {4, 17, 1000, 65535}) CHECK(p::meta_type_from_channel(ch) == p::meta_type::endpoint_info);
}

TEST_CASE("vectors: close codes as the client sees them, and disconnect reasons") {
    const auto& reasons = vectors().at("disconnect_reasons").at("values");
    CHECK(reasons.at("ClientDisconnect") == std::string(p::disconnect_reason::client_disconnect));
    CHECK(reasons.at("ServerClose") == std::string(p::disconnect_reason::server_close));
    CHECK(reasons.at("NetworkError") == std::string(p::disconnect_reason::network_error));
    CHECK(reasons.at("SessionExpired") == std::string(p::disconnect_reason::session_expired));
    CHECK(reasons.at("ServerShutdown") == std::string(p::disconnect_reason::server_shutdown));
    CHECK(reasons.at("Kicked") == std::string(p::disconnect_reason::kicked));

    const auto& map = vectors().at("close_codes_client_view").at("map");
    auto check = [&](std::uint16_t code, const nlohmann::json& want) {
        INFO(code);
        const auto got = p::classify_close(code);
        CHECK(got.reason == want.at(0).get<std::string>());
        CHECK(got.can_reconnect == want.at(1).get<bool>());
    };
    for (std::uint16_t code : {1000, 1001, 4001, 4002}) check(code, map.at(std::to_string(code)));
    for (std::uint16_t code : {4000, 4005, 4008, 4999}) check(code, map.at("other 4000-4999"));
    for (std::uint16_t code : {1002, 1006, 1009, 1011, 1015}) check(code, map.at("1002-1015"));
    for (std::uint16_t code : {0, 999, 1016, 2000, 3000, 3999, 5000}) check(code, map.at("other"));
}

TEST_CASE("vectors: event names the protocol defines") {
    const auto& names = vectors().at("client_event_names").at("names");
    CHECK(std::find(names.begin(), names.end(), std::string(p::event_names::capability_manifest)) != names.end());
    CHECK(std::find(names.begin(), names.end(), std::string(p::event_names::disconnect_notification)) !=
          names.end());
    const auto& defaults = vectors().at("session_defaults").at("config_defaults_code");
    CHECK(defaults.at("max_channel_number").get<int>() == p::default_max_channel);
    CHECK(defaults.at("max_messages_per_minute").get<std::uint32_t>() == p::default_messages_per_minute);
}
