/*
 * cond.h: a webhook trigger's `conditions` (Kestra's io.kestra.plugin.core.condition types) and
 * Kestra 2.0's `when`, compiled from the flow's YAML when flows load and evaluated per request
 * on the message being published. No I/O: errors go to a diag_list, reasons to the caller.
 */
#ifndef BRIDGE_COND_H
#define BRIDGE_COND_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "expr.h"
#include "yaml.h"

/** A compiled set of conditions. Immutable after cond_compile; safe to share between threads. */
struct cond;

/**
 * Compiles a trigger's conditions.
 *
 * `conditions` is the trigger's `conditions` node: a YAML list of maps, each with a `type`
 * (e.g. io.kestra.plugin.core.condition.Expression; the `…Condition` aliases and the legacy
 * io.kestra.core.models.conditions.types.… names are accepted, VariableCondition included), or
 * NULL / a null scalar / an empty list for none. `when` is the trigger's `when` scalar (Kestra
 * 2.0), or NULL. Both are accepted whatever `compat` is; `compat` (EXPR_COMPAT_DEFAULT or
 * EXPR_COMPAT_2) selects the expression rules.
 *
 * Supported types: Expression, Not, Or, DayWeek, DayWeekInMonth, Weekend, TimeBetween,
 * DateTimeBetween, ExecutionFlow, ExecutionNamespace, ExecutionStatus, ExecutionLabels,
 * ExecutionOutputs and HasRetryAttempt (always false for a new execution, as in Kestra), and the
 * deprecated FlowCondition / FlowNamespaceCondition. MultipleCondition fails with Kestra's
 * message "invalid webhook: conditions of type MultipleCondition are not supported"; every
 * other type (PublicHoliday, unknown names) and every unknown or missing property is an error.
 * String properties may be templates; literal ones (dates, enum values) are checked here.
 *
 * Errors are appended to dl as file:line:col from the YAML nodes; expression errors point at the
 * offending character and carry a caret snippet. `doc` is optional: with it, positions inside
 * quoted and block scalars are exact and snippets show the source line (see expr_error_locate).
 * All errors are collected. Returns the compiled set (free with cond_free), or NULL when there
 * was any error. Borrowed arguments need not outlive the call.
 */
struct cond *cond_compile(const struct yml_node *conditions, const struct yml_node *when,
                          const char *file, const struct yml_doc *doc, int compat,
                          struct diag_list *dl);

/**
 * Evaluates c against env: true when every top-level condition holds (Kestra's AND; Not holds
 * when none of its conditions does, Or when any does) and `when`, if set, is truthy by the 2.0
 * rule (false, 0, -0 and blank are falsy; a template that renders nothing at all is not).
 * A condition whose evaluation fails (an undefined variable in strict mode, a bad date, ...) is
 * false, as a throwing condition is in Kestra; inside Not and Or the failure makes the whole
 * top-level condition false, also as in Kestra.
 *
 * On false, `why` (whysz bytes; may be 0) names the condition and its position, and the reason
 * when evaluation failed; meant for a debug log line. It does not quote request data.
 * Thread-safe; uses a small per-thread scratch buffer.
 */
bool cond_eval(const struct cond *c, const struct expr_env *env, char *why, size_t whysz);

/**
 * What evaluating c can read of `trigger` (env->trigger), from every template of every condition
 * and `when` (expr_trigger_reads): a new set of paths for prune_unpack (free with prune_free),
 * or NULL when c may read all of `trigger` (or c is NULL). An empty set when nothing reads it.
 */
struct prune_paths *cond_reads_new(const struct cond *c);

/** True when c has no condition and no `when`: cond_eval always returns true. */
bool cond_is_empty(const struct cond *c);

/** Frees c; NULL is a no-op. */
void cond_free(struct cond *c);

#endif
