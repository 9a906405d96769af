#include "load/blocks.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core/config.h"
#include "core/splitmix.h"

/* Common three-letter English words. */
static const char builtin[BLOCKS_MAX_WORDS][4] = {
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
    "one", "our", "out", "day", "get", "has", "him", "his", "how", "man", "new", "now", "old",
    "see", "two", "way", "who", "boy", "did", "its", "let", "put", "say", "she", "too", "use",
    "act", "add", "age", "ago", "aid", "aim", "air", "arm", "art", "ask", "bad", "bag", "bar",
    "bed", "big", "bit", "box", "bus", "buy", "car", "cat", "cry", "cup", "cut", "dog", "dry",
    "due", "ear", "eat", "egg", "end", "eye", "far", "few", "fit", "fix", "fly", "fun", "gap",
    "gas", "god", "guy", "hat", "hit", "hot", "ice", "job", "joy", "key", "kid", "lab", "law",
    "lay", "leg", "lie", "lot", "low", "map", "may", "mix", "net", "nor", "oil", "pay", "pen",
    "per", "pet", "pie", "pin", "pop", "pot", "raw", "red", "row", "run", "sat", "sea", "set",
    "sir", "sit", "six", "sky", "son", "sun", "tax", "tea", "ten", "tie", "tip", "top", "toy",
    "try", "war", "wet", "win", "yes", "yet", "ant", "arc", "ash", "bat", "bay", "bee", "bin",
    "bow", "bug", "cab", "cap", "cow", "dad", "den", "dig", "dim", "dip", "dot", "dug", "dye",
    "elf", "elm", "era", "fan", "fat", "fig", "fin", "fog", "fox", "fur", "gem", "gun", "gut",
    "ham", "hay", "hen", "hid", "hip", "hop", "hub", "hug", "hum", "hut", "ink", "inn", "ion",
    "jam", "jar", "jaw", "jet", "jog", "kit", "lad", "lap", "lid", "lip", "log", "mad", "mat",
    "mob", "mom", "mud", "mug", "nap", "nod", "nut", "oak", "odd", "opt", "orb", "ore", "owl",
    "own", "pad", "pal", "pan", "paw", "pea", "peg", "pit", "pub", "pun", "rag", "ram", "rat",
    "ray", "rib", "rid", "rim", "rod", "rot", "rub", "rug", "sad", "saw", "sew", "sip", "sob",
    "sod", "spa", "spy", "sum", "tab", "tag", "tan", "tap", "tar", "tin", "tub", "tug", "urn",
    "van", "vet", "vow", "wax", "web", "wig", "wit", "yam", "zip",
};

void blocks_vocab_builtin(struct blocks_vocab *v)
{
    memcpy(v->words, builtin, sizeof(builtin));
    v->n = BLOCKS_MAX_WORDS;
    v->exact = false;
}

void blocks_probe(struct evbuffer *out)
{
    evbuffer_add_printf(out, "{\"content\":\"");
    for (unsigned i = 0; i < BLOCKS_MAX_WORDS; i++)
        evbuffer_add_printf(out, " %s", builtin[i]);
    evbuffer_add_printf(out, "\",\"with_pieces\":true}");
}

int blocks_vocab_from_tokens(struct blocks_vocab *v, const char *json, size_t len,
                             struct config_err *err)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    struct blocks_vocab keep = {.exact = true};
    int rc = 0;
    if (!cJSON_IsArray(tokens)) {
        rc = config_err_set(err, "the /tokenize answer has no \"tokens\" array");
        goto out;
    }
    /* The probe is the words back to back, 4 bytes each: word i is one
     * token when a piece covers exactly bytes [4i, 4i + 4). */
    size_t off = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tokens)
    {
        const cJSON *piece = cJSON_GetObjectItemCaseSensitive(t, "piece");
        if (!cJSON_IsString(piece)) {
            rc = config_err_set(err, "the /tokenize answer has no text pieces");
            goto out;
        }
        size_t n = strlen(piece->valuestring);
        size_t w = off / BLOCKS_WORD_BYTES;
        if (n == BLOCKS_WORD_BYTES && off % BLOCKS_WORD_BYTES == 0 && w < BLOCKS_MAX_WORDS &&
            piece->valuestring[0] == ' ' && memcmp(piece->valuestring + 1, builtin[w], 3) == 0)
            memcpy(keep.words[keep.n++], builtin[w], 4);
        off += n;
    }
    if (keep.n < BLOCKS_MIN_WORDS)
        rc = config_err_set(err, "only %u of %u words are one token on this tokenizer", keep.n,
                            BLOCKS_MAX_WORDS);
out:
    cJSON_Delete(root);
    if (rc == 0)
        *v = keep;
    return rc;
}

long blocks_count_tokens(const char *json, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    long n = cJSON_IsArray(tokens) ? cJSON_GetArraySize(tokens) : -1;
    cJSON_Delete(root);
    return n;
}

void blocks_append(const struct blocks_vocab *v, uint64_t seed, size_t n, struct evbuffer *out)
{
    char buf[BLOCKS_WORD_BYTES * 64];
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const char *w = v->words[splitmix_next(&seed) % v->n];
        buf[used] = ' ';
        memcpy(buf + used + 1, w, 3);
        used += BLOCKS_WORD_BYTES;
        if (used == sizeof(buf)) {
            evbuffer_add(out, buf, used);
            used = 0;
        }
    }
    evbuffer_add(out, buf, used);
}

uint64_t blocks_seed(uint64_t salt, uint64_t id)
{
    uint64_t s = salt * 0x9e3779b97f4a7c15ull ^ id;
    return splitmix_next(&s);
}

uint64_t blocks_before(const struct blocks_layout *l, size_t i)
{
    long long at = llround((double)i * l->block_size * l->scale);
    return at > (long long)l->overhead ? (uint64_t)(at - l->overhead) : 0;
}

uint64_t blocks_total(const struct blocks_layout *l, uint64_t in)
{
    long long at = llround((double)in * l->scale);
    return at > (long long)l->overhead ? (uint64_t)(at - l->overhead) : 0;
}
