/* The ranking losses against hand-computed values, tie handling, and their
 * gradients against central differences. */
#include <math.h>
#include <string.h>

#include "icasweep/loss.h"
#include "testutil.h"

static double log_sigmoid(double z) { return -log1p(exp(-z)); }

static void test_values(void)
{
    /* cosines with p = (1, 0): a -> 1, b -> 0, c -> -1 */
    const float p[2] = {1, 0};
    const float resp[6] = {1, 0, /* a */ 0, 2, /* b */ -3, 0 /* c */};
    const float r[3] = {0.9f, 0.1f, 0.5f}; /* ranking a, c, b */
    double e = exp(1.0), ie = exp(-1.0);
    double pl_want = (-1 + log(e + ie + 1)) + (1 + log(ie + 1)) + (0 + log(1.0));
    double bt_want = -(log_sigmoid(2) + log_sigmoid(1) + log_sigmoid(-1)) / 3;
    double pl = loss_one(LOSS_PL, p, resp, r, 3, 2, 1, NULL);
    double bt = loss_one(LOSS_BT, p, resp, r, 3, 2, 1, NULL);
    CHECK(test_close(pl, pl_want, 1e-12, 1e-9), "PL %.12f want %.12f", pl, pl_want);
    CHECK(test_close(bt, bt_want, 1e-12, 1e-9), "BT %.12f want %.12f", bt, bt_want);
    /* two items: PL and BT coincide, -log sigmoid(s_1 - s_2) */
    double pl2 = loss_one(LOSS_PL, p, resp, r, 2, 2, 1, NULL);
    CHECK(test_close(pl2, -log_sigmoid(1), 1e-12, 1e-9), "PL n=2 %.12f", pl2);

    /* ties: BT skips tied pairs; PL ranks ties by index */
    const float rt[3] = {0.5f, 0.5f, 0.2f};
    double bt_tie = loss_one(LOSS_BT, p, resp, rt, 3, 2, 1, NULL);
    double bt_tie_want = -(log_sigmoid(1 - (-1)) + log_sigmoid(0 - (-1))) / 2;
    CHECK(test_close(bt_tie, bt_tie_want, 1e-12, 1e-9), "BT with a tie %.12f want %.12f",
          bt_tie, bt_tie_want);
    double pl_tie = loss_one(LOSS_PL, p, resp, rt, 3, 2, 1, NULL);
    double pl_tie_want = (-1 + log(e + 1 + ie)) + (0 + log(1 + ie)) + 0;
    CHECK(test_close(pl_tie, pl_tie_want, 1e-12, 1e-9), "PL with a tie %.12f want %.12f",
          pl_tie, pl_tie_want);
    const float all_tied[3] = {0.3f, 0.3f, 0.3f};
    CHECK(loss_one(LOSS_BT, p, resp, all_tied, 3, 2, 1, NULL) == 0, "BT with no pair is 0");

    int order[4];
    const float rr[4] = {0.2f, 0.7f, 0.2f, 0.9f};
    loss_rank_order(rr, 4, order);
    CHECK(order[0] == 3 && order[1] == 1 && order[2] == 0 && order[3] == 2,
          "rank order %d %d %d %d", order[0], order[1], order[2], order[3]);

    /* context loss: mean over n = 2..N-1 of the per-n losses */
    const int N = 4, d = 2;
    float pred[8] = {0.3f, -1, 0.5f, 0.2f, 1, 0.4f, -0.2f, 0.9f};
    float rs[4] = {0.1f, 0.8f, 0.4f, 0.6f};
    float ys[8] = {1, 0.5f, -0.3f, 1, 0.2f, 0.2f, 1, -1};
    double want = (loss_one(LOSS_PL, pred + 4, ys, rs, 2, d, 1, NULL) +
                   loss_one(LOSS_PL, pred + 6, ys, rs, 3, d, 1, NULL)) / 2;
    double got = loss_context(LOSS_PL, pred, ys, rs, N, d, 1, NULL);
    CHECK(test_close(got, want, 1e-12, 1e-9), "context loss %.12f want %.12f", got, want);
}

static void test_gradients(void)
{
    const int n = 6, d = 4;
    float p[4] = {0.3f, -0.7f, 1.1f, 0.2f};
    float resp[24], r[6];
    for (int i = 0; i < n * d; i++)
        resp[i] = sinf(1.7f * i + 0.3f);
    for (int i = 0; i < n; i++)
        r[i] = 0.5f + 0.4f * cosf(2.1f * i);
    for (int k = 0; k < 2; k++) {
        loss_kind kind = k ? LOSS_BT : LOSS_PL;
        float g[4] = {0};
        loss_one(kind, p, resp, r, n, d, 0.5f, g);
        for (int j = 0; j < d; j++) {
            float h = 1e-3f, save = p[j];
            p[j] = save + h;
            double up = loss_one(kind, p, resp, r, n, d, 0.5f, NULL);
            p[j] = save - h;
            double down = loss_one(kind, p, resp, r, n, d, 0.5f, NULL);
            p[j] = save;
            double fd = 0.5 * (up - down) / (2.0 * h);
            CHECK(test_close(g[j], fd, 1e-4, 1e-3), "%s dloss/dp[%d]: %.6g vs fd %.6g",
                  loss_name(kind), j, g[j], fd);
        }
    }
}

int main(void)
{
    test_values();
    test_gradients();
    return test_finish("test_loss");
}
