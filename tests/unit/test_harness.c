/*  test_harness - zfed_test.h itself: CHECK records a failure and goes on,
    REQUIRE records one and stops the test it is in (the rest of a
    ZFED_TEST_RUN function is skipped, the next one runs; outside a run the
    program exits 1 with the summary), so a test that found NULL never goes
    on to dereference it.

    The deliberate failures are taken back out of the count before the end,
    so this test passes exactly when the harness behaves.
*/
#include "zfed_test.h"

#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

static bool s_after_require;
static bool s_after_check;
static bool s_next_test_ran;

static void s_test_require_stops(void)
{
    const char *missing = NULL;
    REQUIRE(missing != NULL);
    s_after_require = true; //  what would have dereferenced missing
}

static void s_test_check_goes_on(void)
{
    CHECK(1 + 1 == 3);
    s_after_check = true;
}

static void s_test_next(void)
{
    s_next_test_ran = true;
}

int main(void)
{
    ZFED_TEST_RUN(s_test_require_stops);
    ZFED_TEST_RUN(s_test_check_goes_on);
    ZFED_TEST_RUN(s_test_next);
    int deliberate = zfed_test_failures;
    zfed_test_failures = 0;
    CHECK_INT(deliberate, 2);
    CHECK(!s_after_require);
    CHECK(s_after_check);
    CHECK(s_next_test_ran);

    //  Outside a run, a failed REQUIRE ends the program with status 1.
    fflush(stderr);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        REQUIRE_INT(2 + 2, 5);
        _exit(0); //  not reached when REQUIRE_INT works
    }
    int status = 0;
    CHECK_INT(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 1);
    ZFED_TEST_END();
}
