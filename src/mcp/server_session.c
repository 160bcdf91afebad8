/*
 * server_session.c - the /mcp session table (contract in server.h, "sessions").
 *
 * One table for the process, behind one mutex: a client's requests may arrive on any worker
 * thread, and every one of them looks its session up, so the lock is held only for a hash
 * lookup and a copy of a few bytes. Sessions are chained in 1024 buckets keyed by their id.
 *
 * Expiry is lazy: a lookup of an idle session forgets it, and every minute (or when the table
 * is full) a creation sweeps every bucket. When the table is still full after a sweep, the
 * least recently used session is dropped: a client that comes back to a forgotten session
 * gets 404 and initializes again, which the transport foresees, whereas refusing new sessions
 * would lock every new client out.
 *
 * Ids are 128 bits from getrandom, in hex: the id is the only thing standing between one
 * client and another's session, so it must not be guessable.
 */
#include "mcp/server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/alloc.h"

#define BUCKETS 1024
#define DEFAULT_IDLE_S 3600.0
#define DEFAULT_MAX 10000
#define SWEEP_EVERY_S 60.0

typedef struct entry {
    struct entry *next; /* bucket chain */
    mcp_server_session_t s;
    double last_used;    /* monotonic seconds */
    uint64_t stream_gen; /* generation of the current GET stream; 0 = none yet */
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *buckets[BUCKETS];
static size_t count;
static double idle_s = DEFAULT_IDLE_S;
static size_t max_sessions = DEFAULT_MAX;
static double last_sweep;

static size_t bucket_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % BUCKETS;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void mcp_server_sessions_configure(double idle_timeout_s, size_t max)
{
    pthread_mutex_lock(&lock);
    idle_s = idle_timeout_s > 0 ? idle_timeout_s : DEFAULT_IDLE_S;
    max_sessions = max > 0 ? max : DEFAULT_MAX;
    pthread_mutex_unlock(&lock);
}

/* ---- under the lock ------------------------------------------------------------------------- */

/* The link pointing at the session with this id, or at the bucket's terminating NULL. */
static entry_t **find_link(const char *id)
{
    entry_t **link = &buckets[bucket_of(id)];
    while (*link != NULL && strcmp((*link)->s.id, id) != 0)
        link = &(*link)->next;
    return link;
}

static void unlink_free(entry_t **link)
{
    entry_t *e = *link;
    *link = e->next;
    free(e);
    count--;
}

static bool expired(const entry_t *e, double now)
{
    return now - e->last_used > idle_s;
}

static void sweep(double now)
{
    for (size_t b = 0; b < BUCKETS; b++) {
        entry_t **link = &buckets[b];
        while (*link != NULL) {
            if (expired(*link, now))
                unlink_free(link);
            else
                link = &(*link)->next;
        }
    }
    last_sweep = now;
}

static void drop_least_recent(void)
{
    entry_t **oldest = NULL;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (entry_t **link = &buckets[b]; *link != NULL; link = &(*link)->next) {
            if (oldest == NULL || (*link)->last_used < (*oldest)->last_used)
                oldest = link;
        }
    }
    if (oldest != NULL)
        unlink_free(oldest);
}

/* ---- the table ------------------------------------------------------------------------------ */

static int random_id(char *out)
{
    unsigned char raw[MCP_SERVER_SESSION_ID_LEN / 2];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int mcp_server_session_create(const char *version, const char *client, double now,
                              mcp_server_session_t *out)
{
    entry_t *e = xcalloc(1, sizeof(*e));
    if (random_id(e->s.id) != 0) {
        free(e);
        return -1;
    }
    copy_str(e->s.version, sizeof(e->s.version), version);
    copy_str(e->s.client, sizeof(e->s.client), client);
    e->last_used = now;

    pthread_mutex_lock(&lock);
    if (count >= max_sessions || now - last_sweep > SWEEP_EVERY_S)
        sweep(now);
    while (count >= max_sessions)
        drop_least_recent();
    entry_t **link = &buckets[bucket_of(e->s.id)];
    e->next = *link;
    *link = e;
    count++;
    if (out != NULL)
        *out = e->s;
    pthread_mutex_unlock(&lock);
    return 0;
}

bool mcp_server_session_touch(const char *id, double now, mcp_server_session_t *out)
{
    if (id == NULL || strlen(id) != MCP_SERVER_SESSION_ID_LEN)
        return false;
    pthread_mutex_lock(&lock);
    entry_t **link = find_link(id);
    bool found = *link != NULL;
    if (found && expired(*link, now)) {
        unlink_free(link);
        found = false;
    }
    if (found) {
        (*link)->last_used = now;
        if (out != NULL)
            *out = (*link)->s;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void mcp_server_session_mark_initialized(const char *id)
{
    if (id == NULL)
        return;
    pthread_mutex_lock(&lock);
    entry_t **link = find_link(id);
    if (*link != NULL)
        (*link)->s.initialized = true;
    pthread_mutex_unlock(&lock);
}

uint64_t mcp_server_session_claim_stream(const char *id)
{
    if (id == NULL)
        return 0;
    pthread_mutex_lock(&lock);
    entry_t **link = find_link(id);
    uint64_t gen = *link != NULL ? ++(*link)->stream_gen : 0;
    pthread_mutex_unlock(&lock);
    return gen;
}

bool mcp_server_session_stream_current(const char *id, uint64_t gen)
{
    if (id == NULL)
        return false;
    pthread_mutex_lock(&lock);
    entry_t **link = find_link(id);
    bool current = *link != NULL && (*link)->stream_gen == gen;
    pthread_mutex_unlock(&lock);
    return current;
}

bool mcp_server_session_delete(const char *id)
{
    if (id == NULL)
        return false;
    pthread_mutex_lock(&lock);
    entry_t **link = find_link(id);
    bool found = *link != NULL;
    if (found)
        unlink_free(link);
    pthread_mutex_unlock(&lock);
    return found;
}

size_t mcp_server_session_count(void)
{
    pthread_mutex_lock(&lock);
    size_t n = count;
    pthread_mutex_unlock(&lock);
    return n;
}

void mcp_server_sessions_clear(void)
{
    pthread_mutex_lock(&lock);
    for (size_t b = 0; b < BUCKETS; b++) {
        while (buckets[b] != NULL)
            unlink_free(&buckets[b]);
    }
    last_sweep = 0;
    pthread_mutex_unlock(&lock);
}
