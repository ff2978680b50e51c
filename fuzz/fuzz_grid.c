/* libFuzzer target: the YAML grid parser (grid_parse) on arbitrary bytes.
 * Any input must end in a grid whose every run passes config_validate, or
 * in a reported problem; never a crash, a leak or undefined behaviour. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "icasweep/config.h"
#include "icasweep/grid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    grid g;
    icas_err err;
    if (grid_parse("fuzz.yaml", (const char *)data, size, &g, NULL, &err) == 0) {
        if (g.n_runs < 1 || !g.text || g.checkpoint_every < 0)
            abort();
        for (int i = 0; i < g.n_runs; i++)
            if (config_validate(&g.runs[i], &err))
                abort();
        grid_free(&g);
    }
    return 0;
}
