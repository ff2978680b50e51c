/* The hash (hash.h): FNV-1a 64 against its published test vectors, and
 * chaining over several buffers. The run ids made with it are pinned in
 * test_config. */
#include <inttypes.h>
#include <string.h>

#include "icasweep/hash.h"
#include "testutil.h"

static void test_vectors(void)
{
    /* the FNV authors' test vectors for FNV-1a 64 */
    static const struct {
        const char *s;
        uint64_t h;
    } v[] = {
        {"", 0xcbf29ce484222325ULL},
        {"a", 0xaf63dc4c8601ec8cULL},
        {"foobar", 0x85944171f73967e8ULL},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint64_t got = hash_fnv1a64(v[i].s, strlen(v[i].s), HASH_FNV1A64_INIT);
        CHECK(got == v[i].h, "\"%s\": %016" PRIx64 ", want %016" PRIx64, v[i].s, got, v[i].h);
    }
    CHECK(hash_fnv1a64(NULL, 0, 42) == 42, "no bytes leave the hash as it was");
    /* icasweep's start value, with answers computed independently (Python) */
    CHECK(HASH_ICASWEEP_INIT == 0x14650fb0739d0383ULL, "the stored hashes' start value");
    CHECK(hash_fnv1a64("a", 1, HASH_ICASWEEP_INIT) == 0x44bd8ad473cd9906ULL, "\"a\" from icasweep's start");
    CHECK(hash_fnv1a64("foobar", 6, HASH_ICASWEEP_INIT) == 0x88fad7c0a8ff07f2ULL,
          "\"foobar\" from icasweep's start");
}

static void test_chaining(void)
{
    const char *text = "in-context alignment by self-correction";
    size_t n = strlen(text);
    const uint64_t starts[] = {HASH_FNV1A64_INIT, HASH_ICASWEEP_INIT};
    for (int s = 0; s < 2; s++) {
        const uint64_t start = starts[s];
        uint64_t whole = hash_fnv1a64(text, n, start);
        for (size_t cut = 0; cut <= n; cut++) {
            uint64_t h = hash_fnv1a64(text, cut, start);
            h = hash_fnv1a64(text + cut, n - cut, h);
            CHECK(h == whole, "split at %zu: %016" PRIx64 ", whole %016" PRIx64, cut, h, whole);
        }
        /* three buffers, as a journal entry or checkpoint hashes its parts */
        uint64_t h = hash_fnv1a64(text, 5, start);
        h = hash_fnv1a64(text + 5, 11, h);
        h = hash_fnv1a64(text + 16, n - 16, h);
        CHECK(h == whole, "three parts: %016" PRIx64 ", whole %016" PRIx64, h, whole);
    }
}

int main(void)
{
    test_vectors();
    test_chaining();
    return test_finish("test_hash");
}
