/*
 * route.c - cluster routes (see route.h).
 *
 * Thread: shard 0, except where route.h says otherwise.
 */
#include "route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "conn.h"
#include "dur.h"
#include "dispatch.h"
#include "log.h"
#include "rproxy.h"
#include "shard.h"
#include "strmap.h"
#include "subject.h"
#include "xalloc.h"
#include "xshard.h"

#define ROUTE_VERSION 1
#define BACKOFF_MIN_NS (100ull * 1000000)
#define BACKOFF_MAX_NS (2000ull * 1000000)
#define INTEREST_BATCH 512
#define PING_EVERY_NS (1000ull * 1000000) /* a route says something at least this often */
#define ROUTE_DEAD_NS (3500ull * 1000000) /* silent this long: the route is dead */
#define JSON_CAP 16384

struct rpeer {
    struct cluster *cl;
    unsigned slot;
    bool used;
    bool outgoing;   /* we dial addr */
    bool configured; /* from --routes: kept for good */
    char addr[280];  /* dial address, "" for a route we accepted */
    struct sockaddr_storage sa;
    socklen_t salen;
    int dial_fd; /* connect in flight, else -1 */
    struct conn *conn;
    bool up; /* RouteConnect exchanged */
    char node[64];
    char listen[280]; /* the peer's --cluster-listen, from its RouteConnect */
    uint64_t next_dial_ns, backoff_ns;
    uint64_t last_rx_ns, last_ping_ns; /* keepalive: a silent route is closed */
    uint64_t msgs_in, msgs_out;
    struct strmap keys; /* its interest: "pattern\0queue" */
};

/* A node that owns durable topics, as far as this node knows: kept while
 * its route is down, so publishes on its subjects get UNAVAILABLE. */
struct owner {
    char node[64];
    uint32_t ntopics;
    struct topic_ent *topics; /* id unused */
};

struct cluster {
    struct server *srv;
    struct owner owners[CONFIG_MAX_ROUTES];
    uint32_t nowners;
    /* Read by every shard (route_remote_*): set on shard 0. */
    _Atomic bool owner_up[CONFIG_MAX_ROUTES];
    _Atomic uint32_t owner_slot[CONFIG_MAX_ROUTES];
    int listen_fd;
    bool accept_armed, stopping;
    char listen_addr[280];
    char node[64];
    struct rpeer peers[CONFIG_MAX_ROUTES];
    struct strmap nodekeys; /* this node's keys -> shards that have them */
    pthread_mutex_t json_mu;
    char json[JSON_CAP];
    size_t json_len;
};

static void json_refresh(struct cluster *cl);
static void send_topics(struct shard *sh, struct conn *c);

/* ---- Main thread ---- */

static int resolve(const char *hostport, struct sockaddr_storage *sa, socklen_t *salen)
{
    char host[256], ps[8];
    uint16_t port;
    struct addrinfo hints = {0}, *res;
    if (config_parse_hostport(hostport, host, sizeof(host), &port))
        return -1;
    snprintf(ps, sizeof(ps), "%u", port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, ps, &hints, &res))
        return -1;
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static struct rpeer *slot_new(struct cluster *cl)
{
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++) {
        struct rpeer *p = &cl->peers[i];
        if (p->used)
            continue;
        memset(p, 0, sizeof(*p));
        p->cl = cl;
        p->slot = i;
        p->used = true;
        p->dial_fd = -1;
        strmap_init(&p->keys);
        return p;
    }
    return NULL;
}

/* Add an address to dial (configured or learned). NULL if full or bad. */
static struct rpeer *add_dial(struct cluster *cl, const char *addr, bool configured)
{
    struct rpeer *p;
    struct sockaddr_storage sa;
    socklen_t sl;
    if (resolve(addr, &sa, &sl))
        return NULL;
    p = slot_new(cl);
    if (!p)
        return NULL;
    p->outgoing = true;
    p->configured = configured;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->sa = sa;
    p->salen = sl;
    p->backoff_ns = BACKOFF_MIN_NS;
    return p;
}

/* See route.h. */
int route_server_init(struct server *srv, char *err, size_t errlen)
{
    struct config *cfg = &srv->cfg;
    struct cluster *cl;
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    char hp[300], buf[sizeof(cfg->routes)], *save = NULL;
    int one = 1, fd;
    bool v6 = strchr(cfg->cluster_host, ':') != NULL;

    srv->cluster = NULL;
    if (!cfg->cluster_host[0])
        return 0;
    snprintf(hp, sizeof(hp), "%s%s%s:%u", v6 ? "[" : "", cfg->cluster_host, v6 ? "]" : "",
             cfg->cluster_port);
    if (resolve(hp, &sa, &sl)) {
        snprintf(err, errlen, "cannot resolve cluster address %s", hp);
        return -1;
    }
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&sa, sl) || listen(fd, 128)) {
        snprintf(err, errlen, "cannot listen for routes on %s: %s", hp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    cl = xcalloc(1, sizeof(*cl));
    cl->srv = srv;
    cl->listen_fd = fd;
    snprintf(cl->listen_addr, sizeof(cl->listen_addr), "%s%s%s:%u", v6 ? "[" : "",
             cfg->cluster_host, v6 ? "]" : "",
             ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                            : ((struct sockaddr_in *)&sa)->sin_port));
    if (cfg->node_name[0])
        snprintf(cl->node, sizeof(cl->node), "%s", cfg->node_name);
    else
        snprintf(cl->node, sizeof(cl->node), "n-%s", srv->server_id);
    strmap_init(&cl->nodekeys);
    pthread_mutex_init(&cl->json_mu, NULL);
    strcpy(buf, cfg->routes);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, cl->listen_addr) != 0 && !add_dial(cl, t, true))
            log_warn("cluster: cannot use route %s", t);
    srv->cluster = cl;
    json_refresh(cl); /* answer $SYS.REQ.CLUSTER before the first tick */
    log_info("cluster %s: node %s, routes on %s", cfg->cluster_name, cl->node, cl->listen_addr);
    return 0;
}

/* See route.h. */
void route_server_fini(struct server *srv)
{
    struct cluster *cl = srv->cluster;
    if (!cl)
        return;
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++) {
        struct rpeer *p = &cl->peers[i];
        if (!p->used)
            continue;
        if (p->dial_fd >= 0)
            close(p->dial_fd);
        strmap_fini(&p->keys);
    }
    strmap_fini(&cl->nodekeys);
    for (uint32_t i = 0; i < cl->nowners; i++)
        free(cl->owners[i].topics);
    pthread_mutex_destroy(&cl->json_mu);
    if (cl->listen_fd >= 0)
        close(cl->listen_fd);
    free(cl);
    srv->cluster = NULL;
}

/* ---- Frames ---- */

static void send_connect(struct cluster *cl, struct conn *c)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__RouteConnect rc = RINGMQ__ROUTE_CONNECT__INIT;
    char *peers[CONFIG_MAX_ROUTES];
    size_t np = 0;
    rc.version = ROUTE_VERSION;
    rc.cluster = cl->srv->cfg.cluster_name;
    rc.node = cl->node;
    rc.secret = cl->srv->cfg.cluster_secret[0] ? cl->srv->cfg.cluster_secret : NULL;
    rc.listen = cl->listen_addr;
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++) {
        struct rpeer *p = &cl->peers[i];
        if (p->used && p->up && p->listen[0])
            peers[np++] = p->listen;
    }
    rc.n_peers = np;
    rc.peers = peers;
    f.kind_case = RINGMQ__FRAME__KIND_ROUTE_CONNECT;
    f.route_connect = &rc;
    conn_send_frame(c, &f);
}

struct keyref {
    const char *key; /* "pattern\0queue", klen bytes, queue not NUL-terminated */
    size_t klen;
};

/* Send n keys as one RouteInterest (add or del). */
static void send_interest(struct conn *c, const struct keyref *keys, size_t n, bool add)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__RouteInterest ri = RINGMQ__ROUTE_INTEREST__INIT;
    char *pat[INTEREST_BATCH], *q[INTEREST_BATCH], *buf;
    size_t total = 0, off = 0;
    for (size_t i = 0; i < n; i++)
        total += keys[i].klen + 1;
    buf = xmalloc(total ? total : 1);
    for (size_t i = 0; i < n; i++) {
        size_t pl = strnlen(keys[i].key, keys[i].klen);
        memcpy(buf + off, keys[i].key, keys[i].klen);
        buf[off + keys[i].klen] = '\0';
        pat[i] = buf + off;
        q[i] = pl < keys[i].klen ? buf + off + pl + 1 : buf + off + keys[i].klen;
        off += keys[i].klen + 1;
    }
    if (add) {
        ri.n_add_pattern = ri.n_add_queue = n;
        ri.add_pattern = pat;
        ri.add_queue = q;
    } else {
        ri.n_del_pattern = ri.n_del_queue = n;
        ri.del_pattern = pat;
        ri.del_queue = q;
    }
    f.kind_case = RINGMQ__FRAME__KIND_ROUTE_INTEREST;
    f.route_interest = &ri;
    conn_send_frame(c, &f);
    free(buf);
}

/* The whole interest of this node, to a route that just came up. */
static void send_all_interest(struct cluster *cl, struct conn *c)
{
    struct keyref keys[INTEREST_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < cl->nodekeys.cap; i++) {
        if (!cl->nodekeys.ents[i].key)
            continue;
        keys[n].key = cl->nodekeys.ents[i].key;
        keys[n++].klen = cl->nodekeys.ents[i].klen;
        if (n == INTEREST_BATCH) {
            send_interest(c, keys, n, true);
            n = 0;
        }
    }
    if (n)
        send_interest(c, keys, n, true);
}

static bool route_usable(const struct rpeer *p)
{
    return p->up && p->conn && !(p->conn->flags & (CONN_F_CLOSING | CONN_F_DRAINING));
}

/* See route.h. */
void route_node_interest(struct shard *sh, const char *key, size_t klen, bool add)
{
    struct cluster *cl = sh->srv->cluster;
    struct strmap_ent *e;
    struct keyref k = {key, klen};
    if (add) {
        e = strmap_put(&cl->nodekeys, key, klen);
        if (e->count++ > 0)
            return;
    } else {
        e = strmap_get(&cl->nodekeys, key, klen);
        if (!e || --e->count > 0)
            return;
    }
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++)
        if (cl->peers[i].used && route_usable(&cl->peers[i]))
            send_interest(cl->peers[i].conn, &k, 1, add);
    if (!add)
        strmap_del(&cl->nodekeys, e);
}

/* The peer in slot if its route is up, else NULL. */
static struct rpeer *up_peer(struct shard *sh, unsigned slot)
{
    struct cluster *cl = sh->srv->cluster;
    struct rpeer *p;
    if (!cl || slot >= CONFIG_MAX_ROUTES)
        return NULL;
    p = &cl->peers[slot];
    return p->used && route_usable(p) ? p : NULL;
}

/* See route.h. */
void route_forward(struct shard *sh, unsigned slot, struct msgbuf *body, bool plain,
                   const uint64_t *g, unsigned ng, bool publish)
{
    struct rpeer *p = up_peer(sh, slot);
    uint8_t pre[CODEC_ROUTE_PREFIX_MAX];
    uint32_t g32[CODEC_ROUTE_GROUPS];
    size_t pl;
    if (!p)
        return;
    if (ng > CODEC_ROUTE_GROUPS)
        ng = CODEC_ROUTE_GROUPS;
    for (unsigned i = 0; i < ng; i++)
        g32[i] = (uint32_t)g[i];
    pl = codec_route_prefix(pre, body->len, plain, g32, ng, publish);
    /* A small message is copied into the route's current send buffer
     * (one iovec for many messages); a large one goes by reference. */
    if (pl + body->len <= CONN_COPY_MAX
            ? conn_enqueue_copy(p->conn, pre, pl, body->data, body->len, false)
            : conn_enqueue(p->conn, pre, pl, body, false)) {
        p->msgs_out++;
        stat_add(&sh->stats.route_out, 1);
    }
}

/* See route.h. */
bool route_send_raw(struct shard *sh, unsigned slot, const uint8_t *frame, size_t len)
{
    struct rpeer *p = up_peer(sh, slot);
    struct msgbuf *m;
    if (!p)
        return false;
    m = msgbuf_new(&sh->pool, (uint32_t)len);
    memcpy(m->data, frame, len);
    conn_enqueue(p->conn, NULL, 0, m, true);
    xshard_unref(sh, m);
    return true;
}

/* See route.h. */
bool route_slot_is(struct shard *sh, unsigned slot, const char *node)
{
    struct rpeer *p = up_peer(sh, slot);
    return p && strcmp(p->node, node) == 0;
}

/* See route.h. */
bool route_send_frame(struct shard *sh, unsigned slot, const Ringmq__Frame *f)
{
    struct rpeer *p = up_peer(sh, slot);
    if (!p)
        return false;
    conn_send_frame(p->conn, f);
    return true;
}

/* ---- Peer slots and the mesh ---- */

static bool known_addr(struct cluster *cl, const char *addr)
{
    if (strcmp(addr, cl->listen_addr) == 0)
        return true;
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++) {
        struct rpeer *p = &cl->peers[i];
        if (p->used && (strcmp(p->addr, addr) == 0 || (p->up && strcmp(p->listen, addr) == 0)))
            return true;
    }
    return false;
}

static void learn(struct cluster *cl, const char *addr)
{
    char host[256];
    uint16_t port;
    if (!addr || !*addr || known_addr(cl, addr) ||
        config_parse_hostport(addr, host, sizeof(host), &port) || port == 0)
        return;
    if (add_dial(cl, addr, false))
        log_info("cluster: learnt route %s", addr);
}

/* The node that dialled route p. */
static const char *initiator(const struct cluster *cl, const struct rpeer *p)
{
    return p->outgoing ? cl->node : p->node;
}

/* Another route to p->node is up: keep one, close the other. true if p stays. */
static bool resolve_duplicate(struct cluster *cl, struct rpeer *p)
{
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++) {
        struct rpeer *q = &cl->peers[i];
        const char *lo;
        if (q == p || !q->used || !q->up || strcmp(q->node, p->node) != 0)
            continue;
        lo = strcmp(cl->node, p->node) < 0 ? cl->node : p->node;
        /* Keep the one dialled by the smaller name; on a tie, the older. */
        if (strcmp(initiator(cl, p), lo) == 0 && strcmp(initiator(cl, q), lo) != 0) {
            log_info("cluster: two routes to %s; keeping the one %s dialled", p->node, lo);
            conn_close(q->conn);
            return true;
        }
        log_info("cluster: two routes to %s; keeping the older", p->node);
        return false;
    }
    return true;
}

static void on_route_connect(struct conn *c, const struct codec_span *sp)
{
    struct rpeer *p = c->route;
    struct cluster *cl = p->cl;
    struct config *cfg = &cl->srv->cfg;
    Ringmq__RouteConnect *m = ringmq__route_connect__unpack(NULL, sp->len, sp->p);
    const char *why = NULL;

    if (!m)
        why = "malformed RouteConnect";
    else if (m->version != ROUTE_VERSION)
        why = "route protocol version not supported";
    else if (strcmp(m->cluster, cfg->cluster_name) != 0)
        why = "cluster name differs";
    else if (cfg->cluster_secret[0] && (!m->secret || strcmp(m->secret, cfg->cluster_secret)))
        why = "bad cluster secret";
    else if (strcmp(m->node, cl->node) == 0)
        why = "a route to this node itself";
    else if (p->up)
        why = "RouteConnect twice";
    if (why) {
        log_warn("cluster: route %s (%s) refused: %s", c->peer, m && m->node ? m->node : "?", why);
        if (m)
            ringmq__route_connect__free_unpacked(m, NULL);
        conn_close(c);
        return;
    }
    snprintf(p->node, sizeof(p->node), "%s", m->node);
    snprintf(p->listen, sizeof(p->listen), "%s", m->listen ? m->listen : "");
    c->flags |= CONN_F_READY;
    c->deadline_ns = 0;
    snprintf(c->name, sizeof(c->name), "route:%.56s", p->node);
    if (!p->outgoing)
        send_connect(cl, c);
    if (!resolve_duplicate(cl, p)) {
        ringmq__route_connect__free_unpacked(m, NULL);
        conn_close(c);
        return;
    }
    p->up = true;
    p->backoff_ns = BACKOFF_MIN_NS;
    p->last_rx_ns = p->last_ping_ns = c->sh->now_ns;
    log_info("cluster: route to %s (%s, %s) is up", p->node, p->listen,
             p->outgoing ? "dialled" : "accepted");
    send_all_interest(cl, c);
    send_topics(c->sh, c);
    learn(cl, m->listen);
    for (size_t i = 0; i < m->n_peers; i++)
        learn(cl, m->peers[i]);
    ringmq__route_connect__free_unpacked(m, NULL);
}

static void interest_key(struct shard *sh, struct rpeer *p, const char *pat, const char *q,
                         bool add)
{
    char key[SUBJECT_MAX_LEN * 2 + 2];
    size_t pl = strlen(pat), ql = q ? strlen(q) : 0;
    struct strmap_ent *e;
    if (pl > SUBJECT_MAX_LEN || ql > SUBJECT_MAX_LEN || subject_check_pattern(pat, pl))
        return;
    memcpy(key, pat, pl + 1);
    memcpy(key + pl + 1, q ? q : "", ql + 1);
    if (add) {
        e = strmap_put(&p->keys, key, pl + 1 + ql);
        if (e->count++ == 0)
            xshard_peer_interest(sh, (uint16_t)(XORIGIN_PEER + p->slot), key, pl + 1 + ql, true);
        else
            e->count = 1; /* a node's key is there or not */
    } else {
        e = strmap_get(&p->keys, key, pl + 1 + ql);
        if (!e)
            return;
        strmap_del(&p->keys, e);
        xshard_peer_interest(sh, (uint16_t)(XORIGIN_PEER + p->slot), key, pl + 1 + ql, false);
    }
}

static void on_route_interest(struct conn *c, const struct codec_span *sp)
{
    struct rpeer *p = c->route;
    Ringmq__RouteInterest *m = ringmq__route_interest__unpack(NULL, sp->len, sp->p);
    if (!m) {
        log_warn("cluster: malformed RouteInterest from %s; closing", p->node);
        conn_close(c);
        return;
    }
    for (size_t i = 0; i < m->n_add_pattern; i++)
        interest_key(c->sh, p, m->add_pattern[i], i < m->n_add_queue ? m->add_queue[i] : NULL,
                     true);
    for (size_t i = 0; i < m->n_del_pattern; i++)
        interest_key(c->sh, p, m->del_pattern[i], i < m->n_del_queue ? m->del_queue[i] : NULL,
                     false);
    ringmq__route_interest__free_unpacked(m, NULL);
}

static void on_route_msg(struct conn *c, const struct codec_span *sp)
{
    struct rpeer *p = c->route;
    struct codec_msg m;
    uint32_t g[64];
    unsigned ng;
    bool plain, publish;
    if (codec_route_msg_parse(sp->p, sp->len, &m, &plain, g, &ng, 64, &publish) ||
        subject_check((const char *)m.subject.p, m.subject.len)) {
        log_warn("cluster: malformed RouteMsg from %s; closing", p->node);
        conn_close(c);
        return;
    }
    p->msgs_in++;
    stat_add(&c->sh->stats.route_in, 1);
    if (publish)
        topic_publish_from_route(c->sh, &m);
    else
        xshard_route_in(c->sh, &m, plain, g, ng);
}

/* ---- Durable topics owned by other nodes ---- */

static struct owner *owner_of(struct cluster *cl, const char *node, bool make)
{
    for (uint32_t i = 0; i < cl->nowners; i++)
        if (strcmp(cl->owners[i].node, node) == 0)
            return &cl->owners[i];
    if (!make || cl->nowners == CONFIG_MAX_ROUTES)
        return NULL;
    memset(&cl->owners[cl->nowners], 0, sizeof(cl->owners[0]));
    snprintf(cl->owners[cl->nowners].node, sizeof(cl->owners[0].node), "%s", node);
    return &cl->owners[cl->nowners++];
}

/* Give every shard a new table of the topics other nodes own. */
static void remote_publish(struct shard *sh, struct cluster *cl)
{
    uint32_t n = 0, k = 0;
    struct rtopic_table *t;
    for (uint32_t i = 0; i < cl->nowners; i++)
        n += cl->owners[i].ntopics;
    t = xcalloc(1, sizeof(*t) + n * sizeof(t->t[0]));
    atomic_init(&t->refs, 1);
    t->n = n;
    for (uint32_t i = 0; i < cl->nowners; i++)
        for (uint32_t j = 0; j < cl->owners[i].ntopics; j++) {
            t->t[k].owner = i;
            memcpy(t->t[k].node, cl->owners[i].node, sizeof(t->t[k].node));
            t->t[k++].topic = cl->owners[i].topics[j];
        }
    xshard_rtopics(sh, t);
}

static void on_route_topics(struct conn *c, const struct codec_span *sp)
{
    struct rpeer *p = c->route;
    struct cluster *cl = p->cl;
    Ringmq__RouteTopics *m = ringmq__route_topics__unpack(NULL, sp->len, sp->p);
    struct owner *o;
    if (!m) {
        log_warn("cluster: malformed RouteTopics from %s; closing", p->node);
        conn_close(c);
        return;
    }
    o = owner_of(cl, p->node, true);
    if (o) {
        free(o->topics);
        o->topics = xcalloc(m->n_topics + 1, sizeof(*o->topics));
        o->ntopics = 0;
        for (size_t i = 0; i < m->n_topics; i++) {
            struct topic_ent *e = &o->topics[o->ntopics];
            Ringmq__RouteTopic *rt = m->topics[i];
            if (!dur_name_ok(rt->name) || rt->n_subjects < 1 || rt->n_subjects > STORE_PATTERNS_MAX)
                continue;
            snprintf(e->name, sizeof(e->name), "%s", rt->name);
            for (size_t k = 0; k < rt->n_subjects; k++)
                if (strlen(rt->subjects[k]) <= STORE_PATTERN_MAX &&
                    subject_check_pattern(rt->subjects[k], strlen(rt->subjects[k])) == 0)
                    strcpy(e->pat[e->npat++], rt->subjects[k]);
            if (e->npat)
                o->ntopics++;
        }
        atomic_store(&cl->owner_slot[o - cl->owners], p->slot);
        atomic_store(&cl->owner_up[o - cl->owners], true);
        remote_publish(c->sh, cl);
    }
    ringmq__route_topics__free_unpacked(m, NULL);
}

/* Our own topics (sh->topics of shard 0), to one route. */
static void send_topics(struct shard *sh, struct conn *c)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__RouteTopics rts = RINGMQ__ROUTE_TOPICS__INIT;
    struct topic_table *tab = sh->topics;
    uint32_t n = tab ? tab->n : 0;
    Ringmq__RouteTopic *rt = xcalloc(n + 1, sizeof(*rt)), **rtp = xcalloc(n + 1, sizeof(*rtp));
    char **subj = xcalloc((size_t)(n + 1) * STORE_PATTERNS_MAX, sizeof(*subj));
    for (uint32_t i = 0; i < n; i++) {
        ringmq__route_topic__init(&rt[i]);
        rt[i].name = tab->t[i].name;
        rt[i].n_subjects = tab->t[i].npat;
        rt[i].subjects = subj + (size_t)i * STORE_PATTERNS_MAX;
        for (uint32_t k = 0; k < tab->t[i].npat; k++)
            rt[i].subjects[k] = tab->t[i].pat[k];
        rtp[i] = &rt[i];
    }
    rts.n_topics = n;
    rts.topics = rtp;
    f.kind_case = RINGMQ__FRAME__KIND_ROUTE_TOPICS;
    f.route_topics = &rts;
    conn_send_frame(c, &f);
    free(rt);
    free(rtp);
    free(subj);
}

/* See route.h. */
void route_topics_changed(struct shard *sh)
{
    struct cluster *cl = sh->srv->cluster;
    if (!cl)
        return;
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++)
        if (cl->peers[i].used && route_usable(&cl->peers[i]))
            send_topics(sh, cl->peers[i].conn);
}

/* See route.h. */
bool route_owner_slot(struct server *srv, uint32_t owner, unsigned *slot)
{
    struct cluster *cl = srv->cluster;
    if (!cl || owner >= CONFIG_MAX_ROUTES || !atomic_load(&cl->owner_up[owner]))
        return false;
    *slot = atomic_load(&cl->owner_slot[owner]);
    return true;
}

/* See route.h. */
void route_frame(struct conn *c, const uint8_t *body, size_t len)
{
    struct codec_span sp;
    int kind = codec_peek(body, len, &sp);
    c->route->last_rx_ns = c->sh->now_ns;
    if (kind == CODEC_K_ROUTE_CONNECT) {
        on_route_connect(c, &sp);
        return;
    }
    if (!c->route->up) {
        log_warn("cluster: route %s sent frame kind %d before RouteConnect; closing", c->peer,
                 kind);
        conn_close(c);
        return;
    }
    switch (kind) {
    case CODEC_K_ROUTE_INTEREST:
        on_route_interest(c, &sp);
        break;
    case CODEC_K_ROUTE_MSG:
        on_route_msg(c, &sp);
        break;
    case CODEC_K_ROUTE_TOPICS:
        on_route_topics(c, &sp);
        break;
    /* Topic subscriptions relayed through the route (rproxy.h): as the
     * owner, SUBSCRIBE / UNSUBSCRIBE / ROUTE_FLOW; as the relaying node,
     * the owner's MESSAGE and ERROR frames for them. */
    case CODEC_K_SUB:
        dispatch_subscribe(c, &sp);
        break;
    case CODEC_K_UNSUB:
        dispatch_unsubscribe(c, &sp);
        break;
    case CODEC_K_ROUTE_FLOW:
        rproxy_serve_flow(c, &sp);
        break;
    case CODEC_K_MSG:
        rproxy_route_msg(c->sh, c->route->slot, &sp);
        break;
    case CODEC_K_ERR:
        rproxy_route_err(c->sh, c->route->slot, &sp);
        break;
    case CODEC_K_PING:
    case CODEC_K_PONG:
        break;
    default:
        log_warn("cluster: route %s sent frame kind %d; closing", c->route->node, kind);
        conn_close(c);
        break;
    }
}

/* See route.h. */
void route_conn_gone(struct shard *sh, struct conn *c)
{
    struct rpeer *p = c->route;
    if (!p)
        return;
    c->route = NULL;
    if (p->conn != c)
        return;
    if (p->up) {
        struct owner *o = owner_of(p->cl, p->node, false);
        log_info("cluster: route to %s is down", p->node);
        if (o)
            atomic_store(&p->cl->owner_up[o - p->cl->owners], false);
        rproxy_route_down(sh, p->slot);
    }
    /* What it wanted is no longer wanted. */
    for (size_t i = 0; i < p->keys.cap; i++)
        if (p->keys.ents[i].key)
            xshard_peer_interest(sh, (uint16_t)(XORIGIN_PEER + p->slot),
                                 (const char *)p->keys.ents[i].key, p->keys.ents[i].klen, false);
    strmap_fini(&p->keys);
    p->conn = NULL;
    p->up = false;
    if (!p->outgoing) {
        p->used = false; /* the peer dials us again, or we learnt its address */
        return;
    }
    strmap_init(&p->keys);
    p->next_dial_ns = sh->now_ns + p->backoff_ns;
    p->backoff_ns = p->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : p->backoff_ns * 2;
}

/* ---- Accept and dial ---- */

static void arm_route_accept(struct shard *sh, struct cluster *cl)
{
    struct io_uring_sqe *sqe = shard_sqe(sh);
    io_uring_prep_multishot_accept(sqe, cl->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_make(cl, UD_ACCEPT));
    cl->accept_armed = true;
}

/* See route.h. */
void route_start(struct shard *sh)
{
    struct cluster *cl = sh->srv->cluster;
    arm_route_accept(sh, cl);
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++)
        cl->peers[i].next_dial_ns = sh->now_ns;
}

/* See route.h. */
void route_stop(struct shard *sh)
{
    struct cluster *cl = sh->srv->cluster;
    cl->stopping = true;
    if (cl->accept_armed) {
        struct io_uring_sqe *sqe = shard_sqe(sh);
        io_uring_prep_cancel64(sqe, ud_make(cl, UD_ACCEPT), 0);
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
}

/* See route.h. */
bool route_accept_armed(struct shard *sh)
{
    return sh->srv->cluster && sh->srv->cluster->accept_armed;
}

static struct conn *route_conn(struct shard *sh, struct rpeer *p, int fd)
{
    struct conn *c = conn_new(sh, fd);
    c->flags |= CONN_F_ROUTE;
    c->route = p;
    p->conn = c;
    return c;
}

/* See route.h. */
void route_on_accept(struct shard *sh, struct io_uring_cqe *cqe)
{
    struct cluster *cl = sh->srv->cluster;
    struct rpeer *p;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        cl->accept_armed = false; /* re-armed by the tick */
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED)
            log_warn("cluster: accept: %s", strerror(-cqe->res));
        return;
    }
    if (cl->stopping || !(p = slot_new(cl))) {
        if (!cl->stopping)
            log_warn("cluster: %d routes already; refusing one", CONFIG_MAX_ROUTES);
        close(cqe->res);
        return;
    }
    route_conn(sh, p, cqe->res);
}

static void dial(struct shard *sh, struct rpeer *p)
{
    struct io_uring_sqe *sqe;
    int fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        p->next_dial_ns = sh->now_ns + BACKOFF_MAX_NS;
        return;
    }
    p->dial_fd = fd;
    sqe = shard_sqe(sh);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&p->sa, p->salen);
    io_uring_sqe_set_data64(sqe, ud_make(p, UD_CONNECT));
}

/* See route.h. */
void route_on_connect(struct shard *sh, struct rpeer *p, struct io_uring_cqe *cqe)
{
    int fd = p->dial_fd;
    p->dial_fd = -1;
    if (cqe->res < 0 || p->cl->stopping) {
        if (cqe->res < 0)
            log_debug("cluster: dial %s: %s", p->addr, strerror(-cqe->res));
        close(fd);
        p->next_dial_ns = sh->now_ns + p->backoff_ns;
        p->backoff_ns = p->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : p->backoff_ns * 2;
        return;
    }
    send_connect(p->cl, route_conn(sh, p, fd));
}

/* Is p's address already served by another route that is up? */
static bool covered(const struct cluster *cl, const struct rpeer *p)
{
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++) {
        const struct rpeer *q = &cl->peers[i];
        if (q != p && q->used && q->up &&
            (strcmp(q->listen, p->addr) == 0 || (p->node[0] && strcmp(q->node, p->node) == 0)))
            return true;
    }
    return false;
}

static void json_refresh(struct cluster *cl)
{
    char buf[JSON_CAP];
    size_t n;
    bool first = true;
    n = (size_t)snprintf(buf, sizeof(buf),
                         "{\"node\":\"%s\",\"cluster\":\"%s\",\"listen\":\"%s\",\"routes\":[",
                         cl->node, cl->srv->cfg.cluster_name, cl->listen_addr);
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES && n < sizeof(buf); i++) {
        const struct rpeer *p = &cl->peers[i];
        const char *state;
        if (!p->used)
            continue;
        state = p->up ? "up" : p->conn || p->dial_fd >= 0 ? "connecting" : "down";
        if (!p->up && !p->outgoing)
            continue;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                              "%s{\"node\":\"%s\",\"addr\":\"%s\",\"dir\":\"%s\",\"state\":\"%s\","
                              "\"interest\":%zu,\"msgs_in\":%" PRIu64 ",\"msgs_out\":%" PRIu64 "}",
                              first ? "" : ",", p->up ? p->node : "",
                              p->outgoing ? p->addr : p->listen, p->outgoing ? "out" : "in", state,
                              p->keys.n, p->msgs_in, p->msgs_out);
        first = false;
    }
    if (n < sizeof(buf))
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "]}");
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    pthread_mutex_lock(&cl->json_mu);
    memcpy(cl->json, buf, n + 1);
    cl->json_len = n;
    pthread_mutex_unlock(&cl->json_mu);
}

/* Ping every route that was quiet; close one silent for ROUTE_DEAD_NS (a
 * peer that vanished without a FIN: cable cut, host down). */
static void keepalive(struct shard *sh, struct cluster *cl)
{
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES; i++) {
        struct rpeer *p = &cl->peers[i];
        uint8_t buf[32];
        ssize_t n;
        if (!p->used || !route_usable(p))
            continue;
        if (sh->now_ns - p->last_rx_ns > ROUTE_DEAD_NS) {
            log_warn("cluster: route to %s silent for %llu ms; closing", p->node,
                     (unsigned long long)((sh->now_ns - p->last_rx_ns) / 1000000));
            conn_close(p->conn);
            continue;
        }
        if (sh->now_ns - p->last_ping_ns < PING_EVERY_NS)
            continue;
        p->last_ping_ns = sh->now_ns;
        n = codec_ping_write(buf, sizeof(buf), CODEC_K_PING, 0);
        if (n > 0) {
            struct msgbuf *m = msgbuf_new(&sh->pool, (uint32_t)n);
            memcpy(m->data, buf, (size_t)n);
            conn_enqueue(p->conn, NULL, 0, m, true);
            xshard_unref(sh, m);
        }
    }
}

/* See route.h. */
void route_tick(struct shard *sh)
{
    struct cluster *cl = sh->srv->cluster;
    if (!cl)
        return;
    if (!sh->stopping)
        keepalive(sh, cl);
    if (!cl->accept_armed && !cl->stopping && !sh->stopping)
        arm_route_accept(sh, cl);
    for (unsigned i = 0; i < CONFIG_MAX_ROUTES && !sh->stopping; i++) {
        struct rpeer *p = &cl->peers[i];
        if (!p->used || !p->outgoing || p->conn || p->dial_fd >= 0 || sh->now_ns < p->next_dial_ns)
            continue;
        if (covered(cl, p)) {
            p->next_dial_ns = sh->now_ns + BACKOFF_MAX_NS;
            continue;
        }
        dial(sh, p);
    }
    json_refresh(cl);
}

/* See route.h. */
size_t route_cluster_json(struct server *srv, char *out, size_t cap)
{
    struct cluster *cl = srv->cluster;
    size_t n;
    if (!cl) {
        n = (size_t)snprintf(out, cap, "{\"node\":\"\",\"cluster\":\"\",\"routes\":[]}");
        return n < cap ? n : cap - 1;
    }
    pthread_mutex_lock(&cl->json_mu);
    n = cl->json_len < cap ? cl->json_len : cap - 1;
    memcpy(out, cl->json, n);
    out[n] = '\0';
    pthread_mutex_unlock(&cl->json_mu);
    return n;
}
