#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "catch_session.hpp"

namespace fulcrum::test {

int run_catch_session(int argc, char** argv) {
    return Catch::Session().run(argc, argv);
}

}  // namespace fulcrum::test
