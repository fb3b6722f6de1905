/*  test_pid - the process id asked of the kernel once, and again in a
    fork's child.  */
#define _GNU_SOURCE //  syscall
#include "core/zfed_pid.h"
#include "zfed_test.h"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t s_kernel_pid(void)
{
    return (pid_t)syscall(SYS_getpid);
}

static void s_test_same_as_kernel(void)
{
    CHECK(zfed_pid() == s_kernel_pid());
    CHECK(zfed_pid() == s_kernel_pid()); //  the remembered answer
}

//  The child's own id, not its parent's remembered one; the parent's
//  stays its own.  The child says through its exit status.
static void s_test_fork(void)
{
    pid_t parent = zfed_pid();
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0)
        _exit(zfed_pid() == s_kernel_pid() && zfed_pid() != parent ? 0 : 1);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(zfed_pid() == parent);
    CHECK(zfed_pid() == s_kernel_pid());
}

int main(void)
{
    ZFED_TEST_RUN(s_test_same_as_kernel);
    ZFED_TEST_RUN(s_test_fork);
    ZFED_TEST_END();
}
