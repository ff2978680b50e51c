/* The knob table (include/icasweep/knobs.def) and what is made from it: the
 * defaults, range checks, command-line flags, grid keys and run ids. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/cli.h"
#include "icasweep/config.h"
#include "icasweep/grid.h"
#include "testutil.h"

/* SPEC.md's defaults, written out here rather than read from the table. */
static void check_paper_defaults(void)
{
    run_config c = config_default();
    CHECK(c.dims == 5 && c.points == 20, "task d=%d N=%d", c.dims, c.points);
    CHECK(c.layers == 20 && c.heads == 3 && c.embd == 96, "model L=%d H=%d E=%d", c.layers,
          c.heads, c.embd);
    CHECK(c.attention == ATTN_SOFTMAX && c.ffn == 1, "attention %d ffn %d", c.attention, c.ffn);
    CHECK(c.loss == LOSS_PL && c.steps == 3000 && c.batch == 256 && c.lr == 1e-4,
          "training loss %d steps %d batch %d lr %g", c.loss, c.steps, c.batch, c.lr);
    CHECK(c.train_noise == 0 && c.seed == 0 && c.eval_batch == 256, "p %g seed %llu eb %d",
          c.train_noise, (unsigned long long)c.seed, c.eval_batch);
    CHECK(c.n_eval_noise == 5 && c.eval_noise[4] == 1.0, "eval noise %d levels", c.n_eval_noise);
    CHECK(c.sc_rounds == 0, "no closed loop by default");
    icas_err err;
    CHECK(config_validate(&c, &err) == 0, "defaults invalid: %s", err.msg);
    for (int i = 0; i < CONFIG_N_KNOBS; i++)
        CHECK(knob_is_default(&config_knobs[i], &c), "%s: config_default differs from the table",
              config_knobs[i].name);
}

/* Ids of files already written: the table must reproduce them byte for
 * byte (these are the ids `icasweep plan` printed for the shipped grids). */
static void check_ids_are_stable(void)
{
    run_config c = config_default();
    char id[ICAS_RUN_ID_LEN];
    config_run_id(&c, id);
    CHECK(strcmp(id, "r1f12ba43be4374a4") == 0, "default config id %s", id);
    c.sc_rounds = 2;
    c.n_sc_k0 = 2;
    c.sc_k0[0] = 2;
    c.sc_k0[1] = 5;
    c.n_sc_q = 2;
    c.sc_q[0] = 0;
    c.sc_q[1] = 0.5;
    config_run_id(&c, id);
    CHECK(strcmp(id, "r04c9e076abaf5efa") == 0, "default config with a closed loop: id %s", id);

    static const struct {
        const char *grid;
        int row, n_runs;
        const char *id;
    } pinned[] = {
        {"paper.yaml", 0, 27, "rd8b7af95ed6e250d"},
        {"paper.yaml", 9, 27, "r1f12ba43be4374a4"},
        {"findings.yaml", 0, 64, "rc1538aa318d3a8fe"},
        {"findings.yaml", 1, 64, "r5f4b828166f13d7f"},
        {"selfcorrect.yaml", 0, -1, "r20ec21398eb3b992"},
        {"selfcorrect.yaml", 1, -1, "rd17e924d3cbd3149"},
    };
    const char *src = getenv("ICAS_SOURCE_DIR");
    if (!src) {
        CHECK(0, "ICAS_SOURCE_DIR is not set (run through ctest)");
        return;
    }
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/jobs/grids/%s", src, pinned[i].grid);
        grid g;
        icas_err err;
        if (grid_load(path, &g, stderr, &err)) {
            CHECK(0, "%s: %s", path, err.msg);
            continue;
        }
        CHECK(pinned[i].n_runs < 0 || g.n_runs == pinned[i].n_runs, "%s: %d runs",
              pinned[i].grid, g.n_runs);
        if (pinned[i].row < g.n_runs) {
            config_run_id(&g.runs[pinned[i].row], id);
            CHECK(strcmp(id, pinned[i].id) == 0, "%s row %d: id %s, files hold %s",
                  pinned[i].grid, pinned[i].row, id, pinned[i].id);
        }
        grid_free(&g);
    }
}

/* A value of knob k other than its default, within range, as text. */
static void other_value(const knob_def *k, char *out, size_t n)
{
    switch (k->type) {
    case KNOB_TYPE_COUNT:
        snprintf(out, n, "%d", (int)k->default_value == (int)k->lo ? (int)k->lo + 1 : (int)k->lo);
        return;
    case KNOB_TYPE_REAL:
        snprintf(out, n, "%.17g", k->default_value == k->hi ? k->lo : k->hi);
        return;
    case KNOB_TYPE_POSITIVE:
        snprintf(out, n, "%.17g", k->default_value * 3);
        return;
    case KNOB_TYPE_CHOICE:
    case KNOB_TYPE_SWITCH:
        snprintf(out, n, "%s", k->words[(int)k->default_value == 0 ? 1 : 0]);
        return;
    case KNOB_TYPE_SEED:
        snprintf(out, n, "18446744073709551615");
        return;
    }
}

/* Every knob: its flag takes a non-default value, which then changes the
 * run id, prints back as given, and is refused out of range with the flag
 * named; its grid key sets the same value. */
static void check_each_knob(void)
{
    const run_config base = config_default();
    char base_id[ICAS_RUN_ID_LEN];
    config_run_id(&base, base_id);
    for (int i = 0; i < CONFIG_N_KNOBS; i++) {
        const knob_def *k = &config_knobs[i];
        char flag[64], value[64], back[64], id[ICAS_RUN_ID_LEN];
        knob_flag(k, flag, sizeof flag);
        other_value(k, value, sizeof value);
        CHECK(k->meaning && k->meaning[0] && k->label && k->label[0], "%s: no meaning/label",
              k->name);
        CHECK(config_knob_named(k->name) == k, "%s: not found by name", k->name);

        run_config c = base;
        icas_err err;
        int rc = cli_parse_run_flag(&c, flag, value, &err);
        CHECK(rc == 1, "%s %s: rc %d (%s)", flag, value, rc, rc < 0 ? err.msg : "");
        CHECK(!knob_is_default(k, &c), "%s %s left the default", flag, value);
        knob_format(k, &c, k->type == KNOB_TYPE_SWITCH ? KNOB_TEXT_HUMAN : KNOB_TEXT_ID, back,
                    sizeof back);
        CHECK(strcmp(back, value) == 0, "%s %s prints back as %s", flag, value, back);
        config_run_id(&c, id);
        CHECK(strcmp(id, base_id) != 0, "%s %s: same run id as the default", flag, value);
        for (int j = 0; j < CONFIG_N_KNOBS; j++)
            CHECK(j == i || knob_is_default(&config_knobs[j], &c), "%s also changed %s", flag,
                  config_knobs[j].name);

        /* out of range: the flag is named */
        const char *bad = k->type == KNOB_TYPE_COUNT      ? "-7"
                          : k->type == KNOB_TYPE_SEED     ? "-1"
                          : k->type == KNOB_TYPE_REAL     ? "1e300"
                          : k->type == KNOB_TYPE_POSITIVE ? "0"
                                                          : "neither";
        c = base;
        rc = cli_parse_run_flag(&c, flag, bad, &err);
        CHECK(rc == -1 && strstr(err.msg, flag), "%s %s: rc %d, message '%s'", flag, bad, rc,
              rc < 0 ? err.msg : "");

        if (k->type == KNOB_TYPE_SEED)
            continue;
        /* the grid key: settings sets it for the one run */
        char text[512];
        snprintf(text, sizeof text, "settings:\n  %s: %s\n  points: %d\nseeds: [0]\n", k->name,
                 value, i == KNOB_ID_points ? atoi(value) : 20);
        grid g;
        char *diag = NULL;
        size_t diag_len = 0;
        FILE *df = open_memstream(&diag, &diag_len);
        rc = grid_parse("g.yaml", text, strlen(text), &g, df, &err);
        fclose(df);
        if (i == KNOB_ID_points || i == KNOB_ID_heads || i == KNOB_ID_embd) {
            /* these change the model's shape: heads must divide embd */
            if (rc == 0)
                grid_free(&g);
            free(diag);
            continue;
        }
        CHECK(rc == 0 && g.n_runs == 1, "grid key %s: %s: %s", k->name, value, diag);
        if (rc == 0) {
            knob_format(k, &g.runs[0], k->type == KNOB_TYPE_SWITCH ? KNOB_TEXT_HUMAN : KNOB_TEXT_ID,
                        back, sizeof back);
            CHECK(strcmp(back, value) == 0, "grid key %s: %s read as %s", k->name, value, back);
            grid_free(&g);
        }
        free(diag);
    }
}

/* The seed is not a grid key: grids list seeds under `seeds`. */
static void check_seed_not_a_grid_key(void)
{
    const char *text = "settings:\n  seed: 3\nseeds: [0]\n";
    grid g;
    icas_err err;
    char *diag = NULL;
    size_t len = 0;
    FILE *df = open_memstream(&diag, &len);
    int rc = grid_parse("g.yaml", text, strlen(text), &g, df, &err);
    fclose(df);
    CHECK(rc != 0 && diag && strstr(diag, "unknown key 'seed'"), "seed as a grid key: %s",
          diag ? diag : "");
    if (rc == 0)
        grid_free(&g);
    free(diag);
}

/* A flag's message with every flag replaced by its grid key: what the grid
 * must say about the same value. Longest names first, so that no flag is
 * read inside a longer one. */
static void flags_to_keys(const char *msg, char *out, size_t n)
{
    char flags[CONFIG_N_FIELDS][64], keys[CONFIG_N_FIELDS][64];
    for (int f = 0; f < CONFIG_N_FIELDS; f++) {
        config_field_name(f, CONFIG_NAMES_FLAGS, flags[f], sizeof flags[f]);
        config_field_name(f, CONFIG_NAMES_KEYS, keys[f], sizeof keys[f]);
    }
    size_t len = 0;
    while (*msg && len + 1 < n) {
        int best = -1;
        for (int f = 0; f < CONFIG_N_FIELDS; f++)
            if (strncmp(msg, flags[f], strlen(flags[f])) == 0 &&
                (best < 0 || strlen(flags[f]) > strlen(flags[best])))
                best = f;
        if (best >= 0) {
            len += (size_t)snprintf(out + len, n - len, "%s", keys[best]);
            msg += strlen(flags[best]);
        } else {
            out[len++] = *msg++;
        }
    }
    out[len < n ? len : n - 1] = 0;
}

/* The same bad value given as flags and in a grid: one parser and one
 * validation, so the same problem, naming the flag on the command line and
 * the key at its place in the grid. */
static void check_flag_and_grid_agree(void)
{
    static const struct {
        const char *flags[8]; /* after the tiny model's flags */
        const char *grid;     /* after the tiny model's settings line */
        const char *place;    /* line:column in the grid */
        const char *flag_msg; /* the command line's message, in full */
    } cases[] = {
        {{"--eval-noise", "0,0"}, "eval_noise: [0, 0]", "2:17", "--eval-noise 0: listed twice"},
        {{"--eval-noise", "0,0.25,0.250"}, "eval_noise: [0, 0.25, 0.250]", "2:23",
         "--eval-noise 0.25: listed twice"},
        {{"--eval-noise", "1,-0.5"}, "eval_noise: [1, -0.5]", "2:17",
         "--eval-noise -0.5: must be in [0,1]"},
        {{"--eval-noise", "0,inf"}, "eval_noise: [0, inf]", "2:17",
         "--eval-noise inf: expected a number"},
        {{"--sc-rounds", "2", "--sc-k0", "1,3,1", "--sc-q", "0"},
         "selfcorrect: {rounds: 2, k0: [1, 3, 1], q: [0]}", "2:37", "--sc-k0 1: listed twice"},
        {{"--sc-rounds", "2", "--sc-k0", "1", "--sc-q", "0,0.5,0"},
         "selfcorrect: {rounds: 2, k0: 1, q: [0, 0.5, 0]}", "2:45", "--sc-q 0: listed twice"},
        {{"--sc-rounds", "2", "--sc-k0", "1", "--sc-q", "2"},
         "selfcorrect: {rounds: 2, k0: 1, q: 2}", "2:36", "--sc-q 2: must be in [0,1]"},
        {{"--sc-rounds", "2", "--sc-k0", "1.5", "--sc-q", "0"},
         "selfcorrect: {rounds: 2, k0: [1.5], q: [0]}", "2:31", "--sc-k0 1.5: expected an integer"},
        {{"--sc-rounds", "4", "--sc-k0", "0,1", "--sc-q", "0"},
         "selfcorrect: {rounds: 4, k0: [0, 1], q: [0]}", "2:34",
         "--sc-k0 1: with --sc-rounds 4, needs --points 6 or more, got 5 (k0 + rounds at most "
         "points - 1)"},
        {{"--layers", "2000"}, "axes: {layers: [1, 2000]}", "2:20",
         "--layers 2000: must be between 1 and 1024"},
        {{"--steps", "3e3"}, "axes: {steps: [3e3]}", "2:16", "--steps 3e3: expected an integer"},
        {{"--ffn", "maybe"}, "axes: {ffn: maybe}", "2:13", "--ffn maybe: expected off or on"},
        {{"--heads", "3"}, "grids:\n  - heads: [2, 3]", "3:16",
         "--heads 3 does not divide --embd 8"},
        /* a product of sizes: at the first knob it names, none varying */
        {{"--points", "10000"}, "axes: {points: [10000]}", "1:20",
         "--layers 1 --heads 2 --embd 8 --points 10000 --dims 5 --eval-batch 4: attention scores "
         "of one layer, 8 contexts x heads x (3*points)^2 = 1.44e+10 exceeds 2147483647"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[24] = {"train", "--layers", "1", "--heads", "2", "--embd", "8",
                          "--points", "5", "--batch", "4", "--eval-batch", "4", "-o", "x.h5"};
        int argc = 15;
        for (int j = 0; cases[i].flags[j]; j++)
            argv[argc++] = (char *)cases[i].flags[j];
        train_args a;
        icas_err err;
        int rc = cli_parse_train(argc, argv, &a, &err);
        CHECK(rc == -1 && strcmp(err.msg, cases[i].flag_msg) == 0,
              "case %zu: flags: rc %d, '%s', want '%s'", i, rc, rc ? err.msg : "",
              cases[i].flag_msg);

        char text[1024], want[1200], key_msg[1100];
        snprintf(text, sizeof text,
                 "settings: {layers: 1, heads: 2, embd: 8, points: 5, batch: 4, eval_batch: 4}\n"
                 "%s\n",
                 cases[i].grid);
        flags_to_keys(cases[i].flag_msg, key_msg, sizeof key_msg);
        snprintf(want, sizeof want, "g.yaml:%s: %s\n", cases[i].place, key_msg);
        grid g;
        char *diag = NULL;
        size_t diag_len = 0;
        FILE *df = open_memstream(&diag, &diag_len);
        rc = grid_parse("g.yaml", text, strlen(text), &g, df, &err);
        fclose(df);
        CHECK(rc != 0 && diag && strcmp(diag, want) == 0, "case %zu: grid: got '%s', want '%s'",
              i, diag ? diag : "", want);
        CHECK(strncmp(key_msg, "--", 2) != 0 && strstr(key_msg, " --") == NULL,
              "case %zu: the grid's message names no flag: %s", i, key_msg);
        if (rc == 0)
            grid_free(&g);
        free(diag);
    }
}

int main(void)
{
    check_paper_defaults();
    check_ids_are_stable();
    check_each_knob();
    check_seed_not_a_grid_key();
    check_flag_and_grid_agree();
    return test_finish("test_config");
}
