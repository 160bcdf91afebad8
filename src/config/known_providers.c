/*
 * known_providers.c - the providers gatehouse knows by name.
 *
 * A name in this table needs nothing but a key in the configuration: its wire family, base URL
 * and key variable come from here. Base URLs stop before "/v1": the adapters append
 * "/v1/chat/completions" or "/v1/messages", so a user who overrides base_url writes the same
 * kind of URL the table holds. Any other name is a custom provider and must say which family it
 * speaks and where it lives (see validate.c).
 */
#include "config/config.h"

#include <string.h>

static const config_known_provider_t known[] = {
    {"openai", CONFIG_FAMILY_OPENAI, "https://api.openai.com", "OPENAI_API_KEY", false},
    {"anthropic", CONFIG_FAMILY_ANTHROPIC, "https://api.anthropic.com", "ANTHROPIC_API_KEY", false},
    {"groq", CONFIG_FAMILY_OPENAI, "https://api.groq.com/openai", "GROQ_API_KEY", false},
    {"mistral", CONFIG_FAMILY_OPENAI, "https://api.mistral.ai", "MISTRAL_API_KEY", false},
    {"openrouter", CONFIG_FAMILY_OPENAI, "https://openrouter.ai/api", "OPENROUTER_API_KEY", false},
    {"xai", CONFIG_FAMILY_OPENAI, "https://api.x.ai", "XAI_API_KEY", false},
    {"deepseek", CONFIG_FAMILY_OPENAI, "https://api.deepseek.com", "DEEPSEEK_API_KEY", false},
    {"cerebras", CONFIG_FAMILY_OPENAI, "https://api.cerebras.ai", "CEREBRAS_API_KEY", false},
    {"together", CONFIG_FAMILY_OPENAI, "https://api.together.xyz", "TOGETHER_API_KEY", false},
    {"fireworks", CONFIG_FAMILY_OPENAI, "https://api.fireworks.ai/inference", "FIREWORKS_API_KEY",
     false},
    /* Local servers: they usually run without authentication. */
    {"ollama", CONFIG_FAMILY_OPENAI, "http://localhost:11434", "OLLAMA_API_KEY", true},
    {"vllm", CONFIG_FAMILY_OPENAI, "http://localhost:8000", "VLLM_API_KEY", true},
    {"huggingface", CONFIG_FAMILY_OPENAI, "https://router.huggingface.co", "HF_TOKEN", false},
    {NULL, CONFIG_FAMILY_OPENAI, NULL, NULL, false},
};

const config_known_provider_t *config_known_providers(void)
{
    return known;
}

const config_known_provider_t *config_known_provider(const char *name)
{
    if (name == NULL)
        return NULL;
    for (const config_known_provider_t *k = known; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0)
            return k;
    }
    return NULL;
}
