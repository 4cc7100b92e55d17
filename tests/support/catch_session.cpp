// Catch2's implementation, compiled once for both test programs (each has its own main).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
