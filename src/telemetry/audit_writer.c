/*
 * audit_writer.c - the audit trail's queue, writer thread and files (contract in audit.h).
 *
 * Worker threads call audit_submit, which copies the exchange and appends it to a bounded queue
 * under a mutex held for a few pointer moves; it never waits for the disk, and it signals the
 * writer only when the writer sleeps on an empty queue or a batch is full. One writer thread
 * takes the whole queue at once, at most every 50 ms unless 512 exchanges or a megabyte of
 * bodies wait, turns each entry into its line (audit_record.c), chains it (seq + 1, prev =
 * SHA-256 of the previous line) and writes the lines in pieces of about a megabyte with
 * write(2). It fsyncs at most every 100 ms, and always before it stops.
 *
 * The chain state (last seq, last hash) lives only in this thread, so nothing else can
 * interleave a record. A piece that fails to write is cut off the file again (ftruncate) and the
 * chain state rolls back to before it, so the file never keeps half a piece; when even the cut
 * fails, the file is closed and the next batch re-reads the chain from disk, exactly as a start
 * after a crash does. Lost exchanges (queue full, disk error) are counted in the metrics and,
 * once writing works again, told in a record of kind "gap", so the trail itself says that it is
 * incomplete.
 *
 * Files: <data_dir>/audit/audit-YYYYMMDD-NNNNNN.jsonl, NNNNNN counting up across days. A new
 * file starts when the next line would take the current one past 64 MiB, or on a new UTC day.
 * A lock file (flock) keeps two processes from writing one chain. docs/audit.md tells the rest,
 * including what happens after a crash (chain_open).
 */
#include "telemetry/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "telemetry/audit_internal.h"
#include "telemetry/metrics.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define PIECE_BYTES (1024 * 1024) /* lines are written in pieces of about this size */
#define FSYNC_INTERVAL_NS 100000000L
#define BATCH_INTERVAL_NS 50000000L /* the writer takes the queue at most this often... */
#define BATCH_ENTRIES 512           /* ...unless this many exchanges (or a piece) wait */
#define ERROR_LOG_INTERVAL_S 60
#define TAIL_BLOCK 65536 /* bytes read at a time when looking for the last line */

/* The file being appended to and where the chain stands. Writer thread only (and audit_start
 * and audit_stop, before and after it runs). */
typedef struct chain {
    char *dir;                 /* <data_dir>/audit; owned */
    int lock_fd;               /* flock on <dir>/.lock; -1 when not held */
    int fd;                    /* the current file; -1 while closed */
    unsigned long number;      /* its number in the name */
    char day[9];               /* its UTC day, YYYYMMDD */
    off_t size;                /* its length */
    uint64_t seq;              /* seq of the last record written; 0 before the first ever */
    char prev[AUDIT_HASH_HEX]; /* SHA-256 of that record's line; 64 zeros before the first */
    bool dirty;                /* written since the last fsync */
    struct timespec synced;    /* CLOCK_MONOTONIC time of the last fsync */
} chain_t;

/* Lines not yet written, and the chain state to go back to if writing them fails. */
typedef struct piece {
    buf_t text;
    size_t exchanges; /* exchanges among the lines */
    uint64_t gap;     /* exchanges a gap record among the lines speaks for */
    uint64_t seq0;    /* chain.seq before the first line */
    char prev0[AUDIT_HASH_HEX];
} piece_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* the writer waits here for entries, stop, or an fsync due */
    audit_entry_t *head; /* the queue, oldest first; owned */
    audit_entry_t *tail;
    size_t n;                    /* entries queued */
    size_t bytes;                /* body bytes queued */
    uint64_t dropped;            /* exchanges audit_submit refused since the writer last looked */
    struct timespec full_logged; /* when "queue full" was last logged (under mu) */
    atomic_bool running;         /* audit_submit accepts entries */
    bool stopping;
    bool idle;                /* the writer waits for a first entry, without a deadline */
    struct timespec batch_at; /* writer: CLOCK_MONOTONIC time it last took the queue */
    pthread_t thread;
    chain_t chain;
    uint64_t unrecorded;          /* writer: lost exchanges not yet told in a gap record */
    struct timespec error_logged; /* writer: when a disk error was last logged */
    unsigned long errors_unlogged;
    buf_t line;        /* writer: a line set aside while its file rotates (chain_append) */
    buf_t piece_buf;   /* writer: the text of a batch's piece, kept from batch to batch */
    char batch_day[9]; /* writer: UTC day of the batch being written */
    long file_max;     /* rotation size; tests make it small */
    size_t queue_max;
} g_audit = {.mu = PTHREAD_MUTEX_INITIALIZER,
             .file_max = AUDIT_FILE_MAX_BYTES,
             .queue_max = AUDIT_QUEUE_MAX_ENTRIES};

void audit_limits_for_tests(long file_max_bytes, size_t queue_max_entries)
{
    g_audit.file_max = file_max_bytes > 0 ? file_max_bytes : AUDIT_FILE_MAX_BYTES;
    g_audit.queue_max = queue_max_entries > 0 ? queue_max_entries : AUDIT_QUEUE_MAX_ENTRIES;
}

/* ---- small helpers --------------------------------------------------------------------------- */

static double elapsed_s(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* True at most once a minute per clock; the first time always. */
static bool log_due(struct timespec *last)
{
    if (last->tv_sec != 0 && elapsed_s(last) < ERROR_LOG_INTERVAL_S)
        return false;
    clock_gettime(CLOCK_MONOTONIC, last);
    return true;
}

/* Disk trouble is logged at most once a minute, with how many errors were not logged. */
static void disk_error(const char *what, const char *path, int err)
{
    if (!log_due(&g_audit.error_logged)) {
        g_audit.errors_unlogged++;
        return;
    }
    log_error(NULL,
              "audit: %s %s: %s; exchanges are dropped and counted (%lu more errors since"
              " the last message)",
              what, path, strerror(err), g_audit.errors_unlogged);
    g_audit.errors_unlogged = 0;
}

static void today(char day[9])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, 9, "%Y%m%d", &tm);
}

static char *path_join(const char *dir, const char *name)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, "%s/%s", dir, name);
    return buf_release(&b);
}

/* mkdir -p, private to the owner: the trail holds prompts and answers. */
static int mkdir_p(const char *path)
{
    char *copy = xstrdup(path);
    int rc = 0;
    for (char *p = copy + 1; rc == 0; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST)
            rc = -1;
        *p = c;
        if (c == '\0')
            break;
    }
    free(copy);
    return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A new file's name must reach the disk too, or a crash could lose the whole file. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fsync(fd) != 0)
        disk_error("cannot fsync", dir, errno);
    close(fd);
}

/* ---- files ----------------------------------------------------------------------------------- */

static void chain_sync(chain_t *c)
{
    if (c->fd < 0 || !c->dirty)
        return;
    if (fdatasync(c->fd) != 0)
        disk_error("cannot fsync", c->dir, errno);
    c->dirty = false;
    clock_gettime(CLOCK_MONOTONIC, &c->synced);
}

static void chain_close(chain_t *c)
{
    if (c->fd < 0)
        return;
    chain_sync(c);
    close(c->fd);
    c->fd = -1;
}

/* Opens file `number` of `day` for appending, creating it when asked. */
static int chain_use_file(chain_t *c, unsigned long number, const char *day, bool create)
{
    char name[64];
    snprintf(name, sizeof(name), "audit-%.8s-%06lu.jsonl", day, number);
    char *path = path_join(c->dir, name);

    int flags = O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
    int fd = open(path, flags, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        disk_error(create ? "cannot create" : "cannot open", path, errno);
        if (fd >= 0)
            close(fd);
        free(path);
        return -1;
    }
    if (create)
        sync_dir(c->dir);

    chain_close(c);
    c->fd = fd;
    c->number = number;
    snprintf(c->day, sizeof(c->day), "%.8s", day);
    c->size = st.st_size;
    free(path);
    return 0;
}

static int chain_rotate(chain_t *c)
{
    char day[9];
    today(day);
    return chain_use_file(c, c->number + 1, day, true);
}

/* ---- the tail of the chain after a restart --------------------------------------------------- */

/* Offset of the last '\n' before `before`, or -1 when there is none. */
static off_t find_newline(int fd, off_t before)
{
    char block[TAIL_BLOCK];
    while (before > 0) {
        off_t from = before > TAIL_BLOCK ? before - TAIL_BLOCK : 0;
        ssize_t n = pread(fd, block, (size_t)(before - from), from);
        if (n != (ssize_t)(before - from))
            return -2;
        for (ssize_t i = n; i > 0; i--) {
            if (block[i - 1] == '\n')
                return from + i - 1;
        }
        before = from;
    }
    return -1;
}

static char *read_range(int fd, off_t from, off_t to)
{
    size_t len = (size_t)(to - from);
    char *p = xmalloc(len + 1);
    if (pread(fd, p, len, from) != (ssize_t)len) {
        free(p);
        return NULL;
    }
    p[len] = '\0';
    return p;
}

/* A crash can leave the newest file ending in part of a piece: bytes after the last newline.
 * They are cut, and what was cut (length and hash) goes into a "recovery" record, so the cut is
 * visible in the trail itself. Returns the file's length after the cut, or -1. */
static off_t cut_torn_tail(int fd, const char *name, off_t size, buf_t *notes)
{
    off_t nl = find_newline(fd, size);
    if (nl == -2)
        return -1;
    off_t keep = nl + 1;

    char *torn = read_range(fd, keep, size);
    if (torn == NULL)
        return -1;
    char hex[AUDIT_HASH_HEX];
    audit_sha256_hex(torn, (size_t)(size - keep), hex);
    free(torn);

    if (ftruncate(fd, keep) != 0 || fsync(fd) != 0)
        return -1;
    log_warn(NULL,
             "audit: %s ended in %lld bytes of an unfinished record (a crash while"
             " writing); cut them, the chain continues from the last complete record",
             name, (long long)(size - keep));
    buf_appendf(notes,
                "%scut %lld bytes of an unfinished record (sha256 %s) from the end of %s"
                " at start-up",
                notes->len ? "; " : "", (long long)(size - keep), hex, name);
    return keep;
}

/* Takes seq and hash from the record line; false when it is not one of ours. */
static bool chain_take_line(chain_t *c, const char *line, size_t len)
{
    json_t *o = json_loadb(line, len, 0, NULL);
    json_t *seq = json_object_get(o, "seq");
    const char *prev = json_string_value(json_object_get(o, "prev"));
    bool ok = json_is_integer(seq) && json_integer_value(seq) > 0 && prev != NULL &&
              strlen(prev) == AUDIT_HASH_HEX - 1;
    if (ok) {
        c->seq = (uint64_t)json_integer_value(seq);
        audit_sha256_hex(line, len, c->prev);
    }
    json_decref(o);
    return ok;
}

/* Finds the last complete record of one file. Returns 1 when found, 0 when the file holds none,
 * -1 when it cannot be read or its last record is damaged (not a crash: refuse to go on). */
static int chain_read_tail(chain_t *c, const char *name, buf_t *notes)
{
    char *path = path_join(c->dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    int rc = -1;
    if (fd < 0 || fstat(fd, &st) != 0) {
        log_crit(NULL, "audit: cannot open %s: %s", path, strerror(errno));
        goto out;
    }

    off_t end = st.st_size;
    char last = '\n';
    if (end > 0 && pread(fd, &last, 1, end - 1) != 1)
        goto io_error;
    if (last != '\n' && (end = cut_torn_tail(fd, name, end, notes)) < 0)
        goto io_error;
    if (end == 0) {
        rc = 0;
        goto out;
    }

    off_t start = find_newline(fd, end - 1) + 1;
    char *line = start >= 0 ? read_range(fd, start, end - 1) : NULL;
    if (line == NULL)
        goto io_error;
    rc = chain_take_line(c, line, (size_t)(end - 1 - start)) ? 1 : -1;
    free(line);
    if (rc < 0)
        log_crit(NULL,
                 "audit: the last line of %s is not an audit record, so the chain cannot"
                 " continue; run `gatehouse audit verify %s` to see what is wrong, and move the"
                 " directory aside to start a new chain",
                 path, c->dir);
    goto out;

io_error:
    log_crit(NULL, "audit: cannot read or repair %s: %s", path, strerror(errno));
    rc = -1;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int chain_lock(chain_t *c)
{
    if (c->lock_fd >= 0)
        return 0;

    char *path = path_join(c->dir, ".lock");
    c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lock_fd < 0 || flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_crit(NULL,
                 "audit: cannot lock %s (%s); is another gatehouse writing to this data"
                 " directory?",
                 path, strerror(errno));
        if (c->lock_fd >= 0)
            close(c->lock_fd);
        c->lock_fd = -1;
        free(path);
        return -1;
    }
    free(path);
    return 0;
}

/* What became of a record handed to chain_append. */
typedef enum append_rc {
    APPEND_OK = 0,
    APPEND_BAD_ENTRY = -1, /* could not be encoded: this record is lost, the next may go on */
    APPEND_DISK = -2,      /* a write or a rotation failed: stop for this batch */
} append_rc_t;

static int piece_flush(chain_t *c, piece_t *p);
static append_rc_t chain_append(chain_t *c, piece_t *p, const audit_entry_t *e);
static void piece_begin(piece_t *p, const chain_t *c);

/* Finds where the chain stands on disk (newest file first, back to the newest one that holds a
 * record) and opens the newest file for appending. Used at start, and again after a write
 * failure left the file in a state we could not repair. */
static int chain_open(chain_t *c)
{
    audit_file_t *files = NULL;
    size_t n = 0;
    if (mkdir_p(c->dir) != 0 || chain_lock(c) != 0 || audit_files_list(c->dir, &files, &n) != 0) {
        log_crit(NULL, "audit: cannot use %s: %s", c->dir, strerror(errno));
        return -1;
    }

    buf_t notes = BUF_INIT;
    int rc = 0;
    c->seq = 0;
    memset(c->prev, '0', AUDIT_HASH_HEX - 1);
    c->prev[AUDIT_HASH_HEX - 1] = '\0';
    for (size_t i = n; i > 0 && rc == 0; i--)
        rc = chain_read_tail(c, files[i - 1].name, &notes);

    char day[9];
    today(day);
    memcpy(g_audit.batch_day, day, sizeof(day)); /* for the recovery note below */
    if (rc >= 0)
        rc = n > 0 ? chain_use_file(c, files[n - 1].number, files[n - 1].name + 6, false)
                   : chain_use_file(c, 1, day, true);

    if (rc >= 0 && notes.len > 0) {
        audit_entry_t *note = audit_entry_note("recovery", buf_cstr(&notes));
        piece_t p = {.text = BUF_INIT};
        piece_begin(&p, c);
        rc = chain_append(c, &p, note) == APPEND_OK && piece_flush(c, &p) == 0 ? 0 : -1;
        buf_free(&p.text);
        audit_entry_free(note);
    }
    buf_free(&notes);
    audit_files_free(files, n);
    return rc < 0 ? -1 : 0;
}

/* ---- writing --------------------------------------------------------------------------------- */

static void piece_begin(piece_t *p, const chain_t *c)
{
    buf_reset(&p->text);
    p->exchanges = 0;
    p->gap = 0;
    p->seq0 = c->seq;
    memcpy(p->prev0, c->prev, AUDIT_HASH_HEX);
}

/* Lost exchanges: counted now, told in the next gap record. */
static void lost(uint64_t exchanges)
{
    g_audit.unrecorded += exchanges;
    metrics_counter_add(METRICS_AUDIT_RECORDS_DROPPED, (long)exchanges);
}

static int piece_flush(chain_t *c, piece_t *p)
{
    if (p->text.len == 0)
        return 0;

    if (c->fd >= 0 && write_all(c->fd, p->text.data, p->text.len) == 0) {
        c->size += (off_t)p->text.len;
        c->dirty = true;
        metrics_counter_add(METRICS_AUDIT_RECORDS_WRITTEN, (long)p->exchanges);
        piece_begin(p, c);
        return 0;
    }

    /* Cut whatever part of the piece reached the file; if even that fails, close it and let the
     * next batch find the chain's end on disk (chain_open). */
    disk_error("cannot write to", c->dir, errno);
    if (c->fd >= 0 && ftruncate(c->fd, c->size) != 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->seq = p->seq0;
    memcpy(c->prev, p->prev0, AUDIT_HASH_HEX);
    g_audit.unrecorded += p->gap;
    lost(p->exchanges);
    piece_begin(p, c);
    return -1;
}

/* True when a line of line_len bytes after `used` bytes of the piece must go to a new file. */
static bool needs_rotation(const chain_t *c, size_t used_in_piece, size_t line_len)
{
    const char *day = g_audit.batch_day;
    off_t used = c->size + (off_t)used_in_piece;
    return strcmp(day, c->day) != 0 || (used > 0 && used + (off_t)line_len + 1 > g_audit.file_max);
}

/* Adds one record to the piece; the chain moves on as if it were written (piece_flush rolls it
 * back if it is not). The line is made in place at the end of the piece; in the rare case that
 * it must open a new file, it is moved aside while the piece is written out. */
static append_rc_t chain_append(chain_t *c, piece_t *p, const audit_entry_t *e)
{
    if (p->text.len == 0)
        piece_begin(p, c);
    size_t start = p->text.len;
    if (audit_entry_format(e, c->seq + 1, c->prev, &p->text) != 0) {
        p->text.len = start;
        p->text.data[start] = '\0';
        log_crit(e->request_id, "audit: cannot encode an exchange record; dropped");
        return APPEND_BAD_ENTRY;
    }
    size_t len = p->text.len - start;

    if (needs_rotation(c, start, len)) {
        buf_t *line = &g_audit.line;
        buf_reset(line);
        buf_append(line, p->text.data + start, len);
        p->text.len = start;
        p->text.data[start] = '\0';
        if (piece_flush(c, p) != 0 || chain_rotate(c) != 0)
            return APPEND_DISK;
        piece_begin(p, c);
        buf_append(&p->text, line->data, line->len);
        start = 0;
    }

    buf_appendc(&p->text, '\n');
    c->seq++;
    audit_sha256_hex(p->text.data + start, len, c->prev);
    return APPEND_OK;
}

/* A record saying how many exchanges are missing before it. */
static int append_gap(chain_t *c, piece_t *p)
{
    char text[160];
    snprintf(text, sizeof(text),
             "%llu exchanges were not recorded (queue full or disk error;"
             " see the log)",
             (unsigned long long)g_audit.unrecorded);
    audit_entry_t *note = audit_entry_note("gap", text);
    append_rc_t rc = chain_append(c, p, note);
    audit_entry_free(note);
    if (rc == APPEND_OK) {
        p->gap = g_audit.unrecorded;
        g_audit.unrecorded = 0;
    }
    return rc;
}

static void drop_all(audit_entry_t *list)
{
    while (list != NULL) {
        audit_entry_t *next = list->next;
        lost(1);
        audit_entry_free(list);
        list = next;
    }
}

/* Writes one batch taken from the queue (frees it). After a write failure the rest of the batch
 * is dropped: a failing disk gets one attempt per batch, not one per record. */
static void write_batch(audit_entry_t *list)
{
    chain_t *c = &g_audit.chain;
    if (c->fd < 0 && chain_open(c) != 0) {
        drop_all(list);
        return;
    }

    /* The piece's buffer is kept from batch to batch, so that it is not grown again (and
     * copied at every doubling) each time. */
    piece_t p = {.text = g_audit.piece_buf};
    piece_begin(&p, c);
    today(g_audit.batch_day); /* once a batch: a batch spans 50 ms, not a day */
    int rc = g_audit.unrecorded > 0 ? append_gap(c, &p) : 0;
    while (list != NULL && rc == 0) {
        audit_entry_t *e = list;
        list = e->next;
        append_rc_t added = chain_append(c, &p, e);
        audit_entry_free(e);
        if (added == APPEND_OK)
            p.exchanges++;
        else
            lost(1);
        if (added == APPEND_DISK)
            rc = -1;
        else if (p.text.len >= PIECE_BYTES)
            rc = piece_flush(c, &p);
    }
    if (rc == 0)
        piece_flush(c, &p);
    g_audit.piece_buf = p.text;
    drop_all(list);
}

/* ---- the writer thread ----------------------------------------------------------------------- */

/* Seconds from now until `at` plus `after_ns` (negative when that time has passed). */
static double until_s(const struct timespec *at, long after_ns)
{
    return (double)after_ns / 1e9 - elapsed_s(at);
}

static struct timespec deadline_in(double seconds)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long ns = t.tv_nsec + (long)(seconds * 1e9);
    t.tv_sec += ns / 1000000000L;
    t.tv_nsec = ns % 1000000000L;
    return t;
}

/* True when the queue is worth a batch now: the last batch is BATCH_INTERVAL_NS old, or the
 * queue holds a full batch. */
static bool batch_due(void)
{
    if (g_audit.head == NULL)
        return false;
    return g_audit.n >= BATCH_ENTRIES || g_audit.bytes >= PIECE_BYTES ||
           until_s(&g_audit.batch_at, BATCH_INTERVAL_NS) <= 0;
}

/* Waits for a batch, stop, or an fsync that is due. Entries that arrive less than
 * BATCH_INTERVAL_NS after the last batch wait for the next one: at a high rate the writer then
 * wakes a few dozen times a second, not once per exchange, and every wake-up it saves is a
 * context switch taken from a worker that shares its core. */
static void wait_for_work(void)
{
    chain_t *c = &g_audit.chain;
    while (!g_audit.stopping && !batch_due()) {
        double wait = -1; /* seconds; < 0: until signalled */
        if (g_audit.head != NULL)
            wait = until_s(&g_audit.batch_at, BATCH_INTERVAL_NS);
        if (c->dirty) {
            double sync = until_s(&c->synced, FSYNC_INTERVAL_NS);
            if (sync <= 0)
                return;
            if (wait < 0 || sync < wait)
                wait = sync;
        }

        /* Only an idle writer is signalled for a first entry (audit_submit). */
        g_audit.idle = g_audit.head == NULL;
        if (wait < 0) {
            pthread_cond_wait(&g_audit.cv, &g_audit.mu);
        } else {
            struct timespec due = deadline_in(wait);
            pthread_cond_timedwait(&g_audit.cv, &g_audit.mu, &due);
        }
        g_audit.idle = false;
    }
}

static void *writer_main(void *arg)
{
    chain_t *c = &g_audit.chain;
    /* Named, so that top -H, perf and bench/logging can tell the threads apart. */
    (void)pthread_setname_np(pthread_self(), "gh-audit");
    for (;;) {
        pthread_mutex_lock(&g_audit.mu);
        wait_for_work();
        audit_entry_t *list = g_audit.head;
        if (list != NULL)
            clock_gettime(CLOCK_MONOTONIC, &g_audit.batch_at);
        g_audit.head = g_audit.tail = NULL;
        g_audit.n = 0;
        g_audit.bytes = 0;
        g_audit.unrecorded += g_audit.dropped;
        g_audit.dropped = 0;
        bool stop = g_audit.stopping;
        pthread_mutex_unlock(&g_audit.mu);

        if (list != NULL || (stop && g_audit.unrecorded > 0))
            write_batch(list);
        if (c->dirty && (stop || elapsed_s(&c->synced) * 1e9 >= FSYNC_INTERVAL_NS))
            chain_sync(c);
        if (stop)
            return NULL;
    }
}

/* ---- the API --------------------------------------------------------------------------------- */

static int cond_init(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&g_audit.cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

/* With audit.enabled off the writer still starts, since a request may opt in; the directory
 * is then opened with the first record instead of now. */
int audit_start(const config_t *cfg, const char *data_dir)
{
    if (atomic_load(&g_audit.running)) {
        log_crit(NULL, "audit: started twice");
        return -1;
    }

    g_audit.chain = (chain_t){.dir = path_join(data_dir, "audit"), .lock_fd = -1, .fd = -1};
    clock_gettime(CLOCK_MONOTONIC, &g_audit.chain.synced);
    g_audit.stopping = false;
    g_audit.dropped = 0;
    g_audit.unrecorded = 0;
    if ((cfg->audit_enabled && chain_open(&g_audit.chain) != 0) || cond_init() != 0)
        goto fail;

    if (pthread_create(&g_audit.thread, NULL, writer_main, NULL) != 0) {
        log_crit(NULL, "audit: cannot start the writer thread: %s", strerror(errno));
        pthread_cond_destroy(&g_audit.cv);
        goto fail;
    }
    atomic_store(&g_audit.running, true);
    if (cfg->audit_enabled)
        log_info(NULL, "audit: recording to %s, chain at seq %llu", g_audit.chain.dir,
                 (unsigned long long)g_audit.chain.seq);
    return 0;

fail:
    chain_close(&g_audit.chain);
    if (g_audit.chain.lock_fd >= 0)
        close(g_audit.chain.lock_fd);
    free(g_audit.chain.dir);
    g_audit.chain.dir = NULL;
    return -1;
}

void audit_stop(void)
{
    if (!atomic_load(&g_audit.running))
        return;

    pthread_mutex_lock(&g_audit.mu);
    atomic_store(&g_audit.running, false);
    g_audit.stopping = true;
    pthread_cond_signal(&g_audit.cv);
    pthread_mutex_unlock(&g_audit.mu);
    pthread_join(g_audit.thread, NULL);

    chain_close(&g_audit.chain);
    if (g_audit.chain.lock_fd >= 0)
        close(g_audit.chain.lock_fd);
    free(g_audit.chain.dir);
    g_audit.chain.dir = NULL;
    buf_free(&g_audit.line);
    buf_free(&g_audit.piece_buf);
    pthread_cond_destroy(&g_audit.cv);
}

/* The copy happens before the lock, so the lock is held for a few pointer moves only. */
void audit_submit(const telemetry_exchange_t *x)
{
    if (x == NULL || !x->audit || !atomic_load(&g_audit.running))
        return;

    audit_entry_t *e = audit_entry_copy(x);
    bool queued = false;
    bool refused = false;
    bool say_full = false;

    pthread_mutex_lock(&g_audit.mu);
    if (!atomic_load(&g_audit.running)) {
        /* stopped meanwhile: not an exchange the trail promised to keep */
    } else if (g_audit.n < g_audit.queue_max &&
               g_audit.bytes + e->bytes <= (size_t)AUDIT_QUEUE_MAX_BYTES) {
        if (g_audit.tail != NULL)
            g_audit.tail->next = e;
        else
            g_audit.head = e;
        g_audit.tail = e;
        g_audit.n++;
        g_audit.bytes += e->bytes;
        queued = true;
        /* A writer that is collecting a batch wakes by itself; it needs a signal only when it
         * sleeps without a deadline, or when the batch is full. */
        if (g_audit.idle || g_audit.n == BATCH_ENTRIES ||
            (g_audit.bytes >= PIECE_BYTES && g_audit.bytes - e->bytes < PIECE_BYTES)) {
            g_audit.idle = false;
            pthread_cond_signal(&g_audit.cv);
        }
    } else {
        g_audit.dropped++;
        refused = true;
        say_full = log_due(&g_audit.full_logged);
    }
    pthread_mutex_unlock(&g_audit.mu);

    if (queued)
        return;
    if (say_full)
        log_error(x->request_id, "audit: the writer is behind (queue full); exchanges are"
                                 " dropped, counted, and noted in a gap record");
    if (refused)
        metrics_counter_add(METRICS_AUDIT_RECORDS_DROPPED, 1);
    audit_entry_free(e);
}
