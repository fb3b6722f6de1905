/*  zfed_list - intrusive, circular, doubly linked lists (private header).

    The broker moves workers and requests between queues on every message;
    an intrusive link makes each move O(1) without allocating a node.  A
    list is a sentinel link whose next/prev point at itself when empty; an
    element's link points at itself when it is on no list, so removal is
    idempotent and membership is testable.
*/
#ifndef ZFED_LIST_H_INCLUDED
#define ZFED_LIST_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct zfed_link {
    struct zfed_link *prev;
    struct zfed_link *next;
} zfed_link_t;

#define zfed_container_of(pointer, type, member)                                                   \
    ((type *)((char *)(pointer)-offsetof(type, member)))

static inline void zfed_link_init(zfed_link_t *link)
{
    link->prev = link;
    link->next = link;
}

static inline bool zfed_link_linked(const zfed_link_t *link)
{
    return link->next != link;
}

static inline bool zfed_list_empty(const zfed_link_t *list)
{
    return list->next == list;
}

static inline void zfed_link_remove(zfed_link_t *link)
{
    link->prev->next = link->next;
    link->next->prev = link->prev;
    zfed_link_init(link);
}

static inline void zfed_list_push_back(zfed_link_t *list, zfed_link_t *link)
{
    zfed_link_remove(link);
    link->prev = list->prev;
    link->next = list;
    list->prev->next = link;
    list->prev = link;
}

static inline void zfed_list_push_front(zfed_link_t *list, zfed_link_t *link)
{
    zfed_link_remove(link);
    link->next = list->next;
    link->prev = list;
    list->next->prev = link;
    list->next = link;
}

//  First element's link, or NULL when empty.
static inline zfed_link_t *zfed_list_first(const zfed_link_t *list)
{
    return zfed_list_empty(list) ? NULL : list->next;
}

#endif
