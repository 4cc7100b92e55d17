// Catch2 runner for the unit tests.
#include "../support/catch_session.hpp"

int main(int argc, char** argv) {
    return fulcrum::test::run_catch_session(argc, argv);
}
