// Compiled by test_asio_include_order, which expects gatehouse to refuse it:
// Asio before any standard header makes this translation unit allocate
// handler memory unlike the rest of the program (gatehouse/detail/config.hpp).
#include <asio/io_context.hpp>
#include <gatehouse/server/gateway.hpp>
