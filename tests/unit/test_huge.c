/*  test_huge - big arrays on huge pages: what the memory holds and how
    it is given back, whether or not the kernel has huge pages.  */
#include "core/zfed_huge.h"
#include "zfed_test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HUGE_PAGE ((size_t)2 << 20)
//  A 100,000-task round's tasks, about.
#define TASKS     100000
#define TASK_SIZE 272

static bool s_all_zero(const uint8_t *data, size_t size)
{
    for (size_t at = 0; at < size; at += 4096)
        if (data[at] != 0)
            return false;
    return data[size - 1] == 0;
}

static void s_test_map(void)
{
    uint8_t *tasks = zfed_huge_map(TASKS, TASK_SIZE);
    REQUIRE(tasks != NULL);
    CHECK(s_all_zero(tasks, (size_t)TASKS * TASK_SIZE));
    memset(tasks, 0xA5, (size_t)TASKS * TASK_SIZE);
    CHECK(tasks[(size_t)TASKS * TASK_SIZE - 1] == 0xA5);
    zfed_huge_unmap(tasks, TASKS, TASK_SIZE);
    //  A fresh map is zero again, whatever the last one held.
    tasks = zfed_huge_map(TASKS, TASK_SIZE);
    REQUIRE(tasks != NULL);
    CHECK(s_all_zero(tasks, (size_t)TASKS * TASK_SIZE));
    zfed_huge_unmap(tasks, TASKS, TASK_SIZE);
    //  A small array is calloc's (no huge page cleared for it), zeroed too.
    uint8_t *few = zfed_huge_map(5, TASK_SIZE);
    REQUIRE(few != NULL);
    CHECK(s_all_zero(few, 5 * TASK_SIZE));
    zfed_huge_unmap(few, 5, TASK_SIZE);
    //  No items still gives a block to free.
    uint8_t *none = zfed_huge_map(0, TASK_SIZE);
    CHECK(none != NULL);
    zfed_huge_unmap(none, 0, TASK_SIZE);
    zfed_huge_unmap(NULL, TASKS, TASK_SIZE); //  nothing
    //  Sizes that overflow are refused, not wrapped.
    CHECK(zfed_huge_map(SIZE_MAX / 2, 3) == NULL);
    CHECK(zfed_huge_map(1, SIZE_MAX - 1) == NULL);
}

static void s_test_malloc(void)
{
    size_t capacity = 0;
    //  Below a huge page: exactly what was asked, plain malloc.
    char *small = zfed_huge_malloc(1000, &capacity);
    REQUIRE(small != NULL);
    CHECK_INT(capacity, 1000);
    free(small);
    //  From one huge page up: aligned, whole huge pages.
    char *big = zfed_huge_malloc(HUGE_PAGE * 3 + 1, &capacity);
    REQUIRE(big != NULL);
    CHECK_INT(capacity, HUGE_PAGE * 4);
    CHECK_INT((uintptr_t)big % HUGE_PAGE, 0);
    memset(big, 'x', capacity);
    //  malloc's own: realloc keeps the bytes, free takes it.
    char *bigger = realloc(big, capacity * 2);
    REQUIRE(bigger != NULL);
    CHECK(bigger[0] == 'x' && bigger[capacity - 1] == 'x');
    free(bigger);
    CHECK(zfed_huge_malloc(SIZE_MAX - 1, &capacity) == NULL);
}

int main(void)
{
    ZFED_TEST_RUN(s_test_map);
    ZFED_TEST_RUN(s_test_malloc);
    ZFED_TEST_END();
}
