/*
 * expr_reads.c: what a compiled template can read of `trigger`, found by walking its AST once
 * at flow load, as a set of constant paths (prune.h). No I/O; nothing here runs per request.
 */
#include "expr_int.h"

#include "prune.h"

/*
 * Deeper ASTs (long filter chains are built by a loop, not by recursion, so the parser's depth
 * limit does not bound them) are not analysed: `trigger` is then taken as read whole.
 */
#define READS_MAX_DEPTH 1000

/* The string key of one constant step of a member chain, or false when the step is not one. */
static bool const_key(const struct node *n, const char **key, size_t *len)
{
    if (n->kind == N_ATTR && n->name) {
        *key = n->name;
        *len = n->name_len;
        return true;
    }
    if (n->kind == N_INDEX && n->b->kind == N_LIT && n->b->lit.kind == EV_STR) {
        *key = n->b->lit.s;
        *len = n->b->lit.len;
        return true;
    }
    return false;
}

/*
 * When n is `trigger` followed by constant string member accesses only (`trigger.body.ref`,
 * `trigger.headers['X-GitHub-Event']`), marks that path whole and returns true.
 *
 * Why whole at the end and pruned along the way: the evaluator reads an intermediate value of
 * such a chain only to look up the next string key (get_member, which on a map is ev_map_get:
 * string keys, the last duplicate wins), so a map that keeps just the entries with that key, in
 * order, answers the same; anything that is not a map there is unpacked whole anyway. The final
 * value may be used in any way (filters, tests, comparisons, printing), so all of it is kept.
 * A step with a non-string key (`trigger.body[0]`, `trigger.body.0`) compares keys with
 * ev_equal over every entry, and a dynamic one (`trigger.body[x]`) may name any key: neither is
 * a chain, and the caller marks the part before such a step whole.
 */
static bool mark_chain(const struct node *n, struct prune_paths *root)
{
    size_t steps = 0;
    const struct node *m = n;
    const char *key;
    size_t len;
    while (m->kind != N_VAR) {
        if (!const_key(m, &key, &len)) {
            return false;
        }
        steps++;
        m = m->a;
    }
    if (m->op != ROOT_TRIGGER) {
        return false;
    }
    /* The steps from `trigger` outwards are the chain read backwards. */
    const struct node **chain = xmalloc((steps ? steps : 1) * sizeof(*chain));
    m = n;
    for (size_t i = steps; i-- > 0; m = m->a) {
        chain[i] = m;
    }
    struct prune_paths *p = root;
    for (size_t i = 0; i < steps; i++) {
        const_key(chain[i], &key, &len);
        p = prune_child(p, key, len);
    }
    xfree(chain);
    prune_set_whole(p);
    return true;
}

static void walk(const struct node *n, struct prune_paths *root, int depth)
{
    if (!n) {
        return;
    }
    if (depth > READS_MAX_DEPTH) {
        prune_set_whole(root);
        return;
    }
    switch (n->kind) {
    case N_VAR:
        if (n->op == ROOT_TRIGGER) {
            prune_set_whole(root); /* `trigger` itself used as a value */
        }
        return;
    case N_ATTR:
    case N_INDEX:
        if (mark_chain(n, root)) {
            return;
        }
        break;
    default:
        break;
    }
    walk(n->a, root, depth + 1);
    walk(n->b, root, depth + 1);
    walk(n->c, root, depth + 1);
    for (size_t i = 0; i < n->nargs; i++) {
        walk(n->args[i], root, depth + 1);
    }
}

void expr_trigger_reads(const struct expr_prog *prog, struct prune_paths *reads)
{
    walk(prog->root, reads, 0);
}
