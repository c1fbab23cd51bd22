// The translation unit that gatehouse_test_pch and gatehouse_test_pch_redis
// compile their precompiled headers with (tests/CMakeLists.txt); the tests
// reuse those headers. Nothing of its own.
