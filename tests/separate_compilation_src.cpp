// The library compiled once for the *_separate tests (GATEHOUSE_SEPARATE_COMPILATION).
#include <gatehouse/impl/src.hpp>
// The Redis adapters too, when gatehouse::redis is built (the root
// CMakeLists.txt then links hiredis and defines GATEHOUSE_SEPARATE_REDIS).
#if defined(GATEHOUSE_SEPARATE_REDIS)
#include <gatehouse/adapters/redis/impl/src.hpp>
#endif
