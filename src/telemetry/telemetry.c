/*
 * telemetry.c - hands each finished request and upstream exchange to the observers that want
 * it: metrics always, the request log when logs are enabled, the audit trail when the exchange
 * asks for it. See telemetry.h for the rules every observer keeps (copy, queue, never block).
 */
#include "telemetry/telemetry.h"

#include "telemetry/audit.h"
#include "telemetry/metrics.h"
#include "telemetry/prices.h"
#include "telemetry/reqlog.h"

static bool reqlog_running;
static bool audit_running;

int telemetry_start(const config_t *cfg, const char *data_dir)
{
    /* With logs disabled, reqlog_start only remembers the data directory, so that a reload
     * can switch the log on. */
    if (reqlog_start(cfg, data_dir) != 0)
        return -1;
    reqlog_running = true;

    /* The audit writer runs even when the trail is off globally: a request may opt in. */
    if (audit_start(cfg, data_dir) != 0) {
        telemetry_stop();
        return -1;
    }
    audit_running = true;
    return 0;
}

void telemetry_reconfigure(const config_t *cfg)
{
    if (reqlog_running)
        reqlog_reconfigure(cfg);
}

void telemetry_stop(void)
{
    if (reqlog_running)
        reqlog_stop();
    if (audit_running)
        audit_stop();
    reqlog_running = false;
    audit_running = false;
}

void telemetry_request_done(const config_t *cfg, const telemetry_request_t *r)
{
    double cost = -1;
    if (r->provider != NULL && r->model != NULL)
        cost =
            prices_cost(cfg, r->provider, r->model, r->tokens_in, r->tokens_out, r->tokens_cached);

    metrics_request(r, cost);
    if (reqlog_running && cfg->logs_enabled)
        reqlog_submit(r, cost);
}

void telemetry_exchange_done(const telemetry_exchange_t *x)
{
    metrics_exchange(x);
    if (x->audit && audit_running)
        audit_submit(x);
}
