/*
 * upstream.c - outbound HTTP for one worker: libcurl's multi socket interface on libevent.
 *
 * One upstream_pool per worker thread wraps one CURLM. curl tells us which sockets to watch
 * (on_curl_socket) and when to wake it up (on_curl_timer); libevent watches them and calls
 * pool_drive, which runs curl_multi_socket_action and then collects finished transfers from
 * curl_multi_info_read. Nothing here blocks and nothing is shared with other threads, so the
 * pool needs no locks. docs/internals/upstream.md draws the whole picture.
 *
 * Re-entrancy is the hard part. on_head and on_body run inside curl (from the header and write
 * functions, deep inside curl_multi_socket_action), where libcurl forbids removing or adding
 * easy handles. So while pool->in_curl is non-zero:
 *   - upstream_cancel only marks the call a zombie; the curl callbacks of a zombie fail, which
 *     makes curl stop the transfer, and pool_drive removes and recycles zombies as soon as
 *     curl_multi_socket_action has returned;
 *   - upstream_start queues the new call and adds it from a deferred event.
 * on_done always runs outside curl (from the info_read loop, the idle timer or the deferred
 * event), after the handle has left the multi, so anything may be called from it.
 *
 * Hot-path economy: a call struct and its easy handle, header buffer and idle timer are
 * recycled together (curl_easy_reset keeps nothing of the old request), so a steady stream of
 * calls allocates only curl's header list. Socket watchers are recycled the same way. The
 * multi keeps its connection cache, so keep-alive and HTTP/2 connections are reused.
 */
#include "http/upstream.h"

#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

/* Recycled calls are poisoned under AddressSanitizer, so a caller that keeps using a call after
 * on_done or upstream_cancel is caught even though the memory was not freed. */
#if defined(__SANITIZE_ADDRESS__)
#define UPSTREAM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UPSTREAM_ASAN 1
#endif
#endif
#ifdef UPSTREAM_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SPARE_CALLS_MAX 64       /* recycled calls kept per pool */
#define SPARE_HEADER_BYTES 16384 /* a header buffer bigger than this is not kept */
#define KEEPALIVE_IDLE_S 30L     /* TCP keepalive: first probe after this idle time */
#define KEEPALIVE_INTVL_S 15L    /* TCP keepalive: interval between probes */
#define MIN_SCRUB_LEN 4          /* shorter header values are not secrets worth scrubbing */
#define IDLE_CONNS_MAX 1024L     /* idle keep-alive connections a pool keeps for reuse */

/* ---- types ----------------------------------------------------------------------------------- */

typedef enum call_state {
    CALL_NEW,     /* being set up by upstream_start; on no list */
    CALL_PENDING, /* on pool->pending: waiting to be added, or to report a failed add */
    CALL_RUNNING, /* on pool->running: inside the multi */
    CALL_ZOMBIE,  /* on pool->zombies: cancelled inside curl, still inside the multi */
    CALL_DONE,    /* on no list: out of the multi, on_done is running */
    CALL_SPARE,   /* in pool->spare, waiting to be reused */
} call_state_t;

/* The final response's headers as "name: value" lines, built only when asked for (most calls
 * never are) and kept with the call, like its header buffer, for the next request. */
typedef struct header_lines {
    buf_t text;     /* "name: value\0" strings, back to back */
    const char **v; /* pointers into text, NULL-terminated; owned */
    size_t cap;     /* slots in v */
    bool built;     /* v describes the final response's complete headers */
} header_lines_t;

typedef struct call_list {
    upstream_call_t *head;
    upstream_call_t *tail;
} call_list_t;

struct upstream_call {
    upstream_pool_t *pool;
    CURL *easy; /* owned, recycled with the call */
    call_state_t state;
    upstream_callbacks_t cb;
    void *arg;
    struct curl_slist *req_headers; /* owned; curl reads it until the handle leaves the multi */
    buf_t resp_headers;             /* "name\0value\0" pairs of the final response */
    header_lines_t *lines;          /* owned, recycled; filled by upstream_call_headers */
    bool head_done;                 /* on_head ran (or was due) for the final response */
    bool aborted;                   /* on_head or on_body returned non-zero */
    CURLMcode add_rc;               /* PENDING: CURLM_OK = still to add, else why the add failed */
    struct event *idle_timer;       /* owned, recycled; armed only when idle_ms > 0 */
    long idle_ms;                   /* 0 = no idle timeout */
    struct timespec last_byte;      /* CLOCK_MONOTONIC time of the last header or body byte */
    upstream_call_t *prev;          /* links in the list that matches state */
    upstream_call_t *next;
    char errbuf[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER; scrubbed before it is reported */
};

/* One watched socket. curl hands it back to us through curl_multi_assign. */
typedef struct sock {
    upstream_pool_t *pool;
    struct event *ev;       /* owned; created on first use, re-assigned on reuse */
    struct sock *next_free; /* link in pool->free_socks */
    struct sock *next_all;  /* link in pool->all_socks */
} sock_t;

struct upstream_pool {
    struct event_base *base; /* the worker's loop; not owned */
    CURLM *multi;
    struct event *timer; /* the one timeout curl asks for */
    struct event *defer; /* runs queued adds and failed-add reports */
    call_list_t pending;
    call_list_t running;
    call_list_t zombies;
    size_t active;   /* calls started, not yet done or cancelled */
    int in_curl;     /* > 0 while curl_multi_socket_action runs */
    int in_callback; /* > 0 while a user callback runs */
    upstream_call_t *spare[SPARE_CALLS_MAX];
    size_t n_spare;
    sock_t *free_socks;
    sock_t *all_socks; /* every sock ever made, for pool_free */
};

/* ---- process-wide curl setup ---------------------------------------------------------------- */

/* curl_global_init must run once per process, before any other curl call, and must not race
 * with one. Rather than add a start-up function to the header, the first upstream_pool_new does
 * it; pthread_once makes workers that create their pools at the same time wait for it, and no
 * curl call can come before a pool exists. Nothing calls curl_global_cleanup: the process exit
 * does that work. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool curl_ready(void)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        log_crit(NULL, "upstream: curl_global_init failed: %s", curl_easy_strerror(curl_init_rc));
        return false;
    }
    return true;
}

/* ---- error names and curl codes ------------------------------------------------------------- */

const char *upstream_err_name(upstream_err_t err)
{
    switch (err) {
    case UPSTREAM_OK:
        return "ok";
    case UPSTREAM_ERR_TIMEOUT:
        return "timeout";
    case UPSTREAM_ERR_REFUSED:
        return "refused";
    case UPSTREAM_ERR_DNS:
        return "dns";
    case UPSTREAM_ERR_TLS:
        return "tls";
    case UPSTREAM_ERR_RESET:
        return "reset";
    case UPSTREAM_ERR_BAD_RESPONSE:
        return "bad_response";
    case UPSTREAM_ERR_ABORTED:
        return "aborted";
    case UPSTREAM_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

static bool is_tls_error(CURLcode code)
{
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return true;
    default:
        return false;
    }
}

/* True once curl has an address for the peer, i.e. the failure came from the far side. */
static bool call_reached_peer(const upstream_call_t *call)
{
    char *ip = NULL;
    return curl_easy_getinfo(call->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != NULL &&
           ip[0] != '\0';
}

static upstream_err_t err_from_curl(const upstream_call_t *call, CURLcode code)
{
    if (is_tls_error(code))
        return UPSTREAM_ERR_TLS;

    switch (code) {
    case CURLE_OK:
        return UPSTREAM_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return UPSTREAM_ERR_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_PROXY:
        return UPSTREAM_ERR_REFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return UPSTREAM_ERR_DNS;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2_STREAM:
        return UPSTREAM_ERR_RESET;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_BAD_CONTENT_ENCODING:
        return UPSTREAM_ERR_BAD_RESPONSE;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* The same code means "the URL's scheme is not allowed" (our setup) and "the server
         * answered HTTP/0.9 or garbage" (its reply); only the second one reached the peer. */
        return call_reached_peer(call) ? UPSTREAM_ERR_BAD_RESPONSE : UPSTREAM_ERR_INTERNAL;
    case CURLE_WRITE_ERROR:
        return call->aborted ? UPSTREAM_ERR_ABORTED : UPSTREAM_ERR_INTERNAL;
    case CURLE_ABORTED_BY_CALLBACK:
        return UPSTREAM_ERR_ABORTED;
    default:
        return UPSTREAM_ERR_INTERNAL;
    }
}

/* ---- call lists ------------------------------------------------------------------------------ */

static call_list_t *state_list(upstream_pool_t *pool, call_state_t state)
{
    switch (state) {
    case CALL_PENDING:
        return &pool->pending;
    case CALL_RUNNING:
        return &pool->running;
    case CALL_ZOMBIE:
        return &pool->zombies;
    default:
        return NULL;
    }
}

static void list_unlink(call_list_t *list, upstream_call_t *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        list->head = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    else
        list->tail = call->prev;
    call->prev = call->next = NULL;
}

static void list_append(call_list_t *list, upstream_call_t *call)
{
    call->prev = list->tail;
    call->next = NULL;
    if (list->tail != NULL)
        list->tail->next = call;
    else
        list->head = call;
    list->tail = call;
}

/* Moves the call to the list of its new state (or to none). */
static void call_set_state(upstream_call_t *call, call_state_t state)
{
    call_list_t *from = state_list(call->pool, call->state);
    call_list_t *to = state_list(call->pool, state);

    if (from != NULL)
        list_unlink(from, call);
    if (to != NULL)
        list_append(to, call);
    call->state = state;
}

/* ---- call allocation and recycling ---------------------------------------------------------- */

static void on_idle_timer(evutil_socket_t fd, short kind, void *arg);

static void call_destroy(upstream_call_t *call)
{
    if (call->easy != NULL)
        curl_easy_cleanup(call->easy);
    if (call->idle_timer != NULL)
        event_free(call->idle_timer);
    curl_slist_free_all(call->req_headers);
    buf_free(&call->resp_headers);
    buf_free(&call->lines->text);
    free(call->lines->v);
    free(call->lines);
    free(call);
}

static upstream_call_t *call_new(upstream_pool_t *pool)
{
    upstream_call_t *call = xcalloc(1, sizeof(*call));
    call->pool = pool;
    buf_init(&call->resp_headers);
    call->lines = xcalloc(1, sizeof(*call->lines));
    call->easy = curl_easy_init();
    call->idle_timer = evtimer_new(pool->base, on_idle_timer, call);
    if (call->easy == NULL || call->idle_timer == NULL) {
        log_crit(NULL, "upstream: cannot create an easy handle or a timer");
        call_destroy(call);
        return NULL;
    }
    return call;
}

/* A clean call: recycled when one is spare, else new. Everything but the owned resources is
 * zeroed, so no state of an earlier request leaks into this one. */
static upstream_call_t *call_get(upstream_pool_t *pool)
{
    if (pool->n_spare == 0)
        return call_new(pool);

    upstream_call_t *call = pool->spare[--pool->n_spare];
    UNPOISON(call, sizeof(*call));

    upstream_call_t keep = *call;
    memset(call, 0, sizeof(*call));
    call->pool = pool;
    call->easy = keep.easy;
    call->idle_timer = keep.idle_timer;
    call->resp_headers = keep.resp_headers;
    call->lines = keep.lines;
    call->lines->built = false;
    return call;
}

/* Takes a call that is out of the multi off every list and recycles or frees it. */
static void call_release(upstream_call_t *call)
{
    upstream_pool_t *pool = call->pool;

    call_set_state(call, CALL_SPARE);
    evtimer_del(call->idle_timer);
    curl_slist_free_all(call->req_headers);
    call->req_headers = NULL;

    if (pool->n_spare == SPARE_CALLS_MAX || call->resp_headers.cap > SPARE_HEADER_BYTES ||
        call->lines->text.cap > SPARE_HEADER_BYTES) {
        call_destroy(call);
        return;
    }

    /* Reset drops the options that point into memory we no longer own (body, header list),
     * while the connection cache stays with the multi. */
    curl_easy_reset(call->easy);
    buf_reset(&call->resp_headers);
    pool->spare[pool->n_spare++] = call;
    POISON(call, sizeof(*call));
}

/* ---- idle timer ------------------------------------------------------------------------------ */

/*
 * The idle timeout is our own libevent timer rather than CURLOPT_LOW_SPEED_TIME, which counts
 * in whole seconds. Resetting a timer on every write would cost a heap operation per piece of
 * a stream, so each byte only stamps last_byte; when the timer fires it re-arms itself for
 * whatever is left of the quiet period, and gives up only when the whole period was quiet.
 */
static void idle_touch(upstream_call_t *call)
{
    if (call->idle_ms > 0)
        clock_gettime(CLOCK_MONOTONIC, &call->last_byte);
}

static long idle_quiet_ms(const upstream_call_t *call)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - call->last_byte.tv_sec) * 1000 +
           (now.tv_nsec - call->last_byte.tv_nsec) / 1000000;
}

static void idle_arm(upstream_call_t *call, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (evtimer_add(call->idle_timer, &tv) != 0)
        log_crit(NULL, "upstream: cannot arm the idle timer; the call runs without it");
}

static void idle_start(upstream_call_t *call)
{
    if (call->idle_ms <= 0)
        return;

    idle_touch(call);
    idle_arm(call, call->idle_ms);
}

/* ---- finishing a call ------------------------------------------------------------------------ */

/* Replaces every occurrence of secret in msg with "***". */
static void scrub(char *msg, const char *secret, size_t len)
{
    if (len < MIN_SCRUB_LEN)
        return;

    char *hit;
    while ((hit = memmem(msg, strlen(msg), secret, len)) != NULL) {
        memcpy(hit, "***", 3);
        memmove(hit + 3, hit + len, strlen(hit + len) + 1);
    }
}

/* Scrubs a header value whole, and each of its words (the key in "Bearer sk-..."). */
static void scrub_value(char *msg, const char *value, size_t len)
{
    scrub(msg, value, len);

    size_t i = 0;
    while (i < len) {
        size_t word = strcspn(value + i, " \t,;");
        if (word > len - i)
            word = len - i;
        if (word < len)
            scrub(msg, value + i, word);
        i += word + 1;
    }
}

/*
 * curl's messages name hosts and ports, not header values, but a message is shown to clients
 * and written to logs, so make sure: every request header value (API keys travel there) and
 * the URL's query string (some providers take ?key=) are cut out of it.
 */
static void scrub_secrets(const upstream_call_t *call, char *msg)
{
    for (const struct curl_slist *h = call->req_headers; h != NULL; h = h->next) {
        const char *value = strchr(h->data, ':');
        if (value == NULL)
            continue;
        value += strspn(value + 1, " \t") + 1;
        size_t len = strlen(value);
        while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
            len--;
        scrub_value(msg, value, len);
    }

    char *url = NULL;
    if (curl_easy_getinfo(call->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || url == NULL)
        return;
    const char *query = strchr(url, '?');
    if (query != NULL)
        scrub(msg, query + 1, strcspn(query + 1, "#"));
}

static void result_set_message(upstream_result_t *res, const upstream_call_t *call,
                               const char *text)
{
    snprintf(res->message, sizeof(res->message), "%s", text);
    size_t len = strlen(res->message);
    while (len > 0 && (res->message[len - 1] == '\n' || res->message[len - 1] == '\r'))
        res->message[--len] = '\0';
    scrub_secrets(call, res->message);
}

static double info_seconds(CURL *easy, CURLINFO what)
{
    curl_off_t us = 0;
    if (curl_easy_getinfo(easy, what, &us) != CURLE_OK)
        return 0.0;
    return (double)us / 1e6;
}

static void result_fill(upstream_result_t *res, const upstream_call_t *call, upstream_err_t err)
{
    memset(res, 0, sizeof(*res));
    res->err = err;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &res->status);
    res->connect_s = info_seconds(call->easy, CURLINFO_CONNECT_TIME_T);
    res->first_byte_s = info_seconds(call->easy, CURLINFO_STARTTRANSFER_TIME_T);
    res->total_s = info_seconds(call->easy, CURLINFO_TOTAL_TIME_T);
}

/* Takes the call out of the multi, reports it once, then recycles it. Runs outside curl. */
static void call_complete(upstream_call_t *call, const upstream_result_t *res)
{
    upstream_pool_t *pool = call->pool;
    assert(pool->in_curl == 0);

    if (call->state == CALL_RUNNING)
        curl_multi_remove_handle(pool->multi, call->easy);
    call_set_state(call, CALL_DONE);
    evtimer_del(call->idle_timer);
    pool->active--;

    log_debug(NULL, "upstream: call done: %s, status %ld, %.3fs", upstream_err_name(res->err),
              res->status, res->total_s);

    /* upstream_cancel from inside on_done finds CALL_DONE and leaves the release to us. */
    if (call->cb.on_done != NULL) {
        pool->in_callback++;
        call->cb.on_done(call->arg, call, res);
        pool->in_callback--;
    }
    call_release(call);
}

static void call_finish_curl(upstream_call_t *call, CURLcode code)
{
    upstream_result_t res;
    result_fill(&res, call, err_from_curl(call, code));

    if (res.err == UPSTREAM_ERR_ABORTED)
        result_set_message(&res, call, "a callback stopped the transfer");
    else if (res.err != UPSTREAM_OK)
        result_set_message(&res, call,
                           call->errbuf[0] != '\0' ? call->errbuf : curl_easy_strerror(code));
    call_complete(call, &res);
}

static void call_finish_idle(upstream_call_t *call, long quiet_ms)
{
    upstream_result_t res;
    char text[96];

    result_fill(&res, call, UPSTREAM_ERR_TIMEOUT);
    snprintf(text, sizeof(text), "idle timeout: no data from upstream for %ld ms", quiet_ms);
    result_set_message(&res, call, text);
    call_complete(call, &res);
}

static void call_finish_add_failed(upstream_call_t *call)
{
    upstream_result_t res;
    char text[128];

    memset(&res, 0, sizeof(res));
    res.err = UPSTREAM_ERR_INTERNAL;
    snprintf(text, sizeof(text), "curl_multi_add_handle failed: %s",
             curl_multi_strerror(call->add_rc));
    result_set_message(&res, call, text);
    call_complete(call, &res);
}

static void on_idle_timer(evutil_socket_t fd, short kind, void *arg)
{
    upstream_call_t *call = arg;
    long quiet = idle_quiet_ms(call);

    if (quiet < call->idle_ms) {
        idle_arm(call, call->idle_ms - quiet);
        return;
    }
    call_finish_idle(call, quiet);
}

/* ---- driving curl ---------------------------------------------------------------------------- */

/* Removes and recycles the calls cancelled while curl was running. Removing a handle also
 * drops a DONE message curl may have queued for it, so zombies never reach on_done. */
static void pool_reap(upstream_pool_t *pool)
{
    upstream_call_t *call;
    while ((call = pool->zombies.head) != NULL) {
        curl_multi_remove_handle(pool->multi, call->easy);
        call_release(call);
    }
}

static void pool_collect(upstream_pool_t *pool)
{
    CURLMsg *msg;
    int left;

    /* on_done may start or cancel calls; curl_multi_info_read copes, as it pops one message
     * at a time from a queue that remove_handle keeps consistent. */
    while ((msg = curl_multi_info_read(pool->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;

        void *priv = NULL;
        CURLcode code = msg->data.result; /* msg dies with remove_handle: copy first */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        upstream_call_t *call = priv;
        if (call != NULL && call->state == CALL_RUNNING)
            call_finish_curl(call, code);
    }
}

static void pool_drive(upstream_pool_t *pool, curl_socket_t fd, int flags)
{
    int running = 0;

    pool->in_curl++;
    CURLMcode rc = curl_multi_socket_action(pool->multi, fd, flags, &running);
    pool->in_curl--;
    if (rc != CURLM_OK)
        log_crit(NULL, "upstream: curl_multi_socket_action failed: %s", curl_multi_strerror(rc));

    pool_reap(pool);

    pool_collect(pool);
}

static void on_socket_event(evutil_socket_t fd, short kind, void *arg)
{
    sock_t *s = arg;
    int flags = 0;

    if (kind & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (kind & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    /* s may go back to the free list while curl runs; it is not touched after this. */
    pool_drive(s->pool, fd, flags);
}

static void on_timer(evutil_socket_t fd, short kind, void *arg)
{
    pool_drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

static sock_t *sock_get(upstream_pool_t *pool)
{
    sock_t *s = pool->free_socks;
    if (s != NULL) {
        pool->free_socks = s->next_free;
        return s;
    }

    s = xcalloc(1, sizeof(*s));
    s->pool = pool;
    s->next_all = pool->all_socks;
    pool->all_socks = s;
    return s;
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants, or stop watching it. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    upstream_pool_t *pool = userp;
    sock_t *s = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_del(s->ev);
            s->next_free = pool->free_socks;
            pool->free_socks = s;
        }
        return 0;
    }

    if (s == NULL) {
        s = sock_get(pool);
        curl_multi_assign(pool->multi, fd, s);
    }

    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;

    /* An event may not be re-assigned while pending, so delete first. A sock from the free
     * list may be the one whose callback is running right now; that is fine, as libevent no
     * longer touches a persistent event once its callback has started. */
    if (s->ev == NULL) {
        s->ev = event_new(pool->base, fd, kind, on_socket_event, s);
    } else {
        event_del(s->ev);
        event_assign(s->ev, pool->base, fd, kind, on_socket_event, s);
    }
    if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
        log_crit(NULL, "upstream: cannot watch socket %d", (int)fd);
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants one wake-up after timeout_ms (-1 = none). It must not be
 * driven from here, so even a zero timeout goes through the loop. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    upstream_pool_t *pool = userp;

    if (timeout_ms < 0) {
        evtimer_del(pool->timer);
        return 0;
    }

    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (evtimer_add(pool->timer, &tv) != 0) {
        log_crit(NULL, "upstream: cannot arm the curl timer");
        return -1;
    }
    return 0;
}

/* ---- curl callbacks into the call ------------------------------------------------------------ */

static int call_notify_head(upstream_call_t *call, long status)
{
    upstream_pool_t *pool = call->pool;
    int rc = 0;

    call->head_done = true;
    if (call->cb.on_head != NULL) {
        pool->in_callback++;
        rc = call->cb.on_head(call->arg, call, status);
        pool->in_callback--;
    }

    if (call->state != CALL_RUNNING)
        return -1; /* cancelled from inside on_head */
    if (rc != 0) {
        call->aborted = true;
        return -1;
    }
    return 0;
}

/* Stores one "Name: value" line: the name lowercased, the value trimmed. A line that starts
 * with white space continues the previous value (obsolete folding). */
static void headers_store(upstream_call_t *call, const char *line, size_t len)
{
    buf_t *b = &call->resp_headers;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
        len--;

    if (line[0] == ' ' || line[0] == '\t') {
        size_t skip = 0;
        while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
            skip++;
        if (b->len == 0 || skip == len)
            return;
        b->len--; /* reopen the previous value: drop its NUL */
        buf_appendc(b, ' ');
        buf_append(b, line + skip, len - skip);
        buf_appendc(b, '\0');
        return;
    }

    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return;
    size_t name_len = (size_t)(colon - line);
    while (name_len > 0 && (line[name_len - 1] == ' ' || line[name_len - 1] == '\t'))
        name_len--;
    const char *value = colon + 1;
    while (value < line + len && (*value == ' ' || *value == '\t'))
        value++;

    size_t start = b->len;
    buf_append(b, line, name_len);
    for (size_t i = start; i < b->len; i++)
        b->data[i] = (char)tolower((unsigned char)b->data[i]);
    buf_appendc(b, '\0');
    buf_append(b, value, (size_t)(line + len - value));
    buf_appendc(b, '\0');
}

static bool is_blank_line(const char *line, size_t len)
{
    return (len == 2 && line[0] == '\r' && line[1] == '\n') || (len == 1 && line[0] == '\n');
}

/* The blank line after a header block: either an interim 1xx response ends (the real one
 * follows, so forget its headers) or the final response's head is complete. */
static int headers_end(upstream_call_t *call)
{
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);

    if (status >= 100 && status < 200) {
        buf_reset(&call->resp_headers);
        return 0;
    }
    return call_notify_head(call, status);
}

/* CURLOPT_HEADERFUNCTION: one call per header line, status lines and blank lines included. */
static size_t on_curl_header(char *line, size_t size, size_t n, void *arg)
{
    upstream_call_t *call = arg;
    size_t len = size * n;

    if (call->state != CALL_RUNNING)
        return 0; /* cancelled: any short count makes curl stop */

    idle_touch(call);

    if (call->head_done || len == 0)
        return len; /* trailers of a chunked body are not kept */

    if (is_blank_line(line, len))
        return headers_end(call) == 0 ? len : 0;

    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        buf_reset(&call->resp_headers); /* a new response starts */
        return len;
    }

    headers_store(call, line, len);
    return len;
}

/* CURLOPT_WRITEFUNCTION: body bytes, de-chunked and decoded by curl. */
static size_t on_curl_write(char *data, size_t size, size_t n, void *arg)
{
    upstream_call_t *call = arg;
    upstream_pool_t *pool = call->pool;
    size_t len = size * n;

    if (call->state != CALL_RUNNING)
        return CURL_WRITEFUNC_ERROR;

    idle_touch(call);

    /* Body without a seen end of headers should not happen; keep on_head-before-on_body. */
    if (!call->head_done) {
        long status = 0;
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (call_notify_head(call, status) != 0)
            return CURL_WRITEFUNC_ERROR;
    }

    if (call->cb.on_body == NULL)
        return len;

    pool->in_callback++;
    int rc = call->cb.on_body(call->arg, call, data, len);
    pool->in_callback--;

    if (call->state != CALL_RUNNING)
        return CURL_WRITEFUNC_ERROR; /* cancelled from inside on_body */
    if (rc != 0) {
        call->aborted = true;
        return CURL_WRITEFUNC_ERROR;
    }
    return len;
}

/* ---- request setup --------------------------------------------------------------------------- */

static bool slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *grown = curl_slist_append(*list, line);
    if (grown == NULL)
        return false;
    *list = grown;
    return true;
}

/* The caller's headers, plus two removals when there is a body: "Expect:" (no 100-continue
 * round trip before the body) and "Content-Type:" unless the caller set one (curl would
 * otherwise claim x-www-form-urlencoded). */
static CURLcode setup_headers(upstream_call_t *call, const upstream_request_t *req, bool has_body)
{
    struct curl_slist *list = NULL;
    bool has_type = false;

    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        if (strncasecmp(*h, "content-type:", 13) == 0)
            has_type = true;
        if (!slist_add(&list, *h))
            goto oom;
    }

    if (has_body && !slist_add(&list, "Expect:"))
        goto oom;
    if (has_body && !has_type && !slist_add(&list, "Content-Type:"))
        goto oom;

    call->req_headers = list;
    return curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, list);

oom:
    curl_slist_free_all(list);
    return CURLE_OUT_OF_MEMORY;
}

#define SETOPT(easy, opt, val)                                                                     \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(easy, opt, val);                                                 \
    } while (0)

static CURLcode setup_method(CURL *easy, const upstream_request_t *req, bool has_body)
{
    const char *method = req->method != NULL ? req->method : "GET";
    CURLcode rc = CURLE_OK;

    if (strcmp(method, "HEAD") == 0) {
        SETOPT(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        SETOPT(easy, CURLOPT_POST, 1L);
    } else if (strcmp(method, "GET") != 0 || has_body) {
        /* Also "GET" with a body: POSTFIELDS alone would turn it into a POST. */
        SETOPT(easy, CURLOPT_CUSTOMREQUEST, method);
    }

    if (has_body) {
        /* The size goes first, so curl never takes the body for a C string. */
        SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(easy, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
    }
    return rc;
}

static CURLcode setup_transfer(upstream_call_t *call, const upstream_request_t *req)
{
    CURL *easy = call->easy;
    CURLcode rc = CURLE_OK;

    SETOPT(easy, CURLOPT_URL, req->url);
    SETOPT(easy, CURLOPT_PRIVATE, (void *)call);
    SETOPT(easy, CURLOPT_ERRORBUFFER, call->errbuf);
    SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
    SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(easy, CURLOPT_HEADERFUNCTION, on_curl_header);
    SETOPT(easy, CURLOPT_HEADERDATA, (void *)call);
    SETOPT(easy, CURLOPT_WRITEFUNCTION, on_curl_write);
    SETOPT(easy, CURLOPT_WRITEDATA, (void *)call);
    SETOPT(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    /* "" offers every encoding curl can decode; curl decodes before the write function, so
     * on_body always sees plain bytes. */
    SETOPT(easy, CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(easy, CURLOPT_TCP_NODELAY, 1L);
    SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(easy, CURLOPT_TCP_KEEPIDLE, KEEPALIVE_IDLE_S);
    SETOPT(easy, CURLOPT_TCP_KEEPINTVL, KEEPALIVE_INTVL_S);
    /* Over TLS, a call waits for a connection still being set up to say (by ALPN, at the
     * handshake) whether it multiplexes, instead of opening a second TLS connection to the same
     * provider. Never on http://: there curl learns "HTTP/1.1, no multiplexing" only from the
     * first response, so every call would queue behind a slow first one. */
    SETOPT(easy, CURLOPT_PIPEWAIT, strncasecmp(req->url, "https:", 6) == 0 ? 1L : 0L);
    SETOPT(easy, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 0L);
    if (req->connect_timeout_ms > 0)
        SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    if (rc != CURLE_OK)
        return rc;

    /* HTTP/2 where TLS can negotiate it, HTTP/1.1 on http://. A curl without HTTP/2 refuses
     * the option; HTTP/1.1 then still works. */
    if (curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) != CURLE_OK)
        log_debug(NULL, "upstream: curl lacks HTTP/2, using HTTP/1.1");
    return CURLE_OK;
}

#undef SETOPT

static CURLcode call_setup(upstream_call_t *call, const upstream_request_t *req)
{
    bool has_body = req->body != NULL || (req->method != NULL && strcmp(req->method, "POST") == 0);

    CURLcode rc = setup_transfer(call, req);
    if (rc == CURLE_OK)
        rc = setup_method(call->easy, req, has_body);
    if (rc == CURLE_OK)
        rc = setup_headers(call, req, has_body);
    return rc;
}

/* ---- starting and cancelling ----------------------------------------------------------------- */

static void pool_defer(upstream_pool_t *pool)
{
    event_active(pool->defer, EV_TIMEOUT, 0);
}

/* Hands the call to the multi. A failed add is reported from the deferred event, so that
 * on_done never runs inside upstream_start. */
static void call_add(upstream_call_t *call)
{
    upstream_pool_t *pool = call->pool;

    CURLMcode rc = curl_multi_add_handle(pool->multi, call->easy);
    if (rc != CURLM_OK) {
        call->add_rc = rc;
        call_set_state(call, CALL_PENDING);
        pool_defer(pool);
        return;
    }
    call_set_state(call, CALL_RUNNING);
    idle_start(call);
}

/* The deferred event: adds the calls started inside curl and reports failed adds. Each pass
 * takes the head afresh, since on_done may cancel other pending calls. */
static void on_defer(evutil_socket_t fd, short kind, void *arg)
{
    upstream_pool_t *pool = arg;
    upstream_call_t *call;

    while ((call = pool->pending.head) != NULL) {
        if (call->add_rc == CURLM_OK)
            call_add(call); /* leaves the list, or comes back with add_rc set */
        else
            call_finish_add_failed(call);
    }
}

upstream_call_t *upstream_start(upstream_pool_t *pool, const upstream_request_t *req,
                                const upstream_callbacks_t *cb, void *arg)
{
    assert(pool != NULL && req != NULL && req->url != NULL && cb != NULL);

    upstream_call_t *call = call_get(pool);
    if (call == NULL)
        return NULL;

    call->state = CALL_NEW;
    call->cb = *cb;
    call->arg = arg;
    call->idle_ms = req->idle_timeout_ms;

    CURLcode rc = call_setup(call, req);
    if (rc != CURLE_OK) {
        log_crit(NULL, "upstream: cannot set up the request: %s", curl_easy_strerror(rc));
        call_release(call);
        return NULL;
    }

    pool->active++;
    if (pool->in_curl > 0) {
        call_set_state(call, CALL_PENDING); /* curl forbids add_handle from its callbacks */
        pool_defer(pool);
        return call;
    }
    call_add(call);
    return call;
}

void upstream_cancel(upstream_call_t *call)
{
    if (call == NULL)
        return;

    upstream_pool_t *pool = call->pool;
    switch (call->state) {
    case CALL_PENDING:
        pool->active--;
        call_release(call);
        return;
    case CALL_RUNNING:
        pool->active--;
        if (pool->in_curl > 0) {
            /* Inside curl: the handle may not leave the multi yet. Its callbacks now fail and
             * pool_drive reaps it when curl returns. */
            evtimer_del(call->idle_timer);
            call_set_state(call, CALL_ZOMBIE);
            return;
        }
        curl_multi_remove_handle(pool->multi, call->easy);
        call_release(call);
        return;
    case CALL_DONE:   /* from inside its own on_done: call_complete releases it */
    case CALL_ZOMBIE: /* already cancelled */
        return;
    case CALL_NEW:
    case CALL_SPARE:
        break;
    }
    log_crit(NULL, "upstream: cancel of a call that is not running (state %d)", (int)call->state);
    assert(!"upstream_cancel on a dead call");
}

const char *upstream_call_header(const upstream_call_t *call, const char *name)
{
    const char *p = call->resp_headers.data;
    const char *end = p + call->resp_headers.len;

    while (p != NULL && p < end) {
        const char *value = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

/* The lines are built from resp_headers, which is final once the head is done; before that
 * they are rebuilt on every call, since an interim response or more header lines may follow. */
const char *const *upstream_call_headers(const upstream_call_t *call)
{
    header_lines_t *hl = call->lines;
    if (hl->built)
        return hl->v;

    buf_reset(&hl->text);
    size_t n = 0;
    const char *p = call->resp_headers.data;
    const char *end = p + call->resp_headers.len;
    while (p != NULL && p < end) {
        const char *value = p + strlen(p) + 1;
        buf_appendf(&hl->text, "%s: %s", p, value);
        buf_appendc(&hl->text, '\0');
        n++;
        p = value + strlen(value) + 1;
    }

    if (n + 1 > hl->cap) {
        hl->cap = n + 1;
        hl->v = xrealloc(hl->v, hl->cap * sizeof(*hl->v));
    }
    const char *line = hl->text.data;
    for (size_t i = 0; i < n; i++) {
        hl->v[i] = line;
        line += strlen(line) + 1;
    }
    hl->v[n] = NULL;
    hl->built = call->head_done;
    return hl->v;
}

/* ---- the pool -------------------------------------------------------------------------------- */

static bool pool_setup_multi(upstream_pool_t *pool)
{
    CURLM *m = pool->multi;
    CURLMcode rc = CURLM_OK;

    rc |= curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    rc |= curl_multi_setopt(m, CURLMOPT_SOCKETDATA, (void *)pool);
    rc |= curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    rc |= curl_multi_setopt(m, CURLMOPT_TIMERDATA, (void *)pool);
    /* No cap per host: a busy provider gets as many connections as there are calls, and
     * HTTP/2 multiplexes them where it can. */
    rc |= curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    /* curl's default cache holds 4 idle connections per transfer in progress; when a burst
     * ends and few transfers are left, it closes the excess, and the next burst opens them
     * again (5% of calls paid a new TCP connection under a steady 32-client load). A fixed
     * size keeps every connection a steady load needs; curl still closes those idle for
     * longer than CURLOPT_MAXAGE_CONN (118 s). */
    rc |= curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, IDLE_CONNS_MAX);
    rc |= curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return rc == CURLM_OK;
}

upstream_pool_t *upstream_pool_new(struct event_base *base)
{
    assert(base != NULL);
    if (!curl_ready())
        return NULL;

    upstream_pool_t *pool = xcalloc(1, sizeof(*pool));
    pool->base = base;
    pool->multi = curl_multi_init();
    pool->timer = evtimer_new(base, on_timer, pool);
    pool->defer = event_new(base, -1, 0, on_defer, pool);

    if (pool->multi == NULL || pool->timer == NULL || pool->defer == NULL ||
        !pool_setup_multi(pool)) {
        log_crit(NULL, "upstream: cannot create the curl multi handle or its events");
        upstream_pool_free(pool);
        return NULL;
    }
    return pool;
}

static void pool_cancel_list(call_list_t *list)
{
    while (list->head != NULL)
        upstream_cancel(list->head);
}

void upstream_pool_free(upstream_pool_t *pool)
{
    if (pool == NULL)
        return;
    assert(pool->in_curl == 0 && pool->in_callback == 0); /* not from inside a callback */

    pool_cancel_list(&pool->pending);
    pool_cancel_list(&pool->running);
    pool_reap(pool);

    /* The multi goes first: closing its cached connections may still call on_curl_socket,
     * and its easy handles must be out of it before they are cleaned up. */
    if (pool->multi != NULL)
        curl_multi_cleanup(pool->multi);

    for (size_t i = 0; i < pool->n_spare; i++) {
        UNPOISON(pool->spare[i], sizeof(*pool->spare[i]));
        call_destroy(pool->spare[i]);
    }

    while (pool->all_socks != NULL) {
        sock_t *s = pool->all_socks;
        pool->all_socks = s->next_all;
        if (s->ev != NULL)
            event_free(s->ev);
        free(s);
    }

    if (pool->timer != NULL)
        event_free(pool->timer);
    if (pool->defer != NULL)
        event_free(pool->defer);
    free(pool);
}

size_t upstream_pool_active(const upstream_pool_t *pool)
{
    return pool->active;
}
