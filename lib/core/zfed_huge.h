/*  zfed_huge - big arrays filled once, on huge pages where the kernel
    has them (private header).

    A 100,000-task round fills its tasks (27 MB) and its results' lines
    (15 MB) once, in arrival order: on 4 KiB pages that was 11,000 page
    faults a round, an eighth of the controller's CPU (perf, kernel side).
    The kernel's transparent huge pages, when it offers them on advice
    (/sys/kernel/mm/transparent_hugepage/enabled: madvise or always), take
    a fault per 2 MiB instead.  Advice only: the memory works the same
    where there are no huge pages.
*/
#ifndef ZFED_HUGE_H_INCLUDED
#define ZFED_HUGE_H_INCLUDED

#include <stddef.h>

//  count * size zeroed bytes: from one huge page up a mapping of their
//  own (the kernel's zero pages: nothing is cleared twice), advised;
//  below, calloc's.  NULL when out of memory or count * size overflows.
//  Freed with zfed_huge_unmap(data, count, size), the same count and size.
void *zfed_huge_map(size_t count, size_t size);
void zfed_huge_unmap(void *data, size_t count, size_t size);

//  At least size bytes of malloc's (free, realloc), its contents
//  undefined; from one huge page up aligned, rounded up to whole huge
//  pages and advised.  *capacity: how many bytes it holds.  NULL when out
//  of memory.
void *zfed_huge_malloc(size_t size, size_t *capacity);

#endif
