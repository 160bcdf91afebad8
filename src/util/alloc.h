/*
 * alloc.h - the one allocation wrapper.
 *
 * Every heap allocation in gatehouse goes through these functions. They abort with a message
 * when memory runs out: a gateway that cannot allocate a few hundred bytes cannot serve the
 * request either, and checking every small allocation would double the error paths without
 * making the daemon more useful. jansson is pointed at the same functions (alloc_init), so its
 * trees are counted and fail the same way.
 */
#ifndef GATEHOUSE_UTIL_ALLOC_H
#define GATEHOUSE_UTIL_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Routes jansson's allocations through the wrappers above. Call once at start. */
void alloc_init(void);

#endif
