/*
 * models.c - GET /v1/models: the models the configured keys allow.
 *
 * A key with an allow-list contributes each listed model as "provider/model". A key without
 * one allows every model of its provider, which gatehouse cannot enumerate without asking the
 * provider; such a provider is listed once with the model name "*" and "owned_by" set to the
 * provider, so a client can see that it is there (docs/LIMITATIONS.md).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/handlers.h"

static void add_model(json_t *data, json_t *seen, const char *provider, const char *model)
{
    char id[512];
    snprintf(id, sizeof(id), "%s/%s", provider, model);
    if (json_object_get(seen, id) != NULL)
        return;
    json_object_set_new(seen, id, json_true());

    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(id));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(0));
    json_object_set_new(m, "owned_by", json_string(provider));
    json_array_append_new(data, m);
}

void models_handle(http_request_t *req, gateway_worker_t *w, const char *request_id)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    const config_t *cfg = snap->cfg;
    json_t *data = json_array();
    json_t *seen = json_object();

    for (size_t i = 0; i < cfg->n_providers; i++) {
        const config_provider_t *p = &cfg->providers[i];
        for (size_t k = 0; k < p->n_keys; k++) {
            const config_key_t *key = &p->keys[k];
            if (key->n_models == 0)
                add_model(data, seen, p->name, "*");
            for (size_t m = 0; m < key->n_models; m++)
                add_model(data, seen, p->name, key->models[m]);
        }
    }
    gateway_snapshot_release(snap);

    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    json_decref(seen);

    http_response_header(req, "x-request-id", request_id);
    http_respond(req, 200, "application/json", text, strlen(text));
    free(text);
}
