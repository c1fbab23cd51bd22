// The native client's WebSocket transport: websocketpp 0.8 client on
// standalone Asio, ws:// and wss:// (TLS 1.2 minimum, peer and host name
// verified unless disabled). The only client file that includes websocketpp;
// compiled in one C++17 translation unit (see gatehouse/client/client.hpp).
#pragma once

#include <gatehouse/client/client.hpp>

#if !defined(ASIO_STANDALONE)
#define ASIO_STANDALONE 1
#endif

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_client.hpp>

#include <asio/ssl/host_name_verification.hpp>

#include <openssl/ssl.h>

namespace gatehouse::client::detail {

/// Frame logging compiled out (DESIGN.md: unconfigured websocketpp logs
/// every frame), multithreading on: the host may run its io_context on
/// several threads.
template <class Base>
struct quiet_client_config : Base {
    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
};

template <class Config, bool Tls>
class websocket_client_transport final : public client_transport,
                                         public std::enable_shared_from_this<websocket_client_transport<Config, Tls>> {
public:
    using endpoint_type = websocketpp::client<Config>;
    using message_ptr = typename endpoint_type::message_ptr;

    websocket_client_transport(asio::io_context& io, const client_options& o) : options_(o) {
        endpoint_.clear_access_channels(websocketpp::log::alevel::all);
        endpoint_.clear_error_channels(websocketpp::log::elevel::all);
        endpoint_.init_asio(&io);
        endpoint_.set_open_handshake_timeout(static_cast<long>(o.connect_timeout.count()));
        endpoint_.set_close_handshake_timeout(static_cast<long>(o.connect_timeout.count()));
        endpoint_.set_max_message_size(o.max_message_size);
        endpoint_.set_user_agent("gatehouse-client");
        endpoint_.set_socket_init_handler([](websocketpp::connection_hdl, auto& socket) { set_nodelay(socket); });
        if constexpr (Tls) {
            endpoint_.set_tls_init_handler([this](websocketpp::connection_hdl) { return make_tls_context(); });
        }
    }

    void open(const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
              std::weak_ptr<client_transport_events> events) override {
        websocketpp::lib::error_code ec;
        auto con = endpoint_.get_connection(url, ec);
        if (ec) {
            if (auto e = events.lock()) e->transport_failed(ec, 0);
            return;
        }
        if constexpr (Tls) host_ = con->get_host();
        for (const auto& [name, value] : headers) con->append_header(name, value);
        std::weak_ptr<websocket_client_transport> weak_self = this->shared_from_this();
        con->set_open_handler([events](websocketpp::connection_hdl) {
            if (auto e = events.lock()) e->transport_open();
        });
        con->set_message_handler([events](websocketpp::connection_hdl, message_ptr msg) {
            if (auto e = events.lock())
                e->transport_message(std::move(msg->get_raw_payload()),
                                     msg->get_opcode() == websocketpp::frame::opcode::binary);
        });
        con->set_close_handler([events, weak_self](websocketpp::connection_hdl hdl) {
            auto self = weak_self.lock();
            auto e = events.lock();
            if (!self || !e) return;
            websocketpp::lib::error_code ignored;
            auto c = self->endpoint_.get_con_from_hdl(hdl, ignored);
            const auto code = c ? c->get_remote_close_code() : websocketpp::close::status::abnormal_close;
            e->transport_closed(static_cast<std::uint16_t>(code), c ? c->get_remote_close_reason() : std::string());
        });
        con->set_fail_handler([events, weak_self](websocketpp::connection_hdl hdl) {
            auto self = weak_self.lock();
            auto e = events.lock();
            if (!self || !e) return;
            websocketpp::lib::error_code ignored;
            auto c = self->endpoint_.get_con_from_hdl(hdl, ignored);
            const int status = c ? static_cast<int>(c->get_response_code()) : 0;
            // websocketpp reports 0 or a non-error status when no HTTP answer came.
            e->transport_failed(c ? c->get_ec() : ignored, status >= 200 && status != 101 ? status : 0);
        });
        handle_ = con->get_handle();
        endpoint_.connect(con);
    }

    void send(std::string bytes, bool binary) override {
        websocketpp::lib::error_code ec;
        endpoint_.send(handle_, bytes, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text,
                       ec);
        // An error means the connection is closing; its close handler reports it.
    }

    void close(std::uint16_t code, const std::string& reason) override {
        websocketpp::lib::error_code ec;
        auto c = endpoint_.get_con_from_hdl(handle_, ec);
        if (!c) return;
        if (c->get_state() == websocketpp::session::state::connecting) {
            c->terminate(websocketpp::lib::error_code());  // no handshake to close yet
            return;
        }
        c->close(static_cast<websocketpp::close::status::value>(code), reason.substr(0, 123), ec);
    }

private:
    template <class Socket>
    static void set_nodelay(Socket& socket) {
        asio::error_code ignored;
        if constexpr (Tls) socket.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ignored);
        else socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    }

    std::shared_ptr<asio::ssl::context> make_tls_context() {
        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        asio::error_code ec;
        SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
        if (options_.tls_verify_peer) {
            ctx->set_verify_mode(asio::ssl::verify_peer, ec);
            if (!options_.tls_ca_file.empty()) ctx->load_verify_file(options_.tls_ca_file, ec);
            else ctx->set_default_verify_paths(ec);
            ctx->set_verify_callback(asio::ssl::host_name_verification(host_), ec);
        } else {
            ctx->set_verify_mode(asio::ssl::verify_none, ec);
        }
        return ctx;
    }

    client_options options_;
    endpoint_type endpoint_;
    websocketpp::connection_hdl handle_;
    std::string host_;
};

std::shared_ptr<client_transport> make_websocket_client_transport(asio::io_context& io, const client_options& options) {
    if (options.url.rfind("wss://", 0) == 0)
        return std::make_shared<websocket_client_transport<quiet_client_config<websocketpp::config::asio_tls_client>, true>>(
            io, options);
    return std::make_shared<websocket_client_transport<quiet_client_config<websocketpp::config::asio_client>, false>>(
        io, options);
}

}  // namespace gatehouse::client::detail
