/* counters.c -- request counters in Redis: shards, batches, the report
 *
 * The counter schema, every key under the configured prefix P. Standalone
 * keeps the layout every earlier release wrote, so an upgrade keeps its
 * counts with no migration; it is the one-shard case of the layout below:
 *
 *   P hits            sorted set  canonical path -> hit count
 *   P total           string      sum of all counts (never computed by scan)
 *   P dropped         string      hits dropped on worker buffer overflow
 *   P writer:<id>     string      last batch seq applied for one writer
 *   P history:<hour>  hash        requests per 10-s interval of one hour
 *                                 (see "history" below)
 *
 * In cluster mode (REDIS_CLUSTER) the counts are spread over S shards
 * (REDIS_SHARDS), shard i under its hash tag t_i (shards.c):
 *
 *   P{t_i}hits, P{t_i}total, P{t_i}dropped, P{t_i}writer:<id>,
 *   P{t_i}history:<hour>
 *   P{meta}shards     string      S, recorded when the dataset is created
 *   P{meta}import     string      "running" / "done": an import of a
 *                                 standalone dataset (see "import" below)
 *
 * A path lives in shard FNV-1a(path) mod S. All keys of a shard share one
 * slot, so a batch for a shard is one single-slot EVAL. A writer is one
 * worker process (a random id); its key expires an hour after its last
 * write.
 *
 * Counting. A worker's batch of hits (hitbuf.h) is split by shard; each
 * part is one EVAL that applies it unless its seq is not above the
 * shard's writer seq, so a part resent after a timeout or a redirect is
 * never applied twice. Each (worker, shard) has its own seq sequence and
 * at most one part in flight: seq n + 1 is only ever sent after n was
 * acknowledged, so a later seq can never land first and make an earlier
 * retry look like a duplicate. The batch is done when every part is; a
 * part whose node is down waits (with the hits of later batches held in
 * the worker's bounded buffer), the others are not sent again.
 *
 * Lost writes. Redis Cluster replicates asynchronously: a master that
 * crashes may take acknowledged writes with it. The script returns the
 * writer seq it found; when that is below the seq this worker last had
 * acknowledged on that shard, the batches in between were lost with the
 * old master, and the loss is logged with its size in hits:
 *   "hits lost: N hits in B batches on shard i (node): acknowledged, then
 *    not replicated before a failover"
 *
 * The report. Global order is count descending, then shard ascending,
 * then path in descending byte order (docs/API.md section 7); with one
 * shard that is today's order. Standalone reads a page in one MULTI/EXEC
 * as always. Sharded, no page reads `offset` members. A page within the
 * first TOP_MAX rows is read from each shard's first few members in one
 * round trip when those reach far enough. Otherwise the page is located by
 * rank arithmetic over per-shard probes and ZCOUNTs (shards.c): three
 * round trips (probes and totals; ZCOUNTs and the members of a narrow
 * bracket; the page itself by rank), more only when the probes leave a
 * wide bracket of distinct counts, and two for a rank located recently
 * (the next page's start is this page's end): its count is remembered and
 * checked with two ZCOUNTs per shard in the first round. Rounds are not one
 * transaction: under concurrent writes a page is exact per shard but may
 * mix moments, so a path moving across a page boundary can show on two
 * pages or none while the counts move; on a quiet dataset every page is
 * exact.
 */

#include "counters.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "log.h"
#include "slotmap.h"

#define WRITER_TTL_S 3600
#define KEY_MAX      160
#define WRITER_ID    32

/* Acknowledged parts remembered per shard to size a loss. */
#define ACKED_KEEP 64

/* Bracket members read per shard at once while locating a rank. */
#define BRACKET_CAP 64

/* Pages ending within TOP_MAX rows are read from the shards' tops in one
 * round trip when the tops reach that far (page_top); TOP_SLACK members per
 * shard beyond twice its share cover the shards' uneven tops. */
#define TOP_MAX   1000
#define TOP_SLACK 4

/* Ranks whose final bracket a process remembers (a page's end is the
 * next page's start; a page read again has both). */
#define MEMO_MAX 8

/* Rounds of bisection at most (counts are below 2^63). */
#define BISECT_MAX 64

/* Apply one part of a batch at most once.
 * KEYS: hits, total, dropped, writer, then one history hash per interval
 * tally (see "history" below). ARGV: seq, ttl, hits, dropped, number of
 * tallies, then (field, count, expire-at) per tally, then (count, path)
 * pairs. Returns the writer seq found before (applied), or -1 if this seq
 * was applied already. */
static const char batch_script[] =
    "local last = tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "if tonumber(ARGV[1]) <= last then return -1 end\n"
    "local nh = tonumber(ARGV[5])\n"
    "for i = 1, nh do\n"
    "  redis.call('HINCRBY', KEYS[4 + i], ARGV[3 + 3 * i], ARGV[4 + 3 * i])\n"
    "  redis.call('EXPIREAT', KEYS[4 + i], ARGV[5 + 3 * i])\n"
    "end\n"
    "for i = 6 + 3 * nh, #ARGV, 2 do redis.call('ZINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "if ARGV[3] ~= '0' then redis.call('INCRBY', KEYS[2], ARGV[3]) end\n"
    "if ARGV[4] ~= '0' then redis.call('INCRBY', KEYS[3], ARGV[4]) end\n"
    "redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2])\n"
    "return last\n";

enum part_state { PART_WAIT, PART_FLIGHT, PART_DONE };

struct acked {
    uint64_t seq;
    uint64_t hits;
};

struct shard {
    char tag[SHARDS_TAG_LEN];
    char k_hits[KEY_MAX], k_total[KEY_MAX], k_dropped[KEY_MAX], k_writer[KEY_MAX];
    int slot;
    uint64_t next_seq; /* the seq of this shard's next part */
    struct acked acked[ACKED_KEEP];
    uint64_t nacked;
    uint64_t last_acked;
    int64_t acked_ms; /* when the last part was acknowledged */
    long long est;    /* size seen at the last report read (>= 1) */

    /* This shard's part of the open batch. */
    enum part_state state;
    int used; /* has a part in the open batch */
    uint64_t seq, hits, dropped;
    struct cmd cmd;
    char *hkeys; /* the part's history keys, KEY_MAX bytes each */
};

struct counters {
    const struct config *cfg;
    struct cluster *cl;
    int n; /* shards */
    struct shard *sh;
    char writer[WRITER_ID + 1];
    char k_layout[KEY_MAX];
    int layout_slot;
    int layout_ok;
    int fatal;
    int64_t layout_retry_at;
    int open;            /* a batch is split into parts */
    uint64_t batch_seq;  /* the hitbuf seq of the open batch */
    size_t *batch_shard; /* shard of each entry of the open batch */
    size_t batch_cap;
    /* Brackets that located recent ranks: tried first next time. */
    struct memo {
        long long R, L, H;
    } memo[MEMO_MAX];
    int nmemo, memo_next;
};

/* ---- lifecycle ---------------------------------------------------------- */

struct counters *counters_new(const struct config *cfg, struct cluster *cl)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[WRITER_ID / 2];
    const char *p = cfg->redis_prefix;
    struct counters *ctr;

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        return NULL;
    }
    ctr = calloc(1, sizeof(*ctr));
    if (ctr == NULL) {
        return NULL;
    }
    ctr->cfg = cfg;
    ctr->cl = cl;
    ctr->n = cluster_mode(cl) ? cfg->redis_shards : 1;
    ctr->sh = calloc((size_t)ctr->n, sizeof(*ctr->sh));
    if (ctr->sh == NULL) {
        free(ctr);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        ctr->writer[2 * i] = hex[raw[i] >> 4];
        ctr->writer[2 * i + 1] = hex[raw[i] & 0x0f];
    }
    /* The prefix is at most 64 bytes and a tag at most 23: none of these
     * truncate. */
    for (int i = 0; i < ctr->n; i++) {
        struct shard *s = &ctr->sh[i];
        char brace[SHARDS_TAG_LEN + 2] = "";

        if (cluster_mode(cl)) {
            if (shards_tag(i, ctr->n, s->tag, sizeof(s->tag)) < 0) {
                counters_free(ctr);
                return NULL;
            }
            snprintf(brace, sizeof(brace), "{%s}", s->tag);
        }
        snprintf(s->k_hits, KEY_MAX, "%s%shits", p, brace);
        snprintf(s->k_total, KEY_MAX, "%s%stotal", p, brace);
        snprintf(s->k_dropped, KEY_MAX, "%s%sdropped", p, brace);
        snprintf(s->k_writer, KEY_MAX, "%s%swriter:%s", p, brace, ctr->writer);
        s->slot = slotmap_keyslot(s->k_hits, strlen(s->k_hits));
        s->next_seq = 1;
        s->est = 1;
        cmd_init(&s->cmd, s->slot);
    }
    snprintf(ctr->k_layout, KEY_MAX, "%s{meta}shards", p);
    ctr->layout_slot = slotmap_keyslot(ctr->k_layout, strlen(ctr->k_layout));
    ctr->layout_ok = !cluster_mode(cl);
    return ctr;
}

void counters_free(struct counters *ctr)
{
    if (ctr == NULL) {
        return;
    }
    for (int i = 0; i < ctr->n; i++) {
        cmd_free(&ctr->sh[i].cmd);
        free(ctr->sh[i].hkeys);
    }
    free(ctr->batch_shard);
    free(ctr->sh);
    free(ctr);
}

int counters_fatal(const struct counters *ctr)
{
    return ctr->fatal;
}

/* ---- the layout record ---------------------------------------------------- */

/* Record S in a new dataset, read it back and compare. Returns 0 when it
 * matches, 1 when Redis did not answer, -1 on a mismatch (logged, fatal). */
static int layout_check(struct counters *ctr)
{
    struct cmd c[2];
    redisReply *r[2];
    long long recorded = -1;
    char *end = NULL;
    int rc = 1;

    if (ctr->layout_ok) {
        return 0;
    }
    if (ctr->fatal) {
        return -1;
    }
    cmd_init(&c[0], ctr->layout_slot);
    cmd_str(&c[0], "SET");
    cmd_str(&c[0], ctr->k_layout);
    cmd_ll(&c[0], ctr->n);
    cmd_str(&c[0], "NX");
    cmd_init(&c[1], ctr->layout_slot);
    cmd_str(&c[1], "GET");
    cmd_str(&c[1], ctr->k_layout);
    if (cluster_run(ctr->cl, c, 2, r, 1) != 0) {
        ctr->layout_retry_at = clock_mono_ms() + 25;
        return 1;
    }
    if (r[1]->type == REDIS_REPLY_STRING) {
        errno = 0;
        recorded = strtoll(r[1]->str, &end, 10);
        if (errno != 0 || end == r[1]->str || *end != '\0') {
            recorded = -1;
        }
    }
    if (recorded == ctr->n) {
        ctr->layout_ok = 1;
        rc = 0;
    } else if (r[1]->type == REDIS_REPLY_ERROR) {
        log_error("Redis layout check: %s", r[1]->str);
        ctr->layout_retry_at = clock_mono_ms() + ctr->cfg->redis_backoff_max_ms;
    } else {
        log_error("REDIS_SHARDS=%d, but the dataset under prefix \"%s\" was created with %s "
                  "shards (%s): refusing to start; set REDIS_SHARDS=%s, or use another "
                  "REDIS_PREFIX for a new dataset",
                  ctr->n, ctr->cfg->redis_prefix,
                  r[1]->type == REDIS_REPLY_STRING ? r[1]->str : "an unreadable number of",
                  ctr->k_layout, r[1]->type == REDIS_REPLY_STRING ? r[1]->str : "?");
        ctr->fatal = 1;
        rc = -1;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return rc;
}

int counters_startup(struct counters *ctr)
{
    const struct config *cfg = ctr->cfg;
    int idx[SLOTMAP_NODES_MAX], slots[SLOTMAP_NODES_MAX], reps[SLOTMAP_NODES_MAX];
    int per[SLOTMAP_NODES_MAX] = {0};
    char line[900];
    size_t len = 0;
    int m, rc;

    if (!cluster_mode(ctr->cl)) {
        log_info("Redis standalone at %s:%d: one shard (keys %shits, %stotal, %sdropped)",
                 cfg->redis_host, cfg->redis_port, cfg->redis_prefix, cfg->redis_prefix,
                 cfg->redis_prefix);
        return 0;
    }
    if (cluster_refresh(ctr->cl) != 0) {
        log_warn("Redis Cluster: no seed of REDIS_CLUSTER=%s answered; starting anyway, every "
                 "process reads the slot map and checks the shard layout when it answers",
                 cfg->redis_cluster);
        return 1;
    }
    m = cluster_masters(ctr->cl, idx, slots, reps, SLOTMAP_NODES_MAX);
    for (int i = 0; i < ctr->n; i++) {
        int owner = cluster_slot_owner(ctr->cl, ctr->sh[i].slot);

        for (int k = 0; k < m; k++) {
            per[k] += idx[k] == owner;
        }
    }
    log_info("Redis Cluster: %d masters found from REDIS_CLUSTER=%s", m, cfg->redis_cluster);
    for (int i = 0; i < ctr->n; i++) {
        log_debug("shard %d: key %s, slot %d, on %s", i, ctr->sh[i].k_hits, ctr->sh[i].slot,
                  cluster_slot_node(ctr->cl, ctr->sh[i].slot));
    }
    for (int k = 0; k < m; k++) {
        log_info("Redis Cluster: master %s: %d slots, %d replicas, %d of %d shards",
                 cluster_node_name(ctr->cl, idx[k]), slots[k], reps[k], per[k], ctr->n);
    }
    for (int k = 0; k < m && len < sizeof(line) - 64; k++) {
        int w = snprintf(line + len, sizeof(line) - len, "%s%d", k ? "/" : "", per[k]);

        len += w > 0 ? (size_t)w : 0;
    }
    rc = layout_check(ctr);
    if (rc == 0) {
        log_info("shard layout: %d shards under prefix \"%s\" (recorded in %s), %s per master",
                 ctr->n, cfg->redis_prefix, ctr->k_layout, len > 0 ? line : "none");
    } else if (rc > 0) {
        log_warn("shard layout: could not be checked yet (Redis did not answer); every process "
                 "checks it when it does");
    }
    return rc;
}

/* ---- counting ------------------------------------------------------------ */

int counters_batch_busy(const struct counters *ctr)
{
    for (int i = 0; i < ctr->n; i++) {
        if (ctr->sh[i].state == PART_FLIGHT) {
            return 1;
        }
    }
    return 0;
}

/* Remember an acknowledged part; size a loss the seq found reveals. */
static void part_acked(struct counters *ctr, int i, long long found)
{
    struct shard *s = &ctr->sh[i];
    int64_t now = clock_mono_ms();

    /* found is the writer seq the shard had: the last part this worker
     * had acknowledged there, unless the master that acknowledged later
     * parts died before replicating them (or the key expired, after an
     * hour without writes: not a loss). */
    if (found >= 0 && s->nacked > 0 && (uint64_t)found < s->last_acked &&
        now - s->acked_ms < (int64_t)WRITER_TTL_S * 1000) {
        uint64_t lost = 0, batches = 0, oldest = UINT64_MAX;

        for (int k = 0; k < ACKED_KEEP && (uint64_t)k < s->nacked; k++) {
            if (s->acked[k].seq > (uint64_t)found) {
                lost += s->acked[k].hits;
                batches++;
                oldest = s->acked[k].seq < oldest ? s->acked[k].seq : oldest;
            }
        }
        log_error("hits lost: %llu hits in %llu batches on shard %d (%s): acknowledged, then not "
                  "replicated before a failover%s",
                  (unsigned long long)lost, (unsigned long long)batches, i,
                  cluster_slot_node(ctr->cl, s->slot),
                  s->nacked > ACKED_KEEP && oldest > (uint64_t)found + 1
                      ? " (at least: older batches are not remembered)"
                      : "");
    }
    s->acked[s->nacked % ACKED_KEEP].seq = s->seq;
    s->acked[s->nacked % ACKED_KEEP].hits = s->hits;
    s->nacked++;
    s->last_acked = s->seq;
    s->acked_ms = now;
    s->state = PART_DONE;
}

static void part_done(void *arg, uint64_t cookie, redisReply *r)
{
    struct counters *ctr = arg;
    int i = (int)cookie;
    struct shard *s;

    if (i < 0 || i >= ctr->n) {
        freeReplyObject(r);
        return;
    }
    s = &ctr->sh[i];
    if (r == NULL) {
        s->state = PART_WAIT; /* the router backs the node off */
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        part_acked(ctr, i, r->integer);
    } else {
        /* An error reply (OOM, a busy script, a wrong key type; the
         * router logged it and backs the node off): the script failed
         * before its first write, so nothing was applied. Retry the same
         * part after the backoff. */
        log_debug("Redis batch on shard %d: %s", i,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        s->state = PART_WAIT;
    }
    freeReplyObject(r);
}

/* History layout helpers, defined with the history reads below. */
#define HISTORY_PER_HOUR COUNTERS_HISTORY_PER_HOUR
static void history_key(const struct counters *ctr, int i, int64_t hour, char *buf);
static int64_t history_expire_at(int64_t hour);

/* Split batch b into one part per shard. The batch's history tallies and
 * its dropped count travel with one part, the one with the most paths
 * (shard 0 when there are none): history and dropped hits are summed over
 * the shards when read, so any shard may hold them, and riding on a part
 * that is written anyway costs no extra script. Returns 0 or -1 (no
 * memory). */
static int split(struct counters *ctr, const struct hitbatch *b)
{
    size_t *count = calloc((size_t)ctr->n, sizeof(*count));
    size_t nh = b->nintervals;
    int carrier = 0;

    if (count == NULL) {
        return -1;
    }
    if (b->n > ctr->batch_cap) {
        size_t *m = realloc(ctr->batch_shard, b->n * sizeof(*m));

        if (m == NULL) {
            free(count);
            return -1;
        }
        ctr->batch_shard = m;
        ctr->batch_cap = b->n;
    }
    for (size_t e = 0; e < b->n; e++) {
        ctr->batch_shard[e] = (size_t)shards_of(b->entries[e].path, b->entries[e].len, ctr->n);
        count[ctr->batch_shard[e]]++;
    }
    for (int i = 1; i < ctr->n; i++) {
        carrier = count[i] > count[carrier] ? i : carrier;
    }
    for (int i = 0; i < ctr->n; i++) {
        struct shard *s = &ctr->sh[i];
        size_t mine = i == carrier ? nh : 0;

        cmd_free(&s->cmd);
        free(s->hkeys);
        s->hkeys = NULL;
        s->used = count[i] > 0 || (i == carrier && (b->dropped > 0 || nh > 0));
        s->state = s->used ? PART_WAIT : PART_DONE;
        s->hits = 0;
        s->dropped = i == carrier ? b->dropped : 0;
        if (!s->used) {
            continue;
        }
        if (cmd_init_cap(&s->cmd, s->slot, 12 + 4 * (int)mine + 2 * (int)count[i]) != 0 ||
            (mine > 0 && (s->hkeys = malloc(mine * KEY_MAX)) == NULL)) {
            free(count);
            return -1;
        }
        s->seq = s->next_seq++;
        cmd_str(&s->cmd, "EVAL");
        cmd_str(&s->cmd, batch_script);
        cmd_ll(&s->cmd, 4 + (long long)mine);
        cmd_str(&s->cmd, s->k_hits);
        cmd_str(&s->cmd, s->k_total);
        cmd_str(&s->cmd, s->k_dropped);
        cmd_str(&s->cmd, s->k_writer);
        for (size_t h = 0; h < mine; h++) {
            history_key(ctr, i, b->intervals[h].interval / HISTORY_PER_HOUR,
                        s->hkeys + h * KEY_MAX);
            cmd_str(&s->cmd, s->hkeys + h * KEY_MAX);
        }
        cmd_ll(&s->cmd, (long long)s->seq);
        cmd_ll(&s->cmd, WRITER_TTL_S);
        /* hits: filled below, once summed */
        cmd_ll(&s->cmd, 0);
        cmd_ll(&s->cmd, (long long)s->dropped);
        cmd_ll(&s->cmd, (long long)mine);
        for (size_t h = 0; h < mine; h++) {
            int64_t iv = b->intervals[h].interval;

            cmd_ll(&s->cmd, (long long)(iv % HISTORY_PER_HOUR));
            cmd_ll(&s->cmd, (long long)b->intervals[h].count);
            cmd_ll(&s->cmd, (long long)history_expire_at(iv / HISTORY_PER_HOUR));
        }
    }
    for (size_t e = 0; e < b->n; e++) {
        struct shard *s = &ctr->sh[ctr->batch_shard[e]];

        s->hits += b->entries[e].count;
        cmd_ll(&s->cmd, (long long)b->entries[e].count);
        cmd_bin(&s->cmd, b->entries[e].path, b->entries[e].len);
    }
    for (int i = 0; i < ctr->n; i++) {
        struct shard *s = &ctr->sh[i];
        /* The part's hit total: EVAL, script, numkeys, the keys, seq, ttl. */
        int at = 3 + 4 + (i == carrier ? (int)nh : 0) + 2;

        if (s->used && !s->cmd.err) {
            s->cmd.len[at] =
                (size_t)snprintf(s->cmd.nums[at], CMD_NUM_LEN, "%llu", (unsigned long long)s->hits);
        }
    }
    free(count);
    ctr->open = 1;
    ctr->batch_seq = b->seq;
    return 0;
}

int counters_batch_send(struct counters *ctr, const struct hitbatch *b, int64_t now_ms)
{
    int sent = 0;

    if (ctr->fatal || (!ctr->layout_ok && layout_check(ctr) != 0)) {
        return -1;
    }
    if (!ctr->open || ctr->batch_seq != b->seq) {
        if (split(ctr, b) != 0) {
            ctr->open = 0;
            return -1;
        }
    }
    for (int i = 0; i < ctr->n; i++) {
        struct shard *s = &ctr->sh[i];

        if (s->state == PART_FLIGHT) {
            sent = 1;
            continue;
        }
        if (s->state != PART_WAIT || now_ms < cluster_retry_at(ctr->cl, s->slot)) {
            continue;
        }
        /* In flight before the send: a failure may be reported inside. */
        s->state = PART_FLIGHT;
        if (cluster_bsend(ctr->cl, &s->cmd, (uint64_t)i, now_ms, part_done, ctr) != 0) {
            s->state = PART_WAIT;
        }
        sent |= s->state == PART_FLIGHT;
    }
    return sent ? 0 : -1;
}

enum counters_io counters_batch_io(struct counters *ctr, int fd, unsigned events, int64_t now_ms)
{
    cluster_bio(ctr->cl, fd, events, now_ms);
    if (!ctr->open) {
        return COUNTERS_IO_PENDING;
    }
    for (int i = 0; i < ctr->n; i++) {
        if (ctr->sh[i].state != PART_DONE) {
            return COUNTERS_IO_PENDING;
        }
    }
    ctr->open = 0;
    return COUNTERS_IO_DONE;
}

int64_t counters_batch_deadline(const struct counters *ctr)
{
    return counters_batch_busy(ctr) ? cluster_bdeadline(ctr->cl) : -1;
}

int64_t counters_retry_at(const struct counters *ctr)
{
    int64_t at = 0;

    if (!ctr->layout_ok) {
        return ctr->layout_retry_at;
    }
    if (!ctr->open) {
        return cluster_retry_at(ctr->cl, ctr->sh[0].slot);
    }
    for (int i = 0; i < ctr->n; i++) {
        if (ctr->sh[i].state == PART_WAIT) {
            int64_t t = cluster_retry_at(ctr->cl, ctr->sh[i].slot);

            if (at == 0 || t < at) {
                at = t == 0 ? 1 : t;
            }
        }
    }
    return at;
}

/* ---- the report ------------------------------------------------------------ */

/* The replies a page's entries point into. */
struct page_mem {
    int n;
    redisReply *r[];
};

/* A count or score as Redis returns it: an integer, or text that is a
 * whole number ("%.17g" of a score: exponent notation above 1e17). A
 * missing key (nil) is 0. Returns 0, or -1 when it is not a number. */
static int reply_num(const redisReply *r, long long *out)
{
    char *end = NULL;

    *out = 0;
    if (r == NULL || r->type == REDIS_REPLY_NIL) {
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0) {
        return -1;
    }
    errno = 0;
    *out = strtoll(r->str, &end, 10);
    if (errno == 0 && end == r->str + r->len) {
        return 0;
    }
    {
        double d;

        errno = 0;
        d = strtod(r->str, &end);
        if (errno != 0 || end != r->str + r->len || !(d > -9.2e18 && d < 9.2e18)) {
            return -1;
        }
        *out = (long long)d;
    }
    return 0;
}

static int bad_reply(const char *what, const redisReply *r)
{
    log_error("Redis report (%s): %s", what,
              r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    return -1;
}

/* Fill items from a WITHSCORES array reply. Returns the number of items,
 * or -1 if the reply is not such an array. */
static long long parse_members(const redisReply *r, struct shards_item *items, size_t max)
{
    size_t n;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        return -1;
    }
    n = r->elements / 2;
    for (size_t i = 0; i < n && i < max; i++) {
        const redisReply *m = r->element[2 * i];

        if (m->type != REDIS_REPLY_STRING || reply_num(r->element[2 * i + 1], &items[i].count)) {
            return -1;
        }
        items[i].path = m->str;
        items[i].len = m->len;
    }
    return (long long)(n < max ? n : max);
}

static int keep_replies(struct counters_page *page, redisReply **r, int n)
{
    struct page_mem *mem = malloc(sizeof(*mem) + (size_t)n * sizeof(redisReply *));

    if (mem == NULL) {
        return -1;
    }
    mem->n = n;
    memcpy(mem->r, r, (size_t)n * sizeof(redisReply *));
    page->priv = mem;
    return 0;
}

/* Standalone, or a one-shard cluster: one round trip (MULTI/EXEC when
 * standalone, so the page and the totals are one moment). */
static int page_single(struct counters *ctr, long long offset, long long limit,
                       struct counters_page *page)
{
    const struct shard *s = &ctr->sh[0];
    int multi = !cluster_mode(ctr->cl), k = 0, n;
    struct cmd c[6];
    redisReply *r[6] = {0};
    redisReply *const *res;
    long long got;

    for (int i = 0; i < 6; i++) {
        cmd_init(&c[i], s->slot);
    }
    if (multi) {
        cmd_str(&c[k++], "MULTI");
    }
    cmd_str(&c[k], "ZREVRANGE");
    cmd_str(&c[k], s->k_hits);
    cmd_ll(&c[k], offset);
    cmd_ll(&c[k], offset + limit - 1);
    cmd_str(&c[k++], "WITHSCORES");
    cmd_str(&c[k], "ZCARD");
    cmd_str(&c[k++], s->k_hits);
    cmd_str(&c[k], "GET");
    cmd_str(&c[k++], s->k_total);
    cmd_str(&c[k], "GET");
    cmd_str(&c[k++], s->k_dropped);
    if (multi) {
        cmd_str(&c[k++], "EXEC");
    }
    n = k;
    if (cluster_run(ctr->cl, c, n, r, 1) != 0) {
        return -1;
    }
    if (multi) {
        redisReply *exec = r[n - 1];

        for (int i = 0; i < n - 1; i++) {
            freeReplyObject(r[i]);
        }
        if (exec->type != REDIS_REPLY_ARRAY || exec->elements != 4) {
            bad_reply("page", exec);
            freeReplyObject(exec);
            return -1;
        }
        if (keep_replies(page, &exec, 1) != 0) {
            freeReplyObject(exec);
            return -1;
        }
        res = exec->element;
    } else {
        if (keep_replies(page, r, n) != 0) {
            for (int i = 0; i < n; i++) {
                freeReplyObject(r[i]);
            }
            return -1;
        }
        res = ((struct page_mem *)page->priv)->r;
    }
    if (reply_num(res[1], &page->unique) != 0 || reply_num(res[2], &page->total) != 0 ||
        reply_num(res[3], &page->dropped) != 0) {
        return bad_reply("totals", res[1]->type == REDIS_REPLY_ERROR ? res[1] : res[2]);
    }
    if (res[0]->type != REDIS_REPLY_ARRAY) {
        return bad_reply("page", res[0]);
    }
    page->entries = calloc(res[0]->elements / 2 + 1, sizeof(*page->entries));
    if (page->entries == NULL) {
        return -1;
    }
    got = parse_members(res[0], page->entries, res[0]->elements / 2);
    if (got < 0) {
        return bad_reply("page", res[0]);
    }
    page->n = (size_t)got;
    return 0;
}

/* Locating one global rank R over the shards (shards.h). */
enum locate_step { LOC_DONE, LOC_FIRST, LOC_BISECT, LOC_FETCH };

struct locate {
    long long R;
    enum locate_step step;
    long long L, H, mid;
    long long *lo, *hi, *lo_val, *hi_val; /* probes */
    long long *gt, *in, *pos;
    struct shards_item *items; /* n * BRACKET_CAP bracket members */
    struct shards_run *runs;
    int have_lists;
    int memo; /* L and H come from the memo: checked in round 1 */
};

static void locate_free(struct locate *t)
{
    free(t->lo);
    free(t->items);
    free(t->runs);
    t->lo = NULL;
    t->items = NULL;
    t->runs = NULL;
}

static int locate_alloc(struct locate *t, int n)
{
    size_t m = (size_t)n;

    t->lo = calloc(7 * m, sizeof(long long));
    t->items = calloc(m * BRACKET_CAP, sizeof(*t->items));
    t->runs = calloc(m, sizeof(*t->runs));
    if (t->lo == NULL || t->items == NULL || t->runs == NULL) {
        locate_free(t);
        return -1;
    }
    t->hi = t->lo + m;
    t->lo_val = t->lo + 2 * m;
    t->hi_val = t->lo + 3 * m;
    t->gt = t->lo + 4 * m;
    t->in = t->lo + 5 * m;
    t->pos = t->lo + 6 * m;
    return 0;
}

/* Decide the next step of t once its gt/in (and maybe lists) are known. */
static void locate_next(struct locate *t, int n)
{
    long long above = 0;
    int complete = 1;

    for (int s = 0; s < n; s++) {
        above += t->gt[s];
        complete &= t->in[s] <= BRACKET_CAP;
    }
    if (t->L >= t->H) {
        shards_locate(n, t->R, t->gt, t->in, t->pos);
        t->step = LOC_DONE;
    } else if (complete && t->have_lists) {
        size_t taken[SHARDS_MAX];
        long long k = t->R - above;

        long long c = SHARDS_NONE;

        shards_merge(n, t->runs, k > 0 ? (size_t)k : 0, NULL, taken);
        for (int s = 0; s < n; s++) {
            t->pos[s] = t->gt[s] + (long long)taken[s];
            /* The member at rank R heads one of the rests: its count. */
            if (taken[s] < t->runs[s].n && t->runs[s].items[taken[s]].count > c) {
                c = t->runs[s].items[taken[s]].count;
            }
        }
        if (c != SHARDS_NONE) {
            t->L = t->H = c; /* what the memo keeps: the cheapest check */
        }
        t->step = LOC_DONE;
    } else if (complete) {
        t->step = LOC_FETCH;
    } else {
        t->step = LOC_BISECT;
        t->mid = t->L + (t->H - t->L + 1) / 2;
    }
}

/* Append this round's commands for t to c[*k...]. */
static void locate_cmds(const struct counters *ctr, const struct locate *t, struct cmd *c, int *k)
{
    for (int s = 0; s < ctr->n; s++) {
        const struct shard *sh = &ctr->sh[s];

        if (t->step == LOC_FIRST) {
            cmd_init(&c[*k], sh->slot);
            cmd_str(&c[*k], "ZCOUNT");
            cmd_str(&c[*k], sh->k_hits);
            cmd_ll_excl(&c[*k], t->H);
            cmd_str(&c[(*k)++], "+inf");
            cmd_init(&c[*k], sh->slot);
            cmd_str(&c[*k], "ZCOUNT");
            cmd_str(&c[*k], sh->k_hits);
            cmd_ll(&c[*k], t->L);
            cmd_ll(&c[(*k)++], t->H);
        }
        switch (t->step) {
        case LOC_FIRST: /* and read the bracket's first members at once */
        case LOC_FETCH:
            if (t->L < t->H) {
                cmd_init(&c[*k], sh->slot);
                cmd_str(&c[*k], "ZREVRANGEBYSCORE");
                cmd_str(&c[*k], sh->k_hits);
                cmd_ll(&c[*k], t->H);
                cmd_ll(&c[*k], t->L);
                cmd_str(&c[*k], "WITHSCORES");
                cmd_str(&c[*k], "LIMIT");
                cmd_ll(&c[*k], 0);
                cmd_ll(&c[(*k)++], BRACKET_CAP);
            }
            break;
        case LOC_BISECT:
            cmd_init(&c[*k], sh->slot);
            cmd_str(&c[*k], "ZCOUNT");
            cmd_str(&c[*k], sh->k_hits);
            cmd_ll(&c[*k], t->mid);
            cmd_ll(&c[(*k)++], t->H);
            break;
        case LOC_DONE:
            break;
        }
    }
}

/* Read this round's replies for t from r[*k...]. Returns 0 or -1. */
static int locate_read(const struct counters *ctr, struct locate *t, redisReply **r, int *k)
{
    int n = ctr->n;
    long long cnt, above = 0, sum = 0;

    switch (t->step) {
    case LOC_FIRST:
    case LOC_FETCH:
        for (int s = 0; s < n; s++) {
            if (t->step == LOC_FIRST) {
                if (reply_num(r[*k], &t->gt[s]) != 0 || reply_num(r[*k + 1], &t->in[s]) != 0) {
                    return bad_reply("ZCOUNT", r[*k]);
                }
                *k += 2;
            }
            t->runs[s].items = t->items + (size_t)s * BRACKET_CAP;
            t->runs[s].n = 0;
            if (t->L < t->H) {
                long long got =
                    parse_members(r[*k], t->items + (size_t)s * BRACKET_CAP, BRACKET_CAP);

                if (got < 0) {
                    return bad_reply("bracket", r[*k]);
                }
                t->runs[s].n = (size_t)got;
                (*k)++;
            }
        }
        t->have_lists = t->L < t->H;
        break;
    case LOC_BISECT:
        for (int s = 0; s < n; s++) {
            above += t->gt[s];
        }
        for (int s = 0; s < n; s++) {
            if (reply_num(r[*k + s], &cnt) != 0) {
                return bad_reply("ZCOUNT", r[*k + s]);
            }
            sum += cnt;
        }
        for (int s = 0; s < n; s++) {
            reply_num(r[*k + s], &cnt);
            if (above + sum > t->R) {
                t->in[s] = cnt; /* c(R) >= mid */
            } else {
                t->gt[s] += cnt; /* c(R) < mid */
                t->in[s] -= cnt;
            }
        }
        if (above + sum > t->R) {
            t->L = t->mid;
        } else {
            t->H = t->mid - 1;
        }
        t->have_lists = 0;
        *k += n;
        break;
    case LOC_DONE:
        break;
    }
    return 0;
}

static void free_round(redisReply **r, int n)
{
    for (int i = 0; i < n; i++) {
        freeReplyObject(r[i]);
        r[i] = NULL;
    }
}

/* A round over the whole dataset (history, reset, totals): n commands,
 * their replies, and room for nkeys key names of KEY_MAX bytes each. */
struct round {
    int n;
    struct cmd *c;
    redisReply **r;
    char *keys;
};

static int round_open(struct round *rd, int n, size_t nkeys)
{
    rd->n = n;
    rd->c = calloc((size_t)n, sizeof(*rd->c));
    rd->r = calloc((size_t)n, sizeof(redisReply *));
    rd->keys = nkeys > 0 ? malloc(nkeys * KEY_MAX) : NULL;
    return rd->c != NULL && rd->r != NULL && (nkeys == 0 || rd->keys != NULL) ? 0 : -1;
}

static void round_close(struct round *rd)
{
    for (int i = 0; rd->c != NULL && i < rd->n; i++) {
        cmd_free(&rd->c[i]);
    }
    if (rd->r != NULL) {
        free_round(rd->r, rd->n);
    }
    free(rd->keys);
    free(rd->r);
    free(rd->c);
}

/* A shard's size and totals: ZCARD of its counts and MGET of its total
 * and dropped count (one slot: allowed in a cluster), into c[0] and c[1].
 * Returns 2, the commands written. */
static int totals_cmds(struct cmd *c, const struct shard *sh)
{
    cmd_init(&c[0], sh->slot);
    cmd_str(&c[0], "ZCARD");
    cmd_str(&c[0], sh->k_hits);
    cmd_init(&c[1], sh->slot);
    cmd_str(&c[1], "MGET");
    cmd_str(&c[1], sh->k_total);
    cmd_str(&c[1], sh->k_dropped);
    return 2;
}

/* total and dropped from an MGET reply. Returns 0 or -1. */
static int totals_of(const redisReply *r, long long *total, long long *dropped)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return -1;
    }
    return reply_num(r->element[0], total) != 0 || reply_num(r->element[1], dropped) != 0 ? -1 : 0;
}

/* The top of the report (offset + limit <= TOP_MAX) in one round trip:
 * the first m members of every shard, with m a little over its share.
 * Every member counted above V, the highest count at which some shard's
 * read stopped short of its end, has been read; if at least offset +
 * limit of them were, the merge of what was read is exact up to there.
 * Returns 0 (page filled), 1 (not enough: use the general way), -1. */
static int page_top(struct counters *ctr, long long offset, long long limit,
                    struct counters_page *page)
{
    int n = ctr->n, k = 0, rc = -1;
    long long want = offset + limit, m = 2 * ((want + n - 1) / n) + TOP_SLACK, V = SHARDS_NONE;
    long long above = 0;
    struct cmd *c = calloc((size_t)n * 3, sizeof(*c));
    redisReply **r = calloc((size_t)n * 3, sizeof(redisReply *));
    struct shards_item *items = calloc((size_t)(n * m) + 1, sizeof(*items));
    struct shards_item *all = calloc((size_t)want + 1, sizeof(*all));
    struct shards_run *runs = calloc((size_t)n, sizeof(*runs));
    size_t used = 0, got;

    if (c == NULL || r == NULL || items == NULL || all == NULL || runs == NULL) {
        goto out;
    }
    for (int s = 0; s < n; s++) {
        const struct shard *sh = &ctr->sh[s];

        k += totals_cmds(&c[k], sh);
        cmd_init(&c[k], sh->slot);
        cmd_str(&c[k], "ZREVRANGE");
        cmd_str(&c[k], sh->k_hits);
        cmd_ll(&c[k], 0);
        cmd_ll(&c[k], m - 1);
        cmd_str(&c[k++], "WITHSCORES");
    }
    if (cluster_run(ctr->cl, c, k, r, 1) != 0) {
        goto out;
    }
    for (int s = 0; s < n; s++) {
        redisReply **rs = r + (size_t)s * 3;
        long long card, tot, drop, n_s;

        if (reply_num(rs[0], &card) != 0 || totals_of(rs[1], &tot, &drop) != 0) {
            bad_reply("totals", rs[0]->type == REDIS_REPLY_ERROR ? rs[0] : rs[1]);
            goto out;
        }
        n_s = parse_members(rs[2], items + used, (size_t)m);
        if (n_s < 0) {
            bad_reply("page", rs[2]);
            goto out;
        }
        page->unique += card;
        page->total += tot;
        page->dropped += drop;
        ctr->sh[s].est = card > 0 ? card : 1;
        runs[s].items = items + used;
        runs[s].n = (size_t)n_s;
        used += (size_t)n_s;
        if (n_s < card && n_s > 0 && (V == SHARDS_NONE || runs[s].items[n_s - 1].count > V)) {
            V = runs[s].items[n_s - 1].count;
        }
    }
    for (size_t i = 0; i < used; i++) {
        above += V == SHARDS_NONE || items[i].count > V;
    }
    if (above < want && above < page->unique) {
        rc = 1; /* the shards' tops do not reach that far */
        goto out;
    }
    got = shards_merge(n, runs, (size_t)want, all, NULL);
    page->entries = calloc((size_t)limit + 1, sizeof(*page->entries));
    if (page->entries == NULL || keep_replies(page, r, k) != 0) {
        goto out;
    }
    memset(r, 0, (size_t)k * sizeof(redisReply *)); /* the page owns them now */
    for (size_t i = (size_t)offset; i < got; i++) {
        page->entries[page->n++] = all[i];
    }
    rc = 0;

out:
    if (r != NULL) {
        free_round(r, k);
    }
    for (int i = 0; c != NULL && i < k; i++) {
        cmd_free(&c[i]);
    }
    if (rc != 0) {
        free(page->entries);
        page->entries = NULL;
        page->n = 0;
        page->total = page->unique = page->dropped = 0;
    }
    free(runs);
    free(all);
    free(items);
    free(r);
    free(c);
    return rc;
}

static const struct memo *memo_find(const struct counters *ctr, long long R)
{
    for (int i = 0; i < ctr->nmemo; i++) {
        if (ctr->memo[i].R == R) {
            return &ctr->memo[i];
        }
    }
    return NULL;
}

static void memo_forget(struct counters *ctr, long long R)
{
    for (int i = 0; i < ctr->nmemo; i++) {
        if (ctr->memo[i].R == R) {
            ctr->memo[i].R = -1;
        }
    }
}

static void memo_put(struct counters *ctr, long long R, long long L, long long H)
{
    struct memo *m = NULL;

    for (int i = 0; i < ctr->nmemo && m == NULL; i++) {
        if (ctr->memo[i].R == R || ctr->memo[i].R < 0) {
            m = &ctr->memo[i];
        }
    }
    if (m == NULL && ctr->nmemo < MEMO_MAX) {
        m = &ctr->memo[ctr->nmemo++];
    }
    if (m == NULL) {
        m = &ctr->memo[ctr->memo_next];
        ctr->memo_next = (ctr->memo_next + 1) % MEMO_MAX;
    }
    m->R = R;
    m->L = L;
    m->H = H;
}

/* Several shards: sizes, totals and probes (or, for a rank located
 * recently, the ZCOUNTs of its last bracket), then locating offset and
 * offset + limit, then the page by rank. Returns 0, -1, or 1 when a
 * remembered bracket no longer holds its rank (the caller reads again
 * without the memo). */
static int page_sharded(struct counters *ctr, long long offset, long long limit,
                        struct counters_page *page, int use_memo)
{
    int n = ctr->n, nt = 0, k, rc = -1, ncmd, trips = 0;
    size_t maxcmd = (size_t)n * 8;
    struct locate t[2];
    struct cmd *c = calloc(maxcmd, sizeof(*c));
    redisReply **r = calloc(maxcmd, sizeof(redisReply *));
    long long *card = calloc((size_t)n, sizeof(*card)), *est = calloc((size_t)n, sizeof(*est));
    struct shards_item *items = NULL;
    struct shards_run *runs = NULL;
    redisReply **kept;
    long long U = 0, want[2];
    int alloc_ok;

    memset(t, 0, sizeof(t));
    alloc_ok = locate_alloc(&t[0], n) == 0 && locate_alloc(&t[1], n) == 0;
    if (!alloc_ok || c == NULL || r == NULL || card == NULL || est == NULL) {
        goto out;
    }
    /* Round 1: sizes, totals, probes (sized by the last read's sizes). */
    want[0] = offset;
    want[1] = offset + limit;
    for (int s = 0; s < n; s++) {
        est[s] = ctr->sh[s].est;
    }
    for (int j = 0; j < 2; j++) {
        const struct memo *m = use_memo && want[j] > 0 ? memo_find(ctr, want[j]) : NULL;

        t[j].R = want[j];
        shards_probe_ranks(n, want[j], est, t[j].lo, t[j].hi);
        if (m != NULL) {
            t[j].memo = 1;
            t[j].L = m->L;
            t[j].H = m->H;
            t[j].step = LOC_FIRST;
        }
    }
    k = 0;
    for (int s = 0; s < n; s++) {
        const struct shard *sh = &ctr->sh[s];

        k += totals_cmds(&c[k], sh);
        for (int j = 0; j < 2; j++) {
            long long a = t[j].lo[s] < t[j].hi[s] ? t[j].lo[s] : t[j].hi[s];
            long long b = t[j].lo[s] > t[j].hi[s] ? t[j].lo[s] : t[j].hi[s];

            if (t[j].memo) {
                continue;
            }
            cmd_init(&c[k], sh->slot);
            cmd_str(&c[k], "ZREVRANGE");
            cmd_str(&c[k], sh->k_hits);
            cmd_ll(&c[k], a < 0 ? 0 : a);
            cmd_ll(&c[k], b);
            cmd_str(&c[k++], "WITHSCORES");
        }
    }
    for (int j = 0; j < 2; j++) {
        if (t[j].memo) {
            locate_cmds(ctr, &t[j], c, &k);
        }
    }
    ncmd = k;
    if (cluster_run(ctr->cl, c, ncmd, r, 1) != 0) {
        goto out;
    }
    k = 0;
    for (int s = 0; s < n; s++) {
        long long tot, drop;

        if (reply_num(r[k], &card[s]) != 0 || totals_of(r[k + 1], &tot, &drop) != 0) {
            bad_reply("totals", r[k]->type == REDIS_REPLY_ERROR ? r[k] : r[k + 1]);
            goto out;
        }
        U += card[s];
        page->total += tot;
        page->dropped += drop;
        ctr->sh[s].est = card[s] > 0 ? card[s] : 1;
        k += 2;
        for (int j = 0; j < 2; j++) {
            const redisReply *p = r[k++];
            long long a = t[j].lo[s] < t[j].hi[s] ? t[j].lo[s] : t[j].hi[s];
            long long base = a < 0 ? 0 : a, v;

            if (t[j].memo) {
                k--;
                continue;
            }
            if (p->type != REDIS_REPLY_ARRAY) {
                bad_reply("probe", p);
                goto out;
            }
            t[j].lo_val[s] = t[j].hi_val[s] = SHARDS_NONE;
            for (size_t e = 0; e + 1 < p->elements; e += 2) {
                long long rank = base + (long long)(e / 2);

                if (reply_num(p->element[e + 1], &v) != 0) {
                    bad_reply("probe", p);
                    goto out;
                }
                if (rank == t[j].lo[s]) {
                    t[j].lo_val[s] = v;
                }
                if (rank == t[j].hi[s]) {
                    t[j].hi_val[s] = v;
                }
            }
        }
    }
    /* Remembered brackets: their ZCOUNTs (and members) came with round 1;
     * a bracket that no longer holds its rank sends the caller round. */
    for (int j = 0; j < 2; j++) {
        long long above = 0, inside = 0;

        if (!t[j].memo) {
            continue;
        }
        if (locate_read(ctr, &t[j], r, &k) != 0) {
            goto out;
        }
        for (int s = 0; s < n; s++) {
            above += t[j].gt[s];
            inside += t[j].in[s];
        }
        if (t[j].R < U && !(above <= t[j].R && t[j].R < above + inside)) {
            memo_forget(ctr, t[j].R);
            rc = 1;
            goto out;
        }
        /* Before round 1's replies go: the members read point into them. */
        locate_next(&t[j], n);
    }
    free_round(r, ncmd);
    page->unique = U;
    if (offset >= U) {
        rc = 0; /* past the end: totals only */
        goto out;
    }
    /* Which ranks need locating: 0 and U are known. */
    for (int j = 0; j < 2; j++) {
        if (t[j].R == 0 || t[j].R >= U) {
            for (int s = 0; s < n; s++) {
                t[j].pos[s] = t[j].R == 0 ? 0 : card[s];
            }
            t[j].step = LOC_DONE;
        } else if (t[j].memo) {
            nt += t[j].step != LOC_DONE;
        } else {
            shards_bracket(n, t[j].R, card, t[j].lo, t[j].lo_val, t[j].hi_val, &t[j].L, &t[j].H);
            t[j].step = LOC_FIRST;
            nt++;
        }
    }
    /* Rounds 2...: ZCOUNTs, bracket members, bisection when wide. */
    trips = 1;
    for (int round = 0; nt > 0; round++, trips++) {
        if (round > BISECT_MAX + 2) {
            log_error("Redis report: rank not located after %d rounds", round);
            goto out;
        }
        k = 0;
        for (int j = 0; j < 2; j++) {
            locate_cmds(ctr, &t[j], c, &k);
        }
        ncmd = k;
        if (cluster_run(ctr->cl, c, ncmd, r, 1) != 0) {
            goto out;
        }
        k = 0;
        nt = 0;
        for (int j = 0; j < 2; j++) {
            if (t[j].step == LOC_DONE) {
                continue;
            }
            if (locate_read(ctr, &t[j], r, &k) != 0) {
                goto out;
            }
            locate_next(&t[j], n);
            nt += t[j].step != LOC_DONE;
        }
        /* Bracket members are borrowed from these replies: the merge in
         * locate_next() is done with them, so they can go now. */
        free_round(r, ncmd);
    }
    for (int j = 0; j < 2; j++) {
        if (t[j].R > 0 && t[j].R < U) {
            memo_put(ctr, t[j].R, t[j].L, t[j].H);
        }
    }
    /* Last round: the page, by rank in every shard that has part of it. */
    k = 0;
    for (int s = 0; s < n; s++) {
        long long a = t[0].pos[s], b = t[1].pos[s];

        /* Under concurrent writes the two ranks come from different
         * moments: never read more than a page from one shard. */
        if (b - a > limit) {
            b = a + limit;
            t[1].pos[s] = b;
        }
        if (b > a) {
            cmd_init(&c[k], ctr->sh[s].slot);
            cmd_str(&c[k], "ZREVRANGE");
            cmd_str(&c[k], ctr->sh[s].k_hits);
            cmd_ll(&c[k], a);
            cmd_ll(&c[k], b - 1);
            cmd_str(&c[k++], "WITHSCORES");
        }
    }
    ncmd = k;
    if (ncmd > 0 && cluster_run(ctr->cl, c, ncmd, r, 1) != 0) {
        goto out;
    }
    if (keep_replies(page, r, ncmd) != 0) {
        goto out;
    }
    kept = ((struct page_mem *)page->priv)->r;
    memset(r, 0, (size_t)ncmd * sizeof(redisReply *)); /* the page owns them now */
    items = calloc((size_t)limit * 2 + 1, sizeof(*items));
    runs = calloc((size_t)n, sizeof(*runs));
    page->entries = calloc((size_t)limit + 1, sizeof(*page->entries));
    if (items == NULL || runs == NULL || page->entries == NULL) {
        goto out;
    }
    k = 0;
    {
        size_t used = 0;

        for (int s = 0; s < n; s++) {
            long long a = t[0].pos[s], b = t[1].pos[s], got = 0;

            runs[s].items = items + used;
            if (b > a) {
                size_t room = (size_t)limit * 2 - used;

                got = parse_members(kept[k], items + used, room);
                if (got < 0) {
                    bad_reply("page", kept[k]);
                    goto out;
                }
                k++;
            }
            runs[s].n = (size_t)got;
            used += (size_t)got;
        }
    }
    page->n = shards_merge(n, runs, (size_t)limit, page->entries, NULL);
    log_debug("report offset %lld limit %lld: %d round trips", offset, limit, trips + 1);
    rc = 0;

out:
    if (r != NULL) {
        free_round(r, (int)maxcmd);
    }
    for (size_t i = 0; c != NULL && i < maxcmd; i++) {
        cmd_free(&c[i]);
    }
    free(runs);
    free(items);
    locate_free(&t[0]);
    locate_free(&t[1]);
    free(est);
    free(card);
    free(r);
    free(c);
    return rc;
}

int counters_page(struct counters *ctr, long long offset, long long limit,
                  struct counters_page *page)
{
    int rc;

    memset(page, 0, sizeof(*page));
    if (ctr->fatal || (!ctr->layout_ok && layout_check(ctr) != 0)) {
        return -1;
    }
    if (ctr->n == 1) {
        return page_single(ctr, offset, limit, page);
    }
    if (offset + limit <= TOP_MAX) {
        rc = page_top(ctr, offset, limit, page);
        if (rc <= 0) {
            return rc;
        }
    }
    rc = page_sharded(ctr, offset, limit, page, 1);
    if (rc == 1) {
        counters_page_free(page);
        rc = page_sharded(ctr, offset, limit, page, 0);
    }
    return rc;
}

void counters_page_free(struct counters_page *page)
{
    struct page_mem *mem = page->priv;

    if (mem != NULL) {
        for (int i = 0; i < mem->n; i++) {
            freeReplyObject(mem->r[i]);
        }
        free(mem);
    }
    free(page->entries);
    memset(page, 0, sizeof(*page));
}

/* ==== history: requests per 10-s interval (docs/API.md section 10) ======
 *
 * Layout: one hash per hour of wall clock and shard, P history:<epoch s /
 * 3600> standalone (P{t_i}history:<hour> for shard i in cluster mode),
 * field = the interval's index within the hour (0..359), value = requests
 * counted in it. The batch script adds each batch's interval tallies with
 * HINCRBY (under the part's seq check, so a retried part never adds twice)
 * and sets EXPIREAT to the hour's end + HISTORY_KEEP_S, so every point is
 * kept at least 25 h and memory is bounded. A batch's tallies go to one of
 * its parts, so a point is the sum over the shards. A read of N points is
 * one EVAL per shard that HMGETs exactly those N fields from the at most
 * 25 hours they span: O(shards x points), in one round trip. */

#define HISTORY_KEEP_S ((int64_t)25 * 3600)

/* Read n intervals from `first` (interval index), filled with 0.
 * KEYS: the hour hashes from first's hour on, one per hour. ARGV: first,
 * n, intervals per hour. Returns n integers. */
static const char history_script[] =
    "local first, n, per = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local base = math.floor(first / per)\n"
    "local out = {}\n"
    "for k = 1, #KEYS do\n"
    "  local hour = base + k - 1\n"
    "  local lo = math.max(first, hour * per)\n"
    "  local hi = math.min(first + n - 1, hour * per + per - 1)\n"
    "  local fields = {}\n"
    "  for i = lo, hi do fields[#fields + 1] = string.format('%d', i - hour * per) end\n"
    "  if #fields > 0 then\n"
    "    local vals = redis.call('HMGET', KEYS[k], unpack(fields))\n"
    "    for j = 1, #vals do out[#out + 1] = tonumber(vals[j] or '0') or 0 end\n"
    "  end\n"
    "end\n"
    "return out\n";

static void history_key(const struct counters *ctr, int i, int64_t hour, char *buf)
{
    const char *p = ctr->cfg->redis_prefix;

    if (cluster_mode(ctr->cl)) {
        snprintf(buf, KEY_MAX, "%s{%s}history:%lld", p, ctr->sh[i].tag, (long long)hour);
    } else {
        snprintf(buf, KEY_MAX, "%shistory:%lld", p, (long long)hour);
    }
}

static int64_t history_expire_at(int64_t hour)
{
    return (hour + 1) * 3600 + HISTORY_KEEP_S;
}

int counters_history(struct counters *ctr, int64_t first, size_t n, long long *counts)
{
    int64_t h0 = first / HISTORY_PER_HOUR;
    int64_t h1 = (first + (int64_t)n - 1) / HISTORY_PER_HOUR;
    int hours = (int)(h1 - h0 + 1), rc = -1, ns = ctr->n;
    struct round rd;

    if (n == 0 || first < 0 || h1 - h0 + 1 > COUNTERS_HISTORY_HOURS_MAX || ctr->fatal ||
        (!ctr->layout_ok && layout_check(ctr) != 0)) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        counts[i] = 0;
    }
    if (round_open(&rd, ns, (size_t)ns * (size_t)hours) != 0) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        struct cmd *c = &rd.c[s];
        char *k = rd.keys + (size_t)s * (size_t)hours * KEY_MAX;

        cmd_init_cap(c, ctr->sh[s].slot, 6 + hours);
        cmd_str(c, "EVAL");
        cmd_str(c, history_script);
        cmd_ll(c, hours);
        for (int h = 0; h < hours; h++) {
            history_key(ctr, s, h0 + h, k + (size_t)h * KEY_MAX);
            cmd_str(c, k + (size_t)h * KEY_MAX);
        }
        cmd_ll(c, first);
        cmd_ll(c, (long long)n);
        cmd_ll(c, HISTORY_PER_HOUR);
    }
    if (cluster_run(ctr->cl, rd.c, ns, rd.r, 1) != 0) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        const redisReply *r = rd.r[s];

        if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
            bad_reply("history", r);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            long long v;

            if (reply_num(r->element[i], &v) != 0) {
                bad_reply("history", r);
                goto out;
            }
            counts[i] += v;
        }
    }
    rc = 0;

out:
    round_close(&rd);
    return rc;
}

/* ==== reset (docs/API.md section 11) =====================================
 *
 * One script per shard, so each shard's reset is atomic with respect to
 * every batch part: a part is applied wholly before or wholly after it.
 * It removes the shard's counts, total, dropped-hit count and the history
 * hashes of every hour a point can still exist in (their EXPIREAT is at
 * most HISTORY_KEEP_S past the hour's end; the window also covers a wall
 * clock a little ahead). UNLINK frees a large sorted set in the background
 * instead of stalling Redis. Writer seq keys stay, so a part retried after
 * the reset is still recognised as applied. Test runs are not touched.
 * With several shards the reset is one script per shard sent in one round
 * trip, not one transaction: a batch split over shards may land partly
 * before and partly after it.
 * KEYS: hits, total, dropped, history hashes. Returns the removed
 * {total, unique, dropped}. */
#define RESET_HOURS_AHEAD 1
#define RESET_HOURS       (HISTORY_KEEP_S / 3600 + 3 + RESET_HOURS_AHEAD)

static const char reset_script[] = "local total = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
                                   "local unique = redis.call('ZCARD', KEYS[1])\n"
                                   "local dropped = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
                                   "redis.call('UNLINK', unpack(KEYS))\n"
                                   "return {total, unique, dropped}\n";

int counters_reset(struct counters *ctr, int64_t now_s, struct counters_totals *out)
{
    int64_t hour = now_s / 3600;
    int ns = ctr->n, rc = -1;
    struct round rd;

    memset(out, 0, sizeof(*out));
    if (round_open(&rd, ns, (size_t)ns * RESET_HOURS) != 0 || ctr->fatal ||
        (!ctr->layout_ok && layout_check(ctr) != 0)) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        const struct shard *sh = &ctr->sh[s];
        struct cmd *c = &rd.c[s];
        char *k = rd.keys + (size_t)s * RESET_HOURS * KEY_MAX;

        cmd_init_cap(c, sh->slot, 6 + RESET_HOURS);
        cmd_str(c, "EVAL");
        cmd_str(c, reset_script);
        cmd_ll(c, 3 + RESET_HOURS);
        cmd_str(c, sh->k_hits);
        cmd_str(c, sh->k_total);
        cmd_str(c, sh->k_dropped);
        for (int h = 0; h < RESET_HOURS; h++) {
            history_key(ctr, s, hour + RESET_HOURS_AHEAD - h, k + (size_t)h * KEY_MAX);
            cmd_str(c, k + (size_t)h * KEY_MAX);
        }
    }
    /* Not retried on a stale connection: a reset is not worth risking
     * twice (the second would remove hits counted in between). */
    if (cluster_run(ctr->cl, rd.c, ns, rd.r, 0) != 0) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        const redisReply *r = rd.r[s];
        long long v[3];

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            reply_num(r->element[0], &v[0]) != 0 || reply_num(r->element[1], &v[1]) != 0 ||
            reply_num(r->element[2], &v[2]) != 0) {
            bad_reply("reset", r);
            goto out;
        }
        out->total += v[0];
        out->unique += v[1];
        out->dropped += v[2];
    }
    rc = 0;

out:
    round_close(&rd);
    return rc;
}

int counters_totals(struct counters *ctr, struct counters_totals *out)
{
    int ns = ctr->n, rc = -1;
    struct round rd;

    memset(out, 0, sizeof(*out));
    if (round_open(&rd, 2 * ns, 0) != 0 || ctr->fatal ||
        (!ctr->layout_ok && layout_check(ctr) != 0)) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        totals_cmds(rd.c + (size_t)s * 2, &ctr->sh[s]);
    }
    if (cluster_run(ctr->cl, rd.c, 2 * ns, rd.r, 1) != 0) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        redisReply **rs = rd.r + (size_t)s * 2;
        long long card, tot, drop;

        if (reply_num(rs[0], &card) != 0 || totals_of(rs[1], &tot, &drop) != 0) {
            bad_reply("totals", rs[0]->type == REDIS_REPLY_ERROR ? rs[0] : rs[1]);
            goto out;
        }
        out->unique += card;
        out->total += tot;
        out->dropped += drop;
    }
    rc = 0;

out:
    round_close(&rd);
    return rc;
}

/* ==== import of a standalone dataset (import.c) ===========================
 *
 * reqstats --import copies a standalone dataset into an empty cluster
 * dataset: counts by absolute ZADD into their shards, each shard's total
 * set to the sum of its counts, the dropped count and the history onto
 * shard 0 (both are summed over the shards when read). Every write sets a
 * value rather than adding to it, so an interrupted import run again
 * writes the same values: P{meta}import says "running" until the totals
 * are written, then "done". Writer seq keys are not copied (the app
 * processes that wrote them are stopped), nor are test runs. */

#define IMPORT_RUNNING "running"
#define IMPORT_DONE    "done"

int counters_shards(const struct counters *ctr)
{
    return ctr->n;
}

static void import_key(const struct counters *ctr, char *buf)
{
    snprintf(buf, KEY_MAX, "%s{meta}import", ctr->cfg->redis_prefix);
}

/* SET the import marker. Returns 0 or -1. */
static int import_mark(struct counters *ctr, const char *state)
{
    char key[KEY_MAX];
    struct cmd c;
    redisReply *r = NULL;
    int rc = -1;

    import_key(ctr, key);
    cmd_init(&c, ctr->layout_slot);
    cmd_str(&c, "SET");
    cmd_str(&c, key);
    cmd_str(&c, state);
    if (cluster_run(ctr->cl, &c, 1, &r, 1) == 0) {
        rc = r->type == REDIS_REPLY_STATUS ? 0 : bad_reply("import marker", r);
        freeReplyObject(r);
    }
    return rc;
}

enum counters_import counters_import_begin(struct counters *ctr)
{
    char key[KEY_MAX];
    struct counters_totals t;
    struct cmd c;
    redisReply *r = NULL;
    enum counters_import rc = COUNTERS_IMPORT_FAILED;
    int running;

    if (!cluster_mode(ctr->cl) || (!ctr->layout_ok && layout_check(ctr) != 0) ||
        counters_totals(ctr, &t) != 0) {
        return ctr->fatal ? COUNTERS_IMPORT_LAYOUT : COUNTERS_IMPORT_FAILED;
    }
    import_key(ctr, key);
    cmd_init(&c, ctr->layout_slot);
    cmd_str(&c, "GET");
    cmd_str(&c, key);
    if (cluster_run(ctr->cl, &c, 1, &r, 1) != 0) {
        return COUNTERS_IMPORT_FAILED;
    }
    running = r->type == REDIS_REPLY_STRING && strcmp(r->str, IMPORT_RUNNING) == 0;
    if (r->type == REDIS_REPLY_STRING && strcmp(r->str, IMPORT_DONE) == 0) {
        rc = COUNTERS_IMPORT_DONE_ALREADY;
    } else if (r->type != REDIS_REPLY_NIL && !running) {
        bad_reply("import marker", r);
    } else if (!running && (t.total != 0 || t.unique != 0 || t.dropped != 0)) {
        rc = COUNTERS_IMPORT_NOT_EMPTY;
    } else {
        rc = COUNTERS_IMPORT_GO; /* empty, or interrupted: the same values again */
    }
    freeReplyObject(r);
    if (rc == COUNTERS_IMPORT_GO && import_mark(ctr, IMPORT_RUNNING) != 0) {
        rc = COUNTERS_IMPORT_FAILED;
    }
    return rc;
}

int counters_import_entries(struct counters *ctr, const struct shards_item *e, size_t n,
                            long long *sums)
{
    int ns = ctr->n, used = 0, rc = -1;
    size_t *count = calloc((size_t)ns, sizeof(*count));
    int *at = calloc((size_t)ns, sizeof(*at));
    int *of = calloc(n > 0 ? n : 1, sizeof(*of)); /* each entry's shard */
    struct round rd = {0};

    if (count == NULL || at == NULL || of == NULL) {
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        of[k] = shards_of(e[k].path, e[k].len, ns);
        count[of[k]]++;
    }
    for (int s = 0; s < ns; s++) {
        at[s] = count[s] > 0 ? used++ : -1;
    }
    if (used == 0) {
        rc = 0;
        goto out;
    }
    if (round_open(&rd, used, 0) != 0) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        if (at[s] < 0) {
            continue;
        }
        if (cmd_init_cap(&rd.c[at[s]], ctr->sh[s].slot, 2 + 2 * (int)count[s]) != 0) {
            goto out;
        }
        cmd_str(&rd.c[at[s]], "ZADD");
        cmd_str(&rd.c[at[s]], ctr->sh[s].k_hits);
    }
    for (size_t k = 0; k < n; k++) {
        cmd_ll(&rd.c[at[of[k]]], e[k].count);
        cmd_bin(&rd.c[at[of[k]]], e[k].path, e[k].len);
        sums[of[k]] += e[k].count;
    }
    if (cluster_run(ctr->cl, rd.c, used, rd.r, 1) != 0) {
        goto out;
    }
    rc = 0;
    for (int i = 0; i < used; i++) {
        if (rd.r[i]->type != REDIS_REPLY_INTEGER) {
            rc = bad_reply("import", rd.r[i]);
        }
    }

out:
    round_close(&rd);
    free(of);
    free(at);
    free(count);
    return rc;
}

int counters_import_history(struct counters *ctr, int64_t hour, const long long *counts,
                            int64_t now_s)
{
    char key[KEY_MAX];
    struct cmd c[3];
    redisReply *r[3] = {0};
    int fields = 0, rc = -1;

    for (int i = 0; i < HISTORY_PER_HOUR; i++) {
        fields += counts[i] != 0;
    }
    if (fields == 0 || history_expire_at(hour) <= now_s) {
        return 0; /* nothing, or gone by now anyway */
    }
    history_key(ctr, 0, hour, key);
    cmd_init(&c[0], ctr->sh[0].slot);
    cmd_init(&c[2], ctr->sh[0].slot);
    if (cmd_init_cap(&c[1], ctr->sh[0].slot, 2 + 2 * fields) != 0) {
        return -1;
    }
    /* DEL first: a field is the whole interval's count, not an addition. */
    cmd_str(&c[0], "DEL");
    cmd_str(&c[0], key);
    cmd_str(&c[1], "HSET");
    cmd_str(&c[1], key);
    for (int i = 0; i < HISTORY_PER_HOUR; i++) {
        if (counts[i] != 0) {
            cmd_ll(&c[1], i);
            cmd_ll(&c[1], counts[i]);
        }
    }
    cmd_str(&c[2], "EXPIREAT");
    cmd_str(&c[2], key);
    cmd_ll(&c[2], (long long)history_expire_at(hour));
    if (cluster_run(ctr->cl, c, 3, r, 1) == 0) {
        rc = r[1]->type == REDIS_REPLY_INTEGER ? 1 : bad_reply("import history", r[1]);
        free_round(r, 3);
    }
    cmd_free(&c[1]);
    return rc;
}

int counters_import_end(struct counters *ctr, const long long *sums, long long dropped)
{
    int ns = ctr->n, rc = -1;
    struct round rd;

    if (round_open(&rd, ns + 1, 0) != 0) {
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        cmd_init(&rd.c[s], ctr->sh[s].slot);
        cmd_str(&rd.c[s], "SET");
        cmd_str(&rd.c[s], ctr->sh[s].k_total);
        cmd_ll(&rd.c[s], sums[s]);
    }
    cmd_init(&rd.c[ns], ctr->sh[0].slot);
    cmd_str(&rd.c[ns], "SET");
    cmd_str(&rd.c[ns], ctr->sh[0].k_dropped);
    cmd_ll(&rd.c[ns], dropped);
    if (cluster_run(ctr->cl, rd.c, ns + 1, rd.r, 1) != 0) {
        goto out;
    }
    for (int i = 0; i <= ns; i++) {
        if (rd.r[i]->type != REDIS_REPLY_STATUS) {
            bad_reply("import totals", rd.r[i]);
            goto out;
        }
    }
    rc = import_mark(ctr, IMPORT_DONE);

out:
    round_close(&rd);
    return rc;
}
