/*  zfed_huge - big arrays on huge pages where the kernel has them.  */
#include "core/zfed_huge.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

//  The huge page of x86-64 and arm64 (4 KiB base pages).  Blocks are
//  aligned to it and rounded up to it, so that no 4 KiB page is left at
//  either end.
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

//  size in whole huge pages, at least one; 0 past SIZE_MAX.
static size_t s_rounded(size_t size)
{
    if (size > SIZE_MAX - HUGE_PAGE_BYTES)
        return 0;
    return size ? (size + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1) : HUGE_PAGE_BYTES;
}

static void s_advise(void *data, size_t size)
{
#ifdef MADV_HUGEPAGE
    //  Advice only: a kernel without transparent huge pages refuses it,
    //  and the pages are then ordinary ones.
    (void)madvise(data, size, MADV_HUGEPAGE);
#else
    (void)data;
    (void)size;
#endif
}

//  Below a huge page, plain calloc: a small round's tasks on a huge page
//  would have the kernel clear 2 MiB for a few hundred bytes.
static bool s_small(size_t count, size_t size)
{
    return count * size < HUGE_PAGE_BYTES;
}

void *zfed_huge_map(size_t count, size_t size)
{
    if (count && size > SIZE_MAX / count)
        return NULL;
    if (s_small(count, size))
        return calloc(count ? count : 1, size ? size : 1);
    size_t length = s_rounded(count * size);
    if (length == 0)
        return NULL;
    //  A length of whole huge pages is mapped at a huge page boundary
    //  (Linux 6.7 on); elsewhere the pages at its ends stay small.
    void *data = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED)
        return NULL;
    s_advise(data, length);
    return data;
}

void zfed_huge_unmap(void *data, size_t count, size_t size)
{
    if (data && s_small(count, size))
        free(data);
    else if (data)
        munmap(data, s_rounded(count * size));
}

void *zfed_huge_malloc(size_t size, size_t *capacity)
{
    void *data = NULL;
    if (size < HUGE_PAGE_BYTES) {
        //  Rounded up, most of a huge page would be cleared for nothing.
        data = malloc(size ? size : 1);
        *capacity = data ? size : 0;
        return data;
    }
    size_t length = s_rounded(size);
    if (length == 0 || posix_memalign(&data, HUGE_PAGE_BYTES, length) != 0)
        return NULL;
    s_advise(data, length);
    *capacity = length;
    return data;
}
