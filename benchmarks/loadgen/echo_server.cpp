// The baseline of benchmarks/run.sh: a plain websocketpp echo server with the
// transport settings the gateway uses (DESIGN.md: logging off, TCP_NODELAY
// in the tcp post-init handler, no strands or locks with one thread, 2 KiB
// read buffer). Whatever it reaches is the ceiling of this transport.
//   echo_server [port]   (0 or none: an ephemeral port; prints "port N")
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>

struct echo_config : websocketpp::config::core {
    typedef echo_config type;
    typedef websocketpp::config::core base;
    typedef websocketpp::concurrency::none concurrency_type;
    typedef base::request_type request_type;
    typedef base::response_type response_type;
    typedef base::message_type message_type;
    typedef base::con_msg_manager_type con_msg_manager_type;
    typedef base::endpoint_msg_manager_type endpoint_msg_manager_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::elevel> elog_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::alevel> alog_type;
    typedef base::rng_type rng_type;
    struct transport_config : public base::transport_config {
        typedef type::concurrency_type concurrency_type;
        typedef type::alog_type alog_type;
        typedef type::elog_type elog_type;
        typedef type::request_type request_type;
        typedef type::response_type response_type;
        typedef websocketpp::transport::asio::basic_socket::endpoint socket_type;
        static const bool enable_multithreading = false;
    };
    typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
    static const std::size_t connection_read_buffer_size = 2048;
};

using server_type = websocketpp::server<echo_config>;

int main(int argc, char** argv) {
    const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 0);
    asio::io_context io(1);
    server_type server;
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio(&io);
    server.set_reuse_addr(true);
    server.set_listen_backlog(4096);
    server.set_tcp_post_init_handler([&server](websocketpp::connection_hdl h) {
        asio::error_code ec;
        server.get_con_from_hdl(h)->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
    });
    server.set_message_handler([&server](websocketpp::connection_hdl h, server_type::message_ptr msg) {
        websocketpp::lib::error_code ec;
        server.send(h, msg->get_payload(), msg->get_opcode(), ec);
    });
    server.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    server.start_accept();
    asio::error_code ec;
    std::printf("port %u\n", server.get_local_endpoint(ec).port());
    std::fflush(stdout);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const asio::error_code&, int) {
        server.stop_listening();
        io.stop();
    });
    io.run();
    return 0;
}
